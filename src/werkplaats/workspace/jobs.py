"""What hub, datastations and engines share about a job's plan: the catalog it is checked against, its public facts.

Whether an approval covers a job is `werkplaats.workspace.approvals`.
"""

from __future__ import annotations

from typing import Any

from ..catalog.frictionless import from_frictionless
from ..catalog.schema import TableSchema
from ..compile.analyze import Analysis, check
from ..plan import nodes as n
from ..plan.explain import explain
from ..plan.serde import plan_from_dict, plan_hash, plan_to_dict


def catalog_of(schemas: dict[str, dict[str, Any]]) -> dict[str, TableSchema]:
    """TableSchemas from Frictionless documents keyed by dataset name."""
    return {name: from_frictionless(name, doc) for name, doc in schemas.items()}


def check_plan(
    plan_doc: dict[str, Any], catalog: dict[str, TableSchema], min_group_size: int = 1
) -> tuple[n.Plan, Analysis]:
    """Validate, check and prune a submitted plan; raise k to the datasets' minimum. Return plan and analysis."""
    plan = plan_from_dict(plan_doc)
    a = check(n.Plan(plan.root, max(plan.min_group_size, min_group_size)), catalog)
    return a.plan, a


def columns_read(plan: n.Plan) -> dict[str, list[str]]:
    """Return the columns the plan reads, per dataset, in the order it reads them."""
    out: dict[str, list[str]] = {}
    for s in n.sources(plan.root):
        out.setdefault(s.dataset, [])
        out[s.dataset] += [c for c in s.columns or () if c not in out[s.dataset]]
    return out


def describe(plan: n.Plan) -> dict[str, Any]:
    """The public facts of a checked plan: JSON, hash, explain text, datasets and columns read."""
    cols = columns_read(plan)
    return {
        "plan": plan_to_dict(plan),
        "plan_hash": plan_hash(plan),
        "explain": explain(plan),
        "datasets": sorted(cols),
        "columns": cols,
    }
