"""Rules 2-4 (contributors, dominance and p%, extremes) in the plain executor: the attacks and the honest path.

tests/mpc/test_rules_cells.py runs the same queries under MPC and asserts both executors agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from fractions import Fraction
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.catalog.schema import TableSchema, infer_schema
from werkplaats.compile.disclosure import quantile_sides
from werkplaats.compile.kernels.aggregate import top_n

# Only the classic cell rule and the rules 2-4 (so codes are not changed by perturbation or secondary suppression).
MINE = dataclasses.replace(wp.DisclosureRules.cells_only(), contributors=True, dominance_pct=90.0, p_percent=10.0,
                           extremes="withhold", quantile_sides=True)  # fmt: skip
TARGET = dt.date(1971, 3, 4)  # the one person's (unique) birth date: rule 1 refuses conditions on bsn


def table() -> pd.DataFrame:
    """30 people: gemeente A (20) and B (exactly 10); one target in A with a unique birth date."""
    n = 30
    born = [dt.date(1950, 1, 1) + dt.timedelta(days=37 * i) for i in range(n)]
    born[3] = TARGET
    return pd.DataFrame({
        "gem": pd.Categorical(["A"] * 20 + ["B"] * 10, categories=["A", "B"]),
        "gebdat": pd.to_datetime(pd.Series(born)).astype("datetime64[s]"),
        "inkomen": pd.array([2000 + i for i in range(20)] + [1100 + i for i in range(10)], dtype="Int64"),
        "kosten": pd.array([100 + (i % 7) for i in range(20)] + [50 + i for i in range(10)], dtype="Int64"),
        "hiv": pd.array([i == 3 for i in range(30)], dtype="boolean"),
        "dosis": pd.array([1.25 * (i % 4) + 7.5 for i in range(30)], dtype="Float64"),
    })  # fmt: skip


def schema(df: pd.DataFrame, **changes: dict[str, Any]) -> dict[str, TableSchema]:
    """Return the table's schema with kosten a magnitude, and columns changed as given."""
    s = infer_schema("t", df)
    changes = {"kosten": {"role": "magnitude"}, **changes}
    cols = tuple(dataclasses.replace(c, **changes.get(c.name, {})) for c in s.columns)
    return {"t": dataclasses.replace(s, columns=cols)}


def run(q: wp.LazyFrame, df: pd.DataFrame, rules: wp.DisclosureRules = MINE, engine: str = "plain",
        schemas: dict[str, TableSchema] | None = None, **kw: Any) -> pd.DataFrame:  # fmt: skip
    return wp.run_local(q, {"t": df}, engine=engine, rules=rules, schemas=schemas or schema(df), **kw)


def codes(out: pd.DataFrame, name: str) -> dict[str, Any]:
    """Return, per gemeente (A, B), the statistic's value if released, else its reason text."""
    res = {}
    for _, row in out.iterrows():
        if pd.isna(row["gem"]):
            continue
        res[row["gem"]] = row[name] if not pd.isna(row[name]) else row["reason"]
    return res


def where(out: pd.DataFrame, gem: str) -> pd.Series:
    return out[out["gem"] == gem].iloc[0]


