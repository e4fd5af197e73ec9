"""Bucket keys: datastations' encryption keys and each collaboration's sealed bucket key (never in the clear here)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from ..bucketkeys import create_key_set, envelope_for, list_key_sets, publish_encryption_key, recipients
from ..bucketkeys import require_member_station as require_member_station
from ..core import Caller
from ..deps import CallerDep, HubDep, SessionDep, collaboration, require, sees

router = APIRouter()
Station = Annotated[Caller, require("datastation")]


class SignedEncryptionKey(BaseModel):
    """A datastation's X25519 public key in a record signed by its organisation (`bucketkey.signed_encryption_key`)."""

    record: dict[str, Any]
    signature: str


class EncryptionKeyPublished(BaseModel):
    """The organisation whose encryption key the hub now holds, and the key's fingerprint."""

    organisation: str
    fingerprint: str


class RecipientKey(BaseModel):
    """A member with data in the collaboration and its signed encryption key (checked by the creator itself)."""

    organisation: str
    key: SignedEncryptionKey


class BucketKeyRecipients(BaseModel):
    """Who the next version of a collaboration's bucket key is sealed to; who has published no key yet."""

    collaboration: str
    next_version: int
    recipients: list[RecipientKey]
    missing: list[str]


class BucketKeySetIn(BaseModel):
    """A new version: the creator's signed manifest and one envelope (base64) per recipient organisation."""

    manifest: dict[str, Any]
    signature: str
    envelopes: dict[str, str]


class BucketKeyVersion(BaseModel):
    """The version the hub stored."""

    collaboration: str
    version: int


class BucketKeyInfo(BaseModel):
    """One version of a collaboration's bucket key: public facts only."""

    version: int
    creator: str
    recipients: list[str]
    created: str


class BucketKeyEnvelope(BaseModel):
    """One version's signed manifest and the calling datastation's own envelope (base64)."""

    manifest: dict[str, Any]
    signature: str
    envelope: str


@router.put("/encryption-keys/{org}", response_model=EncryptionKeyPublished)
def put_encryption_key(org: str, body: SignedEncryptionKey, c: Station, s: SessionDep,
                       hub: HubDep) -> EncryptionKeyPublished:  # fmt: skip
    """Publish a datastation's X25519 encryption key, signed by its organisation (only its own datastation)."""
    fp = publish_encryption_key(s, hub, c, org, body.model_dump())
    return EncryptionKeyPublished(organisation=org, fingerprint=fp)


@router.get("/collaborations/{name}/bucket-keys/recipients", response_model=BucketKeyRecipients)
def get_recipients(name: str, c: Station, s: SessionDep) -> BucketKeyRecipients:
    """Who a new version is sealed to (members with data, with their signed encryption keys) and its number."""
    collab = collaboration(s, name)
    require_member_station(s, c, collab)
    return BucketKeyRecipients.model_validate(recipients(s, collab))


@router.post("/collaborations/{name}/bucket-keys", status_code=201, response_model=BucketKeyVersion)
def post_key_set(name: str, body: BucketKeySetIn, c: Station, s: SessionDep, hub: HubDep) -> BucketKeyVersion:
    """Upload the next version of a collaboration's bucket key: the creator's signed manifest and the envelopes."""
    collab = collaboration(s, name)
    return BucketKeyVersion(collaboration=name, version=create_key_set(s, hub, c, collab, body.model_dump()))


@router.get("/collaborations/{name}/bucket-keys", response_model=list[BucketKeyInfo])
def get_key_sets(name: str, c: CallerDep, s: SessionDep) -> list[BucketKeyInfo]:
    """The versions of a collaboration's bucket key (public facts: creator, recipients, time); engines are refused."""
    collab = collaboration(s, name)
    if c.kind == "node":
        require_member_station(s, c, collab)
    elif not sees(s, c, collab):
        raise HTTPException(403, f"{c.name} is not a member of collaboration {name!r}")
    return [BucketKeyInfo.model_validate(x) for x in list_key_sets(s, collab)]


@router.get("/collaborations/{name}/bucket-keys/{version}", response_model=BucketKeyEnvelope)
def get_envelope(name: str, version: int, c: Station, s: SessionDep, hub: HubDep) -> BucketKeyEnvelope:
    """One version's signed manifest and the calling datastation's own envelope (nobody else's)."""
    return BucketKeyEnvelope.model_validate(envelope_for(s, hub, c, collaboration(s, name), version))
