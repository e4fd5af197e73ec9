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
from ..result import Revealed, key_grid, min_values
from .analyze import Analysis, join_renames

_SQL_OPS = {"add": "+", "sub": "-", "mul": "*", "eq": "=", "ne": "<>", "lt": "<", "le": "<=",
            "gt": ">", "ge": ">=", "and": "AND", "or": "OR"}  # fmt: skip


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


def expr_sql(e: n.Expr) -> str:
    """Render an expression as SQL with SQL null semantics (Kleene logic)."""
    match e:
        case n.Col(name):
            return q(name)
        case n.Lit(value):
            return lit_sql(value)
        case n.BinOp("truediv", left, right):
            r = expr_sql(right)
            return f"(CAST({expr_sql(left)} AS DOUBLE) / CASE WHEN {r} = 0 THEN NULL ELSE {r} END)"
        case n.BinOp(op, left, right):
            return f"({expr_sql(left)} {_SQL_OPS[op]} {expr_sql(right)})"
        case n.Not(arg):
            return f"(NOT {expr_sql(arg)})"
        case n.IsIn(arg, values):
            vals = [v for v in values if v is not None]
            if not vals:
                return f"CASE WHEN {expr_sql(arg)} IS NULL THEN NULL ELSE FALSE END"
            return f"({expr_sql(arg)} IN ({', '.join(lit_sql(v) for v in vals)}))"
        case n.Between(arg, lo, hi):
            return f"({expr_sql(arg)} BETWEEN {expr_sql(lo)} AND {expr_sql(hi)})"
        case n.IsNull(arg):
            return f"({expr_sql(arg)} IS NULL)"
        case n.FillNull(arg, value):
            return f"COALESCE({expr_sql(arg)}, {expr_sql(value)})"
        case n.Cut(arg, breaks, labels):
            a = expr_sql(arg)
            parts = [f"WHEN {a} IS NULL THEN NULL"]
            parts += [f"WHEN {a} <= {float(b)!r} THEN {lit_sql(lab)}" for b, lab in zip(breaks, labels, strict=False)]
            return f"(CASE {' '.join(parts)} ELSE {lit_sql(labels[-1])} END)"
        case n.DatePart(arg, part):
            fn = {"year": "year", "iso_week": "weekofyear", "month": "month"}[part]
            return f"CAST({fn}({expr_sql(arg)}) AS BIGINT)"
        case n.AgeAt(arg, date):
            a = expr_sql(arg)
            md = date.month * 100 + date.day
            return (f"CAST({date.year} - year({a}) - CASE WHEN month({a}) * 100 + day({a}) > {md} "
                    "THEN 1 ELSE 0 END AS BIGINT)")  # fmt: skip
        case n.When(branches, otherwise):
            whens = " ".join(f"WHEN {expr_sql(c)} THEN {expr_sql(v)}" for c, v in branches)
            return f"(CASE {whens} ELSE {expr_sql(otherwise)} END)"
    msg = f"plain executor has no rule for {type(e).__name__}"
    raise OperationNotDefinedError(msg)


def _agg_sql(a: n.Agg) -> str:
    if a.func == "len":
        return "COUNT(*)"
    x = expr_sql(a.arg)  # type: ignore[arg-type]
    num = f"CAST({x} AS DOUBLE)"
    match a.func:
        case "count":
            return f"COUNT({x})"
        case "sum":
            return f"SUM({x})"
        case "mean":
            return f"AVG({num})"
        case "min":
            return f"MIN({x})"
        case "max":
            return f"MAX({x})"
        case "var":
            return f"VAR_SAMP({num})"
        case "std":
            return f"STDDEV_SAMP({num})"
        case "median":
            return f"QUANTILE_CONT({num}, 0.5)"
        case "quantile":
            return f"QUANTILE_CONT({num}, {float(a.q)!r})"  # type: ignore[arg-type]
    msg = f"plain executor has no rule for aggregate {a.func!r}"
    raise OperationNotDefinedError(msg)


