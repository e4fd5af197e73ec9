"""The two web apps: the hub's pages and a datastation's stewards' pages; their error pages and headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from ..workspace.config import WebConfig
from ..workspace.hub.core import Hub
from .deps import LoginRequired
from .render import render

STATIC = Path(__file__).parent / "static"
# NB: nothing outside the workspace is ever fetched: no CDN, no tile server, no remote font.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class SecurityHeaders(BaseHTTPMiddleware):
    """Add the headers every page carries (CSP, HSTS, no framing, no sniffing, no caching of pages)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            h.setdefault("Cache-Control", "no-store")
        return response


def _common(app: FastAPI) -> None:
    """Static files, security headers, the login redirect and the error pages of both apps."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login?next=" + quote(exc.next_url, safe=""), status_code=303)

    @app.exception_handler(StarletteHTTPException)  # NB: Starlette's class: also the router's own 404 and 405
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, "error.html", {"status": exc.status_code, "detail": exc.detail}, status=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        return render(request, "error.html", {"status": 422, "detail": "invalid"}, status=422)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        # NB: the page says nothing of the exception; the server's log gets the traceback (re-raised by Starlette)
        try:
            return render(request, "error.html", {"status": 500, "detail": ""}, status=500)
        except Exception:  # NB: the error page itself failed (the database may be down)
            return Response("500", status_code=500, media_type="text/plain")


def create_hub_web(hub: Hub, cfg: WebConfig, *, station_urls: dict[str, str] | None = None) -> FastAPI:
    """Return the hub's web application (pages for analysts, inzichtvragers, privacy officers, admins)."""
    from . import accounts, admin, analyst, auth, dashboards, dcat, privacy, public

    app = FastAPI(title="werkplaats", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.kind = "hub"
    app.state.hub = hub
    app.state.cfg = cfg
    app.state.accounts = accounts.HubAccounts(hub, cfg)
    _common(app)
    for m in (public, auth, analyst, dashboards, privacy, admin, dcat):
        app.include_router(m.router)
    return app


def create_station_web(station: Any, cfg: WebConfig) -> FastAPI:
    """Return a datastation's web application: its stewards' inbox, review, approve, reject and log."""
    from . import accounts, auth, public
    from . import station as station_pages

    app = FastAPI(title="werkplaats datastation", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.kind = "station"
    app.state.station = station
    app.state.cfg = cfg
    app.state.accounts = accounts.StationAccounts(station, cfg)
    _common(app)
    for m in (public, auth, station_pages):
        app.include_router(m.router)
    return app
