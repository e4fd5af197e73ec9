"""The disclosure rule, defined once: which cells and statistics of a final aggregate may be revealed.

Both executors apply it in their own medium: the plain executor on NumPy arrays
after DuckDB, the MPC executor on secret JAX arrays inside the computation, before
anything leaves it. Each passes ``ge(x, t)``, its own "x >= t" as a 0/1 (or
boolean) array; the rule only multiplies such arrays, which is an AND in both.

- a cell with fewer than k rows is withheld, with all its statistics;
- a statistic computed from fewer than k values is withheld on its own (variance
  and standard deviation need at least 2 values to be defined at all);
- the sum of a boolean counts the rows where it holds, so it is withheld below k,
  as a cell is;
- a statistic whose exact value may lie outside the range the MPC represents exactly
  (the limits below, docs/mpc.md) is withheld too, flagged OUT_OF_RANGE: never a wrong
  number. The MPC checks it obliviously on the secret result; the plain executor on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..plan import nodes as n
from ..result import OUT_OF_RANGE

Ge = Callable[[Any, int], Any]

# How many values a statistic needs to be defined at all (the rule asks for max(k, this)).
MIN_VALUES = {"var": 2, "std": 2}


# The ranges within which each statistic is exact (or within the documented accuracy).
SUM_LIMIT = {"int": 2**62, "float": 2**44}  # |sum|: the ring wraps at 2^63, fixed point at 2^45
DIV_LIMIT = 2**44  # |numerator| of a mean or variance (the division needs < 2^45)
MEAN_LIMIT = 2**26  # |mean| and variance: the division's quotient
DEV_LIMIT = 2**22  # |x - mean| of one value of a variance (its square stays below 2^44)
QUANTILE_INT_LIMIT = 2**43  # |value| of an int quantile's neighbours (interpolated in fixed point)
# Statistics that sum values (and so can leave the range).
SUMMING = ("sum", "mean", "var", "std")


def range_code(ok: Any, in_range: Any) -> Any:
    """Return 1 where a statistic is revealed, 0 where withheld by k, OUT_OF_RANGE where out of range."""
    return ok * (OUT_OF_RANGE - in_range)


def first_failure(flags: list[tuple[int, Any]]) -> Any:
    """Return REVEALED (1) where every (code, passes) flag passes, else the code of the first that fails.

    ``passes`` is 0/1 (or boolean) per cell in either medium; the result is computed by
    arithmetic only, so the MPC executor can use it on secrets (it branches on nothing).
    """
    code: Any = 1
    for c, passes in reversed(flags):
        p = passes * 1
        code = p * code + (1 - p) * c
    return code


def complement_ok(before: Any, after: Any, k: int, ge: Ge) -> Any:
    """Return rule 5's flag for one filter or inner join: the rows it removes are 0 or at least k.

    before/after: its input's and its output's row counts (secret scalars in the MPC).
    """
    removed = before - after
    return 1 - ge(removed, 1) * (1 - ge(removed, k))


def unique_left(a: Any, join: n.Join) -> bool:
    """Return whether a join's left side is known to be unique on its key (an Analysis's public facts).

    Then an inner join's output rows are also its matched right rows, so rule 5 counts the right
    rows it removes (those without a match) at no cost: the right side's rows minus the output's.
    """
    from .analyze import _unique_origin

    origin = _unique_origin(join.left, join.on)
    if origin is None or origin == ("", ""):
        return origin is not None  # NB: ("", ""): unique by construction (grouped by the key)
    return origin in a.unique_keys or bool(a.catalog[origin[0]].column(origin[1]).unique)  # NB: both validated


def min_values(func: str) -> int:
    """Return how many values a statistic needs to be defined at all."""
    return MIN_VALUES.get(func, 1)


def cell_ok(rows: Any, k: int, ge: Ge) -> Any:
    """Return which cells may be revealed: those with at least k rows."""
    return ge(rows, k)


def statistic_ok(agg: n.Agg, arg_kind: str | None, k: int, cells: Any, nvalid: Any, value: Any, ge: Ge) -> Any:
    """Return where one statistic may be revealed, given the cells that may (see cell_ok).

    arg_kind is the kind of the aggregate's argument (None for ``len``); nvalid the
    number of non-missing values per cell; value the statistic itself.
    """
    ok = cells * ge(nvalid, max(k, min_values(agg.func)))
    if agg.func == "sum" and arg_kind == "bool":
        ok = ok * ge(value, k)  # NB: a sum of booleans is a count: the same rule as a cell
    return ok
