"""wp.concat under MPC: equal to the plain oracle (and to pandas), with and without distinct; its attacks.

The tables hold persons in both hospitals, in one only, several admissions per person (so that which
row distinct keeps matters), missing person keys and code lists that differ per hospital.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc

EXACT = dataclasses.replace(wp.DisclosureRules.cells_only(), person_keys=("bsn",))
GEMEENTEN_A, GEMEENTEN_B = ["Assen", "Emmen", "Meppel"], ["Emmen", "Meppel", "Hoogeveen", "Coevorden"]


def _admissions(seed: int, n: int, persons: np.ndarray, gemeenten: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bsn = rng.choice(persons, n).astype(object)
    bsn[rng.random(n) < 0.1] = None  # NB: admissions without a person key
    return pd.DataFrame({
        "bsn": pd.array(bsn, dtype="Int64"),
        "gemeente": pd.Categorical(rng.choice(gemeenten, n), categories=gemeenten),
        "leeftijd": pd.array(rng.integers(0, 100, n), dtype="Int64"),
        "spoed": pd.array(rng.random(n) < 0.3, dtype="boolean"),
        "opname": pd.to_datetime(pd.Series([dt.date(2023, 1, 1) + dt.timedelta(days=int(d))
                                            for d in rng.integers(0, 700, n)])).astype("datetime64[s]"),
    })  # fmt: skip


def _tables() -> dict[str, pd.DataFrame]:
    a = _admissions(1, 40, np.arange(100, 130), GEMEENTEN_A)  # persons 100..129
    b = _admissions(2, 36, np.arange(115, 150), GEMEENTEN_B)  # 115..149: 115..129 may be in both
    people = pd.DataFrame({"bsn": pd.array(np.arange(100, 160), dtype="Int64"),
                           "inkomen": pd.array(np.arange(60) * 1000, dtype="Int64")})  # fmt: skip
    return {"ziekenhuis_a/opnamen": a, "ziekenhuis_b/opnamen": b, "brp/personen": people}


A, B = wp.scan("ziekenhuis_a/opnamen"), wp.scan("ziekenhuis_b/opnamen")


def _both(q: wp.LazyFrame, t: dict[str, pd.DataFrame], cluster: LocalCluster, k: int = 1,
          rules: wp.DisclosureRules = EXACT) -> pd.DataFrame:  # fmt: skip
    plain = wp.run_local(q, t, engine="plain", min_group_size=k, rules=rules, perturbation_key=7)
    mpc = wp.run_local(q, t, engine="mpc", min_group_size=k, rules=rules, perturbation_key=7, cluster=cluster)
    assert not frame_differences(mpc, plain)
    return plain


def _pandas_distinct(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each person's first row: hospital A's before B's, and within one hospital in its own order."""
    both = pd.concat([t["ziekenhuis_a/opnamen"].astype({"gemeente": str}),
                      t["ziekenhuis_b/opnamen"].astype({"gemeente": str})], ignore_index=True)  # fmt: skip
    return both[both["bsn"].notna()].drop_duplicates("bsn", keep="first")


def test_concat_stacks_rows_with_filters_before_it(cluster: LocalCluster) -> None:
    t = _tables()
    q = (
        wp.concat([A.filter(wp.col("leeftijd") >= 18), B.filter(wp.col("spoed"))])
        .group_by("gemeente")
        .agg(n=wp.count(), spoed=wp.col("spoed").sum(), oud=wp.col("leeftijd").max(), eerst=wp.col("opname").min())
    )
    got = _both(q, t, cluster).set_index("gemeente")
    a, b = t["ziekenhuis_a/opnamen"], t["ziekenhuis_b/opnamen"]
    rows = pd.concat([a[a["leeftijd"] >= 18].astype({"gemeente": str}), b[b["spoed"]].astype({"gemeente": str})])
    want = rows.groupby("gemeente").size()
    assert got.loc[want.index, "n"].astype(int).tolist() == want.tolist()  # NB: a code list of both hospitals
    assert set(got.index.dropna()) == set(GEMEENTEN_A) | set(GEMEENTEN_B)


def test_distinct_counts_each_person_once_and_keeps_the_first_hospitals_row(cluster: LocalCluster) -> None:
    t = _tables()
    people = wp.concat([A, B], distinct_on="bsn").join(wp.scan("brp/personen"), on="bsn", how="left")
    q = people.group_by("gemeente").agg(personen=wp.count(), leeftijd=wp.col("leeftijd").sum(),
                                        inkomen=wp.col("inkomen").sum(), spoed=wp.col("spoed").sum())  # fmt: skip
    got = _both(q, t, cluster).set_index("gemeente")
    first = _pandas_distinct(t)
    want = first.groupby("gemeente").agg(personen=("bsn", "size"), leeftijd=("leeftijd", "sum"))
    assert got.loc[want.index, "personen"].astype(int).tolist() == want["personen"].tolist()
    assert got.loc[want.index, "leeftijd"].astype(int).tolist() == want["leeftijd"].tolist()
    assert got["personen"].sum() == first["bsn"].nunique()  # NB: persons in both hospitals counted once


