"""Rule 1: a person key is a key, not a value (docs/disclosure.md, rule 1).

A column is a person key when, at its source, its name is one of the rules'
``person_keys`` or the catalog marks it ``person_key`` or ``identifying``; a column
that is only a rename of one (``select(x=col("bsn"))``, a join key, the group key of an
aggregation) is a person key too. A person key may be used only

- as a join key (``on``), with a person key on both sides;
- as the group key of an intermediate aggregation (one row per person, then joined or
  aggregated further) — never as a group key of the output;
- passed through unchanged (``col("bsn")`` as a whole expression);
- as the argument of ``count()`` (the number of non-missing values: the "count unique"
  of a per-person aggregate).

Any other use — a comparison, ``is_in``, ``between``, a ``when`` condition or value,
arithmetic, ``is_null``, ``fill_null``, ``cut``, ``sum``/``mean``/``min``/``max``/... —
could single out one person, and is refused with a PlanError naming the column, where it
is used and the rule. The check is static (the plan and the catalog): it runs before any
party starts, so it is the same for the plain and the MPC executor.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from ..exceptions import PlanError
from ..plan import nodes as n
from .analyze import Analysis, join_renames
from .lineage import column_of

KEY_ROLES = ("person_key", "identifying")
RULE = "it may only be used to join on, to group per person before a join, or be counted"
EXPR_USE = {n.Not: "a negation", n.IsIn: "is_in", n.Between: "between", n.IsNull: "is_null (is_not_null)",
            n.FillNull: "fill_null", n.Cut: "cut", n.DatePart: "a date part", n.AgeAt: "age_at"}  # fmt: skip
OP_USE = {**dict.fromkeys(n.ARITHMETIC_OPS, "arithmetic"), **dict.fromkeys(n.COMPARISON_OPS, "a comparison"),
          **dict.fromkeys(n.LOGICAL_OPS, "a logical and/or")}  # fmt: skip


def check_person_keys(a: Analysis) -> None:
    """Refuse a plan that uses a person key as anything but a key (rule 1), naming the column and the use."""
    is_key = _key_columns(a)
    root = a.plan.root

    def refuse(col: str, where: str, use: str) -> None:
        msg = f"{where}: {col} is a person key: {RULE}; {use} with it would single out one person"
        raise PlanError(msg)

    def expr(rel: n.Relation, e: n.Expr, where: str) -> None:
        if isinstance(e, n.Col):
            return  # NB: passed through unchanged (a rename keeps it a person key: see _key_columns)
        hit = _misuse(e, lambda c: is_key(rel, c))
        if hit is not None:
            refuse(hit[0], where, hit[1])

    def walk(rel: n.Relation) -> None:
        for c in n.children(rel):
            walk(c)
        match rel:
            case n.Filter(inp, pred):
                expr(inp, pred, "filter")
            case n.WithColumns(inp, exprs):
                for name, e in exprs:
                    expr(inp, e, f"with_columns({name}=...)")
            case n.Select(inp, exprs):
                for name, e in exprs:
                    expr(inp, e, f"select({name}=...)")
            case n.Join(left, right, on, _):
                lk, rk = is_key(left, on), is_key(right, on)
                if lk != rk:
                    refuse(on, f"join on {on!r}", "joining it to a column that is not a person key (a value)")
            case n.Aggregate(inp, keys, aggs):
                if rel is root:
                    for k in keys:
                        if is_key(inp, k):
                            refuse(k, "group_by (of the output)", "a group key of the output")
                for name, agg in aggs:
                    if agg.arg is None:
                        continue
                    if isinstance(agg.arg, n.Col):
                        if agg.func != "count" and is_key(inp, agg.arg.name):
                            refuse(agg.arg.name, f"agg({name}=...)", f"{agg.func}()")
                    else:
                        expr(inp, agg.arg, f"agg({name}=...)")
            case n.Glm(inp, y, x, _, offset, _):
                for col, use in ((y, "the outcome of a model"), *((c, "a predictor of a model") for c in x),
                                 (offset, "a model's offset")):  # fmt: skip
                    if col is not None and is_key(inp, col):
                        refuse(col, "fit(...)", use)
            case n.Corr(inp, columns):
                for col in columns:
                    if is_key(inp, col):
                        refuse(col, "corr(...)", "a correlation")
            case n.Concat(inputs, distinct) if distinct is not None:
                if not all(is_key(i, distinct) for i in inputs):
                    msg = (f"concat distinct on {distinct!r}: it must be a person key in every input, so that it "
                           "counts persons once")  # fmt: skip
                    raise PlanError(msg)
            case n.Standardize(inp, keys, events, age, _, _):
                for col, use in (*((k, "a group key of the output") for k in keys), (events, "the events of a rate"),
                                 (age, "the age bands of a rate")):  # fmt: skip
                    if is_key(inp, col):
                        refuse(col, "standardize(...)", use)

    walk(root)


def _misuse(e: n.Expr, is_key: Callable[[str], bool]) -> tuple[str, str] | None:
    """Return (column, use) of the first person key e reads inside an operation, or None."""
    for child in n.expr_children(e):
        if isinstance(child, n.Col) and is_key(child.name):
            return child.name, _use(e, child)
        found = _misuse(child, is_key)
        if found is not None:
            return found
    return None


def _use(parent: n.Expr, child: n.Expr) -> str:
    if isinstance(parent, n.BinOp):
        return OP_USE.get(parent.op, parent.op)
    if isinstance(parent, n.When):
        if any(c is child for c, _ in parent.branches):
            return "a when condition"
        return "a when value"
    return EXPR_USE.get(type(parent), type(parent).__name__)


def _key_columns(a: Analysis) -> Callable[[n.Relation, str], bool]:
    """Return is_key(rel, name): whether a column of rel is a person key or a rename of one."""
    names = set(a.rules.person_keys)

    @cache
    def is_key(rel: n.Relation, name: str) -> bool:
        match rel:
            case n.Source(dataset, _):
                return name in names or column_of(a, (dataset, name)).role in KEY_ROLES
            case n.Filter(inp, _):
                return is_key(inp, name)
            case n.WithColumns(inp, exprs):
                e = dict(exprs).get(name)
                if e is None:
                    return is_key(inp, name)
                return isinstance(e, n.Col) and is_key(inp, e.name)
            case n.Select(inp, exprs):
                e = dict(exprs)[name]
                return isinstance(e, n.Col) and is_key(inp, e.name)
            case n.Join(left, right, on, _):
                if name == on:
                    return is_key(left, on) or is_key(right, on)
                if name in a.schema(left):
                    return is_key(left, name)
                back = {new: old for old, new in join_renames(a.schema(left), a.schema(right), on).items()}
                return is_key(right, back[name])
            case n.Aggregate(inp, keys, _):
                return name in keys and is_key(inp, name)
            case n.Concat(inputs, _):
                return any(is_key(i, name) for i in inputs)  # NB: a key in any organisation's part is a key
        return False  # pragma: no cover - every relation kind is listed

    return is_key
