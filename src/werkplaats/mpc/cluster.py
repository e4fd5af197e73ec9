"""Three SPU parties as three OS processes on this machine, and run_mpc.

The coordinator here plays two roles that a workspace gives to other nodes: each
data owner (it encodes and secret-shares each table, so no party sees clear data)
and the result receiver (it reconstructs only the disclosure-controlled outputs).

Parties are cleaned up on every exit path: close(), an error, Ctrl-C in the
coordinator, interpreter exit (atexit), and the coordinator's own death (the
kernel kills parties via PR_SET_PDEATHSIG). A party that dies or reports an error
fails the job with PartyFailedError naming it; the others are killed, their shares
go with them, and the next job starts fresh parties.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from ..catalog.serde import catalog_to_dict
from ..compile.analyze import Analysis
from ..exceptions import MPCError, PartyFailedError
from ..plan import nodes as n
from ..plan.serde import canonical_json
from ..result import Revealed
from . import wire
from .runtime import enable_x64, runtime_config

WORLD = 3
_LIVE: set[LocalCluster] = set()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class _Party:
    rank: int
    proc: subprocess.Popen[bytes]
    to: BinaryIO
    frm: BinaryIO
    log: Path


@dataclass
class JobStats:
    """What a job cost, per party."""

    wall_s: float = 0.0
    share_s: float = 0.0
    parties: list[dict[str, Any]] = field(default_factory=list)


class LocalCluster:
    """Three compute parties on loopback, reusable across jobs.

    Examples
    --------
    >>> import werkplaats as wp                                   # doctest: +SKIP
    >>> with wp.mpc.LocalCluster() as cluster:                    # doctest: +SKIP
    ...     wp.run_local(q, tables, engine="mpc", cluster=cluster)
    """

    def __init__(self, *, host: str = "127.0.0.1", log_dir: str | Path | None = None,
                 start_timeout: float = 120.0) -> None:  # fmt: skip
        self.host = host
        self.start_timeout = start_timeout
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="werkplaats-parties-"))
        self.parties: list[_Party] = []
        self.last_stats: JobStats | None = None
        self.last_addrs: list[str] = []

    # --- lifecycle -------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return len(self.parties) == WORLD and all(p.proc.poll() is None for p in self.parties)

    def pids(self) -> list[int]:
        return [p.proc.pid for p in self.parties]

    def start(self) -> None:
        """Start the three party processes and wait until each is ready."""
        if self.running:
            return
        self.kill()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            for rank in range(WORLD):
                self.parties.append(self._spawn(rank))
            _LIVE.add(self)
            replies = self._collect({p.rank for p in self.parties}, time.monotonic() + self.start_timeout)
            for rank, (h, _) in replies.items():
                if not h.get("ready"):
                    raise PartyFailedError(rank, "did not start")
        except BaseException:
            self.kill()
            raise

    def _spawn(self, rank: int) -> _Party:
        r1, w1 = os.pipe()  # coordinator -> party
        r2, w2 = os.pipe()  # party -> coordinator
        log = self.log_dir / f"party{rank}.log"
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "werkplaats.mpc.party", "--rank", str(rank),
                 "--in-fd", str(r1), "--out-fd", str(w2)],
                pass_fds=(r1, w2), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,  # NB: Ctrl-C reaches the coordinator only; it cleans up
            )  # fmt: skip
        os.close(r1)
        os.close(w2)
        return _Party(rank, proc, os.fdopen(w1, "wb", buffering=1 << 20), os.fdopen(r2, "rb", buffering=1 << 20), log)

    def close(self) -> None:
        """Stop the parties politely, then by force."""
        for p in self.parties:
            with contextlib.suppress(OSError):
                wire.send(p.to, {"cmd": "stop"})
        deadline = time.monotonic() + 5
        for p in self.parties:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """Kill every party process now and release its pipes."""
        for p in self.parties:
            if p.proc.poll() is None:
                p.proc.kill()
        for p in self.parties:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(timeout=10)
            for f in (p.to, p.frm):
                with contextlib.suppress(OSError):
                    f.close()
        self.parties = []
        _LIVE.discard(self)

    # --- jobs ------------------------------------------------------------------

    def _collect(self, ranks: set[int], deadline: float) -> dict[int, tuple[dict[str, Any], list[bytes]]]:
        """Wait for one message from each rank; fail fast on a dead or failing party."""
        q: queue.Queue[tuple[int, Any]] = queue.Queue()

        def reader(p: _Party) -> None:
            try:
                q.put((p.rank, wire.recv(p.frm)))
            except (wire.WireClosed, OSError, ValueError) as e:
                q.put((p.rank, e))

        for p in self.parties:
            if p.rank in ranks:
                threading.Thread(target=reader, args=(p,), daemon=True).start()
        got: dict[int, tuple[dict[str, Any], list[bytes]]] = {}
        while len(got) < len(ranks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = min(ranks - set(got))
                self.kill()
                raise PartyFailedError(missing, "timed out")
            try:
                rank, item = q.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                for p in self.parties:
                    if p.rank in ranks and p.rank not in got and p.proc.poll() is not None:
                        code = p.proc.returncode
                        self.kill()
                        raise PartyFailedError(p.rank, f"process exited with code {code}") from None
                continue
            if isinstance(item, Exception):
                code = self.parties[rank].proc.wait(timeout=5) if self.parties else None
                self.kill()
                raise PartyFailedError(rank, f"process exited with code {code}")
            header = item[0]
            if header.get("ok") is False:
                self.kill()
                raise PartyFailedError(rank, header.get("error", "unknown error"))
            got[rank] = item
        return got

    def run(self, header: dict[str, Any], shares: list[list[list[bytes]]], *,
            timeout: float = 3600.0) -> tuple[list[list[Any]], list[dict[str, Any]]]:  # fmt: skip
        """Run one job: shares[rank][input] are blobs; return output shares and stats per party."""
        self.start()
        job = header.get("job") or uuid.uuid4().hex
        addrs = [f"{self.host}:{_free_port(self.host)}" for _ in range(WORLD)]
        self.last_addrs = addrs
        try:
            senders = []
            errors: list[tuple[int, BaseException]] = []
            for p in self.parties:
                blobs = [b for s in shares[p.rank] for b in s]
                h = {**header, "cmd": "run", "job": job, "addrs": addrs,
                     "share_blobs": [len(s) for s in shares[p.rank]]}  # fmt: skip

                def send(p: _Party = p, h: dict[str, Any] = h, blobs: list[bytes] = blobs) -> None:
                    try:
                        wire.send(p.to, h, blobs)
                    except OSError as e:
                        errors.append((p.rank, e))

                t = threading.Thread(target=send, daemon=True)
                t.start()
                senders.append(t)
            for t in senders:
                t.join()
            if errors:
                rank, _ = errors[0]
                code = self.parties[rank].proc.poll()
                self.kill()
                raise PartyFailedError(rank, f"could not receive its shares (exit code {code})")
            replies = self._collect({0, 1, 2}, time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise
        outs, stats = [], []
        for rank in range(WORLD):
            h, blobs = replies[rank]
            pos, mine = 0, []
            for c in h["share_blobs"]:
                mine.append(wire.unpack_share(blobs[pos : pos + c]))
                pos += c
            outs.append(mine)
            stats.append({"rank": rank, **h["stats"]})
        return outs, stats


@atexit.register
def _cleanup() -> None:
    for c in list(_LIVE):
        c.kill()


def _share_into(io: Any, arr: np.ndarray, per_party: list[list[list[bytes]]]) -> None:
    """Secret-share one array and append share i, packed, to party i's inputs."""
    from spu import libspu

    parts = io.make_shares(np.ascontiguousarray(arr), libspu.Visibility.VIS_SECRET)
    for rank in range(WORLD):
        per_party[rank].append(wire.pack_share(parts[rank]))


