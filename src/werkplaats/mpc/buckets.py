"""Buckets at the data owner: how many, which row goes where, and the public padded size.

Contract (issue 13; `werkplaats.compile.staged` is the program side):

- `bucket_count(a, rows, budget_gb)`: 1 (run unbucketed) or the number of buckets so that
  one bucket's program stays within ``budget_gb`` of memory per party. Deterministic in public
  metadata only (the plan, the catalog, the row counts, the budget), so that every owner, every
  party and the hub compute the same number. A count that is a power of two keeps padded sizes
  and compiled programs the same across nearby table sizes.
- `padded_size(real, count)`: the public size every bucket of a table of ``real`` rows is
  padded to: above the largest bucket with overwhelming probability for a keyed hash
  (binomial tail); a table whose largest bucket exceeds it is refused with a reason that names
  the dataset and asks for a new bucket key (never silently truncated).
- `assign(keys, secret, count)`: each row's bucket, ``HMAC-SHA256(secret, canonical person key) mod count``
  (the secret is the collaboration's bucket key, held by the datastations only; see
  `werkplaats.workspace.bucketkey`). Equal person keys land in the same bucket in every table.
- `split(a, dataset, df, secret, count)`: the table's rows per bucket, in order of the buckets.

The memory model (`estimate_bytes`) is fitted to measured peak RSS of one party (``VmHWM``):

    peak ≈ BASE + Σ_datasets rows_d · (PER_ROW + PER_COLUMN · width_d) + PER_CELL_ROW · rows · cells

with ``width_d`` the dataset's shared columns per row (every slot's columns: a one-hot counts its
codes), ``rows`` all datasets' rows together and ``cells`` the final aggregate's cells (the
product of its keys' domains plus a missing code each; 1 for a summary). The constants are in
`MODEL` (docs/mpc.md, "Bucketed execution", has the measurements); `bucket_count` keeps a
margin (`MARGIN`) under the budget.

Padded size (the ladder): ``mean + t`` with ``t`` the Bernstein bound for a binomial bucket
at failure probability 2^-40 over all buckets, rounded up to at most four significant bits
above 1024 (a multiple of 1024, and of 2^(bits-4) beyond 16,384; at most 1/8 over), so that
nearby table sizes share one padded size and the parties' compiled programs.

Security model: the secret, the person keys and each bucket's real row count stay at the owner;
what leaves it is the padded size (public) and the shares of the padded bucket.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..compile.analyze import Analysis
from ..exceptions import MPCError
from ..plan import nodes as n

DEFAULT_MEMORY_BUDGET_GB = 2.0
MAX_BUCKETS = 1 << 16
FAILURE_LOG2 = 40  # NB: a table is refused (never truncated) with probability below 2^-40 per job
MIN_PADDED = 1024
MARGIN = 0.8  # NB: a bucket's estimate stays under 80% of the budget


@dataclass(frozen=True, slots=True)
class MemoryModel:
    """Peak bytes of one party: BASE + Σ rows_d·(per_row + per_column·width_d) + per_cell_row·rows·cells."""

    base: float
    per_row: float
    per_column: float
    per_cell_row: float


# NB: fitted to measured VmHWM of one party (W1 and the demo's hotspot analysis; docs/mpc.md "Bucketed execution")
MODEL = MemoryModel(base=500e6, per_row=2000.0, per_column=60.0, per_cell_row=15.5)


class BucketOverflowError(MPCError):
    """A table's bucket holds more rows than its public padded size (refused, never truncated)."""


def _widths(a: Analysis, rows: dict[str, int], bucketed: bool) -> dict[str, int]:
    """Return the shared columns per row of each dataset (its slots, a one-hot counting its codes)."""
    from ..compile.layout import layout

    out: dict[str, int] = {}
    for s in layout(a, {d: max(r, 1) for d, r in rows.items()}, bucketed=bucketed):
        out[s.dataset] = out.get(s.dataset, 0) + math.prod(s.shape[1:])
    return out


def _cells(a: Analysis) -> int:
    """Return the number of cells of the final aggregate (its keys' public domains, each with a missing code)."""
    root = a.plan.root
    if not isinstance(root, n.Aggregate):
        return 1
    base = a.schemas.get(root.input, {})
    cells = 1
    for k in root.keys:
        t = base.get(k)
        dom = t.grouping_domain if t is not None else None
        cells *= len(dom) + 1 if dom is not None else 2
    return cells


def estimate_bytes(a: Analysis, rows: dict[str, int], *, bucketed: bool = False,
                   model: MemoryModel = MODEL) -> float:  # fmt: skip
    """Return the model's peak memory of one party for a program over tables of `rows` rows (bytes)."""
    widths = _widths(a, rows, bucketed)
    total = sum(rows.values())
    per = sum(r * (model.per_row + model.per_column * widths.get(d, 1)) for d, r in rows.items())
    return model.base + per + model.per_cell_row * total * _cells(a)


