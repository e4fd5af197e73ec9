"""Rule 9 inside the MPC: registered cells recomputed in the same run; the same decisions as the plain executor.

The queries are those of tests/compile/test_register.py: for each attack, the first request is
released and registered, the second (one person more or less) is withheld as a whole (REGISTER),
by both executors; the same query twice passes.
"""

from __future__ import annotations

import pandas as pd
import pytest

import werkplaats as wp
from tests.compile.test_register import ATTACKS, REGISTER_ONLY, TABLES, K, age_range, whole_withheld
from werkplaats.compile.register import Register
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc


def both(cluster: LocalCluster, q: wp.LazyFrame, plain_reg: Register, mpc_reg: Register) -> pd.DataFrame:
    """Run q on both executors, each with its own register; assert they agree; return the MPC's result."""
    want = wp.run_local(q, TABLES, engine="plain", min_group_size=K, rules=REGISTER_ONLY, register=plain_reg)
    got = wp.run_local(q, TABLES, engine="mpc", min_group_size=K, rules=REGISTER_ONLY, register=mpc_reg,
                       cluster=cluster)  # fmt: skip
    assert frame_differences(got, want) == []
    assert list(got["reason"]) == list(want["reason"])
    assert plain_reg.entries == mpc_reg.entries
    return got


@pytest.mark.parametrize("name", ["age_range", "joined", pytest.param("per_person", marks=pytest.mark.slow)])
def test_differencing_by_one_person_is_withheld_in_the_mpc(cluster: LocalCluster, name: str) -> None:
    first, second = ATTACKS[name]
    plain_reg, mpc_reg = Register(), Register()
    assert not whole_withheld(both(cluster, first, plain_reg, mpc_reg)) and len(mpc_reg) == 1
    assert whole_withheld(both(cluster, second, plain_reg, mpc_reg))
    assert len(mpc_reg) == 1


def test_the_same_query_twice_passes_in_the_mpc(cluster: LocalCluster) -> None:
    plain_reg, mpc_reg = Register(), Register()
    first = both(cluster, age_range(60), plain_reg, mpc_reg)
    again = both(cluster, age_range(60), plain_reg, mpc_reg)
    assert not whole_withheld(again) and frame_differences(first, again) == []
    assert len(mpc_reg) == 2
