"""Test helpers for the web pages: requests, approvals with real signatures, jobs, released results.

Everything goes through the hub's API as the people would do it (``web.api[name]``), except the
parts that nodes do (a job's progress, a result's release), which are written to the database as
the hub writes them (`hub.lifecycle`, `hub.release.stored`), so a page test needs no engines::

    r = approved_request(web)                         # submitted by analist, approved by huisartsen
    jid = start_job(web, r["id"])                     # POST /requests/{rid}/run
    set_progress(web, jid, {"ds-ha": "sent", "engine0": "running"})
    release_result(web, jid, plain_result(web, r))    # the plain executor's result, stored as released

Owner: analyst helper (the dashboards and oversight helpers may add to it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import select

import werkplaats as wp
from werkplaats import usecases as uc
from werkplaats.frame import LazyFrame
from werkplaats.local import run_local
from werkplaats.plan.nodes import sources
from werkplaats.plan.serde import plan_from_dict, plan_to_dict
from werkplaats.synth.write import load_region
from werkplaats.workspace import db
from werkplaats.workspace.hub.lifecycle import move, start
from werkplaats.workspace.hub.release import stored
from werkplaats.workspace.messages import JobState
from werkplaats.workspace.signing import approval_body, sign_approval

from .conftest import Web

STEWARDS = {"ggd": "st-ggd", "huisartsen": "st-ha"}
PURPOSE = "griepgolf volgen per gemeente"


def hotspots_plan(year: int = 2024, **kw: Any) -> dict[str, Any]:
    """The infection hotspots plan (GP consults by default: it reads huisartsen data only) as a dict.

    NB: too many cells for the fixture's small region to run locally (rule 8); `patients_plan` runs.
    """
    return plan_to_dict(uc.infection_hotspots(year, **{"signal": "huisarts", **kw}).to_plan())


def patients_plan() -> dict[str, Any]:
    """GP patients per gemeente and sex, with their mean number of medications (huisartsen data only).

    The code list has 12 gemeenten and the fixture's region 3, so most cells are suppressed.
    """
    q = wp.scan("huisartsen/patienten").group_by("gemeente", "geslacht")
    return plan_to_dict(q.agg(n=wp.count(), medicatie=wp.col("medicatie").mean()).to_plan())


def submit(
    web: Web,
    plan: LazyFrame | dict[str, Any] | None = None,
    *,
    by: str = "analist",
    collaboration: str = "pp",
    purpose: str = PURPOSE,
    status: int = 201,
) -> dict[str, Any]:
    """Submit a plan as a request through the API (default: `patients_plan`); the RequestPublic."""
    doc = plan_to_dict(plan.to_plan()) if isinstance(plan, LazyFrame) else (plan or patients_plan())
    body = {"collaboration": collaboration, "purpose": purpose, "plan": doc}
    out: dict[str, Any] = web.api[by].post("/requests", body, status=status)
    return out


def approve(web: Web, r: dict[str, Any], org: str, *, max_runs: int = 3, days: int = 30) -> dict[str, Any]:
    """Approve a request for one organisation: its steward signs the body with the organisation's key."""
    steward = STEWARDS[org]
    body = approval_body(organisation=org, collaboration=r["collaboration"], purpose=r["purpose"], plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
                         max_runs=max_runs, steward=steward)  # fmt: skip
    signed = {"body": body, "signature": sign_approval(web.keys[org], body)}
    out: dict[str, Any] = web.api[steward].post(f"/requests/{r['id']}/approvals", signed)
    return out


def reject(web: Web, r: dict[str, Any], org: str, reason: str = "doel te breed") -> dict[str, Any]:
    """Reject a request for one organisation, with a reason, as its steward."""
    out: dict[str, Any] = web.api[STEWARDS[org]].post(f"/requests/{r['id']}/rejections", {"reason": reason})
    return out


