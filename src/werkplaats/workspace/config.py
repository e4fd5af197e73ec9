"""Node configuration files (TOML). Relative paths are relative to the file's directory.

hub.toml::

    [hub]
    name = "hub"                          # the common name of the hub's certificate
    listen = "127.0.0.1:8400"
    database = "sqlite:///hub.db"         # or postgresql://user@host:5432/db
    signing_key = "keys/hub.key"          # Ed25519, signs the audit log
    heartbeat_timeout_s = 30              # engines heard from within this are online; silent longer: jobs fail
    share_timeout_s = 600                 # a datastation that has not sent this long after hand-out fails the job
    max_approval_days = 730               # an approval it records expires at most this far ahead
    max_approval_runs = 1000              # and grants at most this many runs
    [disclosure]                          # the disclosure rules' settings for every collaboration
    counts = "perturb"                    #   (docs/disclosure.md; they can only make the defaults stricter,
    [disclosure.covid-2025]               #   or choose counts = "round") and per collaboration, by name
    dominance_pct = 80.0
    [jobs]                                # how jobs run (issue 13: bucketed execution)
    memory_budget_gb = 2.0                #   the memory one MPC party may use for a job; above it, buckets
    buckets = 0                           #   0: as the budget asks; N (a power of two): at least N buckets
    max_share_mb = 512                    #   the engines' smallest max_share_mb: buckets keep messages below it
    [jobs.covid-2025]                     #   and per collaboration, by name
    memory_budget_gb = 4.0
    [tls]
    ca = "pki/ca.crt"
    cert = "pki/hub.crt"
    key = "pki/hub.key"

datastation.toml::

    [datastation]
    name = "ds-ggd"                       # certificate common name
    organisation = "ggd"
    hub = "https://127.0.0.1:8400"
    token = "..."                         # the node token (or token_file = "...")
    steward_token = "..."                 # used by `werkplaats datastation approve/reject/publish`
    signing_key = "keys/ggd.key"          # the organisation's Ed25519 key
    state_dir = "state/ggd"               # append-only contribution log
    hub_key_file = "keys/hub.pub"         # the hub's public audit key, pinned (or hub_key = "...")
    max_approval_days = 730               # a steward signs approvals expiring at most this far ahead
    max_approval_runs = 1000              # and granting at most this many runs
    [tls] ...
    [[engines]]                           # the three engines, pinned by this organisation's operator
    party = 0
    url = "https://127.0.0.1:8410"
    spki_sha256 = "..."                   # `werkplaats pki fingerprint engine0.crt`
    [organisations]                       # the other organisations' signing keys, pinned: they check the
    ziekenhuis = "..."                    #   collaboration's bucket key (docs/workspace.md, "Bucket key")
    [[datasets]]
    name = "ggd/meldingen"
    source = "region/ggd/meldingen.csv"   # .csv, .parquet, a DuckDB file, or postgresql://...
    schema = "region/ggd/meldingen.schema.json"
    table = ""                            # the table in a DuckDB file or PostgreSQL database
    title = "..."
    description = "..."
    update_frequency = "monthly"
    person_key = "bsn"
    min_group_size = 10

engine.toml::

    [engine]
    name = "engine0"
    party = 0
    hub = "https://127.0.0.1:8400"
    token = "..."
    listen = "127.0.0.1:8410"             # the share inbox (HTTPS, mutual TLS)
    mpc = "127.0.0.1:8420"                # brpc link to the two peers (TLS)
    state_dir = "state/engine0"
    hub_key_file = "keys/hub.pub"         # the hub's public audit key, pinned (or hub_key = "...")
    max_share_mb = 512                    # the largest share message (one bucket's, when bucketed) it takes
    memory_budget_gb = 2.0                # a job whose party would need more (per bucket) is refused
    share_timeout_s = 600                 # a job whose shares do not all arrive in time fails
    [tls] ...
    [link]                                # this engine's self-signed certificate for its MPC links
    cert = "engine0-link.crt"
    key = "engine0-link.key"
    [scaleout]                            # optional: a bucketed job's buckets on W Dask workers (default 1: off)
    workers = 2                           #   W, the same at the three engines
    scheduler = "local"                   #   "local": the engine starts its own loopback Dask cluster of W
                                          #   workers; or this engine's own scheduler, "tcp://127.0.0.1:8786"
    worker_mpc = ["127.0.0.1:8430", "127.0.0.1:8431"]  # worker w's MPC link address (TLS, the [link] files)
    [[peers]]                             # the two other engines, pinned (their link certificates)
    party = 1
    mpc = "127.0.0.1:8421"
    worker_mpc = ["127.0.0.1:8432", "127.0.0.1:8433"]  # with [scaleout]: its workers' link addresses, pinned
    cert = "../engine1/engine1-link.crt"
    spki_sha256 = "..."
    [organisations]                       # organisations' public signing keys, pinned
    ggd = "..."
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import WerkplaatsError
from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE
from .pki import TLSFiles
from .signing import ApprovalError, ApprovalLimits


class ConfigError(WerkplaatsError):
    """A configuration file is missing, unreadable or incomplete."""


def _load(path: str | Path, section: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        msg = f"configuration file {str(p)!r} does not exist"
        raise ConfigError(msg)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        msg = f"{p}: not valid TOML ({e})"
        raise ConfigError(msg) from None
    if section not in doc:
        msg = f"{p}: no [{section}] section"
        raise ConfigError(msg)
    return p.parent.resolve(), doc[section], doc


def _need(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d or d[key] in ("", None):
        msg = f"{where}: '{key}' is required"
        raise ConfigError(msg)
    return d[key]


def _path(base: Path, v: str) -> Path:
    p = Path(v)
    return p if p.is_absolute() else base / p


def _tls(base: Path, doc: dict[str, Any], where: str) -> TLSFiles:
    t = doc.get("tls")
    if not isinstance(t, dict):
        msg = f"{where}: a [tls] section with ca, cert and key is required (every link is mutual TLS)"
        raise ConfigError(msg)
    return TLSFiles(*(_path(base, _need(t, k, f"{where} [tls]")) for k in ("ca", "cert", "key")))


def _token(base: Path, d: dict[str, Any], key: str, where: str) -> str:
    if d.get(key):
        return str(d[key])
    f = d.get(key + "_file")
    if f:
        return _path(base, f).read_text().strip()
    msg = f"{where}: '{key}' (or '{key}_file') is required"
    raise ConfigError(msg)


def _approval_limits(d: dict[str, Any], where: str) -> ApprovalLimits:
    try:
        return ApprovalLimits.of(d, where)
    except ApprovalError as e:
        raise ConfigError(str(e)) from None


def _hub_key(base: Path, d: dict[str, Any], where: str) -> str:
    """Read the pinned hub audit key: 'hub_key' (base64) or 'hub_key_file'; '' when neither is set."""
    if not (d.get("hub_key") or d.get("hub_key_file")):
        return ""
    f = d.get("hub_key_file")
    if f and not _path(base, f).is_file():
        msg = f"{where}: hub_key_file {str(_path(base, f))!r} does not exist"
        raise ConfigError(msg)
    return _token(base, d, "hub_key", where)


@dataclass(frozen=True)
class WebConfig:
    """The [web] table: the human web application's own HTTPS listener (server certificate only).

    The hub serves the analysts', inzichtvragers', privacy officers' and admins' pages on it; a
    datastation serves its stewards' pages (review, approve, reject, its own log) on its own.
    """

    host: str
    port: int
    public_url: str  # NB: the address browsers use (links between hub and datastation pages)
    geo_dir: Path | None = None  # NB: hub: gemeenten.geojson and wijken.geojson, the region's own boundaries
    accounts: Path | None = None  # NB: datastation: its stewards' account store (SQLite file)
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    max_failures: int = 5  # NB: failed logins before the account locks
    lockout_minutes: int = 15


def _web(base: Path, doc: dict[str, Any], where: str) -> WebConfig | None:
    """Read the optional [web] table."""
    w = doc.get("web")
    if not w:
        return None
    host, _, port = str(_need(w, "listen", f"{where} [web]")).rpartition(":")
    if not host or not port.isdigit():
        msg = f"{where} [web]: listen must be host:port"
        raise ConfigError(msg)
    return WebConfig(
        host,
        int(port),
        str(w.get("public_url", f"https://{host}:{port}")).rstrip("/"),
        _path(base, w["geo_dir"]) if w.get("geo_dir") else None,
        _path(base, w["accounts"]) if w.get("accounts") else None,
        int(w.get("session_idle_minutes", 30)),
        int(w.get("session_max_hours", 12)),
        int(w.get("max_failures", 5)),
        int(w.get("lockout_minutes", 15)),
    )


@dataclass
class HubConfig:
    """The hub's configuration (hub.toml)."""

    name: str
    host: str
    port: int
    database: str
    signing_key: Path
    tls: TLSFiles
    heartbeat_timeout_s: float = 30.0
    share_timeout_s: float = 600.0
    approval_limits: ApprovalLimits = field(default_factory=ApprovalLimits)  # NB: the most an approval may grant
    disclosure: dict[str, Any] = field(default_factory=dict)  # NB: [disclosure]: settings; a table per collaboration
    web: WebConfig | None = None  # NB: [web]: the web application's listener
    jobs: dict[str, Any] = field(default_factory=dict)  # NB: [jobs]: budget, buckets; per collaboration

    @classmethod
    def load(cls, path: str | Path) -> HubConfig:
        """Read hub.toml; relative paths are relative to its directory."""
        base, h, doc = _load(path, "hub")
        host, _, port = str(_need(h, "listen", "[hub]")).rpartition(":")
        db = str(h.get("database", "sqlite:///hub.db"))
        if db.startswith("sqlite:///") and not db.startswith("sqlite:////"):
            db = "sqlite:///" + str(base / db.removeprefix("sqlite:///"))
        return cls(
            str(h.get("name", "hub")),
            host,
            int(port),
            db,
            _path(base, _need(h, "signing_key", "[hub]")),
            _tls(base, doc, str(path)),
            float(h.get("heartbeat_timeout_s", 30.0)),
            float(h.get("share_timeout_s", 600.0)),
            _approval_limits(h, f"{path} [hub]"),
            _disclosure(doc, f"{path} [disclosure]"),
            _web(base, doc, str(path)),
            _jobs(doc, f"{path} [jobs]"),
        )


