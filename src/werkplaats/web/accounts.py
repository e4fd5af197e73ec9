"""Web logins: argon2id password hashes, TOTP second factor, lockout, server-side sessions.

OWNER: helper "auth" — complete this (passwords, TOTP, lockout, the datastation's own store). What is
here already is the session part every page relies on: ``HubAccounts.user_for`` and ``open_session``.
``HubAccounts`` keeps accounts in the hub's database (``db.WebAccount``, ``db.WebSession``);
``StationAccounts`` in the datastation's own store.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..workspace import db
from ..workspace.config import WebConfig
from ..workspace.hub.core import Hub, token_hash
from .deps import WebUser


def _aware(t: dt.datetime) -> dt.datetime:
    """A stored time as UTC-aware (SQLite gives naive datetimes back)."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class HubAccounts:
    """The hub's web accounts and sessions, in the hub's database."""

    def __init__(self, hub: Hub, cfg: WebConfig) -> None:
        self.hub, self.cfg = hub, cfg

    def open_session(self, s: Session, account: db.WebAccount, *, second_factor: bool) -> str:
        """Start a session for an account; return its cookie token (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = db.utcnow()
        s.add(
            db.WebSession(
                account_id=account.id,
                token_hash=token_hash(token),
                csrf=secrets.token_urlsafe(32),
                second_factor=second_factor,
                created=now,
                last_seen=now,
                expires=now + dt.timedelta(hours=self.cfg.session_max_hours),
            )
        )
        s.commit()
        return token

    def user_for(self, token: str) -> WebUser | None:
        """The user of a live session (None when unknown, idle too long, expired or before its second factor)."""
        now = db.utcnow()
        with self.hub.sessions() as s:
            ws = s.scalars(select(db.WebSession).where(db.WebSession.token_hash == token_hash(token))).first()
            if ws is None or not ws.second_factor:
                return None
            idle = dt.timedelta(minutes=self.cfg.session_idle_minutes)
            if _aware(ws.expires) <= now or _aware(ws.last_seen) + idle <= now:
                s.delete(ws)
                s.commit()
                return None
            acc = s.get(db.WebAccount, ws.account_id)
            u = s.get(db.User, acc.user_id) if acc else None
            if u is None:
                return None
            org = s.get(db.Organisation, u.organisation_id) if u.organisation_id else None
            if org is not None and org.left_at is not None:
                return None
            if (now - _aware(ws.last_seen)).total_seconds() > 30:  # NB: not a write on every request
                ws.last_seen = now
                s.commit()
            return WebUser(u.name, u.role, org.name if org else None, u.id, ws.csrf, ws.id)


class StationAccounts:
    """A datastation's stewards' accounts (stub: OWNER auth helper)."""

    def __init__(self, station: Any, cfg: WebConfig) -> None:
        self.station, self.cfg = station, cfg

    def user_for(self, token: str) -> WebUser | None:
        return None
