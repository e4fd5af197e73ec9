"""The admin's pages: organisations and key fingerprints, users and web accounts, collaborations, node health."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

import werkplaats
from werkplaats.workspace import audit, db, pki
from werkplaats.workspace.http import Client
from werkplaats.workspace.hub.core import token_hash
from werkplaats.workspace.hub.deps import reported_version

from ..workspace.test_hub import Api
from .conftest import Web


def _admin(web: Web) -> TestClient:
    c = web.as_("beheerder")
    c.cookies.set("lang", "en")
    return c


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: nothing database-specific in it
def test_organisations_show_key_fingerprints_and_revoked_keys(web: Web, tmp_path: pytest.TempPathFactory) -> None:
    c = _admin(web)
    orgs = {o["name"]: o for o in web.api["beheerder"].get("/organisations")}
    old = orgs["ggz"]["signing_key"]
    new = pki.new_signing_key(tmp_path / "ggz2.key")  # type: ignore[operator]
    web.api["beheerder"].put("/organisations/ggz/signing-key", {"signing_key": new, "reason": "laptop kwijt"})
    r = c.get("/admin/organisations")
    assert r.status_code == 200
    for name in ("ggd", "huisartsen"):
        assert audit.key_fingerprint(orgs[name]["signing_key"]) in r.text and orgs[name]["signing_key"] in r.text
    row = r.text.split(">ggz<", 1)[1].split("</tr>", 1)[0]
    assert audit.key_fingerprint(new) in row and audit.key_fingerprint(old) in row and "laptop kwijt" in row
    # NB: the command the page gives for comparing by phone computes the same fingerprint from a pinned key
    cmd = "printf %s 'KEY' | sha256sum | cut -c1-16".replace("KEY", new)
    assert cmd.split("'")[0] + "'" in r.text.replace("&#39;", "'")
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()
    assert "sha256:" + out == audit.key_fingerprint(new)


def test_add_user_token_once_api_errors_and_csrf(web: Web) -> None:
    c = _admin(web)
    form = {"name": "nieuw", "role": "scientist", "organisation": "ggz", "csrf_token": web.csrf(c)}
    r = c.post("/admin/users", data=form)
    assert r.status_code == 201
    token = r.text.split('id="new-token">', 1)[1].split("<", 1)[0]
    with web.hub.sessions() as s:
        u = s.scalars(select(db.User).where(db.User.name == "nieuw")).one()
        assert u.role == "scientist" and u.token_hash == token_hash(token)
    assert token not in c.get("/admin/users").text  # NB: shown once
    assert Api(web.api["beheerder"].c, token).get("/me")["name"] == "nieuw"
    csrf = web.csrf(c)
    r = c.post("/admin/users", data={"name": "st-x", "role": "steward", "organisation": "", "csrf_token": csrf})
    assert r.status_code == 422 and "a steward belongs to an organisation" in r.text
    r = c.post("/admin/users", data={"name": "analist", "role": "scientist", "organisation": "ggd", "csrf_token": csrf})
    assert r.status_code == 409
    r = c.post("/admin/users", data={"name": "<b>x</b>", "role": "koning", "csrf_token": csrf})
    assert r.status_code == 422 and "role must be one of" in r.text and "<b>x</b>" not in r.text
    with web.hub.sessions() as s:
        assert s.scalars(select(db.User).where(db.User.name.in_(["st-x", "<b>x</b>"]))).first() is None
    form = {"name": "sluiper", "role": "admin", "organisation": ""}
    assert _admin(web).post("/admin/users", data=form).status_code == 403  # NB: no CSRF token
    analist = web.as_("analist")
    assert analist.post("/admin/users", data={**form, "csrf_token": web.csrf(analist)}).status_code == 403
    assert analist.post("/admin/accounts", data={"name": "fg", "password": "x" * 20,
                                                 "csrf_token": web.csrf(analist)}).status_code == 403  # fmt: skip
    with web.hub.sessions() as s:
        assert s.scalars(select(db.User).where(db.User.name == "sluiper")).first() is None


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: nothing database-specific in it
def test_web_account_with_initial_password_and_totp_secret_shown_once(web: Web) -> None:
    c = _admin(web)
    csrf = web.csrf(c)
    r = c.post("/admin/accounts", data={"name": "beleid", "password": "kort", "csrf_token": csrf})
    assert r.status_code == 422 and "at least 12 characters" in r.text
    r = c.post("/admin/accounts", data={"name": "beleid", "password": "een lang wachtwoord 1", "csrf_token": csrf})
    assert r.status_code == 201 and 'id="new-totp"' not in r.text  # NB: an insight-asker needs no TOTP
    r = c.post("/admin/accounts", data={"name": "fg", "password": "een lang wachtwoord 2", "csrf_token": csrf})
    assert r.status_code == 201
    secret = r.text.split('id="new-totp">', 1)[1].split("<", 1)[0]
    with web.hub.sessions() as s:
        ids = {u.name: u.id for u in s.scalars(select(db.User))}
        acc = {a.user_id: a for a in s.scalars(select(db.WebAccount))}
        assert acc[ids["fg"]].totp_secret == secret and acc[ids["fg"]].password_hash.startswith("$argon2id$")
        assert "een lang wachtwoord" not in acc[ids["beleid"]].password_hash
    page = c.get("/admin/users").text
    assert secret not in page and "een lang wachtwoord" not in page
    r = c.post("/admin/accounts", data={"name": "fg", "password": "een lang wachtwoord 3", "csrf_token": csrf})
    assert r.status_code == 422 and "has a web account already" in r.text


def test_collaborations_and_node_health(web: Web) -> None:
    zorg = {
        "name": "zorg",
        "purpose": "wachtlijsten <i>ggz</i>",
        "dpia_annex": "DPIA-bijlage 7",
        "members": ["ggd", "ggz"],
    }
    web.api["beheerder"].post("/collaborations", zorg)
    r = _admin(web).get("/admin/collaborations")
    assert r.status_code == 200
    assert "pandemische paraatheid" in r.text and "wachtlijsten &lt;i&gt;ggz&lt;/i&gt;" in r.text
    assert "DPIA-bijlage 7" in r.text and "ggd, ggz" in r.text and "huisartsen/" in r.text
    admin = web.api["beheerder"]
    ds = Api(admin.c, admin.post("/nodes", {"name": "ds-ggd", "kind": "datastation", "organisation": "ggd"})["token"],
             cert="ds-ggd")  # fmt: skip
    admin.post("/nodes", {"name": "engine0", "kind": "engine", "party": 0})
    eng1 = Api(
        admin.c, admin.post("/nodes", {"name": "engine1", "kind": "engine", "party": 1})["token"], cert="engine1"
    )
    ds.h["User-Agent"] = "werkplaats/9.8.7"
    ds.get("/node/audit-head")  # NB: any call of a node is its heartbeat
    eng1.h["User-Agent"] = "curl/8 <script>"
    eng1.get("/node/audit-head")
    with web.hub.sessions() as s:
        s.execute(update(db.Node).where(db.Node.name == "engine1")
                  .values(last_seen=db.utcnow() - dt.timedelta(minutes=5)))  # fmt: skip
        s.commit()
    r = _admin(web).get("/admin/nodes")
    assert r.status_code == 200
    row = {n: r.text.split(f">{n}<", 1)[1].split("</tr>", 1)[0] for n in ("ds-ggd", "engine0", "engine1")}
    assert "9.8.7" in row["ds-ggd"] and "alive" in row["ds-ggd"] and "seconds ago" in row["ds-ggd"]
    assert "never" in row["engine0"] and "stale" in row["engine0"] and "party 0" in row["engine0"]
    assert "5 minutes ago" in row["engine1"] and "stale" in row["engine1"] and "unknown" in row["engine1"]
    assert "2 node(s) stale" in r.text


def test_reported_version() -> None:
    client = Client("https://hub.invalid", token="t")  # NB: what datastations and engines call the hub with
    assert reported_version(client.http.headers["User-Agent"]) == werkplaats.__version__
    client.close()
    assert reported_version("werkplaats/0.1.0") == "0.1.0"
    assert reported_version("python-httpx/0.28") == "" and reported_version("werkplaats/<x>") == ""
    assert reported_version("werkplaats/" + "9" * 41) == ""


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: the role check runs before any query
def test_only_the_admin(web: Web) -> None:
    others = [web.as_(name) for name in ("analist", "beleid", "st-ggd", "fg")]
    for path in ("/admin/organisations", "/admin/users", "/admin/collaborations", "/admin/nodes"):
        assert [c.get(path).status_code for c in others] == [403] * 4, path
        anonymous = web.client().get(path)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
