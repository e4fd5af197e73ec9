"""The hub's part in bucket keys: it keeps encryption keys and sealed key sets, and never sees a key.

Datastations publish their X25519 encryption keys here (signed by their organisation); a member
datastation uploads a new version of a collaboration's bucket key as a signed manifest and one
envelope per member organisation with data in the collaboration (`werkplaats.workspace.bucketkey`);
each member datastation fetches the manifest and its own envelope. The hub checks what it can
(signatures against its registered keys, the version sequence, the recipients, the envelopes'
hashes and sizes) so that a broken set is refused at once, but the datastations never rely on
those checks: they verify against their own pins. Engines have no part in this (403).

The job's creation asks `latest_bucket_key_version`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import db
from ..bucketkey import (
    ENVELOPE_BYTES,
    BucketKeyError,
    canonical,
    check_encryption_key,
    check_manifest,
    key_fingerprint,
    sha256_hex,
)
from .core import Caller, Hub
from .deps import members, organisation


def latest_bucket_key_version(session: Session, collaboration: str) -> int | None:
    """The newest version of a collaboration's bucket key at the hub, or None when it has none."""
    q = (
        select(func.max(db.BucketKeySet.version))
        .join(db.Collaboration, db.Collaboration.id == db.BucketKeySet.collaboration_id)
        .where(db.Collaboration.name == collaboration)
    )
    v = session.scalar(q)
    return int(v) if v is not None else None


def bucket_key_recipients(session: Session, collaboration: str, version: int) -> list[str]:
    """The organisations a version of a collaboration's bucket key was sealed to (empty: no such version)."""
    row = _key_set(session, collaboration, version)
    return sorted(row.manifest["recipients"]) if row is not None else []


def _key_set(s: Session, collaboration: str, version: int) -> db.BucketKeySet | None:
    q = (
        select(db.BucketKeySet)
        .join(db.Collaboration, db.Collaboration.id == db.BucketKeySet.collaboration_id)
        .where(db.Collaboration.name == collaboration, db.BucketKeySet.version == version)
    )
    return s.scalars(q).first()


def with_data(s: Session, collab: db.Collaboration) -> list[str]:
    """The current members of a collaboration that have at least one dataset in it: who receives its bucket key."""
    q = select(db.CollaborationDataset.dataset).where(db.CollaborationDataset.collaboration_id == collab.id)
    owners = {d.split("/", 1)[0] for d in s.scalars(q)}
    out = []
    for name in sorted(owners & set(members(s, collab))):
        o = s.scalars(select(db.Organisation).where(db.Organisation.name == name)).first()
        if o is not None and o.left_at is None:
            out.append(name)
    return out


def require_member_station(s: Session, c: Caller, collab: db.Collaboration) -> None:
    """Refuse (403) anyone but a datastation of a member organisation."""
    if c.kind != "node" or c.role != "datastation":
        raise HTTPException(403, f"{c.name} is no datastation: only member datastations handle bucket keys")
    if c.organisation is None or c.organisation not in members(s, collab):
        raise HTTPException(403, f"{c.name}'s organisation is not a member of collaboration {collab.name!r}")


# -- encryption keys ------------------------------------------------------------------------------


def publish_encryption_key(s: Session, hub: Hub, c: Caller, org: str, doc: dict[str, Any]) -> str:
    """Keep an organisation's encryption key, published by its datastation and signed by it; return its fingerprint."""
    if c.role != "datastation" or c.organisation != org:
        raise HTTPException(403, f"only {org}'s datastation publishes {org}'s encryption key")
    o = organisation(s, org)
    try:
        public = check_encryption_key(doc, org, o.signing_key)
    except BucketKeyError as e:
        raise HTTPException(422, str(e)) from None
    row = s.scalars(select(db.EncryptionKey).where(db.EncryptionKey.organisation_id == o.id)).first()
    if row is not None and row.public_key == public and _still_signed(row, org, o.signing_key):
        return key_fingerprint(public)  # NB: the same key, republished at each start: nothing new to keep or audit
    if row is None:
        row = db.EncryptionKey(organisation_id=o.id)
        s.add(row)
    row.public_key, row.record, row.signature, row.published = public, doc["record"], doc["signature"], db.utcnow()
    s.flush()
    hub.log(s, actor=c.name, action="encryption-key-published", subject=f"organisation/{org}",
            details={"organisation": org, "node": c.name, "fingerprint": key_fingerprint(public)})  # fmt: skip
    s.commit()
    return key_fingerprint(public)


def _still_signed(row: db.EncryptionKey, org: str, signing_key: str) -> bool:
    """Whether a kept encryption key's record still verifies with the organisation's registered signing key."""
    try:
        check_encryption_key({"record": row.record, "signature": row.signature}, org, signing_key)
    except BucketKeyError:
        return False  # NB: e.g. the organisation's signing key was rotated since: keep the newly signed record
    return True