def share_tables(a: Analysis, tables: dict[str, pd.DataFrame]) -> tuple[list[Any], list[list[list[bytes]]]]:
    """Encode and secret-share every table as its owner would; return slots and per-party blobs."""

    from .encode import layout

    slots = layout(a, {d: len(df) for d, df in tables.items()})
    per_party: list[list[list[bytes]]] = [[] for _ in range(WORLD)]
    for dataset in dict.fromkeys(s.dataset for s in slots):
        for r, blobs in enumerate(share_dataset(a, dataset, tables[dataset])):
            per_party[r].extend(blobs)
    return slots, per_party


def share_dataset(a: Analysis, dataset: str, df: pd.DataFrame) -> list[list[list[bytes]]]:
    """Encode and secret-share one owner's validated table: per party, the packed share of each slot."""
    import spu

    from .encode import encode, layout

    slots = layout(a, {dataset: len(df)})
    per_party: list[list[list[bytes]]] = [[] for _ in range(WORLD)]
    io = spu.Io(WORLD, runtime_config())  # NB: one owner, one sharing context
    for arr in encode(a, dataset, df, slots):
        _share_into(io, arr, per_party)
    return per_party


def run_mpc(a: Analysis, tables: dict[str, pd.DataFrame], *, cluster: LocalCluster | None = None,
            timeout: float = 3600.0) -> Revealed:  # fmt: skip
    """Run a checked plan on three SPU parties and reconstruct only its outputs."""
    enable_x64()
    t0 = time.perf_counter()
    _slots, shares = share_tables(a, tables)
    t_share = time.perf_counter() - t0
    header = {
        "plan": canonical_json(a.plan),
        "catalog": catalog_to_dict(a.catalog),
        "rows": {d: len(df) for d, df in tables.items()},
    }
    own = cluster is None
    c = cluster or LocalCluster()
    try:
        outs, stats = c.run(header, shares, timeout=timeout)
    finally:
        if own:
            c.close()
    rev = reconstruct(a, outs)
    c.last_stats = JobStats(time.perf_counter() - t0, t_share, stats)
    return rev


