"""The workspace protocol: every message one node sends another, typed and versioned.

Who sends what (HTTPS with mutual TLS throughout)::

    hub → datastation, engine   JobPayload       GET  /api/v1/node/jobs (a list)
    hub → engine                JobStatus        GET  /api/v1/node/jobs/{job}
    hub → datastation, engine   AuditHead        in JobPayload, JobStatus and the contribution's answer
    datastation, engine → hub   ProgressReport   POST /api/v1/node/jobs/{job}/progress
    datastation → hub           Contribution     POST /api/v1/node/jobs/{job}/contribution
                                 (a ContributionRecord signed by the organisation, before any share is sent)
    datastation → hub           NothingSent      POST /api/v1/node/jobs/{job}/nothing-sent
                                 (it withdraws its contribution: no share left; signed by the organisation)
    datastation → engine        ShareHeader      POST /jobs/{job}/shares      (+ the shares, framed;
                                 in a bucketed job one message per dataset and bucket)
    engine → hub                ResultShare      POST /api/v1/node/jobs/{job}/result-share (+ framed)

Framed messages (`pack`/`unpack`) are a `werkplaats.mpc.wire` frame: a JSON header and
binary blobs, the blobs being secret shares. The engine's own party process speaks
`werkplaats.mpc.process` (its `PartyHeader` and commands), not these.

Every message carries ``"v": 1``; `Message.from_dict` refuses any other version (and
a message without one) with a `MessageError` that names the message, so another
implementation can speak the protocol from these definitions (`json_schemas` gives
them as JSON Schema). The messages are Pydantic models because the hub's API returns
and accepts them as they are: one definition is both the serde and the OpenAPI schema.

Security model: every field is public metadata (plans, hashes, row counts rounded or
exact as the owner chose to send them, blob counts, signatures); shares travel only as
the blobs of a frame, never in a header.
"""

from __future__ import annotations

import io
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..exceptions import WerkplaatsError
from ..mpc import wire

VERSION: Final = 1
CONTRIBUTION_KIND: Final = "werkplaats-contribution/v1"
NOTHING_SENT_KIND: Final = "werkplaats-nothing-sent/v1"
AUDIT_HEAD_KIND: Final = "werkplaats-audit-head/v1"


class MessageError(WerkplaatsError, ValueError):
    """A message is malformed or of a version this node does not speak.

    NB: a ValueError too, so that Pydantic reports it as a validation error (a 422 at the hub).
    """


class JobState(StrEnum):
    """The state of a job at the hub (the strings in the database and in JSON)."""

    APPROVED = "approved"  # created: every organisation's approval covers it; nodes may take it
    RUNNING = "running"  # an engine has all shares and started its party
    SUCCEEDED = "succeeded"  # the hub reconstructed and released the result
    FAILED = "failed"  # some node failed it, or an engine fell silent; nothing released

    @property
    def ended(self) -> bool:
        """Whether the job is over (succeeded or failed)."""
        return self in (JobState.SUCCEEDED, JobState.FAILED)


class PartState(StrEnum):
    """The state of one node's part in a job, as it reports it to the hub."""

    VERIFYING = "verifying"  # engine: checking the approvals
    VERIFIED = "verified"  # datastation: its approval and sources check out
    SENT = "sent"  # datastation: its shares went to the engines
    RUNNING = "running"  # engine: all shares arrived; the party runs
    COMPILED = "compiled"  # engine: its party compiled and waits for the others to link
    DONE = "done"  # engine: its share of the output went to the hub
    FAILED = "failed"  # the node failed the job; the reason says why


class Message(BaseModel):
    """Base of every message: frozen, no unknown fields, ``v`` first; one serde (to_dict/from_dict)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    NAME: ClassVar[str] = "message"

    v: Literal[1] = VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the message as JSON-ready data."""
        return self.model_dump(mode="json")

    @model_validator(mode="before")
    @classmethod
    def _known_version(cls, data: Any) -> Any:
        """Refuse a version this node does not speak, wherever the message is read (also as a request body)."""
        if isinstance(data, dict) and "v" in data:
            _check_version(cls.NAME, data["v"])
        return data

    @classmethod
    def from_dict(cls, doc: Any) -> Self:
        """Read a message; raise MessageError saying what is wrong (never echoing values)."""
        if not isinstance(doc, dict):
            msg = f"{cls.NAME}: not a JSON object"
            raise MessageError(msg)
        if "v" not in doc:
            msg = f"{cls.NAME}: no version ('v'); this node speaks version {VERSION}"
            raise MessageError(msg)
        _check_version(cls.NAME, doc["v"])
        try:
            return cls.model_validate(doc)
        except ValidationError as e:
            raise MessageError(f"{cls.NAME}: {_problems(e)}") from None


