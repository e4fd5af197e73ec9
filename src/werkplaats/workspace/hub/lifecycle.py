"""A job's life at the hub: what nodes are given, how it starts, how it fails, silent engines.

States (`werkplaats.workspace.messages.JobState`): a job is created ``approved``, becomes
``running`` when the first engine reports it runs, and ends ``succeeded`` (the hub
released the result, `release`) or ``failed`` (a node failed it, or an engine fell silent
for longer than the hub's heartbeat timeout).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import db
from ..messages import EngineAddress, JobPayload, JobState, SignedApproval
from .core import Hub
from .deps import request_by_id
from .views import catalog_docs


def payload(s: Session, j: db.Job) -> JobPayload:
    """Return the job as datastations and engines are given it."""
    r = request_by_id(s, j.request_id)
    collab = s.get(db.Collaboration, r.collaboration_id)
    engines = [
        EngineAddress(party=int(e.party or 0), name=e.name, url=e.url, mpc=e.mpc_address)
        for e in s.scalars(select(db.Node).where(db.Node.kind == "engine").order_by(db.Node.party))
    ]
    return JobPayload(
        job=j.id,
        request=r.id,
        collaboration=collab.name if collab else "",
        purpose=r.purpose,
        plan=r.plan,
        plan_hash=r.plan_hash,
        datasets=r.datasets,
        columns=r.columns,
        schemas=catalog_docs(s, r.datasets),
        approvals=[SignedApproval.model_validate(a) for a in j.approvals],
        organisation_keys={o.name: o.signing_key for o in s.scalars(select(db.Organisation))},
        engines=engines,
        state=JobState(j.state),
    )


def start(hub: Hub, s: Session, j: db.Job, actor: str) -> None:
    """Mark an approved job running (the first engine runs its party) and log it."""
    j.state, j.started = JobState.RUNNING.value, db.utcnow()
    hub.log(s, actor=actor, action="job-start", subject=f"job/{j.id}", details={"request": j.request_id, "job": j.id})


def fail(hub: Hub, s: Session, j: db.Job, reason: str, actor: str) -> None:
    """Fail a job that has not ended, drop its output shares, and log why."""
    if JobState(j.state).ended:
        return
    j.state, j.reason, j.finished = JobState.FAILED.value, reason, db.utcnow()
    hub.drop_shares(j.id)
    hub.log(
        s,
        actor=actor,
        action="job-end",
        subject=f"job/{j.id}",
        details={"request": j.request_id, "job": j.id, "state": JobState.FAILED.value, "detail": reason},
    )


def fail_silent_engines(hub: Hub) -> None:
    """Fail every running job while some engine has not been heard of within the heartbeat timeout."""
    with hub.sessions() as s:
        limit = db.utcnow() - dt.timedelta(seconds=hub.heartbeat_timeout_s)
        for j in s.scalars(select(db.Job).where(db.Job.state == JobState.RUNNING.value)):
            for e in s.scalars(select(db.Node).where(db.Node.kind == "engine")):
                seen = e.last_seen
                if seen is not None and seen.tzinfo is None:
                    seen = seen.replace(tzinfo=dt.UTC)  # NB: SQLite drops the time zone
                if seen is None or seen < limit:
                    fail(hub, s, j, f"{e.name} (party {e.party}) stopped responding", "hub")
                    break
        s.commit()
