"""The merge join under MPC: owner-sorted inputs give the plain executor's result; unsorted ones are withheld.

Every join whose both sides arrive sorted (compile/order.py) is merged (kernels/merge.py), so the
differential tests (test_differential.py) run it too; these cases aim at its edges: right keys
masked out by a filter, missing keys on both sides, a left join, and an owner that did not sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
import werkplaats.mpc.encode as encode_mod
from werkplaats.catalog.schema import infer_schema
from werkplaats.compile import order
from werkplaats.compile.kernels.merge import METHOD_ENV
from werkplaats.local import prepare
from werkplaats.mpc import LocalCluster
from werkplaats.result import UNSORTED, frame_differences, reason_text

pytestmark = pytest.mark.mpc


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """Parties that merge every join whose inputs arrive sorted, small ones too (kernels/merge.use_merge)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(METHOD_ENV, "merge")  # NB: the parties read it; they inherit the environment when spawned
        with LocalCluster() as c:
            yield c


RULES = wp.DisclosureRules.cells_only()


def _tables() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 60
    left = pd.DataFrame({
        "k": pd.array([None if i % 9 == 0 else int(v) for i, v in enumerate(rng.integers(0, 30, n))], dtype="Int64"),
        "g": pd.Categorical(rng.choice(list("abcde"), n), categories=list("abcde")),
        "x": rng.integers(0, 100, n),
    })  # fmt: skip
    # NB: the source is unique on its key (validated); the filter masks keys 25..39 out, secretly
    rk = [*range(40), None, None]
    right = pd.DataFrame({
        "k": pd.array(rk, dtype="Int64"),
        "y": [*range(40), 4, 6],
        "z": rng.random(42) < 0.5,
    })  # fmt: skip
    return {"left": left, "right": right.sample(frac=1.0, random_state=1).reset_index(drop=True)}


def _query(how: str) -> wp.LazyFrame:
    r = wp.scan("right").filter(wp.col("y") < 25)
    aggs = {"n": wp.count(), "sy": wp.col("y").sum(), "nz": wp.col("z").sum(), "sx": wp.col("x").sum()}
    return wp.scan("left").join(r, on="k", how=how).group_by("g").agg(**aggs)


@pytest.mark.parametrize("how", ["inner", "left"])
def test_merge_join_equals_plain(cluster: LocalCluster, how: str) -> None:
    t = _tables()
    a, _ = prepare(_query(how), t, min_group_size=1, rules=RULES)
    assert order.merges(a, order._joins(a.plan.root)[0])
    plain = wp.run_local(_query(how), t, min_group_size=1, rules=RULES)
    mpc = wp.run_local(_query(how), t, engine="mpc", cluster=cluster, min_group_size=1, rules=RULES)
    assert frame_differences(mpc, plain) == []
    assert mpc["n"].sum() > 0


def test_an_owner_that_does_not_sort_gets_the_result_withheld(cluster: LocalCluster,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Attacker: an owner sends its rows in another order than the plan's; the engines detect it inside the MPC."""
    t = _tables()

    def reverse(a, dataset, slots, arrays):  # type: ignore[no-untyped-def]
        got = order.order_rows(a, dataset, slots, arrays)
        return [x[::-1] for x in got] if dataset == "left" else got

    monkeypatch.setattr(encode_mod, "order_rows", reverse)
    mpc = wp.run_local(_query("inner"), t, engine="mpc", cluster=cluster, min_group_size=1, rules=RULES)
    assert mpc["n"].isna().all()
    assert mpc["reason"].str.contains(reason_text(UNSORTED, 1), regex=False).all()


def test_a_bucketed_merge_join_with_padding_rows_equals_plain(cluster: LocalCluster) -> None:
    """Two buckets: each owner sorts every padded bucket; padding rows (ROW 0, all zero) sort first and never match."""
    rng = np.random.default_rng(3)
    people = rng.choice(10**9, 80, replace=False)
    left = pd.DataFrame({"bsn": people[:60], "g": pd.Categorical(rng.choice(list("abcd"), 60)),
                         "x": rng.integers(0, 100, 60)})  # fmt: skip
    right = pd.DataFrame({"bsn": people[20:], "y": rng.integers(0, 50, 60), "z": rng.random(60) < 0.5})
    t = {"left": left, "right": right}
    schemas = {}
    for name, df in t.items():
        s = infer_schema(name, df)
        schemas[name] = replace(s, columns=tuple(replace(c, role="person_key" if c.name == "bsn" else "")
                                                 for c in s.columns))  # fmt: skip
    q = (wp.scan("left").join(wp.scan("right").filter(wp.col("y") < 40), on="bsn", how="inner")
         .group_by("g").agg(n=wp.count(), sy=wp.col("y").sum(), nz=wp.col("z").sum()))  # fmt: skip
    plain = wp.run_local(q, t, schemas=schemas, min_group_size=1, rules=RULES)
    mpc = wp.run_local(q, t, engine="mpc", cluster=cluster, schemas=schemas, min_group_size=1, rules=RULES, buckets=2)
    assert frame_differences(mpc, plain) == []
    assert mpc["n"].sum() > 0
