"""Anchored audit: node logs with their own heads, the hub's signed head kept by nodes, the cross-check.

Attacks: entries cut from the end of the hub's chain (in the log and with DELETE in its database,
SQLite and PostgreSQL), a chain signed by another key than the pinned hub key, a node log emptied
or truncated, contributions one side has and the other lacks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from werkplaats.cli.app import app as cli
from werkplaats.workspace import audit, pki, register
from werkplaats.workspace.messages import AuditHead
from werkplaats.workspace.signing import canonical


def key(tmp_path: Path, name: str) -> Any:
    pki.new_signing_key(tmp_path / f"{name}.key")
    return pki.load_signing_key(tmp_path / f"{name}.key")


def chain(k: Any, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append(audit.make_entry(out[-1] if out else None, node="hub", actor="a", action="request",
                                    subject=f"request/{i}", details={"job": i}, key=k))  # fmt: skip
    return out


# -- a node's own log ---------------------------------------------------------------------------


def test_node_log_keeps_its_head_and_checks_intact(tmp_path: Path) -> None:
    k = key(tmp_path, "ggd")
    log = audit.FileLog(tmp_path / "contributions.jsonl", "ggd", k)
    assert log.check() == []  # NB: a fresh log, no head file yet
    for i in range(3):
        log.append(actor="ds-ggd", action="contribution", subject=f"job/{i}", details={"job": i})
    assert [e["seq"] for e in log.check()] == [1, 2, 3]
    assert json.loads(log.head_path.read_text()) == {"seq": 3, "hash": log.entries()[-1]["hash"], "node": "ggd"}
    assert register.NodeLog.read(log.path, public_key=log.public_key).problems == []


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda p: p.write_text(""), "it is empty, but its head file says entry 3"),
        (
            lambda p: p.write_text(p.read_text().splitlines(keepends=True)[0]),
            "it is truncated: it ends at entry 1, but its head file says entry 3",
        ),
        (lambda p: (p.with_name(p.name + ".head")).unlink() or p.write_text(""), None),
        (lambda p: p.with_name(p.name + ".head").unlink(), "its head file contributions.jsonl.head is missing"),
    ],
    ids=["emptied", "truncated", "emptied-with-its-head", "head-file-removed"],
)
def test_emptied_or_truncated_node_log_is_refused(tmp_path: Path, damage: Any, said: str | None) -> None:
    log = audit.FileLog(tmp_path / "contributions.jsonl", "ggd", key(tmp_path, "ggd"))
    for i in range(3):
        log.append(actor="ds-ggd", action="contribution", subject=f"job/{i}", details={"job": i, "approval": "a"})
    damage(log.path)
    if said is None:  # NB: log and head file both gone look like a fresh node; the hub's chain still shows it
        assert log.check() == []
        return
    with pytest.raises(audit.LogError, match=r"contributions\.jsonl is not intact") as e:
        log.check()
    assert said in str(e.value) and "takes part in no job" in str(e.value)
    with pytest.raises(audit.LogError):  # NB: nothing chains onto the damage, which would hide it
        log.append(actor="ds-ggd", action="refusal", subject="job/9", details={})


def test_rewritten_log_is_refused_even_when_its_chain_is_recomputed(tmp_path: Path) -> None:
    log = audit.FileLog(tmp_path / "runs.jsonl", "engine1")  # NB: an engine's ledger: chained, not signed
    for i in range(3):
        log.append(actor="engine1", action="run", subject=f"job/{i}", details={"job": i, "approvals": ["a"]})
    other = audit.FileLog(tmp_path / "fresh" / "runs.jsonl", "engine1")
    other.append(actor="engine1", action="run", subject="job/0", details={"job": 0, "approvals": ["b"]})
    log.path.write_text(other.path.read_text())  # NB: a shorter, valid chain in place of the ledger
    with pytest.raises(audit.LogError, match="truncated: it ends at entry 1, but its head file says entry 3"):
        log.check()


# -- the hub's head, kept by a node ----------------------------------------------------------------


def test_node_keeps_only_newer_heads_signed_by_the_pinned_hub_key(tmp_path: Path) -> None:
    hub_key, rogue = key(tmp_path, "hub"), key(tmp_path, "rogue")
    pinned = pki.public_key_b64(hub_key)
    entries = chain(hub_key, 5)
    log = audit.FileLog(tmp_path / "runs.jsonl", "engine1")
    assert log.anchor(audit.sign_head(entries[2], hub="hub", key=hub_key), pinned) == ""
    assert log.anchor(audit.sign_head(entries[4], hub="hub", key=hub_key), pinned) == ""
    assert log.anchor(audit.sign_head(entries[4], hub="hub", key=hub_key), pinned) == ""  # NB: same head: kept once
    went_back = log.anchor(audit.sign_head(entries[1], hub="hub", key=hub_key), pinned)
    assert "went back from entry 5 to entry 2" in went_back
    forged = log.anchor(audit.sign_head(chain(rogue, 9)[-1], hub="hub", key=rogue), pinned)
    assert "not signed by the pinned hub key" in forged
    heads = [e["details"]["seq"] for e in log.entries() if e["action"] == audit.HEAD]
    assert heads == [3, 5]
    assert log.last_anchor() == AuditHead.from_dict(log.entries()[-1]["details"])


# -- the verifier ----------------------------------------------------------------------------------


def test_cut_tail_is_reported_from_the_anchors(tmp_path: Path) -> None:
    hub_key = key(tmp_path, "hub")
    pinned = pki.public_key_b64(hub_key)
    entries = chain(hub_key, 8)
    log = audit.FileLog(tmp_path / "e1" / "runs.jsonl", "engine1")
    log.anchor(audit.sign_head(entries[-1], hub="hub", key=hub_key), pinned)
    logs = [register.NodeLog.read(log.path)]
    assert register.verify_hub_chain(entries, pinned, {}) == [] and register.cross_check(entries, pinned, logs) == []
    cut = entries[:5]
    assert audit.verify_chain(cut, {"hub": pinned}) == []  # NB: before: a cut tail passed
    assert register.cross_check(cut, pinned, logs) == ["entries after seq 5 are missing (engine1 saw head 8)"]
    rewritten = list(cut)  # NB: a hub that rewrote the tail from entry 6 on
    for i in range(3):
        rewritten.append(audit.make_entry(rewritten[-1], node="hub", actor="b", action="request",
                                          subject=f"other/{i}", details={}, key=hub_key))  # fmt: skip
    assert "entry 8 is not the entry engine1 saw as the hub's head (the chain was rewritten)" in register.cross_check(
        rewritten, pinned, logs
    )


def test_chain_signed_by_another_key_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    hub_key, rogue = key(tmp_path, "hub"), key(tmp_path, "rogue")
    forged = chain(rogue, 4)
    assert audit.verify_chain(forged, {"hub": pki.public_key_b64(rogue)}) == []  # NB: before: the shipped key
    problems = register.verify_hub_chain(forged, pki.public_key_b64(hub_key), {})
    assert problems == [
        f"refused: no entry is signed by the pinned hub key ({audit.key_fingerprint(pki.public_key_b64(hub_key))})"
    ]
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps({"entries": forged, "keys": {"hub": pki.public_key_b64(rogue)}}))
    (tmp_path / "hub.pub").write_text(pki.public_key_b64(hub_key) + "\n")
    out = CliRunner().invoke(cli, ["audit", "verify", "--file", str(dump), "--hub-key", str(tmp_path / "hub.pub")])
    assert out.exit_code == 1 and "audit log REFUSED" in out.output and "refused: no entry is signed" in out.output
    assert "the hub serves audit key" in out.output
    none = CliRunner().invoke(cli, ["audit", "verify", "--file", str(dump)], env={"WERKPLAATS_HUB_KEY": ""})
    assert none.exit_code == 1 and "no pinned hub key" in none.output


def test_contributions_are_cross_checked_both_ways(tmp_path: Path) -> None:
    hub_key, ggd = key(tmp_path, "hub"), key(tmp_path, "ggd")
    pinned = pki.public_key_b64(hub_key)

    def contribution(job: int) -> dict[str, Any]:
        rec = {"organisation": "ggd", "job": job, "datasets": ["ggd/meldingen"]}
        return {
            "job": job,
            "signed": {"organisation": "ggd", "record": rec, "signature": pki.sign(ggd, canonical(rec))},
        }

    entries: list[dict[str, Any]] = []
    for job in (1, 2):
        entries.append(audit.make_entry(entries[-1] if entries else None, node="hub", actor="ds-ggd",
                                        action="contribution", subject=f"job/{job}", details=contribution(job),
                                        key=hub_key))  # fmt: skip
    log = audit.FileLog(tmp_path / "contributions.jsonl", "ggd", ggd)
    for job in (2, 3):
        log.append(
            actor="ds-ggd", action="contribution", subject=f"job/{job}", details={"organisation": "ggd", "job": job}
        )
    logs = [register.NodeLog.read(log.path, public_key=log.public_key)]
    assert register.verify_hub_chain(entries, pinned, {"ggd": pki.public_key_b64(ggd)}) == []
    assert register.cross_check(entries, pinned, logs) == [
        "ggd logged a contribution to job 3 that the hub's chain lacks",
        "the hub's chain has a contribution of ggd to job 1 (entry 1) that ggd's own log lacks",
    ]
    log.path.write_text("")
    assert register.cross_check(entries, pinned, [register.NodeLog.read(log.path)]) == [
        "ggd (contributions.jsonl): it is empty, but its head file says entry 2",
        "the hub's chain has a contribution of ggd to job 1 (entry 1) that ggd's own log lacks",
        "the hub's chain has a contribution of ggd to job 2 (entry 2) that ggd's own log lacks",
    ]
