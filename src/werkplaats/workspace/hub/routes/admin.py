"""Organisations, users and nodes: what the admin registers."""

from __future__ import annotations

import base64
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import APIRouter, HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from ... import audit, db
from ...messages import JobState
from .. import lifecycle
from ..core import Caller, Hub, new_token, token_hash
from ..deps import CallerDep, HubDep, SessionDep, collaboration, organisation, require
from ..schemas import (
    CertificateRevocation,
    CertificateRevocationIn,
    Departure,
    Issued,
    KeyRotated,
    KeyRotationIn,
    Named,
    NodeIn,
    NodeWebUrlIn,
    OrganisationIn,
    OrganisationPublic,
    UserIn,
)

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
        OrganisationPublic(
            name=o.name,
            title=o.title,
            kind=o.kind,
            signing_key=o.signing_key,
            left=o.left_at.isoformat() if o.left_at else None,
        )
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
            web_url=body.web_url,
            token_hash=token_hash(token),
        )
    )
    s.commit()
    return Issued(name=body.name, token=token)


@router.put("/nodes/{name}/web-url", response_model=Named)
def set_web_url(name: str, body: NodeWebUrlIn, c: Admin, s: SessionDep) -> Named:
    """Set (or remove, with "") the address of a datastation's steward pages, which the hub's pages link to."""
    node = s.scalars(select(db.Node).where(db.Node.name == name)).first()
    if node is None:
        raise HTTPException(404, f"no node named {name!r}")
    if node.kind != "datastation":
        raise HTTPException(422, f"{name!r} is an {node.kind}: only a datastation has steward pages")
    node.web_url = body.web_url
    s.commit()
    return Named(name=name)


def _leave(hub: Hub, s: Session, o: db.Organisation, collab: db.Collaboration, reason: str) -> Departure:
    """Take o out of collab: its membership, its datasets in it, and every live job there reading its data."""
    m = s.scalars(select(db.Member).where(db.Member.collaboration_id == collab.id,
                                          db.Member.organisation_id == o.id)).first()  # fmt: skip
    if m is not None:
        s.delete(m)
    q = select(db.CollaborationDataset).where(db.CollaborationDataset.collaboration_id == collab.id,
                                              db.CollaborationDataset.dataset.startswith(o.name + "/"))  # fmt: skip
    removed = []
    for cd in s.scalars(q):
        removed.append(cd.dataset)
        s.delete(cd)
    s.flush()
    why = f"organisation {o.name!r} left collaboration {collab.name!r}" + (f": {reason}" if reason else "")
    failed = []
    live = (JobState.APPROVED.value, JobState.RUNNING.value)
    for j in s.scalars(select(db.Job).where(db.Job.state.in_(live)).order_by(db.Job.id)):
        r = s.get(db.Request, j.request_id)
        if r is not None and r.collaboration_id == collab.id and o.name in r.organisations:
            lifecycle.fail(hub, s, j, why, "hub")
            failed.append(j.id)
    return Departure(organisation=o.name, collaborations=[collab.name], datasets_removed=sorted(removed),
                     jobs_failed=failed)  # fmt: skip


@router.delete("/collaborations/{name}/members/{org}", response_model=Departure)
def remove_member(name: str, org: str, c: Admin, s: SessionDep, hub: HubDep, reason: str = "") -> Departure:
    """Take an organisation out of a collaboration: its datasets leave it and live jobs reading them fail at once.

    Requests reading its data are refused from then on (409 at submit and at run); nodes are
    not handed such jobs, and a datastation's contribution to one is refused (send nothing).
    """
    collab = collaboration(s, name)
    o = organisation(s, org)
    if not s.scalars(select(db.Member).where(db.Member.collaboration_id == collab.id,
                                             db.Member.organisation_id == o.id)).first():  # fmt: skip
        raise HTTPException(404, f"{org} is not a member of collaboration {name!r}")
    d = _leave(hub, s, o, collab, reason[:2000])
    hub.log(s, actor=c.name, action="member-removed", subject=f"collaboration/{name}",
            details={"organisation": org, "collaboration": name, "datasets": d.datasets_removed,
                     "jobs_failed": d.jobs_failed, "detail": reason[:2000]})  # fmt: skip
    s.commit()
    return d


@router.delete("/organisations/{org}", response_model=Departure)
def remove_org(org: str, c: Admin, s: SessionDep, hub: HubDep, reason: str = "") -> Departure:
    """An organisation leaves the workspace: out of every collaboration, and its users' and nodes' tokens stop working.

    Its row stays (the audit names it, its key verifies what it signed before); it cannot be
    registered again under the same name.
    """
    o = organisation(s, org)
    if o.left_at is not None:
        raise HTTPException(409, f"organisation {org!r} left the workspace at {o.left_at.isoformat()}")
    collabs = list(s.scalars(select(db.Collaboration).join(db.Member, db.Member.collaboration_id == db.Collaboration.id)
                             .where(db.Member.organisation_id == o.id).order_by(db.Collaboration.name)))  # fmt: skip
    ds, jobs = [], []
    for collab in collabs:
        d = _leave(hub, s, o, collab, reason[:2000])
        ds += d.datasets_removed
        jobs += d.jobs_failed
    o.left_at = db.utcnow()
    out = Departure(organisation=org, collaborations=[x.name for x in collabs], datasets_removed=sorted(ds),
                    jobs_failed=sorted(jobs))  # fmt: skip
    hub.log(s, actor=c.name, action="organisation-left", subject=f"organisation/{org}",
            details={**out.model_dump(), "detail": reason[:2000]})  # fmt: skip
    s.commit()
    return out


