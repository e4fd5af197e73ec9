"""Web logins: argon2id password hashes, TOTP second factor, lockout, server-side sessions.

Security model: a browser holds only a random session token (cookie ``wp_session``); the store keeps
its SHA-256 hash, the session's CSRF token and its expiry (idle and absolute, from WebConfig). A
login passes the password (argon2id, RFC 9106 default parameters, rehashed when they change) and,
where it is required or enrolled, a TOTP code (30 s, 6 digits, one step either side, each step
accepted once). Between the two factors the browser holds a *pending* session that no page accepts;
the TOTP step replaces it by a new session (a new token at every login: no session fixation).
After ``max_failures`` failed passwords or codes an account locks for ``lockout_minutes``; while it
is locked nothing logs in. Every login, failure, lockout and logout is an audit entry (the hub's chain,
or the datastation's own log); no password, code or secret is ever logged.

``HubAccounts`` keeps accounts in the hub's database (``db.WebAccount``, ``db.WebSession``);
``StationAccounts`` in the datastation's own SQLite store (``WebConfig.accounts``), same columns: a
datastation never touches the hub's database.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, String, create_engine, delete, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from ..exceptions import WerkplaatsError
from ..workspace import db
from ..workspace.config import WebConfig
from ..workspace.hub.core import Hub, token_hash
from .deps import WebUser
from .public import N_

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # NB: argon2 hashes any length; this only bounds the work a request can cause
PENDING_MINUTES = 5  # NB: how long a password-checked browser may take to give its TOTP code
TOTP_REQUIRED_HUB = ("admin", "privacy-officer", "steward")  # NB: NEN 7510; stewards sign at their datastation
ISSUER = "werkplaats"
_PENDING = "pending:"  # NB: a TOTP secret shown at enrolment, not yet confirmed by a code

_hasher = PasswordHasher()  # NB: argon2id with RFC 9106's low-memory defaults (64 MiB, 3 passes, 4 lanes)
_hashing = threading.BoundedSemaphore(4)  # NB: at most 4 hashes at once (256 MiB): a login flood cannot exhaust memory


class AccountError(WerkplaatsError):
    """A password or account the store refuses; its message is an English message id shown to the user."""


def _aware(t: dt.datetime) -> dt.datetime:
    """A stored time as UTC-aware (SQLite gives naive datetimes back)."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def check_password(name: str, password: str) -> None:
    """Refuse (AccountError) a password too short, too long, or containing the account name."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(N_("The password must be at least 12 characters long."))
    if len(password) > MAX_PASSWORD:
        raise AccountError(N_("The password is too long."))
    if name and name.casefold() in password.casefold():
        raise AccountError(N_("The password must not contain the account name."))


def hash_password(password: str) -> str:
    """Return the argon2id hash (PHC string) of a password."""
    with _hashing:
        return _hasher.hash(password)


def new_totp_secret() -> str:
    """Return a fresh base32 TOTP secret (160 bits)."""
    return pyotp.random_base32(32)


def totp_uri(secret: str, name: str, issuer: str = ISSUER) -> str:
    """Return the otpauth:// URI an authenticator app reads."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)


def totp_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """Return the time step a code is valid for (one step either side), or None; steps up to last_step are spent."""
    code = code.strip().replace(" ", "")
    if not secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // totp.interval)
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def safe_next(url: str | None) -> str:
    """Return url when it is a path on this site, else "/": a login never redirects elsewhere."""
    if not url or not url.startswith("/") or url.startswith(("//", "/\\")):
        return "/"
    if any(c in url for c in "\\\r\n\t") or any(ord(c) < 32 for c in url):
        return "/"
    return url


@dataclass(frozen=True)
class LoginStep:
    """The outcome of one login step: which page comes next, and the session token when one was opened.

    ``state``: ``done`` (logged in; ``token`` is the session), ``totp`` (password right, the code is
    next; ``token`` is the pending session), ``enrol`` (as totp, and the account enrols first:
    ``secret`` and ``uri`` to show), ``failed`` (the same for an unknown name and a wrong password or
    code), ``locked``.
    """

    state: str
    token: str = ""
    secret: str = ""
    uri: str = ""


