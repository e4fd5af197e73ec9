"""Logging in to the web app: password, TOTP, sessions, logout, lockout, the audit; and the attacker's tries.

Every test runs on SQLite and PostgreSQL (the ``web`` fixture); the datastation's own account store
is tested at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from werkplaats.cli.app import app
from werkplaats.web import create_station_web
from werkplaats.web.accounts import AccountError, HubAccounts, StationAccounts, safe_next, totp_step
from werkplaats.web.deps import COOKIE
from werkplaats.workspace import db, pki
from werkplaats.workspace.audit import FileLog
from werkplaats.workspace.config import WebConfig
from werkplaats.workspace.datastation import Datastation
from werkplaats.workspace.hub import Hub

from .conftest import Web

PW = "correct horse battery staple"
ONE_DB = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: the flow itself runs on both
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
SECRET_ON_PAGE = re.compile(r"<code>([A-Z2-7]{32})</code>")


def account(web: Web, name: str, password: str = PW) -> str:
    """Create the web account of a hub user; return its TOTP secret ("" when not required)."""
    with web.hub.sessions() as s:
        u = s.scalars(select(db.User).where(db.User.name == name)).one()
        return HubAccounts(web.hub, web.cfg).create_account(s, u, password)


def csrf_of(page: str) -> str:
    m = CSRF.search(page)
    assert m, "the page has no CSRF field"
    return m.group(1)


def post_login(c: TestClient, name: str, password: str, nxt: str = "/") -> Any:
    """Open the login page and send its form."""
    page = c.get("/login", params={"next": nxt})
    assert page.status_code == 200
    return c.post("/login", data={"name": name, "password": password, "next": nxt, "csrf_token": csrf_of(page.text)})


def post_code(c: TestClient, code: str, nxt: str = "/") -> Any:
    page = c.get("/login/totp", params={"next": nxt})
    assert page.status_code == 200, page.text
    return c.post("/login/totp", data={"code": code, "next": nxt, "csrf_token": csrf_of(page.text)})


def code(secret: str, step: int = 0) -> str:
    """The TOTP code of the current time step plus step (each step is accepted once)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * step)


def few_failures(web: Web, n: int = 3) -> None:
    """Lock accounts after n failures (fewer password hashes to compute in a test)."""
    web.cfg = replace(web.cfg, max_failures=n)
    web.app.state.accounts = HubAccounts(web.hub, web.cfg)


def logged_in(c: TestClient) -> bool:
    r = c.get("/account")
    return r.status_code == 200


def audit(web: Web, prefix: str = "web-") -> list[dict[str, Any]]:
    with web.hub.sessions() as s:
        return [e for e in web.hub.audit_entries(s) if e["action"].startswith(prefix)]


