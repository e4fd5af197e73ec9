"""Correlation matrices (plan node Corr) on the plain executor: pandas' numbers, and every check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.exceptions import PlanError

EXACT = wp.DisclosureRules.cells_only()  # NB: n exact, so it can be compared with pandas' row count
K = 5


def corr(df: pd.DataFrame, *cols: str, k: int = K, rules: wp.DisclosureRules = EXACT) -> pd.DataFrame:
    return wp.run_local(wp.scan("t").corr(*cols), {"t": df}, engine="plain", rules=rules, min_group_size=k)


def reference(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """pandas on the complete cases (werkplaats uses the rows where every column is present)."""
    return df[cols].dropna().astype(float).corr()


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(12, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e4]))
    offset = draw(st.sampled_from([0.0, 1e6, -3e5]))
    a = rng.normal(offset, scale, rows)
    b = 0.5 * a + rng.normal(0, scale, rows)  # correlated with a
    df = pd.DataFrame({
        "a": pd.array(a, dtype="Float64"),
        "b": pd.array(b, dtype="Float64"),
        "i": pd.array(rng.integers(-50, 50, rows), dtype="Int64"),
        "f": pd.array(rng.random(rows) < 0.5, dtype="boolean"),
    })  # fmt: skip
    for c in df.columns:  # missing values, a different set per column
        gone = rng.random(rows) < draw(st.sampled_from([0.0, 0.1]))
        df.loc[gone, c] = pd.NA
    return df


@settings(max_examples=40)
@given(tables())
def test_plain_equals_pandas_on_complete_cases(df: pd.DataFrame) -> None:
    cols = ["a", "b", "i", "f"]
    got = corr(df, *cols, k=1)
    used = df[cols].dropna()
    want = reference(df, cols)
    lo, hi = used.astype(float).min(), used.astype(float).max()
    if (lo == hi).any() or len(used) < 1:
        assert got.attrs["withheld"]
        return
    assert not got.attrs["withheld"], got.attrs["reason"]
    assert got.attrs["n"] == len(used)
    assert list(got.index) == cols and list(got.columns) == cols
    np.testing.assert_allclose(
        got.to_numpy(dtype=float), want.to_numpy(), atol=1e-6
    )  # NB: float64 at offset 1e6, scale 1e-3


def test_a_known_matrix() -> None:
    df = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6], "y": [2.0, 4, 6, 8, 10, 12], "z": [6.0, 5, 4, 3, 2, 1],
                       "u": [1.0, 0, 1, 0, 1, 0]})  # fmt: skip
    got = corr(df, "x", "y", "z", "u", k=1)
    assert got.loc["x", "y"] == pytest.approx(1.0)
    assert got.loc["x", "z"] == pytest.approx(-1.0)
    # x against the alternating u: by hand, r = -3 / sqrt(17.5 * 1.5)
    assert got.loc["x", "u"] == pytest.approx(-1.5 / np.sqrt(17.5 * 1.5))
    assert got.loc["u", "x"] == got.loc["x", "u"]
    assert (np.diag(got.to_numpy(dtype=float)) == 1.0).all()
    assert got.attrs["n"] == 6


def test_n_is_rounded_under_the_default_rules() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=43), "y": rng.normal(size=43)})
    rules = wp.DisclosureRules(cells_per_source=False)
    assert corr(df, "x", "y", k=10, rules=rules).attrs["n"] == 45  # NB: 43 rows → the nearest multiple of 5
    assert corr(df, "x", "y", k=10).attrs["n"] == 43


def withheld(df: pd.DataFrame, *cols: str, k: int = K) -> str:
    got = corr(df, *cols, k=k)
    assert got.attrs["withheld"]
    assert got.isna().all().all()  # NB: nothing of the matrix is released
    assert got.attrs["n"] is None
    return str(got.attrs["reason"])


def test_too_few_rows() -> None:
    df = pd.DataFrame({"x": [1.0, 2, 3, 4, None, 6], "y": [1.0, 3, 2, 5, 4, None]})
    assert "fewer than 5 rows" in withheld(df, "x", "y", k=5)  # NB: 4 complete rows
    assert not corr(df, "x", "y", k=4).attrs["withheld"]


def test_a_constant_column_withholds_the_whole_matrix() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=30), "y": rng.normal(size=30), "c": np.full(30, 7.5)})
    assert "constant" in withheld(df, "x", "y", "c")
    # nearly constant: below fixed point's resolution, treated alike (never a NaN or noise)
    df["c"] = 7.5 + rng.normal(size=30) * 1e-5
    assert "constant" in withheld(df, "x", "y", "c")
    df["c"] = 7.5 + rng.normal(size=30) * 1e-3
    assert not corr(df, "x", "y", "c").attrs["withheld"]


def test_a_column_constant_on_the_rows_used() -> None:
    df = pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8], "c": [1.0, 1, 1, 1, 1, 1, 1, None],
                       "y": [2.0, 1, 4, 3, 6, 5, 8, None]})  # fmt: skip
    assert "constant" in withheld(df, "x", "c", "y")


def test_bool_columns_need_k_rows_per_value() -> None:
    rng = np.random.default_rng(2)
    rows = 40
    sick = np.zeros(rows, dtype=bool)
    sick[:4] = True  # 4 < k rows
    df = pd.DataFrame({"x": rng.normal(size=rows), "sick": pd.array(sick, dtype="boolean")})
    assert "fewer than 5 rows" in withheld(df, "x", "sick")
    sick[:5] = True
    df["sick"] = pd.array(sick, dtype="boolean")
    assert not corr(df, "x", "sick").attrs["withheld"]
    # the small side as the false value counts as much
    df["sick"] = pd.array(~np.r_[np.ones(rows - 3, dtype=bool), np.zeros(3, dtype=bool)], dtype="boolean")
    assert "fewer than 5 rows" in withheld(df, "x", "sick")


def test_two_binary_columns_need_k_rows_in_every_cell_of_their_2x2_table() -> None:
    """Attack: margins of k or more, but one combination of two binary columns held by 2 rows."""
    rows = 60
    smokes = np.arange(rows) < 30
    copd = np.r_[np.ones(20, dtype=bool), np.zeros(38, dtype=bool), np.ones(2, dtype=bool)]  # 2 non-smokers
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"smokes": pd.array(smokes, dtype="boolean"), "copd": pd.array(copd, dtype="boolean"),
                       "x": rng.normal(size=rows)})  # fmt: skip
    assert "2 × 2 table" in withheld(df, "x", "smokes", "copd")
    assert not corr(df, "x", "smokes").attrs["withheld"]  # NB: each alone passes
    assert not corr(df, "x", "copd").attrs["withheld"]
    copd[40:45] = True  # 7 non-smokers with copd: every cell >= k
    df["copd"] = pd.array(copd, dtype="boolean")
    assert not corr(df, "x", "smokes", "copd").attrs["withheld"]


def test_a_binary_column_made_from_a_bool_is_checked_too() -> None:
    """Attack: cast the bool to 0/1 (or any two numbers) to evade the bool check; any two-valued column is checked."""
    rng = np.random.default_rng(3)
    rows = 40
    flag = np.r_[np.ones(2, dtype=bool), np.zeros(rows - 2, dtype=bool)]
    df = pd.DataFrame({"x": rng.normal(size=rows), "flag": pd.array(flag, dtype="boolean")})
    q = (wp.scan("t").with_columns(f01=wp.when(wp.col("flag")).then(1).otherwise(0),
                                   f37=wp.when(wp.col("flag")).then(3.5).otherwise(-7.0))
         .corr("x", "f01", "f37"))  # fmt: skip
    got = wp.run_local(q, {"t": df}, engine="plain", rules=EXACT, min_group_size=K)
    assert got.attrs["withheld"] and "two values" in got.attrs["reason"]


def test_values_beyond_the_range_are_withheld() -> None:
    df = pd.DataFrame({"x": pd.array(np.arange(20) * 2**26, dtype="Int64"), "y": np.arange(20.0) % 7})
    assert not corr(df, "x", "y").attrs["withheld"]  # NB: up to 19 · 2^26 < 2^31
    df["x"] = pd.array(np.arange(20) * 2**28, dtype="Int64")
    assert "range" in withheld(df, "x", "y")


def test_the_plan_is_checked() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"], "d": pd.to_datetime(["2024-01-01", "2024-02-01"])})
    with pytest.raises(PlanError, match="str"):
        corr(df, "x", "s")
    with pytest.raises(PlanError, match="no column"):
        corr(df, "x", "nope")
    with pytest.raises(PlanError, match="twice"):
        corr(df, "x", "x")
    with pytest.raises(PlanError, match="two or more"):
        wp.scan("t").corr("x")


def test_a_person_key_is_refused() -> None:
    df = pd.DataFrame({"bsn": np.arange(20), "x": np.arange(20.0) % 3})
    with pytest.raises(PlanError, match="bsn"):
        corr(df, "bsn", "x", rules=wp.DisclosureRules())
