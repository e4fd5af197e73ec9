"""Which stored approvals a run goes under: the hub's choice, checked with the one rule.

The check itself is `werkplaats.workspace.approvals.verify`, the same one datastations
and engines run; this module only finds the candidates (approvals of this request,
then template approvals that match its plan) and counts the runs the hub has seen.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import db
from ..approvals import Scope, verify
from ..messages import JobState, SignedApproval
from ..signing import ApprovalError, approval_id, template_hash
from .deps import organisation


def scope_of(r: db.Request, collab: db.Collaboration) -> Scope:
    """Return what an approval of this request must cover."""
    return Scope(collab.name, r.purpose, r.plan, r.plan_hash)


def check_new(s: Session, r: db.Request, collab: db.Collaboration, approval: SignedApproval) -> db.Organisation:
    """Check an approval a steward sends (no runs used yet); return its organisation or raise ApprovalError."""
    o = organisation(s, str(approval.body.get("organisation")))
    verify(approval, key=o.signing_key, scope=scope_of(r, collab), runs_used=0)
    return o


def runs_used(s: Session, aid: str) -> int:
    """Return how many jobs that did not fail ran under the approval with this id."""
    n = 0
    for j in s.scalars(select(db.Job)):
        if j.state != JobState.FAILED and any(approval_id(a["signature"]) == aid for a in j.approvals):
            n += 1
    return n


def template_approvals(s: Session, r: db.Request, org: str) -> list[db.Approval]:
    """Return the organisation's template approvals whose template the request's plan matches, newest first."""
    o = organisation(s, org)
    out = []
    for a in s.scalars(select(db.Approval).where(db.Approval.organisation_id == o.id).order_by(db.Approval.id.desc())):
        if a.body.get("mode") != "template":
            continue
        try:
            if template_hash(r.plan, list(a.body.get("vary", []))) == a.body.get("template_hash"):
                out.append(a)
        except ApprovalError:
            continue
    return out


def choose(s: Session, r: db.Request, collab: db.Collaboration) -> list[SignedApproval]:
    """Return, per organisation of the request, the newest approval that covers a run now.

    Raise ApprovalError naming every problem when some organisation has none.
    """
    scope = scope_of(r, collab)
    chosen: list[SignedApproval] = []
    problems: list[str] = []
    for org in r.organisations:
        o = organisation(s, org)
        cands = list(
            s.scalars(
                select(db.Approval)
                .where(db.Approval.request_id == r.id, db.Approval.organisation_id == o.id)
                .order_by(db.Approval.id.desc())
            )
        )
        cands += template_approvals(s, r, org)
        picked = None
        for a in cands:
            appr = SignedApproval(body=a.body, signature=a.signature)
            try:
                verify(appr, key=o.signing_key, scope=scope, runs_used=runs_used(s, approval_id(a.signature)))
            except ApprovalError as e:
                problems.append(str(e))
                continue
            picked = appr
            break
        if picked is None:
            problems.append(f"{org} has not approved this plan")
        else:
            chosen.append(picked)
    if len(chosen) != len(r.organisations):
        raise ApprovalError("cannot run: " + "; ".join(dict.fromkeys(problems)))
    return chosen
