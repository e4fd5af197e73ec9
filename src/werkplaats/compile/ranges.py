"""Which statistics are within the MPC's range for sure, from public facts alone.

The owners validate their columns against the ranges their schemas declare
(``minimum``/``maximum``), and row counts are public, so a statistic of a column whose
declared range keeps it within `disclosure`'s limits for every row count up to the
frame's needs no check inside the computation. The others are checked obliviously
on the secret result (`kernels/aggregate.py`).
"""

from __future__ import annotations

from ..plan import nodes as n
from . import disclosure
from .analyze import RIGHT_SUFFIX, Analysis


def declared_range(a: Analysis, rel: n.Relation, name: str) -> tuple[float, float] | None:
    """Return the (minimum, maximum) its schema declares for a column of rel, if it comes unchanged from a source."""
    match rel:
        case n.Source(dataset, _):
            c = a.catalog[dataset].column(name)
            if c.type not in ("int", "float") or c.minimum is None or c.maximum is None:
                return None
            return float(c.minimum), float(c.maximum)  # type: ignore[arg-type]
        case n.Filter(inp, _):
            return declared_range(a, inp, name)
        case n.WithColumns(inp, exprs):
            return None if any(k == name for k, _ in exprs) else declared_range(a, inp, name)
        case n.Select(inp, exprs):
            e = dict(exprs).get(name)
            return declared_range(a, inp, e.name) if isinstance(e, n.Col) else None
        case n.Join(left, right, _, _):
            if name in a.schema(left):
                return declared_range(a, left, name)
            original = name.removesuffix(RIGHT_SUFFIX) if name.endswith(RIGHT_SUFFIX) else name
            return declared_range(a, right, original) if original in a.schema(right) else None
    return None


def statically_in_range(a: Analysis, rows: int) -> frozenset[str]:
    """Return the final aggregates whose value is within range for sure, for a frame of at most rows rows."""
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    out = set()
    for name, agg in root.aggs:
        if agg.func not in (*disclosure.SUMMING, "median", "quantile") or not isinstance(agg.arg, n.Col):
            continue
        r = declared_range(a, root.input, agg.arg.name)
        if r is None:
            continue
        lo, hi = r
        top, width, big = max(abs(lo), abs(hi)), hi - lo, max(rows, 1)
        kind = a.schema(root.input)[agg.arg.name].kind
        mean_ok = big * top <= disclosure.DIV_LIMIT and top <= disclosure.MEAN_LIMIT
        if agg.func == "sum":
            ok = big * top <= disclosure.SUM_LIMIT["float" if kind == "float" else "int"]
        elif agg.func == "mean":
            ok = mean_ok
        elif agg.func in ("var", "std"):
            # NB: every value lies within [lo, hi], so does the mean: |x - mean| <= width, variance <= width^2
            squares = big * width * width <= disclosure.DIV_LIMIT and width * width <= disclosure.MEAN_LIMIT
            ok = mean_ok and width < disclosure.DEV_LIMIT and squares
        else:
            ok = top < disclosure.QUANTILE_INT_LIMIT
        if ok:
            out.add(name)
    return frozenset(out)
