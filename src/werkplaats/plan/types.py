"""Static types of plan expressions and relations, shared by every executor.

A DType is a kind plus, where known, a public domain: the categories of a string,
the possible values of a coded integer, the year range of a date. A domain is what
lets a group-by produce the same shape of output whatever the data is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..catalog.schema import ColumnSchema, TableSchema
from ..exceptions import PlanError
from . import nodes as n

NUMERIC = ("int", "float")


@dataclass(frozen=True, slots=True)
class DType:
    kind: str
    domain: tuple[Any, ...] | None = None
    years: tuple[int, int] | None = None

    @property
    def grouping_domain(self) -> tuple[Any, ...] | None:
        """Return the public values a group key of this type can take, or None."""
        if self.kind == "bool":
            return (False, True)
        return self.domain


Schema = dict[str, DType]


def column_dtype(c: ColumnSchema) -> DType:
    """Return the DType of a catalog column."""
    if c.type == "str":
        return DType("str", tuple(str(v) for v in c.categories or ()))
    if c.type == "int" and c.categories is not None:
        return DType("int", tuple(int(v) for v in c.categories))
    if c.type == "date":
        lo = c.minimum.year if isinstance(c.minimum, dt.date) else None
        hi = c.maximum.year if isinstance(c.maximum, dt.date) else None
        return DType("date", years=(lo, hi) if lo is not None and hi is not None else None)
    return DType(c.type)


def table_dtypes(t: TableSchema, columns: tuple[str, ...] | None) -> Schema:
    """Return the schema a source node sees: the listed columns, in order."""
    names = columns if columns is not None else tuple(t.names)
    return {name: column_dtype(t.column(name)) for name in names}


def lit_dtype(v: n.LitValue) -> DType:
    """Return the DType of a literal."""
    if v is None:
        return DType("null")
    if isinstance(v, bool):
        return DType("bool")
    if isinstance(v, int):
        return DType("int")
    if isinstance(v, float):
        return DType("float")
    if isinstance(v, str):
        return DType("str", (v,))
    return DType("date")


def _where(ctx: str) -> str:
    return f" in {ctx}" if ctx else ""


def date_part_domain(part: str, years: tuple[int, int] | None) -> tuple[int, ...] | None:
    """Return the public values of a date part: ISO weeks 1-53, months 1-12, years from the range."""
    if part == "iso_week":
        return tuple(range(1, 54))
    if part == "month":
        return tuple(range(1, 13))
    if part == "year" and years is not None:
        return tuple(range(years[0], years[1] + 1))
    return None


def union_domain(*domains: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """Return the categories of several domains, in order of first appearance."""
    out: list[Any] = []
    for d in domains:
        out.extend(v for v in d or () if v not in out)
    return tuple(out)


def _unify(a: DType, b: DType, what: str) -> DType:
    """Return the common type of two branches of a value choice."""
    if a.kind == "null":
        return b
    if b.kind == "null":
        return a
    if a.kind in NUMERIC and b.kind in NUMERIC:
        if a.kind == b.kind == "int" and a.domain is not None and b.domain is not None:
            return DType("int", tuple(sorted(set(a.domain) | set(b.domain))))
        return DType("int" if a.kind == b.kind == "int" else "float")
    if a.kind == b.kind == "str":
        return DType("str", union_domain(a.domain, b.domain))
    if a.kind == b.kind:
        return a
    msg = f"{what}: cannot combine {a.kind} with {b.kind}"
    raise PlanError(msg)


def infer(e: n.Expr, schema: Schema, ctx: str = "") -> DType:
    """Return the type of an expression over a schema, or raise PlanError."""
    match e:
        case n.Col(name):
            if name not in schema:
                msg = f"unknown column {name!r}{_where(ctx)}; available columns: {sorted(schema)}"
                raise PlanError(msg)
            return schema[name]
        case n.Lit(value):
            return lit_dtype(value)
        case n.BinOp(op, left, right):
            a, b = infer(left, schema, ctx), infer(right, schema, ctx)
            if op in n.ARITHMETIC_OPS:
                if op == "sub" and a.kind == b.kind == "date":
                    return DType("int")  # NB: the number of days from right to left
                for t in (a, b):
                    if t.kind not in (*NUMERIC, "null"):
                        msg = f"arithmetic '{op}'{_where(ctx)} needs numbers, got {t.kind}"
                        raise PlanError(msg)
                if op == "truediv" or "float" in (a.kind, b.kind):
                    return DType("float")
                return DType("int")
            if op in n.LOGICAL_OPS:
                for t in (a, b):
                    if t.kind not in ("bool", "null"):
                        msg = f"'{op}'{_where(ctx)} needs booleans, got {t.kind}"
                        raise PlanError(msg)
                return DType("bool")
            # comparison
            if a.kind == "str" or b.kind == "str":
                if op not in ("eq", "ne") or {a.kind, b.kind} - {"str", "null"}:
                    msg = f"comparison '{op}'{_where(ctx)}: strings can only be tested for (in)equality with strings"
                    raise PlanError(msg)
            elif not (
                (a.kind in (*NUMERIC, "null") and b.kind in (*NUMERIC, "null"))
                or (a.kind == b.kind)
                or "null" in (a.kind, b.kind)
            ):
                msg = f"comparison '{op}'{_where(ctx)}: cannot compare {a.kind} with {b.kind}"
                raise PlanError(msg)
            if a.kind == "bool" and op not in ("eq", "ne"):
                msg = f"comparison '{op}'{_where(ctx)}: booleans can only be tested for (in)equality"
                raise PlanError(msg)
            return DType("bool")
        case n.Not(arg):
            if infer(arg, schema, ctx).kind != "bool":
                msg = f"'not'{_where(ctx)} needs a boolean"
                raise PlanError(msg)
            return DType("bool")
        case n.IsIn(arg, values):
            t = infer(arg, schema, ctx)
            for v in values:
                vt = lit_dtype(v)
                ok = vt.kind == t.kind or (vt.kind in NUMERIC and t.kind in NUMERIC) or vt.kind == "null"
                if not ok:
                    msg = f"is_in{_where(ctx)}: value of type {vt.kind} for a {t.kind} column"
                    raise PlanError(msg)
            return DType("bool")
        case n.Between(arg, lower, upper):
            t = infer(arg, schema, ctx)
            for bound in (lower, upper):
                bt = infer(bound, schema, ctx)
                if not ((t.kind in NUMERIC and bt.kind in NUMERIC) or t.kind == bt.kind == "date"):
                    msg = f"is_between{_where(ctx)}: cannot compare {t.kind} with {bt.kind}"
                    raise PlanError(msg)
            return DType("bool")
        case n.IsNull(arg):
            infer(arg, schema, ctx)
            return DType("bool")
        case n.FillNull(arg, value):
            return _unify(infer(arg, schema, ctx), infer(value, schema, ctx), f"fill_null{_where(ctx)}")
        case n.Cut(arg, breaks, labels):
            if infer(arg, schema, ctx).kind not in NUMERIC:
                msg = f"cut{_where(ctx)} needs a number"
                raise PlanError(msg)
            if list(breaks) != sorted(set(breaks)):
                msg = f"cut{_where(ctx)}: breaks must be strictly increasing"
                raise PlanError(msg)
            if len(labels) != len(breaks) + 1 or len(set(labels)) != len(labels):
                msg = f"cut{_where(ctx)}: needs {len(breaks) + 1} distinct labels for {len(breaks)} breaks"
                raise PlanError(msg)
            return DType("str", tuple(labels))
        case n.DatePart(arg, part):
            t = infer(arg, schema, ctx)
            if t.kind != "date":
                msg = f".dt.{part}(){_where(ctx)} needs a date, got {t.kind}"
                raise PlanError(msg)
            return DType("int", date_part_domain(part, t.years))
        case n.AgeAt(arg, _):
            if infer(arg, schema, ctx).kind != "date":
                msg = f"age_at{_where(ctx)} needs a date (of birth)"
                raise PlanError(msg)
            return DType("int")
        case n.When(branches, otherwise):
            out = infer(otherwise, schema, ctx)
            for cond, value in branches:
                if infer(cond, schema, ctx).kind != "bool":
                    msg = f"when(){_where(ctx)}: the condition must be boolean"
                    raise PlanError(msg)
                out = _unify(infer(value, schema, ctx), out, f"when/then/otherwise{_where(ctx)}")
            if out.kind == "null":
                msg = f"when/then/otherwise{_where(ctx)}: every branch is null"
                raise PlanError(msg)
            return out
    msg = f"unknown expression node {type(e).__name__}"
    raise PlanError(msg)


def agg_dtype(a: n.Agg, schema: Schema, ctx: str) -> DType:
    """Return the type of an aggregate's result."""
    if a.func == "len":
        return DType("int")
    if a.arg is None:
        msg = f"{a.func}(){_where(ctx)} needs a column"
        raise PlanError(msg)
    t = infer(a.arg, schema, ctx)
    if a.func == "count":
        return DType("int")
    if a.func in ("min", "max"):
        if t.kind not in (*NUMERIC, "date"):
            msg = f"{a.func}(){_where(ctx)} needs a number or a date, got {t.kind}"
            raise PlanError(msg)
        return DType(t.kind)
    if t.kind not in (*NUMERIC, "bool"):
        msg = f"{a.func}(){_where(ctx)} needs a number or boolean, got {t.kind}"
        raise PlanError(msg)
    if a.func == "sum":
        return DType("float" if t.kind == "float" else "int")
    if a.func == "quantile" and (a.q is None or not 0.0 <= a.q <= 1.0):
        msg = f"quantile(){_where(ctx)} needs 0 <= q <= 1"
        raise PlanError(msg)
    return DType("float")
