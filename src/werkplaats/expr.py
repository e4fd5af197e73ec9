"""Expressions: thin immutable wrappers around plan expression nodes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from .exceptions import PlanError
from .plan import nodes as n


def _to_node(x: Any) -> n.Expr:
    if isinstance(x, Expr):
        return x._node
    if x is None or isinstance(x, bool | int | float | str | dt.date):
        if isinstance(x, dt.datetime):
            x = x.date()
        return n.Lit(x)
    msg = f"cannot use a {type(x).__name__} in an expression; use wp.col(...) or wp.lit(...)"
    raise PlanError(msg)


class Expr:
    """A column expression, built lazily; nothing is computed until a plan runs.

    Examples
    --------
    >>> import werkplaats as wp
    >>> e = (wp.col("leeftijd") >= 70) & wp.col("chronisch")
    >>> e.node.op
    'and'
    """

    __slots__ = ("_node",)

    def __init__(self, node: n.Expr) -> None:
        self._node = node

    @property
    def node(self) -> n.Expr:
        """The plan node this expression wraps."""
        return self._node

    def __repr__(self) -> str:
        from .plan.explain import expr_text

        return f"<Expr {expr_text(self._node)}>"

    def __bool__(self) -> bool:
        msg = (
            "an expression has no truth value: it may stand for secret data. Use & | ~ "
            "instead of and/or/not, and wp.when(...) instead of if"
        )
        raise TypeError(msg)

    def __hash__(self) -> int:
        return hash(self._node)

    def _bin(self, op: str, other: Any, *, reflected: bool = False) -> Expr:
        a, b = self._node, _to_node(other)
        return Expr(n.BinOp(op, b, a) if reflected else n.BinOp(op, a, b))

    def __add__(self, o: Any) -> Expr:
        return self._bin("add", o)

    def __radd__(self, o: Any) -> Expr:
        return self._bin("add", o, reflected=True)

    def __sub__(self, o: Any) -> Expr:
        return self._bin("sub", o)

    def __rsub__(self, o: Any) -> Expr:
        return self._bin("sub", o, reflected=True)

    def __mul__(self, o: Any) -> Expr:
        return self._bin("mul", o)

    def __rmul__(self, o: Any) -> Expr:
        return self._bin("mul", o, reflected=True)

    def __truediv__(self, o: Any) -> Expr:
        return self._bin("truediv", o)

    def __rtruediv__(self, o: Any) -> Expr:
        return self._bin("truediv", o, reflected=True)

    def __eq__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("eq", o)

    def __ne__(self, o: Any) -> Expr:  # type: ignore[override]
        return self._bin("ne", o)

    def __lt__(self, o: Any) -> Expr:
        return self._bin("lt", o)

    def __le__(self, o: Any) -> Expr:
        return self._bin("le", o)

    def __gt__(self, o: Any) -> Expr:
        return self._bin("gt", o)

    def __ge__(self, o: Any) -> Expr:
        return self._bin("ge", o)

    def __and__(self, o: Any) -> Expr:
        return self._bin("and", o)

    def __rand__(self, o: Any) -> Expr:
        return self._bin("and", o, reflected=True)

    def __or__(self, o: Any) -> Expr:
        return self._bin("or", o)

    def __ror__(self, o: Any) -> Expr:
        return self._bin("or", o, reflected=True)

    def __invert__(self) -> Expr:
        return Expr(n.Not(self._node))

    def __neg__(self) -> Expr:
        return Expr(n.BinOp("sub", n.Lit(0), self._node))

    def is_in(self, values: Iterable[Any]) -> Expr:
        """Return whether the value is one of the given literals."""
        vals = tuple(_lit_value(v) for v in values)
        return Expr(n.IsIn(self._node, vals))

    def is_between(self, lower: Any, upper: Any) -> Expr:
        """Return lower <= value <= upper (both ends included)."""
        return Expr(n.Between(self._node, _to_node(lower), _to_node(upper)))

    def is_null(self) -> Expr:
        """Return whether the value is missing."""
        return Expr(n.IsNull(self._node))

    def is_not_null(self) -> Expr:
        """Return whether the value is present."""
        return Expr(n.Not(n.IsNull(self._node)))

    def fill_null(self, value: Any) -> Expr:
        """Return the value, or ``value`` where it is missing."""
        return Expr(n.FillNull(self._node, _to_node(value)))

    def cut(self, breaks: Sequence[float], *, labels: Sequence[str] | None = None) -> Expr:
        """Bin numbers into (-inf, b0], (b0, b1], ..., (bk, inf), like polars' cut."""
        bs = tuple(float(b) for b in breaks)
        if labels is None:
            edges = ["-inf", *(_fmt(b) for b in bs), "inf"]
            labels = [f"({edges[i]}, {edges[i + 1]}]" for i in range(len(bs) + 1)]
        return Expr(n.Cut(self._node, bs, tuple(str(x) for x in labels)))

    def age_at(self, date: dt.date | str) -> Expr:
        """Whole years from this date (of birth) to a public reference date."""
        d = dt.date.fromisoformat(date) if isinstance(date, str) else date
        return Expr(n.AgeAt(self._node, d))

    @property
    def dt(self) -> DateNamespace:
        """Date parts of this (date) expression: ``.dt.year()``, ``.dt.iso_week()``, ``.dt.month()``."""
        return DateNamespace(self)

    # aggregates
    def count(self) -> AggExpr:
        """Count the non-missing values of each group."""
        return AggExpr(n.Agg("count", self._node))

    def sum(self) -> AggExpr:
        """Sum the values of each group (of a boolean: count where it holds)."""
        return AggExpr(n.Agg("sum", self._node))

    def mean(self) -> AggExpr:
        """Average the values of each group."""
        return AggExpr(n.Agg("mean", self._node))

    def min(self) -> AggExpr:
        """Return the smallest value of each group."""
        return AggExpr(n.Agg("min", self._node))

    def max(self) -> AggExpr:
        """Return the largest value of each group."""
        return AggExpr(n.Agg("max", self._node))

    def var(self) -> AggExpr:
        """Return the sample variance (n - 1) of each group."""
        return AggExpr(n.Agg("var", self._node))

    def std(self) -> AggExpr:
        """Return the sample standard deviation (n - 1) of each group."""
        return AggExpr(n.Agg("std", self._node))

    def median(self) -> AggExpr:
        """Return the median of each group (linear interpolation)."""
        return AggExpr(n.Agg("median", self._node))

    def quantile(self, q: float) -> AggExpr:
        """Return the q-quantile with linear interpolation (DuckDB's quantile_cont)."""
        return AggExpr(n.Agg("quantile", self._node, float(q)))


