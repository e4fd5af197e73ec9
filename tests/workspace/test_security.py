"""PKI, approvals and the audit chain, without services."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pytest

from werkplaats.workspace import audit, pki, register
from werkplaats.workspace.approvals import Scope, verify
from werkplaats.workspace.messages import SignedApproval
from werkplaats.workspace.signing import ApprovalError, approval_body, approval_id, literals, sign_approval

PLAN = {"format": "x", "root": {"op": "filter", "predicate": {"op": "lit", "type": "date", "value": "2024-01-01"},
                                "input": {"op": "source", "dataset": "ggd/meldingen"}}}  # fmt: skip


def test_certificates_missing_foreign_expired(tmp_path: Path) -> None:
    pki.init_ca(tmp_path / "ca")
    cert, key = pki.issue(tmp_path / "ca", "engine0")
    good = pki.TLSFiles(tmp_path / "ca" / "ca.crt", cert, key)
    assert pki.common_name(good.check("engine0")) == "engine0"
    with pytest.raises(pki.PKIError, match="not for this node"):
        good.check("engine1")
    with pytest.raises(pki.PKIError, match="does not exist"):
        pki.TLSFiles(tmp_path / "ca" / "ca.crt", tmp_path / "nope.crt", key).check()
    pki.init_ca(tmp_path / "other")
    fcert, fkey = pki.issue(tmp_path / "other", "engine0")
    with pytest.raises(pki.PKIError, match="workspace CA"):
        pki.TLSFiles(tmp_path / "ca" / "ca.crt", fcert, fkey).check()
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    ocert, okey = pki.issue(tmp_path / "ca", "old", valid_from=old, days=30)
    with pytest.raises(pki.PKIError, match="not valid now"):
        pki.TLSFiles(tmp_path / "ca" / "ca.crt", ocert, okey).check()
    with pytest.raises(pki.PKIError, match="already holds a CA"):
        pki.init_ca(tmp_path / "ca")


def _approval(tmp_path: Path, **kw: object) -> tuple[SignedApproval, str]:
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    key = pki.load_signing_key(tmp_path / "ggd.key")
    args = {"organisation": "ggd", "collaboration": "c", "purpose": "p", "plan": PLAN, "plan_hash": "h" * 64,
            "expires": dt.datetime.now(dt.UTC) + dt.timedelta(days=1), "max_runs": 2, "steward": "s"} | kw  # fmt: skip
    body = approval_body(**args)  # type: ignore[arg-type]
    return SignedApproval(body=body, signature=sign_approval(key, body)), pub


SCOPE = Scope(collaboration="c", purpose="p", plan=PLAN, plan_hash="h" * 64)


def test_approval_checks(tmp_path: Path) -> None:
    appr, pub = _approval(tmp_path)
    assert verify(appr, key=pub, scope=SCOPE, runs_used=0) == approval_id(appr.signature)
    for scope, runs, at, msg in [
        (replace(SCOPE, plan_hash="x" * 64), 0, None, "signed for plan"),
        (replace(SCOPE, collaboration="d"), 0, None, "collaboration"),
        (replace(SCOPE, purpose="q"), 0, None, "another purpose"),
        (SCOPE, 2, None, "runs are used"),
        (SCOPE, 0, dt.datetime.now(dt.UTC) + dt.timedelta(days=2), "expired"),
    ]:
        with pytest.raises(ApprovalError, match=msg):
            verify(appr, key=pub, scope=scope, runs_used=runs, at=at)
    forged = SignedApproval(body={**appr.body, "max_runs": 100}, signature=appr.signature)
    with pytest.raises(ApprovalError, match="signature"):
        verify(forged, key=pub, scope=SCOPE, runs_used=0)


def test_template_approval_covers_only_the_named_literal(tmp_path: Path) -> None:
    ((pointer, _),) = literals(PLAN)
    appr, pub = _approval(tmp_path, vary=[pointer], ranges={pointer: {"min": "2023-01-01", "max": "2024-12-31"}})
    other = json.loads(json.dumps(PLAN))
    other["root"]["predicate"]["value"] = "2023-01-02"
    verify(appr, key=pub, scope=replace(SCOPE, plan=other, plan_hash="unused"), runs_used=0)
    changed = json.loads(json.dumps(PLAN))
    changed["root"]["input"]["dataset"] = "ggd/other"
    with pytest.raises(ApprovalError, match="template"):
        verify(appr, key=pub, scope=replace(SCOPE, plan=changed, plan_hash="unused"), runs_used=0)


def test_audit_chain_names_changed_removed_reordered(tmp_path: Path) -> None:
    pub = pki.new_signing_key(tmp_path / "hub.key")
    key = pki.load_signing_key(tmp_path / "hub.key")
    log = audit.FileLog(tmp_path / "log.jsonl", "hub", key)
    for i in range(5):
        log.append(actor="a", action="request", subject=f"request/{i}", details={"i": i})
    entries = log.entries()
    keys = {"hub": pub}
    assert audit.verify_chain(entries, keys) == []
    changed = json.loads(json.dumps(entries))
    changed[2]["details"]["i"] = 99
    assert audit.verify_chain(changed, keys) == ["entry 3: changed (its content does not match its hash)"]
    removed = entries[:2] + entries[3:]
    assert any("entry 3 removed" in p for p in audit.verify_chain(removed, keys))
    reordered = [entries[0], entries[2], entries[1], *entries[3:]]
    assert any("out of order" in p for p in audit.verify_chain(reordered, keys))
    other = pki.new_signing_key(tmp_path / "x.key")
    assert any("signature" in p for p in audit.verify_chain(entries, {"hub": other}))
    assert "request/3" in register.export(entries, "csv")
