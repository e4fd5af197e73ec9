"""What hub, datastations and engines share about a job's plan: the catalog it is checked against, its public facts.

Whether an approval covers a job is `werkplaats.workspace.approvals`.
"""

from __future__ import annotations

from typing import Any

from ..catalog.frictionless import from_frictionless
from ..catalog.schema import TableSchema
from ..compile.analyze import Analysis, check
from ..compile.register import RegisterEntry, attach
from ..compile.rules import DisclosureRules, merged, strictest
from ..exceptions import PlanError
from ..plan import nodes as n
from ..plan.explain import explain
from ..plan.serde import plan_from_dict, plan_hash, plan_to_dict


def catalog_of(schemas: dict[str, dict[str, Any]]) -> dict[str, TableSchema]:
    """TableSchemas from Frictionless documents keyed by dataset name."""
    return {name: from_frictionless(name, doc) for name, doc in schemas.items()}


# The weakest rules a workspace applies, whatever its hub says: a collaboration may tighten any setting,
# may choose rounding instead of perturbation for counts, and may accept tables with more groups than its
# smallest source's rows / k (rule 8's cells_per_source: sparse weekly tables; every cell still meets the
# other rules); it can switch no other rule off. A dataset's own rules can pin any of these on.
WORKSPACE_FLOOR = DisclosureRules(counts="round", cells_per_source=False)


def job_rules(settings: dict[str, Any], catalog: dict[str, TableSchema], datasets: list[str]) -> DisclosureRules:
    """Return the rules a job applies: the collaboration's settings over the floor, tightened by each dataset's own.

    The datasets' rules come from their schemas, which their datastations sign with every share
    (`ShareHeader.schema_sha256`), so a hub cannot weaken them; nor can it go below WORKSPACE_FLOOR.
    """
    base = strictest(WORKSPACE_FLOOR, DisclosureRules.from_settings(settings, "the collaboration's disclosure rules"))
    return merged(base, [dict(catalog[d].rules) for d in datasets if d in catalog])


def required_k(catalog: dict[str, TableSchema], datasets: list[str]) -> int:
    """Return the least k the datasets' own rules ask for (their schemas' ``min_group_size``; 1 if none)."""
    ks = [int(dict(catalog[d].rules).get("min_group_size", 1)) for d in datasets if d in catalog]
    return max(ks, default=1)


def check_plan(
    plan_doc: dict[str, Any], catalog: dict[str, TableSchema], min_group_size: int = 1,
    rules: DisclosureRules | None = None, row_counts: dict[str, int] | None = None,
) -> tuple[n.Plan, Analysis]:  # fmt: skip
    """Validate, check and prune a submitted plan; raise k to the datasets' minimum. Return plan and analysis."""
    plan = plan_from_dict(plan_doc)
    a = check(n.Plan(plan.root, max(plan.min_group_size, min_group_size)), catalog, rules, row_counts)
    return a.plan, a


def job_analysis(plan_doc: dict[str, Any], catalog: dict[str, TableSchema], settings: dict[str, Any],
                 rows: dict[str, int] | None = None,
                 register: list[dict[str, Any]] | None = None) -> Analysis:  # fmt: skip
    """Return the Analysis an engine (or the hub, releasing) makes of a job's checked plan, with the job's rules.

    Refuses a plan whose k is below what its datasets' own rules ask for. register: the job's
    registered cell definitions (rule 9, `JobPayload.registered`), attached when given.
    """
    from ..compile.analyze import analyze

    plan = plan_from_dict(plan_doc)
    datasets = sorted({s.dataset for s in n.sources(plan.root)})
    need = required_k(catalog, datasets)
    if plan.min_group_size < need:
        msg = f"the plan's k ({plan.min_group_size}) is below the {need} its datasets' rules ask for"
        raise PlanError(msg)
    a = analyze(plan, catalog, job_rules(settings, catalog, datasets), rows)
    if register:
        attach(a, [RegisterEntry.from_dict(e) for e in register])
    return a


def columns_read(plan: n.Plan) -> dict[str, list[str]]:
    """Return the columns the plan reads, per dataset, in the order it reads them."""
    out: dict[str, list[str]] = {}
    for s in n.sources(plan.root):
        out.setdefault(s.dataset, [])
        out[s.dataset] += [c for c in s.columns or () if c not in out[s.dataset]]
    return out


def describe(plan: n.Plan, rules: DisclosureRules | None = None,
             catalog: dict[str, TableSchema] | None = None) -> dict[str, Any]:  # fmt: skip
    """The public facts of a checked plan: JSON, hash, explain text (with the rules per output), datasets, columns."""
    cols = columns_read(plan)
    return {
        "plan": plan_to_dict(plan),
        "plan_hash": plan_hash(plan),
        "explain": explain(plan, rules=rules, catalog=catalog),
        "datasets": sorted(cols),
        "columns": cols,
    }
