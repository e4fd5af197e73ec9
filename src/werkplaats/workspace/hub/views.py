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
    collab = s.get(db.Collaboration, r.collaboration_id)
    user = s.get(db.User, r.requester_id)
    approvals: dict[str, ApprovalPublic] = {}
    for a in s.scalars(select(db.Approval).where(db.Approval.request_id == r.id)):
        approvals[str(a.body.get("organisation"))] = ApprovalPublic(body=a.body, signature=a.signature, by=a.signed_by)
    rejections = {}
    for j in s.scalars(select(db.Rejection).where(db.Rejection.request_id == r.id)):
        org = s.get(db.Organisation, j.organisation_id)
        rejections[org.name if org else "?"] = RejectionPublic(reason=j.reason, by=j.by)
    jobs = [
        JobSummary(
            id=j.id, state=JobState(j.state), reason=j.reason, progress=j.progress, created=j.created.isoformat()
        )
        for j in s.scalars(select(db.Job).where(db.Job.request_id == r.id).order_by(db.Job.id))
    ]
    pending = [o for o in r.organisations if o not in approvals and o not in rejections]
    status: RequestStatus = "rejected" if rejections else "pending-approval" if pending else "approved"
    return RequestSummary(
        id=r.id,
        collaboration=collab.name if collab else "",
        purpose=r.purpose,
        requester=user.name if user else "",
        plan_hash=r.plan_hash,
        explain=r.explain,
        organisations=r.organisations,
        datasets=r.datasets,
        columns=r.columns,
        status=status,
        pending=pending,
        approvals=approvals,
        rejections=rejections,
        jobs=jobs,
        created=r.created.isoformat(),
    )
