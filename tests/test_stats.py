"""Tests on released cross-tables (werkplaats.stats): hand-computed values, scipy and statsmodels, refusals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from scipy.stats.contingency import odds_ratio, relative_risk
from statsmodels.stats.contingency_tables import Table2x2

import werkplaats as wp
from werkplaats.stats import SuppressedCellError


def released(table: list[list[float | None]], rows: list[object], cols: list[object], row: str = "r",
             col: str = "c") -> pd.DataFrame:  # fmt: skip
    """A result frame as crosstab gives it: a cell per pair, missing-key cells, suppressed cells without a count."""
    recs = []
    for i, rv in enumerate([*rows, None]):
        for j, cv in enumerate([*cols, None]):
            v = table[i][j] if i < len(rows) and j < len(cols) else 3.0
            recs.append({row: rv, col: cv, "n": v, "suppressed": v is None,
                         "reason": "fewer than 10 rows" if v is None else None})  # fmt: skip
    df = pd.DataFrame(recs)
    df["n"] = pd.array([None if pd.isna(v) else int(v) for v in df["n"]], dtype="Int64")
    return df


TABLE = [[25, 40, 15], [30, 20, 50], [12, 18, 30]]


def test_chi_square_by_hand_and_as_scipy() -> None:
    got = wp.stats.chi_square(released(TABLE, ["a", "b", "c"], ["x", "y", "z"]), "r", "c")
    o = np.array(TABLE, dtype=float)
    e = np.outer(o.sum(1), o.sum(0)) / o.sum()
    assert got.statistic == pytest.approx(((o - e) ** 2 / e).sum(), rel=1e-12)
    ref = chi2_contingency(o, correction=False)
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert got.df == ref.dof == 4
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    np.testing.assert_allclose(got.expected.to_numpy(), ref.expected_freq, rtol=1e-12)
    assert got.observed.loc["b", "z"] == 50  # NB: the missing-key cells (count 3 each) are left out
    assert got.n == o.sum()
    assert list(got.expected.index) == ["a", "b", "c"] and got.expected.index.name == "r"


def test_a_2x2_chi_square_is_uncorrected() -> None:
    got = wp.stats.chi_square(released([[30, 70], [10, 90]], [True, False], [True, False]), "r", "c")
    assert got.statistic == pytest.approx(12.5)  # NB: E = 20, 80, 20, 80: 2 · 100/20 + 2 · 100/80
    assert got.p_value == pytest.approx(chi2_contingency([[30, 70], [10, 90]], correction=False).pvalue)


def test_chi_square_refuses_a_suppressed_cell_and_names_it() -> None:
    table: list[list[float | None]] = [[25, 40, 15], [30, None, 50], [12, 18, 30]]
    with pytest.raises(SuppressedCellError) as err:
        wp.stats.chi_square(released(table, ["a", "b", "c"], ["x", "y", "z"]), "r", "c")
    msg = str(err.value)
    assert "r = 'b', c = 'y'" in msg and "fewer than 10 rows" in msg and "no test on the remaining cells" in msg


def test_chi_square_leaves_out_values_without_counts() -> None:
    table: list[list[float | None]] = [[25, 40, 0], [30, 20, 0], [12, 18, 0]]  # NB: a column value with 0 released
    got = wp.stats.chi_square(released(table, ["a", "b", "c"], ["x", "y", "z"]), "r", "c")
    assert list(got.observed.columns) == ["x", "y"] and got.df == 2
    assert got.statistic == pytest.approx(chi2_contingency(np.array(TABLE)[:, :2] * 0 + [[25, 40], [30, 20],
                                                                                       [12, 18]],
                                                           correction=False).statistic)  # fmt: skip


COPD = [[30, 70], [10, 90]]  # rows: smokes yes / no; columns: copd yes / no


def test_two_by_two_by_hand() -> None:
    got = wp.stats.two_by_two(released(COPD, [True, False], [True, False]), "r", "c")
    assert got.risk_ratio == pytest.approx(3.0)
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 10 - 1 / 100)
    assert got.risk_ratio_ci == pytest.approx((3 * math.exp(-1.959964 * se), 3 * math.exp(1.959964 * se)), rel=1e-6)
    assert got.odds_ratio == pytest.approx(30 * 90 / (70 * 10))
    se_or = math.sqrt(1 / 30 + 1 / 70 + 1 / 10 + 1 / 90)
    assert got.odds_ratio_ci[1] == pytest.approx(30 * 90 / 700 * math.exp(1.959964 * se_or), rel=1e-6)
    assert got.cells.to_numpy().tolist() == COPD and got.correction == 0


@pytest.mark.parametrize("cells", [COPD, [[5, 95], [17, 13]], [[120, 3], [40, 44]], [[1, 1], [1, 1]]])
def test_two_by_two_as_statsmodels_and_scipy(cells: list[list[int]]) -> None:
    got = wp.stats.two_by_two(released(cells, ["ja", "nee"], ["ja", "nee"]), "r", "c", exposed="ja", case="ja")
    t = Table2x2(np.array(cells, dtype=float))
    assert got.risk_ratio == pytest.approx(t.riskratio)
    np.testing.assert_allclose(got.risk_ratio_ci, t.riskratio_confint(), rtol=1e-9)
    assert got.odds_ratio == pytest.approx(t.oddsratio)
    np.testing.assert_allclose(got.odds_ratio_ci, t.oddsratio_confint(), rtol=1e-9)
    (a, b), (c, d) = cells
    rr = relative_risk(a, a + b, c, c + d)
    assert got.risk_ratio == pytest.approx(rr.relative_risk)
    np.testing.assert_allclose(got.risk_ratio_ci, tuple(rr.confidence_interval()), rtol=1e-9)
    orr = odds_ratio(np.array(cells), kind="sample")
    np.testing.assert_allclose(got.odds_ratio_ci, tuple(orr.confidence_interval()), rtol=1e-9)


def test_two_by_two_chooses_the_exposed_and_case_values() -> None:
    t = released(COPD, [True, False], [True, False])
    flipped = wp.stats.two_by_two(t, "r", "c", exposed=False, case=True)
    assert flipped.risk_ratio == pytest.approx(1 / 3)
    assert flipped.cells.index.tolist() == [False, True]
    other = wp.stats.two_by_two(t, "r", "c", case=False)  # NB: the risk of no copd
    assert other.risk_ratio == pytest.approx(0.7 / 0.9)
    with pytest.raises(ValueError, match="one of them 'ja'"):
        wp.stats.two_by_two(t, "r", "c", exposed="ja")


def test_two_by_two_refuses_suppressed_and_zero_cells() -> None:
    with pytest.raises(SuppressedCellError, match=r"r = False, c = True is suppressed \(fewer than 10 rows\)"):
        wp.stats.two_by_two(released([[30, 70], [None, 90]], [True, False], [True, False]), "r", "c")
    zero = released([[30, 70], [0, 90]], [True, False], [True, False])
    with pytest.raises(SuppressedCellError, match="is 0"):
        wp.stats.two_by_two(zero, "r", "c")
    got = wp.stats.two_by_two(zero, "r", "c", correction=0.5)  # Haldane-Anscombe, only when asked
    assert got.odds_ratio == pytest.approx(30.5 * 90.5 / (70.5 * 0.5))
    t = Table2x2(np.array([[30.5, 70.5], [0.5, 90.5]]), shift_zeros=False)  # NB: statsmodels shifts zero cells only
    assert got.odds_ratio == pytest.approx(t.oddsratio)
    np.testing.assert_allclose(got.odds_ratio_ci, t.oddsratio_confint(), rtol=1e-9)
    assert got.cells.to_numpy().tolist() == [[30.5, 70.5], [0.5, 90.5]]
    with pytest.raises(ValueError, match="two values"):
        wp.stats.two_by_two(released(TABLE, ["a", "b", "c"], ["x", "y", "z"]), "r", "c", exposed="a", case="x")


def people(rows: int = 400, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rookt = rng.random(rows) < 0.3
    copd = rng.random(rows) < np.where(rookt, 0.3, 0.1)
    zorg = rng.choice(["thuis", "verpleeg", "wijk"], rows)
    return pd.DataFrame({"rookt": pd.array(rookt, dtype="boolean"), "copd": pd.array(copd, dtype="boolean"),
                         "zorg": zorg})  # fmt: skip


def test_end_to_end_on_a_released_crosstab() -> None:
    df = people()
    q = wp.scan("t").crosstab("rookt", "copd")
    exact = wp.run_local(q, {"t": df}, engine="plain", rules=wp.DisclosureRules.cells_only(), min_group_size=10)
    got = wp.stats.two_by_two(exact, "rookt", "copd")
    t = Table2x2(pd.crosstab(df["rookt"], df["copd"]).to_numpy()[::-1, ::-1])  # NB: True first
    assert got.odds_ratio == pytest.approx(t.oddsratio)
    chi = wp.stats.chi_square(exact, "rookt", "copd")
    assert chi.statistic == pytest.approx(chi2_contingency(pd.crosstab(df["rookt"], df["copd"]),
                                                           correction=False).statistic)  # fmt: skip
    # under the workspace's rules the counts are perturbed (at most D = 2 each): the released table's statistic
    rules = wp.DisclosureRules(cells_per_source=False)
    noisy = wp.run_local(q, {"t": df}, engine="plain", rules=rules, min_group_size=10, perturbation_key=7)
    cells = noisy.dropna(subset=["rookt", "copd"])
    assert (abs(cells["n"].to_numpy(dtype=float) - exact.dropna(subset=["rookt", "copd"])["n"].to_numpy(dtype=float))
            <= rules.ptable.D).all()  # fmt: skip
    assert wp.stats.chi_square(noisy, "rookt", "copd").statistic == pytest.approx(chi.statistic, rel=0.2)


def test_end_to_end_a_small_cell_refuses_the_test() -> None:
    df = people()
    df.loc[df["zorg"] == "wijk", "copd"] = False  # every wijk client without copd: ...
    df.loc[df.index[df["zorg"] == "wijk"][:3], "copd"] = True  # ... but 3 (< k)
    q = wp.scan("t").crosstab("zorg", "copd")
    res = wp.run_local(q, {"t": df}, engine="plain", rules=wp.DisclosureRules.cells_only(), min_group_size=10)
    with pytest.raises(SuppressedCellError, match=r"zorg = 'wijk', copd = True is suppressed \(fewer than 10 rows\)"):
        wp.stats.chi_square(res, "zorg", "copd")
