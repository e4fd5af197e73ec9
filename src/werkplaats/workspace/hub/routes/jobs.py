"""Jobs: their state for users, and the node endpoints datastations and engines work through."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select

from ....mpc import wire
from ... import db, pki
from ...http import raw_body
from ...messages import JobPayload, JobState, JobStatus, MessageError, PartState, ResultShare, unpack
from ...signing import canonical
from .. import lifecycle
from ..core import Caller
from ..deps import (
    CallerDep,
    HubDep,
    JobDep,
    SessionDep,
    collaboration_of,
    organisation,
    request_by_id,
    require,
    require_member,
)
from ..release import release
from ..schemas import Ack, ContributionIn, JobPublic, JobRef, ProgressIn

router = APIRouter()
AnyNode = Annotated[Caller, require("datastation", "engine")]
TAKEN = (JobState.APPROVED.value, JobState.RUNNING.value)  # NB: the states in which nodes take a job


@router.get("/jobs/{jid}", response_model=JobPublic)
def get_job(c: CallerDep, j: JobDep, s: SessionDep) -> JobPublic:
    """Return a job: its state (and why it failed), each node's progress, and when it ran."""
    r = request_by_id(s, j.request_id)
    if c.kind == "user":
        require_member(s, c, collaboration_of(s, r))
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
def node_jobs(c: AnyNode, s: SessionDep) -> list[JobPayload]:
    """Return the jobs this node has yet to take: for a datastation, only those that read its organisation's data."""
    out = []
    for j in s.scalars(select(db.Job).where(db.Job.state.in_(TAKEN)).order_by(db.Job.id)):
        if c.name in j.progress:
            continue  # NB: this node has taken the job already
        r = request_by_id(s, j.request_id)
        if c.role == "datastation" and c.organisation not in r.organisations:
            continue
        out.append(lifecycle.payload(s, j))
    return out


@router.get("/node/jobs/{jid}", response_model=JobStatus)
def node_job(c: AnyNode, j: JobDep) -> JobStatus:
    """Return a job's state and the state of each node's part (engines poll it while they run)."""
    progress = {k: v.get("state") for k, v in j.progress.items()}
    return JobStatus(job=j.id, state=JobState(j.state), reason=j.reason, progress=progress)


@router.post("/node/jobs/{jid}/progress", response_model=JobRef)
def progress(body: ProgressIn, c: AnyNode, j: JobDep, s: SessionDep, hub: HubDep) -> JobRef:
    """Record a node's progress; a failure fails the job, an engine's start starts it."""
    j.progress = {
        **j.progress,
        c.name: {"state": body.state.value, "reason": body.reason, "at": db.utcnow().isoformat(), **body.detail},
    }
    if body.state == PartState.FAILED:
        lifecycle.fail(hub, s, j, f"{c.name}: {body.reason}", c.name)
    elif body.state == PartState.RUNNING and j.state == JobState.APPROVED:
        lifecycle.start(hub, s, j, c.name)
    s.commit()
    return JobRef(job=j.id, state=JobState(j.state))


@router.post("/node/jobs/{jid}/contribution", status_code=201, response_model=Ack)
def contribution(body: ContributionIn, c: Annotated[Caller, require("datastation")], j: JobDep, s: SessionDep,
                 hub: HubDep) -> Ack:  # fmt: skip
    """Log a datastation's contribution record, after checking its organisation's signature."""
    o = organisation(s, str(c.organisation))
    record = body.record.to_dict()
    if not pki.verify(o.signing_key, canonical(record), body.signature):
        raise HTTPException(422, "the contribution record is not signed by the organisation's key")
    r = request_by_id(s, j.request_id)
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
    return Ack(ok=True)


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
    if j.state != JobState.RUNNING:
        raise HTTPException(409, f"job {j.id} is {j.state}")
    party = s.scalars(select(db.Node).where(db.Node.name == c.name)).one().party
    shares = hub.collect_share(j.id, int(party or 0), wire.unpack_shares(msg.share_blobs, blobs))
    if shares is not None:
        release(hub, s, j, shares, c.name)
    s.commit()
    return JobRef(job=j.id, state=JobState(j.state))
