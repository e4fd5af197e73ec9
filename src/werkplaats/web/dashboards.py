"""Dashboards for inzichtvragers (published by analysts from released results) and their questions.

A dashboard shows one job's released result (``db.Result``: disclosure-controlled cells, the
suppressed ones marked) as a map of gemeenten or wijken, a weekly trend, a bar chart or a table,
with the analyst's title and duiding, its data table and its source. It reads nothing else: no
request can be re-run from here and no number is computed that was not released.

Who may do what follows the API: membership of the collaboration (``hub.deps.require_member``)
for every dashboard and question; publishing reads the result through the API's own route
(``routes.requests.result``), so a scientist outside the collaboration gets its 403.
"""

# OWNER: helper dashboards

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..workspace import db
from ..workspace.hub import deps as hub_deps
from ..workspace.hub.routes import requests as api_requests
from . import charts
from .deps import CsrfDep, HubDep, SessionDep, WebUser, require_role
from .i18n import negotiate, translations
from .render import render

router = APIRouter()
Viewer = Annotated[WebUser, require_role("requester", "scientist")]
Scientist = Annotated[WebUser, require_role("scientist")]
Requester = Annotated[WebUser, require_role("requester")]

CHARTS = ("choropleth-gemeente", "choropleth-wijk", "trend", "bar", "table")
NEEDS = {  # NB: the columns each chart type needs (the form's choices come from the result's columns)
    "choropleth-gemeente": ("key", "value"),
    "choropleth-wijk": ("key", "value"),
    "trend": ("time", "value"),
    "bar": ("key", "value"),
    "table": (),
}
OPTIONS = ("key", "value", "time", "flag")
META = ("suppressed", "reason")  # NB: the release's own columns: shown as "< k" and its explanation, not as data
MAX_TITLE = 200
MAX_TEXT = 5000
MAX_QUESTION = 2000
MAX_LINES = 12  # NB: more lines in one trend cannot be told apart
MAX_BARS = 60
PAGE_ROWS = 200  # NB: rows of a dashboard's data table per page (a weekly result per wijk has thousands)


def _tr(request: Request) -> Any:
    """The gettext of the request's language (for texts made in Python)."""
    return translations(negotiate(request)).gettext


def chart_names(request: Request) -> dict[str, str]:
    """The chart types' names in the request's language."""
    _ = _tr(request)
    return {"choropleth-gemeente": _("Map by gemeente"), "choropleth-wijk": _("Map by wijk"),
            "trend": _("Weekly trend"), "bar": _("Bar chart"), "table": _("Table")}  # fmt: skip


def _collaborations(s: Session, user: WebUser) -> list[db.Collaboration]:
    """The collaborations the user's organisation is a member of, by name."""
    if user.organisation is None:
        return []
    q = (
        select(db.Collaboration)
        .join(db.Member, db.Member.collaboration_id == db.Collaboration.id)
        .join(db.Organisation, db.Organisation.id == db.Member.organisation_id)
        .where(db.Organisation.name == user.organisation)
        .order_by(db.Collaboration.name)
    )
    return list(s.scalars(q))


def _live(s: Session, user: WebUser, did: int) -> tuple[db.Dashboard, db.Collaboration]:
    """A dashboard that is not withdrawn, of a collaboration the user belongs to (404 / 403 otherwise)."""
    d = s.get(db.Dashboard, did)
    if d is None or d.withdrawn is not None:
        raise HTTPException(404, f"no dashboard {did}")
    collab = s.get(db.Collaboration, d.collaboration_id)
    assert collab is not None  # NB: a foreign key
    hub_deps.require_member(s, user.caller(), collab)
    return d, collab


def _frame(data: dict[str, Any]) -> pd.DataFrame:
    """A stored result's rows as a frame, in its column order."""
    cols = list(data.get("columns", []))
    rows = data.get("rows", [])
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows)
    return frame[cols + [c for c in frame.columns if c not in cols]]


