"""Scale-out (mpc/scaleout.py): each party runs its buckets on its own Dask workers.

The cheap test runs the bucket runtime's two-stage self-test program on two workers per party;
the slow one runs W1-like data in 4 buckets on 1 and 2 workers per party and the plain executor
(``pytest -m slow tests/mpc/test_scaleout.py -s`` prints the times).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest

import werkplaats as wp
from tests.mpc.test_buckets import _query, _w1
from werkplaats.exceptions import MPCError
from werkplaats.mpc import LocalCluster
from werkplaats.mpc.process import STAGED_SELFTEST, WORLD, PartyHeader
from werkplaats.mpc.scaleout import group_buckets, group_of
from werkplaats.mpc.share import reconstruct_arrays, share_arrays


def test_buckets_go_round_robin_to_the_worker_groups() -> None:
    assert [group_of(b, 2) for b in range(5)] == [0, 1, 0, 1, 0]
    assert group_buckets(0, 2, 4) == [0, 2] and group_buckets(1, 2, 4) == [1, 3]
    assert group_buckets(3, 4, 2) == []  # NB: more workers than buckets: that group gets none
    assert sorted(b for w in range(3) for b in group_buckets(w, 3, 8)) == list(range(8))


def test_a_scale_out_header_round_trips_and_needs_every_group() -> None:
    groups = (("h:1", "h:2", "h:3"), ("h:4", "h:5", "h:6"))
    h = PartyHeader(job="j", program=STAGED_SELFTEST[0], size=8, buckets=4, workers=2, scheduler="tcp://h:9",
                    worker_addrs=groups)  # fmt: skip
    assert PartyHeader.from_dict(h.to_dict()) == h
    bad = {**h.to_dict(), "worker_addrs": [list(groups[0])]}
    with pytest.raises(ValueError, match="scale-out"):
        PartyHeader.from_dict(bad)


def _stream(parts: list[np.ndarray], size: int):  # type: ignore[no-untyped-def]
    for v in parts:
        row = (np.arange(size) < len(v)).astype(np.int64)
        vals = np.zeros(size, dtype=np.int64)
        vals[: len(v)] = v
        yield share_arrays([row, vals])


def _check_isolation(c: LocalCluster, stats: list[dict[str, Any]], workers: int, buckets: int) -> None:
    """Every worker holds only its own party's shares: its rank, its own scheduler, its group's peers only."""
    schedulers = [d.scheduler_address for d in c.dask]
    own_workers = [set(d.scheduler_info["workers"]) for d in c.dask]
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert not own_workers[i] & own_workers[j] and schedulers[i] != schedulers[j]
    seen_groups: dict[int, list[list[str]]] = {}
    for rank, s in enumerate(stats):
        infos = s["workers"]
        assert len(infos) == min(workers, buckets)
        assert sorted(b for w in infos for b in w["buckets"]) == list(range(buckets))
        pids = {w["pid"] for w in infos}
        assert len(pids) == len(infos)  # NB: one worker process per group
        for w in infos:
            assert w["rank"] == rank  # NB: it runs (and holds shares) as its party only
            assert w["scheduler"] == schedulers[rank] and w["worker"] in own_workers[rank]
            assert w["buckets"] == group_buckets(w["group"], workers, buckets)
            assert w["link"].endswith(f"-w{w['group']}")
            seen_groups.setdefault(w["group"], []).append(w["addrs"])
            assert len(w["stage_s"]) == s["stages"]
    for addrs in seen_groups.values():  # NB: worker w of each party links with worker w of the others, nobody else
        assert len(addrs) == WORLD and all(a == addrs[0] for a in addrs)
        assert len(set(addrs[0])) == WORLD
    every = [a for addrs in seen_groups.values() for a in addrs[0]]
    assert len(set(every)) == len(every)  # NB: no address shared by two groups or parties
    assert not set(every) & set(c.last_addrs)  # NB: and none of them is a party's own link


@pytest.mark.mpc
def test_two_workers_per_party_run_the_self_test_and_hold_only_their_party_s_shares() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 50, k) for k in (100, 0, 37, 128)]
    v = np.concatenate(parts)
    with LocalCluster(workers=2) as c:
        h = PartyHeader(job=uuid.uuid4().hex, program=STAGED_SELFTEST[1], size=128, buckets=len(parts))
        outs, stats = c.run(h, [[], [], []], buckets=_stream(parts, 128), timeout=300)
        got = [int(x[0]) for x in reconstruct_arrays(outs)]
        assert got[1:] == [len(v), int(v.sum()), int(v.max()), int(((v * len(v) - v.sum()) ** 2).sum())]
        _check_isolation(c, stats, 2, len(parts))


@pytest.mark.slow  # NB: 20 s (a Dask cluster of 3 workers per party starts to be refused)
def test_run_mpc_refuses_a_cluster_with_another_worker_count() -> None:
    from werkplaats.local import prepare
    from werkplaats.mpc.cluster import run_mpc

    a, checked = prepare(_query(), _w1(50))
    with pytest.raises(MPCError, match="3 workers per party, not 2"):
        run_mpc(a, checked, cluster=LocalCluster(workers=3), workers=2)


# --- W1-like data: 1 vs 2 workers per party vs plain (slow) -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n", [20_000])
def test_w1_on_two_workers_per_party_equals_one_worker_and_plain(n: int) -> None:
    from werkplaats.result import frame_differences

    t = _w1(n)
    kw: dict[str, Any] = {"min_group_size": 5, "perturbation_key": 7}
    plain = wp.run_local(_query(), t, **kw)
    results, times = {}, {}
    for workers in (1, 2):
        with LocalCluster(workers=workers) as c:
            wp.run_local(_query(), t, engine="mpc", cluster=c, buckets=4, **kw)  # NB: compiles (cached after)
            t0 = time.perf_counter()
            results[workers] = wp.run_local(_query(), t, engine="mpc", cluster=c, buckets=4, **kw)
            times[workers] = time.perf_counter() - t0
            assert c.last_stats is not None and c.last_stats.buckets == 4
            if workers > 1:
                _check_isolation(c, c.last_stats.parties, workers, 4)
            peak = max(s["peak_rss"] for s in c.last_stats.parties)
            wpeak = max((w["peak_rss"] for s in c.last_stats.parties for w in s.get("workers", [])), default=0)
            print(f"\nW1 n={n}, 4 buckets, {workers} worker(s) per party: {times[workers]:.1f} s; peak RSS: "
                  f"coordinators {peak / 2**20:.0f} MiB, workers {wpeak / 2**20:.0f} MiB")  # fmt: skip
    assert not frame_differences(results[1], plain)
    assert not frame_differences(results[2], plain)
    assert not frame_differences(results[2], results[1])