def approved_request(web: Web, plan: LazyFrame | dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """Submit a plan and approve it for every organisation whose data it reads; the RequestPublic after that."""
    r = submit(web, plan, **kw)
    for org in r["organisations"]:
        r = approve(web, r, org)
    assert r["status"] == "approved"
    return r


def start_job(web: Web, rid: int, *, by: str = "analist") -> int:
    """Start a job of an approved request through the API (POST /requests/{rid}/run); its id."""
    return int(web.api[by].post(f"/requests/{rid}/run")["job"])


def set_progress(web: Web, jid: int, parts: dict[str, str | tuple[str, str]]) -> None:
    """Write nodes' part states into a job's progress as the hub records them (node → state or (state, reason)).

    A part that is running starts the job (approved → running), as an engine's report does.
    """
    with web.hub.sessions() as s:
        j = s.get(db.Job, jid)
        assert j is not None
        progress = dict(j.progress)
        for node, v in parts.items():
            state, reason = v if isinstance(v, tuple) else (v, "")
            progress[node] = {"state": state, "reason": reason, "at": db.utcnow().isoformat()}
            if state == "running" and j.state == JobState.APPROVED:
                start(web.hub, s, j, node)
        j.progress = progress
        s.commit()


def fail_job(web: Web, jid: int, reason: str) -> None:
    """Fail a job with a reason, as the hub does when a node fails it."""
    from werkplaats.workspace.hub.lifecycle import fail

    with web.hub.sessions() as s:
        j = s.get(db.Job, jid)
        assert j is not None
        fail(web.hub, s, j, reason, "hub")
        s.commit()


def plain_result(web: Web, r: dict[str, Any] | LazyFrame, *, k: int | None = None) -> pd.DataFrame:
    """The disclosure-controlled result of a request's plan on the fixture's region (plain executor)."""
    plan = r.to_plan() if isinstance(r, LazyFrame) else plan_from_dict(r["plan"])
    region = load_region(web.region)
    used = {src.dataset for src in sources(plan.root)}
    tables = {d: region.tables[d] for d in used}
    return run_local(plan, tables, schemas={d: region.catalog[d] for d in used}, min_group_size=k,
                     perturbation_key=1)  # fmt: skip


def release_result(web: Web, jid: int, frame: pd.DataFrame, *, k: int | None = None) -> None:
    """Store a frame as a job's released result (as `hub.release` stores it) and mark the job succeeded, logged."""
    with web.hub.sessions() as s:
        j = s.get(db.Job, jid)
        assert j is not None
        r = s.get(db.Request, j.request_id)
        assert r is not None
        kk = k if k is not None else int(plan_from_dict(r.plan).min_group_size)
        if j.state == JobState.APPROVED:
            start(web.hub, s, j, "engine0")
        s.add(db.Result(job_id=j.id, data=stored(frame, kk)))
        move(j, JobState.SUCCEEDED)
        j.finished = db.utcnow()
        collab = s.get(db.Collaboration, r.collaboration_id)
        web.hub.log(s, actor="engine0", action="job-end", subject=f"job/{j.id}",
                    details={"request": r.id, "job": j.id, "state": JobState.SUCCEEDED.value})  # fmt: skip
        web.hub.log(s, actor="hub", action="result-release", subject=f"job/{j.id}",
                    details={"request": r.id, "job": j.id, "collaboration": collab.name if collab else "",
                             "purpose": r.purpose, "datasets": r.datasets, "plan_hash": r.plan_hash,
                             "cells": len(frame), "registered": False,
                             "suppressed": int(frame["suppressed"].sum()) if "suppressed" in frame else 0})  # fmt: skip
        s.commit()


def released_request(web: Web, plan: LazyFrame | dict[str, Any] | None = None, **kw: Any) -> tuple[dict[str, Any], int]:
    """A request approved by every organisation it reads, run once, its plain result released: (request, job id)."""
    r = approved_request(web, plan, **kw)
    jid = start_job(web, r["id"])
    release_result(web, jid, plain_result(web, r))
    return r, jid


def jobs_of(web: Web, rid: int) -> list[db.Job]:
    """The stored jobs of a request, oldest first."""
    with web.hub.sessions() as s:
        return list(s.scalars(select(db.Job).where(db.Job.request_id == rid).order_by(db.Job.id)))