def _check_version(name: str, v: Any) -> None:
    """Raise MessageError unless v is the version this node speaks."""
    if v != VERSION or isinstance(v, bool):
        msg = f"{name}: version {v!r} is not supported; this node speaks version {VERSION}"
        raise MessageError(msg)


def _problems(e: ValidationError) -> str:
    """The fields a validation error names and why, without the offending values."""
    return "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'message'}: {err['msg']}" for err in e.errors())


class AuditHead(Message):
    """The head of the hub's audit chain (its last entry's seq and hash), signed by the hub's key.

    Nodes keep the latest head they were given in their own log, so that entries cut from
    the end of the hub's chain are noticed (`werkplaats audit verify --anchors`).
    """

    NAME: ClassVar[str] = "audit head"

    kind: Literal["werkplaats-audit-head/v1"] = AUDIT_HEAD_KIND
    hub: str
    seq: int
    hash: str
    at: str  # NB: ISO 8601, when the hub signed it
    signature: str = ""

    def signed_part(self) -> dict[str, Any]:
        """The fields the hub signs: all but the signature."""
        d = self.to_dict()
        del d["signature"]
        return d


class SignedApproval(BaseModel):
    """An approval as a steward signed it (see `werkplaats.workspace.signing`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    body: dict[str, Any]
    signature: str


class EngineAddress(BaseModel):
    """Where an engine takes shares (``url``) and links with its peers (``mpc``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    party: int
    name: str
    url: str
    mpc: str


class BucketPlan(BaseModel):
    """How a job's rows are split (issue 13): ``count`` buckets by the collaboration's bucket key ``key_version``.

    The hub decides it at job creation from public metadata only (the plan, the catalog's rounded
    row counts, its memory budget); every owner splits its rows with the same key version, so that
    a person lands in the same bucket of every table (`werkplaats.mpc.buckets`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(ge=2)
    key_version: int = Field(ge=1)


class JobPayload(Message):
    """A job as the hub hands it to datastations and engines: the checked plan, approvals, keys, engines.

    Nodes trust none of it blindly: they recheck the plan hash and every approval against
    the organisations' keys (a datastation uses its own key, not the one listed here).
    """

    NAME: ClassVar[str] = "job payload"

    job: int
    request: int
    collaboration: str
    purpose: str
    plan: dict[str, Any]
    plan_hash: str
    datasets: list[str]
    columns: dict[str, list[str]]
    schemas: dict[str, dict[str, Any]]
    approvals: list[SignedApproval]
    organisation_keys: dict[str, str]
    engines: list[EngineAddress]
    state: JobState
    audit_head: AuditHead | None = None  # NB: the hub's signed chain head when it handed out the job
    rules: dict[str, Any] = {}  # NB: the collaboration's disclosure settings (workspace.jobs.job_rules applies them)
    # NB: rule 9: the collaboration's released tables of the same rows (compile/register.RegisterEntry.to_dict)
    registered: list[dict[str, Any]] = []
    buckets: BucketPlan | None = None  # NB: None: one program over whole tables (unbucketed, as before issue 13)
    row_counts: dict[str, int] = {}  # NB: the catalog's rounded row counts (public): engines check their budgets early

    def organisations(self) -> list[str]:
        """The organisations whose data the job reads, sorted."""
        return sorted({d.split("/")[0] for d in self.datasets})


class JobStatus(Message):
    """A job's state and each node's part in it, as an engine polls it during a run."""

    NAME: ClassVar[str] = "job status"

    job: int
    state: JobState
    reason: str
    progress: dict[str, str | None]
    audit_head: AuditHead | None = None  # NB: the hub's signed chain head now


class ProgressReport(Message):
    """A node's report on its part of a job; ``detail`` holds public figures (timings, sizes)."""

    NAME: ClassVar[str] = "progress report"

    state: PartState
    reason: str = ""
    detail: dict[str, Any] = {}


class ContributionRecord(Message):
    """What a datastation contributed to a job: the record its organisation signs and logs."""

    NAME: ClassVar[str] = "contribution record"

    kind: Literal["werkplaats-contribution/v1"] = CONTRIBUTION_KIND
    organisation: str
    job: int
    request: int
    plan_hash: str
    approval: str
    datasets: list[str]
    columns: dict[str, list[str]]
    rows: dict[str, int]  # NB: rounded, as in the catalog
    engines: list[str]
    at: str  # NB: ISO 8601; a string, so that the signed bytes are exactly what was sent


class Contribution(Message):
    """A contribution record with the organisation's signature over its canonical JSON."""

    NAME: ClassVar[str] = "contribution"

    record: ContributionRecord
    signature: str


class NothingSentRecord(Message):
    """A datastation's statement that it sent no share of a job after all (it withdraws its contribution)."""

    NAME: ClassVar[str] = "nothing-sent record"

    kind: Literal["werkplaats-nothing-sent/v1"] = NOTHING_SENT_KIND
    organisation: str
    job: int
    request: int
    approval: str
    reason: str
    at: str  # NB: ISO 8601


class NothingSent(Message):
    """A nothing-sent record with the organisation's signature over its canonical JSON."""

    NAME: ClassVar[str] = "nothing sent"

    record: NothingSentRecord
    signature: str


class ShareHeader(Message):
    """The header of one dataset's shares for one engine; signed by the owning organisation.

    ``share_blobs`` is the blob count of each share (slot) that follows; ``digest`` the
    SHA-256 of all blobs. The signature covers every other field (`signed_part`).
    In a bucketed job (`JobPayload.buckets`) one message carries one bucket: ``bucket`` is its
    index, ``buckets`` the job's count, ``rows`` the dataset's public padded bucket size and
    ``key_version`` the version of the collaboration's bucket key that split the rows: every owner's
    must be the job's, or a person's rows would sit in different buckets of two tables.
    """

    NAME: ClassVar[str] = "share header"

    job: int
    dataset: str
    organisation: str
    rows: int
    share_blobs: list[int]
    digest: str
    plan_hash: str
    schema_sha256: str  # NB: of the dataset's schema as the job gives it (its rules and ranges): engines compare
    rules_sha256: str  # NB: of the job's disclosure settings as the datastation saw them: engines compare
    bucket: int | None = Field(default=None, ge=0)  # NB: None: the whole table (an unbucketed job)
    buckets: int = Field(default=0, ge=0)  # NB: the job's bucket count; 0 when unbucketed
    # NB: bucketed: the version of the bucket key the owner split its rows with (engines compare; None when unbucketed)
    key_version: int | None = Field(default=None, ge=1)
    signature: str = ""

    def signed_part(self) -> dict[str, Any]:
        """The fields the organisation signs: all but the signature."""
        d = self.to_dict()
        del d["signature"]
        return d


class ResultShare(Message):
    """The header of an engine's share of a job's output; ``share_blobs`` as in ShareHeader."""

    NAME: ClassVar[str] = "result share"

    share_blobs: list[int]


MESSAGES: tuple[type[Message], ...] = (
    AuditHead,
    JobPayload,
    JobStatus,
    ProgressReport,
    ContributionRecord,
    Contribution,
    NothingSentRecord,
    NothingSent,
    ShareHeader,
    ResultShare,
)


def pack(message: ShareHeader | ResultShare, blobs: list[bytes]) -> bytes:
    """Frame a header and its blobs (a `werkplaats.mpc.wire` message) as a request body."""
    buf = io.BytesIO()
    wire.send(buf, message.to_dict(), blobs)
    return buf.getvalue()


F = TypeVar("F", ShareHeader, ResultShare)


def unpack(kind: type[F], data: bytes) -> tuple[F, list[bytes]]:
    """Read a framed message of the given kind; raise MessageError when it is not one."""
    try:
        header, blobs = wire.recv(io.BytesIO(data))
    except (wire.WireClosed, ValueError, KeyError, TypeError):
        msg = f"{kind.NAME}: not a framed message"
        raise MessageError(msg) from None
    m = kind.from_dict(header)
    if sum(m.share_blobs) != len(blobs):
        msg = f"{kind.NAME}: {len(blobs)} blobs do not match the counts of {len(m.share_blobs)} shares"
        raise MessageError(msg)
    return m, blobs


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every message, by class name (the protocol as another implementation reads it)."""
    return {m.__name__: m.model_json_schema() for m in MESSAGES}
