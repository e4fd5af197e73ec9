"""Check a plan against the catalog before any executor sees it.

Computes every relation's schema, refuses row-level outputs, unknown columns,
type errors and joins whose right side is not known to be unique on its key, and
lists the per-source checks a data owner must make before contributing.
``check`` is the one entry point (check, prune, check again); ``result_frame``
turns an executor's revealed cells into the result DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..catalog.schema import TableSchema
from ..exceptions import PlanError
from ..plan import nodes as n
from ..plan.limits import MAX_AGGREGATES, MAX_OUTPUT_CELLS
from ..plan.types import DType, Schema, agg_dtype, infer, stacked_dtype, table_dtypes
from ..plan.visitor import Visitor
from ..result import Revealed, build_frame
from .rules import DisclosureRules

RIGHT_SUFFIX = "_right"
MAX_CONCAT_INPUTS = 100  # NB: as the JSON Schema's maxItems of a concat's inputs
RESERVED = "__union"  # NB: the union rule's hidden columns (kernels/concat.py PART, ONLY; plain.py): no plan column


@dataclass
class Analysis:
    """What an executor needs to know about a checked plan."""

    plan: n.Plan
    catalog: dict[str, TableSchema]
    rules: DisclosureRules = field(default_factory=DisclosureRules)
    row_counts: dict[str, int] | None = None  # NB: public (rounded) row counts per source, where known
    schemas: dict[n.Relation, Schema] = field(default_factory=dict)
    unique_keys: set[tuple[str, str]] = field(default_factory=set)
    key_columns: set[tuple[str, str]] = field(default_factory=set)
    lineage: Any = None  # NB: compile/lineage.py's memo for this plan
    register: list[Any] = field(default_factory=list)  # NB: rule 9's checked entries (compile/register.py)

    def schema(self, rel: n.Relation) -> Schema:
        """Return the (checked) output schema of a relation of the plan."""
        return self.schemas[rel]


def check(plan: n.Plan, catalog: dict[str, TableSchema], rules: DisclosureRules | None = None,
          row_counts: dict[str, int] | None = None) -> Analysis:  # fmt: skip
    """Check a plan, prune it to the columns it reads, and return the Analysis of the pruned plan.

    The plan as written is checked first, so that errors in columns the output never
    uses are still reported, and messages list every column of a dataset. The
    pruned plan (``Analysis.plan``) is the one executed, explained and signed.
    rules are the disclosure rules the run applies (default: `DisclosureRules()`, a
    workspace's); row_counts the sources' public row counts where known (rule 8).
    """
    rules = rules if rules is not None else DisclosureRules()
    first = analyze(plan, catalog, rules, row_counts)
    keep = rules.person_keys if rules.perturb else None  # NB: rule 6 reads each source's person key (record keys)
    root = prune(plan.root, catalog, person_keys=keep, schemas=first.schemas)
    return analyze(n.Plan(root, plan.min_group_size), catalog, rules, row_counts)


def result_frame(a: Analysis, rev: Revealed) -> pd.DataFrame:
    """Return the result DataFrame of a checked plan's revealed cells (from either executor)."""
    root = a.plan.root
    if isinstance(root, n.Summary):
        from .models import summary_module  # NB: models read the Analysis this module defines

        return summary_module(root).frame(a, rev)
    assert isinstance(root, n.Aggregate)  # NB: analyze guarantees it
    in_schema = a.schema(root.input)
    return build_frame(a.plan, [in_schema[k] for k in root.keys], a.schema(root), rev)


def join_renames(left: Schema, right: Schema, on: str) -> dict[str, str]:
    """Return how the right side's columns are named in a join's output."""
    return {c: (c + RIGHT_SUFFIX if c in left else c) for c in right if c != on}


def _unique_origin(rel: n.Relation, key: str) -> tuple[str, str] | None:
    """Return (dataset, column) whose uniqueness makes rel unique on key; '' if by construction.

    NB: a relation kind not listed here is not known to keep a key unique (None): safe by default.
    """
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
        case n.Concat(_, distinct_on):
            return ("", "") if distinct_on == key else None  # NB: one row per person by construction
    return None


def check_structure(plan: n.Plan) -> None:
    """Refuse what is wrong with a plan whatever the catalog says: a row-level output, k < 1."""
    if plan.min_group_size < 1:
        msg = "min_group_size must be at least 1"
        raise PlanError(msg)
    if not isinstance(plan.root, n.OUTPUT_NODES):
        op = type(plan.root).__name__.lower()
        msg = (
            f"the plan's output would be row-level: it ends in '{op}'. Only aggregates and model "
            "summaries may leave the secure computation; finish with .group_by(...).agg(...), .agg(...) or .fit(...)"
        )
        raise PlanError(msg)
    for rel in _relations(plan.root):
        if rel is not plan.root and isinstance(rel, n.SUMMARY_NODES):
            op = type(rel).__name__.lower()
            msg = f"a {op} can only be the plan's last step: its summary is the output, not rows to analyse further"
            raise PlanError(msg)


def _relations(rel: n.Relation) -> list[n.Relation]:
    return [rel, *(r for c in n.children(rel) for r in _relations(c))]


def analyze(plan: n.Plan, catalog: dict[str, TableSchema], rules: DisclosureRules | None = None,
            row_counts: dict[str, int] | None = None) -> Analysis:  # fmt: skip
    """Check a plan and return its Analysis, or raise PlanError saying what is wrong."""
    check_structure(plan)
    a = Analysis(plan, catalog, rules if rules is not None else DisclosureRules(), row_counts)
    SchemaOf(a).visit(plan.root)
    from .keys import check_person_keys  # NB: keys reads the Analysis this module defines

    check_person_keys(a)
    root = plan.root
    if isinstance(root, n.Summary):
        return a  # NB: SchemaOf checked the summary (compile/models); rules 6-9 are about cells
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
    cells = len(root.aggs)
    for k in root.keys:
        cells *= max(len(schema[k].grouping_domain or ()), 1)
    if cells > MAX_OUTPUT_CELLS:
        msg = (
            f"the output would have {cells} cells (groups of {list(root.keys)} times {len(root.aggs)} "
            f"aggregates), more than the limit of {MAX_OUTPUT_CELLS}; group by fewer or coarser keys"
        )
        raise PlanError(msg)
    check_limits(a)
    from .perturb import effective_rules  # NB: perturb reads the Analysis this module defines

    a.rules = effective_rules(a)  # NB: rule 6: counts of rows without a person key are rounded, not perturbed
    return a


def check_limits(a: Analysis) -> None:
    """Refuse more output groups than rule 8 allows: rules.max_cells, and no more than rows / k per source."""
    root = a.plan.root
    assert isinstance(root, n.Aggregate)  # NB: check_structure guarantees it
    schema, k = a.schemas[root.input], a.plan.min_group_size
    groups = 1
    for key in root.keys:
        groups *= len(schema[key].grouping_domain or ()) + 1  # NB: every key's domain has a 'missing' cell too
    if groups > a.rules.max_cells:
        msg = (
            f"the output would have {groups} groups (the cells of {list(root.keys)}, each with a 'missing' "
            f"value), more than the limit of {a.rules.max_cells} per request (rule 8, max_cells); "
            "group by fewer or coarser keys"
        )
        raise PlanError(msg)
    if a.rules.cells_per_source and a.row_counts:
        known = {s.dataset: a.row_counts[s.dataset] for s in n.sources(root) if s.dataset in a.row_counts}
        if known:
            ds = min(known, key=lambda d: known[d])
            limit = max(known[ds] // k, 1)  # NB: one cell is always allowed: the cell rule decides it
            if groups > limit:
                msg = (
                    f"the output would have {groups} groups, more than {ds}'s {known[ds]} rows divided by "
                    f"k = {k} ({limit}): at most one group per {k} rows of the smallest source (rule 8, "
                    "cells_per_source), so that no group can hold one person; group by fewer or coarser keys"
                )
                raise PlanError(msg)


class SchemaOf(Visitor[Schema]):
    """The output schema of each relation node, checked; remembered per node in the Analysis."""

    name = "the plan checker"

    def __init__(self, a: Analysis) -> None:
        self.a = a

    def visit(self, node: Any, *args: Any) -> Schema:
        """Return a relation's schema, computing it (and its inputs') once."""
        if node not in self.a.schemas:
            out = super().visit(node, *args)
            for c in out:
                if c.startswith(RESERVED):  # NB: a column of that name would overwrite the union rule's own
                    msg = f"column {c!r}: names starting with {RESERVED!r} are reserved for the union rule"
                    raise PlanError(msg)
            self.a.schemas[node] = out
        return self.a.schemas[node]

    def visit_Source(self, r: n.Source) -> Schema:
        if r.dataset not in self.a.catalog:
            msg = f"unknown dataset {r.dataset!r}; known datasets: {sorted(self.a.catalog)}"
            raise PlanError(msg)
        try:
            return table_dtypes(self.a.catalog[r.dataset], r.columns)
        except Exception as e:
            raise PlanError(str(e)) from None

    def visit_Filter(self, r: n.Filter) -> Schema:
        out = self.visit(r.input)
        if infer(r.predicate, out, "filter").kind != "bool":
            msg = "filter: the predicate must be boolean"
            raise PlanError(msg)
        return out

    def visit_WithColumns(self, r: n.WithColumns) -> Schema:
        base = self.visit(r.input)
        out = dict(base)
        _unique_names([k for k, _ in r.exprs], "with_columns")
        for name, expr in r.exprs:
            out[name] = _value_type(infer(expr, base, f"with_columns({name}=...)"), name)
        return out

    def visit_Select(self, r: n.Select) -> Schema:
        base = self.visit(r.input)
        _unique_names([k for k, _ in r.exprs], "select")
        return {name: _value_type(infer(e, base, f"select({name}=...)"), name) for name, e in r.exprs}

    def visit_Join(self, r: n.Join) -> Schema:
        on = r.on
        ls, rs = self.visit(r.left), self.visit(r.right)
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
        for side_rel in (r.left, r.right):
            src = _unique_origin(side_rel, on)
            if src is not None and src[0]:
                self.a.key_columns.add(src)
        origin = _unique_origin(r.right, on)
        if origin is None:
            msg = (
                f"join on {on!r}: the right side is not known to be unique on {on!r}. "
                f"Aggregate it first with .group_by({on!r}).agg(...), or join a dataset whose "
                f"{on!r} is a unique key"
            )
            raise PlanError(msg)
        if origin[0]:
            self.a.unique_keys.add(origin)
        out = dict(ls)
        for c, new in join_renames(ls, rs, on).items():
            out[new] = rs[c]
        if r.how not in n.JOIN_HOWS:
            msg = f"join: how must be one of {n.JOIN_HOWS}, got {r.how!r}"
            raise PlanError(msg)
        return out

    def visit_Aggregate(self, r: n.Aggregate) -> Schema:
        base = self.visit(r.input)
        for k in r.keys:
            if k not in base:
                msg = f"group_by: unknown column {k!r}; available columns: {sorted(base)}"
                raise PlanError(msg)
        if len(r.aggs) > MAX_AGGREGATES:
            msg = f"agg: {len(r.aggs)} aggregates, more than the limit of {MAX_AGGREGATES} in one agg(...)"
            raise PlanError(msg)
        _unique_names([*r.keys, *(k for k, _ in r.aggs)], "group_by/agg")
        for k in r.keys:
            src = _unique_origin(r.input, k)
            if src is not None and src[0]:
                self.a.key_columns.add(src)
        out = {k: base[k] for k in r.keys}
        for name, agg in r.aggs:
            if agg.func not in n.AGG_FUNCS:
                msg = f"agg({name}=...): unknown aggregate {agg.func!r}"
                raise PlanError(msg)
            out[name] = agg_dtype(agg, base, f"agg({name}=...)")
        return out

    def visit_Concat(self, r: n.Concat) -> Schema:
        if not 2 <= len(r.inputs) <= MAX_CONCAT_INPUTS:
            msg = f"concat needs from 2 to {MAX_CONCAT_INPUTS} inputs, got {len(r.inputs)}"
            raise PlanError(msg)
        schemas = [self.visit(i) for i in r.inputs]
        first = schemas[0]
        for i, s in enumerate(schemas[1:], 2):
            for c in first:
                if c not in s:
                    msg = (f"concat: input {i} ({_named_sources(r.inputs[i - 1])}) has no column {c!r}, which input 1 "
                           f"({_named_sources(r.inputs[0])}) has; every input needs the same columns")  # fmt: skip
                    raise PlanError(msg)
            for c in s:
                if c not in first:
                    msg = (f"concat: input {i} ({_named_sources(r.inputs[i - 1])}) has a column {c!r} that input 1 "
                           f"({_named_sources(r.inputs[0])}) does not have; every input needs the same columns "
                           "(select the common ones first)")  # fmt: skip
                    raise PlanError(msg)
            for c, t in first.items():
                if s[c].kind != t.kind:
                    msg = (f"concat: column {c!r} is {t.kind} in input 1 ({_named_sources(r.inputs[0])}) but "
                           f"{s[c].kind} in input {i} ({_named_sources(r.inputs[i - 1])}); every input needs the "
                           "same type")  # fmt: skip
                    raise PlanError(msg)
        out = {c: stacked_dtype([s[c] for s in schemas]) for c in first}
        d = r.distinct_on
        if d is not None:
            if d not in out:
                msg = f"concat: distinct_on {d!r} is not a column of the inputs; they have {sorted(out)}"
                raise PlanError(msg)
            if out[d].kind not in ("int", "str", "date"):
                msg = f"concat: distinct_on {d!r} must be an int, str or date person key, not {out[d].kind}"
                raise PlanError(msg)
            for i, inp in enumerate(r.inputs, 1):
                _check_order_kept(inp, d, i)
            from .order import sort_columns  # NB: order reads the Analysis this module defines

            for ds, col in sort_columns(self.a).items():  # NB: an owner sorts its rows on a join key (stably)
                if col != d and ds in {s.dataset for s in n.sources(r)}:
                    msg = (f"concat distinct on {d!r}: {ds} is also joined on {col!r} in this plan, which reorders "
                           "a person's rows, so the row kept per person would be ambiguous")  # fmt: skip
                    raise PlanError(msg)
        _check_sources_once(r)
        return out

    def _summary(self, r: n.Summary) -> Schema:
        from .models import summary_module  # NB: models read the Analysis this module defines

        base = self.visit(r.input)
        return summary_module(r).schema(self.a, r, base)

    def visit_Glm(self, r: n.Glm) -> Schema:
        return self._summary(r)

    def visit_Corr(self, r: n.Corr) -> Schema:
        return self._summary(r)

    def visit_Standardize(self, r: n.Standardize) -> Schema:
        return self._summary(r)


def _named_sources(rel: n.Relation) -> str:
    return ", ".join(dict.fromkeys(s.dataset for s in n.sources(rel)))


def _row_sources(rel: n.Relation) -> list[str]:
    """Return the datasets whose rows make rel's rows: every source but those only on a join's right side.

    NB: a join's right side is unique on its key: it adds columns to the left side's rows, never rows.
    """
    if isinstance(rel, n.Join):
        return _row_sources(rel.left)
    if isinstance(rel, n.Source):
        return [rel.dataset]
    return [ds for child in n.children(rel) for ds in _row_sources(child)]


def _check_sources_once(r: n.Concat) -> None:
    """Refuse a union in which one dataset's rows are read by more than one input (docs/disclosure.md, rule 5).

    NB: a union stacks different organisations' tables; the same rows stacked twice would count each
    person twice (a cell of 6 persons would show 12 rows and pass k = 10). A dataset joined as a
    lookup (a join's right side) by several inputs adds columns only, and is allowed.
    """
    seen: dict[str, int] = {}
    for i, inp in enumerate(r.inputs, 1):
        for ds in dict.fromkeys(_row_sources(inp)):
            if ds in seen:
                msg = (f"concat: the rows of {ds} are read by input {seen[ds]} and by input {i}; a union stacks "
                       "different organisations' tables and names each one once, so that no row is counted twice "
                       "(filter one input instead of stacking a dataset on itself)")  # fmt: skip
                raise PlanError(msg)
            seen[ds] = i


def cell_union(plan: n.Plan) -> n.Concat | None:
    """Return the union whose rows reach the final aggregate's cells, or None (the union rule, per cell).

    Its spine: from the final aggregate's input down Filter, WithColumns, Select and a join's left
    side. A union elsewhere (a join's right side, an intermediate aggregate, another union's input,
    under a summary) is checked on the whole result instead (compile/spu.py, compile/plain.py).
    """
    root = plan.root
    if not isinstance(root, n.Aggregate):
        return None
    base = spine(root.input)[-1]
    return base if isinstance(base, n.Concat) else None


def spine(rel: n.Relation) -> list[n.Relation]:
    """Return the relations from rel down to its spine's base (a Source, an intermediate Aggregate or a
    Concat), both included: Filter, WithColumns, Select and a join's left side keep the spine's rows."""
    out = [rel]
    while True:
        match out[-1]:
            case n.Filter(inp, _) | n.WithColumns(inp, _) | n.Select(inp, _):
                out.append(inp)
            case n.Join(left, _, _, _):
                out.append(left)
            case _:
                return out


def _check_order_kept(rel: n.Relation, key: str, i: int) -> None:
    """Refuse an input of a distinct concat that reorders one person's rows: a join or a distinct on another key.

    NB: the kept row is the person's first in the input's order; both executors agree on that order
    as long as rows are only reordered by this key (an MPC join sorts its output on its key).
    """
    for sub in _relations(rel):
        other = sub.on if isinstance(sub, n.Join) else sub.distinct_on if isinstance(sub, n.Concat) else None
        if other is not None and other != key:
            what = f"joins on {other!r}" if isinstance(sub, n.Join) else f"is distinct on {other!r}"
            msg = (f"concat distinct on {key!r}: input {i} {what}, which reorders a person's rows, so the row kept "
                   f"per person would be ambiguous; join on {other!r} after the concat instead")  # fmt: skip
            raise PlanError(msg)


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


def prune(rel: n.Relation, catalog: dict[str, TableSchema], needed: set[str] | None = None, *,
          person_keys: tuple[str, ...] | None = None,
          schemas: dict[n.Relation, Schema] | None = None) -> n.Relation:  # fmt: skip
    """Return rel with every source listing exactly the columns the plan reads.

    needed=None means "every column the relation produces". person_keys, when given, keeps each
    source's person key too (the first column the catalog marks "person_key" or these name): rule 6.
    schemas: the checked schemas of rel's nodes (an Analysis's), so that a concat's inputs keep the
    same columns when person keys are kept.
    """
    return Prune(catalog, person_keys, schemas).visit(rel, needed)


class Prune(Visitor[n.Relation]):
    """Each relation node with only what is needed of it: columns, computed columns, aggregates."""

    name = "pruning"

    def __init__(self, catalog: dict[str, TableSchema], person_keys: tuple[str, ...] | None = None,
                 schemas: dict[n.Relation, Schema] | None = None) -> None:  # fmt: skip
        self.catalog = catalog
        self.person_keys = person_keys
        self.schemas = schemas or {}

    def visit_Source(self, r: n.Source, needed: set[str] | None) -> n.Relation:
        if r.dataset not in self.catalog:
            # NB: without the catalog we cannot tell which side of a join a name is on.
            if needed is None or r.columns is None:
                return r
            return n.Source(r.dataset, tuple(c for c in r.columns if c in needed))
        cols = r.columns if r.columns is not None else tuple(self.catalog[r.dataset].names)
        if needed is None:
            return n.Source(r.dataset, tuple(cols))
        if self.person_keys is not None:
            pks = self.person_keys
            pk = next((c.name for c in self.catalog[r.dataset].columns
                       if (c.role == "person_key" or c.name in pks) and c.name in cols), None)  # fmt: skip
            needed = needed | {pk} if pk is not None else needed
        return n.Source(r.dataset, tuple(c for c in cols if c in needed))

    def visit_Filter(self, r: n.Filter, needed: set[str] | None) -> n.Relation:
        sub = None if needed is None else needed | n.columns_of(r.predicate)
        return n.Filter(self.visit(r.input, sub), r.predicate)

    def visit_WithColumns(self, r: n.WithColumns, needed: set[str] | None) -> n.Relation:
        kept = tuple((k, e) for k, e in r.exprs if needed is None or k in needed)
        if needed is None:
            sub = None
        else:
            sub = (needed - {k for k, _ in kept}) | set().union(*(n.columns_of(e) for _, e in kept))
        if not kept:
            return self.visit(r.input, sub)
        return n.WithColumns(self.visit(r.input, sub), kept)

    def visit_Select(self, r: n.Select, needed: set[str] | None) -> n.Relation:
        kept = tuple((k, e) for k, e in r.exprs if needed is None or k in needed)
        sub = set().union(*(n.columns_of(e) for _, e in kept)) if kept else set()
        return n.Select(self.visit(r.input, sub), kept)

    def visit_Join(self, r: n.Join, needed: set[str] | None) -> n.Relation:
        if needed is None:
            return n.Join(self.visit(r.left, None), self.visit(r.right, None), r.on, r.how)
        # Right columns are renamed on collision; keep both spellings to stay safe.
        lneed = needed | {r.on}
        rneed = {r.on} | {c[: -len(RIGHT_SUFFIX)] if c.endswith(RIGHT_SUFFIX) else c for c in needed}
        return n.Join(self.visit(r.left, lneed), self.visit(r.right, rneed), r.on, r.how)

    def visit_Aggregate(self, r: n.Aggregate, needed: set[str] | None) -> n.Relation:
        kept = tuple((k, g) for k, g in r.aggs if needed is None or k in needed) or r.aggs[:1]
        sub = set(r.keys) | set().union(*(n.columns_of(g.arg) for _, g in kept if g.arg is not None))
        return n.Aggregate(self.visit(r.input, sub), r.keys, kept)

    def visit_Concat(self, r: n.Concat, needed: set[str] | None) -> n.Relation:
        sub = None if needed is None else needed | ({r.distinct_on} if r.distinct_on else set())
        inputs = tuple(self.visit(i, sub) for i in r.inputs)
        schema = self.schemas.get(r)
        if sub is not None and self.person_keys is not None and schema is not None:
            # NB: a source keeps its person key (rule 6), so inputs of other shapes may end up with other columns
            cols = tuple((c, n.Col(c)) for c in schema if c in sub)
            try:
                names = {frozenset(SchemaOf(Analysis(n.Plan(i), self.catalog)).visit(i)) for i in inputs}
            except PlanError:
                names = set()
            if len(names) > 1 and cols:
                inputs = tuple(n.Select(i, cols) for i in inputs)
        return n.Concat(inputs, r.distinct_on)

    def visit_Glm(self, r: n.Glm, needed: set[str] | None) -> n.Relation:
        sub = {r.y, *r.x} | ({r.offset} if r.offset is not None else set())
        return n.Glm(self.visit(r.input, sub), r.y, r.x, r.family, r.offset, r.reference)

    def visit_Corr(self, r: n.Corr, needed: set[str] | None) -> n.Relation:
        return n.Corr(self.visit(r.input, set(r.columns)), r.columns)

    def visit_Standardize(self, r: n.Standardize, needed: set[str] | None) -> n.Relation:
        sub = {*r.keys, r.events, r.age}
        return n.Standardize(self.visit(r.input, sub), r.keys, r.events, r.age, r.standard, r.per)
