"""The hub's state: its database, its signing key, its audit chain and the output shares in flight."""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, db, pki
from ..messages import AuditHead
from ..signing import ApprovalLimits
from ..sql import make_engine

SHARE_TIMEOUT_S = 600.0


def token_hash(token: str) -> str:
    """Return the hash under which the hub stores a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Return a fresh bearer token (shown once; the hub keeps only its hash)."""
    return "wp_" + secrets.token_urlsafe(32)


@dataclass
class Caller:
    """Who sent a request: a user (with a role) or a node (its kind as role)."""

    kind: str  # user | node
    name: str
    role: str  # a user's role, or the node kind
    organisation: str | None
    id: int


class Hub:
    """The hub's state: database, signing key, and the engines' output shares in flight."""

    def __init__(
        self,
        database: str,
        *,
        name: str,
        signing_key: Any,
        heartbeat_timeout_s: float = 30.0,
        share_timeout_s: float = SHARE_TIMEOUT_S,
        approval_limits: ApprovalLimits | None = None,
        disclosure: dict[str, Any] | None = None,
        jobs: dict[str, Any] | None = None,
    ) -> None:
        self.engine = make_engine(database)
        db.migrate(self.engine)
        self.sessions = db.sessions(self.engine)
        self.name = name
        self.key = signing_key
        self.public_key = pki.public_key_b64(signing_key)
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.share_timeout_s = share_timeout_s  # NB: a datastation that has not sent by then fails the job
        self.approval_limits = approval_limits or ApprovalLimits()  # NB: the most an approval it records may grant
        self.disclosure = disclosure or {}  # NB: hub.toml's [disclosure]: settings, and a table per collaboration
        self.jobs = jobs or {}  # NB: hub.toml's [jobs]: memory_budget_gb, buckets, and a table per collaboration
        self.result_shares: dict[int, dict[int, list[Any]]] = {}  # NB: job → party → output shares
        self.lock = threading.Lock()
        self.audit_lock = threading.Lock()

    def rules_settings(self, collaboration: str) -> dict[str, Any]:
        """Return a collaboration's disclosure settings: the workspace's, then its own (hub.toml [disclosure])."""
        common = {k: v for k, v in self.disclosure.items() if not isinstance(v, dict)}
        return {**common, **self.disclosure.get(collaboration, {})}

    # -- audit --------------------------------------------------------------------------
    def log(self, s: Session, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        """Append an audit entry and commit it with the session's other changes.

        NB: appends are serialised (read the last entry, chain, insert, commit), so concurrent
        requests never race for a sequence number. One hub process writes the chain.
        """
        with self.audit_lock:
            last = s.scalars(select(db.AuditEntry).order_by(db.AuditEntry.seq.desc()).limit(1)).first()
            prev = _entry_dict(last) if last else None
            e = audit.make_entry(
                prev, node=self.name, actor=actor, action=action, subject=subject, details=details, key=self.key
            )
            s.add(db.AuditEntry(**e))
            s.commit()

    def audit_entries(self, s: Session) -> list[dict[str, Any]]:
        """Return the whole audit chain, in order."""
        return [_entry_dict(e) for e in s.scalars(select(db.AuditEntry).order_by(db.AuditEntry.seq))]

    def audit_head(self, s: Session) -> AuditHead:
        """Return the chain's head (last seq and hash) signed by the hub: what nodes anchor in their own logs."""
        last = s.scalars(select(db.AuditEntry).order_by(db.AuditEntry.seq.desc()).limit(1)).first()
        return audit.sign_head(_entry_dict(last) if last else None, hub=self.name, key=self.key)

    def audit_keys(self, s: Session) -> dict[str, str]:
        """Return the public keys that verify the chain: the hub's and every organisation's."""
        keys = {self.name: self.public_key}
        keys |= {o.name: o.signing_key for o in s.scalars(select(db.Organisation))}
        return keys

    # -- output shares ------------------------------------------------------------------
    def collect_share(self, job: int, party: int, outs: list[Any]) -> list[list[Any]] | None:
        """Keep one engine's output shares; return all three (and forget them) once every party sent."""
        with self.lock:
            got = self.result_shares.setdefault(job, {})
            got[party] = outs
            if len(got) < 3:
                return None
            del self.result_shares[job]
            return [got[i] for i in range(3)]

    def drop_shares(self, job: int) -> None:
        """Forget the output shares of a job (it failed)."""
        with self.lock:
            self.result_shares.pop(job, None)

    # -- bootstrap ----------------------------------------------------------------------
    def create_admin(self, name: str) -> str:
        """Create the first admin (or another one); return their token."""
        token = new_token()
        with self.sessions.begin() as s:
            if s.scalars(select(db.User).where(db.User.name == name)).first():
                msg = f"user {name!r} exists"
                raise ValueError(msg)
            s.add(db.User(name=name, role="admin", token_hash=token_hash(token)))
        return token


def _entry_dict(e: db.AuditEntry) -> dict[str, Any]:
    """Return a stored audit entry as the chain's JSON."""
    return {k: getattr(e, k) for k in (*audit.FIELDS, "hash", "signature")}