# The attacks and honest queries, shared with the MPC test: name -> (query, rules, schema changes).
IS_TARGET = wp.col("gebdat") == TARGET
QUERIES: dict[str, tuple[wp.LazyFrame, wp.DisclosureRules, dict[str, dict[str, Any]]]] = {
    "cells": (wp.scan("t").group_by("gem").agg(
        s=wp.when(IS_TARGET).then(wp.col("inkomen")).otherwise(0).sum(),  # one person's income
        m=(IS_TARGET & wp.col("hiv")).mean(),  # one person's status
        mx=wp.col("inkomen").max(), mn=wp.col("inkomen").min(),
        q0=wp.col("inkomen").quantile(0.0), q1=wp.col("inkomen").quantile(1.0), med=wp.col("inkomen").median(),
        sk=wp.col("kosten").sum(), mk=wp.col("kosten").mean(), n=wp.count(),
    ), MINE, {}),
    "dominated": (wp.scan("t").with_columns(kosten=wp.when(IS_TARGET).then(1_000_000).otherwise(wp.col("kosten")))
                  .group_by("gem").agg(sk=wp.col("kosten").sum(), mk=wp.col("kosten").mean()), MINE, {}),
    "p_percent": (wp.scan("t").with_columns(kosten=wp.when(IS_TARGET).then(1000).when(wp.col("inkomen") == 2005)
                                            .then(900).otherwise(wp.col("kosten") * 0 + 2))
                  .group_by("gem").agg(sk=wp.col("kosten").sum()),
                  dataclasses.replace(MINE, dominance_n=1), {}),
    "rounded": (wp.scan("t").group_by("gem").agg(
        mx=wp.col("inkomen").max(), mn=wp.col("inkomen").min(), dmx=wp.col("dosis").max(), dmn=wp.col("dosis").min(),
    ), dataclasses.replace(MINE, extremes="round"), {"inkomen": {"extremes_base": 1000.0}}),
    "top_coded": (wp.scan("t").group_by("gem").agg(mx=wp.col("inkomen").max(), mn=wp.col("inkomen").min()),
                  dataclasses.replace(MINE, extremes="release"),
                  {"inkomen": {"top_code": 2010.0, "bottom_code": 1105.0}}),
}  # fmt: skip


def run_case(name: str, engine: str = "plain", **kw: Any) -> pd.DataFrame:
    q, rules, changes = QUERIES[name]
    df = table()
    return run(q, df, rules, engine, schema(df, **changes), **kw)


def test_a_conditional_sum_and_a_boolean_mean_of_one_person_are_withheld() -> None:
    before = run(QUERIES["cells"][0], table(), wp.DisclosureRules.cells_only())
    assert where(before, "A")["s"] == 2003  # the attack on the classic cell rule alone: the target's exact income
    assert where(before, "A")["m"] == pytest.approx(1 / 20)  # and their status (20 * mean)
    out = run_case("cells")
    reason = "fewer than 10 contributors"
    for gem in ("A", "B"):
        assert reason in codes(out, "s")[gem] and reason in codes(out, "m")[gem]
    assert not where(out, "A")["suppressed"]  # the cell and its other statistics stay
    assert where(out, "A")["n"] == 20


def test_the_full_default_rules_withhold_the_conditional_sum() -> None:
    out = run(QUERIES["cells"][0], table(), wp.DisclosureRules(), perturbation_key=7)
    assert pd.isna(where(out, "A")["s"]) and pd.isna(where(out, "A")["m"]) and pd.isna(where(out, "A")["mx"])


def test_exact_extremes_quantile_0_and_1_and_the_median_of_ten_are_withheld() -> None:
    before = run(QUERIES["cells"][0], table(), wp.DisclosureRules.cells_only())
    assert where(before, "A")["mx"] == 2019 and where(before, "A")["q1"] == 2019  # exact values, before
    assert where(before, "B")["med"] == pytest.approx(1104.5)
    out = run_case("cells")
    for gem in ("A", "B"):
        for name in ("mx", "mn"):
            assert "an extreme value" in codes(out, name)[gem]
        for name in ("q0", "q1"):
            assert "on one side of the quantile" in codes(out, name)[gem]
    assert "on one side of the quantile" in codes(out, "med")["B"]  # a group of exactly 10
    assert "on one side of the quantile" in codes(out, "med")["A"]  # 20 < 22: 10 below and 10 above
    assert codes(out, "sk")["A"] == sum(100 + (i % 7) for i in range(20))  # the honest magnitude sum
    assert codes(out, "mk")["B"] == pytest.approx(54.5)


def test_max_of_a_large_group_is_withheld() -> None:
    n = 1014
    df = pd.DataFrame({"gem": pd.Categorical(["A"] * n, categories=["A", "B"]),
                       "inkomen": pd.array(np.arange(n) * 3 + 17, dtype="Int64")})  # fmt: skip
    q = wp.scan("t").group_by("gem").agg(mx=wp.col("inkomen").max(), med=wp.col("inkomen").median())
    out = wp.run_local(q, {"t": df}, rules=MINE)
    assert "an extreme value" in codes(out, "mx")["A"]
    assert codes(out, "med")["A"] == pytest.approx(np.median(np.arange(n) * 3 + 17))
    before = wp.run_local(q, {"t": df}, rules=wp.DisclosureRules.cells_only())
    assert codes(before, "mx")["A"] == (n - 1) * 3 + 17


