"""The hub API's request bodies (``…In``) and responses (``…Public`` and small replies), as Pydantic models.

The node endpoints take and return the typed messages of `werkplaats.workspace.messages`
as they are (`ProgressIn` and `ContributionIn` are those messages under their API names).
Timestamps are ISO 8601 strings, as the hub has always sent them.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...plan.limits import MAX_PURPOSE_CHARS
from ..messages import AuditHead, Contribution, JobState, ProgressReport

RequestStatus = Literal["pending-approval", "approved", "rejected"]
WEB_URL = r"^(https://[^\s<>\"']+)?$"  # NB: empty, or an https address (a link in the hub's pages)
MAX_APPROVAL_BYTES = 64_000  # NB: a signed approval body is a few hundred bytes; a template's vary list a few more

# -- requests ----------------------------------------------------------------------------------


class OrganisationIn(BaseModel):
    """A new organisation and its Ed25519 signing key (base64)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    title: str = ""
    kind: str = ""
    signing_key: str


class KeyRotationIn(BaseModel):
    """An organisation's new Ed25519 signing key (base64); the one it replaces is revoked."""

    signing_key: str = Field(pattern=r"^[A-Za-z0-9+/]{43}=$")
    reason: str = Field(default="", max_length=2000)


class KeyRotated(BaseModel):
    """A rotation done: the organisation, the revoked key and the new one (public keys)."""

    organisation: str
    revoked_key: str
    signing_key: str


class CertificateRevocationIn(BaseModel):
    """A node certificate to refuse: its SPKI SHA-256 fingerprint (`werkplaats pki fingerprint`) and/or serial (hex)."""

    fingerprint: str = Field(default="", pattern=r"^([0-9a-f]{64})?$")
    serial: str = Field(default="", pattern=r"^([0-9a-f]{1,40})?$")
    reason: str = Field(default="", max_length=2000)


class CertificateRevocation(BaseModel):
    """A revoked node certificate."""

    node: str
    fingerprint: str
    serial: str
    revoked: str
    reason: str


class UserIn(BaseModel):
    """A new user: a role, and an organisation for stewards, scientists and requesters."""

    name: str
    role: str
    organisation: str | None = None


class NodeIn(BaseModel):
    """A new node: a datastation of an organisation, or the engine of party 0, 1 or 2."""

    name: str
    kind: str
    organisation: str | None = None
    party: int | None = None
    url: str = ""
    mpc_address: str = ""
    web_url: str = Field("", max_length=300, pattern=WEB_URL)  # NB: a datastation's steward pages (HTTPS)


class NodeWebUrlIn(BaseModel):
    """The address of a datastation's steward pages, which the hub's pages link to ("" removes it)."""

    web_url: str = Field(max_length=300, pattern=WEB_URL)


class CollaborationIn(BaseModel):
    """A new collaboration with its purpose and member organisations."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    title: str = ""
    purpose: str = Field(min_length=1, max_length=MAX_PURPOSE_CHARS)
    dpia_annex: str = ""
    members: list[str]


class DatasetIn(BaseModel):
    """A catalog entry as a datastation publishes it: a Frictionless schema and public metadata."""

    title: str = ""
    description: str = ""
    table_schema: dict[str, Any]
    update_frequency: str = ""
    person_key: str = ""
    rules: dict[str, Any] = {}
    row_count: int | None = None
    completeness: dict[str, float] = {}


class RequestIn(BaseModel):
    """A plan submitted for a purpose in a collaboration."""

    collaboration: str
    purpose: str = Field(min_length=1, max_length=MAX_PURPOSE_CHARS)
    plan: dict[str, Any]  # NB: bounded in depth, nodes and bytes by plan.serde before its schema is checked


class ApprovalIn(BaseModel):
    """A steward's approval: its body and the organisation's signature over it."""

    body: dict[str, Any]
    signature: str = Field(max_length=200)

    @field_validator("body")
    @classmethod
    def _small(cls, body: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(body, default=str)) > MAX_APPROVAL_BYTES:
            msg = f"an approval body is at most {MAX_APPROVAL_BYTES} bytes of JSON"
            raise ValueError(msg)
        return body


class RejectionIn(BaseModel):
    """A steward's rejection, with the reason."""

    reason: str = Field(min_length=1, max_length=MAX_PURPOSE_CHARS)


class ProgressIn(ProgressReport):
    """A node's progress report (the ProgressReport message)."""


class ContributionIn(Contribution):
    """A datastation's signed contribution record (the Contribution message)."""


