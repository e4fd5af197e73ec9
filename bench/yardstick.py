"""The sort yardstick: SPU's bare secret sort of n distinct keys, timed on a local cluster.

It shows what the secure sort alone costs at a size, so that a workload's time can be
read against it (W1 sorts 2n keys in its join). The parties run it as their one
built-in program (`werkplaats.mpc.process.SORT_YARDSTICK`); the keys are random, not data.
"""

from __future__ import annotations

import time
import uuid

import numpy as np

from werkplaats.exceptions import MPCError
from werkplaats.mpc.cluster import JobStats, LocalCluster
from werkplaats.mpc.process import SORT_YARDSTICK, PartyHeader
from werkplaats.mpc.runtime import enable_x64
from werkplaats.mpc.share import reconstruct_arrays, share_arrays


def run_sort_yardstick(cluster: LocalCluster, size: int, *, seed: int = 0) -> JobStats:
    """Time SPU's secret sort of `size` distinct keys on the cluster; check its smallest key."""
    enable_x64()
    rng = np.random.default_rng(seed)
    keys = rng.permutation(size).astype(np.int64) * 7 + 3
    shares = share_arrays([keys, np.arange(size, dtype=np.int64)])
    t0 = time.perf_counter()
    outs, stats = cluster.run(PartyHeader(job=uuid.uuid4().hex, program=SORT_YARDSTICK, size=size), shares)
    smallest = reconstruct_arrays(outs)[0]
    if int(smallest.ravel()[0]) != int(keys.min()):
        msg = "sort yardstick returned a wrong minimum"
        raise MPCError(msg)
    return JobStats(time.perf_counter() - t0, 0.0, stats)
