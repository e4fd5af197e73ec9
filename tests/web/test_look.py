"""The look of every page: Dutch by default, English after the switch, the role's own navigation, escaped
data, security headers, nothing loaded from outside; home by role; the language switch; error pages; the
vendored files as VERSIONS.json records them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import HTTPException, Request
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from werkplaats.web import create_station_web
from werkplaats.web.deps import COOKIE, CsrfDep, WebUser
from werkplaats.web.public import NAV
from werkplaats.workspace import db
from werkplaats.workspace.config import WebConfig

from .conftest import Web
from .station_fixture import Stations, both_orgs, stations  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "werkplaats" / "web" / "static"
USER_OF_ROLE = {"scientist": "analist", "requester": "beleid", "privacy-officer": "fg", "admin": "beheerder"}
DOWNLOADS = (".csv", ".json", ".jsonld", ".xlsx")


def routes(app: Any) -> Iterator[APIRoute]:
    """Every API route of an app, through included routers."""

    def walk(rs: list[Any]) -> Iterator[APIRoute]:
        for r in rs:
            if hasattr(r, "original_router"):
                yield from walk(r.original_router.routes)
            elif isinstance(r, APIRoute):
                yield r

    yield from walk(app.routes)


def roles_of(route: APIRoute) -> set[str]:
    """The roles a route's ``require_role`` admits (empty: a public route)."""

    def walk(dep: Any) -> set[str]:
        out: set[str] = set()
        for d in dep.dependencies:
            out |= set(getattr(d.call, "roles", ())) | walk(d)
        return out

    return walk(route.dependant)


def needs_query(route: APIRoute) -> bool:
    """Whether a route needs a query parameter (``/dashboards/new?request=...``)."""
    return any(q.field_info.is_required() for q in route.dependant.query_params)


def pages(app: Any, role: str) -> list[str]:
    """The HTML pages without parameters in their path that a role may open (downloads and / left out)."""
    out = []
    for r in routes(app):
        plain = "{" not in r.path and r.path != "/" and not r.path.endswith(DOWNLOADS) and not needs_query(r)
        if "GET" in (r.methods or ()) and plain and role in roles_of(r):
            out.append(r.path)
    return sorted(out)


