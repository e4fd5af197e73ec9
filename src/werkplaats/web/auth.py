"""Login (password, then TOTP), logout, the account page (password, TOTP enrolment); both apps.

The login form has its own CSRF token before any session exists (a random value in a cookie scoped
to /login and in the form: a page elsewhere cannot log a browser into another account). Between the
password and the code the browser holds a pending token (cookie ``wp_pending``, path /login) that no
page accepts. Error texts do not tell an unknown name from a wrong password.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from ..workspace.db import ROLES
from .accounts import AccountError, safe_next
from .deps import COOKIE, CsrfDep, WebUser, require_role
from .i18n import negotiate, translations
from .public import N_
from .render import render

router = APIRouter()

PENDING = "wp_pending"  # NB: password checked, code not yet: only /login/totp reads it
LOGIN_CSRF = "wp_login"  # NB: the login form's CSRF token before there is a session
AnyUser = Annotated[WebUser, require_role(*ROLES)]

WRONG = N_("Unknown name or wrong password.")
LOCKED = N_(
    "This account is locked for a while after too many failed attempts. Try again later, or ask the administrator."
)
WRONG_CODE = N_("The code is not right. Try the next code of your app.")


def _cookie(response: Response, name: str, value: str, path: str = "/") -> None:
    """Set a cookie as every werkplaats cookie is: Secure, HttpOnly, SameSite=Strict."""
    response.set_cookie(name, value, path=path, secure=True, httponly=True, samesite="strict")


def _drop(response: Response, name: str, path: str = "/") -> None:
    response.delete_cookie(name, path=path, secure=True, httponly=True, samesite="strict")


def _login_page(request: Request, nxt: str, error: str = "", status: int = 200) -> Response:
    """The name-and-password form, with a fresh pre-session CSRF token."""
    kept = request.cookies.get(LOGIN_CSRF, "")
    token = kept if len(kept) == 43 else secrets.token_urlsafe(32)  # NB: one token for all tabs of a browser
    r = render(request, "auth/login.html", {"csrf": token, "next": safe_next(nxt), "error": error}, status=status)
    _cookie(r, LOGIN_CSRF, token, "/login")
    return r


def _logged_in(request: Request, token: str, nxt: str) -> Response:
    """Send a browser that just logged in on to where it wanted to go (a local path only)."""
    r = RedirectResponse(safe_next(nxt), status_code=303)
    _cookie(r, COOKIE, token)
    _drop(r, PENDING, "/login")
    _drop(r, LOGIN_CSRF, "/login")
    return r


def _t(request: Request, msgid: str) -> str:
    return translations(negotiate(request)).gettext(msgid)


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    """The login page (a logged-in browser goes straight on)."""
    if request.app.state.accounts.user_for(request.cookies.get(COOKIE, "")) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    nxt: Annotated[str, Form(alias="next")] = "/",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Check name and password; on to the code, or logged in; the same answer for any wrong name or password."""
    kept = request.cookies.get(LOGIN_CSRF, "")
    if not csrf_token or not kept or not hmac.compare_digest(csrf_token, kept):
        raise HTTPException(403, "csrf")
    step = request.app.state.accounts.login(name, password)
    if step.state == "done":
        return _logged_in(request, step.token, nxt)
    if step.state in ("totp", "enrol"):
        r = RedirectResponse("/login/totp?next=" + _quote(safe_next(nxt)), status_code=303)
        _cookie(r, PENDING, step.token, "/login")
        _drop(r, LOGIN_CSRF, "/login")
        return r
    if step.state == "locked":
        return _login_page(request, nxt, _t(request, LOCKED), 401)
    return _login_page(request, nxt, _t(request, WRONG), 401)


def _quote(path: str) -> str:
    return quote(path, safe="")


