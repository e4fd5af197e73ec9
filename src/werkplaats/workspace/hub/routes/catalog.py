"""Collaborations and the catalog: who works together, on which datasets, described how."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from ....exceptions import SchemaError
from ... import db
from ...jobs import catalog_of
from ..core import Caller
from ..deps import CallerDep, SessionDep, collaboration, members, organisation, require, sees
from ..schemas import CollaborationDataset, CollaborationIn, CollaborationPublic, DatasetIn, DatasetPublic, Named
from ..views import dataset_public

router = APIRouter()
PUBLISHED = ("title", "description", "table_schema", "update_frequency", "person_key", "rules", "row_count",
             "completeness")  # fmt: skip


@router.post("/collaborations", status_code=201, response_model=Named)
def add_collab(body: CollaborationIn, c: Annotated[Caller, require("admin")], s: SessionDep) -> Named:
    """Create a collaboration with its member organisations."""
    collab = db.Collaboration(name=body.name, title=body.title, purpose=body.purpose, dpia_annex=body.dpia_annex)
    s.add(collab)
    s.flush()
    for m in body.members:
        s.add(db.Member(collaboration_id=collab.id, organisation_id=organisation(s, m).id))
    s.commit()
    return Named(name=body.name)


@router.get("/collaborations", response_model=list[CollaborationPublic])
def list_collabs(c: CallerDep, s: SessionDep) -> list[CollaborationPublic]:
    """List the collaborations the caller may see, with members and datasets."""
    out = []
    for collab in s.scalars(select(db.Collaboration).order_by(db.Collaboration.name)):
        if not sees(s, c, collab):
            continue
        q = select(db.CollaborationDataset.dataset).where(db.CollaborationDataset.collaboration_id == collab.id)
        out.append(
            CollaborationPublic(
                name=collab.name,
                title=collab.title,
                purpose=collab.purpose,
                dpia_annex=collab.dpia_annex,
                members=members(s, collab),
                datasets=sorted(s.scalars(q)),
            )
        )
    return out


@router.post("/collaborations/{name}/datasets/{org}/{table}", status_code=201, response_model=CollaborationDataset)
def add_collab_dataset(
    name: str, org: str, table: str, c: Annotated[Caller, require("steward", "admin")], s: SessionDep
) -> CollaborationDataset:
    """Make a catalog dataset part of a collaboration (a steward, for their own organisation's datasets)."""
    collab = collaboration(s, name)
    if c.role == "steward" and c.organisation != org:
        raise HTTPException(403, f"only a steward of {org} adds {org}'s datasets")
    if org not in members(s, collab):
        raise HTTPException(422, f"{org} is not a member of {name}")
    ds = f"{org}/{table}"
    if not s.scalars(select(db.Dataset).where(db.Dataset.name == ds)).first():
        raise HTTPException(404, f"no dataset {ds!r} in the catalog")
    s.add(db.CollaborationDataset(collaboration_id=collab.id, dataset=ds))
    s.commit()
    return CollaborationDataset(collaboration=name, dataset=ds)


@router.put("/datasets/{org}/{table}", response_model=Named)
def put_dataset(
    org: str, table: str, body: DatasetIn, c: Annotated[Caller, require("steward", "datastation")], s: SessionDep
) -> Named:
    """Publish (or update) an organisation's catalog entry: its schema and public metadata."""
    if c.organisation != org:
        raise HTTPException(403, f"only {org}'s steward or datastation publishes {org}'s datasets")
    name = f"{org}/{table}"
    try:
        catalog_of({name: body.table_schema})
    except SchemaError as e:
        raise HTTPException(422, str(e)) from None
    o = organisation(s, org)
    d = s.scalars(select(db.Dataset).where(db.Dataset.name == name)).first()
    if d is None:
        d = db.Dataset(name=name, organisation_id=o.id, table_schema=body.table_schema)
        s.add(d)
    for k in PUBLISHED:
        setattr(d, k, getattr(body, k))
    d.updated = db.utcnow()
    s.commit()
    return Named(name=name)


@router.get("/datasets", response_model=list[DatasetPublic])
def list_datasets(c: CallerDep, s: SessionDep) -> list[DatasetPublic]:
    """List the catalog."""
    return [dataset_public(s, d) for d in s.scalars(select(db.Dataset).order_by(db.Dataset.name))]


@router.get("/datasets/{org}/{table}", response_model=DatasetPublic)
def get_dataset(org: str, table: str, c: CallerDep, s: SessionDep) -> DatasetPublic:
    """Return one catalog entry."""
    d = s.scalars(select(db.Dataset).where(db.Dataset.name == f"{org}/{table}")).first()
    if d is None:
        raise HTTPException(404, f"no dataset {org}/{table}")
    return dataset_public(s, d)
