"""A job's live progress: each node's part (datastations, engines), the job's state and elapsed time.

Everything shown is in the database (the nodes' reports, `db.Job.progress`), so reloading the page
shows the same state; the progress fragment is polled every second by htmx until the job ends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from ...workspace import db
from ...workspace.hub.deps import job_by_id, request_by_id
from ...workspace.hub.routes import jobs as api
from ...workspace.hub.schemas import JobPublic
from ..deps import SessionDep
from ..render import render
from .common import Scientist

router = APIRouter()


def _parse(t: str | None) -> dt.datetime | None:
    if not t:
        return None
    v = dt.datetime.fromisoformat(t)
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


def elapsed(job: JobPublic) -> int:
    """Seconds the job has taken: from its start (or creation) to its end (or now)."""
    begin = _parse(job.started) or _parse(job.created)
    end = _parse(job.finished) or db.utcnow()
    return max(0, int((end - begin).total_seconds())) if begin else 0


def parts(s: Any, job: JobPublic) -> list[dict[str, Any]]:
    """Every node with a part in the job (its organisations' datastations, the engines) and its reported state."""
    r = request_by_id(s, job.request)
    q = (
        select(db.Node.name, db.Node.kind, db.Node.party, db.Organisation.name)
        .outerjoin(db.Organisation, db.Node.organisation_id == db.Organisation.id)
        .order_by(db.Node.kind, db.Node.party, db.Node.name)
    )
    out, seen = [], set()
    for name, kind, party, org in s.execute(q):
        if (kind == "datastation" and org in r.organisations) or kind == "engine" or name in job.progress:
            out.append({"name": name, "kind": kind, "party": party, "organisation": org or ""})
            seen.add(name)
    out += [{"name": k, "kind": "", "party": None, "organisation": ""} for k in sorted(job.progress) if k not in seen]
    for p in out:
        got = job.progress.get(p["name"], {})
        p |= {"state": got.get("state", "waiting"), "reason": got.get("reason", ""), "at": got.get("at", "")}
    return out


def _ctx(s: Any, user: Any, jid: int) -> dict[str, Any]:
    job = api.get_job(user.caller(), job_by_id(s, jid), s)
    return {"job": job, "parts": parts(s, job), "elapsed": elapsed(job), "ended": job.state.ended}


@router.get("/jobs/{jid}", response_class=HTMLResponse)
def job_page(request: Request, jid: int, user: Scientist, s: SessionDep) -> HTMLResponse:
    """A job's progress page (it polls its fragment every second while the job runs)."""
    return render(request, "analyst/job.html", _ctx(s, user, jid))


@router.get("/jobs/{jid}/progress", response_class=HTMLResponse)
def progress(request: Request, jid: int, user: Scientist, s: SessionDep) -> HTMLResponse:
    """The progress fragment: nodes, state, elapsed time; without the polling trigger once the job ended."""
    return render(request, "analyst/_progress.html", _ctx(s, user, jid))
