"""The union rule (docs/disclosure.md, rule 5): a union's inputs are different tables, each adds 0 or >= k to a cell.

Plain executor (the oracle; tests/mpc/test_concat.py holds the MPC to it). Each attack is also shown to
leak with the rule off (``complement = False``), so that a passing test is the rule's doing.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.exceptions import PlanError

A, B, C = wp.scan("ziekenhuis_a/opnamen"), wp.scan("ziekenhuis_b/opnamen"), wp.scan("ziekenhuis_c/opnamen")
P = wp.scan("brp/personen")
# NB: counts exact and no secondary suppression, so that a released cell shows its exact count
RULES = wp.DisclosureRules(person_keys=("bsn",), counts="exact", cells_per_source=False, secondary=False)
OFF = dataclasses.replace(RULES, complement=False)
UNION = "an input of the union adds between 1 and 9 rows or persons to it (the union rule)"


def _table(bsn: list[int], gemeente: list[str], kosten: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "bsn": pd.array(bsn, dtype="Int64"),
        "gemeente": pd.Categorical(gemeente, categories=["Assen", "Emmen"]),
        "kosten": pd.array(kosten if kosten is not None else [100] * len(bsn), dtype="Int64"),
    })  # fmt: skip


def _tables(a: pd.DataFrame, b: pd.DataFrame, c: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    people = pd.DataFrame({"bsn": pd.array(np.arange(0, 1000), dtype="Int64"), "inkomen": np.arange(1000)})
    out = {"ziekenhuis_a/opnamen": a, "ziekenhuis_b/opnamen": b, "brp/personen": people}
    return out if c is None else {**out, "ziekenhuis_c/opnamen": c}


def _run(q: wp.LazyFrame, t: dict[str, pd.DataFrame], rules: wp.DisclosureRules = RULES) -> pd.DataFrame:
    got = wp.run_local(q, t, engine="plain", min_group_size=10, rules=rules)
    return got.set_index("gemeente") if "gemeente" in got.columns else got


def test_a_dataset_stacked_on_itself_or_read_by_two_inputs_is_refused() -> None:
    t = _tables(_table(list(range(30)), ["Assen"] * 30), _table(list(range(100, 130)), ["Emmen"] * 30))
    for q, where in ((wp.concat([A, A]), "1 and by input 2"),
                     (wp.concat([A, B, A.filter(wp.col("kosten") > 5)]), "1 and by input 3"),
                     (wp.concat([A, wp.concat([B, A])]), "1 and by input 2")):  # fmt: skip
        with pytest.raises(PlanError, match=f"concat: the rows of ziekenhuis_a/opnamen are read by input {where}"):
            _run(q.group_by("gemeente").agg(n=wp.count()), t)
    # a lookup joined by every input (a join's right side) adds columns, not rows: allowed
    lookup = wp.concat([A.join(P, on="bsn"), B.join(P, on="bsn")]).group_by("gemeente").agg(n=wp.count())
    got = _run(lookup, t)
    assert got.loc[["Assen", "Emmen"], "n"].tolist() == [30, 30]


def test_an_input_adding_1_to_k_minus_1_rows_to_a_cell_withholds_that_cell() -> None:
    a = _table(list(range(40)), ["Assen"] * 20 + ["Emmen"] * 20, [100] * 40)
    b = _table(list(range(100, 113)), ["Assen"] * 10 + ["Emmen"] * 3, [100] * 10 + [777, 1, 1])
    t = _tables(a, b)
    q = wp.concat([A, B]).group_by("gemeente").agg(n=wp.count(), kosten=wp.col("kosten").sum())
    got = _run(q, t)
    assert got.loc["Assen", "n"] == 30 and not got.loc["Assen", "suppressed"]  # NB: B adds 10 = k: released
    assert (
        got.loc["Emmen", "suppressed"] and pd.isna(got.loc["Emmen", "kosten"]) and got.loc["Emmen", "reason"] == UNION
    )
    leak = _run(q, t, OFF)  # NB: without the rule: 23 rows, released; minus A's 20 is B's three
    assert leak.loc["Emmen", "kosten"] == 2000 + 779
    # one input missing from a cell altogether (0 rows) is fine
    only_a = _run(wp.concat([A, B]).group_by("gemeente").agg(n=wp.count()), _tables(a, b.iloc[:10]))
    assert only_a.loc["Emmen", "n"] == 20 and only_a.loc["Assen", "n"] == 30
    # after a join and a filter on the spine, an input's rows are counted where they reach the cells
    a2 = _table(list(range(40)), ["Assen"] * 20 + ["Emmen"] * 20, [9999] * 7 + [100] * 33)
    b2 = _table(list(range(100, 113)), ["Assen"] * 10 + ["Emmen"] * 3, [100] * 10 + [6000] * 3)
    stacked = wp.concat([A, B]).join(P, on="bsn")
    got = _run(stacked.group_by("gemeente").agg(n=wp.count()), _tables(a2, b2))
    assert got.loc["Emmen", "reason"] == UNION and got.loc["Assen", "n"] == 30
    got = _run(stacked.filter(wp.col("kosten") < 5000).group_by("gemeente").agg(n=wp.count()), _tables(a2, b2))
    assert got.loc[["Assen", "Emmen"], "n"].tolist() == [23, 20]  # NB: B's three Emmen rows do not reach it


def test_distinct_checks_each_inputs_persons_and_its_only_persons_per_cell() -> None:
    a = _table(list(range(30)), ["Emmen"] * 30)
    shared = _table([*range(11), 500], ["Emmen"] * 12)  # NB: 11 persons also in A, one (500) only in B
    q = wp.concat([A, B], distinct_on="bsn").group_by("gemeente").agg(n=wp.count())
    got = _run(q, _tables(a, shared))
    assert got.loc["Emmen", "suppressed"] and got.loc["Emmen", "reason"] == UNION  # NB: B's only persons: 1
    assert _run(q, _tables(a, shared), OFF).loc["Emmen", "n"] == 31  # NB: the union without B has 30: person 500
    few = _table([*range(5), *range(5)], ["Emmen"] * 10)  # NB: 5 persons (10 rows), all also in A: B's persons 5
    assert _run(q, _tables(a, few)).loc["Emmen", "reason"] == UNION
    own = _table(list(range(500, 512)), ["Emmen"] * 12)  # NB: 12 persons of B's own, A's 30 also its own
    assert _run(q, _tables(a, own)).loc["Emmen", "n"] == 42
    twice = _table([*range(12), *range(12)], ["Emmen"] * 24)  # NB: 12 persons, 2 rows each, all also in A
    assert _run(q, _tables(a, twice)).loc["Emmen", "n"] == 30  # NB: B's persons 12, its only persons 0


def test_a_union_whose_rows_reach_no_cell_is_checked_on_the_whole_result() -> None:
    a = _table(list(range(40)), ["Assen"] * 20 + ["Emmen"] * 20)
    b = _table(list(range(100, 103)), ["Emmen"] * 3)
    t = _tables(a, b)
    admitted = wp.concat([A.select("bsn", "kosten"), B.select("bsn", "kosten")], distinct_on="bsn")
    q = P.filter(wp.col("bsn") < 0).join(admitted, on="bsn", how="left")  # NB: refused below: bsn is a key
    with pytest.raises(PlanError):
        _run(q.agg(n=wp.count()), t)
    right = A.select("bsn", "gemeente").join(admitted, on="bsn", how="left").group_by("gemeente")
    got = _run(right.agg(n=wp.count(), kosten=wp.col("kosten").sum()), t)
    assert got["suppressed"].all() and got["reason"].eq("the whole result: " + UNION).all()
    assert not _run(right.agg(n=wp.count()), t, OFF)["suppressed"].loc[["Assen", "Emmen"]].any()
    per_person = wp.concat([A, B]).group_by("bsn").agg(m=wp.count())
    got = _run(P.join(per_person, on="bsn").agg(n=wp.count()), t)
    assert bool(got["suppressed"].iloc[0]) and got["reason"].iloc[0] == "the whole result: " + UNION
    ok = _tables(a, _table(list(range(100, 112)), ["Emmen"] * 12))  # NB: B adds 12 rows: released
    assert int(_run(P.join(per_person, on="bsn").agg(n=wp.count()), ok)["n"].iloc[0]) == 52


def test_three_inputs_each_held_to_k_per_cell() -> None:
    a = _table(list(range(30)), ["Assen"] * 15 + ["Emmen"] * 15)
    b = _table(list(range(100, 120)), ["Assen"] * 10 + ["Emmen"] * 10)
    c = _table(list(range(200, 211)), ["Assen"] * 10 + ["Emmen"] * 1)
    got = _run(wp.concat([A, B, C]).group_by("gemeente").agg(n=wp.count()), _tables(a, b, c))
    assert got.loc["Assen", "n"] == 35 and got.loc["Emmen", "reason"] == UNION


def test_a_column_named_like_the_union_rules_own_is_refused() -> None:
    """A computed column of that name would overwrite an input's tag and hide its rows from the rule."""
    t = _tables(_table(list(range(30)), ["Assen"] * 30), _table(list(range(100, 103)), ["Emmen"] * 3))
    for name in ("__union:1", "__union_only:0", "__union1"):
        q = wp.concat([A, B]).with_columns(**{name: wp.lit(0)}).group_by("gemeente").agg(n=wp.count())
        with pytest.raises(PlanError, match="reserved for the union rule"):
            _run(q, t)
