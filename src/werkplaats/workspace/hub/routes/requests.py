"""Requests: a scientist submits a plan, stewards approve or reject it, a scientist runs it, the result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from ....exceptions import PlanError, SchemaError
from ....plan import nodes as n
from ....plan.serde import plan_from_dict
from ... import db
from ...jobs import catalog_of, check_plan, describe, job_rules, required_k
from ...messages import JobState, SignedApproval
from ...signing import ApprovalError, approval_id
from .. import approvals, lifecycle
from ..core import Caller
from ..deps import (
    CallerDep,
    HubDep,
    RequestDep,
    SessionDep,
    collaboration,
    collaboration_of,
    organisation,
    require,
    require_access,
    require_member,
    sees,
    takes_part,
    unusable,
)
from ..schemas import ApprovalIn, JobRef, RejectionIn, RequestIn, RequestPublic, RequestSummary, ResultPublic
from ..views import catalog_docs, request_public, request_summaries

router = APIRouter()
Scientist = Annotated[Caller, require("scientist")]
Steward = Annotated[Caller, require("steward")]


@router.post("/requests", status_code=201, response_model=RequestPublic)
def submit(body: RequestIn, c: Scientist, s: SessionDep, hub: HubDep) -> RequestPublic:
    """Check a plan against the catalog and the collaboration's datasets; record it as a request."""
    collab = collaboration(s, body.collaboration)
    require_member(s, c, collab)
    allowed = set(
        s.scalars(select(db.CollaborationDataset.dataset).where(db.CollaborationDataset.collaboration_id == collab.id))
    )
    try:
        catalog = catalog_of(catalog_docs(s))
        used = {src.dataset for src in n.sources(plan_from_dict(body.plan).root)}
        gone = unusable(s, collab, sorted({d.split("/")[0] for d in used}))
        if gone:
            raise HTTPException(409, gone)
        outside = sorted(used - allowed)
        if outside:
            raise HTTPException(422, f"datasets {outside} are not part of collaboration {collab.name!r}")
        entries = [s.scalars(select(db.Dataset).where(db.Dataset.name == d)).one() for d in sorted(used)]
        k = max([int((e.rules or {}).get("min_group_size", 1)) for e in entries] + [required_k(catalog, sorted(used))])
        rules = job_rules(hub.rules_settings(collab.name), catalog, sorted(used))
        counts = {e.name: int(e.row_count) for e in entries if e.row_count is not None}  # NB: public, rounded
        plan, a = check_plan(body.plan, catalog, k, rules, counts)
    except (PlanError, SchemaError) as e:
        raise HTTPException(422, str(e)) from None
    # NB: the explain text names the rules applied to each output, as the engines will apply them
    # (the analysis's: e.g. counts of rows without a person key are rounded, not perturbed)
    info = describe(plan, a.rules, catalog)
    r = db.Request(
        collaboration_id=collab.id,
        requester_id=c.id,
        purpose=body.purpose,
        plan=info["plan"],
        plan_hash=info["plan_hash"],
        explain=info["explain"],
        organisations=sorted({d.split("/")[0] for d in info["datasets"]}),
        datasets=info["datasets"],
        columns=info["columns"],
    )
    s.add(r)
    s.flush()
    hub.log(
        s,
        actor=c.name,
        action="request",
        subject=f"request/{r.id}",
        details={
            "request": r.id,
            "collaboration": collab.name,
            "purpose": body.purpose,
            "plan_hash": r.plan_hash,
            "datasets": r.datasets,
            "columns": r.columns,
        },
    )
    s.commit()
    return request_public(s, r)


@router.get("/requests", response_model=list[RequestSummary])
def list_requests(c: CallerDep, s: SessionDep) -> list[RequestSummary]:
    """List the requests of the collaborations the caller may see (without their plans); a node: those it is part of."""
    seen: dict[int, bool] = {}  # NB: membership once per collaboration, the rest in a few queries (no N+1)

    def visible(r: db.Request) -> bool:
        if c.kind == "node":
            return takes_part(s, c, r)
        if r.collaboration_id not in seen:
            seen[r.collaboration_id] = sees(s, c, collaboration_of(s, r))
        return seen[r.collaboration_id]

    return request_summaries(s, [r for r in s.scalars(select(db.Request).order_by(db.Request.id)) if visible(r)])


@router.get("/requests/{rid}", response_model=RequestPublic)
def get_request(c: CallerDep, r: RequestDep, s: SessionDep) -> RequestPublic:
    """Return a request with its plan, status, approvals, rejections and jobs (a node: only one it has a part in)."""
    require_access(s, c, r, f"request {r.id}")
    return request_public(s, r)


