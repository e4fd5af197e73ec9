"""The plain reference executor: a plan as SQL on DuckDB. It defines the right answer.

No secrecy here: this executor runs where all data is already in one place (tests,
benchmarks, previews on dummy data). It applies the same disclosure control as the
MPC executor so that both give identical outputs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from ..exceptions import OperationNotDefinedError
from ..plan import nodes as n
from ..plan.types import infer
from ..plan.visitor import Visitor
from ..result import (
    COMPLEMENT,
    EXTREME,
    FEW_CONTRIBUTORS,
    OUT_OF_RANGE,
    QUANTILE_SIDES,
    REVEALED,
    UNION,
    Revealed,
    key_grid,
)
from . import disclosure
from .analyze import RESERVED, Analysis, cell_union, join_renames
from .kernels.margins import Margins, plain_units

# Declarative tables: every operator and aggregate function of plan.nodes has an entry.
BINARY_SQL = {
    "add": "({l} + {r})", "sub": "({l} - {r})", "mul": "({l} * {r})",
    "truediv": "(CAST({l} AS DOUBLE) / CASE WHEN {r} = 0 THEN NULL ELSE {r} END)",  # NB: x / 0 is missing
    "eq": "({l} = {r})", "ne": "({l} <> {r})", "lt": "({l} < {r})", "le": "({l} <= {r})",
    "gt": "({l} > {r})", "ge": "({l} >= {r})", "and": "({l} AND {r})", "or": "({l} OR {r})",
}  # fmt: skip
DATE_PART_SQL = {"year": "year", "iso_week": "weekofyear", "month": "month"}
# {x}: the argument; {num}: the argument as DOUBLE; {q}: the quantile.
AGG_SQL = {
    "len": "COUNT(*)", "count": "COUNT({x})", "sum": "SUM({x})", "mean": "AVG({num})",
    "min": "MIN({x})", "max": "MAX({x})", "var": "VAR_SAMP({num})", "std": "STDDEV_SAMP({num})",
    "median": "QUANTILE_CONT({num}, 0.5)", "quantile": "QUANTILE_CONT({num}, {q})",
}  # fmt: skip


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit_sql(v: n.LitValue) -> str:
    """Render a literal as SQL (never by string interpolation of data)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return f"CAST({v} AS BIGINT)"
    if isinstance(v, float):
        return f"CAST({float(v)!r} AS DOUBLE)"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, dt.date):
        return f"DATE '{v.isoformat()}'"
    msg = f"literal of type {type(v).__name__}"
    raise OperationNotDefinedError(msg)


class SqlExpr(Visitor[str]):
    """Render each expression node as SQL with SQL null semantics (Kleene logic)."""

    name = "the plain executor"

    def visit_Col(self, e: n.Col) -> str:
        return q(e.name)

    def visit_Lit(self, e: n.Lit) -> str:
        return lit_sql(e.value)

    def visit_BinOp(self, e: n.BinOp) -> str:
        if e.op not in BINARY_SQL:
            msg = f"{self.name} has no rule for the operator {e.op!r}"
            raise OperationNotDefinedError(msg)
        return BINARY_SQL[e.op].format(l=self.visit(e.left), r=self.visit(e.right))

    def visit_Not(self, e: n.Not) -> str:
        return f"(NOT {self.visit(e.arg)})"

    def visit_IsIn(self, e: n.IsIn) -> str:
        vals = [v for v in e.values if v is not None]
        if not vals:
            return f"CASE WHEN {self.visit(e.arg)} IS NULL THEN NULL ELSE FALSE END"
        return f"({self.visit(e.arg)} IN ({', '.join(lit_sql(v) for v in vals)}))"

    def visit_Between(self, e: n.Between) -> str:
        return f"({self.visit(e.arg)} BETWEEN {self.visit(e.lower)} AND {self.visit(e.upper)})"

    def visit_IsNull(self, e: n.IsNull) -> str:
        return f"({self.visit(e.arg)} IS NULL)"

    def visit_FillNull(self, e: n.FillNull) -> str:
        return f"COALESCE({self.visit(e.arg)}, {self.visit(e.value)})"

    def visit_Cut(self, e: n.Cut) -> str:
        a = self.visit(e.arg)
        parts = [f"WHEN {a} IS NULL THEN NULL"]
        parts += [f"WHEN {a} <= {float(b)!r} THEN {lit_sql(lab)}" for b, lab in zip(e.breaks, e.labels, strict=False)]
        return f"(CASE {' '.join(parts)} ELSE {lit_sql(e.labels[-1])} END)"

    def visit_DatePart(self, e: n.DatePart) -> str:
        return f"CAST({DATE_PART_SQL[e.part]}({self.visit(e.arg)}) AS BIGINT)"

    def visit_AgeAt(self, e: n.AgeAt) -> str:
        a = self.visit(e.arg)
        md = e.date.month * 100 + e.date.day
        return (f"CAST({e.date.year} - year({a}) - CASE WHEN month({a}) * 100 + day({a}) > {md} "
                "THEN 1 ELSE 0 END AS BIGINT)")  # fmt: skip

    def visit_When(self, e: n.When) -> str:
        whens = " ".join(f"WHEN {self.visit(c)} THEN {self.visit(v)}" for c, v in e.branches)
        return f"(CASE {whens} ELSE {self.visit(e.otherwise)} END)"


def expr_sql(e: n.Expr) -> str:
    """Render an expression as SQL with SQL null semantics (Kleene logic)."""
    return SqlExpr().visit(e)


def agg_sql(a: n.Agg) -> str:
    """Render an aggregate as SQL."""
    if a.func not in AGG_SQL:
        msg = f"the plain executor has no rule for aggregate {a.func!r}"
        raise OperationNotDefinedError(msg)
    x = expr_sql(a.arg) if a.arg is not None else ""
    return AGG_SQL[a.func].format(x=x, num=f"CAST({x} AS DOUBLE)", q=repr(float(a.q or 0.0)))


def _ring_sql(x: str, kind: str) -> str:
    """Return SQL for a value in the MPC's ring units (ints and dates as days; floats * 2^18, rounded)."""
    if kind == "float":
        return f"CAST(ROUND({x} * {disclosure.RING_UNIT}) AS BIGINT)"
    if kind == "date":
        return f"({x} - DATE '1970-01-01')"
    return f"CAST({x} AS BIGINT)"


def _clip_sql(x: str, rule: disclosure.StatRule, kind: str) -> str:
    """Return SQL for a min/max's argument top- and bottom-coded (rule 4), missing kept missing."""
    lo, hi = disclosure.clip_bounds(rule, kind)
    if lo is None and hi is None:
        return x
    cast = "BIGINT" if kind == "int" else "DOUBLE"
    v = x
    if lo is not None:
        v = f"GREATEST({v}, CAST({lo!r} AS {cast}))"
    if hi is not None:
        v = f"LEAST({v}, CAST({hi!r} AS {cast}))"
    return f"(CASE WHEN {x} IS NULL THEN NULL ELSE {v} END)"


def _rule_sql(rule: disclosure.StatRule, a: n.Agg, kind: str, i: int, k: int) -> list[str]:
    """Return the extra columns rules 2-4 need of one statistic (see _cell_rule_flags)."""
    x = expr_sql(a.arg) if a.arg is not None else ""
    out = []
    if rule.contributors:
        out.append(f"COUNT(CASE WHEN {_ring_sql(x, kind)} <> 0 THEN 1 END) AS {q(f'__z{i}')}")
    if rule.top_n:
        ring = f"ABS({_ring_sql(x, kind)})"
        out.append(f"CAST(SUM({ring}) AS VARCHAR) AS {q(f'__a{i}')}")
        out.append(f"max({ring}, {rule.top_n}) AS {q(f'__t{i}')}")
    if a.func in ("min", "max") and rule.extremes == "round" and rule.base is not None:
        out.append(f"{a.func}({_ring_sql(_clip_sql(x, rule, kind), kind)}, {k}) AS {q(f'__e{i}')}")
    return out


