from __future__ import annotations

from werkplaats.plan import nodes as n

SRC = n.Source("t", ("a", "b", "d"))
PRED = n.BinOp("gt", n.Col("a"), n.Lit(1))
DERIVED = n.DatePart(n.Col("d"), "year")


def test_relation_exprs_finds_the_expressions_each_relation_holds_itself() -> None:
    filt = n.Filter(SRC, PRED)
    with_cols = n.WithColumns(filt, (("y", DERIVED),))
    agg = n.Aggregate(with_cols, ("y",), (("n", n.Agg("len")), ("s", n.Agg("sum", n.Col("b")))))
    assert n.relation_exprs(SRC) == ()
    assert n.relation_exprs(filt) == (PRED,)
    assert n.relation_exprs(with_cols) == (DERIVED,)
    assert n.relation_exprs(agg) == (n.Col("b"),)  # len has no argument; inputs are not repeated


def test_children_and_sources_follow_the_fields() -> None:
    right = n.Source("u", ("a",))
    join = n.Join(n.Filter(SRC, PRED), right, "a", "left")
    assert n.children(join) == (n.Filter(SRC, PRED), right)
    assert n.sources(join) == [SRC, right]