def _disclosure(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """Read and check the hub's [disclosure] table (each collaboration's table on top of the common settings)."""
    from ..compile.rules import DisclosureRules
    from ..exceptions import PlanError

    table = doc.get("disclosure", {})
    if not isinstance(table, dict):
        msg = f"{where}: must be a table of settings (docs/disclosure.md)"
        raise ConfigError(msg)
    common = {k: v for k, v in table.items() if not isinstance(v, dict)}
    try:
        base = DisclosureRules.from_settings(common, where)
        for name, own in table.items():
            if isinstance(own, dict):
                DisclosureRules.from_settings(own, f"{where[:-1]}.{name}]", base)
    except PlanError as e:
        raise ConfigError(str(e)) from None
    return table


JOB_SETTINGS = {"memory_budget_gb": 2.0, "buckets": 0, "max_share_mb": 512}  # NB: [jobs] and their defaults


def _jobs(doc: dict[str, Any], where: str) -> dict[str, Any]:
    """Read and check the hub's [jobs] table: the memory budget per party and a bucket count, per collaboration too."""
    table = doc.get("jobs", {})
    if not isinstance(table, dict):
        msg = f"{where}: must be a table (memory_budget_gb, buckets)"
        raise ConfigError(msg)
    for name, v in table.items():
        if isinstance(v, dict):
            _jobs({"jobs": {k: x for k, x in v.items() if not isinstance(x, dict)}}, f"{where[:-1]}.{name}]")
            continue
        if name not in JOB_SETTINGS:
            msg = f"{where}: unknown setting {name!r} (known: {', '.join(JOB_SETTINGS)})"
            raise ConfigError(msg)
        if name == "memory_budget_gb":
            _budget(v, where)
        if name == "buckets" and (isinstance(v, bool) or not isinstance(v, int) or v < 0 or v & (v - 1)):
            msg = f"{where}: buckets must be 0 (as the memory budget asks) or a power of two"
            raise ConfigError(msg)
        if name == "max_share_mb" and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            msg = f"{where}: max_share_mb must be a positive number of megabytes"
            raise ConfigError(msg)
    return table


def job_settings(jobs: dict[str, Any], collaboration: str) -> tuple[float, int]:
    """Return a collaboration's (memory_budget_gb, buckets): the defaults, then [jobs], then [jobs.<collaboration>]."""
    common = {k: v for k, v in jobs.items() if not isinstance(v, dict)}
    own = jobs.get(collaboration, {})
    got = {**JOB_SETTINGS, **common, **(own if isinstance(own, dict) else {})}
    return float(got["memory_budget_gb"]), int(got["buckets"])


def job_setting(jobs: dict[str, Any], collaboration: str, name: str) -> Any:
    """Return one of a collaboration's [jobs] settings: the default, then [jobs], then [jobs.<collaboration>]."""
    own = jobs.get(collaboration, {})
    for table in (own if isinstance(own, dict) else {}, jobs, JOB_SETTINGS):
        if name in table and not isinstance(table[name], dict):
            return table[name]
    msg = f"no [jobs] setting {name!r}"
    raise KeyError(msg)


@dataclass
class DatasetSource:
    """One dataset a datastation holds: where its source is, its schema, its public metadata."""

    name: str
    source: str
    schema: Path
    table: str = ""
    title: str = ""
    description: str = ""
    update_frequency: str = ""
    person_key: str = "bsn"
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE


@dataclass(frozen=True)
class EnginePin:
    """One engine as a datastation's operator pinned it: party, inbox URL and public-key fingerprint."""

    party: int
    url: str
    spki_sha256: str


@dataclass(frozen=True)
class PeerPin:
    """A peer engine as an engine's operator pinned it: party, MPC address, link certificate and its fingerprint."""

    party: int
    mpc: str
    cert: Path
    spki_sha256: str
    worker_mpc: tuple[str, ...] = ()  # NB: scale-out: its Dask workers' MPC link addresses (same certificate)


@dataclass(frozen=True)
class ScaleoutConfig:
    """The [scaleout] table of engine.toml: a bucketed job's buckets on W workers of this engine's own Dask cluster.

    ``workers`` = 1 (the default) is off: the party runs the buckets itself. ``scheduler`` is this
    engine's own Dask scheduler, or ``"local"``: the engine starts a loopback cluster of W workers
    itself (`werkplaats.workspace.engine_scaleout`). ``worker_mpc`` are the W addresses on which
    worker w takes the MPC link of worker w of the two peers.
    """

    workers: int = 1
    scheduler: str = "local"
    worker_mpc: tuple[str, ...] = ()


def _fingerprint(v: Any, where: str) -> str:
    s = str(v).lower().removeprefix("sha256:").replace(":", "")
    if len(s) != 64 or any(ch not in "0123456789abcdef" for ch in s):
        msg = f"{where}: 'spki_sha256' must be 64 hex digits (`werkplaats pki fingerprint CERT` prints it)"
        raise ConfigError(msg)
    return s


def _parties(parties: list[int], want: set[int], where: str, what: str) -> None:
    if sorted(parties) != sorted(want):
        msg = f"{where}: {what} must pin parties {sorted(want)} once each, not {sorted(parties)}"
        raise ConfigError(msg)


def _engine_pins(doc: dict[str, Any], where: str) -> list[EnginePin]:
    """Read the [[engines]] pins of a datastation: exactly parties 0, 1 and 2."""
    pins = []
    for i, e in enumerate(doc.get("engines", [])):
        w = f"{where} [[engines]] #{i + 1}"
        pins.append(EnginePin(int(_need(e, "party", w)), str(_need(e, "url", w)).rstrip("/"),
                              _fingerprint(_need(e, "spki_sha256", w), w)))  # fmt: skip
    _parties([p.party for p in pins], {0, 1, 2}, where, "[[engines]]")
    return sorted(pins, key=lambda p: p.party)


@dataclass
class DatastationConfig:
    """A datastation's configuration (datastation.toml)."""

    name: str
    organisation: str
    hub: str
    token: str
    signing_key: Path
    state_dir: Path
    tls: TLSFiles
    datasets: list[DatasetSource] = field(default_factory=list)
    steward_token: str = ""
    engines: list[EnginePin] = field(default_factory=list)  # NB: pinned by this organisation's operator
    hub_key: str = ""  # NB: the hub's public audit key, pinned at setup: signed chain heads are checked with it
    approval_limits: ApprovalLimits = field(default_factory=ApprovalLimits)  # NB: the most a steward may sign
    web: WebConfig | None = None  # NB: [web]: the stewards' pages
    organisations: dict[str, str] = field(default_factory=dict)  # NB: [organisations]: pinned keys (bucket keys)

    @classmethod
    def load(cls, path: str | Path) -> DatastationConfig:
        """Read datastation.toml; relative paths are relative to its directory."""
        base, d, doc = _load(path, "datastation")
        where = f"{path} [datastation]"
        sets = []
        for i, s in enumerate(doc.get("datasets", [])):
            w = f"{path} [[datasets]] #{i + 1}"
            src = str(_need(s, "source", w))
            if not src.startswith("postgresql"):
                src = str(_path(base, src))
            sets.append(
                DatasetSource(
                    str(_need(s, "name", w)),
                    src,
                    _path(base, _need(s, "schema", w)),
                    str(s.get("table", "")),
                    str(s.get("title", "")),
                    str(s.get("description", "")),
                    str(s.get("update_frequency", "")),
                    str(s.get("person_key", "bsn")),
                    int(s.get("min_group_size", DEFAULT_MIN_GROUP_SIZE)),
                )
            )
        org = str(_need(d, "organisation", where))
        bad = [s.name for s in sets if s.name.split("/")[0] != org]
        if bad:
            msg = f"{where}: datasets {bad} do not belong to organisation {org!r} (names are organisation/table)"
            raise ConfigError(msg)
        steward = (
            _token(base, d, "steward_token", where) if d.get("steward_token") or d.get("steward_token_file") else ""
        )
        return cls(
            str(_need(d, "name", where)),
            org,
            str(_need(d, "hub", where)).rstrip("/"),
            _token(base, d, "token", where),
            _path(base, _need(d, "signing_key", where)),
            _path(base, d.get("state_dir", f"state/{org}")),
            _tls(base, doc, str(path)),
            sets,
            steward,
            _engine_pins(doc, str(path)),
            hub_key=_hub_key(base, d, where),
            approval_limits=_approval_limits(d, where),
            web=_web(base, doc, str(path)),
            organisations=_organisation_keys(doc, str(path)),
        )


@dataclass
class EngineConfig:
    """An engine's configuration (engine.toml)."""

    name: str
    party: int
    hub: str
    token: str
    host: str
    port: int
    mpc: str
    state_dir: Path
    tls: TLSFiles
    link_cert: Path = Path()  # NB: this engine's self-signed certificate for its MPC links ([link])
    link_key: Path = Path()
    peers: list[PeerPin] = field(default_factory=list)  # NB: the two other engines, pinned ([[peers]])
    organisations: dict[str, str] = field(default_factory=dict)  # NB: pinned signing keys ([organisations])
    max_share_bytes: int = 512 << 20
    share_timeout_s: float = 600.0
    hub_key: str = ""  # NB: the hub's public audit key, pinned at setup: signed chain heads are checked with it
    memory_budget_gb: float = 2.0  # NB: a job whose party would need more than this (per bucket) is refused
    scaleout: ScaleoutConfig = field(default_factory=ScaleoutConfig)  # NB: [scaleout]: W Dask workers (1: off)

    @classmethod
    def load(cls, path: str | Path, party: int | None = None) -> EngineConfig:
        """Read engine.toml (party, when given, must match the configured one)."""
        base, e, doc = _load(path, "engine")
        where = f"{path} [engine]"
        rank = int(e.get("party", -1)) if party is None else party
        if party is not None and "party" in e and int(e["party"]) != party:
            msg = f"{where}: configured as party {e['party']}, started as --party {party}"
            raise ConfigError(msg)
        if rank not in (0, 1, 2):
            msg = f"{where}: party must be 0, 1 or 2"
            raise ConfigError(msg)
        host, _, port = str(_need(e, "listen", where)).rpartition(":")
        mpc = str(_need(e, "mpc", where))
        peers = _peer_pins(base, doc, rank, str(path))
        scaleout = _scaleout(doc, f"{path} [scaleout]")
        _distinct_links(mpc, scaleout, peers, str(path))
        return cls(
            str(_need(e, "name", where)),
            rank,
            str(_need(e, "hub", where)).rstrip("/"),
            _token(base, e, "token", where),
            host,
            int(port),
            mpc,
            _path(base, e.get("state_dir", f"state/engine{rank}")),
            _tls(base, doc, str(path)),
            *_link(base, doc, str(path)),
            peers,
            _organisation_keys(doc, str(path)),
            int(float(e.get("max_share_mb", 512)) * (1 << 20)),
            float(e.get("share_timeout_s", 600.0)),
            hub_key=_hub_key(base, e, where),
            memory_budget_gb=_budget(e.get("memory_budget_gb", 2.0), where),
            scaleout=scaleout,
        )


def _budget(v: Any, where: str) -> float:
    """Return a memory budget in gigabytes, or raise ConfigError."""
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        msg = f"{where}: memory_budget_gb must be a positive number of gigabytes"
        raise ConfigError(msg)
    return float(v)


def _link(base: Path, doc: dict[str, Any], where: str) -> tuple[Path, Path]:
    """Read [link]: this engine's own link certificate and key."""
    t = doc.get("link")
    if not isinstance(t, dict):
        msg = f"{where}: a [link] section with this engine's own link certificate (cert, key) is required"
        raise ConfigError(msg)
    return _path(base, _need(t, "cert", f"{where} [link]")), _path(base, _need(t, "key", f"{where} [link]"))


def _peer_pins(base: Path, doc: dict[str, Any], rank: int, where: str) -> list[PeerPin]:
    """Read the [[peers]] pins of an engine: the two other parties."""
    pins = []
    for i, p in enumerate(doc.get("peers", [])):
        w = f"{where} [[peers]] #{i + 1}"
        pins.append(PeerPin(int(_need(p, "party", w)), str(_need(p, "mpc", w)), _path(base, _need(p, "cert", w)),
                            _fingerprint(_need(p, "spki_sha256", w), w),
                            _addresses(p.get("worker_mpc", []), f"{w} worker_mpc")))  # fmt: skip
    _parties([p.party for p in pins], {0, 1, 2} - {rank}, where, "[[peers]]")
    return sorted(pins, key=lambda p: p.party)


def _organisation_keys(doc: dict[str, Any], where: str) -> dict[str, str]:
    """Read [organisations]: organisation name = its public signing key (base64)."""
    t = doc.get("organisations", {})
    if not isinstance(t, dict) or not all(isinstance(v, str) and v for v in t.values()):
        msg = f"{where}: [organisations] maps each organisation to its public signing key (base64)"
        raise ConfigError(msg)
    return dict(t)


SCALEOUT_SETTINGS = ("workers", "scheduler", "worker_mpc")  # NB: [scaleout]


def _addresses(v: Any, where: str) -> tuple[str, ...]:
    """Return a list of host:port link addresses, or raise ConfigError."""
    if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
        msg = f'{where}: must be a list of "host:port" addresses'
        raise ConfigError(msg)
    for a in v:
        host, _, port = a.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            msg = f"{where}: {a!r} is not a host:port address"
            raise ConfigError(msg)
    return tuple(v)


def _scaleout(doc: dict[str, Any], where: str) -> ScaleoutConfig:
    """Read [scaleout]: W workers (1: off), this engine's own Dask scheduler, the workers' W link addresses."""
    t = doc.get("scaleout", {})
    if not isinstance(t, dict):
        msg = f"{where}: must be a table ({', '.join(SCALEOUT_SETTINGS)})"
        raise ConfigError(msg)
    unknown = sorted(set(t) - set(SCALEOUT_SETTINGS))
    if unknown:
        msg = f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(SCALEOUT_SETTINGS)})"
        raise ConfigError(msg)
    w = t.get("workers", 1)
    if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        msg = f"{where}: workers must be a positive whole number (1: the party runs the buckets itself)"
        raise ConfigError(msg)
    scheduler = t.get("scheduler", "local")
    if not isinstance(scheduler, str) or not scheduler:
        msg = f'{where}: scheduler must be "local" or the address of this engine\'s own Dask scheduler'
        raise ConfigError(msg)
    links = _addresses(t.get("worker_mpc", []), f"{where} worker_mpc")
    if w > 1 and len(links) != w:
        msg = f"{where}: worker_mpc must give one link address per worker ({w}), not {len(links)}"
        raise ConfigError(msg)
    if w == 1 and links:
        msg = f"{where}: worker_mpc is set but workers = 1 (scale-out off)"
        raise ConfigError(msg)
    return ScaleoutConfig(w, scheduler, links)


def _distinct_links(mpc: str, scaleout: ScaleoutConfig, peers: list[PeerPin], where: str) -> None:
    """Raise ConfigError when two MPC links (this engine's, its workers', the peers' and theirs) share an address."""
    seen: set[str] = set()
    for a in (mpc, *scaleout.worker_mpc, *(x for p in peers for x in (p.mpc, *p.worker_mpc))):
        if a in seen:
            msg = f"{where}: the MPC link address {a} is given twice (every party and worker links on its own)"
            raise ConfigError(msg)
        seen.add(a)