# -- responses ---------------------------------------------------------------------------------


class Health(BaseModel):
    """The hub is up; its name and the public key that verifies its audit entries."""

    ok: bool
    hub: str
    audit_key: str


class Me(BaseModel):
    """The caller as the hub knows them."""

    name: str
    kind: str
    role: str
    organisation: str | None


class Named(BaseModel):
    """The name of what was created or updated."""

    name: str


class Issued(BaseModel):
    """A new user or node and its bearer token, shown this once."""

    name: str
    token: str


class OrganisationPublic(BaseModel):
    """An organisation and its registered signing key (and when it left the workspace, if it did)."""

    name: str
    title: str
    kind: str
    signing_key: str
    left: str | None = None


class Departure(BaseModel):
    """An organisation taken out of a collaboration (or out of the workspace): what stopped with it."""

    organisation: str
    collaborations: list[str]
    datasets_removed: list[str]
    jobs_failed: list[int]


class CollaborationPublic(BaseModel):
    """A collaboration, its members and the datasets in it."""

    name: str
    title: str
    purpose: str
    dpia_annex: str
    members: list[str]
    datasets: list[str]


class CollaborationDataset(BaseModel):
    """A dataset added to a collaboration."""

    collaboration: str
    dataset: str


class DatasetPublic(BaseModel):
    """A catalog entry: schema and public metadata (row count rounded), never data."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    organisation: str
    title: str
    description: str
    table_schema: dict[str, Any] = Field(alias="schema")
    update_frequency: str
    person_key: str
    rules: dict[str, Any]
    row_count: int | None
    completeness: dict[str, float]
    updated: str


class ApprovalPublic(BaseModel):
    """An approval of a request: the signed body, its signature and the steward who sent it."""

    body: dict[str, Any]
    signature: str
    by: str


class RejectionPublic(BaseModel):
    """A rejection of a request and who made it."""

    reason: str
    by: str


class JobSummary(BaseModel):
    """A job of a request, as listed with the request."""

    id: int
    state: JobState
    reason: str
    progress: dict[str, Any]
    created: str


class RequestSummary(BaseModel):
    """A request without its plan: status, approvals, rejections, jobs."""

    id: int
    collaboration: str
    purpose: str
    requester: str
    plan_hash: str
    explain: str
    organisations: list[str]
    datasets: list[str]
    columns: dict[str, list[str]]
    status: RequestStatus
    pending: list[str]
    approvals: dict[str, ApprovalPublic]
    rejections: dict[str, RejectionPublic]
    jobs: list[JobSummary]
    created: str


class RequestPublic(RequestSummary):
    """A request with its checked plan."""

    plan: dict[str, Any]


class JobRef(BaseModel):
    """A job and its state."""

    job: int
    state: JobState


class JobPublic(BaseModel):
    """A job: its state (and why it failed), each node's progress, and when it ran."""

    id: int
    request: int
    state: JobState
    reason: str
    progress: dict[str, Any]
    created: str
    started: str | None
    finished: str | None


class ResultPublic(BaseModel):
    """A released result: disclosure-controlled cells, suppressed ones marked; or a model's or measure's summary.

    attrs: the result frame's attributes, released with it: for a model (compile/models) its fit
    statistics (n, df_resid, deviance, null_deviance, aic, iterations, converged, family) and, when
    the whole summary is withheld, the reason; a number that was withheld is null.
    float_columns: the columns of floating-point numbers (a withheld one is null), which the
    client reads back as floats (NaN) even when every row is withheld.
    """

    request: int
    job: int
    columns: list[str]
    rows: list[dict[str, Any]]
    min_group_size: int
    attrs: dict[str, Any] = Field(default_factory=dict)
    float_columns: list[str] = Field(default_factory=list)


class AuditEntryPublic(BaseModel):
    """One entry of the audit chain (see `werkplaats.workspace.audit`)."""

    seq: int
    ts: str
    node: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev: str
    hash: str
    signature: str


class AuditDump(BaseModel):
    """The audit chain and the public keys that verify it."""

    entries: list[AuditEntryPublic]
    keys: dict[str, str]


class AuditVerdict(BaseModel):
    """Whether the audit chain is intact, and every problem found."""

    ok: bool
    problems: list[str]


class Ack(BaseModel):
    """The hub took what was sent."""

    ok: bool


class ContributionReceipt(Ack):
    """The hub logged a contribution; its signed chain head now, for the datastation's own log."""

    audit_head: AuditHead