@router.put("/organisations/{org}/signing-key", response_model=KeyRotated)
def rotate_key(org: str, body: KeyRotationIn, c: Admin, s: SessionDep, hub: HubDep) -> KeyRotated:
    """Replace an organisation's signing key; the old one is revoked (audited as key-rotated).

    From then on approvals and contribution records signed with the old key are refused (the
    hub checks with the registered key only). What the old key signed before stays verifiable
    in the audit: the key-rotated entry names the key of the entries before it.
    """
    o = organisation(s, org)
    if o.left_at is not None:
        raise HTTPException(409, f"organisation {org!r} has left the workspace")
    if body.signing_key == o.signing_key:
        raise HTTPException(409, f"that is {org}'s current signing key; a rotation needs a new one")
    q = select(db.RevokedKey).where(db.RevokedKey.organisation_id == o.id, db.RevokedKey.public_key == body.signing_key)
    if s.scalars(q).first() is not None:
        raise HTTPException(409, f"that key of {org} was revoked; a revoked key is not registered again")
    if not _is_key(body.signing_key):
        raise HTTPException(422, "signing_key is not an Ed25519 public key (32 bytes, base64)")
    old = o.signing_key
    s.add(db.RevokedKey(organisation_id=o.id, public_key=old, by=c.name, reason=body.reason))
    o.signing_key = body.signing_key
    hub.log(s, actor=c.name, action="key-rotated", subject=f"organisation/{org}",
            details={"organisation": org, "old": old, "new": body.signing_key, "detail": body.reason,
                     "fingerprints": {"old": audit.key_fingerprint(old),
                                      "new": audit.key_fingerprint(body.signing_key)}})  # fmt: skip
    # NB: a job not yet ended runs under approvals the old key signed (maybe by whoever took it): it fails
    why = f"the approval of {org} was signed with a key revoked since (key rotated by {c.name})"
    live = (JobState.APPROVED.value, JobState.RUNNING.value)
    for j in s.scalars(select(db.Job).where(db.Job.state.in_(live)).order_by(db.Job.id)):
        if any((a.get("body") or {}).get("organisation") == org for a in j.approvals):
            lifecycle.fail(hub, s, j, why, "hub")
    s.commit()
    return KeyRotated(organisation=org, revoked_key=old, signing_key=body.signing_key)


def _is_key(public_b64: str) -> bool:
    """Whether a string is an Ed25519 public key (32 bytes, base64)."""
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
    except ValueError:
        return False
    return True


@router.post("/nodes/{name}/certificate-revocations", status_code=201, response_model=CertificateRevocation)
def revoke_certificate(name: str, body: CertificateRevocationIn, c: Admin, s: SessionDep,
                       hub: HubDep) -> CertificateRevocation:  # fmt: skip
    """Revoke a node's certificate: the hub refuses it from then on (403), whatever token comes with it.

    Give its SPKI SHA-256 fingerprint (`werkplaats pki fingerprint CERT`; it names the key, so a
    certificate re-issued for the same key is refused too) and/or its serial number (hex).
    """
    if not s.scalars(select(db.Node).where(db.Node.name == name)).first():
        raise HTTPException(404, f"no node {name!r}")
    if not body.fingerprint and not body.serial:
        raise HTTPException(422, "give the certificate's fingerprint or serial")
    r = db.RevokedCertificate(node=name, fingerprint=body.fingerprint, serial=body.serial, by=c.name,
                              reason=body.reason)  # fmt: skip
    s.add(r)
    s.flush()
    hub.log(s, actor=c.name, action="certificate-revoked", subject=f"node/{name}",
            details={"node": name, "fingerprint": body.fingerprint, "serial": body.serial,
                     "detail": body.reason})  # fmt: skip
    s.commit()
    return CertificateRevocation(node=name, fingerprint=r.fingerprint, serial=r.serial,
                                 revoked=r.revoked.isoformat(), reason=r.reason)  # fmt: skip


@router.get("/certificate-revocations", response_model=list[CertificateRevocation])
def list_revocations(c: Admin, s: SessionDep) -> list[CertificateRevocation]:
    """The hub's revocation list of node certificates."""
    return [
        CertificateRevocation(
            node=r.node, fingerprint=r.fingerprint, serial=r.serial, revoked=r.revoked.isoformat(), reason=r.reason
        )
        for r in s.scalars(select(db.RevokedCertificate).order_by(db.RevokedCertificate.id))
    ]