def _cell_rule_flags(rule: disclosure.StatRule, a: n.Agg, kind: str | None, k: int, nvalid: np.ndarray,
                     values: np.ndarray, extra: dict[str, list[Any]]) -> list[tuple[int, Any]]:  # fmt: skip
    """Return the (code, passes) flags of rules 2-4 for one statistic, per cell; round extremes in values (in place).

    The same flags, in the same order, as the MPC's (kernels/aggregate._cell_rules), in exact integers.
    """
    ncells = len(nvalid)
    flags: list[tuple[int, Any]] = []
    if rule.contributors:
        flags.append((FEW_CONTRIBUTORS, np.asarray(extra["z"], dtype=np.int64) >= k))
    if rule.both_sides:  # NB: a boolean's false rows: 0 or at least k (rule 2)
        z = np.asarray(extra["z"], dtype=np.int64)
        flags.append((FEW_CONTRIBUTORS, disclosure.both_sides_ok(np.asarray(nvalid, dtype=np.int64), z, k, _ge)))
    if rule.top_n:
        fits = np.zeros(ncells, dtype=bool)
        dom: list[list[int]] = []
        for c in range(ncells):
            total = int(extra["a"][c] or 0)
            tops = [int(t) for t in (extra["t"][c] if extra["t"][c] is not None else ())]
            tops += [0] * (rule.top_n - len(tops))
            fits[c] = total <= rule.magnitude_limit
            dom.append([int(p) for _, p in disclosure.magnitude_flags(rule, tops, total, lambda v, t: v >= t)])
        flags.append((OUT_OF_RANGE, fits))
        codes = [code for code, _ in disclosure.magnitude_flags(rule, [0] * rule.top_n, 0, lambda v, t: v >= t)]
        flags += [(code, np.array([d[m] for d in dom], dtype=bool)) for m, code in enumerate(codes)]
    if a.func in ("min", "max") and rule.extremes != "release":
        passes = np.zeros(ncells, dtype=bool)
        if rule.extremes == "round" and rule.base is not None:
            for c in range(ncells):
                got = extra["e"][c]
                if got is None or len(got) < k:
                    continue
                vals = [int(v) for v in got]
                rem = vals[0] % rule.base
                rounded = vals[0] - rem
                shared = vals[k - 1] >= rounded if a.func == "max" else vals[k - 1] < rounded + rule.base
                passes[c] = shared and (rem != 0 or kind != "float")
                values[c] = rounded / disclosure.RING_UNIT if kind == "float" else rounded
        flags.append((EXTREME, passes))
    if rule.sides is not None:
        flags.append((QUANTILE_SIDES, nvalid >= rule.sides))
    return flags


