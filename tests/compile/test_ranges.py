"""The range rule on the plain executor: each statistic is exact or withheld as out of range, never wrong.

The MPC executor applies the same rule inside the computation (tests/mpc/test_ranges.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.compile import disclosure

N = 1100  # NB: 1100 values of 2^53 - 1 sum past 2^63
# NB: arithmetic at the range edges: the cell rule and the range rule only (an exact max is rule 4's to withhold)
RULES = wp.DisclosureRules.cells_only()
TOP = 2**53 - 1


def edge_table(n: int = N) -> pd.DataFrame:
    """Values at the edges of the documented ranges (docs/mpc.md), in one table."""
    i = np.arange(n)
    return pd.DataFrame({
        "big": pd.array([TOP] * n, dtype="Int64"),
        "x": pd.array([TOP if j < 400 else None for j in i], dtype="Int64"),
        "f": pd.array([2.0**30 - 1] * n, dtype="Float64"),
        "small": pd.array([2**20] * n, dtype="Int64"),
        "wide": pd.array(np.where(i % 2, 20_000, 0), dtype="Int64"),
        "narrow": pd.array(np.where(i % 2, 6_000, 0), dtype="Int64"),
    })  # fmt: skip


def edge_query() -> wp.LazyFrame:
    c = wp.col
    return wp.scan("t").agg(
        s_wrap=c("big").sum(), s_exact=c("x").sum(), m_f=c("f").mean(), m_x=c("x").mean(), m_ok=c("small").mean(),
        v_wide=c("wide").var(), sd_wide=c("wide").std(), v_ok=c("narrow").var(), med_x=c("x").median(),
        med_ok=c("small").median(), mx=c("big").max(),
    )  # fmt: skip


WITHHELD = ("s_wrap", "m_f", "m_x", "v_wide", "sd_wide", "med_x")


def check_edges(got: pd.DataFrame) -> None:
    """Assert each edge statistic is exact, or withheld with the out-of-range reason."""
    row = got.iloc[0]
    for name in WITHHELD:
        assert pd.isna(row[name]), name
    assert "out of range" in row["reason"] and all(name in row["reason"] for name in WITHHELD)
    assert "fewer than" not in row["reason"] and not row["suppressed"]
    assert row["s_exact"] == 400 * TOP  # NB: exact, beyond what a float64 holds
    assert row["mx"] == TOP and row["med_ok"] == 2**20
    assert row["m_ok"] == pytest.approx(2**20, rel=1e-5)  # NB: the MPC's division: ~4e-6 relative
    assert row["v_ok"] == pytest.approx(np.var(np.where(np.arange(N) % 2, 6_000, 0), ddof=1), rel=1e-4)


def test_plain_executor_withholds_what_would_be_out_of_range_and_sums_ints_exactly() -> None:
    check_edges(wp.run_local(edge_query(), {"t": edge_table()}, rules=RULES))


def test_a_float_sum_past_the_fixed_point_range_is_withheld() -> None:
    n = disclosure.SUM_LIMIT["float"] // 2**30 + 1
    t = pd.DataFrame({"f": pd.array([2.0**30] * n, dtype="Float64")})
    got = wp.run_local(wp.scan("t").agg(s=wp.col("f").sum(), n=wp.count()), {"t": t}).iloc[0]
    assert pd.isna(got["s"]) and got["n"] == n and "out of range" in got["reason"]
    got = wp.run_local(wp.scan("t").agg(s=wp.col("f").sum()), {"t": t.head(n - 1)}).iloc[0]
    assert got["s"] == (n - 1) * 2.0**30 and got["reason"] is None


def test_below_k_is_still_the_reason_when_a_statistic_is_both() -> None:
    got = wp.run_local(edge_query(), {"t": edge_table(3)}, rules=RULES).iloc[0]
    assert got["suppressed"] and got["reason"] == "fewer than 10 rows"


def test_declared_ranges_decide_statically_which_statistics_need_no_check_in_the_mpc() -> None:
    from werkplaats.catalog.schema import ColumnSchema, TableSchema
    from werkplaats.compile.analyze import check
    from werkplaats.compile.ranges import statically_in_range

    cat = {"t": TableSchema("t", (ColumnSchema("age", "int", minimum=0, maximum=120),
                                  ColumnSchema("pay", "float", minimum=0.0, maximum=2.0**30),
                                  ColumnSchema("n", "int")))}  # fmt: skip
    c = wp.col
    q = wp.scan("t").with_columns(age2=c("age") * 2).agg(
        s=c("age").sum(), m=c("age").mean(), v=c("age").var(), med=c("n").median(), sp=c("pay").sum(),
        mp=c("pay").mean(), s2=c("age2").sum(), sn=c("n").sum(),
    )  # fmt: skip
    a = check(q.to_plan(), cat)
    assert statically_in_range(a, 1_000_000) == {"s", "m", "v"}  # NB: pay's mean may exceed 2^26; age2 is computed
    assert statically_in_range(a, 2**60) == set()  # NB: so many rows could sum past the limits
