"""An engine's share inbox: the HTTPS endpoints datastations post their signed shares to (mutual TLS).

Security model: the inbox takes nothing on the hub's word. It keeps a share only for a job the
engine took from the hub and verified itself, for a dataset that job reads, signed by that
dataset's organisation with the key pinned in the engine's configuration and made for the job's
plan, within a configured size, and never overwrites one. In a bucketed job every (dataset,
bucket) is one such share, for a bucket the job has, with the job's bucket count and one padded
size per dataset. Shares are kept on disk in the job's own spool directory (mode 0700, below the
engine's state directory), never in the engine's memory, until the job runs; the directory is
removed when the job ends here, whatever happened. The answers name jobs, datasets and bucket
indexes, never share contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO

from fastapi import Depends, FastAPI, HTTPException, Request

from ..exceptions import WerkplaatsError
from ..mpc import wire
from .messages import MessageError, ShareHeader

if TYPE_CHECKING:
    from .engine import Engine, Taken

_LEN = struct.Struct("<Q")  # NB: a wire frame's header length (werkplaats.mpc.wire)
CHUNK = 1 << 20


class Spool:
    """An engine's shares on disk: one directory per job (0700), one file per (dataset, bucket).

    Each file is the share message exactly as it arrived (a `werkplaats.mpc.wire` frame: the
    signed header, then the blobs), so the party can be fed from it without the engine holding it.
    """

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "spool"

    def clear(self) -> None:
        """Remove every job's shares (at start: whatever a previous run of the engine left behind)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)

    def job_dir(self, jid: int) -> Path:
        """Return the directory of a job's shares (not created)."""
        return self.root / f"job{jid}"

    def path(self, jid: int, index: int, bucket: int) -> Path:
        """Return the file of a dataset's share (by its index in the job's datasets) of one bucket (0: unbucketed)."""
        return self.job_dir(jid) / f"d{index}-b{bucket}.share"

    def incoming(self) -> Path:
        """Return a fresh file name for a message being received (moved into a job's directory once checked)."""
        d = self.root / "incoming"
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        return d / f"{secrets.token_hex(8)}.part"

    def keep(self, tmp: Path, jid: int, index: int, bucket: int) -> None:
        """Move a checked message into its job's directory (made 0700 on first use)."""
        d = self.job_dir(jid)
        d.mkdir(mode=0o700, exist_ok=True)
        tmp.replace(self.path(jid, index, bucket))

    def remove(self, jid: int) -> None:
        """Remove a job's shares."""
        shutil.rmtree(self.job_dir(jid), ignore_errors=True)

    def read(self, jid: int, index: int, bucket: int) -> tuple[ShareHeader, list[bytes]]:
        """Return one kept share message (its header and blobs)."""
        with open(self.path(jid, index, bucket), "rb") as f:
            header, blobs = wire.recv(f)
        return ShareHeader.from_dict(header), blobs


def frame_payload(path: Path) -> tuple[list[int], int]:
    """Return the blob lengths of a kept message and the offset where its blobs begin."""
    with open(path, "rb") as f:
        (size,) = _LEN.unpack(f.read(_LEN.size))
        head = json.loads(f.read(size))
    return [int(n) for n in head["blobs"]], _LEN.size + size


def send_from_files(out: BinaryIO, header: dict[str, Any], files: list[Path], extra: list[bytes] = ()) -> None:  # type: ignore[assignment]
    """Write one wire message whose blobs are those of the kept messages in files (in order), then extra.

    The blobs are copied from disk in chunks: the engine never holds a job's shares in memory.
    """
    parts = [frame_payload(p) for p in files]
    lengths = [n for lens, _ in parts for n in lens] + [len(b) for b in extra]
    head = json.dumps({**header, "blobs": lengths}).encode("utf-8")
    out.write(_LEN.pack(len(head)))
    out.write(head)
    for p, (lens, offset) in zip(files, parts, strict=True):
        with open(p, "rb") as f:
            f.seek(offset)
            left = sum(lens)
            while left:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    msg = f"a kept share ended early ({p.name})"
                    raise WerkplaatsError(msg)
                out.write(chunk)
                left -= len(chunk)
    for b in extra:
        out.write(b)
    out.flush()


