"""Every node kind of plan.nodes has a rule in every visitor: serde, types, explain, both executors.

The kinds are enumerated from plan.nodes (the ``Expr`` and ``Relation`` unions,
``BINARY_OPS``, ``AGG_FUNCS``), so a new node, operator or aggregate function without
its rules makes these tests fail. Expressions are also evaluated row by row on both
executors — DuckDB and the MPC kernels run as plain JAX (no secret sharing) — and
must give the same values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from werkplaats.compile import analyze, plain, spu
from werkplaats.compile.kernels import aggregate, expr, groupby
from werkplaats.compile.kernels.core import SCol
from werkplaats.compile.layout import layout
from werkplaats.compile.rules import DisclosureRules
from werkplaats.local import prepare
from werkplaats.mpc.encode import encode
from werkplaats.mpc.runtime import enable_x64
from werkplaats.plan import explain, types
from werkplaats.plan import nodes as n
from werkplaats.plan.serde import canonical_json, plan_from_json

INT, FLT, BOOL, STR, DATE = n.Col("i"), n.Col("f"), n.Col("b"), n.Col("s"), n.Col("d")

# One example of every expression kind, over the columns of TABLE.
EXPRS: dict[type, n.Expr] = {
    n.Col: INT,
    n.Lit: n.Lit(2.5),
    n.BinOp: n.BinOp("sub", INT, n.Lit(1)),
    n.Not: n.Not(BOOL),
    n.IsIn: n.IsIn(STR, ("a", "c")),
    n.Between: n.Between(INT, n.Lit(0), n.Lit(7)),
    n.IsNull: n.IsNull(FLT),
    n.FillNull: n.FillNull(INT, n.Lit(0)),
    n.Cut: n.Cut(FLT, (0.0, 2.0), ("lo", "mid", "hi")),
    n.DatePart: n.DatePart(DATE, "iso_week"),
    n.AgeAt: n.AgeAt(DATE, dt.date(2024, 1, 1)),
    n.When: n.When(((BOOL, n.Lit("ja")), (n.BinOp("gt", INT, n.Lit(5)), n.Lit("groot"))), n.Lit("nee")),
}
# Every binary operator, on operands it is defined for.
BINARY = {op: n.BinOp(op, INT, FLT) for op in n.ARITHMETIC_OPS} | {
    op: n.BinOp(op, INT, n.Lit(3)) for op in n.COMPARISON_OPS
} | {op: n.BinOp(op, BOOL, n.BinOp("gt", INT, n.Lit(0))) for op in n.LOGICAL_OPS}  # fmt: skip
SAMPLES = [*EXPRS.values(), *BINARY.values(), n.DatePart(DATE, "year"), n.DatePart(DATE, "month"),
           n.BinOp("eq", STR, n.Lit("b")), n.FillNull(STR, n.Lit("a"))]  # fmt: skip

TABLE = pd.DataFrame({
    "i": pd.array([3, -2, None, 7, 0, 12], dtype="Int64"),
    "f": pd.array([1.5, None, -2.25, 0.0, 4.0, 3.0], dtype="Float64"),
    "b": pd.array([True, False, None, True, False, True], dtype="boolean"),
    "s": pd.Categorical(["a", "b", None, "c", "a", "b"], categories=["a", "b", "c"]),
    "d": pd.to_datetime(pd.Series(["2000-03-01", "1999-12-31", None, "1950-06-15", "2024-02-29", "1980-01-01"])),
})  # fmt: skip

# One example of every relation kind, together in one plan.
SOURCE = n.Source("t")
RIGHT = n.Aggregate(n.Source("u"), ("k",), (("m", n.Agg("max", n.Col("x"))),))
RELATIONS: dict[type, n.Relation] = {
    n.Source: SOURCE,
    n.Filter: n.Filter(SOURCE, n.BinOp("gt", INT, n.Lit(0))),
    n.WithColumns: n.WithColumns(SOURCE, (("j", n.BinOp("add", INT, n.Lit(1))),)),
    n.Select: n.Select(SOURCE, (("k", INT), ("s", STR))),
    n.Join: n.Join(n.Select(SOURCE, (("k", INT), ("s", STR))), RIGHT, "k", "left"),
    n.Aggregate: RIGHT,
    n.Concat: n.Concat((SOURCE, n.Filter(SOURCE, n.BinOp("gt", INT, n.Lit(0))))),
    # NB: summaries are plan roots only (tests/compile/test_models*.py run them)
    n.Glm: n.Glm(SOURCE, "f", ("i", "s"), "gaussian", None, (("s", "b"),)),
    n.Corr: n.Corr(SOURCE, ("i", "f")),
    n.Standardize: n.Standardize(SOURCE, ("b",), "i", "s", (("a", 1.0), ("b", 2.0), ("c", 1.0))),
}
PLAN = n.Plan(
    n.Aggregate(
        n.Filter(n.WithColumns(RELATIONS[n.Join], (("hoog", n.BinOp("gt", n.Col("m"), n.Lit(1.0))),)),
                 n.BinOp("or", n.Col("hoog"), n.BinOp("eq", n.Col("m"), n.Lit(1.0)))),
        ("s",),
        tuple((f"a_{func}", n.Agg(func, None if func == "len" else n.Col("m"), 0.5 if func == "quantile" else None))
              for func in n.AGG_FUNCS),
    ),
    min_group_size=1,
)  # fmt: skip
CATALOG_TABLES = {"t": TABLE, "u": pd.DataFrame({"k": pd.array([3, 7, 9], dtype="Int64"), "x": [1.0, 2.5, -1.0]})}

EXPR_VISITORS = [types.TypeInference, explain.ExprText, plain.SqlExpr, expr.ExprEval]
RELATION_VISITORS = [analyze.SchemaOf, analyze.Prune, explain.Steps, plain.PlainCompiler, spu.SpuCompiler]


def test_every_node_kind_has_an_example_here() -> None:
    assert set(EXPRS) == set(n.EXPR_NODES), "add an example of the new expression kind to EXPRS"
    assert set(RELATIONS) == set(n.RELATION_NODES), "add an example of the new relation kind to RELATIONS"
    assert set(BINARY) == set(n.BINARY_OPS)


@pytest.mark.parametrize("visitor", EXPR_VISITORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("kind", n.EXPR_NODES, ids=lambda k: k.__name__)
def test_every_expression_visitor_has_a_rule_for_every_expression_kind(visitor: type, kind: type) -> None:
    assert visitor.handles(kind), f"{visitor.__name__} needs visit_{kind.__name__}"


@pytest.mark.parametrize("visitor", RELATION_VISITORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("kind", n.RELATION_NODES, ids=lambda k: k.__name__)
def test_every_relation_visitor_has_a_rule_for_every_relation_kind(visitor: type, kind: type) -> None:
    assert visitor.handles(kind), f"{visitor.__name__} needs visit_{kind.__name__}"


def test_every_binary_operator_has_a_rule_everywhere() -> None:
    assert set(n.ARITHMETIC_OPS + n.COMPARISON_OPS + n.LOGICAL_OPS) == set(n.BINARY_OPS)  # types.infer
    assert set(explain.BINARY_TEXT) == set(n.BINARY_OPS)
    assert set(plain.BINARY_SQL) == set(n.BINARY_OPS)
    assert set(expr.BINARY_OPS) == set(n.BINARY_OPS)


def test_every_aggregate_function_has_a_rule_everywhere() -> None:
    funcs = set(n.AGG_FUNCS)
    assert set(types.AGG_SIGNATURES) == funcs
    assert set(explain.AGG_TEXT) == funcs
    assert set(plain.AGG_SQL) == funcs
    assert set(aggregate.STATISTICS) | {"len"} == funcs  # NB: len is the cell's row count
    assert set(groupby.SUPPORTED_AGGS) | set(groupby.UNSUPPORTED_AGGS) == funcs  # refused explicitly


def test_a_plan_with_every_relation_kind_and_aggregate_round_trips_checks_explains_and_runs() -> None:
    text = canonical_json(PLAN)
    assert plan_from_json(text) == PLAN  # NB: validated against the published JSON Schema
    a, checked = prepare(PLAN, CATALOG_TABLES, rules=DisclosureRules.cells_only())  # NB: 3 rows, k = 1
    steps = explain.explain(a.plan)
    for name in ("Read t.", "Read u.", "Keep only columns k = i, s.", "left join", "Compute hoog", "Keep rows"):
        assert name in steps
    out = analyze.result_frame(a, plain.run_plain(a, checked))
    assert out.columns.tolist() == ["s", *(f"a_{f}" for f in n.AGG_FUNCS), "suppressed", "reason"]
    shown = out[~out["suppressed"]]  # NB: i = 3 (s = a) joins m = 1.0, i = 7 (s = c) joins m = 2.5; k = 1
    assert shown["s"].tolist() == ["a", "c"]
    assert shown["a_len"].tolist() == [1, 1]
    assert shown["a_max"].tolist() == [1.0, 2.5]


@pytest.mark.parametrize("e", SAMPLES, ids=explain.expr_text)
def test_every_expression_round_trips_and_has_a_type_and_a_text(e: n.Expr) -> None:
    plan = n.Plan(n.Aggregate(n.WithColumns(SOURCE, (("x", e),)), (), (("c", n.Agg("count", n.Col("x"))),)))
    assert plan_from_json(canonical_json(plan)) == plan
    assert types.infer(e, analyze.analyze(plan, {"t": _schema()}).schema(SOURCE)).kind != "null"
    assert explain.expr_text(e)


@pytest.mark.parametrize("e", SAMPLES, ids=explain.expr_text)
def test_both_executors_give_every_expression_the_same_values(e: n.Expr) -> None:
    plan = n.Plan(n.Aggregate(n.WithColumns(SOURCE, (("x", e),)), (), (("c", n.Agg("count", n.Col("x"))),)))
    a, checked = prepare(plan, {"t": TABLE}, rules=DisclosureRules.cells_only())
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    want = plain.run_sql(f"SELECT {plain.q('x')} FROM ({plain.PlainCompiler(a).visit(root.input)})", checked)
    enable_x64()
    rows = {"t": len(TABLE)}
    slots = layout(a, rows)
    frame = spu.SpuCompiler(a, slots, encode(a, "t", checked["t"], slots), rows).visit(root.input)
    got = _values(frame.cols["x"])
    assert got == [_python(v) for v in want["x"]]


def _schema() -> Any:
    from werkplaats.catalog.schema import infer_schema

    return infer_schema("t", TABLE)


def _values(c: SCol) -> list[Any]:
    """Return a secret column's values as Python objects (None where missing), in the clear."""
    if c.kind == "str":
        oh = np.asarray(c.oh)
        return [c.domain[int(row.argmax())] if row.any() else None for row in oh]  # type: ignore[index]
    out: list[Any] = []
    for ok, v in zip(np.asarray(c.ok), np.asarray(c.v), strict=True):
        if not ok:
            out.append(None)
        elif c.kind == "bool":
            out.append(bool(v))
        elif c.kind == "date":
            out.append(dt.date(1970, 1, 1) + dt.timedelta(days=int(v)))
        else:
            out.append(float(v) if c.kind == "float" else int(v))
    return out


def _python(v: Any) -> Any:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, pd.Timestamp):
        return v.date()
    return v
