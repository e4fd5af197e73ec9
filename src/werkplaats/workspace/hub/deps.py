"""The hub's FastAPI dependencies: the hub, a database session, the caller, role checks, lookups.

Routes declare what they need with the ``Annotated`` aliases below (``SessionDep``,
``CallerDep``, ``RequestDep``, ...). A role check is a dependency too, so it runs before
the route looks anything up: ``c: Annotated[Caller, require("admin")]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .. import db
from ..peer import peer_certificate, peer_common_name
from ..pki import spki_sha256
from .core import Caller, Hub, token_hash

OVERSEERS = ("admin", "privacy-officer")  # NB: see every collaboration without being a member


def get_hub(request: Request) -> Hub:
    """Return the hub the app serves."""
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


def session(hub: HubDep) -> Iterator[Session]:
    """Yield a database session for one request."""
    with hub.sessions() as s:
        yield s


SessionDep = Annotated[Session, Depends(session)]


def caller(request: Request, s: SessionDep) -> Caller:
    """Return the user or node whose bearer token came with the request (401 otherwise).

    A node's token is bound to its certificate: it counts only on a connection whose client
    certificate names that node (403 otherwise, also when the server passed no certificate).
    A user's token is not bound (people work from their own machines with any workspace
    certificate). A node's call also counts as its heartbeat (``last_seen``), once bound.
    """
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        raise HTTPException(401, "missing bearer token")
    h = token_hash(auth.split(None, 1)[1].strip())
    u = s.scalars(select(db.User).where(db.User.token_hash == h)).first()
    if u is not None:
        org = s.get(db.Organisation, u.organisation_id) if u.organisation_id else None
        if org is not None and org.left_at is not None:
            raise HTTPException(403, f"{u.name}'s organisation {org.name} has left the workspace")
        return Caller("user", u.name, u.role, org.name if org else None, u.id)
    nd = s.scalars(select(db.Node).where(db.Node.token_hash == h)).first()
    if nd is not None:
        peer = peer_common_name(request.scope)
        if peer is None:
            raise HTTPException(403, f"node {nd.name}'s token came without a client certificate; it is bound to one")
        if peer != nd.name:
            msg = f"node {nd.name}'s token came with the certificate of {peer!r}; a node's token is bound to its own"
            raise HTTPException(403, msg)
        revoked = _revoked(s, peer_certificate(request.scope))
        if revoked is not None:
            raise HTTPException(403, f"node {nd.name}'s certificate was revoked on {revoked.revoked:%Y-%m-%d %H:%M}")
        org = s.get(db.Organisation, nd.organisation_id) if nd.organisation_id else None
        if org is not None and org.left_at is not None:
            raise HTTPException(403, f"node {nd.name}'s organisation {org.name} has left the workspace")
        nd.last_seen = db.utcnow()
        nd.version = reported_version(request.headers.get("user-agent", "")) or nd.version
        s.commit()
        return Caller("node", nd.name, nd.kind, org.name if org else None, nd.id)
    raise HTTPException(401, "unknown token")


def reported_version(user_agent: str) -> str:
    """The werkplaats version a node reports in its User-Agent (``werkplaats/<version>``), else ''."""
    m = re.fullmatch(r"werkplaats/([0-9A-Za-z.+_-]{1,40})", user_agent.strip())
    return m.group(1) if m else ""


def _revoked(s: Session, cert: Any) -> db.RevokedCertificate | None:
    """The hub's revocation entry matching a client certificate (by SPKI fingerprint or serial), if any."""
    if cert is None:
        return None
    fp, serial = spki_sha256(cert), format(cert.serial_number, "x")
    q = select(db.RevokedCertificate).where(
        or_(db.RevokedCertificate.fingerprint == fp, db.RevokedCertificate.serial == serial)
    )
    return s.scalars(q).first()


CallerDep = Annotated[Caller, Depends(caller)]


def require(*roles: str) -> Any:
    """Return a dependency giving the caller if their role is one of roles (403 otherwise)."""

    def check(c: CallerDep) -> Caller:
        if c.role not in roles:
            raise HTTPException(403, f"role {c.role!r} may not do this (needs one of {list(roles)})")
        return c

    return Depends(check)


# -- lookups that answer 404 -----------------------------------------------------------------------


