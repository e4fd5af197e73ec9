"""The collaboration's bucket key: shared among its datastations only, through the hub as ciphertext.

Contract (issue 13). Bucketed jobs (`werkplaats.mpc.buckets`) assign rows to buckets by a
keyed hash of the person key. The key (32 random bytes per collaboration and version) is
created by one member organisation's datastation, encrypted to every member datastation's
published encryption key (X25519 + HKDF-SHA256 + AES-256-GCM, one envelope per organisation),
signed by the creating organisation's signing key and stored at the hub, which never sees it
in the clear; engines never see it at all. Each datastation fetches its envelope, checks the
signature against its pinned key of the creator, decrypts and keeps the key in its state
directory. Rotation creates a new version; a job names the version its owners use.

The job path (datastation.py) uses only this interface:

    keys = BucketKeys.for_station(station)           # or BucketKeys(state_dir): what is stored, no fetching
    version, secret = keys.current(collaboration)      # or None: no key yet
    secret = keys.get(collaboration, version)          # fetched from the hub when missing (for_station);
                                                       # raises BucketKeyError if it cannot be had

and the hub side (workspace/hub/bucketkeys.py) offers
``latest_bucket_key_version(session, collaboration) -> int | None`` to the job's creation.

Security model. Each datastation has an X25519 encryption key pair in its state directory
(``bucket-keys/encryption.key``, 0600), created at its first start; it publishes the public key
at the hub signed by its organisation's Ed25519 signing key. Whoever creates a key set checks
every recipient's published key against its own *pinned* signing key of that organisation
(datastation.toml ``[organisations]``), never the hub's copy, so a hub that substitutes its own
encryption key is caught before anything is encrypted. A key set is a manifest (collaboration,
version, creator, and per recipient its encryption key and the SHA-256 of its envelope) signed by
the creator, plus one envelope per recipient: ``ephemeral X25519 public (32) | nonce (12) |
AES-256-GCM ciphertext and tag (48)``, the AES key HKDF-SHA256 of the X25519 shared secret, the
associated data binding the envelope to collaboration, version, recipient and creator. A fetching
datastation checks the manifest's signature with its pinned key of the creator, that it names the
collaboration and version asked for, its own encryption key, and its envelope's hash, then
decrypts: a swapped, renumbered, replayed, truncated or garbled set is refused and nothing is
stored. The hub learns who holds which version, never the key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..exceptions import WerkplaatsError
from . import pki

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from .audit import FileLog
    from .http import Client

log = logging.getLogger("werkplaats.datastation")

ENCRYPTION_KEY_KIND = "werkplaats-encryption-key/v1"
KEY_SET_KIND = "werkplaats-bucket-key/v1"
ENVELOPE_AAD_KIND = "werkplaats-bucket-key-envelope/v1"
KEY_BYTES = 32
ENVELOPE_BYTES = 32 + 12 + KEY_BYTES + 16  # NB: ephemeral public key, nonce, ciphertext, GCM tag
_HKDF_INFO = b"werkplaats bucket key envelope v1"


class BucketKeyError(WerkplaatsError):
    """A bucket key is missing, cannot be decrypted, or its envelope's signature does not verify."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8), as every signed body in the workspace."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(data: bytes) -> str:
    """Return the hex SHA-256 of data."""
    return hashlib.sha256(data).hexdigest()


