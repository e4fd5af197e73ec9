"""Does an approval cover this run? The one check the hub, every datastation and every engine make.

Each node checks for itself, whatever another node says: the hub when a steward sends an
approval and when it picks the approvals a job runs under; a datastation for its own
organisation's approval (with the key from its own key file); an engine for every
organisation whose data the job reads (with the keys pinned in its own engine.toml, never
the keys the hub lists in the job). They all call `verify` (or `verify_job`, which
calls it per organisation), so the rule is written once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..plan.serde import plan_from_dict, plan_hash
from . import pki
from .messages import JobPayload, SignedApproval
from .signing import (
    APPROVAL_KIND,
    ApprovalError,
    approval_id,
    canonical,
    check_body,
    check_in_ranges,
    now,
    template_hash,
)


@dataclass(frozen=True, slots=True)
class Scope:
    """What an approval must cover: the plan (and its hash), the collaboration and the purpose."""

    collaboration: str
    purpose: str
    plan: dict[str, Any]
    plan_hash: str

    @classmethod
    def of_job(cls, job: JobPayload) -> Scope:
        """Return the scope of a job as the hub describes it."""
        return cls(job.collaboration, job.purpose, job.plan, job.plan_hash)


def verify(approval: SignedApproval, *, key: str, scope: Scope, runs_used: int, at: dt.datetime | None = None) -> str:
    """Return the approval's id if it covers a run in scope; raise ApprovalError saying why not.

    key is the organisation's registered public key; runs_used how many runs the checking
    node has counted under this approval; at the time of the run (now by default).
    """
    body, sig = approval.body, approval.signature
    org = body.get("organisation", "?")
    if body.get("kind") != APPROVAL_KIND:
        msg = f"approval of {org}: not a werkplaats approval"
        raise ApprovalError(msg)
    check_body(body)
    if not pki.verify(key, canonical(body), sig):
        msg = f"approval of {org}: the signature does not verify against the organisation's registered key"
        raise ApprovalError(msg)
    if body.get("collaboration") != scope.collaboration:
        msg = f"approval of {org}: given for collaboration {body.get('collaboration')!r}, not {scope.collaboration!r}"
        raise ApprovalError(msg)
    if body.get("purpose") != scope.purpose:
        msg = f"approval of {org}: given for another purpose"
        raise ApprovalError(msg)
    if body.get("mode") == "template":
        if template_hash(scope.plan, list(body.get("vary", []))) != body.get("template_hash"):
            msg = f"approval of {org}: the plan does not match the approved template"
            raise ApprovalError(msg)
        check_in_ranges(body, scope.plan)  # NB: each varied literal within the range its steward set
    elif body.get("plan_hash") != scope.plan_hash:
        msg = (
            f"approval of {org}: signed for plan {str(body.get('plan_hash'))[:12]}…, "
            f"this plan is {scope.plan_hash[:12]}…"
        )
        raise ApprovalError(msg)
    when = at or now()
    if dt.datetime.fromisoformat(body["expires"]) <= when:
        msg = f"approval of {org}: expired on {body['expires']}"
        raise ApprovalError(msg)
    if runs_used >= int(body.get("max_runs", 0)):
        msg = f"approval of {org}: all {body.get('max_runs')} approved runs are used"
        raise ApprovalError(msg)
    return approval_id(sig)


def verify_job(
    job: JobPayload,
    *,
    organisations: list[str],
    runs_used: dict[str, int],
    keys: dict[str, str],
    at: dt.datetime | None = None,
) -> list[str]:
    """Check the job's approval of each organisation; return their ids or raise ApprovalError.

    keys are the organisations' public keys as the checking node pinned them (a datastation's
    own key file, an engine's configuration); the keys the hub lists in the job are never used.
    """
    by_org = {a.body.get("organisation"): a for a in job.approvals}
    known = keys
    scope = Scope.of_job(job)
    ids = []
    for org in organisations:
        a = by_org.get(org)
        if a is None:
            msg = f"no approval of {org} for this job"
            raise ApprovalError(msg)
        key = known.get(org)
        if not key:
            msg = f"no pinned signing key for {org} in this node's configuration"
            raise ApprovalError(msg)
        ids.append(verify(a, key=key, scope=scope, runs_used=runs_used.get(approval_id(a.signature), 0), at=at))
    return ids


def recheck_hash(plan: dict[str, Any], expected: str) -> None:
    """Refuse a plan that does not hash to the plan hash it travels with (a tampered plan)."""
    if plan_hash(plan_from_dict(plan)) != expected:
        msg = "the job's plan does not match its plan hash: refused"
        raise ApprovalError(msg)