class PlainCompiler(Visitor[str]):
    """Compile each relation node to a nested SQL query over registered source tables.

    A subclass may carry a hidden column (``carried``) through filters, computed columns, selections,
    a join's left side and a concat's stack: `_Positioned` each row's position (POS), `perturb.KeyedSql`
    its person key. The subclass says where the column starts (a source) and starts again (an
    aggregate, a distinct concat); a join's right side carries none (the plain compiler's query).
    """

    name = "the plain executor"
    carried: tuple[str, ...] = ()  # NB: the hidden column, or none

    def __init__(self, analysis: Analysis) -> None:
        self.a = analysis

    def plain(self) -> PlainCompiler:
        """Return the compiler of the parts that carry no hidden column (a join's right side)."""
        return PlainCompiler(self.a) if self.carried else self

    def with_hidden(self, r: n.Relation, value: str) -> str:
        """Return r's plain query with the hidden column added: value (SQL) on every row."""
        return f"SELECT *, {value} AS {q(self.carried[0])} FROM ({PlainCompiler(self.a).visit(r)})"

    def visit_Source(self, r: n.Source) -> str:
        cols = (
            ", ".join(
                f"CAST({q(c)} AS DATE) AS {q(c)}" if t.kind == "date" else q(c) for c, t in self.a.schema(r).items()
            )
            or f"NULL AS {q('__none')}"
        )  # NB: a plan may read no column, only count rows
        return f"SELECT {cols} FROM {q(_table_name(r.dataset))}"

    def visit_Filter(self, r: n.Filter) -> str:
        return f"SELECT * FROM ({self.visit(r.input)}) WHERE {expr_sql(r.predicate)}"

    def visit_WithColumns(self, r: n.WithColumns) -> str:
        new = {k for k, _ in r.exprs}
        keep = [q(c) for c in self.a.schema(r.input) if c not in new]
        adds = [f"{expr_sql(e)} AS {q(k)}" for k, e in r.exprs]
        return f"SELECT {', '.join([*keep, *adds, *map(q, self.carried)])} FROM ({self.visit(r.input)})"

    def visit_Select(self, r: n.Select) -> str:
        cols = [f"{expr_sql(e)} AS {q(k)}" for k, e in r.exprs]
        return f"SELECT {', '.join([*cols, *map(q, self.carried)])} FROM ({self.visit(r.input)})"

    def visit_Join(self, r: n.Join) -> str:
        ls, rs = self.a.schema(r.left), self.a.schema(r.right)
        cols = [f"l.{q(c)}" for c in [*ls, *self.carried]]
        cols += [f"r.{q(c)} AS {q(new)}" for c, new in join_renames(ls, rs, r.on).items()]
        how = "LEFT JOIN" if r.how == "left" else "JOIN"
        return (f"SELECT {', '.join(cols)} FROM ({self.visit(r.left)}) l {how} ({self.plain().visit(r.right)}) r "
                f"ON l.{q(r.on)} = r.{q(r.on)}")  # fmt: skip

    def visit_Aggregate(self, r: n.Aggregate) -> str:
        keys = [q(k) for k in r.keys]
        aggs = [f"{agg_sql(a)} AS {q(name)}" for name, a in r.aggs]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        # NB: an intermediate aggregate has no empty groups; the final one is reindexed later.
        return f"SELECT {', '.join(keys + aggs)} FROM ({self.visit(r.input)}){group}"

    def visit_Concat(self, r: n.Concat) -> str:
        if r.distinct_on is None:
            return stacked_sql(self.a, r, [self.visit(i) for i in r.inputs], extra=self.carried)
        # NB: each person's first row: of the first input that has the person, then in that input's order (POS)
        key = q(r.distinct_on)
        stacked = stacked_sql(self.a, r, [_Positioned(self.a).visit(i) for i in r.inputs], extra=(POS,))
        cols = ", ".join(q(c) for c in self.a.schema(r))
        return (
            f"SELECT {cols} FROM ({stacked}) WHERE {key} IS NOT NULL "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {q(PART)}, {q(POS)}) = 1"
        )

    def visit_Glm(self, r: n.Glm) -> str:
        return self.visit(r.input)  # NB: a summary is only a root: run_summary computes it from these rows

    def visit_Corr(self, r: n.Corr) -> str:
        return self.visit(r.input)

    def visit_Standardize(self, r: n.Standardize) -> str:
        return self.visit(r.input)

    def removals(self, rel: n.Relation) -> list[tuple[str, str]]:
        """Return (input, output) queries of every filter and inner join under rel, inputs first (rule 5).

        An inner join removes its left rows without a match and, where its left side is known to be
        unique on the key (`disclosure.unique_left`), its right rows without one (a second pair).
        """
        out = [pair for child in n.children(rel) for pair in self.removals(child)]
        if isinstance(rel, n.Filter):
            out.append((self.visit(rel.input), self.visit(rel)))
        elif isinstance(rel, n.Join) and rel.how == "inner":
            out.append((self.visit(rel.left), self.visit(rel)))
            if disclosure.unique_left(self.a, rel):
                out.append((self.visit(rel.right), self.visit(rel)))
        elif isinstance(rel, n.Concat) and rel.distinct_on is not None:  # NB: the rows distinct leaves out
            out.append((stacked_sql(self.a, rel, [self.visit(i) for i in rel.inputs]), self.visit(rel)))
        return out


POS, PART = "__pos", "__part"  # NB: a row's position in its source table, and the concat input it comes from
PART_STRIDE = 2**40  # NB: a row's stacking position: input index * PART_STRIDE + its position in the input


def stacked_sql(a: Analysis, r: n.Concat, inputs: list[str], extra: tuple[str, ...] = ()) -> str:
    """Return the UNION ALL of a concat's inputs' queries, columns by name (text as VARCHAR), with extra columns.

    With POS among extra, each row also gets its input's index (PART) and POS becomes its position in
    the stacking order (input, then position in the input), as the MPC stacks the inputs' rows.
    """
    schema = a.schema(r)
    parts = []
    for i, sql in enumerate(inputs):
        cols = [f"CAST({q(c)} AS VARCHAR) AS {q(c)}" if t.kind == "str" else q(c) for c, t in schema.items()]
        for x in extra:
            cols.append(f"CAST({i} AS BIGINT) AS {q(PART)}, CAST({i} AS BIGINT) * {PART_STRIDE} + {q(POS)} AS {q(POS)}"
                        if x == POS else q(x))  # fmt: skip
        parts.append(f"(SELECT {', '.join(cols) or 'NULL AS ' + q('__none')} FROM ({sql}))")
    return " UNION ALL ".join(parts)


