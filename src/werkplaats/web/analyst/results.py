"""Results: the released cells (suppressed ones as ``< k``), a model's summary, a chart, CSV and XLSX downloads.

The hub has only the released result (`db.Result`): a suppressed cell has no value there, so
nothing shown or downloaded here can hold one.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ...plan.serde import plan_from_dict
from ...workspace.hub.deps import request_by_id
from ...workspace.hub.routes import requests as api
from ...workspace.hub.schemas import ResultPublic
from ..deps import SessionDep
from ..i18n import negotiate, translations
from ..reasons import translate
from ..render import render
from .common import Scientist, gettext_of, pages

router = APIRouter()
DUTCH = str.maketrans(",.", ".,")
MARKS = ("suppressed", "reason")  # NB: the result frame's columns that say what was withheld and why
SUMMARY_ATTRS = ("family", "n", "df_model", "df_resid", "deviance", "null_deviance", "aic", "iterations", "converged",
                 "events", "persons", "per", "standard", "withheld", "reason")  # fmt: skip


def text(v: Any, lang: str = "en") -> str:
    """A released value as the table shows it: whole numbers as they are, others with 4 significant digits
    (below 1) or 2 decimals; in Dutch with a decimal comma and a dot between thousands."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        out = f"{v:.0f}" if v.is_integer() and abs(v) < 1e15 else f"{v:.4g}" if abs(v) < 1 else f"{v:,.2f}"
        return out.translate(DUTCH) if lang == "nl" else out
    return "" if v is None else str(v)


def table_rows(data: dict[str, Any], keys: tuple[str, ...], page: int, lang: str = "en") -> dict[str, Any]:
    """One page of a result's rows: each cell's text, and whether it is suppressed (``< k``) or withheld (—)."""
    shown = [c for c in data["columns"] if c not in MARKS]
    p = pages(len(data["rows"]), page)
    rows = []
    for row in data["rows"][p["start"] : p["stop"]]:
        sup = bool(row.get("suppressed"))
        cells = []
        for c in shown:
            v = row.get(c)
            missing = v is None or (isinstance(v, float) and math.isnan(v))
            mark = "" if not missing or c in keys else "suppressed" if sup else "withheld"
            cells.append({"text": text(v, lang) if not missing else "", "mark": mark, "key": c in keys})
        reason = translate(row.get("reason") or "", translations(lang).gettext)
        rows.append({"cells": cells, "reason": reason, "suppressed": sup})
    return {"columns": shown, "keys": keys, "rows": rows, "p": p, "k": data["min_group_size"],
            "has_reason": "reason" in data["columns"]}  # fmt: skip


def _result(s: Any, user: Any, rid: int) -> tuple[Any, ResultPublic, tuple[str, ...]]:
    r = request_by_id(s, rid)
    res = api.result(user.caller(), r, s)
    return r, res, tuple(getattr(plan_from_dict(r.plan).root, "keys", ()))


def chart(res: ResultPublic, keys: tuple[str, ...]) -> Any:
    """The result's natural chart (`web.charts`), or None: a weekly trend per region, or bars of one key's cells.

    A trend when a key is ``week`` (one line per other key, at most 12 lines); bars when there is one
    key and at most 60 cells. The value is the first numeric column that is not a key.
    """
    from ...workspace.client import result_from
    from .. import charts

    frame = result_from(res.model_dump())
    values = [c for c in frame.columns if c not in (*keys, *MARKS) and pd.api.types.is_numeric_dtype(frame[c])]
    if not values or not keys or "term" in frame.columns:
        return None
    if "week" in keys and len(keys) <= 2:
        group = next((k for k in keys if k != "week"), None)
        if group is not None and frame[group].nunique() > 12:
            return None
        return charts.trend(frame, "week", values[0], group=group, k=res.min_group_size)
    if len(keys) == 1 and len(frame) <= 60:
        return charts.bar(frame, keys[0], values[0], k=res.min_group_size)
    return None


@router.get("/requests/{rid}/result", response_class=HTMLResponse)
def result_page(request: Request, rid: int, user: Scientist, s: SessionDep, page: int = 1) -> HTMLResponse:
    """The released result: its table (50 rows a page), a model's summary, a chart, the downloads."""
    r, res, keys = _result(s, user, rid)
    data = res.model_dump()
    lang = negotiate(request)
    table = table_rows(data, keys, page, lang)
    summary = [(k, text(res.attrs[k], lang)) for k in SUMMARY_ATTRS if k in res.attrs]
    ctx = {"rid": rid, "res": res, "table": table, "summary": summary, "purpose": r.purpose,
           "chart": chart(res, keys), "base": f"/requests/{rid}/result"}  # fmt: skip
    if request.headers.get("hx-request"):
        return render(request, "analyst/_table.html", ctx)
    return render(request, "analyst/result.html", ctx)


def _note(request: Request, k: int) -> str:
    gettext = gettext_of(request)
    return gettext(
        "< k: fewer than k persons or records (k = %(k)s); the value was suppressed and is not released."
    ) % {"k": k}


def _sheet_rows(request: Request, res: ResultPublic) -> tuple[list[str], list[list[Any]]]:
    """The result as rows for a download: suppressed cells empty, a note column saying why."""
    shown = [c for c in res.columns if c not in MARKS]
    gettext = gettext_of(request)
    head = [*shown, gettext("note")]
    out = []
    for row in res.rows:
        note = f"< {res.min_group_size}" if row.get("suppressed") else ""
        if row.get("reason"):
            why = translate(str(row["reason"]), gettext)
            note = f"{note} ({why})" if note else why
        out.append([row.get(c) for c in shown] + [note])
    return head, out


@router.get("/requests/{rid}/result.csv")
def result_csv(request: Request, rid: int, user: Scientist, s: SessionDep) -> Response:
    """The released result as CSV (UTF-8): suppressed cells empty, marked ``< k`` in the note column."""
    _r, res, _keys = _result(s, user, rid)
    head, rows = _sheet_rows(request, res)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows([["" if v is None else v for v in row] for row in rows])
    w.writerow([])
    w.writerow([_note(request, res.min_group_size)])
    name = f"werkplaats-request-{rid}.csv"
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


@router.get("/requests/{rid}/result.xlsx")
def result_xlsx(request: Request, rid: int, user: Scientist, s: SessionDep) -> Response:
    """The released result as an Excel workbook: the result sheet, and a sheet explaining ``< k`` and the request."""
    from openpyxl import Workbook

    r, res, _keys = _result(s, user, rid)
    gettext = gettext_of(request)
    head, rows = _sheet_rows(request, res)
    wb = Workbook(write_only=True)  # NB: streams rows: a few thousand cells in well under a second
    ws = wb.create_sheet(gettext("result"))
    ws.append(head)
    for row in rows:
        ws.append(row)
    notes = wb.create_sheet(gettext("notes"))
    notes.append([_note(request, res.min_group_size)])
    notes.append([gettext("Request"), rid])
    notes.append([gettext("Job"), res.job])
    notes.append([gettext("Purpose"), r.purpose])
    for k, v in res.attrs.items():
        notes.append([k, text(v) if not isinstance(v, dict | list) else str(v)])
    buf = io.BytesIO()
    wb.save(buf)
    name = f"werkplaats-request-{rid}.xlsx"
    return Response(buf.getvalue(), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip
