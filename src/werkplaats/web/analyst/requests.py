"""Requests: the list with status badges, one request in full, its preview on dummy data, and starting a run."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from ...compile.rules import DisclosureRules
from ...exceptions import WerkplaatsError
from ...local import run_local
from ...plan import nodes as n
from ...plan.serde import plan_from_dict
from ...workspace import db
from ...workspace.client import dummy_table
from ...workspace.hub.deps import request_by_id, sees
from ...workspace.hub.routes import requests as api
from ...workspace.hub.schemas import RequestPublic
from ...workspace.hub.views import request_summary
from ...workspace.jobs import catalog_of
from ..deps import CsrfDep, HubDep, SessionDep
from ..i18n import negotiate
from ..render import render
from .common import Scientist, gettext_of, pages
from .results import table_rows

router = APIRouter()
LIST_PAGE = 20  # NB: requests a page: each summary takes a few queries (approvals, rejections, jobs)
PREVIEW_ROWS = 1000  # NB: dummy rows per dataset: enough for most cells to show, fast on one core


def station_links(s: Any, r: RequestPublic) -> dict[str, str]:
    """Each pending organisation's datastation review page (``{web_url}/inbox/{rid}``), where it has one."""
    q = (
        select(db.Organisation.name, db.Node.web_url)
        .join(db.Node, db.Node.organisation_id == db.Organisation.id)
        .where(db.Node.kind == "datastation", db.Organisation.name.in_(r.pending), db.Node.web_url != "")
    )
    return {org: f"{url.rstrip('/')}/inbox/{r.id}" for org, url in s.execute(q)}


def _detail(request: Request, s: Any, r: RequestPublic, *, error: str = "", status: int = 200) -> HTMLResponse:
    released = any(j.state == "succeeded" for j in r.jobs)
    ctx = {"r": r, "links": station_links(s, r), "released": released, "error": error}
    return render(request, "analyst/request.html", ctx, status=status)


@router.get("/requests", response_class=HTMLResponse)
def requests_list(request: Request, user: Scientist, s: SessionDep, page: int = 1) -> HTMLResponse:
    """The requests of the user's collaborations, newest first, with their status (20 a page).

    NB: the API's own checks and views (`sees`, `request_summary`, as ``GET /requests`` uses them), but
    a summary (a few queries each) only for the requests of the page shown.
    """
    c = user.caller()
    visible: dict[int, bool] = {}
    mine = []
    for rid, cid in s.execute(select(db.Request.id, db.Request.collaboration_id).order_by(db.Request.id.desc())):
        if cid not in visible:
            collab = s.get(db.Collaboration, cid)
            visible[cid] = collab is not None and sees(s, c, collab)
        if visible[cid]:
            mine.append(rid)
    p = pages(len(mine), page, LIST_PAGE)
    shown = mine[p["start"] : p["stop"]]
    rows = {r.id: r for r in s.scalars(select(db.Request).where(db.Request.id.in_(shown)))}  # NB: one query
    rs = [request_summary(s, rows[rid]) for rid in shown]
    return render(request, "analyst/requests.html", {"requests": rs, "p": p})


@router.get("/requests/{rid}", response_class=HTMLResponse)
def request_detail(request: Request, rid: int, user: Scientist, s: SessionDep) -> HTMLResponse:
    """A request: purpose, plan explained, datasets and columns, approvals, rejections, jobs, and what can be done."""
    return _detail(request, s, api.get_request(user.caller(), request_by_id(s, rid), s))


@router.post("/requests/{rid}/run")
def run(request: Request, rid: int, user: Scientist, _: CsrfDep, s: SessionDep, hub: HubDep) -> Response:
    """Start a job of the request (the API says why it cannot); go to its progress page."""
    r = request_by_id(s, rid)
    try:
        job = api.run(user.caller(), r, s, hub)
    except HTTPException as e:
        if e.status_code != 409:
            raise
        s.rollback()
        return _detail(request, s, api.get_request(user.caller(), r, s), error=str(e.detail), status=409)
    return RedirectResponse(f"/jobs/{job.job}", status_code=303)


def preview_frame(s: Any, r: RequestPublic) -> Any:
    """Run the request's plan on dummy tables generated from the catalog's schemas (never real data).

    As the Python client's ``preview``: k = 1 and the cell rule only (rule 8 would refuse most plans
    on a few hundred rows), but person keys stay keys (rule 1).
    """
    plan = plan_from_dict(r.plan)
    used = sorted({src.dataset for src in n.sources(plan.root)})
    docs = {d.name: d for d in s.scalars(select(db.Dataset).where(db.Dataset.name.in_(used)))}
    schemas = catalog_of({d: docs[d].table_schema for d in used})
    rng = np.random.default_rng(r.id)
    pool = 100_000_000 + rng.permutation(PREVIEW_ROWS * 2)
    tables = {d: dummy_table(schemas[d], PREVIEW_ROWS, rng, person_key=docs[d].person_key or "bsn", pool=pool)
              for d in used}  # fmt: skip
    rules = dataclasses.replace(DisclosureRules.cells_only(), person_keys=DisclosureRules().person_keys)
    return run_local(n.Plan(plan.root, 1), tables, schemas=schemas, min_group_size=1, rules=rules)


@router.get("/requests/{rid}/preview", response_class=HTMLResponse)
def preview(request: Request, rid: int, user: Scientist, s: SessionDep, page: int | None = None) -> HTMLResponse:
    """The plan run on dummy data made from the catalog's schemas: how the result will look, not what it says.

    The page comes at once, labelled as dummy data; its table is computed when htmx asks for it
    (a fragment), or in the page itself when a page of it is asked for (``?page=1``, without JavaScript).
    """
    r = api.get_request(user.caller(), request_by_id(s, rid), s)
    k = plan_from_dict(r.plan).min_group_size
    fragment = bool(request.headers.get("hx-request"))
    ctx: dict[str, Any] = {"r": r, "k": k, "problem": "", "table": None, "base": f"/requests/{rid}/preview"}
    if page is None and not fragment:
        return render(request, "analyst/preview.html", ctx)
    try:
        frame = preview_frame(s, r)
    except WerkplaatsError as e:
        ctx["problem"] = str(e)
        return render(request, "analyst/_preview_problem.html" if fragment else "analyst/preview.html", ctx)
    keys = tuple(getattr(plan_from_dict(r.plan).root, "keys", ()))
    rows = [{str(c): v for c, v in row.items()} for row in frame.astype(object).where(frame.notna(), None)
            .to_dict(orient="records")]  # fmt: skip
    data = {"columns": [str(c) for c in frame.columns], "rows": rows, "min_group_size": 1}
    gettext = gettext_of(request)
    ctx |= {
        "table": table_rows(data, keys, page or 1, negotiate(request)),
        "caption": gettext("Dummy result (not real data)"),
    }
    return render(request, "analyst/_table.html" if fragment else "analyst/preview.html", ctx)
