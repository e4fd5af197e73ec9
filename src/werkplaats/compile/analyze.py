"""Check a plan against the catalog before any executor sees it.

Computes every relation's schema, refuses row-level outputs, unknown columns,
type errors and joins whose right side is not known to be unique on its key, and
lists the per-source checks a data owner must make before contributing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog.schema import TableSchema
from ..exceptions import PlanError
from ..plan import nodes as n
from ..plan.types import DType, Schema, agg_dtype, infer, table_dtypes

RIGHT_SUFFIX = "_right"


@dataclass
class Analysis:
    """What an executor needs to know about a checked plan."""

    plan: n.Plan
    catalog: dict[str, TableSchema]
    schemas: dict[n.Relation, Schema] = field(default_factory=dict)
    unique_keys: set[tuple[str, str]] = field(default_factory=set)
    key_columns: set[tuple[str, str]] = field(default_factory=set)

    def schema(self, rel: n.Relation) -> Schema:
        return self.schemas[rel]


def join_renames(left: Schema, right: Schema, on: str) -> dict[str, str]:
    """Return how the right side's columns are named in a join's output."""
    return {c: (c + RIGHT_SUFFIX if c in left else c) for c in right if c != on}


def _unique_origin(rel: n.Relation, key: str) -> tuple[str, str] | None:
    """Return (dataset, column) whose uniqueness makes rel unique on key; '' if by construction."""
    match rel:
        case n.Source(dataset, _):
            return (dataset, key)
        case n.Filter(inp, _):
            return _unique_origin(inp, key)
        case n.WithColumns(inp, exprs):
            if any(name == key for name, _ in exprs):
                return None
            return _unique_origin(inp, key)
        case n.Select(inp, exprs):
            for name, e in exprs:
                if name == key:
                    return _unique_origin(inp, e.name) if isinstance(e, n.Col) else None
            return None
        case n.Aggregate(_, keys, _):
            return ("", "") if keys == (key,) else None
    return None


def check_structure(plan: n.Plan) -> None:
    """Refuse what is wrong with a plan whatever the catalog says: a row-level output, k < 1."""
    if plan.min_group_size < 1:
        msg = "min_group_size must be at least 1"
        raise PlanError(msg)
    if not isinstance(plan.root, n.Aggregate):
        op = type(plan.root).__name__.lower()
        msg = (
            f"the plan's output would be row-level: it ends in '{op}'. Only aggregates may "
            "leave the secure computation; finish with .group_by(...).agg(...) or .agg(...)"
        )
        raise PlanError(msg)


def analyze(plan: n.Plan, catalog: dict[str, TableSchema]) -> Analysis:
    """Check a plan and return its Analysis, or raise PlanError saying what is wrong."""
    check_structure(plan)
    a = Analysis(plan, catalog)
    _schema(plan.root, a)
    root = plan.root
    assert isinstance(root, n.Aggregate)  # NB: check_structure guarantees it
    schema = a.schemas[root.input]
    for k in root.keys:
        if schema[k].grouping_domain is None:
            msg = (
                f"group key {k!r} ({schema[k].kind}) has no public domain. The keys of the "
                "final aggregation must be categorical (a code list), boolean, a cut() of a "
                "number, or a date part, so that the result's shape does not depend on the data"
            )
            raise PlanError(msg)
    return a


def _schema(rel: n.Relation, a: Analysis) -> Schema:
    if rel in a.schemas:
        return a.schemas[rel]
    out: Schema
    match rel:
        case n.Source(dataset, columns):
            if dataset not in a.catalog:
                msg = f"unknown dataset {dataset!r}; known datasets: {sorted(a.catalog)}"
                raise PlanError(msg)
            try:
                out = table_dtypes(a.catalog[dataset], columns)
            except Exception as e:
                raise PlanError(str(e)) from None
        case n.Filter(inp, pred):
            out = _schema(inp, a)
            if infer(pred, out, "filter").kind != "bool":
                msg = "filter: the predicate must be boolean"
                raise PlanError(msg)
        case n.WithColumns(inp, exprs):
            out = dict(_schema(inp, a))
            _unique_names([k for k, _ in exprs], "with_columns")
            for name, expr in exprs:
                out[name] = _value_type(infer(expr, _schema(inp, a), f"with_columns({name}=...)"), name)
        case n.Select(inp, exprs):
            base = _schema(inp, a)
            _unique_names([k for k, _ in exprs], "select")
            out = {name: _value_type(infer(e, base, f"select({name}=...)"), name) for name, e in exprs}
        case n.Join(left, right, on, how):
            ls, rs = _schema(left, a), _schema(right, a)
            for side, s in (("left", ls), ("right", rs)):
                if on not in s:
                    msg = f"join: key {on!r} is not a column of the {side} side; it has {sorted(s)}"
                    raise PlanError(msg)
            if ls[on].kind != rs[on].kind or ls[on].kind not in ("int", "str", "date"):
                msg = f"join on {on!r}: keys must be int, str or date of the same type on both sides"
                raise PlanError(msg)
            if ls[on].kind == "str" and ls[on].domain != rs[on].domain:
                msg = f"join on {on!r}: both sides must use the same code list"
                raise PlanError(msg)
            for side_rel in (left, right):
                src = _unique_origin(side_rel, on)
                if src is not None and src[0]:
                    a.key_columns.add(src)
            origin = _unique_origin(right, on)
            if origin is None:
                msg = (
                    f"join on {on!r}: the right side is not known to be unique on {on!r}. "
                    f"Aggregate it first with .group_by({on!r}).agg(...), or join a dataset whose "
                    f"{on!r} is a unique key"
                )
                raise PlanError(msg)
            if origin[0]:
                a.unique_keys.add(origin)
            out = dict(ls)
            for c, new in join_renames(ls, rs, on).items():
                out[new] = rs[c]
            if how not in n.JOIN_HOWS:
                msg = f"join: how must be one of {n.JOIN_HOWS}, got {how!r}"
                raise PlanError(msg)
        case n.Aggregate(inp, keys, aggs):
            base = _schema(inp, a)
            for k in keys:
                if k not in base:
                    msg = f"group_by: unknown column {k!r}; available columns: {sorted(base)}"
                    raise PlanError(msg)
            _unique_names([*keys, *(k for k, _ in aggs)], "group_by/agg")
            for k in keys:
                src = _unique_origin(inp, k)
                if src is not None and src[0]:
                    a.key_columns.add(src)
            out = {k: base[k] for k in keys}
            for name, agg in aggs:
                if agg.func not in n.AGG_FUNCS:
                    msg = f"agg({name}=...): unknown aggregate {agg.func!r}"
                    raise PlanError(msg)
                out[name] = agg_dtype(agg, base, f"agg({name}=...)")
    a.schemas[rel] = out
    return out


def _value_type(t: DType, name: str) -> DType:
    if t.kind == "null":
        msg = f"column {name!r} would be always null; give the literal a type"
        raise PlanError(msg)
    return t


def _unique_names(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for x in names:
        if x in seen:
            msg = f"{where}: the name {x!r} is used twice"
            raise PlanError(msg)
        seen.add(x)


def prune(rel: n.Relation, catalog: dict[str, TableSchema], needed: set[str] | None = None) -> n.Relation:
    """Return rel with every source listing exactly the columns the plan reads.

    needed=None means "every column the relation produces".
    """
    match rel:
        case n.Source(dataset, columns):
            if dataset not in catalog:
                # NB: without the catalog we cannot tell which side of a join a name is on.
                if needed is None or columns is None:
                    return rel
                return n.Source(dataset, tuple(c for c in columns if c in needed))
            cols = columns if columns is not None else tuple(catalog[dataset].names)
            if needed is None:
                return n.Source(dataset, tuple(cols))
            return n.Source(dataset, tuple(c for c in cols if c in needed))
        case n.Filter(inp, pred):
            sub = None if needed is None else needed | n.columns_of(pred)
            return n.Filter(prune(inp, catalog, sub), pred)
        case n.WithColumns(inp, exprs):
            kept = tuple((k, e) for k, e in exprs if needed is None or k in needed)
            if needed is None:
                sub = None
            else:
                sub = (needed - {k for k, _ in kept}) | set().union(*(n.columns_of(e) for _, e in kept))
            if not kept:
                return prune(inp, catalog, sub)
            return n.WithColumns(prune(inp, catalog, sub), kept)
        case n.Select(inp, exprs):
            kept = tuple((k, e) for k, e in exprs if needed is None or k in needed)
            sub = set().union(*(n.columns_of(e) for _, e in kept)) if kept else set()
            return n.Select(prune(inp, catalog, sub), kept)
        case n.Join(left, right, on, how):
            if needed is None:
                return n.Join(prune(left, catalog), prune(right, catalog), on, how)
            # Right columns are renamed on collision; keep both spellings to stay safe.
            lneed = needed | {on}
            rneed = {on} | {c[: -len(RIGHT_SUFFIX)] if c.endswith(RIGHT_SUFFIX) else c for c in needed}
            return n.Join(prune(left, catalog, lneed), prune(right, catalog, rneed), on, how)
        case n.Aggregate(inp, keys, aggs):
            kept_aggs = tuple((k, g) for k, g in aggs if needed is None or k in needed) or aggs[:1]
            sub = set(keys) | set().union(*(n.columns_of(g.arg) for _, g in kept_aggs if g.arg is not None))
            return n.Aggregate(prune(inp, catalog, sub), keys, kept_aggs)
    return rel
