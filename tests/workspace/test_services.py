"""The workspace as real processes over mutual TLS: hub, three engines, two datastations."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import werkplaats as wp
from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.synth.write import load_region
from werkplaats.workspace import pki
from werkplaats.workspace.config import EngineConfig
from werkplaats.workspace.engine import Engine
from werkplaats.workspace.messages import JobPayload
from werkplaats.workspace.signing import approval_body, sign_approval

from .live import PURPOSE, analysis, approve_all, assert_like_truth, connect, station, truth, wait_state
from .wait import wait_until


def seen_since(ws: LocalWorkspace, node: str, since: dt.datetime) -> bool:
    """Whether the hub heard from a node (a poll or a heartbeat) since a moment (its SQLite database)."""
    con = sqlite3.connect(ws.root / "hub" / "hub.db")
    try:
        (seen,) = con.execute("SELECT last_seen FROM nodes WHERE name = ?", (node,)).fetchone()
    finally:
        con.close()
    return seen is not None and dt.datetime.fromisoformat(seen).replace(tzinfo=dt.UTC) > since


def inbox(ws: LocalWorkspace, i: int) -> dict[str, Any]:
    cfg = EngineConfig.load(ws.root / "nodes" / f"engine{i}" / "engine.toml")
    r = httpx.get(f"https://{cfg.host}:{cfg.port}/inbox", verify=ws.tls().client_context(), timeout=5)
    return r.json()


def test_result_equals_the_plain_executor(ws: LocalWorkspace) -> None:
    c = connect(ws)
    req = c.submit(analysis(), collaboration=COLLABORATION, purpose=PURPOSE)
    assert req.status() == "pending-approval"
    approve_all(ws, req.id)
    got = req.run(timeout=300)
    region = load_region(ws.region)
    want = truth(region.tables, region.catalog)
    assert_like_truth(got, want)
    assert (~want["suppressed"]).sum() > 0
    # the datastation's own log has the contribution, chained and signed
    st = station(ws, "ggd")
    last = [e for e in st.log.entries() if e["action"] != "hub-head"][-1]  # NB: after it, the hub's head it kept
    assert last["action"] == "contribution" and last["details"]["columns"]["ggd/meldingen"]
    entries = ws.client("fg").get("/audit")["entries"]  # NB: the shared workspace holds other tests' jobs too
    actions = [e["action"] for e in entries if e["details"].get("request") == req.id]
    assert actions.count("contribution") == 2 and actions[-1] == "result-release"


def _forged_job(ws: LocalWorkspace, rid: int, approvals: list[dict[str, Any]], **change: Any) -> dict[str, Any]:
    adm = ws.client("admin")
    r = adm.get(f"/requests/{rid}")
    cat = {d["name"]: d["schema"] for d in adm.get("/datasets")}
    keys = {o["name"]: o["signing_key"] for o in adm.get("/organisations")}
    engines = [{"party": i, "name": f"engine{i}", "url": "https://127.0.0.1:9", "mpc": "127.0.0.1:9"} for i in range(3)]
    adm.close()
    job = {"v": 1, "job": 90_000 + rid, "request": rid, "collaboration": r["collaboration"], "purpose": r["purpose"],
           "plan": r["plan"], "plan_hash": r["plan_hash"], "datasets": r["datasets"], "columns": r["columns"],
           "schemas": {d: cat[d] for d in r["datasets"]}, "approvals": approvals, "organisation_keys": keys,
           "engines": engines, "state": "approved"}  # fmt: skip
    return job | change


def test_datastation_refuses_by_itself_when_the_hub_is_bypassed(ws: LocalWorkspace) -> None:
    c = connect(ws)
    req = c.submit(analysis("COVID-19"), collaboration=COLLABORATION, purpose=PURPOSE)
    st = station(ws, "ggd")
    before = len(st.log.entries())

    def refused(job: dict[str, Any]) -> str:
        st.handle(JobPayload.from_dict(job))  # NB: straight to the datastation, as a compromised hub would
        entries = st.log.entries()
        assert entries[-1]["action"] == "refusal"
        assert not any(e["action"] == "contribution" and e["details"]["job"] == job["job"] for e in entries)
        return str(entries[-1]["details"]["detail"])

    assert "no approval of ggd" in refused(_forged_job(ws, req.id, []))
    key = pki.load_signing_key(ws.root / "keys" / "ggd.key")
    info = req.refresh()

    def signed(**kw: Any) -> dict[str, Any]:
        args = {"organisation": "ggd", "collaboration": COLLABORATION, "purpose": PURPOSE, "plan": info["plan"],
                "plan_hash": info["plan_hash"], "expires": dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                "max_runs": 1, "steward": "steward-ggd"} | kw  # fmt: skip
        body = approval_body(**args)
        return {"body": body, "signature": sign_approval(key, body)}

    past = signed(expires=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    assert "expired" in refused(_forged_job(ws, req.id, [past]))
    tampered = json.loads(json.dumps(info["plan"]).replace("COVID-19", "mazelen"))
    assert "does not match its plan hash" in refused(_forged_job(ws, req.id, [signed()], plan=tampered))
    other = signed(plan_hash="0" * 64)
    assert "signed for plan" in refused(_forged_job(ws, req.id, [other]))
    hub_key = pki.load_signing_key(ws.root / "keys" / "hub.key")
    by_hub = {**signed(), "signature": sign_approval(hub_key, signed()["body"])}
    assert "signature" in refused(_forged_job(ws, req.id, [by_hub]))
    assert len(st.log.entries()) == before + 5
    assert all(str(90_000 + req.id) not in inbox(ws, i)["jobs"] for i in range(3))


def test_engine_killed_mid_job_fails_the_job_and_a_retry_succeeds(ws: LocalWorkspace) -> None:
    c = connect(ws)
    # NB: the analysis test_result_equals_the_plain_executor released: the live collaboration's register (rule 9)
    # would withhold a table whose small cells differ from a released one's (e.g. all reports per gemeente) by < k
    req = c.submit(analysis(), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, req.id, max_runs=3)
    job = req.run(wait=False)
    wait_state(c, job, ("running",))
    ws.procs["engine1"].kill(signal.SIGKILL)
    j = wait_state(c, job, ("failed", "succeeded"), timeout=120)
    assert j["state"] == "failed" and "engine1" in j["reason"], j
    with pytest.raises(Exception, match="no released result"):
        req.result()
    wait_until(lambda: not any(inbox(ws, i)["jobs"] or inbox(ws, i)["running"] for i in (0, 2)), 60,
               "surviving engines drop every share of the failed job", every=0.5)  # fmt: skip
    restarted = dt.datetime.now(dt.UTC)
    ws.start_engine(1)
    wait_until(lambda: seen_since(ws, "engine1", restarted), 60, "the restarted engine reports to the hub")
    got = req.run(timeout=300)
    assert (~got["suppressed"]).sum() > 0, got["reason"].iloc[0]
    states = [x["state"] for x in req.refresh()["jobs"]]
    assert states == ["failed", "succeeded"]


def test_tls_is_required_and_checked(ws: LocalWorkspace, tmp_path: Path) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(ws.hub_url + "/health", verify=str(ws.pki / "ca.crt"), timeout=5)  # NB: no client certificate
    pki.init_ca(tmp_path / "foreign")
    pki.issue(tmp_path / "foreign", "engine0")
    cfg = EngineConfig.load(ws.root / "nodes" / "engine0" / "engine.toml")
    cfg.tls = pki.TLSFiles(cfg.tls.ca, tmp_path / "foreign" / "engine0.crt", tmp_path / "foreign" / "engine0.key")
    with pytest.raises(pki.PKIError, match="workspace CA"):
        Engine(cfg)
    node = ws.client("ds-ggd")
    with pytest.raises(Exception, match="403"):
        node.post("/requests", {"collaboration": COLLABORATION, "purpose": "x", "plan": {}})


def _cli_env(ws: LocalWorkspace, who: str) -> dict[str, str]:
    return {**os.environ, "WERKPLAATS_HUB": ws.hub_url, "WERKPLAATS_TOKEN": ws.tokens[who],
            "WERKPLAATS_CA": str(ws.pki / "ca.crt"), "WERKPLAATS_CERT": str(ws.pki / "client.crt"),
            "WERKPLAATS_KEY": str(ws.pki / "client.key")}  # fmt: skip


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "werkplaats", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_preview_and_the_request_cli(ws: LocalWorkspace, tmp_path: Path) -> None:
    c = connect(ws)
    frame = c.table("ggd/meldingen").join(
        c.table("huisartsen/patienten").select("bsn", chronisch=wp.col("chronische_aandoeningen") >= 1),
        on="bsn", how="left").group_by("gemeente").agg(n=wp.count())  # fmt: skip
    pre = frame.preview()
    assert pre["n"].sum() > 0 and "dummy" in pre.attrs["preview"]
    plan = tmp_path / "plan.json"
    plan.write_text(analysis("kinkhoest").to_json())
    env = _cli_env(ws, "analist")
    out = _cli(env, "request", "submit", str(plan), "--collaboration", COLLABORATION, "--purpose", PURPOSE)
    assert out.returncode == 0, out.stderr
    rid = out.stdout.split()[1].rstrip(":")
    assert "needs approval of ggd, huisartsen" in out.stdout
    for org in ws.organisations:
        cfg = ws.root / "nodes" / f"ds-{org}" / "datastation.toml"
        ok = _cli(env, "datastation", "approve", rid, "--config", str(cfg), "--yes")
        assert ok.returncode == 0 and "Data read:" in ok.stdout and "approved" in ok.stdout, ok.stdout + ok.stderr
    assert rid in _cli(env, "request", "list").stdout
    assert "approved by ggd" in _cli(env, "request", "show", rid).stdout
    run = _cli(env, "request", "run", rid)
    assert run.returncode == 0 and "succeeded" in run.stdout, run.stdout + run.stderr
    res = _cli(env, "request", "result", rid, "--format", "csv")
    assert res.stdout.startswith("gemeente,n,chronisch,leeftijd,suppressed,reason")


def test_audit_cli_verifies_and_catches_a_tampered_entry(ws: LocalWorkspace) -> None:
    env = {**_cli_env(ws, "fg"), "WERKPLAATS_HUB_KEY": str(ws.root / "keys" / "hub.pub")}  # NB: the pinned key

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli(env, *args)

    ok = cli("audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stdout + ok.stderr
    reg = cli("audit", "export", "--format", "csv")
    assert "contribution" in reg.stdout and "ggd/meldingen" in reg.stdout and "steward-ggd" in reg.stdout
    db = sqlite3.connect(ws.root / "hub" / "hub.db")
    (subject,) = db.execute("SELECT subject FROM audit WHERE seq = 3").fetchone()
    db.execute("UPDATE audit SET subject = 'request/999' WHERE seq = 3")
    db.commit()
    try:
        bad = cli("audit", "verify")
        assert bad.returncode == 1 and "entry 3: changed" in bad.stdout, bad.stdout
    finally:  # NB: the workspace is shared by the session's tests: put the entry back
        db.execute("UPDATE audit SET subject = ? WHERE seq = 3", (subject,))
        db.commit()
        db.close()
    assert cli("audit", "verify").returncode == 0
