"""Jobs: their state for users, and the node endpoints datastations and engines work through."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from ....mpc import wire
from ... import db, pki
from ...http import raw_body
from ...messages import (
    ContributionRecord,
    JobPayload,
    JobState,
    JobStatus,
    MessageError,
    NothingSent,
    NothingSentRecord,
    PartState,
    ResultShare,
    unpack,
)
from ...signing import approval_id, canonical
from .. import lifecycle
from ..core import Caller, Hub
from ..deps import (
    CallerDep,
    HubDep,
    JobDep,
    SessionDep,
    collaboration_of,
    organisation,
    request_by_id,
    require,
    require_access,
    require_part,
    unusable,
)
from ..release import release
from ..schemas import Ack, ContributionIn, ContributionReceipt, JobPublic, JobRef, ProgressIn

PROGRESS_LOCK = threading.Lock()  # NB: one hub process writes job progress
router = APIRouter()
AnyNode = Annotated[Caller, require("datastation", "engine")]
TAKEN = (JobState.APPROVED.value, JobState.RUNNING.value)  # NB: the states in which nodes take a job
REPORTS = {  # NB: the part states each kind of node reports
    "datastation": (PartState.VERIFIED, PartState.SENT, PartState.FAILED),
    "engine": (PartState.VERIFYING, PartState.RUNNING, PartState.COMPILED, PartState.DONE, PartState.FAILED),
}


@router.get("/jobs/{jid}", response_model=JobPublic)
def get_job(c: CallerDep, j: JobDep, s: SessionDep) -> JobPublic:
    """Return a job: its state (and why it failed), each node's progress, and when it ran."""
    r = request_by_id(s, j.request_id)
    require_access(s, c, r, f"job {j.id}")
    return JobPublic(
        id=j.id,
        request=r.id,
        state=JobState(j.state),
        reason=j.reason,
        progress=j.progress,
        created=j.created.isoformat(),
        started=j.started.isoformat() if j.started else None,
        finished=j.finished.isoformat() if j.finished else None,
    )


@router.get("/node/jobs", response_model=list[JobPayload])
def node_jobs(c: AnyNode, s: SessionDep, hub: HubDep) -> list[JobPayload]:
    """Return the jobs this node has yet to take: for a datastation, only those that read its organisation's data.

    None while the engines are not all online (`lifecycle.engines_offline`): such jobs wait, approved.
    """
    if lifecycle.engines_offline(hub, s):
        return []
    out = []
    for j in s.scalars(select(db.Job).where(db.Job.state.in_(TAKEN)).order_by(db.Job.id)):
        if c.name in j.progress:
            continue  # NB: this node has taken the job already
        r = request_by_id(s, j.request_id)
        if c.role == "datastation" and c.organisation not in r.organisations:
            continue
        if _gone(hub, s, j, r):
            continue  # NB: an organisation whose data it reads has left: the job failed, nobody is handed it
        job = lifecycle.offer(s, j)
        rules = hub.rules_settings(job.collaboration)
        out.append(job.model_copy(update={"audit_head": hub.audit_head(s), "rules": rules}))
    s.commit()
    return out


@router.get("/node/jobs/{jid}", response_model=JobStatus)
def node_job(c: AnyNode, j: JobDep, s: SessionDep, hub: HubDep) -> JobStatus:
    """Return a job's state and the state of each node's part (engines poll it while they run)."""
    require_part(s, c, request_by_id(s, j.request_id), f"job {j.id}")
    progress = {k: v.get("state") for k, v in j.progress.items()}
    head = hub.audit_head(s)  # NB: engines keep it in their own ledger (anchoring the chain's end)
    return JobStatus(job=j.id, state=JobState(j.state), reason=j.reason, progress=progress, audit_head=head)


