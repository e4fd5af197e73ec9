"""Static types of plan expressions and relations, shared by every executor.

A DType is a kind plus, where known, a public domain: the categories of a string,
the possible values of a coded integer, the year range of a date. A domain is what
lets a group-by produce the same shape of output whatever the data is.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from ..catalog.schema import ColumnSchema, TableSchema
from ..exceptions import OperationNotDefinedError, PlanError
from . import nodes as n
from .limits import MAX_FLOAT, MAX_IS_IN_VALUES, MAX_SAFE_INT
from .visitor import Visitor

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
        if abs(v) > MAX_SAFE_INT:
            msg = "an int literal must lie within ±2^53 (beyond it a float64 no longer holds every integer)"
            raise PlanError(msg)
        return DType("int")
    if isinstance(v, float):
        if not math.isfinite(v):
            msg = "a float literal must be a finite number, not NaN or Infinity"
            raise PlanError(msg)
        if abs(v) > MAX_FLOAT:
            msg = "a float literal must lie within ±2^30 (the range of float values in the MPC's fixed point)"
            raise PlanError(msg)
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


def stacked_dtype(ts: list[DType]) -> DType:
    """Return the type of a column stacked from several inputs of one kind: code lists and year ranges unioned.

    Code lists keep the first input's order, then each further input's new codes in order.

    A coded int keeps a code list only when every input has one (else it is a plain int); a date
    keeps a year range only when every input has one.
    """
    kind = ts[0].kind
    if kind == "str":
        return DType("str", union_domain(*(t.domain for t in ts)))
    if kind == "int":
        if all(t.domain is not None for t in ts):
            return DType("int", union_domain(*(t.domain for t in ts)))
        return DType("int")
    if kind == "date":
        if all(t.years is not None for t in ts):
            return DType("date", years=(min(t.years[0] for t in ts if t.years), max(t.years[1] for t in ts if t.years)))
        return DType("date")
    return DType(kind)


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
    return TypeInference(schema, ctx).visit(e)


class TypeInference(Visitor[DType]):
    """The typing rule of each expression node over one input schema."""

    name = "type inference"

    def __init__(self, schema: Schema, ctx: str = "") -> None:
        self.schema = schema
        self.where = _where(ctx)

    def visit_Col(self, e: n.Col) -> DType:
        if e.name not in self.schema:
            msg = f"unknown column {e.name!r}{self.where}; available columns: {sorted(self.schema)}"
            raise PlanError(msg)
        return self.schema[e.name]

    def visit_Lit(self, e: n.Lit) -> DType:
        return lit_dtype(e.value)

    def visit_BinOp(self, e: n.BinOp) -> DType:
        op, where = e.op, self.where
        a, b = self.visit(e.left), self.visit(e.right)
        if op in n.ARITHMETIC_OPS:
            if op == "sub" and a.kind == b.kind == "date":
                return DType("int")  # NB: the number of days from right to left
            for t in (a, b):
                if t.kind not in (*NUMERIC, "null"):
                    msg = f"arithmetic '{op}'{where} needs numbers, got {t.kind}"
                    raise PlanError(msg)
            if op == "truediv" or "float" in (a.kind, b.kind):
                return DType("float")
            return DType("int")
        if op in n.LOGICAL_OPS:
            for t in (a, b):
                if t.kind not in ("bool", "null"):
                    msg = f"'{op}'{where} needs booleans, got {t.kind}"
                    raise PlanError(msg)
            return DType("bool")
        if op not in n.COMPARISON_OPS:
            msg = f"type inference has no rule for the operator {op!r}"
            raise OperationNotDefinedError(msg)
        if a.kind == "str" or b.kind == "str":
            if op not in ("eq", "ne") or {a.kind, b.kind} - {"str", "null"}:
                msg = f"comparison '{op}'{where}: strings can only be tested for (in)equality with strings"
                raise PlanError(msg)
        elif not (
            (a.kind in (*NUMERIC, "null") and b.kind in (*NUMERIC, "null"))
            or (a.kind == b.kind)
            or "null" in (a.kind, b.kind)
        ):
            msg = f"comparison '{op}'{where}: cannot compare {a.kind} with {b.kind}"
            raise PlanError(msg)
        if a.kind == "bool" and op not in ("eq", "ne"):
            msg = f"comparison '{op}'{where}: booleans can only be tested for (in)equality"
            raise PlanError(msg)
        return DType("bool")

    def visit_Not(self, e: n.Not) -> DType:
        if self.visit(e.arg).kind != "bool":
            msg = f"'not'{self.where} needs a boolean"
            raise PlanError(msg)
        return DType("bool")

    def visit_IsIn(self, e: n.IsIn) -> DType:
        t = self.visit(e.arg)
        if len(e.values) > MAX_IS_IN_VALUES:
            msg = f"is_in{self.where}: {len(e.values)} values, more than the limit of {MAX_IS_IN_VALUES}"
            raise PlanError(msg)
        for v in e.values:
            vt = lit_dtype(v)
            ok = vt.kind == t.kind or (vt.kind in NUMERIC and t.kind in NUMERIC) or vt.kind == "null"
            if not ok:
                msg = f"is_in{self.where}: value of type {vt.kind} for a {t.kind} column"
                raise PlanError(msg)
        return DType("bool")

    def visit_Between(self, e: n.Between) -> DType:
        t = self.visit(e.arg)
        for bound in (e.lower, e.upper):
            bt = self.visit(bound)
            if not ((t.kind in NUMERIC and bt.kind in NUMERIC) or t.kind == bt.kind == "date"):
                msg = f"is_between{self.where}: cannot compare {t.kind} with {bt.kind}"
                raise PlanError(msg)
        return DType("bool")

    def visit_IsNull(self, e: n.IsNull) -> DType:
        self.visit(e.arg)
        return DType("bool")

    def visit_FillNull(self, e: n.FillNull) -> DType:
        return _unify(self.visit(e.arg), self.visit(e.value), f"fill_null{self.where}")

    def visit_Cut(self, e: n.Cut) -> DType:
        if self.visit(e.arg).kind not in NUMERIC:
            msg = f"cut{self.where} needs a number"
            raise PlanError(msg)
        if not all(math.isfinite(b) and abs(b) <= MAX_FLOAT for b in e.breaks):
            msg = f"cut{self.where}: breaks must be finite numbers within ±2^30, not NaN or Infinity"
            raise PlanError(msg)
        if list(e.breaks) != sorted(set(e.breaks)):
            msg = f"cut{self.where}: breaks must be strictly increasing"
            raise PlanError(msg)
        if len(e.labels) != len(e.breaks) + 1 or len(set(e.labels)) != len(e.labels):
            msg = f"cut{self.where}: needs {len(e.breaks) + 1} distinct labels for {len(e.breaks)} breaks"
            raise PlanError(msg)
        return DType("str", tuple(e.labels))

    def visit_DatePart(self, e: n.DatePart) -> DType:
        t = self.visit(e.arg)
        if t.kind != "date":
            msg = f".dt.{e.part}(){self.where} needs a date, got {t.kind}"
            raise PlanError(msg)
        return DType("int", date_part_domain(e.part, t.years))

    def visit_AgeAt(self, e: n.AgeAt) -> DType:
        if self.visit(e.arg).kind != "date":
            msg = f"age_at{self.where} needs a date (of birth)"
            raise PlanError(msg)
        return DType("int")

    def visit_When(self, e: n.When) -> DType:
        out = self.visit(e.otherwise)
        for cond, value in e.branches:
            if self.visit(cond).kind != "bool":
                msg = f"when(){self.where}: the condition must be boolean"
                raise PlanError(msg)
            out = _unify(self.visit(value), out, f"when/then/otherwise{self.where}")
        if out.kind == "null":
            msg = f"when/then/otherwise{self.where}: every branch is null"
            raise PlanError(msg)
        return out


_NUMBER_OR_BOOL = ("a number or boolean", (*NUMERIC, "bool"))
# func → (what its argument must be, as said in errors, and the kinds that are; the result's kind).
# The result kind "arg" is the argument's own; "sum" is float for floats, int otherwise.
AGG_SIGNATURES: dict[str, tuple[tuple[str, tuple[str, ...]] | None, str]] = {
    "len": (None, "int"),
    "count": (("anything", ()), "int"),
    "sum": (_NUMBER_OR_BOOL, "sum"),
    "mean": (_NUMBER_OR_BOOL, "float"),
    "min": (("a number or a date", (*NUMERIC, "date")), "arg"),
    "max": (("a number or a date", (*NUMERIC, "date")), "arg"),
    "var": (_NUMBER_OR_BOOL, "float"),
    "std": (_NUMBER_OR_BOOL, "float"),
    "median": (_NUMBER_OR_BOOL, "float"),
    "quantile": (_NUMBER_OR_BOOL, "float"),
}


def agg_dtype(a: n.Agg, schema: Schema, ctx: str) -> DType:
    """Return the type of an aggregate's result, or raise PlanError."""
    if a.func not in AGG_SIGNATURES:
        msg = f"unknown aggregate {a.func!r}{_where(ctx)}"
        raise PlanError(msg)
    needs, result = AGG_SIGNATURES[a.func]
    if needs is None:
        return DType(result)
    if a.arg is None:
        msg = f"{a.func}(){_where(ctx)} needs a column"
        raise PlanError(msg)
    t = infer(a.arg, schema, ctx)
    what, kinds = needs
    if kinds and t.kind not in kinds:
        msg = f"{a.func}(){_where(ctx)} needs {what}, got {t.kind}"
        raise PlanError(msg)
    if a.func == "quantile" and (a.q is None or not 0.0 <= a.q <= 1.0):
        msg = f"quantile(){_where(ctx)} needs 0 <= q <= 1"
        raise PlanError(msg)
    if result == "arg":
        return DType(t.kind)
    if result == "sum":
        return DType("float" if t.kind == "float" else "int")
    return DType(result)
