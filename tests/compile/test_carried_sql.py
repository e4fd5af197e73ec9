"""The plain executor's hidden columns: each row's person key (rule 6's record keys) and its position (distinct).

PlainCompiler carries one hidden column for a subclass through filters, computed columns, selections,
a join's left side and a concat's stack; these tests read the column back and hold it to what the
rows are, and check that the plain compiler's own queries never carry it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

import werkplaats as wp
from werkplaats.compile.perturb import PK, KeyedSql
from werkplaats.compile.plain import PART_STRIDE, POS, PlainCompiler, _Positioned, run_sql
from werkplaats.local import prepare
from werkplaats.plan import nodes as n

RULES = dataclasses.replace(wp.DisclosureRules(), person_keys=("bsn",))
A, B, P = wp.scan("a"), wp.scan("b"), wp.scan("p")


def _tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(3)
    a = pd.DataFrame({"bsn": pd.array(rng.choice(np.arange(100, 120), 30), dtype="Int64"),
                      "g": pd.Categorical(rng.choice(["x", "y"], 30), categories=["x", "y"]),
                      "v": rng.integers(0, 50, 30)})  # fmt: skip
    b = a.sample(frac=1.0, random_state=1).assign(bsn=lambda d: d["bsn"] + 10).reset_index(drop=True)
    b.loc[3, "bsn"] = pd.NA  # NB: a row without a person key
    p = pd.DataFrame({"bsn": pd.array(np.arange(100, 140), dtype="Int64"), "w": np.arange(40)})
    return {"a": a, "b": b, "p": p}


def _rows(q: wp.LazyFrame, compiler: type[PlainCompiler]) -> pd.DataFrame:
    """Return the rows of the final aggregate's input with the compiler's hidden column."""
    a, checked = prepare(q, _tables(), min_group_size=1, rules=RULES)
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    return run_sql(compiler(a).visit(root.input), checked)


def test_keyed_rows_carry_their_person_key_through_filters_columns_and_a_join() -> None:
    q = (A.filter(wp.col("v") >= 10).with_columns(v=wp.col("v") + 1, hoog=wp.col("v") >= 30)
         .join(P, on="bsn", how="left").select("bsn", "g", "w")
         .group_by("g").agg(n=wp.col("bsn").count(), w=wp.col("w").sum()))  # fmt: skip
    got = _rows(q, KeyedSql)
    assert list(got.columns) == ["bsn", "g", "w", PK]
    assert len(got) == int((_tables()["a"]["v"] >= 10).sum())
    assert got[PK].astype("Int64").equals(got["bsn"].astype("Int64"))


def test_keyed_rows_after_a_person_key_group_by_and_a_distinct_concat_carry_that_key() -> None:
    per_person = A.group_by("bsn").agg(k=wp.count()).with_columns(veel=wp.col("k") >= 2)
    got = _rows(per_person.group_by("veel").agg(n=wp.col("bsn").count()), KeyedSql)
    assert got[PK].astype("Int64").equals(got["bsn"].astype("Int64"))
    assert got["bsn"].is_unique
    once = wp.concat([A, B], distinct_on="bsn")
    got = _rows(once.group_by("g").agg(n=wp.count()), KeyedSql)
    t = _tables()
    persons = set(t["a"]["bsn"].dropna()) | set(t["b"]["bsn"].dropna())
    assert sorted(got[PK].astype(int)) == sorted(persons)  # NB: each person once, none without a key


def test_keyed_rows_of_a_group_by_on_another_key_carry_no_person_key() -> None:
    got = _rows(A.group_by("g").agg(k=wp.count()).group_by("g").agg(n=wp.count()), KeyedSql)
    assert got[PK].isna().all()


def test_positions_follow_the_stacking_order_through_computed_columns() -> None:
    q = (
        wp.concat([A.with_columns(v=wp.col("v") * 2), B.filter(wp.col("v") >= 5)])
        .group_by("g")
        .agg(v=wp.col("v").sum())
    )
    got = _rows(q, _Positioned)
    assert POS in got.columns and got[POS].is_unique
    t = _tables()
    part = got[POS].to_numpy() // PART_STRIDE  # NB: the input a row comes from (then its position in it)
    assert (part == 0).sum() == len(t["a"]) and (part == 1).sum() == int((t["b"]["v"] >= 5).sum())
    first = got[part == 0].sort_values(POS)
    assert first["v"].tolist() == (t["a"]["v"] * 2).tolist()


def test_the_plain_compilers_own_queries_carry_no_hidden_column() -> None:
    q = wp.concat([A.with_columns(u=wp.col("v") + 1).join(P, on="bsn"),
                   B.with_columns(u=wp.col("v")).join(P, on="bsn")], distinct_on="bsn")  # fmt: skip
    a, checked = prepare(q.group_by("g").agg(u=wp.col("u").sum(), w=wp.col("w").sum()), _tables(), min_group_size=1,
                         rules=RULES)  # fmt: skip
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    rel = root.input
    got = run_sql(PlainCompiler(a).visit(rel), checked)
    assert list(got.columns) == list(a.schema(rel))
