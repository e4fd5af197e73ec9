"""A party as a child process: spawning it, the header of a job, and the commands on its pipe.

The local cluster (`werkplaats.mpc.cluster`) and the engine service
(`werkplaats.workspace.engine`) both start ``python -m werkplaats.mpc.party`` through
`spawn_party` and speak to it in `werkplaats.mpc.wire` messages:

    parent → party   {"cmd": "run", ...PartyHeader} + the party's input shares
                     + (with "key_part": true) as the last blob, its own part of the perturbation key
    party  → parent  {"cmd": "compiled"}        (only when the header asks for a barrier)
    parent → party   {"cmd": "link"} or {"cmd": "cancel"}
    parent → party   (a bucketed job, "buckets": B > 0: the "run" message carries no input shares, only
                     the key-part blob when "key_part"; after the barrier, or at once without one)
                     {"cmd": "bucket", "index": b, "share_blobs": [...]} + the party's shares of bucket b
                     (every slot of every dataset, in layout order), for b = 0 .. B-1
    party  → parent  {"ok": true, "share_blobs": [...], "stats": {...}} + its output shares
                     or {"ok": false, "error": "..."}
    parent → party   {"cmd": "stop"}

A party announces itself with {"cmd": "ready", "rank": R, "pid": P} when it starts.

Security model: a header carries public metadata only — the plan, the schemas with
their code lists, row counts, peer addresses, paths of TLS files and the blob count of
each share. The blobs that follow a "run" header are this party's shares and, when the
header says ``key_part``, its own 64-bit part of the perturbation key (rule 6): secret, it
leaves the party only as shares (`werkplaats.mpc.party.exchange_key_parts`). A party's
log and its error messages name neither blobs nor values.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from . import wire

log = logging.getLogger("werkplaats.mpc")
WORLD = 3
HEADER_VERSION = 1
SORT_YARDSTICK = "sort_yardstick"  # NB: a built-in program (a benchmark yardstick, bench/)
# NB: built-in bucketed programs (one and two stages): the bucket runtime's self-test (mpc/programs.py)
STAGED_SELFTEST = ("staged_selftest_1", "staged_selftest_2")


class Command(StrEnum):
    """The control messages between a parent and its party, as the ``cmd`` of a header."""

    READY = "ready"  # party → parent: started, SPU imported
    RUN = "run"  # parent → party: a job (a PartyHeader) and this party's shares
    COMPILED = "compiled"  # party → parent: compiled; waits for LINK or CANCEL
    LINK = "link"  # parent → party: every party has compiled; open the links
    CANCEL = "cancel"  # parent → party: the job ended elsewhere; do not link
    BUCKET = "bucket"  # parent → party: this party's shares of one bucket (a bucketed job)
    STOP = "stop"  # parent → party: exit


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Paths of the party's certificate, key and the CA file it trusts (mutual TLS between parties).

    An engine gives its own self-signed link certificate and, as ``ca``, a bundle of its two
    peers' pinned link certificates; the local cluster gives the workspace CA.
    """

    ca: str
    cert: str
    key: str