@router.post("/requests/{rid}/approvals", status_code=201, response_model=RequestPublic)
def approve(body: ApprovalIn, c: Steward, r: RequestDep, s: SessionDep, hub: HubDep) -> RequestPublic:
    """Record a steward's signed approval for their own organisation, after checking it."""
    collab = collaboration_of(s, r)
    org = body.body.get("organisation")
    if org != c.organisation:
        raise HTTPException(403, f"a steward of {c.organisation} cannot approve for {org}")
    if org not in r.organisations:
        raise HTTPException(422, f"request {r.id} reads no data of {org}")
    try:
        o = approvals.check_new(
            s, r, collab, SignedApproval(body=body.body, signature=body.signature), hub.approval_limits
        )
    except ApprovalError as e:
        raise HTTPException(422, str(e)) from None
    s.add(
        db.Approval(request_id=r.id, organisation_id=o.id, body=body.body, signature=body.signature, signed_by=c.name)
    )
    hub.log(
        s,
        actor=c.name,
        action="approval",
        subject=f"request/{r.id}",
        details={
            "request": r.id,
            "organisation": org,
            "collaboration": collab.name,
            "purpose": r.purpose,
            "plan_hash": r.plan_hash,
            "mode": body.body.get("mode"),
            "expires": body.body.get("expires"),
            "max_runs": body.body.get("max_runs"),
            "approval": approval_id(body.signature),
            "approved_by": [c.name],
        },
    )
    s.commit()
    return request_public(s, r)


@router.post("/requests/{rid}/rejections", status_code=201, response_model=RequestPublic)
def reject(body: RejectionIn, c: Steward, r: RequestDep, s: SessionDep, hub: HubDep) -> RequestPublic:
    """Record a steward's rejection; a rejected request cannot run."""
    if c.organisation not in r.organisations:
        raise HTTPException(422, f"request {r.id} reads no data of {c.organisation}")
    o = organisation(s, str(c.organisation))
    s.add(db.Rejection(request_id=r.id, organisation_id=o.id, reason=body.reason, by=c.name))
    hub.log(
        s,
        actor=c.name,
        action="rejection",
        subject=f"request/{r.id}",
        details={"request": r.id, "organisation": o.name, "detail": body.reason},
    )
    s.commit()
    return request_public(s, r)


@router.post("/requests/{rid}/run", status_code=201, response_model=JobRef)
def run(c: Scientist, r: RequestDep, s: SessionDep, hub: HubDep) -> JobRef:
    """Start a job under, per organisation, an approval that covers it (409 saying why when none does)."""
    collab = collaboration_of(s, r)
    require_member(s, c, collab)
    if s.scalars(select(db.Rejection).where(db.Rejection.request_id == r.id)).first():
        raise HTTPException(409, f"request {r.id} was rejected")
    gone = unusable(s, collab, r.organisations)
    if gone:
        raise HTTPException(409, gone)
    try:
        chosen = approvals.choose(s, r, collab)
    except ApprovalError as e:
        raise HTTPException(409, str(e)) from None
    job = db.Job(
        request_id=r.id, state=JobState.APPROVED.value, approvals=[a.model_dump() for a in chosen], progress={}
    )
    s.add(job)
    s.flush()
    cannot = lifecycle.plan_buckets(hub, s, job, r, collab.name)  # NB: issue 13: buckets within the memory budget
    hub.log(
        s,
        actor=c.name,
        action="job-created",
        subject=f"job/{job.id}",
        details={
            "request": r.id,
            "job": job.id,
            "collaboration": collab.name,
            "purpose": r.purpose,
            "datasets": r.datasets,
            "columns": r.columns,
            "approved_by": [a.body["organisation"] + ":" + a.body.get("steward", "") for a in chosen],
            "buckets": job.buckets,
        },
    )
    if cannot:
        lifecycle.fail(hub, s, job, cannot, "hub")
    s.commit()
    return JobRef(job=job.id, state=JobState(job.state))


@router.get("/requests/{rid}/result", response_model=ResultPublic)
def result(
    c: Annotated[Caller, require("scientist", "requester", "admin")], r: RequestDep, s: SessionDep
) -> ResultPublic:
    """Return the released result of the request's latest successful job (404 until there is one)."""
    require_member(s, c, collaboration_of(s, r))
    for j in s.scalars(select(db.Job).where(db.Job.request_id == r.id).order_by(db.Job.id.desc())):
        if j.state == JobState.SUCCEEDED:
            res = s.scalars(select(db.Result).where(db.Result.job_id == j.id)).one()
            return ResultPublic(request=r.id, job=j.id, **res.data)
    raise HTTPException(404, f"request {r.id} has no released result yet")
