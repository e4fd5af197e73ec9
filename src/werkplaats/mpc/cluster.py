"""Three SPU parties as three OS processes on this machine, and run_mpc.

The coordinator here plays two roles that a workspace gives to other nodes: each
data owner (it encodes and secret-shares each table, so no party sees clear data)
and the result receiver (it reconstructs only the disclosure-controlled outputs);
both roles live in `werkplaats.mpc.share`, which the workspace services use too.
The parties are long-lived: one cluster serves many jobs, and each party keeps the
programs it compiled in memory (`werkplaats.mpc.programs`), so an identical job
(same plan, schemas and row counts) skips compilation.

Security model: the coordinator holds every table in the clear (it is all the owners
at once) and the reconstructed outputs; each party process holds only its shares.
What crosses the pipes is public metadata (`PartyHeader`) and shares. Party logs hold
timings and tracebacks, never data.

A job too large for the parties' memory budget runs bucketed (`werkplaats.mpc.buckets`,
`werkplaats.compile.staged`): the coordinator, as every owner, draws a fresh random bucket
key, splits each table by the keyed hash of its person key and streams the parties their
shares bucket by bucket, so that neither it nor a party holds more than one bucket's shares.

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
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..catalog.serde import catalog_to_dict
from ..compile.analyze import Analysis
from ..compile.kernels.cellkey import key_inputs, split_key
from ..compile.register import entries_to_json
from ..exceptions import MPCError, PartyFailedError
from ..plan.serde import canonical_json
from ..result import Revealed
from . import wire
from .buckets import DEFAULT_MEMORY_BUDGET_GB, bucket_count
from .party import key_part_blob
from .process import WORLD, Command, PartyHeader, PartyProcess, free_port, spawn_party
from .runtime import enable_x64
from .share import bucket_rows, reconstruct, share_buckets, share_tables

_LIVE: set[LocalCluster] = set()


@dataclass
class JobStats:
    """What a job cost, per party."""

    wall_s: float = 0.0
    share_s: float = 0.0
    parties: list[dict[str, Any]] = field(default_factory=list)
    buckets: int = 1


class LocalCluster:
    """Three compute parties on loopback, reusable across jobs.

    Examples
    --------
    >>> import werkplaats as wp                                   # doctest: +SKIP
    >>> with wp.mpc.LocalCluster() as cluster:                    # doctest: +SKIP
    ...     wp.run_local(q, tables, engine="mpc", cluster=cluster)
    """

    def __init__(self, *, host: str = "127.0.0.1", log_dir: str | Path | None = None,
                 start_timeout: float = 120.0, cache_dir: str | Path | None = None,
                 link_addrs: Callable[[tuple[str, ...]], Sequence[tuple[str, ...]]] | None = None,
                 workers: int = 1) -> None:  # fmt: skip
        self.host = host
        # NB: scale-out (mpc/scaleout.py): each party runs a bucketed job's buckets on its own Dask cluster of
        # `workers` worker processes (one scheduler per party, on loopback); 1: the party runs them itself
        self.workers = workers
        self.dask: list[Any] = []
        # NB: given the parties' listening addresses, the address list each rank links with (its own entry its
        # listening address, its peers' entries where it dials them); bench/relay.py puts a delaying relay there
        self.link_addrs = link_addrs
        self.start_timeout = start_timeout
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="werkplaats-parties-"))
        # NB: compiled programs stay in each party's memory and in a directory the three parties share, so
        # that one compiles and the others read it (programs.ProgramCache.compiling); by default the log
        # directory's, given one, it keeps them across clusters too.
        self.cache_dir = Path(cache_dir) if cache_dir else self.log_dir / "programs"
        # NB: the parties' spool directories of bucketed jobs (party.spool_root) live here, so that what a killed
        # party leaves behind is removed by kill(); a party removes its own at the end of every job it survives
        self.spool_dir = Path(tempfile.mkdtemp(prefix="werkplaats-spool-", dir=os.environ.get("WERKPLAATS_SPOOL_DIR")))
        self.parties: list[PartyProcess] = []
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
        self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            for rank in range(WORLD):
                self.parties.append(spawn_party(rank, self.log_dir / f"party{rank}.log", cache_dir=self.cache_dir,
                                                spool_dir=self.spool_dir))  # fmt: skip
            _LIVE.add(self)
            if self.workers > 1:
                from .scaleout import start_dask

                self.dask = [start_dask(self.workers, self.host) for _ in range(WORLD)]
            replies = self._collect({p.rank for p in self.parties}, time.monotonic() + self.start_timeout)
            for rank, (h, _) in replies.items():
                if h.get("cmd") != Command.READY:
                    raise PartyFailedError(rank, "did not start")
        except BaseException:
            self.kill()
            raise

    def close(self) -> None:
        """Stop the parties politely, then by force; remove their spool directory."""
        for p in self.parties:
            p.ask_to_stop()
        deadline = time.monotonic() + 5
        for p in self.parties:
            p.wait(max(0.1, deadline - time.monotonic()))
        self.kill()
        shutil.rmtree(self.spool_dir, ignore_errors=True)

    def kill(self) -> None:
        """Kill every party process now and release its pipes."""
        for p in self.parties:
            if p.proc.poll() is None:
                p.proc.kill()
        for p in self.parties:
            p.kill()
        self.parties = []
        for d in self.dask:  # NB: the workers hold shares of the job too
            with contextlib.suppress(Exception):
                d.close(timeout=10)
        self.dask = []
        _LIVE.discard(self)
        if self.spool_dir.is_dir():  # NB: the parties are gone: nothing of theirs is in use
            for d in self.spool_dir.iterdir():
                shutil.rmtree(d, ignore_errors=True)

    # --- jobs ------------------------------------------------------------------

    def _collect(self, ranks: set[int], deadline: float) -> dict[int, tuple[dict[str, Any], list[bytes]]]:
        """Wait for one message from each rank; fail fast on a dead or failing party."""
        q: queue.Queue[tuple[int, Any]] = queue.Queue()

        def reader(p: PartyProcess) -> None:
            try:
                q.put((p.rank, p.recv()))
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

    def run(self, header: PartyHeader, shares: list[list[list[bytes]]], *, timeout: float = 3600.0,
            key_parts: list[int] | None = None,
            buckets: Iterator[list[list[list[bytes]]]] | None = None,
            ) -> tuple[list[list[Any]], list[dict[str, Any]]]:  # fmt: skip
        """Run one job: shares[rank][input] are blobs; return output shares and stats per party.

        The header says what to run; its addresses and blob counts are filled in here.
        key_parts, when given, are the parties' parts of the perturbation key (one each, rule 6).
        buckets, for a bucketed header (``buckets`` > 0; then ``shares`` is empty), yields per
        bucket what ``shares`` would be; each is sent to the parties as a "bucket" message while
        they run, and dropped before the next is made.
        """
        if header.buckets and buckets is None:
            msg = "a bucketed job needs its buckets"
            raise ValueError(msg)
        self.start()
        addrs = tuple(f"{self.host}:{free_port(self.host)}" for _ in range(WORLD))
        self.last_addrs = list(addrs)
        views = list(self.link_addrs(addrs)) if self.link_addrs else [addrs] * WORLD
        scale: dict[int, dict[str, Any]] = {rank: {} for rank in range(WORLD)}
        if self.workers > 1 and header.buckets:  # NB: each worker group links on its own ports (no relay)
            groups = tuple(tuple(f"{self.host}:{free_port(self.host)}" for _ in range(WORLD))
                           for _ in range(self.workers))  # fmt: skip
            scale = {rank: {"workers": self.workers, "scheduler": self.dask[rank].scheduler_address,
                            "worker_addrs": groups} for rank in range(WORLD)}  # fmt: skip
        try:
            senders = []
            errors: list[tuple[int, BaseException]] = []
            for p in self.parties:
                blobs = [b for s in shares[p.rank] for b in s]
                h = replace(header, addrs=views[p.rank], share_blobs=tuple(len(s) for s in shares[p.rank]),
                            key_part=key_parts is not None, **scale[p.rank]).to_dict()  # fmt: skip
                if key_parts is not None:
                    blobs.append(key_part_blob(key_parts[p.rank]))

                def send(p: PartyProcess = p, h: dict[str, Any] = h, blobs: list[bytes] = blobs) -> None:
                    try:
                        p.send(h, blobs)
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
            failed: list[BaseException] = []
            if buckets is not None:
                feeder = threading.Thread(target=self._feed, args=(buckets, header.buckets, failed), daemon=True)
                feeder.start()
            try:
                replies = self._collect({0, 1, 2}, time.monotonic() + timeout)
            except PartyFailedError:
                if failed:  # NB: the coordinator's own failure (e.g. an over-full bucket) is the reason
                    raise failed[0] from None
                raise
            if buckets is not None:
                feeder.join()
        except BaseException:
            self.kill()
            raise
        outs, stats = [], []
        for rank in range(WORLD):
            h, blobs = replies[rank]
            outs.append(wire.unpack_shares(h["share_blobs"], blobs))
            stats.append({"rank": rank, **h["stats"]})
        return outs, stats

    def _feed(self, buckets: Iterator[list[list[list[bytes]]]], count: int, failed: list[BaseException]) -> None:
        """Send every party its shares of each bucket in turn (in a thread beside the job)."""
        parties = list(self.parties)
        try:
            b = -1
            for b, shares in enumerate(buckets):
                for p in parties:
                    counts = [len(s) for s in shares[p.rank]]
                    p.send({"cmd": Command.BUCKET.value, "index": b, "share_blobs": counts},
                           [x for s in shares[p.rank] for x in s])  # fmt: skip
                del shares
            if b + 1 != count:
                msg = f"{b + 1} buckets made for a job of {count}"
                raise MPCError(msg)
        except (OSError, ValueError) as e:
            if any(p.proc.poll() is not None for p in parties):
                return  # NB: a party died; the job's own failure says which
            failed.append(e)
            self.kill()
        except BaseException as e:
            failed.append(e)
            self.kill()


@atexit.register
def _cleanup() -> None:
    for c in list(_LIVE):
        c.kill()


def job_buckets(a: Analysis, rows: dict[str, int], memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB,
                buckets: int | None = None) -> int:  # fmt: skip
    """Return a job's bucket count (1: unbucketed): `buckets` when given, else from the memory budget.

    Raises MPCError with the compiler's reason when the job needs buckets and its plan does not
    combine across them (e.g. an exact quantile): refused, never approximated.
    """
    from ..compile.staged import staged_reason

    count = buckets if buckets is not None else bucket_count(a, rows, memory_budget_gb)
    if count < 1 or count & (count - 1):
        msg = f"the bucket count must be a power of two, got {count}"
        raise MPCError(msg)
    if count > 1:
        reason = staged_reason(a)
        if reason is not None:
            msg = f"the job needs {count} buckets to fit {memory_budget_gb} GB per party, but {reason}"
            raise MPCError(msg)
    return count


def run_mpc(a: Analysis, tables: dict[str, pd.DataFrame], *, cluster: LocalCluster | None = None,
            timeout: float = 3600.0, perturbation_key: int | None = None,
            memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB, buckets: int | None = None,
            workers: int | None = None) -> Revealed:  # fmt: skip
    """Run a checked plan on three SPU parties and reconstruct only its outputs.

    perturbation_key (below 2^64; default: a fresh random one) is split into three random
    additive parts, one per party, as a workspace's engines each hold one (rule 6).
    memory_budget_gb is each party's budget; a job the memory model puts over it runs in
    `buckets.bucket_count` buckets. buckets forces a count (a power of two; 1: unbucketed).
    workers: each party runs a bucketed job's buckets on that many Dask workers of its own
    (`werkplaats.mpc.scaleout`; a given cluster must have been started with as many).
    """
    enable_x64()
    t0 = time.perf_counter()
    count = job_buckets(a, {d: len(df) for d, df in tables.items()}, memory_budget_gb, buckets)
    header = PartyHeader(
        job=uuid.uuid4().hex,
        plan=canonical_json(a.plan),
        catalog=catalog_to_dict(a.catalog),
        rows={d: len(df) for d, df in tables.items()} if count == 1 else bucket_rows(tables, count),
        rules=a.rules.to_settings(),
        register=entries_to_json(a),
        buckets=count if count > 1 else 0,
    )
    timer = _Timer()
    if count == 1:
        _slots, shares = share_tables(a, tables)
        stream = None
    else:  # NB: a fresh bucket key per run: the coordinator is every owner, and nothing else ever needs it
        shares, stream = [[], [], []], timer.wrap(share_buckets(a, tables, secrets.token_bytes(32), count))
    t_share = time.perf_counter() - t0
    own = cluster is None
    if cluster is not None and workers is not None and cluster.workers != workers:
        msg = f"the cluster runs {cluster.workers} workers per party, not {workers}"
        raise MPCError(msg)
    c = cluster or LocalCluster(workers=workers or 1)
    try:
        parts = None
        if key_inputs(a):
            key = perturbation_key if perturbation_key is not None else secrets.randbits(64)
            parts = split_key(key)
        outs, stats = c.run(header, shares, timeout=timeout, key_parts=parts, buckets=stream)
    finally:
        if own:
            c.close()
    rev = reconstruct(a, outs)
    c.last_stats = JobStats(time.perf_counter() - t0, t_share + timer.seconds, stats, count)
    return rev


class _Timer:
    """Time spent inside a generator (the owners' encoding and sharing of buckets)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, it: Iterator[Any]) -> Iterator[Any]:
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.seconds += time.perf_counter() - t
                return
            self.seconds += time.perf_counter() - t
            yield item
