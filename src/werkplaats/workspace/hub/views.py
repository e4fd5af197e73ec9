"""Stored rows as the API shows them, and the catalog as plans are checked against it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import db
from ..messages import JobState
from .schemas import (
    ApprovalPublic,
    DatasetPublic,
    JobSummary,
    RejectionPublic,
    RequestPublic,
    RequestStatus,
    RequestSummary,
)


def catalog_docs(s: Session, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Return the Frictionless schemas of the catalog (or of the named datasets), by dataset name."""
    q = select(db.Dataset)
    if names is not None:
        q = q.where(db.Dataset.name.in_(names))
    return {d.name: d.table_schema for d in s.scalars(q)}


def dataset_public(s: Session, d: db.Dataset) -> DatasetPublic:
    """Return a catalog entry as the API shows it."""
    org = s.get(db.Organisation, d.organisation_id)
    return DatasetPublic(
        name=d.name,
        organisation=org.name if org else "",
        title=d.title,
        description=d.description,
        schema=d.table_schema,
        update_frequency=d.update_frequency,
        person_key=d.person_key,
        rules=d.rules,
        row_count=d.row_count,
        completeness=d.completeness,
        updated=d.updated.isoformat(),
    )


def request_public(s: Session, r: db.Request) -> RequestPublic:
    """Return a request with its plan, status, approvals, rejections and jobs."""
    return RequestPublic(**dict(request_summary(s, r)), plan=r.plan)


def request_summary(s: Session, r: db.Request) -> RequestSummary:
    """Return a request with its status, approvals, rejections and jobs, without its plan."""
    return request_summaries(s, [r])[0]


def request_summaries(s: Session, rs: list[db.Request]) -> list[RequestSummary]:
    """Return requests as `request_summary` does, reading their approvals, rejections and jobs in a few queries."""
    ids = [r.id for r in rs]
    collabs = {c.id: c.name for c in s.scalars(select(db.Collaboration))}
    users = {
        u.id: u.name for u in s.scalars(select(db.User).where(db.User.id.in_(sorted({r.requester_id for r in rs}))))
    }
    orgs = {o.id: o.name for o in s.scalars(select(db.Organisation))}
    approvals: dict[int, dict[str, ApprovalPublic]] = {i: {} for i in ids}
    rejections: dict[int, dict[str, RejectionPublic]] = {i: {} for i in ids}
    jobs: dict[int, list[JobSummary]] = {i: [] for i in ids}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):  # NB: bounded IN lists
        for a in s.scalars(select(db.Approval).where(db.Approval.request_id.in_(chunk)).order_by(db.Approval.id)):
            org = str(a.body.get("organisation"))
            approvals[a.request_id][org] = ApprovalPublic(body=a.body, signature=a.signature, by=a.signed_by)
        for j in s.scalars(select(db.Rejection).where(db.Rejection.request_id.in_(chunk)).order_by(db.Rejection.id)):
            rejections[j.request_id][orgs.get(j.organisation_id, "?")] = RejectionPublic(reason=j.reason, by=j.by)
        for jb in s.scalars(select(db.Job).where(db.Job.request_id.in_(chunk)).order_by(db.Job.id)):
            jobs[jb.request_id].append(
                JobSummary(id=jb.id, state=JobState(jb.state), reason=jb.reason, progress=jb.progress,
                           created=jb.created.isoformat())
            )  # fmt: skip
    out = []
    for r in rs:
        pending = [o for o in r.organisations if o not in approvals[r.id] and o not in rejections[r.id]]
        status: RequestStatus = "rejected" if rejections[r.id] else "pending-approval" if pending else "approved"
        out.append(
            RequestSummary(
                id=r.id,
                collaboration=collabs.get(r.collaboration_id, ""),
                purpose=r.purpose,
                requester=users.get(r.requester_id, ""),
                plan_hash=r.plan_hash,
                explain=r.explain,
                organisations=r.organisations,
                datasets=r.datasets,
                columns=r.columns,
                status=status,
                pending=pending,
                approvals=approvals[r.id],
                rejections=rejections[r.id],
                jobs=jobs[r.id],
                created=r.created.isoformat(),
            )
        )
    return out