class _Accounts:
    """The login logic both stores share; subclasses say where accounts live and where the audit goes."""

    Account: Any
    WSession: Any

    def __init__(self, cfg: WebConfig) -> None:
        self.cfg = cfg

    # -- what a store provides ----------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[Session]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _find(self, s: Session, name: str) -> Any:
        """The account of a login name, or None."""
        raise NotImplementedError

    def _name(self, s: Session, account: Any) -> str:
        """The login name of an account."""
        raise NotImplementedError

    def _user(self, s: Session, account: Any, ws: Any) -> WebUser | None:
        """The WebUser of an account in a session (None when it may no longer log in)."""
        raise NotImplementedError

    def _audit(self, s: Session, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        """Record an audit entry (and commit s)."""
        raise NotImplementedError

    def totp_required(self, s: Session, account: Any) -> bool:
        """Whether the account must pass a TOTP code."""
        return bool(account.totp_required)

    def _may_login(self, s: Session, account: Any) -> bool:
        """Whether the account's user may log in at all (the same test as for a live session)."""
        return True

    # -- sessions -----------------------------------------------------------------------
    def open_session(self, s: Session, account: Any, *, second_factor: bool) -> str:
        """Start a session for an account; return its cookie token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = db.utcnow()
        s.execute(delete(self.WSession).where(self.WSession.expires <= now))  # NB: housekeeping: expired ones
        life = (
            dt.timedelta(hours=self.cfg.session_max_hours) if second_factor else dt.timedelta(minutes=PENDING_MINUTES)
        )
        s.add(
            self.WSession(
                account_id=account.id,
                token_hash=token_hash(token),
                csrf=secrets.token_urlsafe(32),
                second_factor=second_factor,
                created=now,
                last_seen=now,
                expires=now + life,
            )
        )
        s.commit()
        return token

    def _live(self, s: Session, token: str, *, second_factor: bool) -> Any:
        """The live session row of a token with that factor state (expired ones are deleted), or None."""
        if not token:
            return None
        now = db.utcnow()
        ws = s.scalars(select(self.WSession).where(self.WSession.token_hash == token_hash(token))).first()
        if ws is None or bool(ws.second_factor) != second_factor:
            return None
        idle = dt.timedelta(minutes=self.cfg.session_idle_minutes)
        if _aware(ws.expires) <= now or _aware(ws.last_seen) + idle <= now:
            s.delete(ws)
            s.commit()
            return None
        return ws

    def user_for(self, token: str) -> WebUser | None:
        """The user of a live session (None when unknown, idle too long, expired or before its second factor)."""
        with self._db() as s:
            ws = self._live(s, token, second_factor=True)
            if ws is None:
                return None
            acc = s.get(self.Account, ws.account_id)
            user = self._user(s, acc, ws) if acc is not None else None
            if user is None:
                return None
            now = db.utcnow()
            if (now - _aware(ws.last_seen)).total_seconds() > 30:  # NB: not a write on every request
                ws.last_seen = now
                s.commit()
            return user

    def pending_csrf(self, token: str) -> str | None:
        """The CSRF token of a pending (password-checked) session, or None when there is none."""
        with self._db() as s:
            ws = self._live(s, token, second_factor=False)
            return str(ws.csrf) if ws is not None else None

    def pending_enrolment(self, token: str) -> tuple[str, str] | None:
        """For a pending session whose account enrols now: its new secret and otpauth URI; else None."""
        with self._db() as s:
            ws = self._live(s, token, second_factor=False)
            acc = s.get(self.Account, ws.account_id) if ws is not None else None
            if acc is None or not acc.totp_secret.startswith(_PENDING):
                return None
            secret = acc.totp_secret.removeprefix(_PENDING)
            return secret, totp_uri(secret, self._name(s, acc))

    # -- the login flow -----------------------------------------------------------------
    def _locked(self, acc: Any) -> bool:
        return acc.locked_until is not None and _aware(acc.locked_until) > db.utcnow()

    def _fail(self, s: Session, acc: Any, name: str, reason: str) -> LoginStep:
        """Count a failure on an account; lock it at max_failures (audited)."""
        acc.failed_logins += 1
        self._audit(s, actor=name, action="web-login-failed", subject=f"web/{name}",
                    details={"name": name, "reason": reason, "failures": acc.failed_logins})  # fmt: skip
        if acc.failed_logins >= self.cfg.max_failures:
            acc.failed_logins = 0
            acc.locked_until = db.utcnow() + dt.timedelta(minutes=self.cfg.lockout_minutes)
            self._audit(s, actor=name, action="web-locked", subject=f"web/{name}",
                        details={"name": name, "minutes": self.cfg.lockout_minutes})  # fmt: skip
            return LoginStep("locked")
        return LoginStep("failed")

    def _succeed(self, s: Session, acc: Any, name: str, *, factors: str) -> LoginStep:
        """Reset the failure count, record the login, open a full session."""
        acc.failed_logins = 0
        acc.locked_until = None
        acc.last_login = db.utcnow()
        self._audit(
            s, actor=name, action="web-login", subject=f"web/{name}", details={"name": name, "factors": factors}
        )
        return LoginStep("done", self.open_session(s, acc, second_factor=True))

    def login(self, name: str, password: str) -> LoginStep:
        """Check a name and password: the next step (done, totp, enrol), or failed / locked."""
        name = name.strip()[:100]
        with self._db() as s:
            acc = self._find(s, name) if name else None
            if acc is not None and not self._may_login(s, acc):
                acc = None  # NB: a removed user, an organisation that left: as if unknown
            if acc is None:
                _verify(_dummy(), password[:MAX_PASSWORD])
                self._audit(s, actor=name or "-", action="web-login-failed", subject=f"web/{name}",
                            details={"name": name, "reason": "unknown name"})  # fmt: skip
                return LoginStep("failed")
            right = len(password) <= MAX_PASSWORD and _verify(acc.password_hash, password)
            if self._locked(acc):
                self._audit(s, actor=name, action="web-login-failed", subject=f"web/{name}",
                            details={"name": name, "reason": "locked"})  # fmt: skip
                return LoginStep("locked")
            if not right:
                return self._fail(s, acc, name, "password")
            if _hasher.check_needs_rehash(acc.password_hash):
                acc.password_hash = hash_password(password)
            s.commit()
            if not (self.totp_required(s, acc) or acc.totp_secret):
                return self._succeed(s, acc, name, factors="password")
            if not acc.totp_secret or acc.totp_secret.startswith(_PENDING):
                secret = new_totp_secret()  # NB: a fresh secret at every enrolment attempt
                acc.totp_secret = _PENDING + secret
                s.commit()
                return LoginStep(
                    "enrol", self.open_session(s, acc, second_factor=False), secret, totp_uri(secret, name)
                )
            return LoginStep("totp", self.open_session(s, acc, second_factor=False))

    def second_factor(self, pending: str, code: str) -> LoginStep:
        """Check the TOTP code of a pending session: a new full session, or failed / locked (the pending one ends)."""
        with self._db() as s:
            ws = self._live(s, pending, second_factor=False)
            acc = s.get(self.Account, ws.account_id) if ws is not None else None
            if ws is None or acc is None:
                return LoginStep("failed")
            name = self._name(s, acc)
            if self._locked(acc):
                s.delete(ws)
                self._audit(s, actor=name, action="web-login-failed", subject=f"web/{name}",
                            details={"name": name, "reason": "locked"})  # fmt: skip
                return LoginStep("locked")
            enrolling = acc.totp_secret.startswith(_PENDING)
            secret = acc.totp_secret.removeprefix(_PENDING)
            step = totp_step(secret, code, acc.last_totp_step)
            if step is None:
                out = self._fail(s, acc, name, "totp")
                if out.state == "locked":
                    s.delete(ws)
                    s.commit()
                return out
            acc.last_totp_step = step
            acc.totp_secret = secret
            s.delete(ws)
            if enrolling:
                self._audit(s, actor=name, action="web-totp-enrolled", subject=f"web/{name}", details={"name": name})
            return self._succeed(s, acc, name, factors="password+totp")

    def logout(self, token: str) -> None:
        """End a session: its row is deleted, so its cookie is dead even if it was copied."""
        with self._db() as s:
            ws = s.scalars(select(self.WSession).where(self.WSession.token_hash == token_hash(token))).first()
            if ws is None:
                return
            acc = s.get(self.Account, ws.account_id)
            name = self._name(s, acc) if acc is not None else "-"
            s.delete(ws)
            self._audit(s, actor=name, action="web-logout", subject=f"web/{name}", details={"name": name})

    # -- the operator's commands -------------------------------------------------------
    def unlock(self, name: str, *, operator: str = "operator") -> None:
        """Lift an account's lockout (AccountError when there is no such account)."""
        with self._db() as s:
            acc = self._find(s, name)
            if acc is None:
                raise AccountError(N_("No such account."))
            acc.failed_logins, acc.locked_until = 0, None
            self._audit(s, actor=operator, action="web-unlocked", subject=f"web/{name}", details={"name": name})

    def reset_totp(self, name: str, *, operator: str = "operator") -> None:
        """Forget an account's TOTP secret (a lost phone) and end its sessions: it enrols anew at its next login."""
        with self._db() as s:
            acc = self._find(s, name)
            if acc is None:
                raise AccountError(N_("No such account."))
            acc.totp_secret, acc.last_totp_step = "", 0  # NB: the old secret's codes mean nothing now
            s.execute(delete(self.WSession).where(self.WSession.account_id == acc.id))
            self._audit(s, actor=operator, action="web-totp-reset", subject=f"web/{name}", details={"name": name})

    # -- the account page ---------------------------------------------------------------
    def _account_of(self, s: Session, user: WebUser) -> Any:
        ws = s.get(self.WSession, user.session_id)
        acc = s.get(self.Account, ws.account_id) if ws is not None else None
        if acc is None:
            raise AccountError(N_("No such account."))
        return acc

    def change_password(self, user: WebUser, current: str, new: str) -> None:
        """Set a new password after checking the current one; every other session of the account ends."""
        with self._db() as s:
            acc = self._account_of(s, user)
            if not _verify(acc.password_hash, current[:MAX_PASSWORD]):
                raise AccountError(N_("The current password is not right."))
            check_password(user.name, new)
            acc.password_hash = hash_password(new)
            s.execute(
                delete(self.WSession).where(self.WSession.account_id == acc.id, self.WSession.id != user.session_id)
            )
            self._audit(s, actor=user.name, action="web-password-changed", subject=f"web/{user.name}",
                        details={"name": user.name})  # fmt: skip

    def totp_status(self, user: WebUser) -> tuple[bool, bool]:
        """Whether the user's account has an enrolled TOTP secret, and whether it is required."""
        with self._db() as s:
            acc = self._account_of(s, user)
            return bool(acc.totp_secret) and not acc.totp_secret.startswith(_PENDING), self.totp_required(s, acc)

    def begin_enrolment(self, user: WebUser) -> tuple[str, str]:
        """Start enrolling a TOTP secret from the account page; return the secret and its otpauth URI."""
        with self._db() as s:
            acc = self._account_of(s, user)
            if acc.totp_secret and not acc.totp_secret.startswith(_PENDING):
                raise AccountError(N_("A second factor is enrolled already."))
            secret = new_totp_secret()
            acc.totp_secret = _PENDING + secret
            s.commit()
            return secret, totp_uri(secret, user.name)

    def enrolment_pending(self, user: WebUser) -> tuple[str, str] | None:
        """The secret and URI of an enrolment the user started and has not confirmed, or None."""
        with self._db() as s:
            acc = self._account_of(s, user)
            if not acc.totp_secret.startswith(_PENDING):
                return None
            secret = acc.totp_secret.removeprefix(_PENDING)
            return secret, totp_uri(secret, user.name)

    def confirm_enrolment(self, user: WebUser, code: str) -> None:
        """Confirm an enrolment started on the account page with a code of the new secret."""
        with self._db() as s:
            acc = self._account_of(s, user)
            if not acc.totp_secret.startswith(_PENDING):
                raise AccountError(N_("Start the enrolment first."))
            secret = acc.totp_secret.removeprefix(_PENDING)
            step = totp_step(secret, code, acc.last_totp_step)
            if step is None:
                raise AccountError(N_("The code is not right. Try the next one."))
            acc.totp_secret, acc.last_totp_step = secret, step
            self._audit(s, actor=user.name, action="web-totp-enrolled", subject=f"web/{user.name}",
                        details={"name": user.name})  # fmt: skip


@functools.cache
def _dummy() -> str:
    """A hash to check an unknown name's password against: it costs as much as a wrong password."""
    return hash_password("not a password of anybody")


def _verify(hashed: str, password: str) -> bool:
    """Whether a password matches an argon2 hash (a malformed or placeholder hash matches nothing)."""
    try:
        with _hashing:
            return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class HubAccounts(_Accounts):
    """The hub's web accounts and sessions, in the hub's database; the audit goes into the hub's chain."""

    Account = db.WebAccount
    WSession = db.WebSession

    def __init__(self, hub: Hub, cfg: WebConfig) -> None:
        super().__init__(cfg)
        self.hub = hub

    @contextmanager
    def _db(self) -> Iterator[Session]:
        with self.hub.sessions() as s:
            yield s

    def _find(self, s: Session, name: str) -> Any:
        return s.scalars(
            select(db.WebAccount).join(db.User, db.User.id == db.WebAccount.user_id).where(db.User.name == name)
        ).first()

    def _name(self, s: Session, account: Any) -> str:
        u = s.get(db.User, account.user_id)
        return u.name if u is not None else "-"

    def _user(self, s: Session, account: Any, ws: Any) -> WebUser | None:
        u = s.get(db.User, account.user_id)
        if u is None:
            return None
        org = s.get(db.Organisation, u.organisation_id) if u.organisation_id else None
        if org is not None and org.left_at is not None:
            return None
        return WebUser(u.name, u.role, org.name if org else None, u.id, ws.csrf, ws.id)

    def _may_login(self, s: Session, account: Any) -> bool:
        return self._user(s, account, SimpleNamespace(csrf="", id=0)) is not None

    def _audit(self, s: Session, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        self.hub.log(s, actor=actor, action=action, subject=subject, details=details)

    def totp_required(self, s: Session, account: Any) -> bool:
        u = s.get(db.User, account.user_id)
        return bool(account.totp_required) or (u is not None and u.role in TOTP_REQUIRED_HUB)

    def create_account(self, s: Session, user: db.User, password: str) -> str:
        """Create the web account of a hub user; return its TOTP secret (shown once), "" when TOTP is not required.

        Examples
        --------
        >>> secret = hub_accounts.create_account(s, user, "a long passphrase")  # doctest: +SKIP
        """
        if s.scalars(select(db.WebAccount).where(db.WebAccount.user_id == user.id)).first() is not None:
            raise AccountError(N_("This user has a web account already."))
        check_password(user.name, password)
        required = user.role in TOTP_REQUIRED_HUB
        secret = new_totp_secret() if required else ""
        s.add(db.WebAccount(user_id=user.id, password_hash=hash_password(password), totp_secret=secret,
                            totp_required=required))  # fmt: skip
        s.commit()
        return secret


class _StationBase(DeclarativeBase):
    pass


class StationAccount(db.WebAccountColumns, _StationBase):
    """A steward's login at a datastation (the columns of db.WebAccount, with the name itself)."""

    __tablename__ = "web_accounts"
    name: Mapped[str] = mapped_column(String(100), unique=True)
    totp_required: Mapped[bool] = mapped_column(Boolean, default=True)  # NB: every steward


class StationSession(db.WebSessionColumns, _StationBase):
    """A steward's browser session at a datastation (the columns of db.WebSession)."""

    __tablename__ = "web_sessions"


def station_store(station: Any, cfg: WebConfig) -> Path:
    """Where a datastation keeps its stewards' accounts: [web] accounts, else web-accounts.sqlite in its state dir."""
    if cfg.accounts is not None:
        return cfg.accounts
    return Path(station.cfg.state_dir) / "web-accounts.sqlite"


class StationAccounts(_Accounts):
    """A datastation's stewards' accounts, in its own SQLite file; the audit goes into its own log.

    Every account is a steward of the datastation's organisation, and TOTP is required for all.
    """

    Account = StationAccount
    WSession = StationSession

    def __init__(self, station: Any, cfg: WebConfig) -> None:
        super().__init__(cfg)
        self.station = station
        path = station_store(station, cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{path}")

        @event.listens_for(self.engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA busy_timeout = 5000")
            cur.close()

        _StationBase.metadata.create_all(self.engine)
        path.chmod(0o600)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def organisation(self) -> str:
        return str(self.station.cfg.organisation)

    @contextmanager
    def _db(self) -> Iterator[Session]:
        with self.sessions() as s:
            yield s

    def _find(self, s: Session, name: str) -> Any:
        return s.scalars(select(StationAccount).where(StationAccount.name == name)).first()

    def _name(self, s: Session, account: Any) -> str:
        return str(account.name)

    def _user(self, s: Session, account: Any, ws: Any) -> WebUser | None:
        return WebUser(account.name, "steward", self.organisation, None, ws.csrf, ws.id)

    def _audit(self, s: Session, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        s.commit()
        self.station.log.append(actor=actor, action=action, subject=subject, details=details)

    def totp_required(self, s: Session, account: Any) -> bool:
        return True

    def create_account(self, name: str, password: str) -> str:
        """Create a steward's account; return its TOTP secret (shown once).

        Examples
        --------
        >>> secret = station_accounts.create_account("steward-ggd", "a long passphrase")  # doctest: +SKIP
        """
        name = name.strip()
        if not name or len(name) > 100:
            raise AccountError(N_("A name of 1 to 100 characters is needed."))
        check_password(name, password)
        with self._db() as s:
            if self._find(s, name) is not None:
                raise AccountError(N_("This name has a web account already."))
            secret = new_totp_secret()
            s.add(StationAccount(name=name, password_hash=hash_password(password), totp_secret=secret,
                                 totp_required=True))  # fmt: skip
            s.commit()
        return secret
