"""The hub's API on SQLite and PostgreSQL: roles, membership, requests, approvals, audit (in process)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from werkplaats import usecases as uc
from werkplaats.plan.serde import plan_to_dict
from werkplaats.synth.generate import generate
from werkplaats.synth.write import region_datasets
from werkplaats.workspace import audit, pki
from werkplaats.workspace.catalog_io import dataset_entry
from werkplaats.workspace.hub import Hub, create_app
from werkplaats.workspace.hub import app as hub_app
from werkplaats.workspace.messages import JobPayload, JobState, JobStatus, PartState, ProgressReport
from werkplaats.workspace.signing import approval_body, sign_approval

from .wait import wait_until


class TlsLayer:
    """The TLS layer an in-process hub lacks: the client certificate of the node a test-only header names.

    uvicorn with `werkplaats.workspace.peer.PeerCertProtocol` puts the verified certificate into the
    scope the same way; nothing a real client sends can.
    """

    def __init__(self, app: Any, ca: Path) -> None:
        self.app, self.ca, self.pems = app, ca, dict[str, str]()
        pki.init_ca(ca)

    def pem(self, name: str) -> str:
        if name not in self.pems:
            cert, _ = pki.issue(self.ca, name)
            self.pems[name] = cert.read_text()
        return self.pems[name]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        name = dict(scope.get("headers", [])).get(PEER)
        if scope["type"] == "http" and name:
            scope["extensions"] = {
                **(scope.get("extensions") or {}),
                "tls": {"client_cert_chain": [self.pem(name.decode())]},
            }
        await self.app(scope, receive, send)


PEER = b"x-test-client-cert"


class Api:
    def __init__(self, client: TestClient, token: str, cert: str = "") -> None:
        self.c, self.h = client, {"Authorization": f"Bearer {token}"}
        if cert:
            self.h[PEER.decode()] = cert

    def get(self, path: str, status: int = 200) -> Any:
        r = self.c.get("/api/v1" + path, headers=self.h)
        assert r.status_code == status, r.text
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text

    def post(self, path: str, body: Any = None, status: int = 201) -> Any:
        r = self.c.post("/api/v1" + path, json=body or {}, headers=self.h)
        assert r.status_code == status, r.text
        return r.json()

    def put(self, path: str, body: Any, status: int = 200) -> Any:
        r = self.c.put("/api/v1" + path, json=body, headers=self.h)
        assert r.status_code == status, r.text
        return r.json()


@pytest.fixture
def hub(database: str, tmp_path: Path) -> Any:
    pki.new_signing_key(tmp_path / "hub.key")
    h = Hub(database, name="hub", signing_key=pki.load_signing_key(tmp_path / "hub.key"))
    client = TestClient(TlsLayer(create_app(h), tmp_path / "ca"))
    admin = Api(client, h.create_admin("beheerder"))
    keys = {}
    for org in ("ggd", "huisartsen", "ggz"):
        pub = pki.new_signing_key(tmp_path / f"{org}.key")
        keys[org] = pki.load_signing_key(tmp_path / f"{org}.key")
        admin.post("/organisations", {"name": org, "signing_key": pub})
    users = {"admin": admin}
    for name, role, org in [("st-ggd", "steward", "ggd"), ("st-ha", "steward", "huisartsen"),
                            ("analist", "scientist", "ggd"), ("buiten", "scientist", "ggz"),
                            ("beleid", "requester", "ggd"), ("fg", "privacy-officer", None)]:  # fmt: skip
        users[name] = Api(client, admin.post("/users", {"name": name, "role": role, "organisation": org})["token"])
    admin.post("/collaborations", {"name": "pp", "purpose": "pandemische paraatheid", "members": ["ggd", "huisartsen"]})
    region = generate(3, 1000)
    for ds in region_datasets(region):
        org = ds.organisation
        if org in ("ggd", "huisartsen"):
            st = users["st-ggd" if org == "ggd" else "st-ha"]
            st.put(f"/datasets/{ds.name}", dataset_entry(ds.schema, title=ds.title, min_group_size=10))
            st.post(f"/collaborations/pp/datasets/{ds.name}")
    yield h, users, keys
    client.close()
    h.engine.dispose()


def _plan() -> dict:
    return plan_to_dict(uc.infection_hotspots(2024, signal="huisarts").to_plan())


def test_roles_and_membership(hub: Any) -> None:
    _h, u, keys = hub
    u["st-ggd"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()}, status=403)
    u["beleid"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()}, status=403)
    u["buiten"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()}, status=403)
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    assert r["organisations"] == ["huisartsen"] and r["status"] == "pending-approval"
    u["buiten"].get(f"/requests/{r['id']}", status=403)
    assert u["buiten"].get("/requests") == []
    u["analist"].post("/organisations", {"name": "x", "signing_key": "k"}, status=403)
    u["analist"].get("/audit", status=403)
    u["st-ggd"].put("/datasets/huisartsen/patienten", {"table_schema": {"fields": [{"name": "a"}]}}, status=403)
    # a steward cannot approve for another organisation, nor a scientist at all
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         max_runs=1, steward="st-ha")  # fmt: skip
    signed = {"body": body, "signature": sign_approval(keys["huisartsen"], body)}
    u["st-ggd"].post(f"/requests/{r['id']}/approvals", signed, status=403)
    u["analist"].post(f"/requests/{r['id']}/approvals", signed, status=403)
    assert u["analist"].get("/requests/99999", status=404)["detail"] == "no request 99999"
    assert u["analist"].get("/jobs/99999", status=404)["detail"] == "no job 99999"
    assert u["admin"].post("/users", {"name": "x", "role": "steward", "organisation": "nergens"},
                           status=404)["detail"] == "no organisation 'nergens'"  # fmt: skip
    r2 = u["analist"].c.get("/api/v1/me", headers={"Authorization": "Bearer wrong"})
    assert r2.status_code == 401


def test_request_approval_run_and_audit(hub: Any) -> None:
    h, u, keys = hub
    bad = {"collaboration": "pp", "purpose": "x", "plan": {"format": "nope"}}
    assert "plan" in u["analist"].post("/requests", bad, status=422)["detail"]
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    u["analist"].post(f"/requests/{r['id']}/run", status=409)  # nobody approved yet
    exp = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=exp, max_runs=1, steward="st-ha")  # fmt: skip
    wrong_key = {"body": body, "signature": sign_approval(keys["ggd"], body)}
    assert "signature" in u["st-ha"].post(f"/requests/{r['id']}/approvals", wrong_key, status=422)["detail"]
    past = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
                         max_runs=1, steward="st-ha")  # fmt: skip
    expired = {"body": past, "signature": sign_approval(keys["huisartsen"], past)}
    assert "expired" in u["st-ha"].post(f"/requests/{r['id']}/approvals", expired, status=422)["detail"]
    good = {"body": body, "signature": sign_approval(keys["huisartsen"], body)}
    assert u["st-ha"].post(f"/requests/{r['id']}/approvals", good)["status"] == "approved"
    job = u["analist"].post(f"/requests/{r['id']}/run")
    assert job["state"] == "approved"
    detail = u["analist"].post(f"/requests/{r['id']}/run", status=409)["detail"]
    assert "runs are used" in detail  # NB: max_runs = 1
    u["beleid"].get(f"/requests/{r['id']}/result", status=404)
    assert u["fg"].get("/audit/verify") == {"ok": True, "problems": []}
    actions = [e["action"] for e in u["fg"].get("/audit")["entries"]]
    assert actions == ["request", "approval", "job-created"]
    csv = u["fg"].c.get("/api/v1/audit/export", params={"format": "csv"}, headers=u["fg"].h).text
    assert "huisartsen/consulten" in csv and "st-ha" in csv
    with h.engine.begin() as conn:  # NB: tamper with the stored log, as an attacker with database access
        conn.execute(text("UPDATE audit SET actor = 'iemand' WHERE seq = 2"))
    got = u["fg"].get("/audit/verify")
    assert not got["ok"] and got["problems"] == ["entry 2: changed (its content does not match its hash)"]
    doc = u["fg"].get("/audit")
    assert audit.verify_chain(doc["entries"], doc["keys"]) == got["problems"]


def test_rejection_blocks_running(hub: Any) -> None:
    _h, u, _keys = hub
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    u["st-ggd"].post(f"/requests/{r['id']}/rejections", {"reason": "x"}, status=422)  # reads no GGD data
    out = u["st-ha"].post(f"/requests/{r['id']}/rejections", {"reason": "doel te breed"})
    assert out["status"] == "rejected" and out["rejections"]["huisartsen"]["reason"] == "doel te breed"
    u["analist"].post(f"/requests/{r['id']}/run", status=409)


def _approved_job(u: dict[str, Api], keys: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request approved by its one organisation and a job started for it."""
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         max_runs=1, steward="st-ha")  # fmt: skip
    u["st-ha"].post(
        f"/requests/{r['id']}/approvals", {"body": body, "signature": sign_approval(keys["huisartsen"], body)}
    )
    return r, u["analist"].post(f"/requests/{r['id']}/run")


