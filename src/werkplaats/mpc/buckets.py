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

Security model: the secret, the person keys and each bucket's real row count stay at the owner;
what leaves it is the padded size (public) and the shares of the padded bucket.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..compile.analyze import Analysis

DEFAULT_MEMORY_BUDGET_GB = 2.0


def bucket_count(a: Analysis, rows: dict[str, int], budget_gb: float = DEFAULT_MEMORY_BUDGET_GB) -> int:
    """Return how many buckets a job needs to stay within the memory budget per party (1: unbucketed)."""
    raise NotImplementedError


def padded_size(real: int, count: int) -> int:
    """Return the public number of rows every bucket of a table of `real` rows is padded to."""
    raise NotImplementedError


def assign(keys: pd.Series, secret: bytes, count: int) -> np.ndarray:
    """Return each row's bucket (0..count-1) by a keyed hash of its person key."""
    raise NotImplementedError


def split(a: Analysis, dataset: str, df: pd.DataFrame, secret: bytes, count: int) -> list[pd.DataFrame]:
    """Return one owner table's rows per bucket (real rows only; encode pads them to `padded_size`)."""
    raise NotImplementedError