class Links(HTMLParser):
    """The attributes of a page that load or lead somewhere, the <h1> count, the nav links."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # NB: (tag, attribute, value)
        self.h1 = 0
        self.nav: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.h1 += tag == "h1"
        for k in ("src", "href", "action", "formaction", "poster", "data", "hx-get", "hx-post", "srcset"):
            if k in a:
                self.refs.append((tag, k, a[k]))
        if tag == "a" and "wp-nav__link" in a.get("class", ""):
            self.nav.append((a["href"], a.get("aria-current") == "page"))


def parse(html: str) -> Links:
    p = Links()
    p.feed(html)
    return p


def local(value: str) -> bool:
    """A reference to this site (a path, a fragment), never to another host or scheme."""
    return value.startswith("#") or (value.startswith("/") and not value.startswith("//") and "\\" not in value)


def test_every_page_is_dutch_then_english_with_one_h1_headers_and_nothing_from_outside(web: Web) -> None:
    seen = 0
    for role, name in USER_OF_ROLE.items():
        c = web.as_(name)
        for path in pages(web.app, role):
            r = c.get(path)
            assert r.status_code == 200, (role, path, r.status_code)
            assert '<html lang="nl"' in r.text, (role, path)
            page = parse(r.text)
            assert page.h1 == 1, (path, page.h1)
            assert 'href="#main"' in r.text and 'id="main"' in r.text
            outside = [ref for ref in page.refs if not local(ref[2])]
            assert not outside, (path, outside)
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "unsafe-eval" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["strict-transport-security"].startswith("max-age=")
            assert r.headers["cache-control"] == "no-store"
            seen += 1
        assert c.get("/lang/en", headers={"referer": "https://testserver/accessibility"}).status_code == 303
        for path in pages(web.app, role):
            r = c.get(path)
            assert r.status_code == 200 and '<html lang="en"' in r.text, (role, path)
            assert "Skip to content" in r.text and "Naar de inhoud" not in r.text
    anon = web.client()
    for path in ("/accessibility", "/login"):
        assert '<html lang="nl"' in anon.get(path).text
    assert seen >= 10


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: no query of its own differs
def test_navigation_shows_only_the_role_own_links_and_marks_the_current_page(web: Web) -> None:
    all_routes = {r.path: r for r in routes(web.app) if "GET" in (r.methods or ())}
    for role, name in {**USER_OF_ROLE, "steward": "st-ggd"}.items():
        c = web.as_(name)
        expected = [href for href, _label in NAV["hub"][role]]
        nav = parse(c.get("/accessibility").text).nav
        assert [h for h, _ in nav] == expected, role
        assert not any(current for _, current in nav)  # NB: /accessibility is in no menu
        for href in expected:  # NB: the menu only leads to pages the role may open
            assert href in all_routes and role in roles_of(all_routes[href]), (role, href)
        first = expected[0]
        nav = parse(c.get(first).text).nav
        assert [h for h, cur in nav if cur] == [first], role
    # the analyst's menu has none of the privacy officer's or admin's pages
    text = web.as_("analist").get("/accessibility").text
    assert 'href="/audit"' not in text and 'href="/admin/users"' not in text


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: no query of its own differs
def test_header_shows_who_is_logged_in_and_a_logout_form_with_csrf(web: Web) -> None:
    c = web.as_("analist")
    text = c.get("/accessibility").text
    assert "Ingelogd als analist" in text and "(analist)" in text
    assert "Hub · ggd Referentieregio" in text
    form = re.search(r'<form class="wp-logout" method="post" action="/logout">(.*?)</form>', text, re.S)
    assert form and f'name="csrf_token" value="{web.csrf(c)}"' in form.group(1)
    assert 'lang="en" hreflang="en"' in text and 'lang="nl" hreflang="nl" aria-current="true"' in text
    config = json.loads(re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", text).group(1))  # type: ignore[union-attr]
    assert config["historyCacheSize"] == 0 and config["allowEval"] is False  # NB: no page copies in localStorage
    live = re.search(
        r'<div id="wp-htmx-error" class="wp-live" aria-live="assertive" data-message="([^"]*)"></div>', text
    )
    assert live and live.group(1).startswith("Dit is niet gelukt (fout {code})")  # NB: werkplaats.js fills it
    anon = web.client().get("/accessibility").text
    assert "Ingelogd als" not in anon and "wp-logout" not in anon and "wp-nav" not in anon


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: no query of its own differs
def test_an_organisation_title_with_a_script_tag_is_shown_as_text(web: Web) -> None:
    with web.hub.sessions() as s:
        org = s.scalars(select(db.Organisation).where(db.Organisation.name == "ggd")).one()
        org.title = '<script>alert("x")</script> & Co'
        s.commit()
    text = web.as_("analist").get("/accessibility").text
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in text


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: no query of its own differs
def test_home_sends_each_role_to_its_start_page(web: Web) -> None:
    for role, target in {"scientist": "/requests", "requester": "/dashboards", "admin": "/admin/organisations"}.items():
        r = web.as_(USER_OF_ROLE[role]).get("/")
        assert (r.status_code, r.headers["location"]) == (303, target)
    assert web.as_("fg").get("/").headers["location"] == "/audit"
    r = web.client().get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_steward_at_the_hub_gets_a_link_to_their_own_datastation_only(web: Web) -> None:
    c = web.as_("st-ggd")
    r = c.get("/")
    assert r.status_code == 200 and "Mijn datastation" in r.text
    assert "nog niet doorgegeven" in r.text  # NB: no datastation has told its address yet
    with web.hub.sessions() as s:
        orgs = {o.name: o.id for o in s.scalars(select(db.Organisation))}
        s.add_all(
            [
                db.Node(name="ds-ggd", kind="datastation", organisation_id=orgs["ggd"], token_hash="a" * 64,
                        web_url="https://ds-ggd.example:8443"),
                db.Node(name="ds-ha", kind="datastation", organisation_id=orgs["huisartsen"], token_hash="b" * 64,
                        web_url="https://ds-ha.example:8443"),
                db.Node(name="ds-ggd-2", kind="datastation", organisation_id=orgs["ggd"], token_hash="c" * 64,
                        web_url="javascript:alert(1)"),
            ]
        )  # fmt: skip
        s.commit()
    text = c.get("/").text
    assert 'href="https://ds-ggd.example:8443"' in text and "datastation ds-ggd" in text
    assert "ds-ha.example" not in text  # NB: another organisation's datastation
    assert "javascript:" not in text  # NB: only https addresses become links


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: no query of its own differs
def test_language_switch_sets_a_lax_cookie_for_a_year_and_goes_back_to_a_local_page_only(web: Web) -> None:
    c = web.client()
    r = c.get("/lang/en", headers={"referer": "https://testserver/catalog?q=zorg"})
    assert (r.status_code, r.headers["location"]) == (303, "/catalog?q=zorg")
    cookie = r.headers["set-cookie"].lower()
    assert "lang=en" in cookie and "samesite=lax" in cookie and "max-age=31536000" in cookie and "secure" in cookie
    assert '<html lang="en"' in c.get("/accessibility").text
    for referer in ("https://evil.example/catalog", "https://testserver//evil.example/x", "javascript:alert(1)", ""):
        r = c.get("/lang/nl", headers={"referer": referer} if referer else {})
        assert r.headers["location"] == "/", referer
    assert '<html lang="nl"' in c.get("/accessibility").text
    r = c.get("/lang/de")
    assert r.status_code == 404 and "set-cookie" not in r.headers
    c.cookies.set("lang", "xx")
    assert '<html lang="nl"' in c.get("/accessibility").text


@pytest.fixture
def probes(web: Web) -> Web:
    """The web app with three routes that fail on purpose: a CSRF-checked POST, a typed query, a crash."""

    def form(request: Request, user: CsrfDep) -> PlainTextResponse:
        return PlainTextResponse("ok")

    def typed(n: int) -> PlainTextResponse:
        return PlainTextResponse(str(n))

    def crash() -> PlainTextResponse:
        msg = "geheim-wachtwoord-123"
        raise RuntimeError(msg)

    web.app.router.add_api_route("/_probe/form", form, methods=["POST"])
    web.app.router.add_api_route("/_probe/typed", typed, methods=["GET"])

    def conflict() -> PlainTextResponse:
        raise HTTPException(409, "request 7 is no longer <pending>")

    web.app.router.add_api_route("/_probe/crash", crash, methods=["GET"])
    web.app.router.add_api_route("/_probe/conflict", conflict, methods=["GET"])
    return web


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: no query of its own differs
def test_error_pages_explain_in_dutch_and_never_show_a_traceback(probes: Web) -> None:
    web = probes
    c = web.as_("analist")
    r = c.get("/audit")
    assert r.status_code == 403 and "Deze pagina is niet voor uw rol" in r.text and "wp-nav" in r.text
    r = c.post("/_probe/form", data={"csrf_token": "wrong"})
    assert r.status_code == 403 and "Het formulier kon niet worden aangenomen" in r.text
    assert c.post("/_probe/form", data={"csrf_token": web.csrf(c)}).text == "ok"
    r = c.get("/bestaat-niet")
    assert (
        r.status_code == 404 and "Pagina niet gevonden" in r.text and r.headers["content-type"].startswith("text/html")
    )
    assert "Not Found" not in r.text
    r = c.get("/_probe/typed?n=abc")
    assert r.status_code == 422 and "Er klopt iets niet in het formulier" in r.text and "abc" not in r.text
    r = c.get("/_probe/conflict")
    assert r.status_code == 409 and "Dit kan niet meer" in r.text and "request 7 is no longer &lt;pending&gt;" in r.text
    crashing = TestClient(web.app, base_url="https://testserver", raise_server_exceptions=False)
    crashing.cookies.set(COOKIE, c.cookies.get(COOKIE) or "")
    r = crashing.get("/_probe/crash")
    assert r.status_code == 500 and "Er ging bij ons iets mis" in r.text
    assert "geheim" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    crashing.close()


def station_app(tmp_path: Path) -> Any:
    """A datastation's web app (of organisation ggd) without its job loop."""
    station = SimpleNamespace(cfg=SimpleNamespace(organisation="ggd", state_dir=tmp_path))
    return create_station_web(station, WebConfig("127.0.0.1", 0, "https://testserver"))


