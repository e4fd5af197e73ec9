"""Rendering pages: one Jinja2 environment (autoescaped, gettext), the context every page gets."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .deps import CSRF_FIELD, WebUser
from .i18n import negotiate, translations

TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def environment(lang: str) -> Environment:
    """The Jinja2 environment of one language (autoescape on, the i18n extension with its translations)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml"], default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    """Render a page (or an htmx fragment) in the request's language.

    Every template sees ``user`` (or None), ``lang``, ``csrf_field`` (a hidden input with the
    session's CSRF token, to put in every form), ``app`` (``"hub"`` or ``"station"``), ``path``,
    the header's ``nav``, ``site_org``, ``site_org_title``, ``role_label_id`` (web/public.py) and the
    environment's newstyle gettext functions ``_``, ``gettext``, ``ngettext`` (``_("%(n)s rows", n=3)``).
    """
    from .public import header_context  # NB: here, not at the top: public imports render

    lang = negotiate(request)
    user: WebUser | None = getattr(request.state, "user", None)
    ctx: dict[str, Any] = {
        "request": request,
        "user": user,
        "lang": lang,
        "app": getattr(request.app.state, "kind", "hub"),
        "path": request.url.path,
        "csrf_name": CSRF_FIELD,
        "csrf": user.csrf if user else "",
        **header_context(request, user),
        **(context or {}),
    }
    html = environment(lang).get_template(template).render(ctx)
    return HTMLResponse(html, status_code=status)
