"""What hub, datastations and engines share about a job: its checked plan and its approvals."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..catalog.frictionless import from_frictionless
from ..catalog.schema import TableSchema
from ..compile.analyze import Analysis, analyze, prune
from ..plan import nodes as n
from ..plan.explain import explain
from ..plan.serde import plan_from_dict, plan_hash, plan_to_dict
from .signing import ApprovalError, approval_id, check_approval


def catalog_of(schemas: dict[str, dict[str, Any]]) -> dict[str, TableSchema]:
    """TableSchemas from Frictionless documents keyed by dataset name."""
    return {name: from_frictionless(name, doc) for name, doc in schemas.items()}


def check_plan(
    plan_doc: dict[str, Any], catalog: dict[str, TableSchema], min_group_size: int = 1
) -> tuple[n.Plan, Analysis]:
    """Validate, check and prune a submitted plan; raise k to the datasets' minimum. Return plan and analysis."""
    plan = plan_from_dict(plan_doc)
    analyze(plan, catalog)  # NB: the plan as written first, for complete error messages
    plan = n.Plan(prune(plan.root, catalog), max(plan.min_group_size, min_group_size))
    return plan, analyze(plan, catalog)


def columns_read(plan: n.Plan) -> dict[str, list[str]]:
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


def verify_job_approvals(
    job: dict[str, Any], *, organisations: list[str], runs_used: dict[str, int], at: dt.datetime | None = None
) -> list[str]:
    """Check the job's approvals of the given organisations; return their ids or raise ApprovalError."""
    by_org = {a["body"].get("organisation"): a for a in job["approvals"]}
    ids = []
    for org in organisations:
        a = by_org.get(org)
        if a is None:
            msg = f"no approval of {org} for this job"
            raise ApprovalError(msg)
        key = job["organisation_keys"].get(org)
        if not key:
            msg = f"no registered signing key for {org}"
            raise ApprovalError(msg)
        aid = approval_id(a["signature"])
        check_approval(
            a,
            public_key=key,
            plan=job["plan"],
            plan_hash=job["plan_hash"],
            collaboration=job["collaboration"],
            purpose=job["purpose"],
            runs_used=runs_used.get(aid, 0),
            at=at,
        )
        ids.append(aid)
    return ids


def recheck_hash(job: dict[str, Any]) -> None:
    """Refuse a job whose plan does not hash to the plan hash it carries (a tampered plan)."""
    if plan_hash(plan_from_dict(job["plan"])) != job["plan_hash"]:
        msg = "the job's plan does not match its plan hash: refused"
        raise ApprovalError(msg)