def test_password_only_login_opens_a_session_and_logout_kills_the_cookie(web: Web) -> None:
    assert account(web, "analist") == ""  # NB: TOTP optional for a scientist
    c = web.client()
    assert c.get("/account").status_code == 303  # NB: anonymous → login
    r = post_login(c, "analist", PW, nxt="/catalog")
    assert r.status_code == 303 and r.headers["location"] == "/catalog"
    cookie = r.headers["set-cookie"]
    assert "wp_session=" in cookie
    for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower(), flag
    assert logged_in(c)
    stolen = c.cookies.get(COOKIE)
    r = c.post("/logout", data={"csrf_token": web.csrf(c)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    thief = web.client()
    thief.cookies.set(COOKIE, stolen or "")
    assert thief.get("/account").status_code == 303  # NB: the copied cookie is dead
    assert web.app.state.accounts.user_for(stolen) is None
    actions = [e["action"] for e in audit(web)]
    assert actions == ["web-login", "web-logout"]


def test_totp_required_for_privacy_officer_code_replay_refused(web: Web) -> None:
    secret = account(web, "fg")
    assert len(secret) == 32
    c = web.client()
    r = post_login(c, "fg", PW, nxt="/audit")
    assert r.status_code == 303 and r.headers["location"].startswith("/login/totp")
    assert not logged_in(c)  # NB: the pending session opens no page
    assert web.app.state.accounts.user_for(c.cookies.get("wp_pending") or "") is None
    ok = code(secret)
    r = post_code(c, ok, nxt="/audit")
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    assert logged_in(c)
    # the same code again, in a second browser that knows the password: refused (each step once)
    c2 = web.client()
    post_login(c2, "fg", PW)
    r = post_code(c2, ok)
    assert r.status_code == 401 and "wp_session" not in r.headers.get("set-cookie", "")
    assert not logged_in(c2)
    r = post_code(c2, code(secret, 1))  # NB: the next step is fresh
    assert r.status_code == 303 and logged_in(c2)
    failed = [e for e in audit(web) if e["action"] == "web-login-failed"]
    assert [e["details"]["reason"] for e in failed] == ["totp"]


def test_new_session_token_at_every_login(web: Web) -> None:
    account(web, "analist")
    c = web.client()
    c.cookies.set(COOKIE, "chosen-by-the-attacker")
    r = post_login(c, "analist", PW)
    first = re.search(r"wp_session=([^;]+)", r.headers["set-cookie"])
    assert first and first.group(1) != "chosen-by-the-attacker"
    assert web.app.state.accounts.user_for("chosen-by-the-attacker") is None
    r = post_login(web.client(), "analist", PW)
    second = re.search(r"wp_session=([^;]+)", r.headers["set-cookie"])
    assert second and second.group(1) != first.group(1)


@ONE_DB
def test_first_login_without_secret_enrols(web: Web) -> None:
    web.as_("fg")  # NB: an account without a password and secret (the fixture's); give it a password
    with web.hub.sessions() as s:
        u = s.scalars(select(db.User).where(db.User.name == "fg")).one()
        acc = s.scalars(select(db.WebAccount).where(db.WebAccount.user_id == u.id)).one()
        from werkplaats.web.accounts import hash_password

        acc.password_hash = hash_password(PW)
        s.commit()
    c = web.client()
    r = post_login(c, "fg", PW)
    assert r.headers["location"].startswith("/login/totp")
    page = c.get("/login/totp")
    m = SECRET_ON_PAGE.search(page.text)
    assert m and "otpauth://totp/" in page.text
    secret = m.group(1)
    r = post_code(c, code(secret))
    assert r.status_code == 303 and logged_in(c)
    with web.hub.sessions() as s:
        acc = s.get(db.WebAccount, acc.id)
        assert acc is not None and acc.totp_secret == secret
    assert "web-totp-enrolled" in [e["action"] for e in audit(web)]


@ONE_DB
def test_same_error_for_unknown_name_and_wrong_password(web: Web) -> None:
    account(web, "analist")
    c = web.client()
    unknown = post_login(c, "niemand", PW)
    wrong = post_login(c, "analist", "not the right password")
    assert unknown.status_code == wrong.status_code == 401

    def error(text: str) -> str:
        m = re.search(r'utrecht-alert__message">([^<]*)<', text)
        assert m
        return m.group(1)

    assert error(unknown.text) == error(wrong.text)
    assert "analist" not in wrong.text and "niemand" not in unknown.text  # NB: the form is empty again
    tried = [e["details"]["name"] for e in audit(web) if e["action"] == "web-login-failed"]
    assert tried == ["niemand", "analist"]


def test_brute_force_locks_even_the_right_password(web: Web) -> None:
    few_failures(web)
    account(web, "analist")
    c = web.client()
    for _ in range(web.cfg.max_failures - 1):
        assert post_login(c, "analist", "guess guess guess").status_code == 401
    r = post_login(c, "analist", "guess guess guess")
    locked_text = re.search(r'utrecht-alert__message">([^<]*)<', r.text)
    assert locked_text
    r = post_login(c, "analist", PW)  # NB: the right password while locked
    assert r.status_code == 401 and "wp_session" not in r.headers.get("set-cookie", "")
    assert re.search(r'utrecht-alert__message">([^<]*)<', r.text).group(1) == locked_text.group(1)  # type: ignore[union-attr]
    wrong_while_locked = post_login(c, "analist", "guess guess guess")
    assert wrong_while_locked.text.count(locked_text.group(1)) == 1  # NB: same page right or wrong
    actions = [e["action"] for e in audit(web)]
    assert actions.count("web-locked") == 1
    assert actions.count("web-login-failed") == web.cfg.max_failures + 2
    assert "web-login" not in actions
    # the lock ends after lockout_minutes
    with web.hub.sessions() as s:
        acc = s.scalars(select(db.WebAccount)).one()
        acc.locked_until = db.utcnow() - dt.timedelta(seconds=1)
        s.commit()
    r = post_login(c, "analist", PW)
    assert r.status_code == 303 and logged_in(c)


def test_wrong_totp_codes_count_as_failures_and_lock(web: Web) -> None:
    few_failures(web)
    secret = account(web, "fg")
    c = web.client()
    post_login(c, "fg", PW)
    right = {code(secret, k) for k in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1000) if f"{n:06d}" not in right)
    for _ in range(web.cfg.max_failures - 1):
        assert post_code(c, wrong).status_code == 401
    r = post_code(c, wrong)
    assert r.status_code == 401 and 'action="/login"' in r.text  # NB: back at the password, locked
    r = post_login(c, "fg", PW)
    assert r.status_code == 401  # NB: locked: no code page
    assert [e["action"] for e in audit(web)].count("web-locked") == 1


def test_expired_and_idle_sessions_are_dead(web: Web) -> None:
    account(web, "analist")
    for column in ("expires", "last_seen"):
        c = web.client()
        post_login(c, "analist", PW)
        assert logged_in(c)
        with web.hub.sessions() as s:
            ws = s.scalars(select(db.WebSession).order_by(db.WebSession.id.desc())).first()
            assert ws is not None
            back = dt.timedelta(hours=web.cfg.session_max_hours, minutes=web.cfg.session_idle_minutes + 1)
            setattr(ws, column, getattr(ws, column) - back)
            s.commit()
        assert not logged_in(c), column


def test_post_without_or_with_anothers_csrf_token_is_refused(web: Web) -> None:
    account(web, "analist")
    c, other = web.as_("analist"), web.as_("beleid")
    assert c.post("/logout").status_code == 403
    assert c.post("/logout", data={"csrf_token": web.csrf(other)}).status_code == 403
    assert c.post("/logout", headers={"X-CSRF-Token": web.csrf(other)}).status_code == 403
    assert logged_in(c)
    # the login form's own token: a form posted from elsewhere has none
    fresh = web.client()
    r = fresh.post("/login", data={"name": "analist", "password": PW, "csrf_token": "x"})
    assert r.status_code == 403 and "wp_session" not in r.headers.get("set-cookie", "")


EVIL_NEXT = ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "evil.example",
             "/\r\nX: y"]  # fmt: skip


