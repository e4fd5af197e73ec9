"""Plan nodes: immutable, hashable descriptions of a relational analysis.

A plan is data, never code: every node is a frozen dataclass whose fields are
plain values or other nodes. Executors visit nodes; they never evaluate strings.

Adding a node: define its class here and add it to the ``Expr`` (or ``Relation``)
union; the serde follows from its fields' types (see serde.FIELD_CODECS). Then
give every visitor a ``visit_<Class>`` rule (types, explain, the plain and the
MPC executor) and the JSON Schema an entry; tests/compile/test_node_coverage.py
fails until each has one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, TypeAlias, get_args
from typing import Literal as TLiteral

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
GLM_FAMILIES = ("gaussian", "binomial", "poisson")  # identity, logit and log link (statsmodels' defaults)


# --- expressions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Col:
    """A column of the input relation, by name."""

    name: str


@dataclass(frozen=True, slots=True)
class Lit:
    """A public literal: int, float, bool, str, date or None."""

    value: LitValue


@dataclass(frozen=True, slots=True)
class BinOp:
    """A binary operation; ``op`` is one of BINARY_OPS."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not:
    """Logical negation (Kleene: not missing is missing)."""

    arg: Expr


@dataclass(frozen=True, slots=True)
class IsIn:
    """Whether the value is one of the given literals."""

    arg: Expr
    values: tuple[LitValue, ...]


@dataclass(frozen=True, slots=True)
class Between:
    """lower <= arg <= upper, both ends included."""

    arg: Expr
    lower: Expr
    upper: Expr


@dataclass(frozen=True, slots=True)
class IsNull:
    """Whether the value is missing."""

    arg: Expr


@dataclass(frozen=True, slots=True)
class FillNull:
    """The value, or ``value`` where it is missing."""

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
    """A part of a date; ``part`` is one of DATE_PARTS."""

    arg: Expr
    part: str


@dataclass(frozen=True, slots=True)
class AgeAt:
    """Whole years between a birth date and a public reference date."""

    arg: Expr
    date: dt.date


@dataclass(frozen=True, slots=True)
class When:
    """The value of the first branch whose condition is true, else ``otherwise``."""

    branches: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr


Expr: TypeAlias = Col | Lit | BinOp | Not | IsIn | Between | IsNull | FillNull | Cut | DatePart | AgeAt | When


@dataclass(frozen=True, slots=True)
class Agg:
    """An aggregate function (one of AGG_FUNCS) of an expression; ``len`` has no argument."""

    func: str
    arg: Expr | None = None
    q: float | None = None


# --- relations ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """A catalog dataset; ``columns`` lists those read (None: all, until pruned)."""

    dataset: str
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """Compute the named expressions; only they remain."""

    input: Relation
    exprs: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class WithColumns:
    """Add or replace the named columns."""

    input: Relation
    exprs: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class Filter:
    """Keep the rows where the predicate is true."""

    input: Relation
    predicate: Expr


@dataclass(frozen=True, slots=True)
class Join:
    """Join on one key column; the right side is unique on it."""

    left: Relation
    right: Relation
    on: str
    how: TLiteral["inner", "left"] = "inner"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One row per group of ``keys`` with the named aggregates."""

    input: Relation
    keys: tuple[str, ...]
    aggs: tuple[tuple[str, Agg], ...]


@dataclass(frozen=True, slots=True)
class Glm:
    """A generalised linear model of ``y`` on ``x`` over the input rows; only its summary is released.

    ``family`` is one of GLM_FAMILIES (identity, logit, log link). Rows where ``y``, an ``x`` or the
    ``offset`` is missing are left out (statsmodels' ``missing="drop"``). A categorical (str)
    predictor becomes one dummy column per code of its public code list but the reference: the
    first code, or the one ``reference`` names for it. Only a plan's root may be a model.
    """

    input: Relation
    y: str
    x: tuple[str, ...]
    family: str = "gaussian"
    offset: str | None = None
    reference: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Corr:
    """Pearson correlations of numeric columns, over the rows where every one is present."""

    input: Relation
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Standardize:
    """Directly age-standardised rates of ``events`` per cell of ``keys``.

    The input has one row per person at risk; ``events`` is a count (or boolean) per person and
    ``age`` a categorical column (age bands) whose code list ``standard`` covers with the standard
    population of each band. Rates are per ``per`` persons.
    """

    input: Relation
    keys: tuple[str, ...]
    events: str
    age: str
    standard: tuple[tuple[str, float], ...]
    per: int = 100_000


@dataclass(frozen=True, slots=True)
class Concat:
    """The rows of several relations with the same columns, stacked (a union across organisations).

    Every input has the same column names and types; categorical code lists and date ranges are
    unioned. With ``distinct_on`` (a person key), each person is kept once: the row of the first
    input that has the person, and within that input the person's first row in the input's order.
    Rows whose person key is missing are then left out.
    """

    inputs: tuple[Relation, ...]
    distinct_on: str | None = None


Relation: TypeAlias = Source | Select | WithColumns | Filter | Join | Aggregate | Concat | Glm | Corr | Standardize


@dataclass(frozen=True, slots=True)
class Plan:
    """A complete analysis: its root relation and its disclosure parameters."""

    root: Relation
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE


EXPR_NODES: tuple[type, ...] = get_args(Expr)
RELATION_NODES: tuple[type, ...] = get_args(Relation)
# Relations that only a plan's root may be: each releases a summary, not cells of an aggregate
Summary: TypeAlias = Glm | Corr | Standardize
SUMMARY_NODES: tuple[type, ...] = get_args(Summary)
OUTPUT_NODES: tuple[type, ...] = (Aggregate, *SUMMARY_NODES)


def _nodes_in(value: object, kinds: tuple[type, ...]) -> Iterator[Any]:
    """Yield the nodes of the given kinds in a field value, looking into tuples."""
    if isinstance(value, kinds):
        yield value
    elif isinstance(value, tuple):
        for v in value:
            yield from _nodes_in(v, kinds)


def _field_nodes(node: object, kinds: tuple[type, ...]) -> Iterator[Any]:
    for f in fields(node):  # type: ignore[arg-type]
        yield from _nodes_in(getattr(node, f.name), kinds)


def children(rel: Relation) -> tuple[Relation, ...]:
    """Return the input relations of a relation node, in field order."""
    return tuple(_field_nodes(rel, RELATION_NODES))


def expr_children(e: Expr) -> tuple[Expr, ...]:
    """Return the sub-expressions of an expression node, in field order."""
    return tuple(_field_nodes(e, EXPR_NODES))


def relation_exprs(rel: Relation) -> tuple[Expr, ...]:
    """Return the expressions a relation node holds itself (not its inputs'), aggregates' arguments included."""
    out: list[Expr] = []
    for x in _field_nodes(rel, (*EXPR_NODES, Agg)):
        if not isinstance(x, Agg):
            out.append(x)
        elif x.arg is not None:
            out.append(x.arg)
    return tuple(out)


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