def test_a_distinct_concat_is_unique_on_its_key_as_a_joins_right_side(cluster: LocalCluster) -> None:
    t = _tables()
    admitted = wp.concat([A.select("bsn", "spoed"), B.select("bsn", "spoed")], distinct_on="bsn")
    q = (
        wp.scan("brp/personen")
        .join(admitted, on="bsn", how="left")
        .agg(personen=wp.count(), opgenomen=wp.col("spoed").count(), spoed=wp.col("spoed").sum())
    )
    got = _both(q, t, cluster)
    first = _pandas_distinct(t)
    assert int(got["opgenomen"].iloc[0]) == first["bsn"].nunique()
    assert int(got["spoed"].iloc[0]) == int(first["spoed"].sum())


def test_distinct_under_the_default_rules_equals_plain_with_record_keys_of_the_kept_rows(cluster: LocalCluster) -> None:
    a = _admissions(3, 300, np.arange(0, 200), GEMEENTEN_A)
    b = _admissions(4, 260, np.arange(120, 330), GEMEENTEN_B)
    t = {"ziekenhuis_a/opnamen": a, "ziekenhuis_b/opnamen": b}
    q = wp.concat([A, B], distinct_on="bsn").group_by("gemeente").agg(personen=wp.count(),
                                                                       spoed=wp.col("spoed").sum())  # fmt: skip
    rules = wp.DisclosureRules(person_keys=("bsn",), cells_per_source=False)  # NB: counts perturbed (rule 6)
    got = _both(q, t, cluster, k=10, rules=rules)
    assert (~got["suppressed"]).sum() >= 3


def test_attack_one_person_in_both_hospitals_is_not_revealed_by_distinct(cluster: LocalCluster) -> None:
    """An analyst who counts rows with and without distinct would learn that exactly one person is in both."""
    a = pd.DataFrame({"bsn": pd.array(np.arange(0, 40), dtype="Int64"),
                      "gemeente": pd.Categorical(["Assen"] * 20 + ["Emmen"] * 20)})  # fmt: skip
    b = pd.DataFrame({"bsn": pd.array([39, *range(100, 139)], dtype="Int64"),  # NB: only person 39 is in both
                      "gemeente": pd.Categorical(["Emmen"] + ["Assen"] * 19 + ["Emmen"] * 20)})  # fmt: skip
    t = {"ziekenhuis_a/opnamen": a, "ziekenhuis_b/opnamen": b}
    rules = wp.DisclosureRules(person_keys=("bsn",), counts="exact", cells_per_source=False)
    total = wp.concat([A, B], distinct_on="bsn").agg(personen=wp.count())
    got = _both(total, t, cluster, k=10, rules=rules)
    assert bool(got["suppressed"].iloc[0])  # NB: distinct removed 1 row: rule 5 withholds the whole result
    assert "complement rule" in str(got["reason"].iloc[0])
    # a cell of one person (in both hospitals) is withheld like any small cell, distinct or not
    cells = wp.concat([A, B], distinct_on="bsn").group_by("gemeente").agg(personen=wp.count())
    b2 = b.assign(gemeente=pd.Categorical(["Coevorden"] + ["Assen"] * 19 + ["Emmen"] * 20))
    a2 = a.assign(gemeente=pd.Categorical(["Assen"] * 20 + ["Emmen"] * 19 + ["Coevorden"]))
    few = dataclasses.replace(rules, complement=False)  # NB: the cell rule alone
    got = _both(cells, {"ziekenhuis_a/opnamen": a2, "ziekenhuis_b/opnamen": b2}, cluster, k=10, rules=few)
    row = got.set_index("gemeente").loc["Coevorden"]
    assert bool(row["suppressed"]) and pd.isna(row["personen"])
    # the honest count, without distinct, is released
    plain = wp.run_local(wp.concat([A, B]).agg(personen=wp.count()), t, engine="plain", min_group_size=10,
                         rules=rules)  # fmt: skip
    assert int(plain["personen"].iloc[0]) == 80


def test_distinct_concat_runs_bucketed_as_unbucketed(cluster: LocalCluster) -> None:
    """The same person is in the same bucket of every table, so distinct per bucket keeps the same rows."""
    t = _tables()
    q = (
        wp.concat([A, B.filter(wp.col("leeftijd") >= 10)], distinct_on="bsn")
        .group_by("gemeente")
        .agg(personen=wp.count(), leeftijd=wp.col("leeftijd").sum(), spoed=wp.col("spoed").sum())
    )
    plain = wp.run_local(q, t, engine="plain", min_group_size=1, rules=EXACT)
    bucketed = wp.run_local(q, t, engine="mpc", min_group_size=1, rules=EXACT, cluster=cluster, buckets=2)
    assert not frame_differences(bucketed, plain)


