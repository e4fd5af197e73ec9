"""Framed messages between nodes and parties: a JSON header plus binary blobs.

No pickle: a party only ever parses JSON and opaque byte strings.

Security model: the header is public metadata (plan, schemas, row counts, blob
sizes, addresses); the blobs are secret shares, each of which alone reveals nothing.
Nothing here logs or inspects a blob.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

_LEN = struct.Struct("<Q")
MAX_HEADER = 64 * 1024 * 1024


class WireClosed(EOFError):
    """The other end closed the channel."""


def send(f: BinaryIO, header: dict[str, Any], blobs: list[bytes] = ()) -> None:  # type: ignore[assignment]
    """Write one message and flush."""
    head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode("utf-8")
    f.write(_LEN.pack(len(head)))
    f.write(head)
    for b in blobs:
        f.write(b)
    f.flush()


def _read(f: BinaryIO, n: int) -> bytes:
    chunks = []
    while n:
        c = f.read(n)
        if not c:
            raise WireClosed
        chunks.append(c)
        n -= len(c)
    return b"".join(chunks)


def recv(f: BinaryIO) -> tuple[dict[str, Any], list[bytes]]:
    """Read one message."""
    (size,) = _LEN.unpack(_read(f, _LEN.size))
    if size > MAX_HEADER:
        msg = "message header too large"
        raise ValueError(msg)
    header = json.loads(_read(f, size))
    blobs = [_read(f, n) for n in header.pop("blobs")]
    return header, blobs


def pack_share(share: Any) -> list[bytes]:
    """Return an SPU share as blobs: its meta, then its chunks."""
    return [bytes(share.meta), *(bytes(c) for c in share.share_chunks)]


def unpack_share(blobs: list[bytes]) -> Any:
    """Rebuild an SPU share from pack_share's blobs."""
    from spu import libspu

    s = libspu.Share()
    s.meta = blobs[0]
    s.share_chunks = list(blobs[1:])
    return s


def pack_shares(shares: list[Any]) -> tuple[list[int], list[bytes]]:
    """Return SPU shares as a message carries them: the blob count of each share, and all blobs."""
    counts: list[int] = []
    blobs: list[bytes] = []
    for s in shares:
        b = pack_share(s)
        counts.append(len(b))
        blobs.extend(b)
    return counts, blobs


def unpack_shares(counts: list[int], blobs: list[bytes]) -> list[Any]:
    """Rebuild the SPU shares of a message from its blob counts and blobs (pack_shares' inverse)."""
    if any(c < 1 for c in counts) or sum(counts) != len(blobs):
        msg = f"share message: {len(blobs)} blobs do not match the counts of {len(counts)} shares"
        raise ValueError(msg)
    shares, pos = [], 0
    for c in counts:
        shares.append(unpack_share(blobs[pos : pos + c]))
        pos += c
    return shares
