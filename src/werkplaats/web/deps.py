"""What every page needs: the logged-in user, role checks, the CSRF check, the hub and a database session.

Pages declare what they need with dependencies, as the API does:

    @router.get("/catalog")
    def catalog(request: Request, user: Annotated[WebUser, require_role("scientist")], s: SessionDep) -> Response:
        ...

``require_role`` answers 403 (a page saying so) to a logged-in user of another role, and sends a
visitor who is not logged in to the login page. Every POST form and every htmx POST carries the
session's CSRF token (``csrf_token`` form field or ``X-CSRF-Token`` header); ``CsrfDep`` refuses a
request without the right one (403).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request

from ..workspace.hub.core import Caller
from ..workspace.hub.deps import HubDep, SessionDep, get_hub, session  # NB: the API's own: app.state.hub

COOKIE = "wp_session"  # NB: Secure, HttpOnly, SameSite=Strict; holds a random token, its hash is stored
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class WebUser:
    """A logged-in person: who, with which role, for which organisation, in which session."""

    name: str
    role: str  # NB: a hub role (workspace/db.ROLES); "steward" at a datastation
    organisation: str | None
    user_id: int | None  # NB: the hub's users.id; None at a datastation
    csrf: str  # NB: this session's CSRF token, put into every form by the templates
    session_id: int = 0

    def caller(self) -> Caller:
        """The user as the hub's API functions see a caller (same role and membership checks)."""
        return Caller("user", self.name, self.role, self.organisation, self.user_id or 0)


class Accounts(Protocol):
    """Where an app's logins live (the hub's database, or a datastation's own store): see web/accounts.py."""

    def user_for(self, token: str) -> WebUser | None:
        """The user of a live session token (None when unknown, expired or not past its second factor)."""
        ...


class LoginRequired(Exception):
    """Raised by page dependencies when nobody is logged in; the app answers with a redirect to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def current_user(request: Request) -> WebUser:
    """Return the logged-in user of this request (LoginRequired otherwise)."""
    token = request.cookies.get(COOKIE, "")
    accounts: Accounts = request.app.state.accounts
    user = accounts.user_for(token) if token else None
    if user is None:
        raise LoginRequired(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
    request.state.user = user
    return user


UserDep = Annotated[WebUser, Depends(current_user)]


def require_role(*roles: str) -> Any:
    """Return a dependency giving the logged-in user if their role is one of roles (403 otherwise).

    The returned dependency's callable carries ``roles``, so tests can enumerate every page's roles.
    """

    def check(user: UserDep) -> WebUser:
        if user.role not in roles:
            raise HTTPException(403, "forbidden-role")
        return user

    check.roles = roles  # type: ignore[attr-defined]
    return Depends(check)


async def csrf_check(request: Request, user: UserDep) -> WebUser:
    """Refuse (403) a state-changing request without this session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        form = await request.form()
        v = form.get(CSRF_FIELD, "")
        sent = v if isinstance(v, str) else ""
    if not sent or not hmac.compare_digest(sent, user.csrf):
        raise HTTPException(403, "csrf")
    return user


CsrfDep = Annotated[WebUser, Depends(csrf_check)]

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "Accounts",
    "CsrfDep",
    "HubDep",
    "LoginRequired",
    "SessionDep",
    "UserDep",
    "WebUser",
    "csrf_check",
    "current_user",
    "get_hub",
    "require_role",
    "session",
]
