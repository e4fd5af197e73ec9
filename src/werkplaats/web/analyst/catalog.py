"""The catalog: datasets per organisation of the user's collaborations; a dataset's columns and code lists."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from ...workspace.hub.routes import catalog as api
from ..deps import SessionDep
from ..render import render
from .common import Scientist, pages

router = APIRouter()
CODES_SHOWN = 12  # NB: a longer code list is paged on its own (htmx), 50 codes a page
CODES_PAGE = 50


def _columns(schema: dict[str, Any], completeness: dict[str, float]) -> list[dict[str, Any]]:
    """A Frictionless schema's fields as the page shows them."""
    out = []
    for f in schema.get("fields", []):
        cons = f.get("constraints", {})
        codes = [str(c) for c in cons.get("enum", [])]
        out.append(
            {
                "name": f["name"],
                "type": f.get("type", ""),
                "description": f.get("description", ""),
                "codes": codes,
                "minimum": cons.get("minimum"),
                "maximum": cons.get("maximum"),
                "role": f.get("werkplaats:role", ""),
                "completeness": completeness.get(f["name"]),
            }
        )
    return out


def _mean(values: dict[str, float]) -> float | None:
    return sum(values.values()) / len(values) if values else None


@router.get("/catalog", response_class=HTMLResponse)
def catalog(request: Request, user: Scientist, s: SessionDep) -> HTMLResponse:
    """The datasets of the user's collaborations, per organisation."""
    collabs = api.list_collabs(user.caller(), s)
    mine: dict[str, list[str]] = {}
    for c in collabs:
        for name in c.datasets:
            mine.setdefault(name, []).append(c.name)
    by_org: dict[str, list[dict[str, Any]]] = {}
    for ds in api.list_datasets(user.caller(), s):
        if ds.name in mine:
            by_org.setdefault(ds.organisation, []).append(
                {"d": ds, "collaborations": mine[ds.name], "completeness": _mean(ds.completeness)}
            )
    ctx = {"by_org": sorted(by_org.items()), "collaborations": collabs}
    return render(request, "analyst/catalog.html", ctx)


@router.get("/catalog/{org}/{table}", response_class=HTMLResponse)
def dataset(request: Request, org: str, table: str, user: Scientist, s: SessionDep) -> HTMLResponse:
    """One dataset: its columns with types, code lists, completeness and the person key; its rules."""
    d = api.get_dataset(org, table, user.caller(), s)
    cols = _columns(d.table_schema, d.completeness)
    return render(request, "analyst/dataset.html", {"d": d, "columns": cols, "shown": CODES_SHOWN})


@router.get("/catalog/{org}/{table}/codes/{column}", response_class=HTMLResponse)
def codes(request: Request, org: str, table: str, column: str, user: Scientist, s: SessionDep,
          page: int = 1) -> HTMLResponse:  # fmt: skip
    """A page of a column's code list (a fragment for htmx, or a page of its own)."""
    d = api.get_dataset(org, table, user.caller(), s)
    col = next((c for c in _columns(d.table_schema, d.completeness) if c["name"] == column), None)
    if col is None:
        raise HTTPException(404, f"no column {column!r} in {d.name}")
    p = pages(len(col["codes"]), page, CODES_PAGE)
    ctx = {"d": d, "col": col, "p": p, "codes": col["codes"][p["start"] : p["stop"]]}
    fragment = bool(request.headers.get("hx-request"))
    return render(request, "analyst/_codes.html" if fragment else "analyst/codes.html", ctx)