class _Positioned(PlainCompiler):
    """The plain compiler, carrying each row's position (POS) in its source up to a distinct concat's input.

    NB: the MPC keeps the rows of a source in their order through filters and computed columns, and a
    person's rows in their order through a join on the person key (its sort key ends in the row index).
    """

    carried = (POS,)

    def visit_Source(self, r: n.Source) -> str:
        cols = [f"CAST({q(c)} AS DATE) AS {q(c)}" if t.kind == "date" else q(c) for c, t in self.a.schema(r).items()]
        return f"SELECT {', '.join([*cols, q(POS)])} FROM {q(_table_name(r.dataset))}"

    def visit_Aggregate(self, r: n.Aggregate) -> str:
        return self.with_hidden(r, "CAST(0 AS BIGINT)")  # NB: one row per key

    def visit_Concat(self, r: n.Concat) -> str:
        if r.distinct_on is not None:  # NB: one row per person; the order among persons does not matter
            return self.with_hidden(r, "CAST(0 AS BIGINT)")
        return f"SELECT * EXCLUDE ({q(PART)}) FROM ({super().visit_Concat(r)})"


def _union_parts(r: n.Concat) -> tuple[str, ...]:
    """Return the union rule's columns of a union: per input its rows (persons), then (distinct) its only persons."""
    s = len(r.inputs)
    return tuple(f"{RESERVED}{i}" for i in range(s)) + (
        tuple(f"{RESERVED}_only{i}" for i in range(s)) if r.distinct_on else ()
    )


def union_sql(a: Analysis, r: n.Concat) -> str:
    """Return a union's query with the union rule's columns (`_union_parts`), as the MPC's hidden ones.

    Without distinct, __union<s> is 1 on input s's rows. With distinct, on each person's kept row,
    __union<s> is 1 when input s has the person, __union_only<s> when it has the person and no other does.
    """
    tagged = [f"SELECT *, CAST({i} AS BIGINT) AS {q(PART)} FROM ({PlainCompiler(a).visit(x)})"
              for i, x in enumerate(r.inputs)]  # fmt: skip
    s = len(r.inputs)
    us = [f"{RESERVED}{i}" for i in range(s)]
    if r.distinct_on is None:
        flags = ", ".join(f"CASE WHEN {q(PART)} = {i} THEN 1 ELSE 0 END AS {q(u)}" for i, u in enumerate(us))
        return f"SELECT * EXCLUDE ({q(PART)}), {flags} FROM ({stacked_sql(a, r, tagged, extra=(PART,))})"
    key = q(r.distinct_on)
    stacked = stacked_sql(a, r, [_Positioned(a).visit(i) for i in r.inputs], extra=(POS,))
    cols = ", ".join(q(c) for c in a.schema(r))
    has = ", ".join(f"MAX(CASE WHEN {q(PART)} = {i} THEN 1 ELSE 0 END) OVER (PARTITION BY {key}) AS {q(u)}"
                    for i, u in enumerate(us))  # fmt: skip
    kept = (f"SELECT {cols}, {has} FROM ({stacked}) WHERE {key} IS NOT NULL "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {q(PART)}, {q(POS)}) = 1")  # fmt: skip
    alone = " + ".join(q(u) for u in us)
    only = ", ".join(f"CASE WHEN {alone} = 1 THEN {q(u)} ELSE 0 END AS {q(f'{RESERVED}_only{i}')}"
                     for i, u in enumerate(us))  # fmt: skip
    return f"SELECT *, {only} FROM ({kept})"


class _Parted(PlainCompiler):
    """The plain compiler, carrying the union rule's columns from the cells' union (`cell_union`) to the cells."""

    def __init__(self, analysis: Analysis, union: n.Concat) -> None:
        super().__init__(analysis)
        self.union = union
        self.carried = _union_parts(union)

    def visit_Concat(self, r: n.Concat) -> str:
        assert r is self.union, "only the cells' union is on the spine"
        return union_sql(self.a, r)


def _cells_union(a: Analysis) -> n.Concat | None:
    """Return the union whose inputs the union rule checks per cell, or None (rule off, or no such union)."""
    return cell_union(a.plan) if a.rules.complement else None


def input_sql(a: Analysis, rel: n.Relation) -> str:
    """Return the final aggregate's input query, with the union rule's columns when they are checked per cell."""
    union = _cells_union(a)
    return _Parted(a, union).visit(rel) if union is not None else PlainCompiler(a).visit(rel)


def union_whole_sql(a: Analysis) -> list[str]:
    """Return the union rule's whole-result counts: each input's rows (persons) of every union not checked per cell.

    NB: in the MPC's order (`SpuCompiler.visit_Concat`): unions inner first, then by position in the plan.
    """
    if not a.rules.complement:
        return []
    skip = _cells_union(a)
    out: list[str] = []

    def walk(rel: n.Relation) -> None:
        for child in n.children(rel):
            walk(child)
        if isinstance(rel, n.Concat) and rel is not skip:
            parts = _union_parts(rel)
            out.extend(f"(SELECT CAST(COALESCE(SUM({q(p)}), 0) AS BIGINT) FROM ({union_sql(a, rel)}))" for p in parts)

    walk(a.plan.root)
    return out


