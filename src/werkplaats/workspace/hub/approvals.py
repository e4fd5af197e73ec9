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
from ..signing import ApprovalError, ApprovalLimits, approval_id, check_limits, template_hash
from .deps import organisation


def scope_of(r: db.Request, collab: db.Collaboration) -> Scope:
    """Return what an approval of this request must cover."""
    return Scope(collab.name, r.purpose, r.plan, r.plan_hash)


def check_new(
    s: Session, r: db.Request, collab: db.Collaboration, approval: SignedApproval, limits: ApprovalLimits
) -> db.Organisation:
    """Check an approval a steward sends (no runs used yet, within the hub's limits); return its organisation."""
    o = organisation(s, str(approval.body.get("organisation")))
    verify(approval, key=o.signing_key, scope=scope_of(r, collab), runs_used=0)
    check_limits(approval.body, limits)
    return o


def runs_used(s: Session, aid: str) -> int:
    """Return how many jobs use a run of the approval with this id.

    Every job under it counts (a job not yet handed out holds its run until it runs or is
    cancelled), except a failed job that every datastation sent nothing for: no organisation
    recorded a contribution, or each one that did withdrew it with its signed `NothingSent`.
    NB: a datastation records its contribution before it sends any share and counts it in its
    own log, so a hub that drops records cannot win runs back from the datastations.
    """
    n = 0
    for j in s.scalars(select(db.Job)):
        if not any(approval_id(a["signature"]) == aid for a in j.approvals):
            continue
        if j.state != JobState.FAILED or not gives_back(s, j):
            n += 1
    return n


def gives_back(s: Session, j: db.Job) -> bool:
    """Whether a failed job gives its run back: every contribution recorded for it was withdrawn."""
    q = select(db.JobContribution).where(db.JobContribution.job_id == j.id)
    return all(c.withdrawal is not None for c in s.scalars(q))


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