def _node(u: dict[str, Api], name: str, kind: str, **kw: Any) -> Api:
    """Register a node; return its API client, which presents the node's own certificate."""
    return Api(u["admin"].c, u["admin"].post("/nodes", {"name": name, "kind": kind, **kw})["token"], cert=name)


def _engines(u: dict[str, Api]) -> list[Api]:
    """Register the three engines and let each be heard from (online)."""
    es = [_node(u, f"engine{i}", "engine", party=i, url=f"https://e{i}:1", mpc_address=f"e{i}:2") for i in range(3)]
    for e in es:
        e.get("/me")
    return es


def test_node_endpoints_speak_the_versioned_messages(hub: Any) -> None:
    _h, u, keys = hub
    r, job = _approved_job(u, keys)
    _engines(u)
    node = _node(u, "ds-ha", "datastation", organisation="huisartsen")
    (doc,) = node.get("/node/jobs")
    payload = JobPayload.from_dict(doc)
    assert (payload.job, payload.request, payload.state) == (job["job"], r["id"], JobState.APPROVED)
    assert payload.plan_hash == r["plan_hash"] and payload.approvals[0].body["organisation"] == "huisartsen"
    status = JobStatus.from_dict(node.get(f"/node/jobs/{job['job']}"))
    assert status.state == JobState.APPROVED and status.progress == {}
    newer = {**ProgressReport(state=PartState.VERIFIED).to_dict(), "v": 2}
    detail = node.post(f"/node/jobs/{job['job']}/progress", newer, status=422)["detail"]
    assert "version 2 is not supported" in str(detail)
    ok = node.post(f"/node/jobs/{job['job']}/progress", ProgressReport(state=PartState.VERIFIED).to_dict(), status=200)
    assert ok == {"job": job["job"], "state": "approved"}
    assert node.get("/node/jobs") == []  # NB: taken
    failed = ProgressReport(state=PartState.FAILED, reason="bron onleesbaar").to_dict()
    assert node.post(f"/node/jobs/{job['job']}/progress", failed, status=200)["state"] == "failed"
    j = u["analist"].get(f"/jobs/{job['job']}")
    assert j["state"] == "failed" and j["reason"] == "ds-ha: bron onleesbaar"
    node.post(f"/node/jobs/{job['job']}/result-share", status=403)  # NB: engines only
    node.post("/node/jobs/99999/progress", ProgressReport(state=PartState.SENT).to_dict(), status=404)


def test_watchdog_logs_what_it_catches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    pki.new_signing_key(tmp_path / "hub.key")
    h = Hub(f"sqlite:///{tmp_path / 'hub.db'}", name="hub", signing_key=pki.load_signing_key(tmp_path / "hub.key"))
    calls = []

    def broken(_: Hub) -> None:
        calls.append(1)
        raise RuntimeError("database gone")

    monkeypatch.setattr(hub_app, "fail_silent_engines", broken)
    monkeypatch.setattr(hub_app, "WATCHDOG_EVERY_S", 0.05)
    caplog.set_level(logging.DEBUG, logger="werkplaats.hub")
    try:
        with TestClient(create_app(h)):
            wait_until(lambda: len(calls) >= 3, 10, "the watchdog keeps checking after a failed check")
    finally:
        h.engine.dispose()
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and "watchdog" in errors[0].getMessage(), caplog.text
    assert errors[0].exc_info is not None and "database gone" in caplog.text  # NB: with its traceback, once
