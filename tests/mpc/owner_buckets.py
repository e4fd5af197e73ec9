"""Buckets as the owners make them, for the staged-program tests (tests/mpc/test_staged*.py).

Every table's rows are split by a test hash of the person key (the owners' is keyed: `mpc.buckets.assign`),
and each bucket is encoded by `mpc.encode.encode` against ``layout(padded, bucketed=True)``, as an owner
encodes it: its real rows, then all-zero rows up to the padded size, the ROW slot 1 on real rows only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from werkplaats.compile.analyze import Analysis
from werkplaats.compile.layout import ROW, Slot, layout
from werkplaats.mpc.encode import encode


def bucket_of(keys: pd.Series, count: int) -> np.ndarray:
    """Return a test hash of the person key mod count (the real one is keyed: mpc/buckets.py)."""
    h = (keys.to_numpy(dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    return (h % np.uint64(count)).astype(np.int64)


def bucket_inputs(
    a: Analysis,
    tables: dict[str, pd.DataFrame],
    count: int,
    key: str = "bsn",
    pad: int = 2,
    raw: dict[str, pd.DataFrame] | None = None,
) -> tuple[list[Slot], list[list[np.ndarray]], dict[str, int]]:
    """Return the bucketed slots, per bucket the encoded inputs (in slot order), and the padded sizes.

    A dataset's padded size is its fullest bucket's rows plus pad. raw: the owners' whole tables, for the
    person key where the plan does not read it (same rows, same order).
    """
    which = {ds: bucket_of((df if key in df else (raw or {})[ds])[key], count) for ds, df in tables.items()}
    parts = {ds: [df[which[ds] == b].reset_index(drop=True) for b in range(count)] for ds, df in tables.items()}
    padded = {ds: max(len(p) for p in ps) + pad for ds, ps in parts.items()}
    slots = layout(a, padded, bucketed=True)
    datasets = list(dict.fromkeys(s.dataset for s in slots))
    assert [s.column for s in slots if s.column == ROW] == [ROW] * len(datasets)  # NB: one ROW slot per dataset
    buckets = []
    for b in range(count):
        inputs: list[np.ndarray] = []
        for ds in datasets:
            inputs += encode(a, ds, parts[ds][b], [s for s in slots if s.dataset == ds])
        buckets.append(inputs)
    return slots, buckets, padded