def test_a_dominated_magnitude_cell_is_withheld() -> None:
    out = run_case("dominated")
    assert "dominated by its largest contributors" in codes(out, "sk")["A"]
    assert "dominated by its largest contributors" in codes(out, "mk")["A"]
    assert codes(out, "sk")["B"] == sum(50 + i for i in range(10))  # B has no whale


def test_the_p_percent_rule() -> None:
    out = run_case("p_percent")
    assert "the p% rule" in codes(out, "sk")["A"]  # 18 * 2 < 10% of 1000: the second largest learns the largest
    assert codes(out, "sk")["B"] == 20
    # the same two large contributions among enough others are released
    q = (wp.scan("t").with_columns(kosten=wp.when(IS_TARGET).then(1000).when(wp.col("inkomen") == 2005).then(900)
                                   .otherwise(wp.col("kosten") * 0 + 200))
         .group_by("gem").agg(sk=wp.col("kosten").sum()))  # fmt: skip
    assert codes(run(q, table(), QUERIES["p_percent"][1]), "sk")["A"] == 1900 + 18 * 200


def test_rounded_extremes_are_released_when_k_share_them() -> None:
    out = run_case("rounded")
    # inkomen has its own base 1000: A's 2000..2019 all floor to 2000; B's 1100..1109 to 1000
    assert codes(out, "mx") == {"A": 2000, "B": 1000}
    assert codes(out, "mn") == {"A": 2000, "B": 1000}
    # dosis takes the rules' base 5: values 7.5, 8.75, 10, 11.25; max 11.25 -> 10 shared by 15 in A, 5 in B
    assert codes(out, "dmx")["A"] == 10.0
    assert "an extreme value" in codes(out, "dmx")["B"]
    assert codes(out, "dmn")["A"] == 5.0  # 7.5 and 8.75 floor to 5: 10 of A's 20


def test_a_lone_outlier_is_not_released_rounded() -> None:
    q, rules, changes = QUERIES["rounded"]
    df = table()
    df.loc[4, "inkomen"] = 7777  # one person far above the others
    out = run(q, df, rules, schemas=schema(df, **changes))
    assert "an extreme value" in codes(out, "mx")["A"]
    assert codes(out, "mn")["A"] == 2000


def test_top_and_bottom_coding_clip_before_the_extreme() -> None:
    out = run_case("top_coded")
    assert codes(out, "mx") == {"A": 2010, "B": 1109}
    assert codes(out, "mn") == {"A": 2000, "B": 1105}


def test_intermediate_aggregates_have_no_cell_rules() -> None:
    df = table()
    q = (wp.scan("t").group_by("gebdat").agg(i=wp.col("inkomen").max())
         .group_by().agg(n=wp.count(), s=wp.col("i").sum()))  # fmt: skip
    out = wp.run_local(q, {"t": df}, rules=MINE, schemas=schema(df))
    assert out["n"].iloc[0] == 30 and out["s"].iloc[0] == int(df["inkomen"].sum())


@pytest.mark.parametrize("q", [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0, 1 / 3])
def test_quantile_sides_threshold_is_the_rank_rule(q: float) -> None:
    k = 10
    for c in range(1, 300):
        lo = int(np.floor(Fraction(c - 1) * Fraction(q)))
        hi = min(lo + 1, c - 1)
        ok = lo >= k and (c - 1 - hi) >= k
        assert ok == (c >= quantile_sides(q, k)), (q, c)


@pytest.mark.parametrize("count", [1, 2, 3])
def test_top_n_tree_equals_a_sort(count: int) -> None:
    rng = np.random.default_rng(count)
    for rows in (1, 2, 5, 17, 64):
        x = rng.integers(0, 50, (rows, 3))
        got = np.stack([np.asarray(t) for t in top_n(jnp.asarray(x), count)])
        want = -np.sort(-np.concatenate([x, np.zeros((count, 3), dtype=x.dtype)]), axis=0)[:count]
        assert (got == want).all()