def reconstruct(a: Analysis, outs: list[list[Any]]) -> Revealed:
    """Combine the three parties' output shares into the revealed (disclosure-controlled) cells."""
    import spu

    from ..compile.spu import output_kinds

    io = spu.Io(WORLD, runtime_config())
    values = [np.asarray(io.reconstruct([outs[r][i] for r in range(WORLD)])) for i in range(len(outs[0]))]
    kinds = output_kinds(a)
    if len(values) != len(kinds):
        msg = f"MPC program returned {len(values)} outputs, expected {len(kinds)}"
        raise MPCError(msg)
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    cell_ok = values[0].astype(bool)
    revealed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for j, (name, _) in enumerate(root.aggs):
        revealed[name] = (values[1 + 2 * j].astype(bool), values[2 + 2 * j])
    return Revealed(cell_ok, revealed)


def run_sort_yardstick(cluster: LocalCluster, size: int, *, seed: int = 0) -> JobStats:
    """Time SPU's secret sort of `size` distinct keys on the cluster (a benchmark yardstick)."""
    import spu

    enable_x64()
    rng = np.random.default_rng(seed)
    keys = rng.permutation(size).astype(np.int64) * 7 + 3
    io = spu.Io(WORLD, runtime_config())
    shares: list[list[list[bytes]]] = [[] for _ in range(WORLD)]
    for arr in (keys, np.arange(size, dtype=np.int64)):
        _share_into(io, arr, shares)
    t0 = time.perf_counter()
    outs, stats = cluster.run({"program": "sort_yardstick", "size": size}, shares)
    smallest = io.reconstruct([outs[r][0] for r in range(WORLD)])
    if int(np.asarray(smallest).ravel()[0]) != int(keys.min()):
        msg = "sort yardstick returned a wrong minimum"
        raise MPCError(msg)
    return JobStats(time.perf_counter() - t0, 0.0, stats)