@ONE_DB
def test_next_goes_to_a_local_path_only(web: Web) -> None:
    account(web, "analist")
    r = post_login(web.client(), "analist", PW, nxt="//evil.example/x")
    assert r.status_code == 303 and r.headers["location"] == "/"
    c = web.as_("analist")  # NB: a logged-in browser at /login goes straight on to next
    assert c.get("/login", params={"next": "/requests?page=2"}).headers["location"] == "/requests?page=2"
    for target in EVIL_NEXT:
        r = c.get("/login", params={"next": target})
        assert r.status_code == 303 and r.headers["location"] == "/", target


def test_safe_next_keeps_a_local_path_with_query() -> None:
    assert safe_next("/requests/3?tab=plan") == "/requests/3?tab=plan"
    assert safe_next(None) == "/"


@ONE_DB
def test_password_rules_and_rehash(web: Web) -> None:
    with web.hub.sessions() as s:
        u = s.scalars(select(db.User).where(db.User.name == "analist")).one()
        acc = HubAccounts(web.hub, web.cfg)
        for bad in ("short", "my name is analist ok", "x" * 2000):
            with pytest.raises(AccountError):
                acc.create_account(s, u, bad)
        acc.create_account(s, u, PW)
        with pytest.raises(AccountError):
            acc.create_account(s, u, PW)
        row = s.scalars(select(db.WebAccount).where(db.WebAccount.user_id == u.id)).one()
        assert row.password_hash.startswith("$argon2id$")
        from argon2 import PasswordHasher

        row.password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PW)  # NB: old params
        s.commit()
    c = web.client()
    assert post_login(c, "analist", PW).status_code == 303
    with web.hub.sessions() as s:
        row = s.scalars(select(db.WebAccount).where(db.WebAccount.user_id == u.id)).one()
        assert "m=8192" not in row.password_hash and row.password_hash.startswith("$argon2id$")


