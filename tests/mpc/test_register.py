"""Rule 9 inside the MPC: registered cells recomputed in the same run; the same decisions as the plain executor.

The queries are those of tests/compile/test_register.py: for each attack, the first request is
released and registered, the second (one person more or less) is withheld as a whole (REGISTER),
by both executors; the same query twice passes.
"""

from __future__ import annotations

import pandas as pd
import pytest

import werkplaats as wp
from tests.compile.test_register import (
    ATTACKS,
    REGISTER_ONLY,
    TABLES,
    K,
    age_range,
    grown,
    per_gemeente,
    released_at,
    whole_withheld,
)
from werkplaats.compile.register import Register, RegisterEntry
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


def _cached(c: LocalCluster) -> list[bool]:
    assert c.last_stats is not None
    return [bool(p["program_cached"]) for p in c.last_stats.parties]


def test_other_releases_of_the_same_cells_reuse_the_program_and_decide_afresh(cluster: LocalCluster) -> None:
    # NB: the table now has 5 people in A, 2 in B; released earlier: A (at k = 5, of 6), B (at k = 10, of 12)
    now = grown(5, 2)
    only_a, only_b = released_at(grown(6, 2), 5), released_at(grown(3, 12), 10)

    def run(entries: list[RegisterEntry]) -> tuple[pd.DataFrame, list[bool]]:
        want = wp.run_local(per_gemeente(), now, engine="plain", min_group_size=K, rules=REGISTER_ONLY,
                            register=Register(entries))  # fmt: skip
        got = wp.run_local(per_gemeente(), now, engine="mpc", min_group_size=K, rules=REGISTER_ONLY,
                           register=Register(entries), cluster=cluster)  # fmt: skip
        assert frame_differences(got, want) == [] and list(got["reason"]) == list(want["reason"])
        return got, _cached(cluster)

    first, _ = run([])  # NB: compiled here, or by an earlier run of this plan: the cache is the session's
    assert not whole_withheld(first) and int(first["n"][0]) == 5
    again, cached = run([only_a])  # NB: A then and now: the same cell, so no difference
    assert cached == [True] * 3 and not whole_withheld(again)
    # B released at k = 10 and A (5) now differ by 5 + 2 rows, fewer than 10: withheld, by the same program
    withheld, cached = run([only_b])
    assert cached == [True] * 3 and whole_withheld(withheld)
    assert "differs from a cell of an earlier released result" in withheld["reason"][0]


def test_every_release_is_checked_however_many_there_are(cluster: LocalCluster) -> None:
    # NB: an attacker hides the release that matters behind many harmless ones: it must not fall off the end
    now = grown(5, 2)
    only_a, only_b = released_at(grown(6, 2), 5), released_at(grown(3, 12), 10)
    many = [only_a] * 40 + [only_b]
    want = wp.run_local(per_gemeente(), now, engine="plain", min_group_size=K, rules=REGISTER_ONLY,
                        register=Register(many))  # fmt: skip
    got = wp.run_local(per_gemeente(), now, engine="mpc", min_group_size=K, rules=REGISTER_ONLY,
                       register=Register(many), cluster=cluster)  # fmt: skip
    assert whole_withheld(want) and whole_withheld(got) and list(got["reason"]) == list(want["reason"])
