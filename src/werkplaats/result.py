"""Assemble revealed, disclosure-controlled aggregates into a DataFrame.

Both executors end here, so their outputs have exactly the same shape: one row per
cell of the public key domains (missing keys last), a column per statistic, and
``suppressed`` / ``reason`` columns saying what was withheld and why.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .plan import nodes as n
from .plan.types import DType

EPOCH = dt.date(1970, 1, 1)


def key_grid(domains: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Return every cell of the key domains, each with a trailing 'missing' value."""
    return list(itertools.product(*[(*d, None) for d in domains]))


def min_values(func: str) -> int:
    """Return how many values a statistic needs to be defined at all."""
    return 2 if func in ("var", "std") else 1


@dataclass
class Revealed:
    """Per-cell output of an executor after disclosure control."""

    cell_ok: np.ndarray
    stats: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (ok, value)


def build_frame(plan: n.Plan, key_types: list[DType], out_types: dict[str, DType],
                rev: Revealed) -> pd.DataFrame:  # fmt: skip
    """Return the result DataFrame for revealed cells."""
    root = plan.root
    assert isinstance(root, n.Aggregate)
    k = plan.min_group_size
    grid = key_grid([t.grouping_domain or () for t in key_types])
    data: dict[str, Any] = {}
    for i, name in enumerate(root.keys):
        vals = [g[i] for g in grid]
        kind = key_types[i].kind
        dtype = {"bool": "boolean", "int": "Int64", "str": "string"}[kind]
        data[name] = pd.array(vals, dtype=dtype)
    reasons: list[str | None] = []
    for name, _ in root.aggs:
        ok, value = rev.stats[name]
        data[name] = _column(value, ok & rev.cell_ok, out_types[name].kind)
    for c in range(len(grid)):
        if not rev.cell_ok[c]:
            reasons.append(f"fewer than {k} rows")
            continue
        missing = [nm for nm, _ in root.aggs if not rev.stats[nm][0][c]]
        reasons.append(f"fewer than {k} values (or a count below {k}) for: {', '.join(missing)}" if missing else None)
    data["suppressed"] = ~rev.cell_ok.astype(bool)
    data["reason"] = pd.Series(reasons, dtype=object)
    df = pd.DataFrame(data)
    df.attrs["min_group_size"] = k
    return df


def _column(value: np.ndarray, ok: np.ndarray, kind: str) -> Any:
    ok = ok.astype(bool)
    if kind == "int":
        ints = value if np.issubdtype(value.dtype, np.integer) else np.rint(value)
        arr = pd.array(np.where(ok, ints, 0).astype(np.int64), dtype="Int64")
        arr[~ok] = pd.NA
        return arr
    if kind == "date":
        return [EPOCH + dt.timedelta(days=round(v)) if o else None for v, o in zip(value, ok, strict=True)]
    arr = pd.array(np.asarray(value, dtype=float), dtype="Float64")
    arr[~ok] = pd.NA
    return arr


def frames_agree(a: pd.DataFrame, b: pd.DataFrame, *, atol: float = 1e-3, rtol: float = 1e-4) -> bool:
    """Return whether two results have the same cells, suppression and integers, and close floats.

    The tolerance is the MPC executor's documented fixed-point accuracy (docs/mpc.md).
    """
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for c in a.columns:
        x, y = a[c], b[c]
        if not np.array_equal(x.isna().to_numpy(), y.isna().to_numpy()):
            return False
        x, y = x[x.notna()], y[y.notna()]
        if pd.api.types.is_float_dtype(x.dtype):
            if not np.allclose(x.astype(float), y.astype(float), atol=atol, rtol=rtol):
                return False
        elif x.tolist() != y.tolist():
            return False
    return True
