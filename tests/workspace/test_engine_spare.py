"""An engine's spare party: started ahead of the next job, handed to it, replaced when it dies, never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.mpc.process import Command, SpareParty
from werkplaats.synth.write import load_region
from werkplaats.workspace.client import _poll_s
from werkplaats.workspace.engine import Engine

from .live import PURPOSE, analysis, approve_all, assert_like_truth, connect, truth
from .wait import wait_until


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def parties(cache_dir: Path) -> set[int]:
    """The pids of the running party processes that keep their programs in cache_dir (one engine's)."""
    out = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"werkplaats.mpc.party" in cmd and str(cache_dir).encode() in cmd and alive(int(d.name)):
            out.add(int(d.name))
    return out


def test_spare_party_is_handed_to_a_job_with_its_log_and_stops_when_asked(tmp_path: Path) -> None:
    spare = SpareParty(1, tmp_path / "logs", cache_dir=tmp_path / "programs")
    try:
        spare.refill()
        spare.refill()  # NB: one spare at a time
        assert spare.started == 1 and spare.party is not None
        pid = spare.party.proc.pid
        party = spare.take(tmp_path / "job7.log")
        assert party is not None and party.proc.pid == pid and spare.party is None
        assert party.log == tmp_path / "job7.log" and party.log.exists()
        assert not list((tmp_path / "logs").glob("party-spare-*.log"))  # NB: renamed, not copied
        head, _ = party.recv()  # NB: it announces itself once SPU is imported
        assert head["cmd"] == Command.READY and head["rank"] == 1 and head["pid"] == pid
        party.send({"cmd": Command.STOP.value})
        assert party.wait(30) and party.proc.returncode == 0
        party.kill()
        assert spare.take(tmp_path / "job8.log") is None  # NB: none left until refilled
        spare.refill()
        assert spare.started == 2 and spare.party is not None and spare.party.proc.pid != pid
    finally:
        spare.close()
    assert spare.party is None


def test_a_spare_that_died_is_replaced_but_not_in_a_loop(tmp_path: Path) -> None:
    spare = SpareParty(0, tmp_path, retry_s=3600.0)
    try:
        spare.refill()
        assert spare.party is not None
        first = spare.party.proc
        first.kill()
        first.wait(10)
        assert spare.take(tmp_path / "job1.log") is None  # NB: a dead spare is never handed to a job
        assert spare.replaced == 1
        spare.refill()  # NB: a death through take() sets no back-off: a job took it
        assert spare.party is not None and spare.started == 2
        second = spare.party.proc
        second.kill()
        second.wait(10)
        spare.refill()  # NB: found dead while waiting: reaped, and not restarted within retry_s
        assert spare.party is None and spare.replaced == 2 and spare.started == 2
        spare.retry_s = 0.0
        spare.refill()
        assert spare.party is not None and spare.started == 3 and alive(spare.party.proc.pid)
    finally:
        spare.close()


def test_engine_runner_keeps_a_spare_and_kills_it_when_the_engine_stops(tmp_path: Path) -> None:
    engine = Engine.__new__(Engine)  # NB: only what the runner loop uses: no hub, no jobs
    engine.stop, engine.lock, engine.jobs = threading.Event(), threading.Lock(), {}
    engine.spare = SpareParty(2, tmp_path, cache_dir=tmp_path / "programs")
    runner = threading.Thread(target=engine.run_next)
    runner.start()
    try:
        got = wait_until(lambda: parties(tmp_path / "programs"), 20, "the runner starts a spare party")
        (pid,) = got
        os.kill(pid, signal.SIGKILL)
        engine.spare.retry_s = 0.0
        new = wait_until(lambda: parties(tmp_path / "programs") - {pid}, 20, "a dead spare is replaced")
        assert len(new) == 1 and engine.spare.replaced == 1
    finally:
        engine.stop.set()
        runner.join(10)
    assert not runner.is_alive()
    wait_until(lambda: not parties(tmp_path / "programs"), 10, "no party process outlives the engine")
    engine.spare.refill()  # NB: closed: a late refill starts nothing
    assert engine.spare.party is None and not parties(tmp_path / "programs")


def test_spare_dies_with_an_engine_process_that_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from werkplaats.mpc.process import SpareParty
        s = SpareParty(0, Path({str(tmp_path)!r}), cache_dir=Path({str(tmp_path / "programs")!r}))
        s.refill()
        print(s.party.proc.pid, flush=True)
        time.sleep(600)
    """)
    engine = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert engine.stdout is not None
        pid = int(engine.stdout.readline())
        assert alive(pid)
    finally:
        engine.kill()  # NB: SIGKILL: no finally, no clean-up in the engine
        engine.wait(10)
    wait_until(lambda: not alive(pid), 10, "the spare party dies with its engine")


def test_analyst_asks_often_only_while_a_job_starts_or_ends() -> None:
    running = {"state": "running", "progress": {"engine0": {"state": "running"}, "ds-ggd": {"state": "sent"}}}
    assert _poll_s({"state": "approved", "progress": {}}, 1.0) == 0.1
    assert _poll_s({"state": "approved", "progress": {}}, 60.0) == 0.5  # NB: e.g. waiting for engines to come online
    assert _poll_s(running, 1.0) == 0.5
    ending = {**running, "progress": {**running["progress"], "engine1": {"state": "done"}}}
    assert _poll_s(ending, 100.0) == 0.1


def engine_programs(ws: LocalWorkspace, i: int) -> Path:
    return ws.root / "nodes" / f"engine{i}" / "state" / "programs"


def one_spare_each(dirs: list[Path]) -> list[set[int]] | None:
    """Each engine's party processes when every engine has exactly one (its spare, while idle), else None."""
    got = [parties(d) for d in dirs]
    return got if all(len(p) == 1 for p in got) else None


def test_each_live_engine_keeps_exactly_one_spare_party(ws: LocalWorkspace) -> None:
    dirs = [engine_programs(ws, i) for i in range(3)]
    assert all(d.parent.is_dir() for d in dirs), dirs
    (pid,) = wait_until(lambda: one_spare_each(dirs), 60, "one party process per idle engine")[0]
    os.kill(pid, signal.SIGKILL)  # NB: a spare that dies is replaced (within the engine's back-off of 5 s)
    new = wait_until(lambda: (p := one_spare_each(dirs)) and pid not in p[0], 30, "engine0 replaces its dead spare")
    assert new


@pytest.mark.slow
def test_a_job_runs_on_the_spare_parties_and_leaves_one_new_spare_each(ws: LocalWorkspace) -> None:
    dirs = [engine_programs(ws, i) for i in range(3)]
    before = wait_until(lambda: one_spare_each(dirs), 60, "one spare per idle engine")
    time.sleep(3)  # NB: let the spares finish importing SPU, as they have between real jobs
    c = connect(ws)
    req = c.submit(analysis(), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, req.id)
    got = req.run(timeout=300)
    region = load_region(ws.region)
    assert_like_truth(got, truth(region.tables, region.catalog))
    jid = int(req.refresh()["jobs"][-1]["id"])

    def done() -> dict[str, Any] | None:
        p: dict[str, Any] = c.client.get(f"/jobs/{jid}")["progress"]
        return p if all(p.get(f"engine{i}", {}).get("state") == "done" for i in range(3)) else None

    progress = wait_until(done, 30, "every engine done")
    for i in range(3):
        assert progress[f"engine{i}"]["party_spare"] == 1.0, progress[f"engine{i}"]
        assert progress[f"engine{i}"]["party_start_s"] < 1.0  # NB: a fresh party takes 1.5 s and more

    def new_spares() -> list[set[int]] | None:
        got = one_spare_each(dirs)
        return got if got and all(not (g & b) for g, b in zip(got, before, strict=True)) else None

    wait_until(new_spares, 60, "a new spare per engine, the job's party gone")
    assert not any(alive(p) for b in before for p in b)  # NB: the job's parties (the old spares) exited