@ONE_DB
def test_account_page_changes_password_and_ends_other_sessions(web: Web) -> None:
    account(web, "analist")
    a, b = web.client(), web.client()
    post_login(a, "analist", PW)
    post_login(b, "analist", PW)
    new = "another long passphrase 2"
    tok = web.csrf(a)
    r = a.post("/account/password", data={"csrf_token": tok, "current": "wrong one here", "new": new, "repeat": new})
    assert r.status_code == 400
    r = a.post("/account/password", data={"csrf_token": tok, "current": PW, "new": new, "repeat": new})
    assert r.status_code == 200
    assert logged_in(a) and not logged_in(b)
    assert post_login(web.client(), "analist", new).status_code == 303


@ONE_DB
def test_optional_totp_enrolment_on_the_account_page(web: Web) -> None:
    account(web, "analist")
    c = web.client()
    post_login(c, "analist", PW)
    page = c.post("/account/totp", data={"csrf_token": web.csrf(c)})
    m = SECRET_ON_PAGE.search(page.text)
    assert m
    secret = m.group(1)
    assert c.post("/account/totp/confirm", data={"csrf_token": web.csrf(c), "code": "12345"}).status_code == 400
    assert c.post("/account/totp/confirm", data={"csrf_token": web.csrf(c), "code": code(secret)}).status_code == 200
    c2 = web.client()
    r = post_login(c2, "analist", PW)
    assert r.headers["location"].startswith("/login/totp")  # NB: enrolled: now asked at every login
    assert post_code(c2, code(secret, 1)).status_code == 303