def whole_flags(analysis: Analysis, tables: dict[str, pd.DataFrame]) -> list[tuple[int, Any]]:
    """Return the whole result's (code, passes) flags, as the MPC program collects them (rule 5; rule 9)."""
    flags: list[tuple[int, Any]] = []
    if analysis.rules.complement:
        pairs = PlainCompiler(analysis).removals(analysis.plan.root)
        if pairs:
            counts = [f"(SELECT COUNT(*) FROM ({sql}))" for pair in pairs for sql in pair]
            got = run_sql(f"SELECT {', '.join(counts)}", tables).iloc[0].to_numpy(dtype=np.int64)
            k = analysis.plan.min_group_size
            flags += [(COMPLEMENT, disclosure.complement_ok(got[2 * i], got[2 * i + 1], k, _ge))
                      for i in range(len(pairs))]  # fmt: skip
    union = union_whole_sql(analysis)
    if union:  # NB: the union rule on the whole result: each input adds 0 or at least k rows (persons)
        got = run_sql(f"SELECT {', '.join(union)}", tables).iloc[0].to_numpy(dtype=np.int64)
        flags += [(UNION, disclosure.complement_ok(x, 0, analysis.plan.min_group_size, _ge)) for x in got]
    if analysis.register:  # NB: rule 9, on the same universe's row ids (compile/register.py)
        from ..result import REGISTER
        from .register import plain_passes

        flags.append((REGISTER, plain_passes(analysis, tables)))
    return flags


def withhold_whole(flags: list[tuple[int, Any]], rev: Revealed) -> Revealed:
    """Return rev with its whole-result code (Revealed.withheld), every cell zeroed unless REVEALED (as the MPC)."""
    code = int(disclosure.first_failure(flags))
    if code == REVEALED:
        return rev
    zero = {name: (np.zeros_like(ok), np.zeros_like(v)) for name, (ok, v) in rev.stats.items()}
    return Revealed(np.zeros_like(rev.cell_ok), zero, code)


def _table_name(dataset: str) -> str:
    return "src__" + dataset.replace("/", "__")


def run_plain(analysis: Analysis, tables: dict[str, pd.DataFrame], perturbation_key: int | None = None) -> Revealed:
    """Run a checked plan on DuckDB and apply disclosure control to its cells.

    perturbation_key: the key of the record keys that perturb counts (rule 6; default: a fresh random one).
    """
    from .perturb import perturb_plain  # NB: perturb builds on this module's SQL

    if isinstance(analysis.plan.root, n.Summary):
        return run_summary(analysis, tables)
    got = run_sql(final_sql(analysis), tables)
    counts, values, nvalid, in_range = _per_cell(analysis, got)
    root = analysis.plan.root
    assert isinstance(root, n.Aggregate)
    k = analysis.plan.min_group_size
    cells = disclosure.cell_ok(counts, k, _ge)
    union = _union_ok(analysis, got, len(counts), k)  # NB: the union rule, per cell
    input_schema = analysis.schema(root.input)
    rules = disclosure.stat_rules(analysis)
    extras = _extras(analysis, got, len(counts))
    stats = {}
    for j, (name, a) in enumerate(root.aggs):
        kind = infer(a.arg, input_schema).kind if a.arg is not None else None
        flags: list[tuple[int, Any]] = [] if union is None else [(UNION, union)]
        flags.append((OUT_OF_RANGE, in_range[j].astype(bool)))
        flags += _cell_rule_flags(rules[name], a, kind, k, nvalid[j], values[j], extras.get(j, {}))
        ok = disclosure.statistic_ok(a, kind, k, cells, nvalid[j], values[j], _ge)
        shown = ok & np.logical_and.reduce([p for _, p in flags])
        code = np.asarray(disclosure.statistic_code(ok, flags), dtype=np.int64)
        stats[name] = (code, np.where(shown, values[j], 0))
    stats = Margins(analysis).apply(stats, plain_units(root.aggs, counts, nvalid, values, extras), np)  # NB: rule 7
    shown = cells if union is None else cells & union
    rev = perturb_plain(analysis, tables, Revealed(shown, stats), perturbation_key)  # NB: rule 6, last per cell
    return withhold_whole(whole_flags(analysis, tables), rev)