def _b64decode(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        msg = f"{what} is not base64 text"
        raise BucketKeyError(msg)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        msg = f"{what} is not valid base64"
        raise BucketKeyError(msg) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- the datastation's encryption key (X25519) ----------------------------------------------------


def new_encryption_key(path: str | Path) -> str:
    """Create an X25519 encryption key at path (0600, refusing to overwrite one); return its public key (base64)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        msg = f"{p} exists; refusing to overwrite an encryption key"
        raise BucketKeyError(msg) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return encryption_public_b64(key)


def load_encryption_key(path: str | Path) -> X25519PrivateKey:
    """Load an X25519 encryption key, with a clear error if it is missing or of another kind."""
    p = Path(path)
    if not p.is_file():
        msg = f"encryption key {str(p)!r} does not exist; `werkplaats datastation bucket-key publish` creates one"
        raise BucketKeyError(msg)
    key = serialization.load_pem_private_key(p.read_bytes(), None)
    if not isinstance(key, X25519PrivateKey):
        msg = f"{str(p)!r} is not an X25519 encryption key"
        raise BucketKeyError(msg)
    return key


def encryption_public_b64(key: X25519PrivateKey) -> str:
    """The raw X25519 public key, base64."""
    return _b64(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def signed_encryption_key(signing_key: ed25519.Ed25519PrivateKey, *, organisation: str, node: str,
                          public_key: str) -> dict[str, Any]:  # fmt: skip
    """Return the published form of a datastation's encryption key: a record signed by its organisation."""
    record = {"kind": ENCRYPTION_KEY_KIND, "organisation": organisation, "node": node, "public_key": public_key,
              "published": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    return {"record": record, "signature": pki.sign(signing_key, canonical(record))}


def check_encryption_key(doc: Any, organisation: str, signing_public_key: str) -> str:
    """Return the X25519 public key (base64) of a published encryption key after checking it; raise otherwise.

    signing_public_key: the organisation's signing key as the checker knows it (a datastation: its
    pin; the hub: its registered key).
    """
    record = doc.get("record") if isinstance(doc, dict) else None
    signature = doc.get("signature") if isinstance(doc, dict) else None
    if not isinstance(record, dict) or not isinstance(signature, str):
        msg = f"the published encryption key of {organisation} is malformed"
        raise BucketKeyError(msg)
    if record.get("kind") != ENCRYPTION_KEY_KIND or record.get("organisation") != organisation:
        msg = f"the published encryption key said to be {organisation}'s names {record.get('organisation')!r}"
        raise BucketKeyError(msg)
    if not pki.verify(signing_public_key, canonical(record), signature):
        msg = (
            f"the published encryption key of {organisation} is not signed by {organisation}'s signing key: "
            "refused (the hub may have replaced it)"
        )
        raise BucketKeyError(msg)
    raw = _b64decode(record.get("public_key"), f"the encryption key of {organisation}")
    if len(raw) != 32:
        msg = f"the encryption key of {organisation} is not an X25519 public key"
        raise BucketKeyError(msg)
    return str(record["public_key"])


def key_fingerprint(public_b64: str) -> str:
    """A short, public fingerprint of an encryption key (its SHA-256, 16 hex digits)."""
    return sha256_hex(public_b64.encode())[:16]


# -- envelopes ----------------------------------------------------------------------------------


def envelope_aad(collaboration: str, version: int, recipient: str, creator: str) -> bytes:
    """The associated data an envelope is bound to: collaboration, version, recipient and creator."""
    return canonical({"kind": ENVELOPE_AAD_KIND, "collaboration": collaboration, "version": version,
                      "recipient": recipient, "creator": creator})  # fmt: skip


def _aead_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_HKDF_INFO)
    return hkdf.derive(shared)


def seal(secret: bytes, recipient_public_b64: str, aad: bytes) -> bytes:
    """Encrypt secret to an X25519 public key (ephemeral X25519, HKDF-SHA256, AES-256-GCM with aad)."""
    recipient = base64.b64decode(recipient_public_b64)
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = _aead_key(eph.exchange(X25519PublicKey.from_public_bytes(recipient)), eph_pub, recipient)
    nonce = secrets.token_bytes(12)
    return eph_pub + nonce + AESGCM(key).encrypt(nonce, secret, aad)


def open_envelope(envelope: bytes, private_key: X25519PrivateKey, aad: bytes) -> bytes:
    """Decrypt an envelope sealed to this key with this associated data; raise BucketKeyError otherwise."""
    if len(envelope) != ENVELOPE_BYTES:
        msg = f"the envelope is {len(envelope)} bytes, not {ENVELOPE_BYTES}: truncated or garbled, refused"
        raise BucketKeyError(msg)
    eph_pub, nonce, ct = envelope[:32], envelope[32:44], envelope[44:]
    own = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        return AESGCM(_aead_key(shared, eph_pub, own)).decrypt(nonce, ct, aad)
    except (InvalidTag, ValueError):
        msg = "the envelope does not decrypt with this datastation's key and its binding: garbled or swapped, refused"
        raise BucketKeyError(msg) from None


def key_set(secret: bytes, *, collaboration: str, version: int, creator: str,
            recipients: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:  # fmt: skip
    """Seal secret to each recipient (organisation → X25519 public key); return the manifest and the envelopes.

    The creator signs the manifest (`sign_key_set`); the envelopes are base64.
    """
    envelopes = {org: seal(secret, pub, envelope_aad(collaboration, version, org, creator))
                 for org, pub in sorted(recipients.items())}  # fmt: skip
    manifest = {
        "kind": KEY_SET_KIND,
        "collaboration": collaboration,
        "version": version,
        "creator": creator,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "recipients": {
            org: {"public_key": recipients[org], "envelope_sha256": sha256_hex(env)} for org, env in envelopes.items()
        },
    }
    return manifest, {org: _b64(env) for org, env in envelopes.items()}


def check_manifest(manifest: Any, signature: Any, creator_key: str) -> None:
    """Refuse a key set's manifest that is malformed or not signed by its creator's key (as the checker knows it)."""
    ok = (
        isinstance(manifest, dict)
        and manifest.get("kind") == KEY_SET_KIND
        and isinstance(manifest.get("collaboration"), str)
        and isinstance(manifest.get("version"), int)
        and not isinstance(manifest.get("version"), bool)
        and isinstance(manifest.get("creator"), str)
        and isinstance(manifest.get("recipients"), dict)
        and all(isinstance(r, dict) and isinstance(r.get("public_key"), str)
                and isinstance(r.get("envelope_sha256"), str) for r in manifest["recipients"].values())
    )  # fmt: skip
    if not ok or not isinstance(signature, str):
        msg = "the bucket key set is malformed: refused"
        raise BucketKeyError(msg)
    if not pki.verify(creator_key, canonical(manifest), signature):
        msg = f"the bucket key set is not signed by its creator {manifest['creator']!r}: refused, nothing stored"
        raise BucketKeyError(msg)


def open_key_set(doc: Any, *, collaboration: str, version: int, organisation: str,
                 private_key: X25519PrivateKey, pins: dict[str, str]) -> tuple[bytes, dict[str, Any]]:  # fmt: skip
    """Check a fetched key set (manifest, signature, this organisation's envelope) and return (key, manifest).

    pins: organisation → its signing key as this datastation pinned it. Every check names what
    failed; none names or shows key material.
    """
    if not isinstance(doc, dict):
        msg = "the hub's answer is not a bucket key set: refused"
        raise BucketKeyError(msg)
    manifest, signature = doc.get("manifest"), doc.get("signature")
    creator = manifest.get("creator") if isinstance(manifest, dict) else None
    if not isinstance(creator, str) or creator not in pins:
        msg = (
            f"the bucket key set names creator {creator!r}, whose signing key this datastation has not pinned "
            "([organisations] in datastation.toml): refused"
        )
        raise BucketKeyError(msg)
    check_manifest(manifest, signature, pins[creator])
    assert isinstance(manifest, dict)
    if manifest["collaboration"] != collaboration or manifest["version"] != version:
        msg = (
            f"asked for version {version} of {collaboration!r}, the hub sent version {manifest['version']} of "
            f"{manifest['collaboration']!r} (a replay under another number): refused"
        )
        raise BucketKeyError(msg)
    if creator not in manifest["recipients"]:  # NB: the hub lets only a member with data create; it is a recipient
        msg = (
            f"the creator of version {version} of {collaboration!r}'s bucket key, {creator}, sealed no envelope "
            "to itself: only a member with data creates the key, and it is one of the recipients: refused"
        )
        raise BucketKeyError(msg)
    mine = manifest["recipients"].get(organisation)
    if mine is None:
        msg = f"version {version} of {collaboration!r}'s bucket key has no envelope for {organisation}"
        raise BucketKeyError(msg)
    own = encryption_public_b64(private_key)
    if mine["public_key"] != own:
        msg = (
            f"version {version} of {collaboration!r}'s bucket key was encrypted to another key than {organisation}'s "
            f"({key_fingerprint(mine['public_key'])}, not {key_fingerprint(own)}): refused"
        )
        raise BucketKeyError(msg)
    envelope = _b64decode(doc.get("envelope"), "the envelope")
    if sha256_hex(envelope) != mine["envelope_sha256"]:
        msg = "the envelope differs from the one the creator signed (swapped, truncated or garbled): refused"
        raise BucketKeyError(msg)
    secret = open_envelope(envelope, private_key, envelope_aad(collaboration, version, organisation, creator))
    if len(secret) != KEY_BYTES:
        msg = f"the bucket key is {len(secret)} bytes, not {KEY_BYTES}: refused"
        raise BucketKeyError(msg)
    return secret, manifest


# -- the datastation's store ------------------------------------------------------------------------


@dataclass
class Station:
    """What a datastation needs to publish, create and fetch bucket keys through the hub."""

    organisation: str
    node: str
    signing_key: ed25519.Ed25519PrivateKey
    pins: dict[str, str]  # NB: organisation → its signing key as this datastation's operator pinned it
    hub: Client
    log: FileLog | None = None


_SAFE = re.compile(r"[A-Za-z0-9._-]{1,100}")


class BucketKeys:
    """A datastation's bucket keys, per collaboration and version, kept in its state directory.

    Stored under ``state_dir/bucket-keys/`` (0700): one file per collaboration and version (0600)
    and the datastation's encryption key. With a station (`for_station`), a missing version is
    fetched from the hub, checked and stored; without, only what is stored is read.
    """

    def __init__(self, state_dir: Path, station: Station | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "bucket-keys"
        self.station = station

    @classmethod
    def for_station(cls, ds: Any) -> BucketKeys:
        """The bucket keys of a running `Datastation` (its state directory, keys, pins, hub client and log)."""
        pins = {**dict(getattr(ds.cfg, "organisations", {}) or {}), ds.cfg.organisation: ds.public_key}
        st = Station(ds.cfg.organisation, ds.cfg.name, ds.key, pins, ds.hub, ds.log)  # NB: its own key from its file
        return cls(ds.cfg.state_dir, st)

    @classmethod
    def from_config(cls, cfg: Any) -> BucketKeys:
        """The bucket keys of a datastation from its configuration (`DatastationConfig`), without starting it.

        For the operator's commands and `LocalWorkspace`: the same state directory, signing key,
        pins, hub identity (node token over its certificate) and own log as the running datastation.
        """
        from .audit import FileLog
        from .http import Client

        key = pki.load_signing_key(cfg.signing_key)
        pins = {**dict(cfg.organisations), cfg.organisation: pki.public_key_b64(key)}
        hub = Client(cfg.hub, token=cfg.token, tls=cfg.tls)
        node_log = FileLog(cfg.state_dir / "contributions.jsonl", cfg.organisation, key)
        return cls(cfg.state_dir, Station(cfg.organisation, cfg.name, key, pins, hub, node_log))

    def close(self) -> None:
        """Close the hub connection of a station built by `from_config`."""
        if self.station is not None:
            self.station.hub.close()

    # -- stored keys ---------------------------------------------------------------------------
    def _file(self, collaboration: str, version: int) -> Path:
        name = collaboration if _SAFE.fullmatch(collaboration) else "c-" + sha256_hex(collaboration.encode())[:24]
        return self.dir / f"{name}.v{version}.json"

    def _read(self, path: Path) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            secret = base64.b64decode(doc["key"], validate=True)
        except (OSError, ValueError, KeyError, TypeError, binascii.Error):
            msg = f"stored bucket key {path.name} is unreadable"
            raise BucketKeyError(msg) from None
        if len(secret) != KEY_BYTES:
            msg = f"stored bucket key {path.name} is not {KEY_BYTES} bytes"
            raise BucketKeyError(msg)
        return {**doc, "key": secret}

    def versions(self, collaboration: str) -> list[int]:
        """The versions of a collaboration's bucket key stored here, oldest first."""
        out = []
        if self.dir.is_dir():
            for p in self.dir.glob("*.v*.json"):
                try:
                    doc = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(doc, dict) and doc.get("collaboration") == collaboration:
                    out.append(int(doc["version"]))
        return sorted(out)

    def current(self, collaboration: str) -> tuple[int, bytes] | None:
        """Return the newest (version, key) this datastation holds for a collaboration, or None."""
        vs = self.versions(collaboration)
        if not vs:
            return None
        return vs[-1], self._read(self._file(collaboration, vs[-1]))["key"]

    def get(self, collaboration: str, version: int) -> bytes:
        """Return one version of a collaboration's bucket key; fetch it when missing (with a station).

        Raise BucketKeyError when it is not here and cannot be fetched, or what was fetched fails a check.
        """
        p = self._file(collaboration, version)
        if p.is_file():
            doc = self._read(p)
            if doc.get("collaboration") == collaboration and doc.get("version") == version:
                return bytes(doc["key"])
        if self.station is None:
            msg = f"no version {version} of collaboration {collaboration!r}'s bucket key at this datastation"
            raise BucketKeyError(msg)
        self.fetch(collaboration, version)
        return bytes(self._read(p)["key"])

    def store(self, collaboration: str, version: int, secret: bytes, *, creator: str, manifest_sha256: str) -> bool:
        """Keep a key (0600, directory 0700); return False when this very key was already kept.

        Refuses to replace a stored version with another key.
        """
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)
        p = self._file(collaboration, version)
        if p.exists():
            if self._read(p)["key"] == secret:
                return False
            msg = f"version {version} of {collaboration!r}'s bucket key is here already, with another key: refused"
            raise BucketKeyError(msg)
        doc = {"collaboration": collaboration, "version": version, "key": _b64(secret), "creator": creator,
               "manifest_sha256": manifest_sha256, "stored": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
        tmp = p.with_name(p.name + f".{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return True

    # -- the encryption key ------------------------------------------------------------------
    @property
    def encryption_key_path(self) -> Path:
        """Where this datastation's X25519 encryption key lives."""
        return self.dir / "encryption.key"

    def encryption_key(self) -> X25519PrivateKey:
        """This datastation's encryption key, created (0600) the first time."""
        if not self.encryption_key_path.exists():
            new_encryption_key(self.encryption_key_path)
            self.dir.chmod(0o700)
        return load_encryption_key(self.encryption_key_path)

    # -- through the hub -----------------------------------------------------------------------
    def _station(self) -> Station:
        if self.station is None:
            msg = "bucket keys without a datastation: nothing can be published or fetched"
            raise BucketKeyError(msg)
        return self.station

    def publish_encryption_key(self) -> str:
        """Publish this datastation's encryption key at the hub, signed by its organisation; return its fingerprint."""
        st = self._station()
        pub = encryption_public_b64(self.encryption_key())
        doc = signed_encryption_key(st.signing_key, organisation=st.organisation, node=st.node, public_key=pub)
        st.hub.put(f"/encryption-keys/{st.organisation}", doc)
        return key_fingerprint(pub)

    def create(self, collaboration: str) -> int:
        """Create the next version of a collaboration's bucket key: seal it to each member with data, sign, upload.

        Every recipient's encryption key is checked against this datastation's pinned signing key of
        that organisation first; the new key is kept here too. Return the version. ``rotate`` is this.
        """
        from urllib.parse import quote

        st = self._station()
        path = f"/collaborations/{quote(collaboration, safe='')}/bucket-keys"
        info = st.hub.get(path + "/recipients")
        missing = info.get("missing", [])
        if missing:
            msg = (
                f"members with data in {collaboration!r} have published no encryption key yet: {missing}; "
                "their datastations publish one when they start (or `werkplaats datastation bucket-key publish`)"
            )
            raise BucketKeyError(msg)
        recipients: dict[str, str] = {}
        for r in info.get("recipients", []):
            org = r.get("organisation") if isinstance(r, dict) else None
            if not isinstance(org, str) or org not in st.pins:
                msg = (
                    f"recipient {org!r} of {collaboration!r}'s bucket key: its signing key is not pinned here "
                    "([organisations] in datastation.toml), so its encryption key cannot be checked: refused"
                )
                raise BucketKeyError(msg)
            recipients[org] = check_encryption_key(r.get("key"), org, st.pins[org])
        if st.organisation not in recipients:
            msg = f"{st.organisation} has no data in {collaboration!r}: only a member with data creates its bucket key"
            raise BucketKeyError(msg)
        own = encryption_public_b64(self.encryption_key())
        if recipients[st.organisation] != own:
            msg = f"the hub holds another encryption key for {st.organisation} than this datastation's: publish again"
            raise BucketKeyError(msg)
        version = int(info["next_version"])
        secret = secrets.token_bytes(KEY_BYTES)
        manifest, envelopes = key_set(secret, collaboration=collaboration, version=version, creator=st.organisation,
                                      recipients=recipients)  # fmt: skip
        signature = pki.sign(st.signing_key, canonical(manifest))
        st.hub.post(path, {"manifest": manifest, "signature": signature, "envelopes": envelopes})
        digest = sha256_hex(canonical(manifest))
        self.store(collaboration, version, secret, creator=st.organisation, manifest_sha256=digest)
        del secret
        self._log("bucket-key-created", collaboration, version, st.organisation, digest, sorted(recipients))
        return version

    def fetch(self, collaboration: str, version: int | None = None) -> int:
        """Fetch one version (default: the newest) of a collaboration's bucket key, check, decrypt and keep it."""
        from urllib.parse import quote

        st = self._station()
        path = f"/collaborations/{quote(collaboration, safe='')}/bucket-keys"
        if version is None:
            listed = st.hub.get(path)
            if not listed:
                msg = (
                    f"collaboration {collaboration!r} has no bucket key yet; a member's datastation creates one with "
                    f"`werkplaats datastation bucket-key create --collaboration {collaboration}`"
                )
                raise BucketKeyError(msg)
            version = max(int(v["version"]) for v in listed)
        try:
            doc = st.hub.get(f"{path}/{version}")
        except WerkplaatsError as e:
            msg = f"version {version} of {collaboration!r}'s bucket key could not be fetched: {e}"
            raise BucketKeyError(msg) from None
        try:
            secret, manifest = open_key_set(doc, collaboration=collaboration, version=version,
                                            organisation=st.organisation, private_key=self.encryption_key(),
                                            pins=st.pins)  # fmt: skip
        except BucketKeyError as e:
            log.warning("bucket key of %s, version %s refused: %s", collaboration, version, e)
            raise
        digest = sha256_hex(canonical(manifest))
        if self.store(collaboration, version, secret, creator=manifest["creator"], manifest_sha256=digest):
            self._log("bucket-key-received", collaboration, version, manifest["creator"], digest, None)
        return version

    def _log(self, action: str, collaboration: str, version: int, creator: str, digest: str,
             recipients: list[str] | None) -> None:  # fmt: skip
        """Note a key created or received in this datastation's own log (never the key)."""
        st = self._station()
        details: dict[str, Any] = {"collaboration": collaboration, "version": version, "creator": creator,
                                   "manifest_sha256": digest}  # fmt: skip
        if recipients is not None:
            details["recipients"] = recipients
        log.info("%s: collaboration %s, version %s, creator %s", action, collaboration, version, creator)
        if st.log is not None:
            st.log.append(actor=st.node, action=action, subject=f"collaboration/{collaboration}", details=details)
