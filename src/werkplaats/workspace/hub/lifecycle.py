"""A job's life at the hub: what nodes are given, how it starts, how it fails, silent engines.

States (`werkplaats.workspace.messages.JobState`) move only as `TRANSITIONS` allows: a job
is created ``approved``, becomes ``running`` when the first engine reports it runs, and
ends ``succeeded`` (the hub released the result, `release`) or ``failed``; nothing leaves
an ended state. A job fails when a node fails it, when it is cancelled, when an engine
falls silent for longer than the hub's heartbeat timeout while it is under way, when a
datastation has not sent its shares within the share timeout of the job being handed out,
and, on start, when the hub stopped while it was under way (`fail_interrupted`).

A job is handed out (`offerable`) only while all three engines are online: each of
parties 0, 1 and 2 has an engine and every engine was heard from (any call, its
heartbeat) within the heartbeat timeout. Until then it stays ``approved`` and no node
sees it, so no data moves and no node counts a run.

At creation the hub decides whether the job runs in buckets (`plan_buckets`, issue 13): from
public metadata only (the plan, the catalog's rounded row counts, hub.toml's ``[jobs]``
memory budget and share size limit), fixed for the job's life, so that every owner splits with
the same count and the same version of the collaboration's bucket key. The job carries the
catalog's rounded row counts, so that each engine checks its own budget and share size limit
when it takes the job, before any datastation sends (`werkplaats.workspace.memory.check_take`).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...exceptions import WerkplaatsError
from .. import db
from ..config import job_setting, job_settings
from ..memory import MB, share_count, upper_rows
from ..messages import BucketPlan, EngineAddress, JobPayload, JobState, PartState, SignedApproval
from .core import Hub
from .deps import request_by_id
from .views import catalog_docs

TRANSITIONS: dict[JobState, tuple[JobState, ...]] = {
    JobState.APPROVED: (JobState.RUNNING, JobState.FAILED),
    JobState.RUNNING: (JobState.SUCCEEDED, JobState.FAILED),
    JobState.SUCCEEDED: (),
    JobState.FAILED: (),
}
PARTIES = (0, 1, 2)
log = logging.getLogger("werkplaats.hub")


class TransitionError(ValueError):
    """A job cannot move to that state from the one it is in."""


def move(j: db.Job, to: JobState) -> None:
    """Move a job to state to, or raise TransitionError naming both states."""
    now = JobState(j.state)
    if to not in TRANSITIONS[now]:
        msg = f"job {j.id} is {now.value}; it cannot become {to.value}"
        raise TransitionError(msg)
    j.state = to.value
    if to.ended:
        j.finished = db.utcnow()


def payload(s: Session, j: db.Job) -> JobPayload:
    """Return the job as datastations and engines are given it."""
    from .release import job_register  # NB: release builds on this module

    r = request_by_id(s, j.request_id)
    collab = s.get(db.Collaboration, r.collaboration_id)
    register, columns = job_register(s, r)
    datasets = list(s.scalars(select(db.Dataset).where(db.Dataset.name.in_(r.datasets))))
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
        columns=columns,  # NB: with the columns rule 9's registered tables read
        schemas=catalog_docs(s, r.datasets),
        approvals=[SignedApproval.model_validate(a) for a in j.approvals],
        organisation_keys={o.name: o.signing_key for o in s.scalars(select(db.Organisation))},
        engines=engines,
        state=JobState(j.state),
        registered=register,
        buckets=BucketPlan.model_validate(j.buckets) if j.buckets else None,
        row_counts={d.name: d.row_count for d in datasets if d.row_count},  # NB: rounded, public: engines' early check
    )


def plan_buckets(hub: Hub, s: Session, j: db.Job, r: db.Request, collaboration: str) -> str:
    """Decide whether a new job runs in buckets and store its BucketPlan; return why it cannot run ("" if it can).

    The count is the larger of `werkplaats.mpc.buckets.bucket_count` over the catalog's rounded row
    counts (as upper bounds) and the collaboration's ``memory_budget_gb``, and
    `werkplaats.workspace.memory.share_count`: the fewest buckets whose share messages (one dataset's
    share for one engine, of one bucket) stay within ``max_share_mb``, both powers of two; hub.toml's
    ``buckets`` can ask for more (never fewer). A job that needs buckets must be stageable
    (`staged_reason`) and the collaboration must have a bucket key, whose newest version the job then names.
    """
    from ...compile.staged import staged_reason
    from ...mpc.buckets import bucket_count
    from ..jobs import catalog_of, job_analysis
    from .bucketkeys import latest_bucket_key_version
    from .release import job_register  # NB: release builds on this module

    budget, forced = job_settings(hub.jobs, collaboration)
    limit_mb = float(job_setting(hub.jobs, collaboration, "max_share_mb"))
    datasets = {d.name: d for d in s.scalars(select(db.Dataset).where(db.Dataset.name.in_(r.datasets)))}
    try:
        catalog = catalog_of({name: d.table_schema for name, d in datasets.items()})
        register, _ = job_register(s, r)  # NB: as the nodes will: rule 9's registered tables add their columns
        a = job_analysis(r.plan, catalog, hub.rules_settings(collaboration), register=register)
        rows = {name: upper_rows(d.row_count) for name, d in datasets.items()}
        by_memory = bucket_count(a, rows, budget)
        by_share = share_count(a, rows, int(limit_mb * MB))
        count = max(by_memory, by_share)
        reason = staged_reason(a) if max(count, forced) > 1 else None
    except WerkplaatsError as e:
        return f"the hub cannot plan the job's memory: {e}"
    except Exception as e:  # NB: a bug in the memory model fails this job with its name, not the hub's request
        log.exception("job %s: planning its memory failed", j.id)
        return f"the hub cannot plan the job's memory ({type(e).__name__})"
    if count == 1 and (forced <= 1 or reason):
        return ""  # NB: fits the budget unbucketed (a forced count is only a preference for what can be staged)
    why = (f"the memory budget of {budget:g} GB per party" if by_memory >= by_share
           else f"the share size limit of {limit_mb:g} MB per message (max_share_mb)")  # fmt: skip
    if reason:
        return f"the job needs {count} buckets to stay within {why}, and it cannot run in buckets: {reason}"
    count = max(count, forced)
    version = latest_bucket_key_version(s, collaboration)
    if version is None:
        return (f"the job needs {count} buckets ({why}) and collaboration {collaboration} has no bucket key yet: "
                f"a steward of a member organisation creates one with "
                f"`werkplaats datastation bucket-key create --collaboration {collaboration}`")  # fmt: skip
    j.buckets = BucketPlan(count=count, key_version=version).model_dump()
    return ""


def start(hub: Hub, s: Session, j: db.Job, actor: str) -> None:
    """Mark an approved job running (the first engine runs its party) and log it."""
    move(j, JobState.RUNNING)
    j.started = db.utcnow()
    hub.log(s, actor=actor, action="job-start", subject=f"job/{j.id}", details={"request": j.request_id, "job": j.id})


def fail(hub: Hub, s: Session, j: db.Job, reason: str, actor: str, action: str = "job-end") -> None:
    """Fail a job that has not ended, drop its output shares, and log why (as action)."""
    if JobState(j.state).ended:
        return
    move(j, JobState.FAILED)
    j.reason = reason
    hub.drop_shares(j.id)
    hub.log(
        s,
        actor=actor,
        action=action,
        subject=f"job/{j.id}",
        details={"request": j.request_id, "job": j.id, "state": JobState.FAILED.value, "detail": reason},
    )


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    """Return t with its time zone (SQLite drops it; the hub stores UTC)."""
    return t.replace(tzinfo=dt.UTC) if t is not None and t.tzinfo is None else t


def engines_offline(hub: Hub, s: Session) -> list[str]:
    """Return why the engines are not all online (empty when they are): a party without one, or a silent engine."""
    limit = db.utcnow() - dt.timedelta(seconds=hub.heartbeat_timeout_s)
    engines = list(s.scalars(select(db.Node).where(db.Node.kind == "engine").order_by(db.Node.party)))
    out = [f"no engine for party {p}" for p in PARTIES if not any(e.party == p for e in engines)]
    for e in engines:
        seen = _aware(e.last_seen)
        if seen is None or seen < limit:
            out.append(f"{e.name} (party {e.party}) is not online")
    return out


def under_way(j: db.Job) -> bool:
    """Whether a job has been handed to nodes and has not ended."""
    return j.state == JobState.RUNNING or (j.state == JobState.APPROVED and j.offered is not None)


def offer(s: Session, j: db.Job) -> JobPayload:
    """Return the job's payload for a node, noting when it was first handed out (the share timeout's start)."""
    if j.offered is None:
        j.offered = db.utcnow()
    return payload(s, j)


def fail_interrupted(hub: Hub) -> list[int]:
    """Fail the jobs that were under way when the hub stopped (their output shares were in its memory only).

    Jobs not yet handed out stay approved. Runs come back only as `approvals.runs_used` says.
    Return the ids of the jobs failed.
    """
    failed = []
    with hub.sessions() as s:
        for j in s.scalars(select(db.Job).where(db.Job.state.in_((JobState.APPROVED.value, JobState.RUNNING.value)))):
            if under_way(j):
                fail(hub, s, j, "the hub restarted while the job was under way", "hub")
                failed.append(j.id)
        s.commit()
    return failed


def fail_late_datastations(hub: Hub) -> None:
    """Fail every job handed out longer than the share timeout ago whose datastations have not all sent."""
    with hub.sessions() as s:
        limit = db.utcnow() - dt.timedelta(seconds=hub.share_timeout_s)
        for j in s.scalars(select(db.Job).where(db.Job.state == JobState.APPROVED.value)):
            offered = _aware(j.offered)
            if offered is None or offered > limit:
                continue
            r = request_by_id(s, j.request_id)
            sent = {k for k, v in j.progress.items() if v.get("state") == PartState.SENT}
            late = []
            for org in r.organisations:
                o = s.scalars(select(db.Organisation).where(db.Organisation.name == org)).one()
                names = set(s.scalars(select(db.Node.name).where(db.Node.organisation_id == o.id)))
                if not names & sent:
                    late.append(org)
            if late:
                why = f"{', '.join(late)} sent no shares within {hub.share_timeout_s:.0f} s of the job being handed out"
                fail(hub, s, j, why, "hub")
        s.commit()


def fail_silent_engines(hub: Hub) -> None:
    """Fail every job under way while some engine has not been heard of within the heartbeat timeout."""
    with hub.sessions() as s:
        limit = db.utcnow() - dt.timedelta(seconds=hub.heartbeat_timeout_s)
        live = (JobState.APPROVED.value, JobState.RUNNING.value)
        for j in s.scalars(select(db.Job).where(db.Job.state.in_(live))):
            if not under_way(j):
                continue
            for e in s.scalars(select(db.Node).where(db.Node.kind == "engine")):
                seen = _aware(e.last_seen)
                if seen is None or seen < limit:
                    fail(hub, s, j, f"{e.name} (party {e.party}) stopped responding", "hub")
                    break
        s.commit()
