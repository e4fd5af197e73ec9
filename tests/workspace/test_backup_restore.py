"""Backup and restore of the hub, and nodes that saw a newer audit head than the restored hub has (in process).

A restored hub's chain ends before entries its nodes anchored. The nodes must not go on silently: they
refuse jobs naming the gap until their operator re-anchors, which is logged in the node's own log.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from werkplaats.workspace import audit, pki, register
from werkplaats.workspace.config import EngineConfig
from werkplaats.workspace.engine import Engine
from werkplaats.workspace.hub import Hub, create_app
from werkplaats.workspace.messages import AuditHead

from .test_attack_pinning import FakeHub, _engine_toml, _job
from .test_hub import hub as hub
from .test_hub_scope import _request


def _backup(db: Path, to: Path) -> None:
    """`sqlite3 hub.db ".backup FILE"`: a consistent copy, also while the hub runs."""
    if shutil.which("sqlite3"):
        subprocess.run(["sqlite3", str(db), f".backup {to}"], check=True)
    else:  # NB: the same online-backup API
        import sqlite3

        src, dst = sqlite3.connect(db), sqlite3.connect(to)
        src.backup(dst)
        src.close()
        dst.close()


def _head(h: Hub) -> AuditHead:
    with h.sessions() as s:
        return h.audit_head(s)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_sqlite_backup_restore_and_nodes_that_saw_more(hub: Any, database: str, tmp_path: Path) -> None:
    h, u, keys = hub
    pinned = h.public_key
    db_file = Path(database.removeprefix("sqlite:///"))
    r = _request(u, keys, max_runs=5)
    u["analist"].post(f"/requests/{r['id']}/run")
    at_backup = _head(h)
    _backup(db_file, tmp_path / "hub-backup.db")
    # after the backup: more entries, and a node anchors the newer head
    u["analist"].post(f"/requests/{r['id']}/run")
    u["admin"].post("/organisations", {"name": "rivm", "signing_key": pki.public_key_b64(keys["ggd"])})
    newer = _head(h)
    assert newer.seq > at_backup.seq
    node_log = audit.FileLog(tmp_path / "engine1" / "runs.jsonl", "engine1")
    assert node_log.anchor(newer, pinned) == ""
    # restore: the hub stopped, its database file replaced by the backup, the hub started with the same key
    u["admin"].c.close()
    h.engine.dispose()
    shutil.copy(tmp_path / "hub-backup.db", db_file)
    restored = Hub(database, name="hub", signing_key=h.key)
    try:
        client = TestClient(create_app(restored))
        admin = u["admin"].h
        verdict = client.get("/api/v1/audit/verify", headers=admin).json()
        assert verdict == {"ok": True, "problems": []}
        back = _head(restored)
        assert (back.seq, back.hash) == (at_backup.seq, at_backup.hash)
        orgs = [o["name"] for o in client.get("/api/v1/organisations", headers=admin).json()]
        assert orgs == ["ggd", "ggz", "huisartsen"]  # NB: rivm was registered after the backup
        # the node does not take the restored hub silently
        gap = node_log.gap(back, pinned)
        assert gap == f"the hub's audit chain went back from entry {newer.seq} to entry {back.seq} (cut, or restored)"
        # and the cross-check names the entries the restored hub lacks
        entries = client.get("/api/v1/audit", headers=admin).json()["entries"]
        problems = register.cross_check(entries, pinned, [register.NodeLog.read(node_log.path)])
        assert any(f"engine1 saw head {newer.seq}" in p for p in problems), problems
        client.close()
    finally:
        restored.engine.dispose()


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    """An engine in process (no hub: a FakeHub records what it reports) whose config pins a hub key."""
    pki.new_signing_key(tmp_path / "hub.key")
    hub_key = pki.load_signing_key(tmp_path / "hub.key")
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    cfg = EngineConfig.load(_engine_toml(tmp_path, pub, hub_key=pki.public_key_b64(hub_key)))
    e = Engine(cfg)
    e.hub = FakeHub()  # type: ignore[assignment]
    chain: list[dict[str, Any]] = []
    for i in range(6):
        chain.append(audit.make_entry(chain[-1] if chain else None, node="hub", actor="x", action="a",
                                      subject=f"s/{i}", details={}, key=hub_key))  # fmt: skip
    heads = [audit.sign_head(x, hub="hub", key=hub_key) for x in chain]
    return e, cfg, heads, tmp_path


def test_an_engine_refuses_a_hub_behind_its_anchor_until_its_operator_reanchors(engine: Any) -> None:
    e, cfg, heads, tmp = engine
    pinned = cfg.hub_key
    job = _job(tmp, cfg, 7, keys={"ggd": cfg.organisations["ggd"]}, signer=tmp / "ggd.key")
    e.take(job.model_copy(update={"audit_head": heads[5]}))  # NB: it anchors entry 6
    assert 7 in e.jobs and e.ledger.last_anchor() == heads[5]
    # the hub restored from a backup: its head is entry 3
    e.take(job.model_copy(update={"job": 8, "audit_head": heads[2]}))
    assert 8 not in e.jobs
    (reason,) = [x for x in e.hub.reasons() if "went back" in x]
    assert reason.startswith("audit: the hub's audit chain went back from entry 6 to entry 3")
    assert "werkplaats engine reanchor --config FILE --reason TEXT" in reason
    # no re-anchoring without a reason, nor to a head the pinned hub key did not sign
    with pytest.raises(audit.LogError, match="needs a reason"):
        e.ledger.reanchor(heads[2], pinned, operator="operator:beheer", reason=" ")
    rogue = heads[2].model_copy(update={"seq": 2})
    with pytest.raises(audit.LogError, match="not signed by the pinned hub key"):
        e.ledger.reanchor(rogue, pinned, operator="operator:beheer", reason="restored")
    # the operator re-anchors explicitly (what `werkplaats engine reanchor` does): logged in the ledger
    from werkplaats.cli.common import reanchor

    class HeadHub(FakeHub):
        def get(self, path: str, **params: Any) -> Any:
            assert path == "/node/audit-head"
            return heads[2].to_dict()

    reanchor(HeadHub(), e.ledger, pinned, "hub restored from the backup of 03:00, checked by J. Jansen")
    last = e.ledger.entries()[-1]
    assert last["action"] == audit.REANCHOR and last["actor"].startswith("operator:")
    assert last["details"]["previous"]["seq"] == 6 and last["details"]["head"]["seq"] == 3
    assert last["details"]["detail"] == "hub restored from the backup of 03:00, checked by J. Jansen"
    assert e.ledger.check()  # NB: still an intact chain
    e.take(job.model_copy(update={"job": 9, "audit_head": heads[3]}))
    assert 9 in e.jobs  # NB: after the re-anchoring it goes on with the restored hub


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_postgresql_pg_dump_and_pg_restore(hub: Any, database: str, tmp_path: Path) -> None:
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump/pg_restore not installed")
    h, u, keys = hub
    r = _request(u, keys, max_runs=5)
    u["analist"].post(f"/requests/{r['id']}/run")
    at_backup = _head(h)
    dump = tmp_path / "hub.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), database], check=True)
    u["analist"].post(f"/requests/{r['id']}/run")
    assert _head(h).seq > at_backup.seq
    u["admin"].c.close()
    h.engine.dispose()
    subprocess.run(["pg_restore", "--clean", "--no-owner", "-d", database, str(dump)], check=True)
    restored = Hub(database, name="hub", signing_key=h.key)
    try:
        client = TestClient(create_app(restored))
        assert client.get("/api/v1/audit/verify", headers=u["admin"].h).json() == {"ok": True, "problems": []}
        back = _head(restored)
        assert (back.seq, back.hash) == (at_backup.seq, at_backup.hash)
        jobs = client.get(f"/api/v1/requests/{r['id']}", headers=u["analist"].h).json()["jobs"]
        assert len(jobs) == 1  # NB: the second run came after the dump
        client.close()
    finally:
        restored.engine.dispose()


def test_a_datastation_refuses_a_hub_behind_its_anchor_and_logs_it(engine: Any) -> None:
    from werkplaats.workspace.config import DatastationConfig
    from werkplaats.workspace.datastation import Datastation

    _e, cfg, heads, tmp = engine
    pki.issue(tmp / "pki", "ds-ggd")
    pins = "".join(f'[[engines]]\nparty = {p}\nurl = "https://127.0.0.1:{9000 + p}"\nspki_sha256 = "{"0" * 64}"\n'
                   for p in range(3))  # fmt: skip
    (tmp / "datastation.toml").write_text(
        '[datastation]\nname = "ds-ggd"\norganisation = "ggd"\nhub = "https://127.0.0.1:9"\ntoken = "t"\n'
        f'signing_key = "ggd.key"\nstate_dir = "ds-state"\nhub_key = "{cfg.hub_key}"\n'
        '[tls]\nca = "pki/ca.crt"\ncert = "pki/ds-ggd.crt"\nkey = "pki/ds-ggd.key"\n' + pins
    )
    st = Datastation(DatastationConfig.load(tmp / "datastation.toml"))
    st.hub = fake = FakeHub()  # type: ignore[assignment]
    assert st.log.anchor(heads[4], cfg.hub_key) == ""
    job = _job(tmp, cfg, 7, keys={"ggd": cfg.organisations["ggd"]}, signer=tmp / "ggd.key")
    st.handle(job.model_copy(update={"audit_head": heads[1]}))  # NB: the restored hub's head
    (reason,) = fake.reasons()
    assert reason.startswith("audit: the hub's audit chain went back from entry 5 to entry 2")
    assert "werkplaats datastation reanchor" in reason
    assert [(e["action"], e["details"].get("detail")) for e in st.log.entries()][-1] == ("refusal", reason)