def bucket_count(a: Analysis, rows: dict[str, int], budget_gb: float = DEFAULT_MEMORY_BUDGET_GB) -> int:
    """Return how many buckets a job needs to stay within the memory budget per party (1: unbucketed).

    The smallest power of two whose padded buckets the memory model puts under `MARGIN` of the
    budget. Raises MPCError when even `MAX_BUCKETS` buckets would not fit (the budget is below
    what a party needs for the program alone).
    """
    if budget_gb <= 0:
        msg = f"memory budget must be positive, got {budget_gb} GB"
        raise MPCError(msg)
    limit = budget_gb * 1e9 * MARGIN
    if estimate_bytes(a, rows) <= limit:
        return 1
    count = 2
    while count <= MAX_BUCKETS:
        padded = {d: padded_size(r, count) for d, r in rows.items()}
        if estimate_bytes(a, padded, bucketed=True) <= limit:
            return count
        count *= 2
    msg = (f"the plan does not fit a memory budget of {budget_gb} GB per party even in {MAX_BUCKETS} buckets; "
           "raise memory_budget_gb")  # fmt: skip
    raise MPCError(msg)


def _ladder(x: int) -> int:
    """Round up to at most four significant bits, and to a multiple of MIN_PADDED."""
    x = max(int(x), MIN_PADDED)
    step = max(MIN_PADDED, 1 << max(0, x.bit_length() - 4))
    return -(-x // step) * step


def padded_size(real: int, count: int) -> int:
    """Return the public number of rows every bucket of a table of `real` rows is padded to.

    One bucket (unbucketed) is the table itself. Otherwise: the mean plus a Bernstein bound on
    a binomial(real, 1/count) bucket with the failure probability 2^-FAILURE_LOG2 shared over the
    count buckets, rounded up on the ladder (module docstring). Depends on `real` and `count` only.
    """
    if count < 1:
        msg = f"bucket count must be at least 1, got {count}"
        raise ValueError(msg)
    if count == 1:
        return max(int(real), 1)
    mean = real / count
    log_fail = FAILURE_LOG2 * math.log(2) + math.log(count)  # NB: union bound over the buckets
    t = log_fail / 3 + math.sqrt(log_fail**2 / 9 + 2 * mean * log_fail)
    return _ladder(math.ceil(mean + t))


def _canonical(v: object) -> bytes:
    """Return a person key as the bytes every owner hashes: integers in decimal, anything else as text."""
    if isinstance(v, (bool, np.bool_)):
        return b"1" if v else b"0"
    if isinstance(v, (int, np.integer)):
        return str(int(v)).encode()
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v)).encode()
    return str(v).strip().encode()


def assign(keys: pd.Series, secret: bytes, count: int) -> np.ndarray:
    """Return each row's bucket (0..count-1) by a keyed hash of its person key.

    ``HMAC-SHA256(secret, canonical key)``, its first 8 bytes big-endian, mod count (unbiased for
    a power of two). A missing key hashes as the empty string: all of a table's missing keys share
    one bucket, as they share one group in SQL.
    """
    if count < 1:
        msg = f"bucket count must be at least 1, got {count}"
        raise ValueError(msg)
    if count == 1:
        return np.zeros(len(keys), dtype=np.int64)
    if len(secret) < 16:
        msg = "a bucket key has at least 16 bytes"
        raise ValueError(msg)
    miss = keys.isna().to_numpy()
    vals = keys.to_numpy(dtype=object)
    out = np.empty(len(keys), dtype=np.uint64)
    for i, (v, m) in enumerate(zip(vals, miss, strict=True)):
        d = hmac.digest(secret, b"" if m else _canonical(v), hashlib.sha256)
        out[i] = int.from_bytes(d[:8], "big")
    return (out % np.uint64(count)).astype(np.int64)


def person_key_of(a: Analysis, dataset: str, df: pd.DataFrame) -> str:
    """Return the column a dataset's rows are bucketed by (its person key); raise MPCError without one."""
    from ..compile.perturb import person_key_column

    col = person_key_column(a, dataset)
    if col is None or col not in df.columns:
        msg = f"dataset {dataset!r} has no person key among the columns shared, so it cannot be split into buckets"
        raise MPCError(msg)
    return col


def split(a: Analysis, dataset: str, df: pd.DataFrame, secret: bytes, count: int) -> list[pd.DataFrame]:
    """Return one owner table's rows per bucket (real rows only; encode pads them to `padded_size`).

    Raises BucketOverflowError when a bucket holds more rows than the public padded size: the
    reason names the dataset and never a bucket's row count.
    """
    if count == 1:
        return [df.reset_index(drop=True)]
    b = assignments(a, dataset, df, secret, count)
    return [df[b == i].reset_index(drop=True) for i in range(count)]


def assignments(a: Analysis, dataset: str, df: pd.DataFrame, secret: bytes, count: int) -> np.ndarray:
    """Return each row's bucket (`assign` on the dataset's person key), refusing a bucket over its padded size."""
    b = assign(df[person_key_of(a, dataset, df)], secret, count)
    limit = padded_size(len(df), count)
    if count > 1 and np.bincount(b, minlength=count).max() > limit:
        msg = (
            f"dataset {dataset!r}: a bucket holds more rows than its public padded size; "
            "the job is refused rather than truncated (rotate the collaboration's bucket key, then run it again)"
        )
        raise BucketOverflowError(msg)
    return b
