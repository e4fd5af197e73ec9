"""Issue 9 §1 and the engine's inbox (§4): no single node can collect the shares.

Attacks: a hub that redirects the engines' URLs to one inbox; an engine impostor with a
workspace certificate named engine0 but another key; a second engine for a party; a job
payload with a swapped organisation key; an approval screen given a lying explain text;
share messages that are unsigned, for unknown or ended jobs, oversized, or overwrites.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import werkplaats as wp
from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.mpc.process import free_port
from werkplaats.plan.explain import explain
from werkplaats.plan.serde import plan_from_dict, plan_hash, plan_to_dict
from werkplaats.workspace import pki
from werkplaats.workspace.config import DatastationConfig, EngineConfig, EnginePin
from werkplaats.workspace.datastation import Datastation
from werkplaats.workspace.engine import Engine
from werkplaats.workspace.http import Client
from werkplaats.workspace.hub import Hub, create_app
from werkplaats.workspace.messages import JobPayload, ShareHeader, pack
from werkplaats.workspace.signing import approval_body, canonical, sha256, sign_approval

from .live import PURPOSE, analysis, approve_all, connect, station, wait_state
from .wait import wait_until

# -- helpers ---------------------------------------------------------------------------------------

COLLECTOR = """
import sys
from pathlib import Path
from fastapi import FastAPI, Request
from werkplaats.workspace.http import serve
from werkplaats.workspace.pki import TLSFiles

ca, cert, key, port, record = sys.argv[1:6]
app = FastAPI()

@app.api_route("/{path:path}", methods=["GET", "POST", "PUT"])
async def collect(path: str, request: Request) -> dict:
    body = await request.body()
    with open(record, "a") as f:
        f.write(f"{request.method} /{path} {len(body)}\\n")
    return {"ok": True, "job": 0, "party": 0}

serve(app, "127.0.0.1", int(port), TLSFiles(Path(ca), Path(cert), Path(key)))
"""


class Collector:
    """A real process with a workspace certificate that accepts and records everything sent to it."""

    def __init__(self, ws: LocalWorkspace, tmp: Path, name: str) -> None:
        ca = tmp / "ca"
        ca.mkdir()
        for f in ("ca.crt", "ca.key"):  # NB: whoever holds the workspace CA (the admin) issues another "engine0"
            shutil.copy(ws.pki / f, ca / f)
        self.cert, key = pki.issue(ca, name)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.record = tmp / "received.txt"
        self.record.write_text("")
        self.proc = subprocess.Popen([sys.executable, "-c", COLLECTOR, str(ws.pki / "ca.crt"), str(self.cert), str(key),
                                      str(self.port), str(self.record)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        tls = ws.tls()

        def up() -> bool:
            try:
                return httpx.get(self.url + "/health", verify=tls.client_context(), timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the collector listens")
        self.record.write_text("")  # NB: forget the readiness probe

    def received(self) -> list[str]:
        return self.record.read_text().splitlines()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class FakeHub:
    """The hub as a compromised hub would answer a node in-process: it records what the node reports."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []

    def get(self, path: str, **params: Any) -> Any:
        return {"v": 1, "job": 0, "state": "approved", "reason": "", "progress": {}}

    def post(self, path: str, body: Any = None, *, content: bytes | None = None) -> Any:
        self.posts.append((path, body))
        return {"job": 0, "state": "approved"}

    def reasons(self) -> list[str]:
        return [b.get("reason", "") for p, b in self.posts if p.endswith("/progress") and isinstance(b, dict)]

    def close(self) -> None:
        pass


def _hub_db(ws: LocalWorkspace, sql: str, *args: Any) -> list[Any]:
    con = sqlite3.connect(ws.root / "hub" / "hub.db")
    try:
        rows = con.execute(sql, args).fetchall()
        con.commit()
    finally:
        con.close()
    return rows


def _signed(key_path: Path, plan: dict[str, Any], h: str, org: str = "ggd", **kw: Any) -> dict[str, Any]:
    body = approval_body(organisation=org, collaboration=COLLABORATION, purpose=PURPOSE, plan=plan, plan_hash=h,
                         expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1), max_runs=1,
                         steward=f"steward-{org}", **kw)  # fmt: skip
    return {"body": body, "signature": sign_approval(pki.load_signing_key(key_path), body)}