@dataclass(frozen=True, slots=True)
class PartyHeader:
    """One job as a party receives it: what to compile, whom to link with, how its shares are cut.

    Either ``plan`` (canonical plan JSON) with ``catalog`` and ``rows``, or a built-in
    ``program`` with its ``size``. With ``buckets`` > 0 the job is bucketed: ``rows`` (or
    ``size``) are the padded bucket sizes and the shares come in "bucket" messages. With
    ``workers`` W > 1 as well (scale-out, `werkplaats.mpc.scaleout`) the party runs the buckets
    on W workers of its own Dask cluster (``scheduler``); worker w links with worker w of the
    other parties at ``worker_addrs[w]`` (one address per rank), link id ``<job>-w<w>``.
    """

    job: str
    addrs: tuple[str, ...] = ()
    share_blobs: tuple[int, ...] = ()
    plan: str | None = None
    catalog: dict[str, Any] | None = None
    rows: dict[str, int] | None = None
    program: str | None = None
    size: int = 0
    recv_timeout_ms: int = 600_000
    barrier: bool = False
    tls: TlsFiles | None = None
    rules: dict[str, Any] | None = None  # NB: the disclosure rules' settings (compile/rules.py); None: the defaults
    key_part: bool = False  # NB: the last blob is this party's own part of the perturbation key (never sent on)
    register: list[dict[str, Any]] | None = None  # NB: rule 9's registered cell definitions (compile/register.py)
    buckets: int = 0  # NB: 0: unbucketed; else the bucket count (rows: the padded bucket sizes)
    # NB: scale-out (mpc/scaleout.py): W > 1 worker groups run the buckets; this party's own Dask scheduler, and per
    # group the three parties' workers' link addresses (worker_addrs[w][rank])
    workers: int = 0
    scheduler: str | None = None
    worker_addrs: tuple[tuple[str, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the header as a "run" message."""
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["addrs"], d["share_blobs"] = list(self.addrs), list(self.share_blobs)
        d["worker_addrs"] = [list(g) for g in self.worker_addrs]
        return {"cmd": Command.RUN.value, "v": HEADER_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartyHeader:
        """Read a "run" message; raise ValueError when it is not one this party understands."""
        if d.get("cmd") != Command.RUN or d.get("v") != HEADER_VERSION:
            msg = f"not a version {HEADER_VERSION} run header"
            raise ValueError(msg)
        try:
            tls = d.get("tls")
            h = cls(
                job=str(d["job"]),
                addrs=tuple(str(a) for a in d["addrs"]),
                share_blobs=tuple(int(c) for c in d["share_blobs"]),
                plan=d.get("plan"),
                catalog=d.get("catalog"),
                rows={str(k): int(v) for k, v in d["rows"].items()} if d.get("rows") is not None else None,
                program=d.get("program"),
                size=int(d.get("size", 0)),
                recv_timeout_ms=int(d.get("recv_timeout_ms", 600_000)),
                barrier=bool(d.get("barrier", False)),
                tls=TlsFiles(str(tls["ca"]), str(tls["cert"]), str(tls["key"])) if tls else None,
                rules=dict(d["rules"]) if d.get("rules") is not None else None,
                key_part=bool(d.get("key_part", False)),
                register=[dict(e) for e in d["register"]] if d.get("register") is not None else None,
                buckets=int(d.get("buckets", 0)),
                workers=int(d.get("workers", 0)),
                scheduler=str(d["scheduler"]) if d.get("scheduler") is not None else None,
                worker_addrs=tuple(tuple(str(a) for a in g) for g in d.get("worker_addrs", ())),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            msg = f"malformed run header ({type(e).__name__}: {e})"
            raise ValueError(msg) from None
        if (h.plan is None) == (h.program is None) or (h.plan is not None and (h.catalog is None or h.rows is None)):
            msg = "a run header needs either a plan with its catalog and rows, or a built-in program"
            raise ValueError(msg)
        if h.buckets < 0 or (h.buckets and h.program is not None and h.program not in STAGED_SELFTEST):
            msg = "a bucketed run header needs a plan and a positive bucket count"
            raise ValueError(msg)
        if h.workers > 1 and not (h.buckets and h.scheduler and len(h.worker_addrs) == h.workers):
            msg = "a scale-out run header needs buckets, its party's scheduler and every worker group's addresses"
            raise ValueError(msg)
        if h.buckets and h.share_blobs:
            msg = "a bucketed run header carries no input shares (they come bucket by bucket)"
            raise ValueError(msg)
        return h


def free_port(host: str = "127.0.0.1") -> int:
    """Return a free port below the kernel's ephemeral range, so that no outgoing connection takes it meanwhile."""
    lo, hi = 20_000, 32_000
    try:
        lo_e = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        hi = min(hi, lo_e - 1)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randint(lo, hi)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    msg = f"no free port on {host} between {lo} and {hi}"
    raise RuntimeError(msg)


@dataclass
class PartyProcess:
    """A running party: its process and the two ends of its pipe."""

    rank: int
    proc: subprocess.Popen[bytes]
    to: BinaryIO
    frm: BinaryIO
    log: Path

    def send(self, header: dict[str, Any], blobs: list[bytes] = ()) -> None:  # type: ignore[assignment]
        """Send one message to the party."""
        wire.send(self.to, header, blobs)

    def recv(self) -> tuple[dict[str, Any], list[bytes]]:
        """Read one message from the party."""
        return wire.recv(self.frm)

    def ask_to_stop(self) -> None:
        """Send STOP if the pipe is still open."""
        with contextlib.suppress(OSError, ValueError):
            wire.send(self.to, {"cmd": Command.STOP.value})

    def wait(self, timeout: float) -> bool:
        """Wait for the process to exit; return whether it did."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """Kill the process if it still runs, reap it and close the pipe."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(10)
        for f in (self.to, self.frm):
            with contextlib.suppress(OSError):
                f.close()


def spawn_party(rank: int, log: Path, *, cache_dir: Path | None = None,
                spool_dir: Path | None = None) -> PartyProcess:  # fmt: skip
    """Start ``python -m werkplaats.mpc.party`` as party `rank`, logging to `log`.

    cache_dir, when given, is where the party keeps compiled programs across processes
    (see werkplaats.mpc.programs); without it a party caches them in memory only.
    spool_dir, when given, is where it makes the private spool directory of a bucketed job
    (``WERKPLAATS_SPOOL_DIR``): a parent that kills the party removes what it left there.
    """
    r1, w1 = os.pipe()  # parent -> party
    r2, w2 = os.pipe()  # party -> parent
    cmd = [sys.executable, "-m", "werkplaats.mpc.party", "--rank", str(rank), "--in-fd", str(r1), "--out-fd", str(w2)]
    if cache_dir is not None:
        cmd += ["--cache-dir", str(cache_dir)]
    env = {**os.environ, "WERKPLAATS_SPOOL_DIR": str(spool_dir)} if spool_dir is not None else None
    try:
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                cmd, pass_fds=(r1, w2), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, env=env,  # NB: Ctrl-C reaches the parent only; it cleans up
            )  # fmt: skip
    except BaseException:
        for fd in (r1, w1, r2, w2):
            os.close(fd)
        raise
    os.close(r1)
    os.close(w2)
    return PartyProcess(rank, proc, os.fdopen(w1, "wb", buffering=1 << 20), os.fdopen(r2, "rb", buffering=1 << 20), log)


class SpareParty:
    """One party process started ahead of its job, so that the job finds it running with SPU imported.

    An engine service starts a fresh party for every job (jobs never share a process); starting
    one and importing SPU takes about 1.5 s. A spare is started at the engine's start and after
    each job (`refill`), waits on its pipe for its "run" header, and is handed to the next job
    (`take`); a spare that died meanwhile is replaced. `close` kills it. It holds nothing of any
    job until it is taken: its log starts in ``log_dir`` as ``party-spare-<n>.log`` and is renamed
    to the job's log when taken.

    NB: call `refill` and `take` from a thread that lives as long as the engine: the party asks
    the kernel to kill it when the thread that started it ends (PR_SET_PDEATHSIG is per thread).
    """

    def __init__(self, rank: int, log_dir: Path, *, cache_dir: Path | None = None, spool_dir: Path | None = None,
                 retry_s: float = 5.0) -> None:  # fmt: skip
        """A spare of party `rank`, started as `spawn_party` would start it (cache_dir, spool_dir)."""
        self.rank = rank
        self.log_dir = log_dir
        self.cache_dir = cache_dir
        self.spool_dir = spool_dir
        self.retry_s = retry_s  # NB: a spare that died is replaced at most this often (no restart loop)
        self.party: PartyProcess | None = None
        self.closed = False
        self.started = 0
        self.replaced = 0  # NB: spares found dead and replaced
        self._lock = threading.Lock()
        self._last_death = -float("inf")
        self._names = itertools.count()

    def refill(self) -> None:
        """Start a spare when there is none or it died (a dead one is reaped first); nothing once closed."""
        with self._lock:
            if self.closed:
                return
            if self.party is not None:
                if self.party.proc.poll() is None:
                    return
                log.warning("spare party %d exited with code %s; replacing it", self.rank, self.party.proc.returncode)
                self.party.kill()
                self.party = None
                self.replaced += 1
                self._last_death = time.monotonic()
            if time.monotonic() - self._last_death < self.retry_s:
                return
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f"party-spare-{next(self._names)}.log"
            self.party = spawn_party(self.rank, path, cache_dir=self.cache_dir, spool_dir=self.spool_dir)
            self.started += 1

    def take(self, log_path: Path) -> PartyProcess | None:
        """Hand the running spare to a job (its log renamed to log_path), or None when there is no live one."""
        with self._lock:
            party, self.party = self.party, None
        if party is None:
            return None
        if party.proc.poll() is not None:
            party.kill()
            with self._lock:
                self.replaced += 1
            return None
        target = log_path
        for k in itertools.count(1):  # NB: a job that stepped back and ran again keeps its first log
            if not target.exists():
                break
            target = log_path.with_suffix(f".{k}.log")
        with contextlib.suppress(OSError):
            party.log.replace(target)
            party.log = target
        return party

    def close(self) -> None:
        """Kill the spare, if any; no spare is started after this."""
        with self._lock:
            self.closed = True
            party, self.party = self.party, None
        if party is not None:
            party.kill()
