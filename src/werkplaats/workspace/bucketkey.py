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

    keys = BucketKeys(state_dir, ...)
    version, secret = keys.current(collaboration)      # or None: no key yet
    secret = keys.get(collaboration, version)          # raises BucketKeyError if unknown here

and the hub side (workspace/hub/bucketkeys.py) offers
``latest_bucket_key_version(session, collaboration) -> int | None`` to the job's creation.
"""

from __future__ import annotations

from pathlib import Path

from ..exceptions import WerkplaatsError


class BucketKeyError(WerkplaatsError):
    """A bucket key is missing, cannot be decrypted, or its envelope's signature does not verify."""


class BucketKeys:
    """A datastation's bucket keys, per collaboration and version, kept in its state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def current(self, collaboration: str) -> tuple[int, bytes] | None:
        """Return the newest (version, key) this datastation holds for a collaboration, or None."""
        raise NotImplementedError

    def get(self, collaboration: str, version: int) -> bytes:
        """Return one version of a collaboration's bucket key; raise BucketKeyError when it is not here."""
        raise NotImplementedError
