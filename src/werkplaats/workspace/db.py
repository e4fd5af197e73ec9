"""The hub's storage: SQLAlchemy models on SQLite (default) or PostgreSQL; migrations by Alembic.

The hub stores metadata, plans, approvals, job states, released aggregates and the
audit log. It never stores source data or shares of it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

ROLES = ("admin", "steward", "scientist", "requester", "privacy-officer")
NODE_KINDS = ("datastation", "engine")


def utcnow() -> dt.datetime:
    """Return the current time in UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """The declarative base of the hub's tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Organisation(Base):
    """A member organisation and its registered Ed25519 signing key."""

    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(32), default="")
    signing_key: Mapped[str] = mapped_column(String(128))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    left_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # NB: left


class RevokedKey(Base):
    """An organisation's signing key that was replaced: what it signs from then on is refused."""

    __tablename__ = "revoked_keys"
    __table_args__ = (UniqueConstraint("organisation_id", "public_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    public_key: Mapped[str] = mapped_column(String(128))
    revoked: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")


class RevokedCertificate(Base):
    """A node certificate the hub refuses, by SPKI SHA-256 fingerprint and/or serial, whatever token comes with it."""

    __tablename__ = "revoked_certificates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(64), default="")  # NB: pki.spki_sha256, hex
    serial: Mapped[str] = mapped_column(String(64), default="")  # NB: hex, lower case
    revoked: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")


class User(Base):
    """A person with a role (and, except admins and privacy officers, an organisation); a token hash."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), nullable=True)
    role: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Node(Base):
    """A datastation or engine, named as its certificate; a token hash and when it was last seen."""

    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # NB: the common name of its certificate
    kind: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), nullable=True)
    party: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str] = mapped_column(String(300), default="")
    mpc_address: Mapped[str] = mapped_column(String(300), default="")
    web_url: Mapped[str] = mapped_column(String(300), default="")  # NB: a datastation's steward pages (HTTPS)
    version: Mapped[str] = mapped_column(String(40), default="")  # NB: the werkplaats version it last reported
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Collaboration(Base):
    """A collaboration: a purpose, a DPIA annex, member organisations and datasets."""

    __tablename__ = "collaborations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    purpose: Mapped[str] = mapped_column(Text)
    dpia_annex: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Member(Base):
    """An organisation's membership of a collaboration."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("collaboration_id", "organisation_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))


class CollaborationDataset(Base):
    """A dataset a steward made part of a collaboration."""

    __tablename__ = "collaboration_datasets"
    __table_args__ = (UniqueConstraint("collaboration_id", "dataset"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"))
    dataset: Mapped[str] = mapped_column(String(200))


class Dataset(Base):
    """A catalog entry: the public metadata a datastation published (never data)."""

    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    table_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    update_frequency: Mapped[str] = mapped_column(String(32), default="")
    person_key: Mapped[str] = mapped_column(String(100), default="")
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    row_count: Mapped[int | None] = mapped_column(Integer, nullable=True)  # NB: rounded, to hide exact sizes
    completeness: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Request(Base):
    """A checked plan submitted in a collaboration, with its public facts."""

    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"))
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(Text)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan_hash: Mapped[str] = mapped_column(String(64))
    explain: Mapped[str] = mapped_column(Text)
    organisations: Mapped[list[Any]] = mapped_column(JSON)
    datasets: Mapped[list[Any]] = mapped_column(JSON)
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Approval(Base):
    """A steward's signed approval of a request (or of a template)."""

    __tablename__ = "approvals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(200))
    signed_by: Mapped[str] = mapped_column(String(100))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rejection(Base):
    """A steward's rejection of a request, with the reason."""

    __tablename__ = "rejections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(100))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """One run of a request: its state, each node's progress and the approvals it runs under."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    state: Mapped[str] = mapped_column(String(32))  # NB: a messages.JobState value
    reason: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approvals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    offered: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # NB: first handed out
    started: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    buckets: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # NB: a BucketPlan; None: unbucketed


class JobContribution(Base):
    """A datastation's signed contribution record for a job and, if it sent nothing after all, its signed withdrawal.

    One per job and organisation. A failed job gives its run back only when every organisation
    that recorded a contribution also withdrew it (`hub.approvals.runs_used`).
    """

    __tablename__ = "job_contributions"
    __table_args__ = (UniqueConstraint("job_id", "organisation"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    organisation: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(200))
    withdrawal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # NB: a signed NothingSent
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Result(Base):
    """A released, disclosure-controlled result of a job."""

    __tablename__ = "results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # NB: aggregates only, after disclosure control
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RegisteredTable(Base):
    """Rule 9's query register: a released table's cell definitions (compile/register.RegisterEntry), per collaboration.

    Public metadata only: the plan fragment that defines the cells, the released cells' keys, the
    rules applied; never members or values.
    """

    __tablename__ = "register_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    plan_hash: Mapped[str] = mapped_column(String(64))  # NB: the released plan's (as its result-release audit entry)
    universe: Mapped[str] = mapped_column(Text)  # NB: compile/register.universe: which rows the cells are made of
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)  # NB: RegisterEntry.to_dict()
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EncryptionKey(Base):
    """A datastation's published X25519 encryption key, signed by its organisation (bucket keys are sealed to it)."""

    __tablename__ = "encryption_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))  # NB: raw X25519, base64: public
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # NB: bucketkey.signed_encryption_key's record
    signature: Mapped[str] = mapped_column(String(200))
    published: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BucketKeySet(Base):
    """One version of a collaboration's bucket key as ciphertext: the creator's signed manifest and the envelopes.

    The hub cannot open an envelope (each is sealed to one member datastation's encryption key).
    """

    __tablename__ = "bucket_keys"
    __table_args__ = (UniqueConstraint("collaboration_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    creator: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)  # NB: bucketkey.key_set's manifest, signed
    signature: Mapped[str] = mapped_column(String(200))
    envelopes: Mapped[dict[str, Any]] = mapped_column(JSON)  # NB: organisation → its envelope (base64)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebAccountColumns:
    """The columns of a web login: argon2id password hash, TOTP secret, lockout state (hub and datastation alike)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # NB: argon2id, in its PHC string form
    totp_secret: Mapped[str] = mapped_column(String(64), default="")  # NB: base32; "" until enrolled
    totp_required: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)  # NB: a TOTP code is accepted once
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebSessionColumns:
    """The columns of a logged-in browser: the hash of its cookie's token, its CSRF token, when it expires."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("web_accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf: Mapped[str] = mapped_column(String(64))
    second_factor: Mapped[bool] = mapped_column(Boolean, default=False)  # NB: password and TOTP both passed
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class WebAccount(WebAccountColumns, Base):
    """A user's login to the web application (one per user at most).

    The user (role, organisation, API token) stays in ``users``. The hub's web accounts live here; a
    datastation keeps its stewards' accounts in its own store, with the same columns.
    """

    __tablename__ = "web_accounts"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)


class WebSession(WebSessionColumns, Base):
    """A logged-in browser at the hub."""

    __tablename__ = "web_sessions"


class Dashboard(Base):
    """A released result published by an analyst for the inzichtvragers: title, duiding, chart."""

    __tablename__ = "dashboards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"), index=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))  # NB: the job whose released result is shown
    title: Mapped[str] = mapped_column(String(200))
    interpretation: Mapped[str] = mapped_column(Text, default="")  # NB: the duiding
    chart: Mapped[str] = mapped_column(String(32))  # NB: choropleth-gemeente, choropleth-wijk, trend, bar, table
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # NB: which columns: value, key, time, flag
    published_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    withdrawn: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Question(Base):
    """A question an inzichtvrager asks the collaboration ("stel een vraag"), visible to its analysts."""

    __tablename__ = "questions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collaboration_id: Mapped[int] = mapped_column(ForeignKey("collaborations.id"), index=True)
    asked_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # NB: open, answered
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """One entry of the hub's hash-chained, signed audit log."""

    __tablename__ = "audit"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))
    node: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))


def migrate(engine: Engine) -> None:
    """Bring the database schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def sessions(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory of the hub's database."""
    return sessionmaker(engine, expire_on_commit=False)
