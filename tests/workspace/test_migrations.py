"""The hub's Alembic migrations: an upgrade from the previous schema keeps the data, and the models match (in process).

On SQLite and PostgreSQL (the ``database`` fixture).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import text

from werkplaats import usecases as uc
from werkplaats.plan.serde import plan_to_dict
from werkplaats.workspace import audit, db, pki
from werkplaats.workspace.hub import Hub, create_app
from werkplaats.workspace.hub.core import token_hash
from werkplaats.workspace.jobs import describe
from werkplaats.workspace.signing import approval_body, approval_id, sign_approval
from werkplaats.workspace.sql import make_engine

MIGRATIONS = Path(db.__file__).parent / "migrations"


def _upgrade(engine: Any, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _insert(conn: Any, table: str, **row: Any) -> Any:
    """Insert a row as a 0001-era hub did (ids from the database's own sequence); return its id."""
    cols = ", ".join(row)
    vals = ", ".join(f":{k}" for k in row)
    ret = "" if table == "audit" else " RETURNING id"
    sql = f"INSERT INTO {table} ({cols}) VALUES ({vals}){ret}"
    r = conn.execute(text(sql), {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()})
    return r.scalar() if ret else None


def _fill_0001(engine: Any, hub_key: Any, org_key: Any, token: str) -> dict[str, Any]:
    """Rows of every kind in the 0001 table shape, with a signed audit chain over them."""
    now = dt.datetime.now(dt.UTC)
    from werkplaats.plan.serde import plan_from_dict

    info = describe(plan_from_dict(plan_to_dict(uc.infection_hotspots(2024, signal="huisarts").to_plan())))
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=info["plan"],
                         plan_hash=info["plan_hash"], expires=now + dt.timedelta(days=1), max_runs=2,
                         steward="st-ha")  # fmt: skip
    sig = sign_approval(org_key, body)
    entries: list[dict[str, Any]] = []

    def log(actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        entries.append(audit.make_entry(entries[-1] if entries else None, node="hub", actor=actor, action=action,
                                        subject=subject, details=details, key=hub_key))  # fmt: skip

    with engine.begin() as c:
        _insert(c, "organisations", name="huisartsen", title="", kind="", signing_key=pki.public_key_b64(org_key),
                created=now)  # fmt: skip
        _insert(c, "organisations", name="ggd", title="", kind="", signing_key=pki.public_key_b64(org_key),
                created=now)  # fmt: skip
        _insert(c, "users", name="beheerder", organisation_id=None, role="admin", token_hash=token_hash(token),
                created=now)  # fmt: skip
        _insert(c, "users", name="analist", organisation_id=2, role="scientist",
                token_hash=token_hash(token + "-analist"), created=now)  # fmt: skip
        _insert(c, "collaborations", name="pp", title="", purpose="pandemische paraatheid", dpia_annex="",
                created=now)  # fmt: skip
        _insert(c, "members", collaboration_id=1, organisation_id=1)
        _insert(c, "members", collaboration_id=1, organisation_id=2)
        for d in info["datasets"]:
            _insert(c, "datasets", name=d, organisation_id=1, title="", description="",
                    table_schema={"fields": []}, update_frequency="", person_key="", rules={"min_group_size": 10},
                    row_count=1000, completeness={}, updated=now)  # fmt: skip
            _insert(c, "collaboration_datasets", collaboration_id=1, dataset=d)
        _insert(c, "requests", collaboration_id=1, requester_id=2, purpose="x", plan=info["plan"],
                plan_hash=info["plan_hash"], explain=info["explain"], organisations=["huisartsen"],
                datasets=info["datasets"], columns=info["columns"], created=now)  # fmt: skip
        log("analist", "request", "request/1", {"request": 1, "collaboration": "pp"})
        _insert(c, "approvals", request_id=1, organisation_id=1, body=body, signature=sig, signed_by="st-ha",
                created=now)  # fmt: skip
        log("st-ha", "approval", "request/1", {"request": 1, "organisation": "huisartsen", "signature": sig})
        _insert(c, "jobs", request_id=1, state="succeeded", reason="", progress={"engine0": {"state": "done"}},
                approvals=[{"body": body, "signature": sig}], created=now, started=now, finished=now)  # fmt: skip
        log("analist", "job-created", "job/1", {"request": 1, "job": 1, "approvals": [approval_id(sig)]})
        _insert(c, "results", job_id=1, data={"columns": ["n"], "rows": [{"n": 12}], "min_group_size": 10}, created=now)
        log("hub", "job-succeeded", "job/1", {"job": 1})
        for e in entries:
            _insert(c, "audit", **e)
    return {"plan_hash": info["plan_hash"], "entries": entries}


def test_upgrade_from_0001_keeps_rows_and_the_hub_runs_on_them(database: str, tmp_path: Path) -> None:
    engine = make_engine(database)
    _upgrade(engine, "0001")
    with engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    pki.new_signing_key(tmp_path / "hub.key")
    hub_key = pki.load_signing_key(tmp_path / "hub.key")
    pki.new_signing_key(tmp_path / "ha.key")
    org_key = pki.load_signing_key(tmp_path / "ha.key")
    filled = _fill_0001(engine, hub_key, org_key, "tok-admin")
    engine.dispose()

    h = Hub(database, name="hub", signing_key=hub_key)  # NB: the hub's own upgrade path (db.migrate to head)
    try:
        with h.engine.connect() as c:
            assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == _head()
            assert c.execute(text("SELECT count(*) FROM job_contributions")).scalar() == 0
            assert c.execute(text("SELECT offered FROM jobs WHERE id = 1")).scalar() is None
        client = TestClient(create_app(h))
        admin = {"Authorization": "Bearer tok-admin"}
        analist = {"Authorization": "Bearer tok-admin-analist"}
        verdict = client.get("/api/v1/audit/verify", headers=admin).json()
        assert verdict["ok"] is True, verdict
        dump = client.get("/api/v1/audit", headers=admin).json()
        assert [e["hash"] for e in dump["entries"]] == [e["hash"] for e in filled["entries"]]
        reqs = client.get("/api/v1/requests", headers=analist).json()
        assert [(r["id"], r["plan_hash"], r["status"]) for r in reqs] == [(1, filled["plan_hash"], "approved")]
        r1 = client.get("/api/v1/requests/1", headers=analist).json()
        assert [j["state"] for j in r1["jobs"]] == ["succeeded"]
        assert client.get("/api/v1/requests/1/result", headers=analist).status_code == 200
        # the hub appends to the old chain: a new organisation, and the chain still verifies
        pub = pki.new_signing_key(tmp_path / "ggz.key")
        assert (
            client.post("/api/v1/organisations", json={"name": "ggz", "signing_key": pub}, headers=admin).status_code
            == 201
        )
        assert client.get("/api/v1/audit/verify", headers=admin).json()["ok"] is True
        client.close()
    finally:
        h.engine.dispose()


def _head() -> str:
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head
    return head


def test_models_match_the_migrated_schema(database: str) -> None:
    """A model changed without a migration fails here: autogenerate finds no difference after upgrade to head."""
    engine = make_engine(database)
    try:
        db.migrate(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
            diff = compare_metadata(ctx, db.Base.metadata)
        assert diff == [], f"models in workspace/db.py differ from the migrated schema (add a migration): {diff}"
    finally:
        engine.dispose()
