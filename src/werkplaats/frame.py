"""LazyFrame: an immutable handle on a plan; every method returns a new frame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .exceptions import PlanError
from .expr import AggExpr, Expr, _to_node
from .plan import nodes as n
from .plan import serde
from .plan.nodes import DEFAULT_MIN_GROUP_SIZE

if TYPE_CHECKING:
    import pandas as pd

    from .catalog.schema import TableSchema
    from .compile.rules import DisclosureRules


def _named(args: tuple[Any, ...], kwargs: dict[str, Any], where: str) -> tuple[tuple[str, n.Expr], ...]:
    out: list[tuple[str, n.Expr]] = []
    for a in args:
        if isinstance(a, str):
            out.append((a, n.Col(a)))
        elif isinstance(a, Expr) and isinstance(a.node, n.Col):
            out.append((a.node.name, a.node))
        else:
            msg = f"{where}: give computed columns a name, e.g. {where}(name=expr)"
            raise PlanError(msg)
    # NB: as in polars, a string names a column; a text literal is wp.lit("...").
    out.extend((k, n.Col(v) if isinstance(v, str) else _to_node(v)) for k, v in kwargs.items())
    return tuple(out)


class LazyFrame:
    """A relational analysis under construction.

    Examples
    --------
    >>> import werkplaats as wp
    >>> q = (wp.scan("ggd/meldingen")
    ...        .filter(wp.col("ziekte") == "COVID-19")
    ...        .group_by("gemeente").agg(n=wp.count()))
    >>> len(q.plan_hash())
    64
    """

    __slots__ = ("_rel", "_ws")

    def __init__(self, rel: n.Relation, ws: Any = None) -> None:
        self._rel = rel
        self._ws = ws  # NB: the workspace a frame came from (wp.connect(...).table), for preview/submit

    @property
    def node(self) -> n.Relation:
        return self._rel

    def select(self, *columns: str | Expr, **named: Any) -> LazyFrame:
        """Keep (and compute) only the given columns."""
        return LazyFrame(n.Select(self._rel, _named(columns, named, "select")), self._ws)

    def with_columns(self, **named: Any) -> LazyFrame:
        """Add or replace columns computed from expressions."""
        if not named:
            msg = "with_columns needs at least one name=expr"
            raise PlanError(msg)
        return LazyFrame(n.WithColumns(self._rel, _named((), named, "with_columns")), self._ws)

    def filter(self, predicate: Expr) -> LazyFrame:
        """Keep rows where predicate is true. Inside MPC no row is dropped: a secret mask is."""
        return LazyFrame(n.Filter(self._rel, _to_node(predicate)), self._ws)

    def join(self, other: LazyFrame, *, on: str, how: str = "inner") -> LazyFrame:
        """Join on one key column; the right side must be unique on it.

        Right-side columns whose names clash with the left get the suffix ``_right``.
        """
        if not isinstance(other, LazyFrame):
            msg = "join: other must be a LazyFrame"
            raise PlanError(msg)
        if not isinstance(on, str):
            msg = "join: on must be one column name (combine multi-column keys first)"
            raise PlanError(msg)
        if how not in n.JOIN_HOWS:
            msg = f"join: how must be one of {n.JOIN_HOWS}, got {how!r}"
            raise PlanError(msg)
        return LazyFrame(n.Join(self._rel, other._rel, on, how), self._ws or other._ws)  # type: ignore[arg-type]

    def group_by(self, *keys: str | Expr) -> GroupBy:
        """Group by key columns; follow with .agg(...)."""
        names: list[str] = []
        for k in keys:
            if isinstance(k, str):
                names.append(k)
            elif isinstance(k, Expr) and isinstance(k.node, n.Col):
                names.append(k.node.name)
            else:
                msg = "group_by takes column names; compute keys first with with_columns(name=expr)"
                raise PlanError(msg)
        return GroupBy(self._rel, tuple(names), self._ws)

    def agg(self, **aggs: AggExpr) -> LazyFrame:
        """Aggregate the whole frame into one row."""
        return GroupBy(self._rel, (), self._ws).agg(**aggs)

    # --- plan ----------------------------------------------------------------

    def to_plan(
        self, *, min_group_size: int = DEFAULT_MIN_GROUP_SIZE, catalog: dict[str, TableSchema] | None = None
    ) -> n.Plan:
        """Return the plan as written; with a catalog, pruned so every source lists exactly
        the columns it reads and no unused column is computed."""
        from .compile.analyze import prune

        return n.Plan(prune(self._rel, catalog) if catalog else self._rel, min_group_size)

    def to_json(self, *, min_group_size: int = DEFAULT_MIN_GROUP_SIZE) -> str:
        """Return the plan's canonical JSON."""
        return serde.canonical_json(self.to_plan(min_group_size=min_group_size))

    def plan_hash(self, *, min_group_size: int = DEFAULT_MIN_GROUP_SIZE) -> str:
        """Return the SHA-256 of the canonical JSON: what approvals sign."""
        return serde.plan_hash(self.to_plan(min_group_size=min_group_size))

    def explain(self, *, min_group_size: int = DEFAULT_MIN_GROUP_SIZE, rules: DisclosureRules | None = None) -> str:
        """Describe the plan in plain language, as a data steward reads it.

        With ``rules`` (a `werkplaats.DisclosureRules`), also name the disclosure rules that
        apply to each output statistic.
        """
        from .plan.explain import explain

        return explain(self.to_plan(min_group_size=min_group_size), rules=rules)

    def __repr__(self) -> str:
        from .plan.explain import steps

        return "<LazyFrame: " + " ".join(steps(self._rel)) + ">"

    def _workspace(self) -> Any:
        if self._ws is None:
            msg = "this frame is not connected to a workspace: start from wp.connect(url, token=...).table(name)"
            raise PlanError(msg)
        return self._ws

    def preview(self, *, rows: int = 200, seed: int = 0) -> pd.DataFrame:
        """Run the plan locally on dummy data generated from the catalog schemas (never real data)."""
        return self._workspace().preview(self, rows=rows, seed=seed)

    def submit(self, *, collaboration: str, purpose: str, min_group_size: int = DEFAULT_MIN_GROUP_SIZE) -> Any:
        """Submit the plan as an analysis request; returns a Request with status(), run() and result()."""
        return self._workspace().submit(self, collaboration=collaboration, purpose=purpose,
                                        min_group_size=min_group_size)  # fmt: skip