def _totp_page(request: Request, pending: str, nxt: str, error: str = "", status: int = 200) -> Response:
    accounts = request.app.state.accounts
    csrf = accounts.pending_csrf(pending)
    if csrf is None:
        return RedirectResponse("/login?next=" + _quote(safe_next(nxt)), status_code=303)
    enrol = accounts.pending_enrolment(pending)
    ctx = {"csrf": csrf, "next": safe_next(nxt), "error": error, "secret": enrol[0] if enrol else "",
           "uri": enrol[1] if enrol else ""}  # fmt: skip
    return render(request, "auth/totp.html", ctx, status=status)


@router.get("/login/totp")
def totp_form(request: Request, next: str = "/") -> Response:
    """The second step: a code of the authenticator app (and, the first time, the secret to enrol)."""
    return _totp_page(request, request.cookies.get(PENDING, ""), next)


@router.post("/login/totp")
def totp(
    request: Request,
    code: Annotated[str, Form()] = "",
    nxt: Annotated[str, Form(alias="next")] = "/",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Check the code; a wrong one counts as a failed login."""
    accounts = request.app.state.accounts
    pending = request.cookies.get(PENDING, "")
    csrf = accounts.pending_csrf(pending)
    if csrf is None or not csrf_token or not hmac.compare_digest(csrf_token, csrf):
        raise HTTPException(403, "csrf")
    step = accounts.second_factor(pending, code)
    if step.state == "done":
        return _logged_in(request, step.token, nxt)
    if step.state == "locked":
        r = _login_page(request, nxt, _t(request, LOCKED), 401)
        _drop(r, PENDING, "/login")
        return r
    return _totp_page(request, pending, nxt, _t(request, WRONG_CODE), 401)


@router.post("/logout")
def logout(request: Request, user: AnyUser, _: CsrfDep) -> Response:
    """End the session (its row is deleted: a copied cookie is dead too)."""
    request.app.state.accounts.logout(request.cookies.get(COOKIE, ""))
    r = RedirectResponse("/login", status_code=303)
    _drop(r, COOKIE)
    return r


def _account_page(request: Request, user: WebUser, **ctx: Any) -> Response:
    enrolled, required = request.app.state.accounts.totp_status(user)
    status = int(ctx.pop("status", 200))
    base = {"enrolled": enrolled, "required": required, "message": "", "error": "", "secret": "", "uri": ""}
    return render(request, "auth/account.html", {**base, **ctx}, status=status)


@router.get("/account")
def account(request: Request, user: AnyUser) -> Response:
    """The user's own account: change the password, enrol a second factor."""
    return _account_page(request, user)


@router.post("/account/password")
def change_password(
    request: Request,
    user: AnyUser,
    _: CsrfDep,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    repeat: Annotated[str, Form()] = "",
) -> Response:
    """Set a new password (the current one first); the account's other sessions end."""
    if new != repeat:
        return _account_page(request, user, error=_t(request, N_("The two new passwords differ.")), status=400)
    try:
        request.app.state.accounts.change_password(user, current, new)
    except AccountError as e:
        return _account_page(request, user, error=_t(request, str(e)), status=400)
    return _account_page(request, user, message=_t(request, N_("Your password has been changed.")))


@router.post("/account/totp")
def begin_totp(request: Request, user: AnyUser, _: CsrfDep) -> Response:
    """Show a new TOTP secret to enrol (confirmed by a code)."""
    try:
        secret, uri = request.app.state.accounts.begin_enrolment(user)
    except AccountError as e:
        return _account_page(request, user, error=_t(request, str(e)), status=400)
    return _account_page(request, user, secret=secret, uri=uri)


@router.post("/account/totp/confirm")
def confirm_totp(request: Request, user: AnyUser, _: CsrfDep, code: Annotated[str, Form()] = "") -> Response:
    """Confirm the enrolment with a code of the new secret."""
    try:
        request.app.state.accounts.confirm_enrolment(user, code)
    except AccountError as e:
        secret, uri = request.app.state.accounts.enrolment_pending(user) or ("", "")
        return _account_page(request, user, error=_t(request, str(e)), secret=secret, uri=uri, status=400)
    return _account_page(request, user, message=_t(request, N_("Your second factor is enrolled.")))
