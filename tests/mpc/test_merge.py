"""The merge join under MPC: owner-sorted inputs give the plain executor's result; unsorted ones are withheld.

Every join whose both sides arrive sorted (compile/order.py) is merged (kernels/merge.py), so the
differential tests (test_differential.py) run it too; these cases aim at its edges: right keys
masked out by a filter, missing keys on both sides, a left join, and an owner that did not sort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
import werkplaats.mpc.encode as encode_mod
from werkplaats.compile import order
from werkplaats.local import prepare
from werkplaats.mpc import LocalCluster
from werkplaats.result import UNSORTED, frame_differences, reason_text

pytestmark = pytest.mark.mpc

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
