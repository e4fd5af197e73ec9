"""The parties are cleaned up on every exit path, and a dying party fails the job clearly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

import werkplaats as wp
from werkplaats.mpc import LocalCluster

pytestmark = pytest.mark.mpc


def _tables(n: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    left = pd.DataFrame({"bsn": np.arange(n), "g": pd.Categorical(rng.choice(list("abc"), n)),
                         "x": rng.integers(0, 100, n)})  # fmt: skip
    right = pd.DataFrame({"bsn": rng.permutation(n), "y": rng.integers(0, 5, n)})
    return {"l": left, "r": right}


QUERY = wp.scan("l").join(wp.scan("r"), on="bsn").group_by("g").agg(n=wp.count(), y=wp.col("y").sum())


def _gone(pids: list[int], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.2)
    return False


def _wait_for_job(log: Path, timeout: float = 120.0) -> None:
    """Wait until a party's log shows it has its program for the job (compiled or cached): the job is under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "program" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    pytest.fail(f"no job started in {log} within {timeout:.0f} s")


def _port_free(addr: str) -> bool:
    host, port = addr.rsplit(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


def test_killed_party_fails_the_job_naming_it_and_a_retry_succeeds() -> None:
    t = _tables(30_000)
    with LocalCluster() as c:
        pids = c.pids()
        victim = pids[1]
        errors: list[BaseException] = []

        def job() -> None:
            try:
                wp.run_local(QUERY, t, engine="mpc", cluster=c, min_group_size=1)
            except BaseException as e:
                errors.append(e)

        th = threading.Thread(target=job)
        th.start()
        _wait_for_job(c.log_dir / "party1.log")
        started = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        th.join(timeout=60)
        assert not th.is_alive(), "run_local did not return within 60 s of a party dying"
        assert time.monotonic() - started < 60
        assert len(errors) == 1 and isinstance(errors[0], wp.PartyFailedError)
        assert errors[0].party == 1
        assert "MPC party 1 failed" in str(errors[0])
        assert _gone(pids), "parties of the failed job are still running"
        assert all(_port_free(a) for a in c.last_addrs)
        small = _tables(200)
        mpc = wp.run_local(QUERY, small, engine="mpc", cluster=c, min_group_size=1, perturbation_key=3)
        plain = wp.run_local(QUERY, small, engine="plain", min_group_size=1, perturbation_key=3)
        assert mpc["n"].tolist() == plain["n"].tolist()
        assert set(c.pids()).isdisjoint(pids)


def test_close_stops_parties_and_releases_ports() -> None:
    c = LocalCluster()
    c.start()
    pids = c.pids()
    wp.run_local(QUERY, _tables(100), engine="mpc", cluster=c, min_group_size=1)
    addrs = c.last_addrs
    c.close()
    assert _gone(pids)
    assert all(_port_free(a) for a in addrs)


SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading, time
    # NB: Ctrl-C as in a terminal: a shell's background job (nohup ... &) inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import numpy as np, pandas as pd
    import werkplaats as wp
    from werkplaats.mpc import LocalCluster
    n = 60_000
    rng = np.random.default_rng(0)
    t = {"l": pd.DataFrame({"bsn": np.arange(n), "g": pd.Categorical(rng.choice(list("abc"), n))}),
         "r": pd.DataFrame({"bsn": rng.permutation(n), "y": rng.integers(0, 5, n)})}
    q = wp.scan("l").join(wp.scan("r"), on="bsn").group_by("g").agg(n=wp.count())
    c = LocalCluster()
    c.start()
    print(" ".join(map(str, c.pids())), c.log_dir, flush=True)
    wp.run_local(q, t, engine="mpc", cluster=c)
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_coordinator_interrupted_or_killed_leaves_no_party_behind(sig: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    *head, log_dir = proc.stdout.readline().split()
    pids = [int(p) for p in head]
    assert len(pids) == 3
    _wait_for_job(Path(log_dir) / "party0.log")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    rest = proc.stdout.read()
    assert "finished" not in rest
    assert _gone(pids), f"parties {pids} outlived their coordinator after signal {sig}"
