"""LazyFrame: an immutable handle on a plan; every method returns a new frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import PlanError
from .expr import AggExpr, Expr, _to_node
from .expr import count as _count
from .plan import nodes as n
from .plan import serde
from .plan.nodes import DEFAULT_MIN_GROUP_SIZE
from .plan.standards import standard_pairs

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

    # --- summaries: models and public-health measures (docs/plans.md) ----------

    def fit(self, model: GlmSpec) -> LazyFrame:
        """Fit a model to the rows, e.g. ``.fit(wp.glm(y="val", x=["leeftijd", "vrouw"], family="binomial"))``.

        The result has one row per term (intercept first) with estimate, std_error, statistic,
        p_value, ci_low and ci_high, and the fit statistics in ``.attrs``; only this summary is
        released, after the model checks (docs/plans.md).
        """
        if not isinstance(model, GlmSpec):
            msg = "fit() takes a model specification such as wp.glm(y=..., x=[...], family=...)"
            raise PlanError(msg)
        node = n.Glm(self._rel, model.y, model.x, model.family, model.offset, model.reference)
        return LazyFrame(node, self._ws)

    def corr(self, *columns: str) -> LazyFrame:
        """Pearson correlations of numeric columns, over the rows where all are present."""
        if len(columns) < 2 or not all(isinstance(c, str) for c in columns):
            msg = "corr() takes two or more column names"
            raise PlanError(msg)
        return LazyFrame(n.Corr(self._rel, tuple(columns)), self._ws)

    def standardize(self, *, events: str, age: str, standard: Any, by: str | list[str] | tuple[str, ...] = (),
                    per: int = 100_000) -> LazyFrame:  # fmt: skip
        """Directly age-standardised rates of ``events`` per cell of ``by``, one input row per person at risk.

        Per cell: rate = per · Σ_a w_a · d_a / n_a over the age bands a (w_a: the band's share of
        the standard population, d_a its events, n_a its persons; a band without persons in the
        cell adds 0), with a 95% interval by the normal approximation (variance
        per² · Σ_a w_a² · d_a / n_a²; the lower end at least 0). Everything per band is computed
        inside the secure computation, so small age bands count fully and never leave it.

        Parameters
        ----------
        events
            An int (events per person, e.g. admissions) or bool column. Rows where it or the age
            band is missing are left out.
        age
            A categorical column of age bands, e.g. ``col("geboortedatum").age_at(date).cut(breaks,
            labels=...)``; its code list must be exactly the standard's bands.
        standard
            Every band's standard population: a mapping band → persons (or (band, persons) pairs),
            e.g. ``wp.standard_population("esp2013")`` (5-year bands 0-4 … 85-89, 90+), a CSV file's
            (``wp.standard_population("nl.csv")``), regrouped to your bands with
            ``werkplaats.plan.standards.regroup(std, breaks=..., labels=...)``.
        by
            Keys with public domains (code lists, booleans, cuts, date parts), as for ``group_by``.
        per
            Rates per this many persons (default 100,000).

        Returns
        -------
        LazyFrame
            A plan whose result has one row per cell of the keys' domains (a 'missing' cell per
            key last): the keys, ``rate``, ``ci_low``, ``ci_high``, ``suppressed`` and ``reason``.
            A cell is released with at least k events, k persons and persons in at least 2 age
            bands (else withheld, inside the secure computation); no counts are released.

        Examples
        --------
        >>> import pandas as pd, werkplaats as wp
        >>> from werkplaats.plan.standards import regroup
        >>> std = regroup(wp.standard_population("esp2013"), breaks=[64, 79], labels=["0-64", "65-79", "80+"])
        >>> df = pd.DataFrame({"bsn": range(400), "gemeente": ["A", "B"] * 200,
        ...                    "leeftijd": [50, 70, 85, 90] * 100, "opnamen": [0, 0, 1, 2] * 100})
        >>> q = (wp.scan("t").with_columns(band=wp.col("leeftijd").cut([64, 79], labels=["0-64", "65-79", "80+"]))
        ...      .standardize(events="opnamen", age="band", standard=std, by="gemeente"))
        >>> out = wp.run_local(q, {"t": df})
        >>> print(out[["gemeente", "rate", "suppressed"]].round(1).to_string(index=False))
        gemeente     rate  suppressed
               A   5000.0       False
               B  10000.0       False
            <NA>     <NA>        True
        """
        keys = (by,) if isinstance(by, str) else tuple(by)
        if not all(isinstance(c, str) for c in (events, age, *keys)):
            msg = "standardize: events, age and by must be column names"
            raise PlanError(msg)
        if isinstance(per, bool) or not isinstance(per, int):
            msg = "standardize: per must be a whole number of persons, e.g. 100_000"
            raise PlanError(msg)
        pairs = standard_pairs(standard)  # NB: the check against the age column's code list comes with the schema
        return LazyFrame(n.Standardize(self._rel, keys, events, age, pairs, per), self._ws)

    def crosstab(self, row: str, column: str) -> LazyFrame:
        """Counts per combination of two categorical columns (a cross-table), under the cell rules.

        Tests on the released table: ``wp.stats.chi_square`` and ``wp.stats.two_by_two``.
        """
        return self.group_by(row, column).agg(n=_count())

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


@dataclass(frozen=True)
class GlmSpec:
    """A generalised linear model's specification, for LazyFrame.fit (made by `glm`)."""

    y: str
    x: tuple[str, ...]
    family: str = "gaussian"
    offset: str | None = None
    reference: tuple[tuple[str, str], ...] = ()