def test_no_password_code_or_secret_in_pages_logs_or_audit(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = account(web, "fg")
    c = web.client()
    pages = [post_login(c, "fg", "a wrong password here").text, post_login(c, "fg", PW).text]
    pages.append(c.get("/login/totp").text)
    ok = code(secret)
    r = post_code(c, ok)
    pages += [r.text, c.get("/account").text]
    assert r.status_code == 303
    seen = "\n".join(pages) + caplog.text + json.dumps(audit(web, ""))
    for secret_value in (PW, "a wrong password here", ok, secret):
        assert secret_value not in seen
    with web.hub.sessions() as s:
        for e in web.hub.audit_entries(s):
            assert set(e["details"]) <= {"name", "reason", "failures", "minutes", "factors"} or not e[
                "action"
            ].startswith("web-")


def test_totp_step_accepts_one_step_either_side_once() -> None:
    secret = pyotp.random_base32(32)
    now = 1_700_000_000.0
    t = pyotp.TOTP(secret)
    step = int(now // 30)
    assert totp_step(secret, t.at(now), 0, now) == step
    assert totp_step(secret, t.at(now - 30), 0, now) == step - 1
    assert totp_step(secret, t.at(now + 30), 0, now) == step + 1
    assert totp_step(secret, t.at(now - 60), 0, now) is None
    assert totp_step(secret, t.at(now), step, now) is None  # NB: spent
    assert totp_step(secret, "abcdef", 0, now) is None


# -- the datastation's own accounts ------------------------------------------------------------


@pytest.fixture
def station(tmp_path: Path) -> Any:
    pki.new_signing_key(tmp_path / "ggd.key")
    key = pki.load_signing_key(tmp_path / "ggd.key")
    cfg = SimpleNamespace(organisation="ggd", name="ds-ggd", state_dir=tmp_path)
    return SimpleNamespace(cfg=cfg, log=FileLog(tmp_path / "contributions.jsonl", "ggd", key))


def test_station_steward_logs_in_with_totp_in_its_own_store(station: Any, tmp_path: Path) -> None:
    cfg = WebConfig("127.0.0.1", 0, "https://testserver", accounts=tmp_path / "web" / "accounts.sqlite")
    app = create_station_web(station, cfg)
    accounts: StationAccounts = app.state.accounts
    with pytest.raises(AccountError):
        accounts.create_account("steward-ggd", "steward-ggd-password")
    secret = accounts.create_account("steward-ggd", PW)
    assert len(secret) == 32 and cfg.accounts is not None and cfg.accounts.exists()
    assert oct(cfg.accounts.stat().st_mode & 0o777) == "0o600"
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as c:
        for _ in range(cfg.max_failures):
            post_login(c, "steward-ggd", "guess guess guess")
        assert post_login(c, "steward-ggd", PW).status_code == 401  # NB: locked
        with accounts.sessions() as s:
            a = s.scalars(select(accounts.Account)).one()
            a.locked_until = None
            s.commit()
        r = post_login(c, "steward-ggd", PW, nxt="/inbox")
        assert r.headers["location"].startswith("/login/totp")
        r = post_code(c, code(secret), nxt="/inbox")
        assert r.status_code == 303 and r.headers["location"] == "/inbox"
        user = accounts.user_for(c.cookies.get(COOKIE) or "")
        assert user is not None and (user.name, user.role, user.organisation) == ("steward-ggd", "steward", "ggd")
        assert c.get("/account").status_code == 200
        r = c.post("/logout", data={"csrf_token": user.csrf})
        assert r.status_code == 303 and accounts.user_for(c.cookies.get(COOKIE) or "") is None
    entries = station.log.check()  # NB: the chain still verifies with the web entries in it
    actions = [e["action"] for e in entries]
    assert actions.count("web-login-failed") == cfg.max_failures + 1
    assert actions.count("web-locked") == 1 and actions[-2:] == ["web-login", "web-logout"]
    assert PW not in json.dumps(entries) and secret not in json.dumps(entries)
    assert Datastation.runs_used(station) == {}  # type: ignore[arg-type]  # NB: web entries are no contributions
    station.log.append(actor="ds-ggd", action="contribution", subject="job/1", details={"job": 1, "approval": "a1"})
    assert Datastation.runs_used(station) == {"a1": 1}  # type: ignore[arg-type]


def test_station_store_defaults_to_the_state_dir(station: Any, tmp_path: Path) -> None:
    accounts = StationAccounts(station, WebConfig("127.0.0.1", 0, "https://testserver"))
    accounts.create_account("steward-ggd", PW)
    assert (tmp_path / "web-accounts.sqlite").exists()


@ONE_DB
def test_a_user_of_an_organisation_that_left_cannot_log_in(web: Web) -> None:
    account(web, "buiten")
    c = web.client()
    assert post_login(c, "buiten", PW).status_code == 303 and logged_in(c)
    r = web.api["beheerder"].c.delete("/api/v1/organisations/ggz", headers=web.api["beheerder"].h)
    assert r.status_code == 200, r.text
    assert not logged_in(c)  # NB: the live session ends with the membership
    r = post_login(web.client(), "buiten", PW)
    assert r.status_code == 401 and "wp_session" not in r.headers.get("set-cookie", "")


# -- the operator's commands: hub web-user / datastation web-user (add, unlock, reset-totp) ----------------

PRINTED_SECRET = re.compile(r"\b[A-Z2-7]{32}\b")


def _tls(tmp: Path, node: str) -> str:
    if not (tmp / "pki" / "ca.crt").exists():
        pki.init_ca(tmp / "pki")
    pki.issue(tmp / "pki", node, hosts=("127.0.0.1",))
    return f'\n[tls]\nca = "pki/ca.crt"\ncert = "pki/{node}.crt"\nkey = "pki/{node}.key"\n'


def test_hub_web_user_add_unlock_reset(tmp_path: Path) -> None:
    pki.new_signing_key(tmp_path / "hub.key")
    database = f"sqlite:///{tmp_path / 'hub.db'}"
    (tmp_path / "hub.toml").write_text(
        f'[hub]\nname = "hub"\nlisten = "127.0.0.1:1"\ndatabase = "{database}"\nsigning_key = "hub.key"\n'
        + _tls(tmp_path, "hub")
        + '\n[web]\nlisten = "127.0.0.1:2"\n'
    )
    hub = Hub(database, name="hub", signing_key=pki.load_signing_key(tmp_path / "hub.key"))
    hub.create_admin("beheerder")
    (tmp_path / "pw").write_text(PW + "\n")
    (tmp_path / "short").write_text("kort\n")
    run = CliRunner().invoke
    cfg = ["--config", str(tmp_path / "hub.toml")]
    r = run(app, ["hub", "web-user", "add", "beheerder", *cfg, "--password-file", str(tmp_path / "short")])
    assert r.exit_code == 1 and "12 characters" in r.output and "kort" not in r.output
    r = run(app, ["hub", "web-user", "add", "niemand", *cfg, "--password-file", str(tmp_path / "pw")])
    assert r.exit_code == 1 and "no hub user" in r.output
    r = run(app, ["hub", "web-user", "add", "beheerder", *cfg, "--password-file", str(tmp_path / "pw")])
    assert r.exit_code == 0, r.output
    m = PRINTED_SECRET.search(r.output)  # NB: an admin needs TOTP: the secret is printed once
    assert m and PW not in r.output
    with hub.sessions() as s:
        acc = s.scalars(select(db.WebAccount)).one()
        assert acc.totp_secret == m.group(0) and acc.password_hash.startswith("$argon2id$")
        acc.locked_until = db.utcnow().replace(year=2100)
        s.commit()
    assert run(app, ["hub", "web-user", "unlock", "beheerder", *cfg]).exit_code == 0
    assert run(app, ["hub", "web-user", "reset-totp", "beheerder", *cfg]).exit_code == 0
    with hub.sessions() as s:
        acc = s.scalars(select(db.WebAccount)).one()
        assert acc.locked_until is None and acc.totp_secret == ""
        actions = [e["action"] for e in hub.audit_entries(s)]
    assert actions[-2:] == ["web-unlocked", "web-totp-reset"]
    assert run(app, ["hub", "web-user", "unlock", "niemand", *cfg]).exit_code == 1
    hub.engine.dispose()


def test_datastation_web_user_add_keeps_accounts_at_the_station(tmp_path: Path) -> None:
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    (tmp_path / "ds.toml").write_text(
        '[datastation]\nname = "ds-ggd"\norganisation = "ggd"\nhub = "https://127.0.0.1:1"\ntoken = "t"\n'
        f'signing_key = "ggd.key"\nstate_dir = "state"\nhub_key = "{pub}"\n'
        + _tls(tmp_path, "ds-ggd")
        + "".join(
            f'\n[[engines]]\nparty = {i}\nurl = "https://127.0.0.1:{3 + i}"\n'
            f'spki_sha256 = "{pki.fingerprint(tmp_path / "pki" / "ds-ggd.crt")}"\n'
            for i in range(3)
        )
        + '\n[web]\nlisten = "127.0.0.1:2"\naccounts = "state/web.db"\n'
    )
    (tmp_path / "pw").write_text(PW + "\n")
    cfg = ["--config", str(tmp_path / "ds.toml")]
    r = CliRunner().invoke(
        app, ["datastation", "web-user", "add", "steward-ggd", *cfg, "--password-file", str(tmp_path / "pw")]
    )
    assert r.exit_code == 0, r.output
    m = PRINTED_SECRET.search(r.output)
    assert m and PW not in r.output and (tmp_path / "state" / "web.db").exists()
    assert pyotp.TOTP(m.group(0)).now()  # NB: a valid base32 secret
    r = CliRunner().invoke(
        app, ["datastation", "web-user", "add", "steward-ggd", *cfg, "--password-file", str(tmp_path / "pw")]
    )
    assert r.exit_code == 1 and "already" in r.output
    assert CliRunner().invoke(app, ["datastation", "web-user", "unlock", "steward-ggd", *cfg]).exit_code == 0
    log = FileLog(tmp_path / "state" / "contributions.jsonl", "ggd")
    assert [e["action"] for e in log.check()] == ["web-unlocked"]
