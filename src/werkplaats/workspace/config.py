"""Node configuration files (TOML). Relative paths are relative to the file's directory.

hub.toml::

    [hub]
    name = "hub"                          # the common name of the hub's certificate
    listen = "127.0.0.1:8400"
    database = "sqlite:///hub.db"         # or postgresql://user@host:5432/db
    signing_key = "keys/hub.key"          # Ed25519, signs the audit log
    heartbeat_timeout_s = 30              # a running job fails when an engine is silent this long
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
    [tls] ...
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
    [tls] ...
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import WerkplaatsError
from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE
from .pki import TLSFiles


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
        )


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
        return cls(
            str(_need(e, "name", where)),
            rank,
            str(_need(e, "hub", where)).rstrip("/"),
            _token(base, e, "token", where),
            host,
            int(port),
            str(_need(e, "mpc", where)),
            _path(base, e.get("state_dir", f"state/engine{rank}")),
            _tls(base, doc, str(path)),
        )