class GroupBy:
    """A frame grouped by keys, waiting for .agg(...)."""

    __slots__ = ("_keys", "_rel", "_ws")

    def __init__(self, rel: n.Relation, keys: tuple[str, ...], ws: Any = None) -> None:
        self._rel = rel
        self._keys = keys
        self._ws = ws

    def agg(self, **aggs: AggExpr) -> LazyFrame:
        """Compute named aggregates per group."""
        if not aggs:
            msg = "agg needs at least one name=aggregate, e.g. agg(n=wp.count())"
            raise PlanError(msg)
        out = []
        for name, a in aggs.items():
            if not isinstance(a, AggExpr):
                msg = f"agg({name}=...): expected an aggregate such as wp.count() or wp.col(x).sum()"
                raise PlanError(msg)
            out.append((name, a.node))
        return LazyFrame(n.Aggregate(self._rel, self._keys, tuple(out)), self._ws)


def scan(dataset: str, *, columns: list[str] | None = None) -> LazyFrame:
    """Start an analysis from a catalog dataset, e.g. ``"ggd/meldingen"``."""
    if not isinstance(dataset, str) or not dataset:
        msg = "scan() takes a dataset name such as 'ggd/meldingen'"
        raise PlanError(msg)
    return LazyFrame(n.Source(dataset, tuple(columns) if columns is not None else None))


def from_plan(plan: n.Plan | str) -> LazyFrame:
    """Wrap a plan (or its JSON) as a LazyFrame."""
    p = serde.plan_from_json(plan) if isinstance(plan, str) else plan
    return LazyFrame(p.root)
