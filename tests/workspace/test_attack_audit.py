"""Attacks on the audit trail, against the live workspace: the hub's chain cut in its database, node logs emptied.

Before: deleting the last rows of the hub's `audit` table left a chain that `werkplaats audit verify`
called intact, and a datastation or engine whose log was emptied counted zero runs and took part again.
Now: the heads the nodes kept name the cut, and a node with a damaged log refuses every job, saying why.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.workspace.audit import HEAD, LogError
from werkplaats.workspace.config import EngineConfig
from werkplaats.workspace.engine import Engine

from .live import PURPOSE, analysis, approve_all, connect, station, wait_state
from .wait import wait_until


def verify(ws: LocalWorkspace) -> subprocess.CompletedProcess[str]:
    """`werkplaats audit verify` as the privacy officer runs it: the pinned hub key, the nodes' own logs."""
    env = {**os.environ, "WERKPLAATS_HUB": ws.hub_url, "WERKPLAATS_TOKEN": ws.tokens["fg"],
           "WERKPLAATS_CA": str(ws.pki / "ca.crt"), "WERKPLAATS_CERT": str(ws.pki / "client.crt"),
           "WERKPLAATS_KEY": str(ws.pki / "client.key")}  # fmt: skip
    args = ["audit", "verify", "--hub-key", str(ws.root / "keys" / "hub.pub"), "--anchors", str(ws.root / "nodes")]
    return subprocess.run([sys.executable, "-m", "werkplaats", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def node_log(ws: LocalWorkspace, node: str) -> Path:
    name = "runs.jsonl" if node.startswith("engine") else "contributions.jsonl"
    return ws.root / "nodes" / node / "state" / name


def anchored(ws: LocalWorkspace) -> int:
    """The newest hub head any engine keeps in its ledger (0: none)."""
    seqs = [0]
    for i in range(3):
        p = node_log(ws, f"engine{i}")
        if p.exists():
            seqs += [json.loads(ln)["details"]["seq"] for ln in p.read_text().splitlines() if f'"{HEAD}"' in ln]
    return max(seqs)


@pytest.fixture(scope="module")
def ran(ws: LocalWorkspace) -> int:
    """Run one job to the end; return the newest hub head an engine kept after it."""
    c = connect(ws)
    req = c.submit(analysis("kinkhoest"), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, req.id)
    req.run(timeout=300)
    con = sqlite3.connect(ws.root / "hub" / "hub.db")
    try:
        (end,) = con.execute("SELECT max(seq) FROM audit").fetchone()
    finally:
        con.close()
    wait_until(lambda: anchored(ws) >= end or None, 60, "an engine keeps the head of the finished job")
    return anchored(ws)


def test_chain_cut_in_the_hubs_database_is_named_by_the_nodes_anchors(ws: LocalWorkspace, ran: int) -> None:
    ok = verify(ws)
    assert ok.returncode == 0 and "intact" in ok.stdout and "node log(s)" in ok.stdout, ok.stdout + ok.stderr
    keep = ran - 2
    con = sqlite3.connect(ws.root / "hub" / "hub.db")
    try:  # NB: as an attacker with the hub's database: DELETE the last rows, leaving a chain that links
        cur = con.execute("SELECT * FROM audit WHERE seq > ? ORDER BY seq", (keep,))
        cols, rows = [d[0] for d in cur.description], cur.fetchall()
        con.execute("DELETE FROM audit WHERE seq > ?", (keep,))
        con.commit()
        bad = verify(ws)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert re.search(rf"entries after seq {keep} are missing \(engine\d saw head {ran}\)", bad.stdout), bad.stdout
    finally:  # NB: the shared workspace gets its chain back
        con.executemany(f"INSERT INTO audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        con.commit()
        con.close()
    assert verify(ws).returncode == 0


def test_datastation_with_an_emptied_log_takes_part_in_no_job(ws: LocalWorkspace, ran: int) -> None:
    path = node_log(ws, "ds-ggd")
    saved = path.read_bytes()
    assert saved, "the job run before left a contribution in ggd's log"
    path.write_bytes(b"")  # NB: as the datastation's operator resetting its run counter
    try:
        with pytest.raises(LogError, match="is empty, but its head file says entry"):
            station(ws, "ggd").runs_used()  # NB: before: {} — every approval's runs unused again
        c = connect(ws)
        req = c.submit(analysis("mazelen"), collaboration=COLLABORATION, purpose=PURPOSE)
        approve_all(ws, req.id)
        job = wait_state(c, req.run(wait=False), ("failed", "succeeded"), timeout=120)
        assert job["state"] == "failed", job
        assert "ds-ggd" in job["reason"] and "contributions.jsonl is not intact" in job["reason"], job["reason"]
        assert "is empty, but its head file says entry" in job["reason"]
        assert path.read_bytes() == b""  # NB: nothing chained onto the damage
    finally:
        path.write_bytes(saved)


def test_engine_with_a_truncated_ledger_takes_part_in_no_job(ws: LocalWorkspace, ran: int) -> None:
    path = node_log(ws, "engine1")
    saved = path.read_bytes()
    lines = saved.splitlines(keepends=True)
    assert len(lines) >= 2, "the job run before left entries in engine1's ledger"
    path.write_bytes(lines[0])  # NB: a ledger cut back to its first entry: its run counts gone
    try:
        engine = Engine(EngineConfig.load(ws.root / "nodes" / "engine1" / "engine.toml"))
        with pytest.raises(LogError, match="it is truncated: it ends at entry 1, but its head file says entry"):
            engine.runs_used()  # NB: before: the runs of every approval counted from an emptied runs.json
        c = connect(ws)
        req = c.submit(analysis("mazelen"), collaboration=COLLABORATION, purpose=PURPOSE)
        approve_all(ws, req.id)
        job = wait_state(c, req.run(wait=False), ("failed", "succeeded"), timeout=120)
        assert job["state"] == "failed", job
        assert "engine1" in job["reason"] and "runs.jsonl is not intact" in job["reason"], job["reason"]
        assert path.read_bytes() == lines[0]  # NB: nothing chained onto the damage
    finally:
        path.write_bytes(saved)
