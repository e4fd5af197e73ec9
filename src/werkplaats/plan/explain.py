"""Render a plan in plain language for the data steward who approves it."""

from __future__ import annotations

from . import nodes as n
from .serde import plan_hash
from .visitor import Visitor

BINARY_TEXT = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "eq": "=", "ne": "≠",
               "lt": "<", "le": "≤", "gt": ">", "ge": "≥", "and": "and", "or": "or"}  # fmt: skip
AGG_TEXT = {"len": "number of rows", "count": "number of non-missing values of {arg}", "sum": "sum of {arg}",
            "mean": "mean of {arg}", "min": "minimum of {arg}", "max": "maximum of {arg}",
            "var": "variance of {arg}", "std": "standard deviation of {arg}", "median": "median of {arg}",
            "quantile": "{q:g}-quantile of {arg}"}  # fmt: skip


class ExprText(Visitor[str]):
    """The readable one-line form of each expression node."""

    name = "explain"

    def visit_Col(self, e: n.Col) -> str:
        return e.name

    def visit_Lit(self, e: n.Lit) -> str:
        return repr(e.value) if isinstance(e.value, str) else str(e.value)

    def visit_BinOp(self, e: n.BinOp) -> str:
        return f"({self.visit(e.left)} {BINARY_TEXT[e.op]} {self.visit(e.right)})"

    def visit_Not(self, e: n.Not) -> str:
        return f"not {self.visit(e.arg)}"

    def visit_IsIn(self, e: n.IsIn) -> str:
        return f"{self.visit(e.arg)} in {list(e.values)}"

    def visit_Between(self, e: n.Between) -> str:
        return f"{self.visit(e.arg)} between {self.visit(e.lower)} and {self.visit(e.upper)}"

    def visit_IsNull(self, e: n.IsNull) -> str:
        return f"{self.visit(e.arg)} is missing"

    def visit_FillNull(self, e: n.FillNull) -> str:
        return f"{self.visit(e.arg)} (missing → {self.visit(e.value)})"

    def visit_Cut(self, e: n.Cut) -> str:
        return f"{self.visit(e.arg)} binned at {[_num(b) for b in e.breaks]} as {list(e.labels)}"

    def visit_DatePart(self, e: n.DatePart) -> str:
        return f"{e.part.replace('_', ' ')} of {self.visit(e.arg)}"

    def visit_AgeAt(self, e: n.AgeAt) -> str:
        return f"age in years on {e.date.isoformat()} from {self.visit(e.arg)}"

    def visit_When(self, e: n.When) -> str:
        parts = [f"if {self.visit(c)} then {self.visit(v)}" for c, v in e.branches]
        return "(" + "; ".join(parts) + f"; else {self.visit(e.otherwise)})"


def expr_text(e: n.Expr) -> str:
    """Return a readable one-line form of an expression."""
    return ExprText().visit(e)


def _num(b: float) -> int | float:
    return int(b) if float(b).is_integer() else b


def agg_text(a: n.Agg) -> str:
    """Return a readable form of an aggregate."""
    arg = expr_text(a.arg) if a.arg is not None else ""
    return AGG_TEXT[a.func].format(arg=arg, q=a.q)


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
    return Steps().visit(rel)


class Steps(Visitor[list[str]]):
    """The plain-language steps of each relation node, after those of its inputs."""

    name = "explain"

    def visit_Source(self, r: n.Source) -> list[str]:
        return [f"Read {r.dataset}."]

    def visit_Filter(self, r: n.Filter) -> list[str]:
        return [*self.visit(r.input), f"Keep rows where {expr_text(r.predicate)}."]

    def visit_WithColumns(self, r: n.WithColumns) -> list[str]:
        return [*self.visit(r.input), *(f"Compute {name} = {expr_text(e)}." for name, e in r.exprs)]

    def visit_Select(self, r: n.Select) -> list[str]:
        cols = (name if isinstance(e, n.Col) and e.name == name else f"{name} = {expr_text(e)}" for name, e in r.exprs)
        return [*self.visit(r.input), "Keep only columns " + ", ".join(cols) + "."]

    def visit_Join(self, r: n.Join) -> list[str]:
        kind = "keep every left row, with missing values where no match" if r.how == "left" \
            else "keep only rows present on both sides"  # fmt: skip
        return [
            *self.visit(r.left),
            "Prepare the right side of the join: " + " ".join(self.visit(r.right)),
            f"Link both sides on the person/record key {r.on} ({r.how} join: {kind}). "
            "The right side must have at most one row per key.",
        ]

    def visit_Aggregate(self, r: n.Aggregate) -> list[str]:
        stats = "; ".join(f"{name} = {agg_text(a)}" for name, a in r.aggs)
        by = f"per {', '.join(r.keys)}" if r.keys else "over all rows"
        return [*self.visit(r.input), f"Aggregate {by}: {stats}."]