def recipients(s: Session, collab: db.Collaboration) -> dict[str, Any]:
    """The members with data in a collaboration, each with its signed encryption key; who has none yet; next version."""
    out, missing = [], []
    for org in with_data(s, collab):
        o = organisation(s, org)
        row = s.scalars(select(db.EncryptionKey).where(db.EncryptionKey.organisation_id == o.id)).first()
        if row is None:
            missing.append(org)
        else:
            out.append({"organisation": org, "key": {"record": row.record, "signature": row.signature}})
    latest = latest_bucket_key_version(s, collab.name) or 0
    return {"collaboration": collab.name, "next_version": latest + 1, "recipients": out, "missing": missing}


# -- key sets -----------------------------------------------------------------------------------


def create_key_set(s: Session, hub: Hub, c: Caller, collab: db.Collaboration, body: dict[str, Any]) -> int:
    """Keep a new version of a collaboration's bucket key (sealed), after the checks the hub can make; audit it."""
    require_member_station(s, c, collab)
    assert c.organisation is not None  # NB: a member datastation
    manifest, signature, envelopes = body.get("manifest"), body.get("signature"), body.get("envelopes")
    creator = manifest.get("creator") if isinstance(manifest, dict) else None
    if creator != c.organisation:
        raise HTTPException(403, f"{c.name} uploads a key set as {c.organisation}, not as {creator!r}")
    try:
        check_manifest(manifest, signature, organisation(s, c.organisation).signing_key)
    except BucketKeyError as e:
        raise HTTPException(422, str(e)) from None
    assert isinstance(manifest, dict)
    if manifest["collaboration"] != collab.name:
        raise HTTPException(422, f"the key set is for {manifest['collaboration']!r}, not {collab.name!r}")
    version = manifest["version"]
    expected = (latest_bucket_key_version(s, collab.name) or 0) + 1
    if version != expected:
        raise HTTPException(409, f"the next version of {collab.name!r}'s bucket key is {expected}, not {version}")
    want = with_data(s, collab)
    if creator not in want:  # NB: whoever creates the key knows it: only a member whose data the key splits
        raise HTTPException(403, f"{creator} has no data in {collab.name!r}: only a member with data creates its "
                                 "bucket key")  # fmt: skip
    got = sorted(manifest["recipients"])
    if got != want:
        extra, lacking = sorted(set(got) - set(want)), sorted(set(want) - set(got))
        raise HTTPException(422, f"the key set must be sealed to the members with data {want}: "
                                 f"not to {extra}, also to {lacking}")  # fmt: skip
    for org in want:
        row = s.scalars(select(db.EncryptionKey).where(db.EncryptionKey.organisation_id == organisation(s, org).id))
        published = row.first()
        if published is None or published.public_key != manifest["recipients"][org]["public_key"]:
            raise HTTPException(422, f"the envelope for {org} is sealed to another key than {org}'s published one")
    if not isinstance(envelopes, dict) or sorted(envelopes) != want:
        raise HTTPException(422, f"one envelope for each of {want} is needed")
    for org, text in envelopes.items():
        try:
            raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != ENVELOPE_BYTES or sha256_hex(raw) != manifest["recipients"][org]["envelope_sha256"]:
            raise HTTPException(422, f"the envelope for {org} is malformed or not the one the manifest names")
    s.add(db.BucketKeySet(collaboration_id=collab.id, version=version, creator=creator, manifest=manifest,
                          signature=signature, envelopes=dict(envelopes)))  # fmt: skip
    try:
        s.flush()
    except IntegrityError:  # NB: another member's upload of the same version came first
        s.rollback()
        raise HTTPException(409, f"version {version} of {collab.name!r}'s bucket key exists already") from None
    hub.log(s, actor=c.name, action="bucket-key-created", subject=f"collaboration/{collab.name}",
            details={"collaboration": collab.name, "version": version, "creator": creator, "recipients": want,
                     "manifest_sha256": sha256_hex(canonical(manifest))})  # fmt: skip
    s.commit()
    return int(version)


def list_key_sets(s: Session, collab: db.Collaboration) -> list[dict[str, Any]]:
    """The versions of a collaboration's bucket key: creator, recipients, time (public facts, no envelopes)."""
    q = select(db.BucketKeySet).where(db.BucketKeySet.collaboration_id == collab.id).order_by(db.BucketKeySet.version)
    return [{"version": r.version, "creator": r.creator, "recipients": sorted(r.manifest["recipients"]),
             "created": r.created.isoformat()} for r in s.scalars(q)]  # fmt: skip


def envelope_for(s: Session, hub: Hub, c: Caller, collab: db.Collaboration, version: int) -> dict[str, Any]:
    """One version's signed manifest and the caller's own envelope (a member datastation that is a recipient)."""
    require_member_station(s, c, collab)
    row = _key_set(s, collab.name, version)
    if row is None:
        raise HTTPException(404, f"collaboration {collab.name!r} has no version {version} of its bucket key")
    assert c.organisation is not None
    if c.organisation not in row.envelopes:
        raise HTTPException(404, f"version {version} of {collab.name!r}'s bucket key has no envelope for "
                                 f"{c.organisation}; a member with data rotates it to include it")  # fmt: skip
    hub.log(s, actor=c.name, action="bucket-key-fetched", subject=f"collaboration/{collab.name}",
            details={"collaboration": collab.name, "version": version, "organisation": c.organisation})  # fmt: skip
    return {"manifest": row.manifest, "signature": row.signature, "envelope": row.envelopes[c.organisation]}
