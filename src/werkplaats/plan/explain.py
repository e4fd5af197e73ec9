"""Render a plan in plain language for the data steward who approves it."""

from __future__ import annotations

from ..plan import nodes as n
from .serde import plan_hash

_OPS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "eq": "=", "ne": "≠",
        "lt": "<", "le": "≤", "gt": ">", "ge": "≥", "and": "and", "or": "or"}  # fmt: skip
_AGGS = {"len": "number of rows", "count": "number of non-missing values of", "sum": "sum of",
         "mean": "mean of", "min": "minimum of", "max": "maximum of", "var": "variance of",
         "std": "standard deviation of", "median": "median of"}  # fmt: skip


def expr_text(e: n.Expr) -> str:
    """Return a readable one-line form of an expression."""
    match e:
        case n.Col(name):
            return name
        case n.Lit(value):
            return repr(value) if isinstance(value, str) else str(value)
        case n.BinOp(op, left, right):
            return f"({expr_text(left)} {_OPS[op]} {expr_text(right)})"
        case n.Not(arg):
            return f"not {expr_text(arg)}"
        case n.IsIn(arg, values):
            return f"{expr_text(arg)} in {list(values)}"
        case n.Between(arg, lo, hi):
            return f"{expr_text(arg)} between {expr_text(lo)} and {expr_text(hi)}"
        case n.IsNull(arg):
            return f"{expr_text(arg)} is missing"
        case n.FillNull(arg, value):
            return f"{expr_text(arg)} (missing → {expr_text(value)})"
        case n.Cut(arg, breaks, labels):
            return f"{expr_text(arg)} binned at {[_num(b) for b in breaks]} as {list(labels)}"
        case n.DatePart(arg, part):
            return f"{part.replace('_', ' ')} of {expr_text(arg)}"
        case n.AgeAt(arg, date):
            return f"age in years on {date.isoformat()} from {expr_text(arg)}"
        case n.When(branches, otherwise):
            parts = [f"if {expr_text(c)} then {expr_text(v)}" for c, v in branches]
            return "(" + "; ".join(parts) + f"; else {expr_text(otherwise)})"
    return type(e).__name__


def _num(b: float) -> int | float:
    return int(b) if float(b).is_integer() else b


def agg_text(a: n.Agg) -> str:
    """Return a readable form of an aggregate."""
    if a.func == "len":
        return _AGGS["len"]
    if a.func == "quantile":
        return f"{a.q:g}-quantile of {expr_text(a.arg)}"  # type: ignore[arg-type]
    return f"{_AGGS[a.func]} {expr_text(a.arg)}"  # type: ignore[arg-type]


def explain(plan: n.Plan) -> str:
    """Return the plan as numbered steps, then its output and disclosure rules."""
    lines = steps(plan.root)
    root = plan.root
    out = ["Analysis plan " + plan_hash(plan)[:16] + "…", ""]
    out.append("Data read:")
    for s in n.sources(plan.root):
        cols = ", ".join(s.columns) if s.columns is not None else "(columns fixed when checked against the catalog)"
        out.append(f"  - {s.dataset}: {cols}")
    out.append("")
    out.append("Steps:")
    out.extend(f"  {i}. {line}" for i, line in enumerate(lines, 1))
    out.append("")
    out.append("Output (aggregates only):")
    if isinstance(root, n.Aggregate):
        grp = ", ".join(root.keys) if root.keys else "the whole population (one row)"
        out.append(f"  one row per {grp}" if root.keys else f"  {grp}")
    out.append(f"  Disclosure control: cells with fewer than {plan.min_group_size} rows are "
               "suppressed with all their statistics; so is any statistic computed from "
               f"fewer than {plan.min_group_size} values, and any count of a condition (the sum of a "
               f"boolean) below {plan.min_group_size}. Suppression happens inside the "
               "secure computation, before anything is revealed.")  # fmt: skip
    return "\n".join(out)


def steps(rel: n.Relation) -> list[str]:
    """Return the plain-language steps of a relation, in execution order."""
    lines: list[str] = []
    _steps(rel, lines)
    return lines


def _steps(rel: n.Relation, lines: list[str]) -> None:
    match rel:
        case n.Source(dataset, _):
            lines.append(f"Read {dataset}.")
        case n.Filter(inp, pred):
            _steps(inp, lines)
            lines.append(f"Keep rows where {expr_text(pred)}.")
        case n.WithColumns(inp, exprs):
            _steps(inp, lines)
            for name, e in exprs:
                lines.append(f"Compute {name} = {expr_text(e)}.")
        case n.Select(inp, exprs):
            _steps(inp, lines)
            lines.append("Keep only columns " + ", ".join(
                name if isinstance(e, n.Col) and e.name == name else f"{name} = {expr_text(e)}"
                for name, e in exprs) + ".")  # fmt: skip
        case n.Join(left, right, on, how):
            _steps(left, lines)
            sub: list[str] = []
            _steps(right, sub)
            lines.append("Prepare the right side of the join: " + " ".join(sub))
            kind = "keep every left row, with missing values where no match" if how == "left" \
                else "keep only rows present on both sides"  # fmt: skip
            lines.append(f"Link both sides on the person/record key {on} ({how} join: {kind}). "
                         "The right side must have at most one row per key.")  # fmt: skip
        case n.Aggregate(inp, keys, aggs):
            _steps(inp, lines)
            stats = "; ".join(f"{name} = {agg_text(a)}" for name, a in aggs)
            by = f"per {', '.join(keys)}" if keys else "over all rows"
            lines.append(f"Aggregate {by}: {stats}.")
