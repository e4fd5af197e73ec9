"""Every page of both web apps, tried by every role that may not open it (403) and by nobody (to /login).

The routes are enumerated from the apps and each route's roles read from its ``require_role``
dependency, so pages added later are covered without touching this file. A page without
``require_role`` must be listed in PUBLIC (and is then checked to need no login).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from werkplaats.web import create_station_web
from werkplaats.web.deps import COOKIE
from werkplaats.workspace import db, pki
from werkplaats.workspace.audit import FileLog
from werkplaats.workspace.config import WebConfig

from .conftest import Web

# NB: the pages anyone may open without logging in (method, path)
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/login/totp"),
    ("POST", "/login/totp"),
    ("GET", "/lang/{code}"),
    ("GET", "/accessibility"),
    ("GET", "/dcat/catalog.jsonld"),
}
USER_OF = {"admin": "beheerder", "steward": "st-ggd", "scientist": "analist", "requester": "beleid",
           "privacy-officer": "fg"}  # fmt: skip


def roles_of(dep: Dependant) -> tuple[str, ...] | None:
    """The roles of the require_role check among a route's dependencies (None when it has none)."""
    for d in dep.dependencies:
        roles = getattr(d.call, "roles", None)
        if roles is not None:
            return tuple(roles)
        inner = roles_of(d)
        if inner is not None:
            return inner
    return None


def _pages(items: Any) -> Any:
    """Yield (methods, path, dependant) of routes, into included routers (FastAPI includes them lazily)."""
    for r in items:
        if hasattr(r, "effective_candidates"):  # NB: an included router: its routes with prefix and dependencies
            yield from _pages(r.effective_candidates())
        elif isinstance(r, APIRoute) or (getattr(r, "dependant", None) is not None and getattr(r, "methods", None)):
            yield r.methods, r.path, r.dependant


def routes(app: FastAPI) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """(method, path, roles) of every page of an app."""
    out = []
    for methods, path, dependant in _pages(app.routes):
        for m in sorted(set(methods) - {"HEAD"}):
            out.append((m, path, roles_of(dependant)))
    assert out, "no pages found: has FastAPI's route table changed?"
    return out


def concrete(path: str) -> str:
    """A path with every parameter filled in (1: the checks run before any lookup)."""
    return re.sub(r"\{[^}]+\}", "1", path)


def send(c: TestClient, method: str, path: str, csrf: str = "") -> Any:
    if method == "GET":
        return c.get(concrete(path))
    return c.request(method, concrete(path), data={"csrf_token": csrf}, headers={"X-CSRF-Token": csrf})


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_every_page_declares_its_roles_or_is_public(web: Web) -> None:
    missing = [(m, p) for m, p, roles in routes(web.app) if roles is None and (m, p) not in PUBLIC]
    assert missing == [], "pages without require_role (add it, or list them in PUBLIC)"
    assert all(set(roles or ()) <= set(db.ROLES) for _, _, roles in routes(web.app))


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_every_role_is_refused_every_other_roles_page(web: Web) -> None:
    clients = {role: web.as_(name) for role, name in USER_OF.items()}
    csrf = {role: web.csrf(c) for role, c in clients.items()}
    tried = 0
    for method, path, roles in routes(web.app):
        if roles is None:
            continue
        for role in db.ROLES:
            if role in roles:
                continue
            r = send(clients[role], method, path, csrf[role])
            assert r.status_code == 403, (role, method, path, r.status_code)
            tried += 1
    assert tried > 0


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_nobody_logged_in_is_sent_to_login_and_public_pages_need_no_login(web: Web) -> None:
    c = web.client()
    for method, path, _roles in routes(web.app):
        r = send(c, method, path)
        if (method, path) in PUBLIC:
            assert method != "GET" or r.status_code not in (401, 403), path  # NB: a POST may need its form's token
            continue
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (method, path)
        h = c.request(method, concrete(path), headers={"HX-Request": "true"})
        assert h.status_code == 401 and h.headers["hx-redirect"] == "/login", (method, path)
    assert c.cookies.get(COOKIE) is None


@pytest.fixture
def station_app(tmp_path: Path) -> FastAPI:
    pki.new_signing_key(tmp_path / "ggd.key")
    key = pki.load_signing_key(tmp_path / "ggd.key")
    cfg = SimpleNamespace(organisation="ggd", name="ds-ggd", state_dir=tmp_path)
    station = SimpleNamespace(cfg=cfg, log=FileLog(tmp_path / "contributions.jsonl", "ggd", key))
    return create_station_web(station, WebConfig("127.0.0.1", 0, "https://testserver"))


def test_station_pages_are_for_its_stewards_and_need_a_login(station_app: FastAPI) -> None:
    pages = routes(station_app)
    missing = [(m, p) for m, p, roles in pages if roles is None and (m, p) not in PUBLIC]
    assert missing == [], "pages without require_role (add it, or list them in PUBLIC)"
    assert all(set(roles or ()) <= {*db.ROLES} and "steward" in (roles or ("steward",)) for _, _, roles in pages)
    with TestClient(station_app, base_url="https://testserver", follow_redirects=False) as c:
        for method, path, _roles in pages:
            r = send(c, method, path)
            if (method, path) in PUBLIC:
                assert method != "GET" or r.status_code not in (401, 403), path
                continue
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (method, path)
        # a hub session token means nothing here: the datastation has its own store
        c.cookies.set(COOKIE, "a-token-of-the-hub")
        assert send(c, "GET", "/account").status_code == 303