@router.post("/node/jobs/{jid}/progress", response_model=JobRef)
def progress(body: ProgressIn, c: AnyNode, j: JobDep, s: SessionDep, hub: HubDep) -> JobRef:
    """Record a node's progress; a failure fails the job, an engine's start starts it.

    Only a node with a part in the job reports, and only its own kind's states; a job that has
    ended does not start again (409).
    """
    require_part(s, c, request_by_id(s, j.request_id), f"job {j.id}")
    if body.state not in REPORTS[c.role]:
        raise HTTPException(422, f"a {c.role} does not report {body.state.value!r}")
    # NB: read-modify-write of the job's progress, serialised and on a fresh read (a row lock on
    # PostgreSQL): two nodes reporting at once (engines whose cached programs compile together) lost
    # one report, and the engines then waited for each other's `compiled` forever.
    with PROGRESS_LOCK:
        s.refresh(j, with_for_update=True)
        if body.state == PartState.RUNNING and JobState(j.state).ended:
            raise HTTPException(409, f"job {j.id} is {j.state}; it cannot become running")
        if body.state == PartState.RUNNING and _gone(hub, s, j, request_by_id(s, j.request_id)):
            raise HTTPException(409, f"job {j.id} failed: {j.reason}")
        j.progress = {
            **j.progress,
            c.name: {**body.detail, "state": body.state.value, "reason": body.reason, "at": db.utcnow().isoformat()},
        }
        if body.state == PartState.FAILED:
            lifecycle.fail(hub, s, j, f"{c.name}: {body.reason}", c.name)
        elif body.state == PartState.RUNNING and j.state == JobState.APPROVED:
            lifecycle.start(hub, s, j, c.name)
        s.commit()
    return JobRef(job=j.id, state=JobState(j.state))


def _signed_by_caller(
    s: Session, c: Caller, j: db.Job, rec: ContributionRecord | NothingSentRecord, signature: str, what: str
) -> tuple[db.Request, db.Organisation]:
    """Check that a datastation with a part in the job speaks for its own organisation, signed with its key."""
    r = request_by_id(s, j.request_id)
    require_part(s, c, r, f"job {j.id}")
    o = organisation(s, str(c.organisation))
    if rec.organisation != o.name:
        raise HTTPException(403, f"{c.name} speaks for {o.name}, not for {rec.organisation}")
    if not pki.verify(o.signing_key, canonical(rec.to_dict()), signature):
        raise HTTPException(422, f"the {what} is not signed by {o.name}'s key")
    return r, o


@router.post("/node/jobs/{jid}/contribution", status_code=201, response_model=ContributionReceipt)
def contribution(body: ContributionIn, c: Annotated[Caller, require("datastation")], j: JobDep, s: SessionDep,
                 hub: HubDep) -> ContributionReceipt:  # fmt: skip
    """Record and log a datastation's contribution, which it sends before any share (409: the job ended, send nothing).

    The record must be its own organisation's, signed with that organisation's key, for this
    job, request, plan and the organisation's approval of the job, and name only datasets of
    that organisation that the job reads.
    """
    rec = body.record
    r, o = _signed_by_caller(s, c, j, rec, body.signature, "contribution record")
    record = rec.to_dict()
    problems = _record_problems(rec.job, rec.request, rec.approval, j, r, o.name)
    foreign = sorted({d for d in [*rec.datasets, *rec.columns] if not d.startswith(o.name + "/")})
    if foreign:
        problems.append(f"it names datasets {foreign} of other organisations")
    unread = sorted(set(rec.datasets) - set(r.datasets))
    if unread or not rec.datasets:
        problems.append(f"it names datasets {unread} the job does not read" if unread else "it names no dataset")
    if rec.plan_hash != r.plan_hash:
        problems.append("it is for another plan")
    if problems:
        raise HTTPException(422, "contribution refused: " + "; ".join(problems))
    if _gone(hub, s, j, r):
        raise HTTPException(409, f"job {j.id} failed: {j.reason}; send nothing")
    if JobState(j.state).ended:
        raise HTTPException(409, f"job {j.id} is {j.state}: send nothing")
    q = select(db.JobContribution).where(db.JobContribution.job_id == j.id, db.JobContribution.organisation == o.name)
    if s.scalars(q).first() is not None:
        raise HTTPException(409, f"{o.name} recorded its contribution to job {j.id} already")
    s.add(db.JobContribution(job_id=j.id, organisation=o.name, record=record, signature=body.signature))
    hub.log(
        s,
        actor=c.name,
        action="contribution",
        subject=f"job/{j.id}",
        details={
            "request": r.id,
            "job": j.id,
            "datasets": record["datasets"],
            "columns": record["columns"],
            "signed": {"organisation": o.name, "record": record, "signature": body.signature},
        },
    )
    s.commit()
    return ContributionReceipt(ok=True, audit_head=hub.audit_head(s))


