"""The disclosure rule, defined once: which cells and statistics of a final aggregate may be revealed.

Both executors apply it in their own medium: the plain executor on NumPy arrays
after DuckDB, the MPC executor on secret JAX arrays inside the computation, before
anything leaves it. Each passes ``ge(x, t)``, its own "x >= t" as a 0/1 (or
boolean) array; the rule only multiplies such arrays, which is an AND in both.

- a cell with fewer than k rows is withheld, with all its statistics;
- a statistic computed from fewer than k values is withheld on its own (variance
  and standard deviation need at least 2 values to be defined at all);
- the sum of a boolean counts the rows where it holds, so it is withheld below k,
  as a cell is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..plan import nodes as n

Ge = Callable[[Any, int], Any]

# How many values a statistic needs to be defined at all (the rule asks for max(k, this)).
MIN_VALUES = {"var": 2, "std": 2}


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
