"""Rule 9, the query register: released cell definitions, and which of them a new plan is checked against.

Differencing across requests: two released tables whose cells differ by one person (an age
range 40–60 and 40–61, ``bsn != X``, one row more in a cell) give that person's count and
sum by subtraction, although each table alone passes every other rule. The register keeps,
per collaboration, the *definitions* of every released table's cells — the plan fragment
that decides which rows fall in which cell (the final aggregate's input relation and its
keys), never members or values — and which cells were released. A new job recomputes each
registered definition that is comparable with its own cells in the same secure run
(`kernels/register.py`) and withholds its whole result (REGISTER) when a cell it would
release and a released registered cell differ by between 1 and k − 1 contributing rows.

Comparable rows. Cells can be compared row by row only when their rows are the same
universe. The rows of a final aggregate's input are the rows of its *spine*: follow
Filter, WithColumns, Select and a Join's left side down to a Source (the universe is that
table's rows) or to an intermediate Aggregate (its groups: one key, traced unchanged to a
source column, over a spine of the same size). `universe` states this statically; only
registered tables of the same universe are evaluated. What it does not catch: cells over
another universe (another base table, a differently defined or computed group key, rows
that come from a join's right side), and contributors counted as rows of the universe, not
as persons (a person with several rows in the base table differs by several rows).

Security model: everything here is public — plans, cell keys, which cells were released.
The rows and their memberships are only ever compared inside the MPC program (or by the
plain executor, which sees all data anyway).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from ..exceptions import PlanError
from ..plan import nodes as n
from ..plan.serde import canonical_json, plan_from_json
from ..result import REVEALED, Revealed, key_grid
from .analyze import Analysis, check, join_renames, prune, spine
from .plain import PlainCompiler, _py, _table_name, expr_sql, q, register_tables
from .rules import DisclosureRules

if TYPE_CHECKING:
    from ..catalog.schema import TableSchema

MAX_REGISTERED = 50  # NB: at most this many registered tables are recomputed in one run; more: refused
RID = "__rid"  # the hidden column that carries each row's position in the universe's base


# --- the universe -------------------------------------------------------------------------


def _key_origin(a: Analysis, rel: n.Relation, name: str) -> tuple[str, str] | None:
    """Return the (dataset, column) a spine column is, unchanged, or None when it is computed."""
    match rel:
        case n.Source(dataset, _):
            return (dataset, name)
        case n.Filter(inp, _):
            return _key_origin(a, inp, name)
        case n.WithColumns(inp, exprs):
            return None if any(k == name for k, _ in exprs) else _key_origin(a, inp, name)
        case n.Select(inp, exprs):
            e = dict(exprs).get(name)
            return _key_origin(a, inp, e.name) if isinstance(e, n.Col) else None
        case n.Join(left, _, _, _):
            return _key_origin(a, left, name) if name in a.schema(left) else None
        case n.Aggregate(inp, keys, _):
            return _key_origin(a, inp, name) if name in keys else None
    return None


def universe(a: Analysis) -> str | None:
    """Return the signature of the rows a checked plan's cells are made of, or None when not comparable.

    ``["rows", dataset]``: the rows of a source table. ``["groups", dataset, column, sources]``:
    the groups of an intermediate aggregate on one key that is the source column unchanged,
    over a spine that holds the rows of ``sources`` (its row count, hence the groups' positions).
    """
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    base = spine(root.input)[-1]
    if isinstance(base, n.Source):
        return json.dumps(["rows", base.dataset])
    if not isinstance(base, n.Aggregate):
        return None  # NB: the rows of a concat (several organisations' tables) are not compared (docs/disclosure.md)
    if len(base.keys) != 1:
        return None
    origin = _key_origin(a, base.input, base.keys[0])
    if origin is None:
        return None
    return json.dumps(["groups", *origin, sorted(s.dataset for s in n.sources(base.input))])


def spine_has_join(rel: n.Relation) -> bool:
    """Return whether rows of the spine are reordered by a join (so they must be aligned by their row ids)."""
    return any(isinstance(r, n.Join) for r in spine(rel))


# --- entries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterEntry:
    """One released table's cell definitions: what the register keeps (public; no members, no values).

    plan: canonical JSON of ``Plan(Aggregate(input, keys, n=len()), k)``, the cells' definition;
    released: the key tuples of the cells that were released; rules: the settings applied.
    """

    plan: str
    released: tuple[tuple[Any, ...], ...]
    universe: str
    rules: dict[str, Any] = field(default_factory=dict)
    request: str = ""
    job: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-ready values."""
        return {"plan": self.plan, "released": [list(c) for c in self.released], "universe": self.universe,
                "rules": dict(self.rules), "request": self.request, "job": self.job}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegisterEntry:
        """Read an entry (see to_dict); raise PlanError when malformed."""
        try:
            return cls(str(d["plan"]), tuple(tuple(c) for c in d["released"]), str(d["universe"]),
                       dict(d.get("rules") or {}), str(d.get("request", "")), str(d.get("job", "")))  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            msg = f"rule 9: a malformed register entry ({type(e).__name__})"
            raise PlanError(msg) from None


def cell_definitions(a: Analysis) -> n.Plan:
    """Return the plan fragment that defines a checked plan's cells: its final aggregate's input and keys."""
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    cells = n.Aggregate(root.input, root.keys, (("n", n.Agg("len")),))
    return n.Plan(prune(cells, a.catalog), a.plan.min_group_size)  # NB: only the columns the cells read


def entry_for(a: Analysis, rev: Revealed, *, request: str = "", job: str = "") -> RegisterEntry | None:
    """Return the register entry of a released result, or None when nothing of it was released.

    NB: a cell counts as released when the cell rule released it, even where each of its statistics
    was withheld by another rule: the register errs towards checking more.
    """
    u = universe(a)
    if u is None or int(rev.withheld) != REVEALED:
        return None
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    schema = a.schema(root.input)
    grid = key_grid([schema[k].grouping_domain or () for k in root.keys])
    released = tuple(_jsonable(c) for c, ok in zip(grid, np.asarray(rev.cell_ok).astype(bool), strict=True) if ok)
    if not released:
        return None
    return RegisterEntry(canonical_json(cell_definitions(a)), released, u, a.rules.to_settings(), request, job)


def _jsonable(cell: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.item() if isinstance(v, np.generic) else v for v in cell)


def overlapping(entries: Iterable[RegisterEntry], u: str | None, *, cap: int = MAX_REGISTERED) -> list[RegisterEntry]:
    """Return the entries of universe u (entries in order of release, the most recent last); refuse more than cap.

    NB: never a partial check: when more than ``cap`` registered tables would have to be
    recomputed, the request is refused with the reason rather than checked against some.
    """
    if u is None:
        return []
    same = [e for e in entries if e.universe == u]
    if len(same) > cap:
        msg = (
            f"rule 9 (the query register): {len(same)} released tables of this collaboration are made of the "
            f"same rows as this request, more than the {cap} one run can check; the request is refused rather "
            "than checked against some of them. Ask the stewards to review the collaboration's register"
        )
        raise PlanError(msg)
    return same


@functools.lru_cache(maxsize=4 * MAX_REGISTERED)
def _parsed(text: str) -> n.Plan:
    """Return a registered plan, decoded and validated once (plans are immutable)."""
    return plan_from_json(text)


@dataclass
class Registered:
    """A register entry checked against the catalog: its Analysis and the released cells' indices."""

    entry: RegisterEntry
    analysis: Analysis
    released: list[int]


def attach(a: Analysis, entries: Sequence[RegisterEntry], catalog: dict[str, TableSchema] | None = None) -> None:
    """Check each entry's cell definitions like a plan and set ``a.register`` to those of a's universe.

    catalog: the schemas the entries read (default a's own). Raises PlanError when an entry
    reads what the catalog does not have.
    """
    if not a.rules.register:
        a.register = []
        return
    u = universe(a)
    out: list[Registered] = []
    for e in overlapping(entries, u):
        cat = catalog or a.catalog
        missing = sorted({s.dataset for s in n.sources(_parsed(e.plan).root)} - set(cat))
        if missing:
            msg = (
                f"rule 9 (the query register): a released table made of the same rows as this request also read "
                f"{missing}, which this request does not read, so it cannot be checked in this run; the request "
                "is refused rather than checked partially. Read those datasets too (e.g. the same join)"
            )
            raise PlanError(msg)
        try:
            ra = check(_parsed(e.plan), cat, DisclosureRules.cells_only())
        except PlanError as err:
            msg = f"rule 9 (the query register): a registered table no longer checks against the catalog: {err}"
            raise PlanError(msg) from None
        if universe(ra) != u:
            continue  # NB: the hub said so, the plan disagrees: not comparable, so not evaluated
        root = ra.plan.root
        assert isinstance(root, n.Aggregate)
        schema = ra.schema(root.input)
        grid = key_grid([schema[k].grouping_domain or () for k in root.keys])
        index = {_jsonable(c): i for i, c in enumerate(grid)}
        released = sorted({index[c] for c in e.released if c in index})
        if released:
            out.append(Registered(e, ra, released))
    a.register = out


def register_sources(a: Analysis) -> list[n.Source]:
    """Return the sources the register check reads (those of the attached entries)."""
    return [s for r in a.register for s in n.sources(r.analysis.plan.root)]


def entries_to_json(a: Analysis) -> list[dict[str, Any]] | None:
    """Return the attached entries as JSON values (for a party's run header), or None without any."""
    return [r.entry.to_dict() for r in a.register] or None


class Register:
    """A query register for local runs: `run_local(..., register=reg)` checks against it and records releases.

    A workspace's hub keeps the register per collaboration in its database; this in-memory
    one lets a test or a notebook run one query after another as a collaboration would.

    Examples
    --------
    >>> import dataclasses, pandas as pd, werkplaats as wp
    >>> from werkplaats.compile.register import Register
    >>> df = pd.DataFrame({"g": ["A"] * 40, "age": list(range(30, 70))})
    >>> rules = dataclasses.replace(wp.DisclosureRules.cells_only(), register=True)
    >>> def q(hi):
    ...     return wp.scan("t").filter(wp.col("age") <= hi).group_by("g").agg(n=wp.count())
    >>> reg = Register()
    >>> int(wp.run_local(q(50), {"t": df}, rules=rules, register=reg)["n"][0])
    21
    >>> wp.run_local(q(51), {"t": df}, rules=rules, register=reg)["reason"][0]
    'the whole result: a cell differs from a cell of an earlier released result by between 1 and 9 contributors'
    >>> len(reg)
    1
    """

    def __init__(self, entries: Iterable[RegisterEntry] = ()) -> None:
        self.entries: list[RegisterEntry] = list(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, a: Analysis, rev: Revealed) -> RegisterEntry | None:
        """Record a run's released cells (nothing when it released none); return the entry."""
        e = entry_for(a, rev)
        if e is not None:
            self.entries.append(e)
        return e


# --- the plain executor's check ----------------------------------------------------------------


def plain_passes(a: Analysis, tables: dict[str, pd.DataFrame]) -> int:
    """Return 1 when no released cell of a differs from a registered released cell by 1 … k − 1 rows, else 0.

    The same decision as the MPC's (`kernels/register.py`), on sets of row ids of the universe.
    """
    if not a.register:
        return 1
    k = a.plan.min_group_size
    mine, *registered = _members([a, *(r.analysis for r in a.register)], tables)
    shown = [m for m in mine if len(m) >= k]  # NB: the cells the cell rule releases
    for r, theirs in zip(a.register, registered, strict=True):
        kk = max(k, r.analysis.plan.min_group_size)
        for j in r.released:
            if any(1 <= len(m ^ theirs[j]) <= kk - 1 for m in shown):
                return 0
    return 1


def _members(analyses: list[Analysis], tables: dict[str, pd.DataFrame]) -> list[list[set[Any]]]:
    """Return, per checked plan of one universe and per cell (key_grid order), the ids of its rows in the universe."""
    sqls = []
    for a in analyses:
        root = a.plan.root
        assert isinstance(root, n.Aggregate)
        base = spine(root.input)[-1]
        if isinstance(base, n.Source) and RID not in tables[base.dataset]:
            df = tables[base.dataset]
            tables = {**tables, base.dataset: df.assign(**{RID: np.arange(len(df), dtype=np.int64)})}
        sqls.append(
            f"SELECT {', '.join([q(RID), *(q(k) for k in root.keys)])} FROM ({_RidSql(a, base).visit(root.input)})"
        )
    con = duckdb.connect(":memory:")  # NB: one connection for every query (as run_sql, without its per-call set-up)
    try:
        register_tables(con, tables, " ".join(sqls))
        results = [con.execute(sql).df() for sql in sqls]
    finally:
        con.close()
    out = []
    for a, got in zip(analyses, results, strict=True):
        root = a.plan.root
        assert isinstance(root, n.Aggregate)
        schema = a.schema(root.input)
        grid = key_grid([schema[k].grouping_domain or () for k in root.keys])
        index = {c: i for i, c in enumerate(grid)}
        cells: list[set[Any]] = [set() for _ in grid]
        for row in got.itertuples(index=False):
            cells[index[tuple(_py(v) for v in row[1:])]].add(row[0])
        out.append(cells)
    return out


class _RidSql(PlainCompiler):
    """The plain compiler, carrying each spine row's id in the universe (RID) up to the final aggregate's input."""

    def __init__(self, a: Analysis, base: n.Relation) -> None:
        super().__init__(a)
        self.base = base
        self.on = True  # NB: off below a join's right side and below the base

    def visit_Source(self, r: n.Source) -> str:
        if not (r is self.base and self.on):
            return super().visit_Source(r)
        cols = [f"CAST({q(c)} AS DATE) AS {q(c)}" if t.kind == "date" else q(c) for c, t in self.a.schema(r).items()]
        return f"SELECT {', '.join([*cols, q(RID)])} FROM {q(_table_name(r.dataset))}"

    def visit_WithColumns(self, r: n.WithColumns) -> str:
        if not self.on:
            return super().visit_WithColumns(r)
        new = {k for k, _ in r.exprs}
        keep = [q(c) for c in [*self.a.schema(r.input), RID] if c not in new]
        adds = [f"{expr_sql(e)} AS {q(k)}" for k, e in r.exprs]
        return f"SELECT {', '.join(keep + adds)} FROM ({self.visit(r.input)})"

    def visit_Select(self, r: n.Select) -> str:
        if not self.on:
            return super().visit_Select(r)
        cols = [f"{expr_sql(e)} AS {q(k)}" for k, e in r.exprs]
        return f"SELECT {', '.join([*cols, q(RID)])} FROM ({self.visit(r.input)})"

    def visit_Join(self, r: n.Join) -> str:
        if not self.on:
            return super().visit_Join(r)
        ls, rs = self.a.schema(r.left), self.a.schema(r.right)
        cols = [f"l.{q(c)}" for c in [*ls, RID]]
        cols += [f"r.{q(c)} AS {q(new)}" for c, new in join_renames(ls, rs, r.on).items()]
        how = "LEFT JOIN" if r.how == "left" else "JOIN"
        left = self.visit(r.left)
        self.on = False
        try:
            right = self.visit(r.right)
        finally:
            self.on = True
        return f"SELECT {', '.join(cols)} FROM ({left}) l {how} ({right}) r ON l.{q(r.on)} = r.{q(r.on)}"

    def visit_Aggregate(self, r: n.Aggregate) -> str:
        if not (r is self.base and self.on):
            return super().visit_Aggregate(r)
        self.on = False
        try:
            sql = super().visit_Aggregate(r)
        finally:
            self.on = True
        key = q(r.keys[0])
        rid = f"CASE WHEN {key} IS NULL THEN 'N' ELSE 'V' || CAST({key} AS VARCHAR) END AS {q(RID)}"
        return f"SELECT *, {rid} FROM ({sql})"