def build_chart(request: Request, d: db.Dashboard, data: dict[str, Any], rows: slice | None = None) -> charts.Chart:
    """The dashboard's chart and data table from its job's released result (a table: only ``rows`` of it)."""
    _ = _tr(request)
    frame = _frame(data)
    k = int(data.get("min_group_size", 10))
    o = d.options or {}
    labels = {"suppressed": f"< {k}", "withheld": _("withheld"), "no_data": _("no data"), "area": _("area"),
              "flag": _("early warning"), "missing": _("(missing)")}  # fmt: skip
    cfg = request.app.state.cfg
    if d.chart.startswith("choropleth-"):
        level = d.chart.removeprefix("choropleth-")
        if cfg.geo_dir is None:
            raise HTTPException(503, _("The region's map boundaries are not configured ([web] geo_dir)."))
        geo = charts.load_geo(charts.geo_file(cfg.geo_dir, level))
        return charts.choropleth(frame, geo, level, o["value"], key=o.get("key"), time=o.get("time") or None, k=k,
                                 labels=labels)  # fmt: skip
    if d.chart == "trend":
        return charts.trend(frame, o["time"], o["value"], flag=o.get("flag") or None, group=o.get("key") or None,
                            k=k, labels=labels)  # fmt: skip
    if d.chart == "bar":
        return charts.bar(frame, o["key"], o["value"], k=k, labels=labels)
    cols = [c for c in data.get("columns", []) if c not in META]
    shown = frame.iloc[rows] if rows is not None else frame  # NB: format only the page that is shown
    return charts.Chart({}, charts.table(shown, cols, k=k, withheld=labels["withheld"], missing=labels["missing"]))


# -- dashboards ------------------------------------------------------------------------------


@router.get("/dashboards")
def dashboard_list(request: Request, user: Viewer, s: SessionDep) -> Response:
    """The dashboards of the user's collaborations (not withdrawn), newest first."""
    collabs = {c.id: c for c in _collaborations(s, user)}
    q = (
        select(db.Dashboard)
        .where(db.Dashboard.collaboration_id.in_(list(collabs)), db.Dashboard.withdrawn.is_(None))
        .order_by(db.Dashboard.created.desc(), db.Dashboard.id.desc())
    )
    items = [{"d": d, "collab": collabs[d.collaboration_id]} for d in s.scalars(q)]
    return render(request, "dashboards/list.html", {"items": items, "chart_names": chart_names(request), "date": _date})


def _result(s: Session, user: WebUser, rid: int) -> tuple[db.Request, Any]:
    """A request and its released result through the API (404 until released, 403 outside the collaboration)."""
    r = hub_deps.request_by_id(s, rid)
    return r, api_requests.result(user.caller(), r, s)


@router.get("/dashboards/new")
def dashboard_new(
    request: Request, user: Scientist, s: SessionDep, rid: Annotated[int, Query(alias="request")]
) -> Response:
    """The form to publish a dashboard from a request's released result."""
    r, res = _result(s, user, rid)
    return render(request, "dashboards/new.html", _form_ctx(request, r, res, {}, {}))


