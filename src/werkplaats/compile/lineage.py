"""Where a column comes from: the source columns each column of a checked plan is computed from.

The disclosure rules ask this of a plan: is this statistic a magnitude (rule 3: does its
argument read a column the catalog marks as one), is this expression a use of a person
key (rule 1), which column do this relation's rows get their person key from (rule 6).
Lineage is static, from the plan and the catalog alone: it never looks at data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ..catalog.schema import ColumnSchema
from ..plan import nodes as n
from .analyze import Analysis, join_renames

Origin = tuple[str, str]  # (dataset, column)


def origins(a: Analysis, rel: n.Relation, name: str) -> frozenset[Origin]:
    """Return the source columns a column of rel is computed from (empty for a constant or a row count)."""
    return _lineage(a)(rel, name)


def expr_origins(a: Analysis, rel: n.Relation, e: n.Expr) -> frozenset[Origin]:
    """Return the source columns an expression over rel's columns reads."""
    f = _lineage(a)
    return frozenset().union(*(f(rel, c) for c in n.columns_of(e)))


def column_of(a: Analysis, origin: Origin) -> ColumnSchema:
    """Return the catalog's schema of a source column."""
    return a.catalog[origin[0]].column(origin[1])


def has_role(a: Analysis, found: frozenset[Origin], *roles: str) -> bool:
    """Return whether any of the source columns has one of the roles (see catalog.schema.ROLES)."""
    return any(column_of(a, o).role in roles for o in found)


def _lineage(a: Analysis) -> Callable[[n.Relation, str], frozenset[Origin]]:
    if a.lineage is None:
        a.lineage = _build(a)
    return a.lineage


def _build(a: Analysis) -> Callable[[n.Relation, str], frozenset[Origin]]:
    @cache
    def of(rel: n.Relation, name: str) -> frozenset[Origin]:
        match rel:
            case n.Source(dataset, _):
                return frozenset({(dataset, name)})
            case n.Filter(inp, _):
                return of(inp, name)
            case n.WithColumns(inp, exprs):
                e = dict(exprs).get(name)
                return of(inp, name) if e is None else _expr(inp, e)
            case n.Select(inp, exprs):
                return _expr(inp, dict(exprs)[name])
            case n.Join(left, right, on, _):
                ls, rs = a.schema(left), a.schema(right)
                if name == on:
                    return of(left, on) | of(right, on)
                if name in ls:
                    return of(left, name)
                back = {new: old for old, new in join_renames(ls, rs, on).items()}
                return of(right, back[name])
            case n.Aggregate(inp, keys, aggs):
                if name in keys:
                    return of(inp, name)
                agg = dict(aggs)[name]
                return frozenset() if agg.arg is None else _expr(inp, agg.arg)
            case n.Concat(inputs, _):
                return frozenset().union(*(of(i, name) for i in inputs))
            case n.Glm(inp) | n.Corr(inp) | n.Standardize(inp):
                return of(inp, name)  # NB: a summary's statistics derive from the input columns it reads
        return frozenset()  # pragma: no cover - every relation kind is listed

    def _expr(rel: n.Relation, e: n.Expr) -> frozenset[Origin]:
        return frozenset().union(*(of(rel, c) for c in n.columns_of(e)))

    return of
