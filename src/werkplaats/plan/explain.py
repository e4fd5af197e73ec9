"""Render a plan in plain language for the data steward who approves it.

With the disclosure rules a run applies (``explain(plan, rules=...)``, a
``werkplaats.DisclosureRules``; read by attribute, as the plan layer sits below compile),
it also names, per output statistic, the rules that apply to it (docs/disclosure.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..catalog.schema import ColumnSchema, TableSchema
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


def explain(plan: n.Plan, rules: Any = None, catalog: Mapping[str, TableSchema] | None = None) -> str:
    """Return the plan as numbered steps, then its output and disclosure rules.

    rules: the run's ``DisclosureRules`` (None: only the cell rule is described); catalog:
    the datasets' schemas, for the columns' roles and extremes settings (magnitudes, bases).
    """
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
    if isinstance(root, n.Summary):
        out.append("Output (a summary only):")
        out.append("  " + SUMMARY_OUTPUT[type(root).__name__])
        return "\n".join(out)
    out.append("Output (aggregates only):")
    if isinstance(root, n.Aggregate):
        grp = ", ".join(root.keys) if root.keys else "the whole population (one row)"
        out.append(f"  one row per {grp}" if root.keys else f"  {grp}")
    out.append(f"  Disclosure control: cells with fewer than {plan.min_group_size} rows are "
               "suppressed with all their statistics; so is any statistic computed from "
               f"fewer than {plan.min_group_size} values, and any count of a condition (the sum of a "
               f"boolean) below {plan.min_group_size}. Suppression happens inside the "
               "secure computation, before anything is revealed.")  # fmt: skip
    if rules is not None and isinstance(root, n.Aggregate):
        out.extend(rule_lines(plan, rules, catalog or {}))
    return "\n".join(out)


def rule_lines(plan: n.Plan, rules: Any, catalog: Mapping[str, TableSchema]) -> list[str]:
    """Return the disclosure rules applied to each output statistic, and to the whole table, in words."""
    root = plan.root
    assert isinstance(root, n.Aggregate)
    k = plan.min_group_size
    out = ["", "Disclosure rules per output (docs/disclosure.md):"]
    for name, agg in root.aggs:
        out.append(f"  - {name}: {_stat_rules(agg, root.input, rules, catalog, k)}")
    table: list[str] = []
    if rules.person_keys or any(c.role in ("person_key", "identifying") for t in catalog.values() for c in t.columns):
        table.append("person keys are used only as keys (rule 1: checked before the run)")
    if rules.complement and _removes_rows(root):
        steps = "filter, inner join and distinct" if _has_distinct(root) else "filter and inner join"
        table.append(f"each {steps} removes no rows or at least {k} (rule 5: else all withheld)")
    if rules.secondary:
        table.append("cells from which a withheld cell could be derived are withheld too (rule 7, margins)")
    cells = f"at most {rules.max_cells} groups"
    if rules.cells_per_source:
        cells += f" and at most one per {k} rows of the smallest source"
    table.append(cells + " (rule 8)")
    if rules.register:
        table.append(f"refused if a cell differs from an earlier released one by 1 to {k - 1} people (rule 9)")
    out.append("  The whole table: " + "; ".join(table) + ".")
    return out


def _counts(rules: Any) -> str:
    if rules.counts == "perturb":
        pt = rules.ptable
        js = f", js={pt.js}" if pt.js else ""
        return f"perturbed (cell key method, D={pt.D}, V={pt.V:g}{js})"
    if rules.counts == "round":
        return f"rounded to base {rules.rounding_base}"
    return "exact"


def _stat_rules(agg: n.Agg, rel: n.Relation, rules: Any, catalog: Mapping[str, TableSchema], k: int) -> str:
    cols = [] if agg.arg is None else [c for o in _arg_origins(agg.arg, rel, catalog) if (c := _column(catalog, o))]
    contrib = f"at least {k} contributors (rule 2)" if rules.contributors else f"at least {k} values"
    if agg.func == "len":
        return f"count, {_counts(rules)}; withheld below {k} rows"
    if agg.func == "count":
        return f"count of non-missing values, {_counts(rules)}; withheld below {k}"
    if agg.func in ("sum", "mean"):
        what = "sum" if agg.func == "sum" else "mean"
        if agg.arg is not None and _is_condition(agg.arg, cols):
            return (f"{what} of a condition: a count of its true rows, withheld below {k} true rows, or below {k} "
                    "false rows when not all are true (rule 2)")  # fmt: skip
        if any(c.role == "magnitude" for c in cols):
            tests = [f"dominance ({rules.dominance_n}, {rules.dominance_pct:g}%)" if rules.dominance_pct < 100 else "",
                     f"p% {rules.p_percent:g}" if rules.p_percent > 0 else ""]  # fmt: skip
            return f"{what} of a magnitude: " + ", ".join([*(t for t in tests if t), contrib]) + " (rule 3)"
        return f"{what}: {contrib}"
    if agg.func in ("min", "max") or (agg.func == "quantile" and agg.q in (0.0, 1.0)):
        word = {"min": "minimum", "max": "maximum"}.get(agg.func) or f"{agg.q:g}-quantile"
        return f"{word}: {_extremes(cols, rules, k)}"
    if agg.func in ("median", "quantile"):
        word = "median" if agg.func == "median" else f"{agg.q:g}-quantile"
        sides = f"at least {k} contributors on each side (rule 4)" if rules.quantile_sides else contrib
        return f"{word}: {sides}"
    return f"{'variance' if agg.func == 'var' else 'standard deviation'}: {contrib}"


def _extremes(cols: list[ColumnSchema], rules: Any, k: int) -> str:
    for c in cols:
        coded = [f"top-coded at {_num(c.top_code)}" if c.top_code is not None else "",
                 f"bottom-coded at {_num(c.bottom_code)}" if c.bottom_code is not None else ""]  # fmt: skip
        if any(coded):
            return ", ".join(x for x in coded if x) + " (extremes, rule 4)"
        if c.extremes_base is not None:
            return f"rounded to {_num(c.extremes_base)}, released when {k} contributors share it (extremes, rule 4)"
    if rules.extremes == "withhold":
        return "withheld (extremes, rule 4)"
    if rules.extremes == "round":
        return f"rounded to {rules.rounding_base}, released when {k} contributors share it (extremes, rule 4)"
    return "exact"


def _is_condition(e: n.Expr, cols: list[ColumnSchema]) -> bool:
    if isinstance(e, n.BinOp):
        return e.op in n.COMPARISON_OPS or e.op in n.LOGICAL_OPS
    if isinstance(e, n.FillNull):
        return _is_condition(e.arg, cols)
    return isinstance(e, n.Not | n.IsIn | n.Between | n.IsNull) or (
        isinstance(e, n.Col) and len(cols) == 1 and cols[0].type == "bool"
    )


def _has_distinct(rel: n.Relation) -> bool:
    here = isinstance(rel, n.Concat) and rel.distinct_on is not None
    return here or any(_has_distinct(c) for c in n.children(rel))


def _removes_rows(rel: n.Relation) -> bool:
    here = isinstance(rel, n.Filter) or (isinstance(rel, n.Join) and rel.how == "inner")
    here = here or (isinstance(rel, n.Concat) and rel.distinct_on is not None)
    return here or any(_removes_rows(c) for c in n.children(rel))


def _column(catalog: Mapping[str, TableSchema], origin: tuple[str, str]) -> ColumnSchema | None:
    t = catalog.get(origin[0])
    return t.column(origin[1]) if t is not None and origin[1] in t.names else None


def _arg_origins(e: n.Expr, rel: n.Relation, catalog: Mapping[str, TableSchema]) -> set[tuple[str, str]]:
    """Return the source columns an expression reads (as compile/lineage.py, from the plan and catalog alone)."""
    return set().union(*(_origins(rel, c, catalog) for c in n.columns_of(e)))


def _origins(rel: n.Relation, name: str, catalog: Mapping[str, TableSchema]) -> set[tuple[str, str]]:
    match rel:
        case n.Source(dataset, _):
            return {(dataset, name)}
        case n.Filter(inp, _):
            return _origins(inp, name, catalog)
        case n.WithColumns(inp, exprs):
            e = dict(exprs).get(name)
            return _origins(inp, name, catalog) if e is None else _arg_origins(e, inp, catalog)
        case n.Select(inp, exprs):
            e = dict(exprs).get(name)
            return set() if e is None else _arg_origins(e, inp, catalog)
        case n.Join(left, right, on, _):
            if name == on:
                return _origins(left, on, catalog) | _origins(right, on, catalog)
            found = {o for o in _origins(left, name, catalog) if _column(catalog, o) is not None}
            return found or _origins(right, name.removesuffix("_right"), catalog)  # NB: join_renames' suffix
        case n.Concat(inputs, _):
            return set().union(*(_origins(i, name, catalog) for i in inputs))
        case n.Aggregate(inp, keys, aggs):
            if name in keys:
                return _origins(inp, name, catalog)
            agg = dict(aggs).get(name)
            return set() if agg is None or agg.arg is None else _arg_origins(agg.arg, inp, catalog)
    return set()  # pragma: no cover - every relation kind is listed


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

    def visit_Concat(self, r: n.Concat) -> list[str]:
        out = [f"Prepare part {i} of the union: " + " ".join(self.visit(inp)) for i, inp in enumerate(r.inputs, 1)]
        names = ", ".join(dict.fromkeys(s.dataset for s in n.sources(r)))
        text = f"Stack the rows of the {len(r.inputs)} parts ({names}): every part has the same columns."
        if r.distinct_on is not None:
            d = r.distinct_on
            text += (f" Keep each person once by the person key {d}: the row of the first part that has the "
                     f"person (its first row there); rows without {d} are left out.")  # fmt: skip
        return [*out, text]

    def visit_Aggregate(self, r: n.Aggregate) -> list[str]:
        stats = "; ".join(f"{name} = {agg_text(a)}" for name, a in r.aggs)
        by = f"per {', '.join(r.keys)}" if r.keys else "over all rows"
        return [*self.visit(r.input), f"Aggregate {by}: {stats}."]

    def visit_Glm(self, r: n.Glm) -> list[str]:
        return [*self.visit(r.input), model_text(r) + "."]

    def visit_Corr(self, r: n.Corr) -> list[str]:
        text = f"Compute the Pearson correlations of {', '.join(r.columns)}, over the rows where all are present."
        return [*self.visit(r.input), text]

    def visit_Standardize(self, r: n.Standardize) -> list[str]:
        by = f"per {', '.join(r.keys)}" if r.keys else "over all rows"
        bands = len(r.standard)
        return [
            *self.visit(r.input),
            f"Compute the directly age-standardised rate of {r.events} per {r.per:,} "
            f"{by}, over the age bands of {r.age} weighted by a standard population of {bands} bands.",
        ]


SUMMARY_OUTPUT = {
    "Glm": "releases coefficients, standard errors and fit statistics only, and only when the model checks "
           "pass (residual degrees of freedom, parameters per row, rows per category); no row and no "
           "prediction leaves the secure computation.",
    "Corr": "releases the correlation matrix and the number of rows used (rounded) only, when at least k rows are "
            "used, no column is constant, and every value of a two-valued column (and every cell of two such "
            "columns' table) holds at least k rows.",
    "Standardize": "releases per cell the standardised rate and its 95% interval only, when the cell holds at "
                   "least k events and k persons, in at least 2 age bands; no count (of events or persons, per "
                   "cell or per age band) leaves the secure computation.",
}  # fmt: skip

FAMILY_TEXT = {"gaussian": "linear regression (least squares)", "binomial": "logistic regression",
               "poisson": "Poisson regression (log link)"}  # fmt: skip


def model_text(r: n.Glm) -> str:
    """Return one sentence naming a model: its family, outcome and predictors."""
    xs = ", ".join(r.x)
    ref = "; reference categories " + ", ".join(f"{c} = {v}" for c, v in r.reference) if r.reference else ""
    off = f", with offset {r.offset}" if r.offset else ""
    return f"Fit a {FAMILY_TEXT.get(r.family, r.family)} of {r.y} on {len(r.x)} variables ({xs}){off}{ref}"