# -- the hub redirects every engine URL to one inbox (real processes) -------------------------------


def test_a_hub_that_points_every_engine_at_one_inbox_receives_nothing(ws: LocalWorkspace, tmp_path: Path) -> None:
    collector = Collector(ws, tmp_path, "collector")
    saved = _hub_db(ws, "SELECT name, url FROM nodes WHERE kind = 'engine'")
    logs = {o: len(station(ws, o).log.entries()) for o in ws.organisations}
    try:
        _hub_db(ws, "UPDATE nodes SET url = ? WHERE kind = 'engine'", collector.url)  # NB: the lying hub
        c = connect(ws)
        req = c.submit(analysis("COVID-19"), collaboration=COLLABORATION, purpose=PURPOSE)
        approve_all(ws, req.id)
        job = req.run(wait=False)
        j = wait_state(c, job, ("failed", "succeeded"), timeout=120)
    finally:
        for name, url in saved:
            _hub_db(ws, "UPDATE nodes SET url = ? WHERE name = ?", url, name)
        collector.stop()
    assert j["state"] == "failed" and "not to the engine pinned for party" in j["reason"], j
    assert collector.received() == []  # NB: on the old code: every dataset's three shares
    refused = 0
    for o in ws.organisations:  # NB: the first refusal fails the job; a slower datastation may never see it
        new = [e for e in station(ws, o).log.entries()[logs[o] :] if e["subject"] == f"job/{job}"]
        assert [e["action"] for e in new] in ([], ["refusal"]), new  # NB: never a contribution
        if new:
            assert "pinned" in new[-1]["details"]["detail"]
            refused += 1
    assert refused >= 1


# -- an engine impostor: a CA-issued "engine0" certificate with another key (real process) ---------