@router.post("/node/jobs/{jid}/result-share", response_model=JobRef)
def result_share(c: Annotated[Caller, require("engine")], data: Annotated[bytes, Depends(raw_body)], j: JobDep,
                 s: SessionDep, hub: HubDep) -> JobRef:  # fmt: skip
    """Take an engine's share of a job's output; with all three, release the result.

    NB: a plain function (run in a thread): reconstruction and the database never block the event loop.
    """
    try:
        msg, blobs = unpack(ResultShare, data)
    except MessageError as e:
        raise HTTPException(400, str(e)) from None
    require_part(s, c, request_by_id(s, j.request_id), f"job {j.id}")
    if j.state != JobState.RUNNING:
        raise HTTPException(409, f"job {j.id} is {j.state}")
    party = s.scalars(select(db.Node).where(db.Node.name == c.name)).one().party
    shares = hub.collect_share(j.id, int(party or 0), wire.unpack_shares(msg.share_blobs, blobs))
    if shares is not None:
        release(hub, s, j, shares, c.name)
    s.commit()
    return JobRef(job=j.id, state=JobState(j.state))


@router.post("/node/jobs/{jid}/nothing-sent", response_model=Ack)
def nothing_sent(body: NothingSent, c: Annotated[Caller, require("datastation")], j: JobDep, s: SessionDep,
                 hub: HubDep) -> Ack:  # fmt: skip
    """Record a datastation's signed statement that it sent no share of the job, withdrawing its contribution if any.

    Only for a job that did not run (approved or failed); a failed job gives its run back
    once every recorded contribution is withdrawn (`approvals.runs_used`).
    """
    rec = body.record
    r, o = _signed_by_caller(s, c, j, rec, body.signature, "nothing-sent record")
    problems = _record_problems(rec.job, rec.request, rec.approval, j, r, o.name)
    if problems:
        raise HTTPException(422, "nothing-sent record refused: " + "; ".join(problems))
    if j.state not in (JobState.APPROVED, JobState.FAILED) or j.started is not None:
        raise HTTPException(409, f"job {j.id} is {j.state} and started: it ran with the shares it was sent")
    q = select(db.JobContribution).where(db.JobContribution.job_id == j.id, db.JobContribution.organisation == o.name)
    contrib = s.scalars(q).first()
    if contrib is not None:  # NB: without a recorded contribution nothing is withdrawn; it is logged all the same
        contrib.withdrawal = {"record": rec.to_dict(), "signature": body.signature}
    lifecycle.fail(hub, s, j, f"{c.name}: sent nothing ({rec.reason})", c.name)
    hub.log(
        s,
        actor=c.name,
        action="nothing-sent",
        subject=f"job/{j.id}",
        details={"request": r.id, "job": j.id, "organisation": o.name, "detail": rec.reason,
                 "signed": {"organisation": o.name, "record": rec.to_dict(), "signature": body.signature}},
    )  # fmt: skip
    s.commit()
    return Ack(ok=True)


@router.post("/jobs/{jid}/cancel", response_model=JobRef)
def cancel(c: CallerDep, j: JobDep, s: SessionDep, hub: HubDep) -> JobRef:
    """Cancel a job that has not ended (the scientist who made the request, or an admin); nodes drop it.

    The job fails with the reason; its run comes back only as for any failed job (`approvals.runs_used`).
    """
    r = request_by_id(s, j.request_id)
    if not (c.kind == "user" and (c.role == "admin" or (c.role == "scientist" and c.id == r.requester_id))):
        raise HTTPException(403, f"only the scientist who made request {r.id} or an admin cancels its jobs")
    if JobState(j.state).ended:
        raise HTTPException(409, f"job {j.id} is {j.state} already")
    lifecycle.fail(hub, s, j, f"cancelled by {c.name}", c.name, action="job-cancel")
    s.commit()
    return JobRef(job=j.id, state=JobState(j.state))


def _gone(hub: Hub, s: Session, j: db.Job, r: db.Request) -> bool:
    """Fail a live job reading data of an organisation that left the workspace or the collaboration; say if it did."""
    why = unusable(s, collaboration_of(s, r), r.organisations)
    if why and not JobState(j.state).ended:
        lifecycle.fail(hub, s, j, why, "hub")
        s.commit()
    return bool(why)


def _record_problems(job: int, request: int, approval: str, j: db.Job, r: db.Request, org: str) -> list[str]:
    """What is wrong with a signed record's job, request and approval for this job and organisation."""
    problems = []
    if job != j.id or request != r.id:
        problems.append(f"it is for job {job} of request {request}, not job {j.id} of request {r.id}")
    mine = [approval_id(a["signature"]) for a in j.approvals if a["body"].get("organisation") == org]
    if approval not in mine:
        problems.append(f"it names an approval the job does not run under for {org}")
    return problems
