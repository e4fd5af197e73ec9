"""The privacy officer's pages: audit trail (filters, chain self-check), register and exports, use per collaboration."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from werkplaats import usecases as uc
from werkplaats.plan.serde import plan_to_dict
from werkplaats.workspace import register
from werkplaats.workspace.signing import approval_body, sign_approval

from .conftest import Web

PURPOSE = "griepgolf <script>alert(1)</script>"


def _seqs(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'id="entry-(\d+)"', html)]


def _officer(web: Web) -> TestClient:
    c = web.as_("fg")
    c.cookies.set("lang", "en")
    return c


@pytest.fixture
def used(web: Web) -> dict[str, Any]:
    """A request reading huisartsen data, approved by its steward and run; a second collaboration with ggz."""
    plan = plan_to_dict(uc.infection_hotspots(2024, signal="huisarts").to_plan())
    r = web.api["analist"].post("/requests", {"collaboration": "pp", "purpose": PURPOSE, "plan": plan})
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose=PURPOSE, plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         max_runs=2, steward="st-ha")  # fmt: skip
    web.api["st-ha"].post(f"/requests/{r['id']}/approvals", {"body": body, "signature": sign_approval(
        web.keys["huisartsen"], body)})  # fmt: skip
    job = web.api["analist"].post(f"/requests/{r['id']}/run")
    web.api["beheerder"].post("/collaborations", {"name": "zorg", "purpose": "wachtlijsten", "members": ["ggd", "ggz"]})
    web.api["beheerder"].c.delete("/api/v1/collaborations/zorg/members/ggz", headers=web.api["beheerder"].h)
    return {"request": r, "job": job}


def test_audit_trail_newest_first_filtered_with_intact_self_check(web: Web, used: dict[str, Any]) -> None:
    r = _officer(web).get("/audit")
    assert r.status_code == 200
    seqs = _seqs(r.text)
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 4  # request, approval, job-created, member-removed
    assert 'hx-get="/audit/self-check"' in r.text  # NB: the self-check is loaded beside the page (it reads every entry)
    check = _officer(web).get("/audit/self-check", headers={"HX-Request": "true"}).text
    assert "Self-check: intact." in check and "NOT intact" not in check and "All 4 entries" in check
    assert "werkplaats audit verify --hub-key keys/hub.pub --anchors nodes/" in r.text
    assert "self-check" in r.text.lower() and "anchored" in r.text
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    c = _officer(web)
    entries = {e["action"]: e["seq"] for e in web.api["fg"].get("/audit")["entries"]}
    assert _seqs(c.get("/audit", params={"action": "approval"}).text) == [entries["approval"]]
    pp = _seqs(c.get("/audit", params={"collaboration": "pp"}).text)
    assert sorted(pp) == sorted([entries["request"], entries["approval"], entries["job-created"]])
    assert _seqs(c.get("/audit", params={"collaboration": "zorg"}).text) == [entries["member-removed"]]
    assert _seqs(c.get("/audit", params={"organisation": "ggz"}).text) == [entries["member-removed"]]
    assert sorted(_seqs(c.get("/audit", params={"organisation": "huisartsen"}).text)) == sorted(pp)
    today = dt.datetime.now(dt.UTC).date()
    assert len(_seqs(c.get("/audit", params={"date_from": today.isoformat()}).text)) == 4
    assert _seqs(c.get("/audit", params={"date_to": (today - dt.timedelta(days=1)).isoformat()}).text) == []
    assert len(_seqs(c.get("/audit", params={"date_from": "not-a-date"}).text)) == 4  # NB: ignored, not a 500


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: tampering on PostgreSQL: test_hub.py
def test_audit_pages_and_a_tampered_entry_fails_the_self_check(web: Web) -> None:
    with web.hub.sessions() as s:
        for i in range(60):
            web.hub.log(s, actor="hub", action="test", subject=f"x/{i}", details={"detail": str(i)})
    c = _officer(web)
    first, second = _seqs(c.get("/audit").text), _seqs(c.get("/audit", params={"page": 2}).text)
    assert first == list(range(60, 10, -1)) and second == list(range(10, 0, -1))
    assert 'href="?page=2"' in c.get("/audit").text
    assert _seqs(c.get("/audit", params={"page": 99}).text) == second  # NB: clamped to the last page
    assert "Self-check: intact." in c.get("/audit/self-check", headers={"HX-Request": "true"}).text
    with web.hub.engine.begin() as conn:  # NB: as an attacker with database access (tests/workspace/test_hub.py)
        conn.execute(text("UPDATE audit SET actor = 'iemand' WHERE seq = 2"))
    frag = c.get("/audit/self-check", headers={"HX-Request": "true"})
    assert frag.status_code == 200 and "<html" not in frag.text and "<h1" not in frag.text
    assert (
        "Self-check: NOT intact." in frag.text and "entry 2: changed (its content does not match its hash)" in frag.text
    )
    assert 'href="/audit?page=2#entry-2"' in frag.text and 'data-entry="1"' not in frag.text
    page = c.get("/audit/self-check")  # NB: without JavaScript: a page of its own
    assert "<h1" in page.text and "NOT intact" in page.text
    row = c.get("/audit", params={"page": 2}).text.split('id="entry-2"', 1)[1].split("</tr>", 1)[0]
    assert "iemand" in row


def test_register_exports_match_the_hub_and_use_per_collaboration(web: Web, used: dict[str, Any]) -> None:
    c = _officer(web)
    page = c.get("/register")
    assert page.status_code == 200 and "&lt;script&gt;" in page.text and "huisartsen/" in page.text
    assert 'href="/collaborations/pp/use"' in page.text
    api = web.api["fg"]
    for fmt in ("csv", "json"):
        got = c.get(f"/register.{fmt}")
        assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
        assert got.text == api.c.get("/api/v1/audit/export", params={"format": fmt}, headers=api.h).text
    rows = list(csv.DictReader(io.StringIO(c.get("/register.csv").text)))
    with web.hub.sessions() as s:
        expected = register.register_rows(web.hub.audit_entries(s))
    assert rows == [{k: str(v) for k, v in e.items()} for e in expected]
    assert json.loads(c.get("/register.json").text) == expected
    only = c.get("/register", params={"collaboration": "zorg"}).text
    assert "wachtlijsten" not in only and PURPOSE.split()[0] not in only  # NB: member-removed has no purpose
    r = _officer(web).get("/collaborations/pp/use")
    assert r.status_code == 200
    req = used["request"]
    assert f"Request {req['id']}" in r.text and "&lt;script&gt;" in r.text and "analist" in r.text
    for ds, cols in req["columns"].items():
        assert ds in r.text and all(col in r.text for col in cols)
    assert "approved by st-ha" in r.text and f"Job {used['job']['job']}: approved" in r.text
    assert _officer(web).get("/collaborations/nergens/use").status_code == 404


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # NB: the role check runs before any query
def test_only_the_privacy_officer(web: Web) -> None:
    others = [web.as_(name) for name in ("analist", "beleid", "st-ggd", "beheerder")]
    for path in (
        "/audit",
        "/audit/self-check",
        "/register",
        "/register.csv",
        "/register.json",
        "/collaborations/pp/use",
    ):
        assert [c.get(path).status_code for c in others] == [403] * 4, path
        anonymous = web.client().get(path)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