def test_an_engine_impostor_with_a_workspace_certificate_is_refused_by_the_pin(ws: LocalWorkspace,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    impostor = Collector(ws, tmp_path, "engine0")
    real = pki.fingerprint(ws.pki / "engine0.crt")
    try:
        assert pki.common_name(pki.x509.load_pem_x509_certificate(impostor.cert.read_bytes())) == "engine0"
        honest = Client(ws.engine_url(0), token="", tls=ws.tls(), pin=real)
        assert honest.http.get("/health").json()["party"] == 0  # NB: the pinned key on the live connection
        honest.close()
        # the impostor took over the address the datastation pinned for party 0
        cfg = DatastationConfig.load(ws.root / "nodes" / "ds-ggd" / "datastation.toml")
        pins = [EnginePin(0, impostor.url, real), *cfg.engines[1:]]
        st = Datastation(dataclasses.replace(cfg, engines=pins, state_dir=tmp_path / "state"))
        st.hub = FakeHub()  # type: ignore[assignment]
        c = connect(ws)
        req = c.submit(analysis("COVID-19"), collaboration=COLLABORATION, purpose=PURPOSE)
        info = req.refresh()
        adm = ws.client("admin")
        cat = {d["name"]: d["schema"] for d in adm.get("/datasets")}
        adm.close()
        engines = [{"party": p.party, "name": f"engine{p.party}", "url": p.url, "mpc": "127.0.0.1:9"} for p in pins]
        job = JobPayload.from_dict({
            "v": 1, "job": 80_000 + req.id, "request": req.id, "collaboration": COLLABORATION, "purpose": PURPOSE,
            "plan": info["plan"], "plan_hash": info["plan_hash"], "datasets": info["datasets"],
            "columns": info["columns"], "schemas": {d: cat[d] for d in info["datasets"]},
            "approvals": [_signed(ws.root / "keys" / "ggd.key", info["plan"], info["plan_hash"])],
            "organisation_keys": {}, "engines": engines, "state": "approved"})  # fmt: skip
        st.handle(job)
    finally:
        impostor.stop()
    assert impostor.received() == []  # NB: on the old code: the share of ggd/meldingen for party 0
    entries = st.log.entries()
    assert [e["action"] for e in entries] == ["refusal"]
    assert "party 0" in entries[-1]["details"]["detail"] and "pinned key" in entries[-1]["details"]["detail"]
    assert any("pinned key" in r for r in st.hub.reasons())  # type: ignore[attr-defined]


def test_a_pinned_client_refuses_a_peer_with_another_key(ws: LocalWorkspace) -> None:
    other = pki.fingerprint(ws.pki / "engine1.crt")
    c = Client(ws.engine_url(0), token="", tls=ws.tls(), pin=other)
    try:
        with pytest.raises(pki.PinError, match="not its pinned key"):
            c.http.get("/health")
    finally:
        c.close()


# -- a second engine for a party --------------------------------------------------------------------


def test_the_live_hub_refuses_a_second_engine_for_party_0(ws: LocalWorkspace) -> None:
    adm = ws.client("admin")
    try:
        with pytest.raises(Exception, match=r"409.*party 0 has an engine already"):
            adm.post("/nodes", {"name": "engine0b", "kind": "engine", "party": 0, "url": "https://127.0.0.1:9",
                                "mpc_address": "127.0.0.1:9"})  # fmt: skip
    finally:
        adm.close()


@pytest.fixture
def admin(database: str, tmp_path: Path) -> Iterator[Any]:
    pki.new_signing_key(tmp_path / "hub.key")
    h = Hub(database, name="hub", signing_key=pki.load_signing_key(tmp_path / "hub.key"))
    client = TestClient(create_app(h))
    headers = {"Authorization": f"Bearer {h.create_admin('beheerder')}"}

    def post(body: dict[str, Any]) -> httpx.Response:
        return client.post("/api/v1/nodes", json=body, headers=headers)

    yield post
    client.close()
    h.engine.dispose()


def test_hub_refuses_a_second_engine_for_a_party(admin: Any) -> None:
    def engine(name: str, party: int) -> dict[str, Any]:
        return {"name": name, "kind": "engine", "party": party, "url": f"https://{name}:1", "mpc_address": f"{name}:2"}

    for i in range(3):
        assert admin(engine(f"engine{i}", i)).status_code == 201
    r = admin(engine("engine0b", 0))
    assert r.status_code == 409 and "party 0 has an engine already ('engine0')" in r.json()["detail"]
    r = admin(engine("engine1", 1))
    assert r.status_code == 409 and "'engine1'" in r.json()["detail"]


# -- the steward's approval screen -------------------------------------------------------------------


def test_the_approval_screen_shows_the_plan_it_signs_not_the_hubs_text(ws: LocalWorkspace) -> None:
    c = connect(ws)
    req = c.submit(analysis("mazelen"), collaboration=COLLABORATION, purpose=PURPOSE)
    lie = "Telt alleen het aantal meldingen per gemeente. Leest geen persoonsgegevens."
    _hub_db(ws, "UPDATE requests SET explain = ? WHERE id = ?", lie, req.id)  # NB: the hub's stored text lies
    assert req.refresh()["explain"] == lie
    rv = station(ws, "ggd").review(req.id)
    assert rv.explain == explain(plan_from_dict(req.refresh()["plan"])) and lie not in rv.explain
    assert "huisartsen/patienten" in rv.explain and "ggd/meldingen" in rv.explain
    cfg = ws.root / "nodes" / "ds-huisartsen" / "datastation.toml"
    out = subprocess.run([sys.executable, "-m", "werkplaats", "datastation", "approve", str(req.id), "--config",
                          str(cfg), "--yes"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert lie not in out.stdout and rv.explain in out.stdout and "approved" in out.stdout


# -- waiting for shares holds no engine slot (real processes) ---------------------------------------


def test_a_job_waiting_for_shares_does_not_hold_the_engines(ws: LocalWorkspace) -> None:
    c = connect(ws)
    waiting = c.submit(analysis("kinkhoest"), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, waiting.id)
    ws.procs["ds-huisartsen"].stop()  # NB: its share of the first job will come late
    try:
        first = waiting.run(wait=False)

        def ggd_sent() -> bool:
            return c.client.get(f"/jobs/{first}")["progress"].get("ds-ggd", {}).get("state") == "sent"

        wait_until(ggd_sent, 120, "ds-ggd sent its shares of the first job")
        alone = c.submit(wp.scan("ggd/meldingen").group_by("gemeente").agg(n=wp.count()),
                         collaboration=COLLABORATION, purpose=PURPOSE)  # fmt: skip
        station(ws, "ggd").approve(alone.id)
        got = alone.run(timeout=300)  # NB: on the old code: stuck behind the first job until its 600 s ran out
        assert (~got["suppressed"]).sum() > 0
        assert c.client.get(f"/jobs/{first}")["state"] == "approved"  # NB: still waiting, not failed
    finally:
        ws.start_datastation("huisartsen")
    j = wait_state(c, first, ("failed", "succeeded"), timeout=300)
    assert j["state"] == "succeeded", j


# -- organisation keys pinned at the engine; the inbox (in process) ---------------------------------


@dataclasses.dataclass
class Node:
    engine: Engine
    inbox: TestClient
    hub: FakeHub
    key: Path  # NB: ggd's signing key
    job: JobPayload


SCHEMA = {
    "fields": [
        {"name": "gemeente", "type": "string", "constraints": {"enum": ["A", "B"]}},
        {"name": "leeftijd", "type": "integer", "constraints": {"minimum": 0, "maximum": 120}},
    ]
}


def _job(tmp: Path, cfg: EngineConfig, jid: int, *, keys: dict[str, str], signer: Path) -> JobPayload:
    plan = plan_to_dict(wp.scan("ggd/meldingen").group_by("gemeente").agg(n=wp.count()).to_plan())
    h = plan_hash(plan_from_dict(plan))
    mpc = {cfg.party: cfg.mpc} | {p.party: p.mpc for p in cfg.peers}
    engines = [{"party": i, "name": f"engine{i}", "url": f"https://127.0.0.1:{9000 + i}", "mpc": mpc[i]}
               for i in range(3)]  # fmt: skip
    body = approval_body(organisation="ggd", collaboration="c", purpose="p", plan=plan, plan_hash=h,
                         expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1), max_runs=1, steward="s")  # fmt: skip
    appr = {"body": body, "signature": sign_approval(pki.load_signing_key(signer), body)}
    return JobPayload.from_dict({"v": 1, "job": jid, "request": 1, "collaboration": "c", "purpose": "p",
                                 "plan": plan, "plan_hash": h, "datasets": ["ggd/meldingen"],
                                 "columns": {"ggd/meldingen": ["gemeente"]}, "schemas": {"ggd/meldingen": SCHEMA},
                                 "approvals": [appr],
                                 "organisation_keys": keys, "engines": engines, "state": "approved"})  # fmt: skip


def _engine_toml(tmp: Path, ggd_pub: str, **extra: Any) -> Path:
    pki.init_ca(tmp / "pki")
    pki.issue(tmp / "pki", "engine0")
    fps = {}
    for i in range(3):
        cert, _ = pki.link_certificate(tmp / f"engine{i}", f"engine{i}-link")
        fps[i] = pki.fingerprint(cert)
    fps |= extra.pop("fingerprints", {})
    text = ('[engine]\nname = "engine0"\nparty = 0\nhub = "https://127.0.0.1:9"\ntoken = "t"\n'
            'listen = "127.0.0.1:9100"\nmpc = "127.0.0.1:9200"\nstate_dir = "state"\n'
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
            + '[tls]\nca = "pki/ca.crt"\ncert = "pki/engine0.crt"\nkey = "pki/engine0.key"\n'
            '[link]\ncert = "engine0/engine0-link.crt"\nkey = "engine0/engine0-link.key"\n'
            + "".join(f'[[peers]]\nparty = {j}\nmpc = "127.0.0.1:{9200 + j}"\ncert = "engine{j}/engine{j}-link.crt"\n'
                      f'spki_sha256 = "{fps[j]}"\n' for j in (1, 2))
            + f'[organisations]\nggd = "{ggd_pub}"\n')  # fmt: skip
    (tmp / "engine.toml").write_text(text)
    return tmp / "engine.toml"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    cfg = EngineConfig.load(_engine_toml(tmp_path, pub, max_share_mb=0.01))  # NB: about 10 kB
    e = Engine(cfg)
    hub = FakeHub()
    e.hub = hub  # type: ignore[assignment]
    job = _job(tmp_path, cfg, 7, keys={"ggd": pub}, signer=tmp_path / "ggd.key")
    e.take(job)  # NB: as when it polls the job from the hub
    assert 7 in e.jobs, hub.reasons()
    with TestClient(e.app()) as client:
        yield Node(e, client, hub, tmp_path / "ggd.key", job)


def _share(n: Node, *, key: Path | None = None, dataset: str = "ggd/meldingen", job: int = 7, size: int = 100,
           schema: dict[str, Any] | None = None, rules: dict[str, Any] | None = None) -> bytes:  # fmt: skip
    blobs = [bytes(size)]
    h = ShareHeader(job=job, dataset=dataset, organisation=dataset.split("/")[0], rows=3, share_blobs=[1],
                    digest=hashlib.sha256(blobs[0]).hexdigest(), plan_hash=n.job.plan_hash,
                    schema_sha256=sha256(canonical(schema if schema is not None else n.job.schemas.get(dataset, {}))),
                    rules_sha256=sha256(canonical(rules if rules is not None else n.job.rules)))  # fmt: skip
    if key is not None:
        h = h.model_copy(update={"signature": pki.sign(pki.load_signing_key(key), canonical(h.signed_part()))})
    return pack(h, blobs)


def _post(n: Node, data: bytes, job: int = 7) -> httpx.Response:
    return n.inbox.post(f"/jobs/{job}/shares", content=data, headers={"content-type": "application/octet-stream"})


def test_inbox_takes_a_signed_share_once(node: Node) -> None:
    assert node.inbox.get("/jobs/7").status_code == 200
    r = _post(node, _share(node, key=node.key))
    assert r.status_code == 200, r.text
    r = _post(node, _share(node, key=node.key, size=50))
    assert r.status_code == 409 and "not overwritten" in r.json()["detail"]  # NB: on the old code: replaced
    assert len(node.engine.spool.read(7, 0, 0)[1][0]) == 100  # NB: the first share kept, on disk


def test_inbox_refuses_unsigned_and_foreign_shares(node: Node, tmp_path: Path) -> None:
    r = _post(node, _share(node))
    assert r.status_code == 403 and "not signed by ggd" in r.json()["detail"]  # NB: on the old code: kept
    pki.new_signing_key(tmp_path / "mallory.key")
    assert _post(node, _share(node, key=tmp_path / "mallory.key")).status_code == 403
    r = _post(node, _share(node, key=node.key, dataset="ggd/vaccinaties"))
    assert r.status_code == 403 and "reads no dataset" in r.json()["detail"]
    assert 7 not in node.engine.inbox


def test_a_hub_that_gives_engines_another_schema_or_weaker_rules_than_the_owner_signed_is_refused(node: Node) -> None:
    # NB: the owner checked (and signed) its own schema; the hub gave the engines one whose range is
    # narrower (so the in-MPC range check would be skipped and a sum could wrap) or whose rules are weaker
    owner_saw = {
        **SCHEMA,
        "fields": [SCHEMA["fields"][0], {**SCHEMA["fields"][1], "constraints": {"minimum": 0, "maximum": 2**60}}],
    }
    r = _post(node, _share(node, key=node.key, schema=owner_saw))
    assert r.status_code == 403 and "not the one ggd checked and signed" in r.json()["detail"]  # NB: old code: kept
    r = _post(node, _share(node, key=node.key, rules={"counts": "perturb", "dominance_pct": 70.0}))
    assert r.status_code == 403 and "disclosure rules are not those ggd saw" in r.json()["detail"]
    assert 7 not in node.engine.inbox
    assert _post(node, _share(node, key=node.key)).status_code == 200  # NB: the honest share is taken


def test_the_engine_applies_the_workspace_floor_and_each_datasets_own_rules_whatever_the_hub_sends() -> None:
    from werkplaats.catalog.frictionless import from_frictionless
    from werkplaats.compile.rules import DisclosureRules
    from werkplaats.workspace.jobs import WORKSPACE_FLOOR, job_analysis, job_rules

    own = {**SCHEMA, "werkplaats:rules": {"dominance_pct": 60.0, "min_group_size": 15}}
    catalog = {"ggd/meldingen": from_frictionless("ggd/meldingen", own)}
    weak = DisclosureRules.cells_only().to_settings()  # NB: a hub switching every rule off
    got = job_rules(weak, catalog, ["ggd/meldingen"])
    assert got.counts == "round" and got.complement and got.contributors and got.register and got.secondary
    assert got.dominance_pct == 60.0  # NB: the dataset's own, stricter than the default 90
    assert job_rules({}, catalog, ["ggd/meldingen"]).counts == "perturb"
    assert WORKSPACE_FLOOR.counts == "round"
    plan = plan_to_dict(wp.scan("ggd/meldingen").group_by("gemeente").agg(n=wp.count()).to_plan())
    with pytest.raises(wp.PlanError, match="below the 15 its datasets' rules ask for"):
        job_analysis(plan, catalog, {})


def test_inbox_drops_shares_of_unknown_and_ended_jobs(node: Node) -> None:
    r = _post(node, _share(node, key=node.key, job=8), job=8)
    assert r.status_code == 404 and "not a job this engine has taken" in r.json()["detail"]
    assert node.inbox.get("/jobs/8").status_code == 404
    node.engine.drop(7)  # NB: the job ended
    r = _post(node, _share(node, key=node.key))
    assert r.status_code == 410 and "has ended" in r.json()["detail"]
    assert node.engine.inbox == {}


def test_inbox_refuses_an_oversized_share_message(node: Node) -> None:
    r = _post(node, _share(node, key=node.key, size=20_000))
    assert r.status_code == 413 and "larger than the configured maximum" in r.json()["detail"]
    assert 7 not in node.engine.inbox


def test_engine_verifies_approvals_with_its_pinned_keys_not_the_jobs(node: Node, tmp_path: Path) -> None:
    mallory = pki.new_signing_key(tmp_path / "mallory.key")
    cfg = node.engine.cfg
    # the hub swaps ggd's key for its own and signs the approval itself
    forged = _job(tmp_path, cfg, 9, keys={"ggd": mallory}, signer=tmp_path / "mallory.key")
    node.engine.take(forged)
    assert 9 not in node.engine.jobs and 9 in node.engine.ended  # NB: on the old code: taken
    assert any("does not verify" in r for r in node.hub.reasons())
    # ggd's own approval, whatever key the hub lists, is accepted
    honest = _job(tmp_path, cfg, 10, keys={"ggd": mallory}, signer=node.key)
    node.engine.take(honest)
    assert 10 in node.engine.jobs


def test_engine_refuses_a_job_that_moves_its_peers(node: Node, tmp_path: Path) -> None:
    job = node.job.model_copy(
        update={
            "job": 11,
            "engines": [
                e.model_copy(update={"mpc": "10.0.0.66:9201"}) if e.party == 1 else e for e in node.job.engines
            ],
        }
    )
    node.engine.take(job)
    assert 11 not in node.engine.jobs
    assert any("not at its pinned address" in r for r in node.hub.reasons())


def test_engine_refuses_to_start_with_a_peer_certificate_that_is_not_its_pin(tmp_path: Path) -> None:
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    cfg = EngineConfig.load(_engine_toml(tmp_path, pub, fingerprints={1: "ab" * 32}))
    with pytest.raises(pki.PinError, match="party 1 does not match its pinned fingerprint"):
        Engine(cfg)
    assert time.monotonic() > 0


def test_pki_cli_prints_the_pins_an_operator_writes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from werkplaats.cli.app import app

    pki.init_ca(tmp_path / "pki")
    cert, _ = pki.issue(tmp_path / "pki", "engine0")
    out = CliRunner().invoke(app, ["pki", "fingerprint", str(cert)])
    assert out.exit_code == 0 and out.stdout.strip() == pki.fingerprint(cert) and len(out.stdout.strip()) == 64
    out = CliRunner().invoke(app, ["pki", "link-cert", "engine0-link", "--dir", str(tmp_path / "link")])
    assert (
        out.exit_code == 0 and f"spki_sha256 = {pki.fingerprint(tmp_path / 'link' / 'engine0-link.crt')}" in out.stdout
    )
    assert CliRunner().invoke(app, ["pki", "fingerprint", str(tmp_path / "nope.crt")]).exit_code != 0