def _form_ctx(
    request: Request, r: db.Request, res: Any, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    """What the publish form shows: the request, the result's columns, what was filled in, what is wrong."""
    columns = [c for c in res.columns if c not in META]
    return {"r": r, "res": res, "columns": columns, "charts": CHARTS, "chart_names": chart_names(request),
            "values": values, "errors": errors, "max_title": MAX_TITLE, "max_text": MAX_TEXT}  # fmt: skip


@router.post("/dashboards")
def dashboard_publish(
    request: Request,
    user: Scientist,
    _csrf: CsrfDep,
    s: SessionDep,
    hub: HubDep,
    request_id: Annotated[int, Form(alias="request")],
    title: Annotated[str, Form()] = "",
    interpretation: Annotated[str, Form()] = "",
    chart: Annotated[str, Form()] = "",
    key: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    time: Annotated[str, Form()] = "",
    flag: Annotated[str, Form()] = "",
) -> Response:
    """Publish a dashboard of the request's latest released result; logged as dashboard-published."""
    _ = _tr(request)
    r, res = _result(s, user, request_id)
    values = {"title": title.strip(), "interpretation": interpretation.strip(), "chart": chart,
              "key": key, "value": value, "time": time, "flag": flag}  # fmt: skip
    errors: dict[str, str] = {}
    if not values["title"]:
        errors["title"] = _("Give the dashboard a title.")
    elif len(values["title"]) > MAX_TITLE:
        errors["title"] = _("The title is too long (at most %(n)s characters).") % {"n": MAX_TITLE}
    if len(values["interpretation"]) > MAX_TEXT:
        errors["interpretation"] = _("The interpretation is too long (at most %(n)s characters).") % {"n": MAX_TEXT}
    if chart not in CHARTS:
        errors["chart"] = _("Choose a chart type.")
    columns = set(res.columns) - set(META)
    for opt in OPTIONS:
        v = values[opt]
        if v and v not in columns:
            errors[opt] = _("This column is not in the result.")
        elif not v and opt in NEEDS.get(chart, ()):
            errors[opt] = _("This chart type needs this column.")
    if not errors and chart.startswith("choropleth-") and _repeats(res.rows, [key, time] if time else [key]):
        errors["key"] = _("A map needs one row per area (per week, with a time column); this result has more.")
    if not errors and chart.startswith("choropleth-"):
        level = chart.removeprefix("choropleth-")
        codes = _geo_codes(request, level)
        if codes is not None and not codes & {str(row.get(key)) for row in res.rows}:
            errors["key"] = _("The values of this column are not codes of the region's %(level)s areas.") % {
                "level": level
            }
    if not errors and chart == "trend":
        if _repeats(res.rows, [key, time] if key else [time]):
            errors["time"] = _("A trend needs one row per week (per line, with a key); this result has more.")
        elif key and len({row.get(key) for row in res.rows}) > MAX_LINES:
            errors["key"] = _("A trend shows at most %(n)s lines; this key has more values.") % {"n": MAX_LINES}
    if not errors and chart == "bar" and len(res.rows) > MAX_BARS:
        errors["chart"] = _("A bar chart shows at most %(n)s bars; choose a table or a map.") % {"n": MAX_BARS}
    if errors:
        return render(request, "dashboards/new.html", _form_ctx(request, r, res, values, errors), status=422)
    collab = hub_deps.collaboration_of(s, r)
    options = {o: values[o] for o in OPTIONS if values[o]}
    d = db.Dashboard(collaboration_id=collab.id, request_id=r.id, job_id=res.job, title=values["title"],
                     interpretation=values["interpretation"], chart=chart, options=options,
                     published_by=user.user_id)  # fmt: skip
    s.add(d)
    s.flush()
    hub.log(s, actor=user.name, action="dashboard-published", subject=f"dashboard/{d.id}",
            details={"dashboard": d.id, "request": r.id, "job": res.job, "collaboration": collab.name,
                     "title": d.title, "chart": chart, "options": options})  # fmt: skip
    s.commit()
    return RedirectResponse(f"/dashboards/{d.id}", status_code=303)


@router.get("/dashboards/{did}")
def dashboard_view(
    request: Request, did: int, user: Viewer, s: SessionDep, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    """A dashboard: title, duiding, the chart with its data table (PAGE_ROWS rows a page), its source, its release."""
    d, collab = _live(s, user, did)
    res = s.scalars(select(db.Result).where(db.Result.job_id == d.job_id)).one()
    r = s.get(db.Request, d.request_id)
    assert r is not None  # NB: a foreign key
    orgs = list(s.scalars(select(db.Organisation).where(db.Organisation.name.in_(list(r.organisations)))
                          .order_by(db.Organisation.name)))  # fmt: skip
    publisher = s.get(db.User, d.published_by)
    n = len(res.data.get("rows", []))
    if d.chart == "table":
        pages = max(1, -(-n // PAGE_ROWS))
        page = min(page, pages)
        lo, hi = (page - 1) * PAGE_ROWS, page * PAGE_ROWS
        chart = build_chart(request, d, res.data, slice(lo, hi))
        total = n
    else:
        chart = build_chart(request, d, res.data)
        total = len(chart.table.rows)
        pages = max(1, -(-total // PAGE_ROWS))
        page = min(page, pages)
        lo, hi = (page - 1) * PAGE_ROWS, page * PAGE_ROWS
        t = chart.table
        chart = dataclasses.replace(
            chart, table=dataclasses.replace(t, rows=t.rows[lo:hi], suppressed=t.suppressed[lo:hi])
        )
    return render(request, "dashboards/view.html", {
        "d": d, "collab": collab, "r": r, "released": res.created, "orgs": orgs, "chart": chart,
        "publisher": publisher.name if publisher else "", "date": _date, "chart_names": chart_names(request),
        "page": page, "pages": pages, "total_rows": total, "first_row": lo + 1, "last_row": min(hi, total),
    })  # fmt: skip


@router.post("/dashboards/{did}/withdraw")
def dashboard_withdraw(
    request: Request, did: int, user: Scientist, _csrf: CsrfDep, s: SessionDep, hub: HubDep
) -> Response:
    """Withdraw a dashboard (any scientist of its collaboration); logged as dashboard-withdrawn."""
    d, collab = _live(s, user, did)
    d.withdrawn = db.utcnow()
    hub.log(s, actor=user.name, action="dashboard-withdrawn", subject=f"dashboard/{d.id}",
            details={"dashboard": d.id, "request": d.request_id, "collaboration": collab.name})  # fmt: skip
    s.commit()
    return RedirectResponse("/dashboards", status_code=303)


def _geo_codes(request: Request, level: str) -> set[str] | None:
    """The area codes of the region's map of a level (None when no map is configured)."""
    geo_dir = request.app.state.cfg.geo_dir
    if geo_dir is None:
        return None
    geo = charts.load_geo(charts.geo_file(geo_dir, level))
    return {str(f.get("properties", {}).get(charts.CODE)) for f in geo.get("features", [])}


def _repeats(rows: list[dict[str, Any]], cols: list[str]) -> bool:
    """Whether some rows share their values of cols."""
    seen = {tuple(row.get(c) for c in cols) for row in rows}
    return len(seen) < len(rows)


def _date(t: dt.datetime | None) -> str:
    """A stored time as a date and minute (UTC)."""
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M")


# -- questions ("stel een vraag") -----------------------------------------------------------


@router.get("/questions")
def questions(
    request: Request, user: Viewer, s: SessionDep, collaboration: Annotated[str, Query(max_length=100)] = ""
) -> Response:
    """A requester: the form and their own questions; a scientist: their collaborations' questions, to answer."""
    return _questions_page(request, user, s, {"collaboration": collaboration}, {})


def _questions_page(
    request: Request, user: WebUser, s: SessionDep, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    """Render the questions page for the user's role."""
    collabs = _collaborations(s, user)
    by_id = {c.id: c for c in collabs}
    q = select(db.Question).order_by(db.Question.created.desc(), db.Question.id.desc())
    if user.role == "requester":
        q = q.where(db.Question.asked_by == user.user_id)
    else:
        q = q.where(db.Question.collaboration_id.in_(list(by_id)))
    qs = list(s.scalars(q))
    if user.role == "requester":
        shown = [x for x in qs if x.collaboration_id in by_id]  # NB: left collaborations' questions are not shown
    else:
        shown = sorted(qs, key=lambda x: x.status != "open")  # NB: open ones first, each group newest first
    names = {u.id: u.name for u in s.scalars(select(db.User).where(db.User.id.in_(
        {x.asked_by for x in shown} | {x.answered_by for x in shown if x.answered_by})))}  # fmt: skip
    return render(request, "dashboards/questions.html", {
        "collabs": collabs, "by_id": by_id, "questions": shown, "names": names, "values": values,
        "errors": errors, "max_question": MAX_QUESTION, "max_text": MAX_TEXT, "date": _date,
    }, status=status)  # fmt: skip


@router.post("/questions")
def ask(
    request: Request,
    user: Requester,
    _csrf: CsrfDep,
    s: SessionDep,
    hub: HubDep,
    collaboration: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
) -> Response:
    """Record a requester's question to one of their collaborations; logged as question-asked."""
    _ = _tr(request)
    collab = hub_deps.collaboration(s, collaboration)
    hub_deps.require_member(s, user.caller(), collab)
    text = text.strip()
    errors = {}
    if not text:
        errors["text"] = _("Write your question.")
    elif len(text) > MAX_QUESTION:
        errors["text"] = _("The question is too long (at most %(n)s characters).") % {"n": MAX_QUESTION}
    if errors:
        return _questions_page(request, user, s, {"collaboration": collaboration, "text": text}, errors, 422)
    qn = db.Question(collaboration_id=collab.id, asked_by=user.user_id, text=text)
    s.add(qn)
    s.flush()
    # NB: the audit entry names the question, not its text (free text may say more about a person than needed)
    hub.log(s, actor=user.name, action="question-asked", subject=f"question/{qn.id}",
            details={"question": qn.id, "collaboration": collab.name})  # fmt: skip
    s.commit()
    return RedirectResponse("/questions", status_code=303)


@router.post("/questions/{qid}/answer")
def answer(
    request: Request,
    qid: int,
    user: Scientist,
    _csrf: CsrfDep,
    s: SessionDep,
    hub: HubDep,
    text: Annotated[str, Form()] = "",
) -> Response:
    """Answer an open question of one of the scientist's collaborations; logged as question-answered."""
    _ = _tr(request)
    qn = s.get(db.Question, qid)
    if qn is None:
        raise HTTPException(404, f"no question {qid}")
    collab = s.get(db.Collaboration, qn.collaboration_id)
    assert collab is not None  # NB: a foreign key
    hub_deps.require_member(s, user.caller(), collab)
    if qn.status != "open":
        raise HTTPException(409, _("This question has already been answered."))
    text = text.strip()
    if not text or len(text) > MAX_TEXT:
        msg = _("Write an answer of at most %(n)s characters.") % {"n": MAX_TEXT}
        return _questions_page(request, user, s, {f"answer-{qid}": text}, {f"answer-{qid}": msg}, 422)
    qn.answer, qn.status, qn.answered_by, qn.answered = text, "answered", user.user_id, db.utcnow()
    hub.log(s, actor=user.name, action="question-answered", subject=f"question/{qn.id}",
            details={"question": qn.id, "collaboration": collab.name})  # fmt: skip
    s.commit()
    return RedirectResponse("/questions", status_code=303)