def glm(y: str, x: list[str] | tuple[str, ...], *, family: str = "gaussian", offset: str | None = None,
        reference: dict[str, str] | None = None) -> GlmSpec:  # fmt: skip
    """Specify a generalised linear model: ``family`` "gaussian" (OLS), "binomial" (logit) or "poisson" (log).

    ``x`` names the predictors; a categorical (str) predictor becomes dummy columns over its
    code list, leaving out the first code or the one ``reference`` names (``{"zorgtype": "thuiszorg"}``).
    ``offset`` (poisson) names a column added to the linear predictor, e.g. log person-years.

    Examples
    --------
    >>> import werkplaats as wp
    >>> q = wp.scan("vvt/clienten").fit(wp.glm(y="gevallen", x=["leeftijd"], family="binomial"))
    >>> q.node.family
    'binomial'
    """
    if family not in n.GLM_FAMILIES:
        msg = f"glm: family must be one of {n.GLM_FAMILIES}, got {family!r}"
        raise PlanError(msg)
    if isinstance(x, str) or not all(isinstance(c, str) for c in x) or not x:
        msg = "glm: x must be a list of one or more column names"
        raise PlanError(msg)
    if offset is not None and family != "poisson":
        msg = "glm: an offset is for the poisson family (log link) only"
        raise PlanError(msg)
    ref = tuple(sorted((reference or {}).items()))
    return GlmSpec(y, tuple(x), family, offset, ref)


def scan(dataset: str, *, columns: list[str] | None = None) -> LazyFrame:
    """Start an analysis from a catalog dataset, e.g. ``"ggd/meldingen"``."""
    if not isinstance(dataset, str) or not dataset:
        msg = "scan() takes a dataset name such as 'ggd/meldingen'"
        raise PlanError(msg)
    return LazyFrame(n.Source(dataset, tuple(columns) if columns is not None else None))


def concat(frames: list[LazyFrame] | tuple[LazyFrame, ...], *, distinct_on: str | None = None) -> LazyFrame:
    """Stack the rows of datasets with the same columns, e.g. the same table of several organisations.

    Every frame needs the same column names and types; code lists are unioned. Each organisation
    whose dataset is read approves the plan for its own part, and the plan names every source.

    Parameters
    ----------
    frames
        Two or more frames, e.g. ``wp.scan("ziekenhuis_a/opnamen")`` and ``wp.scan("ziekenhuis_b/opnamen")``.
    distinct_on
        A person key: keep each person once (a person admitted to two hospitals counts once). The
        row kept is the first frame's that has the person, and there the person's first row; rows
        without a person key are left out. Done inside the secure computation, revealing nothing.

    Examples
    --------
    >>> import werkplaats as wp
    >>> both = wp.concat([wp.scan("ziekenhuis_a/opnamen"), wp.scan("ziekenhuis_b/opnamen")], distinct_on="bsn")
    >>> q = both.group_by("gemeente").agg(personen=wp.count())
    >>> [s.dataset for s in q.to_plan().root.input.inputs]
    ['ziekenhuis_a/opnamen', 'ziekenhuis_b/opnamen']
    """
    items = list(frames) if isinstance(frames, list | tuple) else []
    if len(items) < 2 or not all(isinstance(f, LazyFrame) for f in items):
        msg = "concat() takes a list of two or more frames, e.g. wp.concat([wp.scan('a/t'), wp.scan('b/t')])"
        raise PlanError(msg)
    if distinct_on is not None and (not isinstance(distinct_on, str) or not distinct_on):
        msg = "concat(distinct_on=...) takes the name of a person-key column"
        raise PlanError(msg)
    ws = next((f._ws for f in items if f._ws is not None), None)
    return LazyFrame(n.Concat(tuple(f.node for f in items), distinct_on), ws)


def from_plan(plan: n.Plan | str) -> LazyFrame:
    """Wrap a plan (or its JSON) as a LazyFrame."""
    p = serde.plan_from_json(plan) if isinstance(plan, str) else plan
    return LazyFrame(p.root)