class PlainCompiler:
    """Compile relations to nested SQL over registered source tables."""

    def __init__(self, analysis: Analysis) -> None:
        self.a = analysis

    def rel(self, r: n.Relation) -> str:
        return getattr(self, "visit_" + type(r).__name__)(r)

    def visit_Source(self, r: n.Source) -> str:
        cols = (
            ", ".join(
                f"CAST({q(c)} AS DATE) AS {q(c)}" if t.kind == "date" else q(c) for c, t in self.a.schema(r).items()
            )
            or f"NULL AS {q('__none')}"
        )  # NB: a plan may read no column, only count rows
        return f"SELECT {cols} FROM {q(_table_name(r.dataset))}"

    def visit_Filter(self, r: n.Filter) -> str:
        return f"SELECT * FROM ({self.rel(r.input)}) WHERE {expr_sql(r.predicate)}"

    def visit_WithColumns(self, r: n.WithColumns) -> str:
        new = {k for k, _ in r.exprs}
        keep = [q(c) for c in self.a.schema(r.input) if c not in new]
        adds = [f"{expr_sql(e)} AS {q(k)}" for k, e in r.exprs]
        return f"SELECT {', '.join(keep + adds)} FROM ({self.rel(r.input)})"

    def visit_Select(self, r: n.Select) -> str:
        cols = [f"{expr_sql(e)} AS {q(k)}" for k, e in r.exprs]
        return f"SELECT {', '.join(cols)} FROM ({self.rel(r.input)})"

    def visit_Join(self, r: n.Join) -> str:
        ls, rs = self.a.schema(r.left), self.a.schema(r.right)
        cols = [f"l.{q(c)}" for c in ls]
        cols += [f"r.{q(c)} AS {q(new)}" for c, new in join_renames(ls, rs, r.on).items()]
        how = "LEFT JOIN" if r.how == "left" else "JOIN"
        return (f"SELECT {', '.join(cols)} FROM ({self.rel(r.left)}) l {how} ({self.rel(r.right)}) r "
                f"ON l.{q(r.on)} = r.{q(r.on)}")  # fmt: skip

    def visit_Aggregate(self, r: n.Aggregate) -> str:
        keys = [q(k) for k in r.keys]
        aggs = [f"{_agg_sql(a)} AS {q(name)}" for name, a in r.aggs]
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        # NB: an intermediate aggregate has no empty groups; the final one is reindexed later.
        return f"SELECT {', '.join(keys + aggs)} FROM ({self.rel(r.input)}){group}"


def _table_name(dataset: str) -> str:
    return "src__" + dataset.replace("/", "__")


def run_plain(analysis: Analysis, tables: dict[str, pd.DataFrame]) -> Revealed:
    """Run a checked plan on DuckDB and apply disclosure control to its cells."""
    plan = analysis.plan
    root = plan.root
    assert isinstance(root, n.Aggregate)
    comp = PlainCompiler(analysis)
    con = duckdb.connect(":memory:")
    try:
        for name, df in tables.items():
            if df.shape[1] == 0:
                df = pd.DataFrame({"__none": np.zeros(len(df), dtype=np.int8)})
            con.register(_table_name(name), df)
        inner = comp.rel(root.input)
        keys = [q(k) for k in root.keys]
        parts = [f"COUNT(*) AS {q('__n')}"]
        for i, (_, a) in enumerate(root.aggs):
            parts.append(f"{_agg_sql(a)} AS {q(f'__v{i}')}")
            nvalid_sql = "COUNT(*)" if a.func == "len" else f"COUNT({expr_sql(a.arg)})"  # type: ignore[arg-type]
            parts.append(f"{nvalid_sql} AS {q(f'__c{i}')}")
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        sql = f"SELECT {', '.join(keys + parts)} FROM ({inner}){group}"
        got = con.execute(sql).df()
    finally:
        con.close()
    schema = analysis.schema(root.input)
    grid = key_grid([schema[k].grouping_domain or () for k in root.keys])
    index = {cell: i for i, cell in enumerate(grid)}
    cells = len(grid)
    counts = np.zeros(cells, dtype=np.int64)
    out_schema = analysis.schema(root)
    values = [np.zeros(cells, dtype=np.int64 if out_schema[name].kind in ("int", "date") else float)
              for name, _ in root.aggs]  # fmt: skip
    nvalid = np.zeros((len(root.aggs), cells), dtype=np.int64)
    for row in got.itertuples(index=False):
        cell = tuple(_py(v) for v in row[: len(root.keys)])
        i = index[cell]
        rest = row[len(root.keys) :]
        counts[i] = rest[0]
        for j in range(len(root.aggs)):
            v = rest[1 + 2 * j]
            values[j][i] = _num(v, integral=values[j].dtype == np.int64)
            nvalid[j, i] = rest[2 + 2 * j]
    k = plan.min_group_size
    cell_ok = counts >= k
    stats = {}
    input_schema = analysis.schema(root.input)
    for j, (name, a) in enumerate(root.aggs):
        ok = cell_ok & (nvalid[j] >= max(k, min_values(a.func)))
        if a.func == "sum" and a.arg is not None and infer(a.arg, input_schema).kind == "bool":
            ok &= values[j] >= k  # NB: a sum of booleans is a count: the same rule as a cell
        stats[name] = (ok, np.where(ok, values[j], 0))
    return Revealed(cell_ok, stats)


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