def _union_ok(analysis: Analysis, got: pd.DataFrame, ncells: int, k: int) -> np.ndarray | None:
    """Return per cell whether every union input adds 0 or at least k rows (persons) to it (final_sql's __p<j>)."""
    names = [c for c in got.columns if c.startswith("__p") and c[3:].isdigit()]
    if not names:
        return None
    _, rows = cells_of(analysis, got)
    ok = np.ones(ncells, dtype=bool)
    for c in names:
        per = np.zeros(ncells, dtype=np.int64)
        per[rows] = got[c].to_numpy(dtype=np.int64)
        ok &= disclosure.complement_ok(per, 0, k, _ge).astype(bool)
    return ok


def run_summary(analysis: Analysis, tables: dict[str, pd.DataFrame]) -> Revealed:
    """Run a checked plan whose root is a summary (compile/models): its input's rows, then the summary."""
    from .models import summary_module

    root = analysis.plan.root
    assert isinstance(root, n.Summary)
    module = summary_module(root)
    rows = run_sql(PlainCompiler(analysis).visit(root.input), tables)
    flags, outs = module.plain(analysis, rows)
    code = int(disclosure.first_failure([*whole_flags(analysis, tables), *flags]))
    if code != REVEALED:  # NB: as the MPC program: every output zeroed unless the whole summary is released
        outs = [np.zeros_like(np.asarray(o)) for o in outs]
    return module.revealed(analysis, [np.asarray(o) for o in outs], code)


def range_sql(a: n.Agg, kind: str) -> str:
    """Return SQL for whether a statistic's exact value is within the MPC's range (disclosure's limits).

    NB: the same rule as the MPC's oblivious check, so both executors withhold the same statistics.
    """
    x = expr_sql(a.arg) if a.arg is not None else ""
    num = f"CAST({x} AS DOUBLE)"
    conds: list[str] = []
    if a.func == "sum" and kind != "bool":
        conds.append(f"ABS(SUM({x})) <= {disclosure.SUM_LIMIT['float' if kind == 'float' else 'int']}")
    if a.func in ("mean", "var", "std") and kind != "bool":
        conds += [f"ABS(SUM({x})) <= {disclosure.DIV_LIMIT}", f"ABS(AVG({num})) <= {disclosure.MEAN_LIMIT}"]
    if a.func in ("var", "std") and kind != "bool":
        conds += [f"VAR_SAMP({num}) * (COUNT({x}) - 1) <= {disclosure.DIV_LIMIT}",
                  f"VAR_SAMP({num}) <= {disclosure.MEAN_LIMIT}"]  # fmt: skip
    if a.func in ("median", "quantile") and kind in ("int", "date"):
        conds.append(f"ABS({agg_sql(a)}) < {disclosure.QUANTILE_INT_LIMIT}")
    return f"COALESCE({' AND '.join(conds)}, TRUE)" if conds else "TRUE"


def final_sql(analysis: Analysis) -> str:
    """Return the query of a checked plan's final aggregate: per cell, its rows and each statistic with its count."""
    root = analysis.plan.root
    assert isinstance(root, n.Aggregate)
    keys = [q(k) for k in root.keys]
    parts = [f"COUNT(*) AS {q('__n')}"]
    schema = analysis.schema(root.input)
    rules = disclosure.stat_rules(analysis)
    for i, (name, a) in enumerate(root.aggs):
        kind = infer(a.arg, schema).kind if a.arg is not None else "int"
        value = agg_sql(a)
        if a.func in ("min", "max") and a.arg is not None:  # NB: rule 4's top- and bottom-coding
            value = AGG_SQL[a.func].format(x=_clip_sql(expr_sql(a.arg), rules[name], kind))
        if a.func == "sum" and kind in ("int", "date"):
            value = f"CAST({value} AS VARCHAR)"  # NB: SUM of BIGINT is a HUGEINT, which pandas would make a float
        parts.append(f"{value} AS {q(f'__v{i}')}")
        nvalid_sql = "COUNT(*)" if a.arg is None else f"COUNT({expr_sql(a.arg)})"
        parts.append(f"{nvalid_sql} AS {q(f'__c{i}')}")
        parts.append(f"{range_sql(a, kind)} AS {q(f'__r{i}')}")
    for i, (name, a) in enumerate(root.aggs):  # NB: rules 2-4's columns, read by name (see _extras)
        if a.arg is not None:
            parts += _rule_sql(rules[name], a, infer(a.arg, schema).kind, i, analysis.plan.min_group_size)
    union = _cells_union(analysis)
    for j, p in enumerate(_union_parts(union) if union is not None else ()):  # NB: the union rule, per cell
        parts.append(f"CAST(SUM({q(p)}) AS BIGINT) AS {q(f'__p{j}')}")
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    return f"SELECT {', '.join(keys + parts)} FROM ({input_sql(analysis, root.input)}){group}"