def organisation(s: Session, name: str) -> db.Organisation:
    """Return the organisation of that name (404 otherwise)."""
    o = s.scalars(select(db.Organisation).where(db.Organisation.name == name)).first()
    if o is None:
        raise HTTPException(404, f"no organisation {name!r}")
    return o


def collaboration(s: Session, name: str) -> db.Collaboration:
    """Return the collaboration of that name (404 otherwise)."""
    c = s.scalars(select(db.Collaboration).where(db.Collaboration.name == name)).first()
    if c is None:
        raise HTTPException(404, f"no collaboration {name!r}")
    return c


def request_by_id(s: Session, rid: int) -> db.Request:
    """Return the request of that id (404 otherwise)."""
    r = s.get(db.Request, rid)
    if r is None:
        raise HTTPException(404, f"no request {rid}")
    return r


def job_by_id(s: Session, jid: int) -> db.Job:
    """Return the job of that id (404 otherwise)."""
    j = s.get(db.Job, jid)
    if j is None:
        raise HTTPException(404, f"no job {jid}")
    return j


def _path_request(rid: int, s: SessionDep) -> db.Request:
    return request_by_id(s, rid)


def _path_job(jid: int, s: SessionDep) -> db.Job:
    return job_by_id(s, jid)


RequestDep = Annotated[db.Request, Depends(_path_request)]
JobDep = Annotated[db.Job, Depends(_path_job)]


# -- membership ----------------------------------------------------------------------------------


def members(s: Session, collab: db.Collaboration) -> list[str]:
    """Return the names of the collaboration's member organisations."""
    q = (
        select(db.Organisation.name)
        .join(db.Member, db.Member.organisation_id == db.Organisation.id)
        .where(db.Member.collaboration_id == collab.id)
    )
    return list(s.scalars(q))


def unusable(s: Session, collab: db.Collaboration, organisations: list[str]) -> str:
    """Why data of these organisations cannot be read in the collaboration ('' when it can).

    An organisation that left the workspace, or is no longer a member of the collaboration,
    takes its datasets with it: requests reading them are refused at submit, at run, when
    nodes are handed the job and when a datastation records its contribution.
    """
    current = set(members(s, collab))
    for name in sorted(organisations):
        o = s.scalars(select(db.Organisation).where(db.Organisation.name == name)).first()
        if o is None or o.left_at is not None:
            return f"organisation {name!r} has left the workspace; its datasets cannot be read"
        if name not in current:
            gone = f"organisation {name!r} is no longer a member of collaboration {collab.name!r}"
            return gone + "; its datasets cannot be read"
    return ""


def sees(s: Session, c: Caller, collab: db.Collaboration) -> bool:
    """Whether the caller may see the collaboration: an overseer, or of a member organisation."""
    return c.role in OVERSEERS or (c.organisation is not None and c.organisation in members(s, collab))


def require_member(s: Session, c: Caller, collab: db.Collaboration) -> None:
    """Refuse (403) a caller who may not see the collaboration."""
    if not sees(s, c, collab):
        raise HTTPException(403, f"{c.name} is not a member of collaboration {collab.name!r}")


def takes_part(s: Session, c: Caller, r: db.Request) -> bool:
    """Whether a node has a part in a request: a datastation whose organisation's data it reads, or an engine.

    NB: every job runs on the workspace's three engines (one per party), so an engine is party to each.
    """
    if c.role == "datastation":
        return c.organisation is not None and c.organisation in r.organisations
    return c.role == "engine"


def require_part(s: Session, c: Caller, r: db.Request, what: str) -> None:
    """Refuse (403) a node without a part in the request, naming what it tried to touch."""
    if not takes_part(s, c, r):
        raise HTTPException(403, f"{c.name} has no part in {what}: it reads no data of {c.organisation or 'it'}")


def require_access(s: Session, c: Caller, r: db.Request, what: str) -> None:
    """Refuse (403) a user outside the request's collaboration, or a node without a part in it."""
    if c.kind == "user":
        require_member(s, c, collaboration_of(s, r))
    else:
        require_part(s, c, r, what)


def collaboration_of(s: Session, r: db.Request) -> db.Collaboration:
    """Return the collaboration a request was made in."""
    collab = s.get(db.Collaboration, r.collaboration_id)
    assert collab is not None  # NB: a foreign key
    return collab