@st.composite
def _union_tables(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    def one(cats: list[str]) -> pd.DataFrame:
        n = draw(st.integers(0, 24))
        keys = draw(st.lists(st.one_of(st.none(), st.integers(0, 15)), min_size=n, max_size=n))
        return pd.DataFrame({
            "bsn": pd.array(keys, dtype="Int64"),
            "gemeente": pd.Categorical(draw(st.lists(st.sampled_from(cats), min_size=n, max_size=n)), categories=cats),
            "leeftijd": pd.array(draw(st.lists(st.one_of(st.none(), st.integers(0, 99)), min_size=n, max_size=n)),
                                 dtype="Int64"),
        })  # fmt: skip

    people = pd.DataFrame({"bsn": pd.array(range(0, 16), dtype="Int64"),
                           "inkomen": pd.array(draw(st.lists(st.integers(0, 9), min_size=16, max_size=16)),
                                               dtype="Int64")})  # fmt: skip
    return {"ziekenhuis_a/opnamen": one(GEMEENTEN_A), "ziekenhuis_b/opnamen": one(GEMEENTEN_B), "brp/personen": people}


@st.composite
def _union_plans(draw: st.DrawFn) -> wp.LazyFrame:
    a, b = A, B
    if draw(st.booleans()):
        a = a.filter(wp.col("leeftijd") >= 30)
    if draw(st.booleans()):
        b = b.filter(wp.col("gemeente") != "Emmen")
    q = wp.concat([a, b], distinct_on=draw(st.sampled_from([None, "bsn"])))
    if draw(st.booleans()):
        q = q.join(wp.scan("brp/personen"), on="bsn", how=draw(st.sampled_from(["inner", "left"])))
        aggs = {"n": wp.count(), "ink": wp.col("inkomen").sum(), "oud": wp.col("leeftijd").max()}
    else:
        aggs = {"n": wp.count(), "nk": wp.col("bsn").count(), "sl": wp.col("leeftijd").sum()}
    return q.group_by("gemeente").agg(**aggs)


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(t=_union_tables(), q=_union_plans())
def test_union_mpc_equals_plain_on_random_tables_and_plans(cluster: LocalCluster, t: dict[str, pd.DataFrame],
                                                            q: wp.LazyFrame) -> None:  # fmt: skip
    _both(q, t, cluster)


def test_the_union_rule_withholds_the_same_cells_as_plain(cluster: LocalCluster) -> None:
    """Each input adds 0 or >= k rows (without distinct), persons and only persons (distinct) to a cell."""
    g = ["Assen", "Emmen", "Meppel"]
    a = pd.DataFrame({"bsn": pd.array(np.arange(0, 60), dtype="Int64"),
                      "gemeente": pd.Categorical(np.repeat(g, 20), categories=g),
                      "spoed": pd.array([True, False] * 30, dtype="boolean")})  # fmt: skip
    # B: in Assen 10 persons also in A and one of its own (500), in Emmen 11 and in Meppel 3 of its own
    b = pd.DataFrame({"bsn": pd.array([*range(10), 500, *range(200, 211), 300, 301, 302], dtype="Int64"),
                      "gemeente": pd.Categorical(["Assen"] * 11 + ["Emmen"] * 11 + ["Meppel"] * 3, categories=g),
                      "spoed": pd.array([True] * 25, dtype="boolean")})  # fmt: skip
    t = {"ziekenhuis_a/opnamen": a, "ziekenhuis_b/opnamen": b}
    rules = wp.DisclosureRules(person_keys=("bsn",), counts="exact", cells_per_source=False, secondary=False)
    union = "an input of the union adds between 1 and 9 rows or persons to it (the union rule)"
    rows = wp.concat([A, B]).group_by("gemeente").agg(n=wp.count(), spoed=wp.col("spoed").sum())
    got = _both(rows, t, cluster, k=10, rules=rules).set_index("gemeente")
    assert got.loc[["Assen", "Emmen"], "n"].tolist() == [31, 31] and got.loc["Meppel", "reason"] == union
    persons = wp.concat([A, B], distinct_on="bsn").group_by("gemeente").agg(n=wp.count())
    got = _both(persons, t, cluster, k=10, rules=rules).set_index("gemeente")
    assert got.loc["Emmen", "n"] == 31 and got.loc["Meppel", "reason"] == union
    assert got.loc["Assen", "reason"] == union  # NB: B has 11 persons in Assen, but only one that A does not have
