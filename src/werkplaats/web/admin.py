"""The admin's pages: organisations, users and roles, collaborations, node health.

The forms call the hub's API functions (``routes.admin.add_user``) with the admin as the caller, and the
auth helper's ``HubAccounts.create_account`` for a web login; a new API token and a TOTP secret are
shown once, on the page that answers the form, and never stored in the clear or logged.
"""

# OWNER: helper oversight

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..exceptions import WerkplaatsError
from ..workspace import audit, db
from ..workspace.hub.core import Hub
from ..workspace.hub.routes import admin as admin_api
from ..workspace.hub.routes import catalog as catalog_api
from ..workspace.hub.schemas import UserIn
from .deps import CsrfDep, HubDep, SessionDep, WebUser, require_role
from .public import N_, ROLE_LABELS
from .render import render

router = APIRouter()
Admin = Annotated[WebUser, require_role("admin")]
FINGERPRINT_COMMAND = "printf %s 'KEY' | sha256sum | cut -c1-16"  # NB: audit.key_fingerprint without "sha256:"


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    """A stored time as UTC-aware (SQLite gives naive datetimes back)."""
    return t if t is None or t.tzinfo else t.replace(tzinfo=dt.UTC)


@router.get("/admin/organisations")
def organisations(request: Request, user: Admin, s: SessionDep) -> Response:
    """The organisations with their signing keys' fingerprints, revoked keys, and whether they left."""
    revoked: dict[int, list[dict[str, Any]]] = {}
    for k in s.scalars(select(db.RevokedKey).order_by(db.RevokedKey.id)):
        revoked.setdefault(k.organisation_id, []).append(
            {"fingerprint": audit.key_fingerprint(k.public_key), "when": k.revoked, "by": k.by, "reason": k.reason}
        )
    rows = [
        {"o": o, "fingerprint": audit.key_fingerprint(o.signing_key), "revoked": revoked.get(o.id, [])}
        for o in s.scalars(select(db.Organisation).order_by(db.Organisation.name))
    ]
    return render(request, "admin/organisations.html", {"rows": rows, "command": FINGERPRINT_COMMAND})


def _users_page(request: Request, s: Session, status: int = 200, **extra: Any) -> Response:
    """The users page, with what a form just did (a message, a token or TOTP secret shown once, an error)."""
    orgs = {o.id: o.name for o in s.scalars(select(db.Organisation))}
    accounts = {a.user_id: a for a in s.scalars(select(db.WebAccount))}
    rows: list[dict[str, Any]] = []
    without: list[str] = []
    for u in s.scalars(select(db.User).order_by(db.User.name)):
        acc = accounts.get(u.id)
        locked = acc is not None and acc.locked_until is not None and _aware(acc.locked_until) > db.utcnow()  # type: ignore[operator]
        if acc is None:
            without.append(u.name)
        rows.append({
            "u": u, "organisation": orgs.get(u.organisation_id or 0, ""), "account": acc is not None,
            "totp": bool(acc and acc.totp_secret and not acc.totp_secret.startswith("pending:")),
            "locked": locked,
        })  # fmt: skip
    ctx = {
        "rows": rows,
        "roles": list(db.ROLES),
        "role_labels": ROLE_LABELS,
        "organisations": sorted(orgs.values()),
        "without_account": without,
        "form": {},
        **extra,
    }
    return render(request, "admin/users.html", ctx, status=status)


@router.get("/admin/users")
def users(request: Request, user: Admin, s: SessionDep) -> Response:
    """The users with role and organisation, and the forms to add a user and give one a web account."""
    return _users_page(request, s)


@router.post("/admin/users")
def add_user(
    request: Request,
    user: Admin,
    _: CsrfDep,
    s: SessionDep,
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    organisation: Annotated[str, Form()] = "",
) -> Response:
    """Register a user through the API's add_user; show their API token once."""
    form = {"name": name, "role": role, "organisation": organisation}
    name = name.strip()
    if not name:
        return _users_page(request, s, 422, error=N_("Give the user a name."), form=form)
    if s.scalars(select(db.User).where(db.User.name == name)).first() is not None:
        return _users_page(request, s, 409, error=N_("A user of that name exists already."), form=form)
    body = UserIn(name=name, role=role, organisation=organisation or None)
    try:
        issued = admin_api.add_user(body, user.caller(), s)
    except HTTPException as e:
        s.rollback()
        return _users_page(request, s, e.status_code, error_detail=str(e.detail), form=form)
    except IntegrityError:  # NB: a concurrent add of the same name
        s.rollback()
        return _users_page(request, s, 409, error=N_("A user of that name exists already."), form=form)
    return _users_page(request, s, 201, added=issued.name, token=issued.token)


@router.post("/admin/accounts")
def add_account(
    request: Request,
    user: Admin,
    _: CsrfDep,
    s: SessionDep,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Give a user a web account with an initial password; show the TOTP secret once when the role needs one."""
    u = s.scalars(select(db.User).where(db.User.name == name)).first()
    if u is None:
        return _users_page(request, s, 404, error=N_("There is no user of that name."))
    try:
        secret = request.app.state.accounts.create_account(s, u, password)
    except WerkplaatsError as e:  # NB: AccountError: its message is an English message id, no secret in it
        s.rollback()
        return _users_page(request, s, 422, error=str(e), account_form={"name": name})
    return _users_page(request, s, 201, account_for=u.name, totp_secret=secret or "")


@router.get("/admin/collaborations")
def collaborations(request: Request, user: Admin, s: SessionDep) -> Response:
    """Every collaboration: purpose, DPIA annex, members and datasets (the API's list, as the admin sees it)."""
    rows = catalog_api.list_collabs(user.caller(), s)
    return render(request, "admin/collaborations.html", {"rows": rows})


def node_rows(hub: Hub, s: Session) -> list[dict[str, Any]]:
    """Every datastation and engine with its last heartbeat, how long ago, and whether it is stale."""
    orgs = {o.id: o.name for o in s.scalars(select(db.Organisation))}
    revoked = set(s.scalars(select(db.RevokedCertificate.node)))
    now = db.utcnow()
    rows = []
    for n in s.scalars(select(db.Node).order_by(db.Node.kind, db.Node.party, db.Node.name)):
        seen = _aware(n.last_seen)
        age = (now - seen).total_seconds() if seen else None
        rows.append({
            "n": n, "organisation": orgs.get(n.organisation_id or 0, ""), "seen": seen, "age": age,
            "stale": age is None or age > hub.heartbeat_timeout_s, "revoked": n.name in revoked,
        })  # fmt: skip
    return rows


@router.get("/admin/nodes")
def nodes(request: Request, user: Admin, s: SessionDep, hub: HubDep) -> Response:
    """Node health: last heartbeat of every datastation and engine, its version and pages; stale ones flagged."""
    rows = node_rows(hub, s)
    ctx = {"rows": rows, "timeout": int(hub.heartbeat_timeout_s), "stale": sum(r["stale"] for r in rows)}
    return render(request, "admin/nodes.html", ctx)
