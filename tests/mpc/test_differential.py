"""Differential tests: on random tables and random plans, MPC equals the plain oracle.

The default run checks EXAMPLES plans per test; before a change to a kernel, run the slow variants
too (MANY plans each, ~10 min): ``pytest -m slow tests/mpc/test_differential.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc

SMALL = st.integers(-5000, 5000)
BIG = st.integers(-(2**50), 2**50)  # near the documented limit for exact sums
FLOATS = st.integers(-64 * 1000, 64 * 1000).map(lambda i: i / 64)  # exact in fixed point
DATES = st.dates(dt.date(1930, 1, 1), dt.date(2024, 12, 31))


def _nullable(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), s, s, s)


@st.composite
def tables(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    n = draw(st.integers(0, 36))
    left = pd.DataFrame({
        "k": pd.array(draw(st.lists(_nullable(st.integers(0, 20)), min_size=n, max_size=n)), dtype="Int64"),
        "g": pd.Categorical(draw(st.lists(_nullable(st.sampled_from("abcdef")), min_size=n, max_size=n)),
                            categories=list("abcdef")),  # NB: ≥ 4 codes: packed to bits in joins
        "x": pd.array(draw(st.lists(_nullable(SMALL), min_size=n, max_size=n)), dtype="Int64"),
        "big": pd.array(draw(st.lists(_nullable(BIG), min_size=n, max_size=n)), dtype="Int64"),
        "f": pd.array(draw(st.lists(_nullable(FLOATS), min_size=n, max_size=n)), dtype="Float64"),
        "flag": pd.array(draw(st.lists(_nullable(st.booleans()), min_size=n, max_size=n)), dtype="boolean"),
        # NB: a datetime dtype, so the column is a date even when every value is missing
        "d": pd.to_datetime(pd.Series(draw(st.lists(_nullable(DATES), min_size=n, max_size=n)), dtype=object))
        .astype("datetime64[s]"),
    })  # fmt: skip
    rkeys = draw(st.lists(st.integers(0, 25), unique=True, max_size=24))
    m = len(rkeys)
    right = pd.DataFrame({
        "k": pd.array(rkeys, dtype="Int64"),
        "y": pd.array(draw(st.lists(_nullable(SMALL), min_size=m, max_size=m)), dtype="Int64"),
        "z": pd.array(draw(st.lists(_nullable(st.booleans()), min_size=m, max_size=m)), dtype="boolean"),
    })  # fmt: skip
    return {"left": left, "right": right}


PREDICATES = [
    lambda: wp.col("x") >= 0,
    lambda: wp.col("g") == "b",
    lambda: wp.col("g").is_in(["a", "c"]),
    lambda: wp.col("flag"),
    lambda: ~wp.col("flag") | (wp.col("x") < 100),
    lambda: wp.col("x").is_between(-1000, 2500) & wp.col("f").is_not_null(),
    lambda: wp.col("x").is_null() | (wp.col("f") > 1.5),
    lambda: wp.col("d") >= dt.date(1960, 1, 1),
    lambda: (wp.col("x") * 2 + 1) != wp.col("x"),
]
DERIVED = {
    "band": lambda: wp.col("x").cut([-100, 0, 2500], labels=["lo", "mid", "hi", "top"]),
    "risk": lambda: wp.when(wp.col("x") > 1000).then(wp.lit("hoog"))
                     .when(wp.col("flag")).then(wp.lit("midden")).otherwise(wp.lit("laag")),
    "oud": lambda: wp.col("d").age_at(dt.date(2024, 6, 30)) >= 65,
    "fx": lambda: wp.col("f").fill_null(0.5) * 2 - wp.col("x").fill_null(1) / 4,
    "gf": lambda: wp.col("g").fill_null("c"),
}  # fmt: skip
AGGS = {
    "n": lambda: wp.count(),
    "nx": lambda: wp.col("x").count(),
    "sx": lambda: wp.col("x").sum(),
    "sbig": lambda: wp.col("big").sum(),
    "minbig": lambda: wp.col("big").min(),
    "maxx": lambda: wp.col("x").max(),
    "mx": lambda: wp.col("x").mean(),
    "vx": lambda: wp.col("x").var(),
    "sdf": lambda: wp.col("f").std(),
    "sf": lambda: wp.col("f").sum(),
    "mf": lambda: wp.col("f").mean(),
    "medx": lambda: wp.col("x").median(),
    "q9f": lambda: wp.col("f").quantile(0.9),
    "sflag": lambda: wp.col("flag").sum(),
    "mind": lambda: wp.col("d").min(),
    "nk": lambda: wp.col("k").count(),  # the join key, rebuilt after a join
    "mink": lambda: wp.col("k").min(),
}


@st.composite
def plans(draw: st.DrawFn) -> wp.LazyFrame:
    q = wp.scan("left")
    join = draw(st.sampled_from([None, "inner", "left"]))
    if join:
        q = q.join(wp.scan("right"), on="k", how=join)
    if draw(st.booleans()):
        q = q.filter(draw(st.sampled_from(PREDICATES))())
    derived = draw(st.lists(st.sampled_from(sorted(DERIVED)), unique=True, max_size=3))
    if derived:
        q = q.with_columns(**{d: DERIVED[d]() for d in derived})
    if draw(st.booleans()) and derived:
        q = q.filter(wp.col(derived[0]).is_not_null())
    keys = draw(st.lists(st.sampled_from(["g", "flag", *(d for d in derived if d in ("band", "risk", "oud", "gf"))]),
                         unique=True, max_size=2))  # fmt: skip
    names = draw(st.lists(st.sampled_from(sorted(AGGS)), unique=True, min_size=1, max_size=5))
    aggs = {a: AGGS[a]() for a in names}
    if "fx" in derived and draw(st.booleans()):
        aggs["sfx"] = wp.col("fx").sum()
        aggs["mfx"] = wp.col("fx").mean()
    if join and draw(st.booleans()):
        aggs["sy"] = wp.col("y").sum()
        aggs["nz"] = wp.col("z").count()
    return q.group_by(*keys).agg(**aggs)


def _check(cluster: LocalCluster, q: wp.LazyFrame, t: dict[str, pd.DataFrame], k: int,
           rules: wp.DisclosureRules | None = None) -> None:  # fmt: skip
    rules = rules or wp.DisclosureRules(cells_per_source=False)  # NB: rule 8 is static; generated tables are tiny
    plain = wp.run_local(q, t, engine="plain", min_group_size=k, rules=rules, perturbation_key=11)
    mpc = wp.run_local(q, t, engine="mpc", min_group_size=k, cluster=cluster, rules=rules, perturbation_key=11)
    assert not frame_differences(mpc, plain, loose={"sdf"})  # NB: floats within tolerance, the rest exactly


# NB: each example compiles a new MPC program (3-5 s of the suite's time each, more with var, std or a quantile):
# the default run checks EXAMPLES random plans per test, the slow-marked variants (pytest -m slow) MANY.
EXAMPLES = 12
MANY = 60


def _without_suppression(cluster: LocalCluster, t: dict[str, pd.DataFrame], q: wp.LazyFrame) -> None:
    # NB: the arithmetic alone, with k = 1 and no other rule (every rule on is the k = 10 test's, below)
    _check(cluster, q, t, 1, wp.DisclosureRules.cells_only())


@settings(max_examples=EXAMPLES)
@given(t=tables(), q=plans())
def test_mpc_equals_plain_without_suppression(cluster: LocalCluster, t: dict[str, pd.DataFrame],
                                              q: wp.LazyFrame) -> None:  # fmt: skip
    _without_suppression(cluster, t, q)


@settings(max_examples=EXAMPLES)
@given(t=tables(), q=plans())
def test_mpc_equals_plain_with_min_group_size_10(cluster: LocalCluster, t: dict[str, pd.DataFrame],
                                                 q: wp.LazyFrame) -> None:  # fmt: skip
    _check(cluster, q, t, 10)


@pytest.mark.slow
@settings(max_examples=MANY)
@given(t=tables(), q=plans())
def test_mpc_equals_plain_without_suppression_many(cluster: LocalCluster, t: dict[str, pd.DataFrame],
                                                   q: wp.LazyFrame) -> None:  # fmt: skip
    _without_suppression(cluster, t, q)


@pytest.mark.slow
@settings(max_examples=MANY)
@given(t=tables(), q=plans())
def test_mpc_equals_plain_with_min_group_size_10_many(cluster: LocalCluster, t: dict[str, pd.DataFrame],
                                                      q: wp.LazyFrame) -> None:  # fmt: skip
    _check(cluster, q, t, 10)
