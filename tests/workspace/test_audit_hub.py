"""The hub hands out its signed audit head; a chain cut with DELETE in its database is caught (SQLite, PostgreSQL).

Before: `GET /audit/verify` and `werkplaats audit verify` passed a chain whose last rows were deleted.
Now: the heads a datastation and an engine kept name the cut.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy import text
from typer.testing import CliRunner

from werkplaats.cli.app import app as cli
from werkplaats.workspace import audit, pki
from werkplaats.workspace.messages import AuditHead, ContributionRecord, JobPayload, JobStatus
from werkplaats.workspace.signing import approval_id, canonical

from .test_hub import _approved_job, _engines, _node, hub  # noqa: F401  (hub: the in-process hub fixture)


def test_hub_chain_cut_in_the_database_is_reported_with_the_anchors(hub: Any, tmp_path: Path) -> None:  # noqa: F811
    h, u, keys = hub
    r, job = _approved_job(u, keys)
    pinned = h.public_key
    (tmp_path / "hub.pub").write_text(pinned + "\n")
    eng = _engines(u)[0]
    ds = _node(u, "ds-ha", "datastation", organisation="huisartsen")
    payload = JobPayload.from_dict(ds.get("/node/jobs")[0])
    assert payload.audit_head is not None and audit.head_verifies(payload.audit_head, pinned)
    ds_log = audit.FileLog(tmp_path / "ds" / "contributions.jsonl", "huisartsen", keys["huisartsen"])
    ds_log.anchor(payload.audit_head, pinned)
    mine = [d for d in payload.datasets if d.startswith("huisartsen/")]
    record = ContributionRecord(
        organisation="huisartsen",
        job=job["job"],
        request=r["id"],
        plan_hash=r["plan_hash"],
        approval=approval_id(payload.approvals[0].signature),
        datasets=mine,
        columns={d: payload.columns[d] for d in mine},
        rows={d: 1000 for d in mine},
        engines=[e.name for e in payload.engines],
        at=dt.datetime.now(dt.UTC).isoformat(),
    )
    ds_log.append(actor="ds-ha", action="contribution", subject=f"job/{job['job']}", details=record.to_dict())
    signature = pki.sign(keys["huisartsen"], canonical(record.to_dict()))
    receipt = ds.post(f"/node/jobs/{job['job']}/contribution", {"record": record.to_dict(), "signature": signature})
    assert ds_log.anchor(AuditHead.from_dict(receipt["audit_head"]), pinned) == ""
    status = JobStatus.from_dict(eng.get(f"/node/jobs/{job['job']}"))
    assert status.audit_head is not None
    eng_log = audit.FileLog(tmp_path / "e0" / "runs.jsonl", "engine0")
    eng_log.anchor(status.audit_head, pinned)
    end = status.audit_head.seq
    assert u["fg"].get("/audit")["entries"][-1]["seq"] == end

    def verify() -> Any:
        dump = tmp_path / "dump.json"
        dump.write_text(json.dumps(u["fg"].get("/audit")))
        anchors = ["--anchors", str(ds_log.path), "--anchors", str(tmp_path / "e0")]
        return CliRunner().invoke(cli, ["audit", "verify", "--file", str(dump), "--hub-key", str(tmp_path / "hub.pub"),
                                        *anchors])  # fmt: skip

    ok = verify()
    assert ok.exit_code == 0 and "intact" in ok.output and "2 node log(s)" in ok.output, ok.output
    with h.engine.begin() as conn:  # NB: as an attacker with the database: cut the last two entries
        conn.execute(text("DELETE FROM audit WHERE seq > :n"), {"n": end - 2})
    assert u["fg"].get("/audit/verify") == {"ok": True, "problems": []}  # NB: before: the hub's own check passes
    bad = verify()
    assert bad.exit_code == 1, bad.output
    assert f"entries after seq {end - 2} are missing (engine0 saw head {end})" in bad.output
    assert f"entries after seq {end - 2} are missing (huisartsen saw head {end})" in bad.output
    assert "the hub's chain has a contribution" not in bad.output
    assert f"huisartsen logged a contribution to job {job['job']} that the hub's chain lacks" in bad.output
