"""The template gallery: each use case as a card; its form, the plan's explanation (htmx), and submitting it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ...exceptions import WerkplaatsError
from ...plan import nodes as n
from ...plan.explain import explain
from ...plan.serde import plan_to_dict
from ...workspace.hub.core import Hub
from ...workspace.hub.routes import catalog as catalog_api
from ...workspace.hub.routes import requests as api
from ...workspace.hub.schemas import RequestIn
from ...workspace.hub.views import catalog_docs
from ...workspace.jobs import catalog_of, job_rules
from ..deps import CsrfDep, HubDep, SessionDep
from ..gallery import BY_NAME, TEMPLATES, Template
from ..render import render
from .common import Scientist, gettext_of

router = APIRouter()


def _template(name: str) -> Template:
    t = BY_NAME.get(name)
    if t is None:
        raise HTTPException(404, f"no template {name!r}")
    return t


def _explained(s: Any, hub: Hub, t: Template, form: Any) -> tuple[dict[str, Any], str, str]:
    """The form's values, the plan's explanation with the rules its collaboration applies, and what is wrong.

    The rules are those a job of the chosen collaboration applies (`workspace.jobs.job_rules`, as the
    API's submit uses them), so the text reads as the stewards will read it after submitting.
    """
    try:
        values = t.values(form)
        plan = t.plan(values).to_plan()
        used = sorted({src.dataset for src in n.sources(plan.root)})
        catalog = catalog_of(catalog_docs(s, used))
        collab = str(form.get("collaboration") or "")
        rules = job_rules(hub.rules_settings(collab), catalog, used) if collab else None
        return values, explain(plan, rules=rules, catalog=catalog), ""
    except (WerkplaatsError, ValueError, KeyError) as e:
        return t.defaults() | {k: form.get(k) for k in form}, "", str(e)


def _form(request: Request, t: Template, user: Any, s: Any, hub: Hub, form: Any, *, error: str = "",
          purpose: str | None = None, collaboration: str = "", status: int = 200) -> HTMLResponse:  # fmt: skip
    collabs = [c.name for c in catalog_api.list_collabs(user.caller(), s)]
    chosen = collaboration or (collabs[0] if collabs else "")
    values, text, problem = _explained(s, hub, t, {**form, "collaboration": chosen})
    ctx = {"t": t, "values": values, "explain": text, "problem": problem, "error": error,
           "purpose": t.purpose if purpose is None else purpose, "collaborations": collabs,
           "collaboration": chosen}  # fmt: skip
    return render(request, "analyst/template.html", ctx, status=status)


@router.get("/templates", response_class=HTMLResponse)
def gallery(request: Request, user: Scientist) -> HTMLResponse:
    """Every use case as a card: its title and what it computes."""
    return render(request, "analyst/gallery.html", {"templates": TEMPLATES})


@router.get("/templates/{name}", response_class=HTMLResponse)
def template_form(request: Request, name: str, user: Scientist, s: SessionDep, hub: HubDep) -> HTMLResponse:
    """A use case's form: its parameters with their allowed values, the purpose, and the plan explained."""
    t = _template(name)
    return _form(request, t, user, s, hub, {k: str(v) if v is not False else "" for k, v in t.defaults().items()})


@router.post("/templates/{name}/explain", response_class=HTMLResponse)
async def explain_fragment(
    request: Request, name: str, user: Scientist, _: CsrfDep, s: SessionDep, hub: HubDep
) -> HTMLResponse:
    """The explanation of the plan of the form's current values (an htmx fragment)."""
    t = _template(name)
    _values, text, problem = _explained(s, hub, t, await request.form())
    return render(request, "analyst/_explain.html", {"explain": text, "problem": problem})


@router.post("/templates/{name}", response_class=HTMLResponse)
async def submit(request: Request, name: str, user: Scientist, _: CsrfDep, s: SessionDep, hub: HubDep) -> Response:
    """Submit the use case's plan as a request in the chosen collaboration; go to the request."""
    t = _template(name)
    form = await request.form()
    purpose, collab = str(form.get("purpose", "")), str(form.get("collaboration", ""))
    gettext = gettext_of(request)
    try:
        plan = t.plan(t.values(form)).to_plan()
        body = RequestIn(collaboration=collab, purpose=purpose, plan=plan_to_dict(plan))
        r = api.submit(body, user.caller(), s, hub)
    except HTTPException as e:
        if e.status_code == 403:
            raise  # NB: not a member of that collaboration: the API's answer, as a page
        return _form(
            request, t, user, s, hub, form, error=str(e.detail), purpose=purpose, collaboration=collab, status=422
        )
    except ValidationError:
        error = gettext("Give a purpose and choose a collaboration.")
        return _form(request, t, user, s, hub, form, error=error, purpose=purpose, collaboration=collab, status=422)
    except WerkplaatsError as e:
        return _form(request, t, user, s, hub, form, error=str(e), purpose=purpose, collaboration=collab, status=422)
    return RedirectResponse(f"/requests/{r.id}", status_code=303)
