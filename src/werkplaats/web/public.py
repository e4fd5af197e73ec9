"""Pages for everybody: home (by role), language switch, the toegankelijkheidsverklaring; the header's context.

``NAV`` is the navigation of each role in each app (hub, datastation): ``base.html`` shows a user the
links of their own role only, the current one marked ``aria-current="page"``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlsplit

from babel.dates import format_date
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .. import __version__
from ..workspace import db
from .deps import COOKIE, WebUser, require_role
from .i18n import LANGS, negotiate
from .render import render

router = APIRouter()
STATEMENT_DATE = dt.date(2026, 11, 30)  # NB: change it with the statement (the model asks for its date)


def N_(message: str) -> str:
    """Mark a message id for extraction; it is translated where it is shown (``_(item.label)``)."""
    return message


_ACCOUNT = ("/account", N_("My account"))
NAV: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "hub": {
        "scientist": (
            ("/catalog", N_("Catalog")),
            ("/templates", N_("Templates")),
            ("/requests", N_("Requests")),
            ("/dashboards", N_("Dashboards")),
            ("/questions", N_("Questions")),
            _ACCOUNT,
        ),
        "requester": (("/dashboards", N_("Dashboards")), ("/questions", N_("Questions")), _ACCOUNT),
        "privacy-officer": (("/audit", N_("Audit trail")), ("/register", N_("Processing register")), _ACCOUNT),
        "admin": (
            ("/admin/organisations", N_("Organisations")),
            ("/admin/users", N_("Users")),
            ("/admin/collaborations", N_("Collaborations")),
            ("/admin/nodes", N_("Nodes")),
            _ACCOUNT,
        ),
        "steward": (("/", N_("My datastation")), _ACCOUNT),
    },
    "station": {"steward": (("/inbox", N_("Inbox")), ("/log", N_("Log")), _ACCOUNT)},
}
ROLE_LABELS = {
    "admin": N_("administrator"),
    "steward": N_("data steward"),
    "scientist": N_("analyst"),
    "requester": N_("policy advisor"),
    "privacy-officer": N_("privacy officer"),
}
HOME = {
    "requester": "/dashboards",
    "scientist": "/requests",
    "admin": "/admin/organisations",
    "privacy-officer": "/audit",
}


def _current(path: str, href: str) -> bool:
    """Whether a navigation link is the page shown (or a page under it)."""
    if href == "/":
        return path == "/"
    return path == href or path.startswith(href + "/")


def _org_title(request: Request, org: str | None) -> str:
    """The title of an organisation as the hub knows it ("" when there is none)."""
    if not org or getattr(request.app.state, "kind", "hub") != "hub":
        return ""
    try:
        with request.app.state.hub.sessions() as s:
            title = s.scalars(select(db.Organisation.title).where(db.Organisation.name == org)).first()
    except SQLAlchemyError:  # NB: the header never stops a page (an error page, say) from rendering
        return ""
    return title or ""


def header_context(request: Request, user: WebUser | None) -> dict[str, Any]:
    """What base.html needs besides the user: the app's organisation, the role's navigation and label."""
    kind = getattr(request.app.state, "kind", "hub")
    if kind == "station":
        org: str | None = request.app.state.station.cfg.organisation
        org_title = org or ""
    else:
        org = user.organisation if user else None
        org_title = _org_title(request, org)
    path = request.url.path
    links = NAV.get(kind, {}).get(user.role, ()) if user else ()  # NB: labels are translated in base.html
    return {
        "site_org": org or "",
        "site_org_title": org_title,
        "nav": [{"href": h, "label": label, "current": _current(path, h)} for h, label in links],
        "role_label_id": ROLE_LABELS.get(user.role, user.role) if user else "",
    }


def optional_user(request: Request) -> WebUser | None:
    """The logged-in user of a public page, if any (so that it shows their navigation)."""
    token = request.cookies.get(COOKIE, "")
    user: WebUser | None = request.app.state.accounts.user_for(token) if token else None
    if user is not None:
        request.state.user = user
    return user


@router.get("/")
def home(request: Request, user: Annotated[WebUser, require_role(*db.ROLES)]) -> Response:
    """Send each role to its start page; a steward at the hub gets the link to their datastation's pages."""
    if getattr(request.app.state, "kind", "hub") == "station":
        return RedirectResponse("/inbox", status_code=303)
    if user.role in HOME:
        return RedirectResponse(HOME[user.role], status_code=303)
    stations: list[dict[str, str]] = []
    if user.organisation:
        with request.app.state.hub.sessions() as s:
            rows = s.execute(
                select(db.Node.name, db.Node.web_url)
                .join(db.Organisation, db.Organisation.id == db.Node.organisation_id)
                .where(db.Organisation.name == user.organisation, db.Node.kind == "datastation")
                .order_by(db.Node.name)
            ).all()
        stations = [{"name": n, "url": u} for n, u in rows if u.startswith("https://")]
    return render(request, "public/steward.html", {"stations": stations})


def _local_target(request: Request, referer: str) -> str:
    """The path (and query) of a Referer on this site, else "/"; never another site."""
    if not referer:
        return "/"
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.headers.get("host", request.url.netloc):
        return "/"
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or "\\" in path or path.startswith("/lang/"):
        return "/"
    return path + (f"?{parts.query}" if parts.query else "")


@router.get("/lang/{code}")
def set_language(request: Request, code: str) -> Response:
    """Choose the language of the pages (a cookie, a year), and go back to the page it was chosen on."""
    if code not in LANGS:
        raise HTTPException(404, "no-such-language")
    response = RedirectResponse(_local_target(request, request.headers.get("referer", "")), status_code=303)
    response.set_cookie("lang", code, max_age=365 * 24 * 3600, samesite="lax", secure=True, httponly=True)
    return response


@router.get("/accessibility")
def accessibility(request: Request) -> Response:
    """The toegankelijkheidsverklaring (accessibility statement), after the Dutch model statement."""
    optional_user(request)
    lang = negotiate(request)
    when = format_date(STATEMENT_DATE, format="long", locale=lang)
    ctx = {"statement_date": STATEMENT_DATE, "statement_date_text": when, "version": __version__}
    return render(request, "public/accessibility.html", ctx)
