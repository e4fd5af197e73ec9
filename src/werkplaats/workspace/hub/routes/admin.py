"""Organisations, users and nodes: what the admin registers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from ... import db
from ..core import Caller, new_token, token_hash
from ..deps import CallerDep, SessionDep, organisation, require
from ..schemas import Issued, Named, NodeIn, OrganisationIn, OrganisationPublic, UserIn

router = APIRouter()
Admin = Annotated[Caller, require("admin")]
BELONG = ("steward", "scientist", "requester")  # NB: roles that act for an organisation


@router.post("/organisations", status_code=201, response_model=Named)
def add_org(body: OrganisationIn, c: Admin, s: SessionDep) -> Named:
    """Register an organisation and its signing key."""
    if s.scalars(select(db.Organisation).where(db.Organisation.name == body.name)).first():
        raise HTTPException(409, f"organisation {body.name!r} exists")
    s.add(db.Organisation(name=body.name, title=body.title, kind=body.kind, signing_key=body.signing_key))
    s.commit()
    return Named(name=body.name)


@router.get("/organisations", response_model=list[OrganisationPublic])
def list_orgs(c: CallerDep, s: SessionDep) -> list[OrganisationPublic]:
    """List the organisations and their signing keys."""
    return [
        OrganisationPublic(name=o.name, title=o.title, kind=o.kind, signing_key=o.signing_key)
        for o in s.scalars(select(db.Organisation).order_by(db.Organisation.name))
    ]


@router.post("/users", status_code=201, response_model=Issued)
def add_user(body: UserIn, c: Admin, s: SessionDep) -> Issued:
    """Register a user with a role; return their token, shown this once."""
    if body.role not in db.ROLES:
        raise HTTPException(422, f"role must be one of {list(db.ROLES)}")
    org = organisation(s, body.organisation) if body.organisation else None
    if body.role in BELONG and org is None:
        raise HTTPException(422, f"a {body.role} belongs to an organisation")
    token = new_token()
    s.add(
        db.User(name=body.name, role=body.role, organisation_id=org.id if org else None, token_hash=token_hash(token))
    )
    s.commit()
    return Issued(name=body.name, token=token)


@router.post("/nodes", status_code=201, response_model=Issued)
def add_node(body: NodeIn, c: Admin, s: SessionDep) -> Issued:
    """Register a datastation or an engine; return its token, shown this once."""
    if body.kind not in db.NODE_KINDS:
        raise HTTPException(422, f"kind must be one of {list(db.NODE_KINDS)}")
    if body.kind == "engine" and body.party not in (0, 1, 2):
        raise HTTPException(422, "an engine needs party 0, 1 or 2")
    if s.scalars(select(db.Node).where(db.Node.name == body.name)).first():
        raise HTTPException(409, f"a node named {body.name!r} is registered already")
    if body.kind == "engine":
        # NB: one engine per party: a second one could be handed a second share of every dataset
        held = s.scalars(select(db.Node).where(db.Node.kind == "engine", db.Node.party == body.party)).first()
        if held is not None:
            msg = f"party {body.party} has an engine already ({held.name!r}); a workspace has one engine per party"
            raise HTTPException(409, msg)
    org = organisation(s, body.organisation) if body.organisation else None
    if body.kind == "datastation" and org is None:
        raise HTTPException(422, "a datastation belongs to an organisation")
    token = new_token()
    s.add(
        db.Node(
            name=body.name,
            kind=body.kind,
            organisation_id=org.id if org else None,
            party=body.party,
            url=body.url,
            mpc_address=body.mpc_address,
            token_hash=token_hash(token),
        )
    )
    s.commit()
    return Issued(name=body.name, token=token)
