"""An engine's share inbox: the HTTPS endpoints datastations post their signed shares to (mutual TLS).

Security model: the inbox takes nothing on the hub's word. It keeps a share only for a job the
engine took from the hub and verified itself, for a dataset that job reads, signed by that
dataset's organisation with the key pinned in the engine's configuration and made for the job's
plan, within a configured size, and never overwrites one. Shares are held in memory until the job
runs and dropped when it ends. The answers name jobs and datasets, never share contents.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from ..exceptions import WerkplaatsError
from .http import bounded_body
from .messages import MessageError, ShareHeader, unpack

if TYPE_CHECKING:
    from .engine import Engine, Taken


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

    @app.post("/jobs/{jid}/shares")
    def shares(jid: int, data: Annotated[bytes, Depends(bounded_body)]) -> dict[str, Any]:
        """Keep one dataset's signed share of a job this engine took, until the job runs.

        Refused: a job this engine has not taken (404) or that ended (410), a message over the
        configured size (413), one not signed by the dataset's organisation with the key pinned
        in this engine's configuration or not for this job's plan and datasets (403), and a
        second share of a dataset (409: a share is never overwritten).
        """
        job = taken(jid).job
        try:
            header, blobs = unpack(ShareHeader, data)
        except MessageError as e:
            raise HTTPException(400, f"not a share message ({e})") from None
        if header.job != jid:
            raise HTTPException(400, "share message for another job")
        if hashlib.sha256(b"".join(blobs)).hexdigest() != header.digest:
            raise HTTPException(400, "share message damaged (digest)")
        try:
            engine.check_share(job, header)
        except WerkplaatsError as e:
            raise HTTPException(403, str(e)) from None
        with engine.lock:
            if jid not in engine.jobs:
                raise HTTPException(410, f"job {jid} has ended at this engine: share dropped")
            held = engine.inbox.setdefault(jid, {})
            if header.dataset in held:
                msg = f"the share of {header.dataset} for job {jid} has arrived already: not overwritten"
                raise HTTPException(409, msg)
            held[header.dataset] = (header, blobs)
        return {"ok": True}

    return app