async def spooled_body(request: Request) -> AsyncIterator[Path]:
    """Write a request's body to a fresh file in the engine's spool, refusing (413) one over the configured size.

    Yields the file; it is removed after the request unless the endpoint kept it (moved it away).
    """
    spool: Spool = request.app.state.spool
    max_bytes = int(request.app.state.max_body_bytes)
    too_big = f"message larger than the configured maximum of {max_bytes} bytes: refused"
    if int(request.headers.get("content-length") or 0) > max_bytes:
        raise HTTPException(413, too_big)
    tmp = spool.incoming()
    try:
        size = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:  # NB: a body without (or with a lying) content-length stops here
                    raise HTTPException(413, too_big)
                f.write(chunk)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def read_share(path: Path) -> ShareHeader:
    """Read a received share message's header from disk and check its blobs against it (counts, digest).

    The blobs are hashed as they are read, in chunks: checking a share holds none of it in memory.
    Raise MessageError when it is not a share message or is damaged.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            (size,) = _LEN.unpack(f.read(_LEN.size))
            if size > wire.MAX_HEADER:
                raise ValueError(size)
            header = json.loads(f.read(size))
            lengths = [int(n) for n in header.pop("blobs")]
            for n in lengths:
                while n:
                    chunk = f.read(min(CHUNK, n))
                    if not chunk:
                        raise ValueError(n)
                    digest.update(chunk)
                    n -= len(chunk)
            rest = f.read(1)
    except (ValueError, KeyError, TypeError, AttributeError, struct.error):
        msg = f"{ShareHeader.NAME}: not a framed message"
        raise MessageError(msg) from None
    h = ShareHeader.from_dict(header)
    if sum(h.share_blobs) != len(lengths) or rest:
        msg = f"{ShareHeader.NAME}: {len(lengths)} blobs do not match the counts of {len(h.share_blobs)} shares"
        raise MessageError(msg)
    if digest.hexdigest() != h.digest:
        msg = "share message damaged (digest)"
        raise MessageError(msg)
    return h


def inbox_app(engine: Engine) -> FastAPI:
    """Return an engine's share inbox: datastations post their signed shares here (mutual TLS)."""
    app = FastAPI(title=f"werkplaats engine {engine.cfg.party}", version="1")

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Answer that the engine is up, with its name and party."""
        return {"ok": True, "engine": engine.cfg.name, "party": engine.cfg.party}

    @app.get("/inbox")
    def inbox() -> dict[str, Any]:
        """Which jobs' shares this engine holds right now (dataset names only, never shares)."""
        with engine.lock:
            held = {str(j): sorted(d) for j, d in engine.inbox.items()}
        return {"jobs": held, "running": engine.child is not None}

    def taken(jid: int) -> Taken:
        """The job as this engine took it; 410 when it has ended here, 404 when it never took it."""
        with engine.lock:
            t = engine.jobs.get(jid)
            if t is None and jid in engine.ended:
                raise HTTPException(410, f"job {jid} has ended at this engine: share dropped")
        if t is None:
            raise HTTPException(404, f"job {jid} is not a job this engine has taken from the hub: share dropped")
        return t

    @app.get("/jobs/{jid}")
    def job(jid: int) -> dict[str, Any]:
        """Answer whether this engine has taken a job (datastations ask before they send shares)."""
        taken(jid)
        return {"job": jid, "party": engine.cfg.party}

    app.state.max_body_bytes = engine.cfg.max_share_bytes
    app.state.spool = engine.spool

    @app.post("/jobs/{jid}/shares")
    def shares(jid: int, body: Annotated[Path, Depends(spooled_body)]) -> dict[str, Any]:
        """Keep one dataset's signed share of a job this engine took (of one bucket, when bucketed), until it runs.

        Refused: a job this engine has not taken (404) or that ended (410), a message over the
        configured size (413), a damaged one (400), one not signed by the dataset's organisation
        with the key pinned in this engine's configuration, not for this job's plan and datasets,
        or not of a bucket of the job (403), and a second share of a dataset (and bucket) (409: a
        share is never overwritten).
        """
        job = taken(jid).job
        try:
            header = read_share(body)
        except MessageError as e:
            raise HTTPException(400, f"not a share message ({e})") from None
        if header.job != jid:
            raise HTTPException(400, "share message for another job")
        try:
            engine.check_share(job, header)
        except WerkplaatsError as e:
            raise HTTPException(403, str(e)) from None
        bucket = header.bucket or 0
        with engine.lock:
            if jid not in engine.jobs:
                raise HTTPException(410, f"job {jid} has ended at this engine: share dropped")
            held = engine.inbox.setdefault(jid, {}).setdefault(header.dataset, {})
            what = header.dataset if header.bucket is None else f"bucket {bucket} of {header.dataset}"
            if bucket in held:
                msg = f"the share of {what} for job {jid} has arrived already: not overwritten"
                raise HTTPException(409, msg)
            other = next(iter(held.values()), None)
            if other is not None and other.rows != header.rows:
                msg = f"the share of {what} has another padded size than the dataset's other buckets"
                raise HTTPException(403, msg)
            try:
                engine.spool.keep(body, jid, job.datasets.index(header.dataset), bucket)
            except OSError as e:
                raise HTTPException(507, f"the share of {what} could not be kept ({e.strerror})") from None
            held[bucket] = header
        return {"ok": True}

    return app
