"""Plan nodes: immutable, hashable descriptions of a relational analysis.

A plan is data, never code: every node is a frozen dataclass whose fields are
plain values or other nodes. Executors visit nodes; they never evaluate strings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal as TLiteral
from typing import TypeAlias

PLAN_FORMAT = "werkplaats.plan/1"

# The disclosure threshold k: a cell (or statistic) with fewer contributing rows is withheld.
# One definition; a dataset's or collaboration's rules may raise it, never lower it.
DEFAULT_MIN_GROUP_SIZE = 10

LitValue: TypeAlias = int | float | bool | str | dt.date | None

BINARY_OPS = (
    "add", "sub", "mul", "truediv",
    "eq", "ne", "lt", "le", "gt", "ge",
    "and", "or",
)  # fmt: skip
ARITHMETIC_OPS = ("add", "sub", "mul", "truediv")
COMPARISON_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
LOGICAL_OPS = ("and", "or")
AGG_FUNCS = ("len", "count", "sum", "mean", "min", "max", "var", "std", "median", "quantile")
DATE_PARTS = ("year", "iso_week", "month")
JOIN_HOWS = ("inner", "left")


# --- expressions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Col:
    name: str


@dataclass(frozen=True, slots=True)
class Lit:
    value: LitValue


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not:
    arg: Expr


@dataclass(frozen=True, slots=True)
class IsIn:
    arg: Expr
    values: tuple[LitValue, ...]


@dataclass(frozen=True, slots=True)
class Between:
    arg: Expr
    lower: Expr
    upper: Expr


@dataclass(frozen=True, slots=True)
class IsNull:
    arg: Expr


@dataclass(frozen=True, slots=True)
class FillNull:
    arg: Expr
    value: Expr


@dataclass(frozen=True, slots=True)
class Cut:
    """Bin a number: (-inf, b0], (b0, b1], ..., (bk, inf) like polars' cut."""

    arg: Expr
    breaks: tuple[float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DatePart:
    arg: Expr
    part: str


@dataclass(frozen=True, slots=True)
class AgeAt:
    """Whole years between a birth date and a public reference date."""

    arg: Expr
    date: dt.date


@dataclass(frozen=True, slots=True)
class When:
    branches: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr


Expr: TypeAlias = Col | Lit | BinOp | Not | IsIn | Between | IsNull | FillNull | Cut | DatePart | AgeAt | When


@dataclass(frozen=True, slots=True)
class Agg:
    func: str
    arg: Expr | None = None
    q: float | None = None


# --- relations ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    dataset: str
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    input: Relation
    exprs: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class WithColumns:
    input: Relation
    exprs: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Filter:
    input: Relation
    predicate: Expr


@dataclass(frozen=True, slots=True)
class Join:
    left: Relation
    right: Relation
    on: str
    how: TLiteral["inner", "left"] = "inner"


@dataclass(frozen=True, slots=True)
class Aggregate:
    input: Relation
    keys: tuple[str, ...]
    aggs: tuple[tuple[str, Agg], ...]


Relation: TypeAlias = Source | Select | WithColumns | Filter | Join | Aggregate


@dataclass(frozen=True, slots=True)
class Plan:
    """A complete analysis: its root relation and its disclosure parameters."""

    root: Relation
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE


def children(rel: Relation) -> tuple[Relation, ...]:
    """Return the input relations of a relation node."""
    if isinstance(rel, Source):
        return ()
    if isinstance(rel, Join):
        return (rel.left, rel.right)
    return (rel.input,)


def expr_children(e: Expr) -> tuple[Expr, ...]:
    """Return the sub-expressions of an expression node."""
    match e:
        case Col() | Lit():
            return ()
        case BinOp(_, left, right):
            return (left, right)
        case Between(arg, lower, upper):
            return (arg, lower, upper)
        case FillNull(arg, value):
            return (arg, value)
        case When(branches, otherwise):
            return (*(x for b in branches for x in b), otherwise)
        case _:
            return (e.arg,)


def columns_of(e: Expr) -> set[str]:
    """Return the names of the columns an expression reads."""
    if isinstance(e, Col):
        return {e.name}
    out: set[str] = set()
    for c in expr_children(e):
        out |= columns_of(c)
    return out


def sources(rel: Relation) -> list[Source]:
    """Return the source nodes of a relation, left to right."""
    if isinstance(rel, Source):
        return [rel]
    return [s for c in children(rel) for s in sources(c)]