def run_sql(sql: str, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Run a query over the source tables on a fresh in-memory DuckDB."""
    con = duckdb.connect(":memory:")
    try:
        register_tables(con, tables, sql)
        return con.execute(sql).df()
    finally:
        con.close()


def register_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame], sql: str) -> None:
    """Register the source tables for a query; with the row positions (POS) a distinct concat reads, if it does."""
    for name, df in tables.items():
        if POS in sql:
            df = df.assign(**{POS: np.arange(len(df), dtype=np.int64)})
        if df.shape[1] == 0:
            df = pd.DataFrame({"__none": np.zeros(len(df), dtype=np.int8)})
        con.register(_table_name(name), df)


def cells_of(analysis: Analysis, got: pd.DataFrame) -> tuple[int, list[int]]:
    """Return the number of cells in the final aggregate's full grid and the cell of each row of got (by its keys)."""
    root = analysis.plan.root
    assert isinstance(root, n.Aggregate)
    schema = analysis.schema(root.input)
    grid = key_grid([schema[k].grouping_domain or () for k in root.keys])
    index = {cell: i for i, cell in enumerate(grid)}
    keys = got[list(root.keys)].itertuples(index=False) if root.keys else [()] * len(got)
    return len(grid), [index[tuple(_py(v) for v in cell)] for cell in keys]


def _per_cell(analysis: Analysis, got: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
    """Return rows, statistics, their value counts and range flags on the full grid of cells (absent cells: zero)."""
    root = analysis.plan.root
    assert isinstance(root, n.Aggregate)
    ncells, cells = cells_of(analysis, got)
    counts = np.zeros(ncells, dtype=np.int64)
    out_schema = analysis.schema(root)
    values = [np.zeros(ncells, dtype=np.int64 if out_schema[name].kind in ("int", "date") else float)
              for name, _ in root.aggs]  # fmt: skip
    nvalid = np.zeros((len(root.aggs), ncells), dtype=np.int64)
    in_range = np.ones((len(root.aggs), ncells), dtype=np.int64)
    for i, row in zip(cells, got.itertuples(index=False), strict=True):
        rest = row[len(root.keys) :]
        counts[i] = rest[0]
        for j in range(len(root.aggs)):
            in_range[j, i] = bool(rest[3 + 3 * j])
            if in_range[j, i]:  # NB: an out-of-range value may not even fit the array
                values[j][i] = _num(rest[1 + 3 * j], integral=values[j].dtype == np.int64)
            nvalid[j, i] = rest[2 + 3 * j]
    return counts, values, nvalid, in_range


def _extras(analysis: Analysis, got: pd.DataFrame, ncells: int) -> dict[int, dict[str, list[Any]]]:
    """Return rules 2-4's per-cell columns of final_sql's result (by statistic index, then letter) on the full grid."""
    _, rows = cells_of(analysis, got)
    out: dict[int, dict[str, list[Any]]] = {}
    for col in got.columns:
        if col[:3] in ("__z", "__a", "__t", "__e") and col[3:].isdigit():
            per: list[Any] = [0 if col[2] == "z" else None] * ncells
            for r, v in zip(rows, got[col].tolist(), strict=True):
                v = _py(v)
                per[r] = v if v is not None or col[2] != "z" else 0
            out.setdefault(int(col[3:]), {})[col[2]] = per
    return out


def _ge(x: np.ndarray, t: int) -> np.ndarray:
    return x >= t


def _py(v: Any) -> Any:
    if v is None or (not isinstance(v, str) and pd.api.types.is_scalar(v) and pd.isna(v)):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, pd.Timestamp):
        return v.date()
    return v


def _num(v: Any, *, integral: bool) -> float | int:
    v = _py(v)
    if v is None:
        return 0
    if isinstance(v, dt.datetime):
        v = v.date()
    if isinstance(v, dt.date):
        return (v - dt.date(1970, 1, 1)).days
    return int(v) if integral else float(v)