def test_datastation_app_serves_home_accessibility_and_its_stewards_menu(tmp_path: Path) -> None:
    app = station_app(tmp_path)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as anon:
        assert anon.get("/").headers["location"].startswith("/login")
        text = anon.get("/accessibility").text
        assert "Toegankelijkheidsverklaring" in text and "Datastation ggd" in text and "Status C" in text

    class OneSteward:
        def user_for(self, token: str) -> WebUser | None:
            return WebUser("stew", "steward", "ggd", None, "csrf-token") if token == "t" else None

    app.state.accounts = OneSteward()
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        c.cookies.set(COOKIE, "t")
        assert c.get("/").headers["location"] == "/inbox"
        nav = parse(c.get("/accessibility").text).nav
        assert [h for h, _ in nav] == [h for h, _ in NAV["station"]["steward"]]


def test_static_files_are_served_with_security_headers(tmp_path: Path) -> None:
    with TestClient(station_app(tmp_path), base_url="https://testserver") as c:
        for path in ("/static/werkplaats.css", "/static/werkplaats.js", "/static/vendor/htmx.min.js"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff", path
            assert "default-src 'self'" in r.headers["content-security-policy"]
        assert c.get("/static/vendor/VERSIONS.json").json()["packages"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vendored_files_are_the_ones_versions_json_records() -> None:
    doc = json.loads((STATIC / "vendor" / "VERSIONS.json").read_text())
    pins = json.loads((ROOT / "tools" / "web-vendor" / "package.json").read_text())["dependencies"]
    lock = json.loads((ROOT / "tools" / "web-vendor" / "package-lock.json").read_text())["packages"]
    recorded: dict[Path, str] = {}
    for p in doc["packages"]:
        assert p["version"] == pins[p["package"]] == lock[f"node_modules/{p['package']}"]["version"], p["package"]
        assert p["license"], p["package"]
        for rel, digest in p["files"].items():
            path = ROOT / "src" / "werkplaats" / "web" / rel if rel.startswith("static/") else ROOT / rel
            recorded[path] = digest
    assert set(pins) == {p["package"] for p in doc["packages"]}
    for path, digest in recorded.items():
        assert sha256(path) == digest, f"{path} differs from VERSIONS.json: run python tools/vendor_web.py"
    on_disk = {p for d in (STATIC / "vendor", ROOT / "tests" / "web" / "vendor") for p in d.rglob("*") if p.is_file()}
    assert on_disk - {STATIC / "vendor" / "VERSIONS.json"} == set(recorded), "unrecorded or missing vendored files"


def test_stylesheets_fetch_nothing_from_outside() -> None:
    for css in [STATIC / "werkplaats.css", *(STATIC / "vendor").rglob("*.css")]:
        text = css.read_text()
        urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", text)
        assert all(u.startswith("data:") for u in urls), (css.name, [u for u in urls if not u.startswith("data:")])
        assert "@import" not in text, css.name


def test_datastation_pages_are_dutch_then_english_and_load_nothing_from_outside(stations: Stations) -> None:  # noqa: F811
    rid = stations.submit(both_orgs())
    c = stations.web("ggd", "look-steward")
    paths = ["/inbox", f"/inbox/{rid}", "/log", "/account", "/accessibility"]
    for path in paths:
        r = c.get(path)
        assert r.status_code == 200 and '<html lang="nl"' in r.text, (path, r.status_code)
        page = parse(r.text)
        assert page.h1 == 1, path
        assert not [ref for ref in page.refs if not local(ref[2])], path
        assert "Datastation ggd" in r.text and "unsafe-eval" not in r.headers["content-security-policy"]
        current = [h for h, cur in page.nav if cur]
        assert current == ([h for h in ("/inbox", "/log", "/account") if path.startswith(h)]), path
    c.get("/lang/en")
    for path in paths:
        assert '<html lang="en"' in c.get(path).text, path


def test_templates_put_the_csrf_token_in_every_post_form_and_never_mark_data_safe() -> None:
    templates = ROOT / "src" / "werkplaats" / "web" / "templates"
    problems = []
    for path in sorted(templates.rglob("*.html")):
        text = path.read_text()
        for m in re.finditer(r"<form\b[^>]*>", text, re.I):
            body = text[m.end() : text.find("</form>", m.end())]
            if re.search(r'method="post"', m.group(0), re.I) and "{{ csrf }}" not in body:
                problems.append(f"{path.relative_to(templates)}: a POST form without the CSRF field")
        if re.search(r"\|\s*safe\b|autoescape\s+false", text):
            problems.append(f"{path.relative_to(templates)}: |safe or autoescape false")
    for path in sorted((ROOT / "src" / "werkplaats" / "web").rglob("*.py")):
        if "Markup(" in path.read_text():
            problems.append(f"{path.name}: Markup() bypasses autoescaping")
    assert not problems, "\n".join(problems)