def _fmt(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else str(b)


def _lit_value(v: Any) -> n.LitValue:
    node = _to_node(v)
    if not isinstance(node, n.Lit):
        msg = "is_in takes literal values only"
        raise PlanError(msg)
    return node.value


class DateNamespace:
    """Date parts: .dt.year(), .dt.iso_week(), .dt.month()."""

    __slots__ = ("_e",)

    def __init__(self, e: Expr) -> None:
        self._e = e

    def year(self) -> Expr:
        """Return the year."""
        return Expr(n.DatePart(self._e.node, "year"))

    def iso_week(self) -> Expr:
        """Return the ISO week number (1-53)."""
        return Expr(n.DatePart(self._e.node, "iso_week"))

    def month(self) -> Expr:
        """Return the month (1-12)."""
        return Expr(n.DatePart(self._e.node, "month"))


class AggExpr:
    """An aggregate over a group: the only thing that may leave the secure computation."""

    __slots__ = ("_node",)

    def __init__(self, node: n.Agg) -> None:
        self._node = node

    @property
    def node(self) -> n.Agg:
        """The aggregate node this wraps."""
        return self._node

    def __bool__(self) -> bool:
        msg = "an aggregate has no truth value"
        raise TypeError(msg)


class When:
    """wp.when(cond).then(value)[.when(cond).then(value)...].otherwise(value)."""

    __slots__ = ("_branches", "_cond")

    def __init__(self, branches: tuple[tuple[n.Expr, n.Expr], ...], cond: n.Expr) -> None:
        self._branches = branches
        self._cond = cond

    def then(self, value: Any) -> Then:
        """Give the value where the condition holds."""
        return Then((*self._branches, (self._cond, _to_node(value))))


class Then:
    """A conditional with at least one branch: add one with .when(...) or finish with .otherwise(...)."""

    __slots__ = ("_branches",)

    def __init__(self, branches: tuple[tuple[n.Expr, n.Expr], ...]) -> None:
        self._branches = branches

    def when(self, cond: Any) -> When:
        """Add a condition, tested when the earlier ones do not hold."""
        return When(self._branches, _to_node(cond))

    def otherwise(self, value: Any) -> Expr:
        """Give the value where no condition holds, and finish the expression."""
        return Expr(n.When(self._branches, _to_node(value)))


def col(name: str) -> Expr:
    """Refer to a column by name."""
    if not isinstance(name, str) or not name:
        msg = "col() takes a non-empty column name"
        raise PlanError(msg)
    return Expr(n.Col(name))


def lit(value: Any) -> Expr:
    """A literal value: int, float, bool, str, date or None."""
    return Expr(_to_node(value))


def when(cond: Any) -> When:
    """Start a conditional expression."""
    return When((), _to_node(cond))


def count() -> AggExpr:
    """Count the rows of each group."""
    return AggExpr(n.Agg("len"))
