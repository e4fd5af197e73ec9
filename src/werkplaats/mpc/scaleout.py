"""Scale-out: one party's buckets on several workers, through Dask distributed (issue 13 §5).

A bucketed job (`werkplaats.compile.staged`) runs every stage over every bucket; the buckets
are independent, so a party can hand them to W workers. With ``PartyHeader.workers`` = W > 1
the party (the *coordinator*) uses its own Dask cluster (``PartyHeader.scheduler``: a scheduler
and W workers that belong to this party alone) instead of running the buckets itself:

- it spools every bucket message it receives to its private spool directory (one file per
  bucket, written atomically), where the workers read them;
- on worker w of its Dask cluster it starts one `BucketGroup` (a Dask actor) with the party's
  rank, linked over brpc (the party's TLS files) only to worker w of the other two parties:
  link id ``<job>-w<w>``, addresses ``PartyHeader.worker_addrs[w]``;
- per stage it sends every group the current state (its shares), each group runs the stage's
  partial over its buckets b ≡ w (mod W) and combines them (inside the MPC, between the three
  parties' workers w), and returns its accumulator (shares) to the coordinator;
- the three coordinators combine the W accumulators and run the stage's step inside the MPC
  over their own link, and the new state (shares) goes back to the groups for the next stage.

The result is the one-worker run's: the same compiled programs, the same combination (ring
addition, min, max, top-N are associative and commutative), only in another order.

Security model: a worker holds only its own party's shares (the buckets from its party's
spool, the state from its party's coordinator) and talks MPC only with the same-numbered
workers of the other two parties, over links that trust exactly what the party's own link
trusts (the header's CA file: the peers' pinned link certificates). A party's Dask cluster
(scheduler, workers, the pickled task arguments between them) must be that party's alone,
on loopback or a network only its operator controls: Dask trusts everyone who can reach
its scheduler. Nothing here logs data or shares; the workers' log lines hold timings,
bucket indices and addresses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import wire
from .process import PartyHeader
from .programs import Program, Staged
from .runtime import enable_x64, runtime_config

log = logging.getLogger("werkplaats.party")

# NB: a party waits this long for its Dask workers, a worker this long for a bucket file
WORKERS_TIMEOUT_S = 120.0
BUCKET_TIMEOUT_S = 3600.0
FAILED = "failed"  # NB: the spool's marker: the coordinator stopped receiving buckets

# NB: per job, what the coordinator's workers did (party._run_bucketed adds it to the job's stats)
job_stats: dict[str, dict[str, Any]] = {}


def group_of(bucket: int, workers: int) -> int:
    """Return the worker group that runs a bucket (b ≡ w mod W; public, the same at every party)."""
    return bucket % workers


def group_buckets(group: int, workers: int, buckets: int) -> list[int]:
    """Return the buckets worker group `group` runs."""
    return list(range(group, buckets, workers))


def group_header(header: PartyHeader, group: int) -> PartyHeader:
    """Return the header worker group `group` links with: its own link id and the three workers' addresses."""
    return replace(header, job=f"{header.job}-w{group}", addrs=tuple(header.worker_addrs[group]))


def pack_program(p: Program) -> dict[str, Any]:
    """Return a compiled program as plain values (a worker rebuilds it with `unpack_program`)."""
    exe = p.exe
    return {"name": exe.name, "input_names": list(exe.input_names), "output_names": list(exe.output_names),
            "code": bytes(exe.code)}  # fmt: skip


def unpack_program(d: dict[str, Any]) -> Any:
    """Rebuild an SPU executable from `pack_program`'s values."""
    from spu import libspu

    return libspu.Executable(name=d["name"], input_names=list(d["input_names"]),
                             output_names=list(d["output_names"]), code=d["code"])  # fmt: skip


def run_program(rt: Any, exe: Any, args: list[Any]) -> list[Any]:
    """Run one program on shares and return its output shares; drop every variable it used."""
    for name, v in zip(exe.input_names, args, strict=True):
        rt.set_var(name, v)
    rt.run(exe)
    out = [rt.get_var(name) for name in exe.output_names]
    for name in (*exe.input_names, *exe.output_names):
        rt.del_var(name)
    return out


def bucket_path(spool: Path, bucket: int) -> Path:
    return spool / f"{bucket}.bucket"


def read_bucket(spool: Path, bucket: int, inputs: int, timeout: float = BUCKET_TIMEOUT_S) -> list[Any]:
    """Return bucket `bucket`'s shares from the spool, waiting until the coordinator has written it."""
    from .party import _check_bucket

    path = bucket_path(spool, bucket)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if (spool / FAILED).exists():
            msg = f"bucket {bucket}: the party stopped receiving buckets"
            raise RuntimeError(msg)
        if time.monotonic() > deadline:
            msg = f"bucket {bucket} did not arrive in the spool"
            raise TimeoutError(msg)
        time.sleep(0.02)
    with open(path, "rb") as f:
        head, blobs = wire.recv(f)
    return _check_bucket(head, blobs, bucket, inputs)


def spool_buckets(recv: Any, spool: Path, count: int, inputs: int) -> None:
    """Write every bucket message the parent sends to the spool (atomically: a temporary file, then a rename)."""
    from .party import _check_bucket, _private

    try:
        for b in range(count):
            head, blobs = recv()
            _check_bucket(head, blobs, b, inputs)  # NB: a wrong message fails here, in the coordinator
            tmp = spool / f".{b}.tmp"
            with open(tmp, "wb", opener=_private) as out:
                wire.send(out, head, blobs)
            os.replace(tmp, bucket_path(spool, b))
            del blobs
    except BaseException:
        with contextlib.suppress(OSError):
            (spool / FAILED).touch()
        raise


class BucketGroup:
    """Worker group w of one party, as a Dask actor on one of its party's workers.

    Holds the group's link (to worker w of the other two parties only) and SPU runtime for the
    job; `run_stage` runs one stage's partial over the group's buckets and returns the
    combined partials (shares).
    """

    def __init__(self, rank: int, header: dict[str, Any], group: int, spool: str,
                 programs: list[dict[str, Any]], inputs: int, precision: str) -> None:  # fmt: skip
        import spu

        from .party import _linked

        enable_x64()
        self.rank = rank
        self.group = group
        self.header = PartyHeader.from_dict(header)
        self.spool = Path(spool)
        self.inputs = inputs
        self.programs = [{k: unpack_program(v) for k, v in st.items()} for st in programs]
        self.buckets = group_buckets(group, self.header.workers, self.header.buckets)
        gh = group_header(self.header, group)
        self.link_id, self.addrs = gh.job, list(gh.addrs)
        self._link_cm = _linked(rank, gh)
        self.link = self._link_cm.__enter__()
        self.rt = spu.Runtime(self.link, runtime_config(precision))
        self.stage_s: list[float] = []

    def info(self) -> dict[str, Any]:
        """Return what this worker was given (public: rank, group, link id and addresses, buckets, spool)."""
        from .party import _peak_rss

        worker = None
        with contextlib.suppress(Exception):
            from distributed import get_worker

            w = get_worker()
            worker, scheduler = w.address, w.scheduler.address
        return {"rank": self.rank, "group": self.group, "link": self.link_id, "addrs": self.addrs,
                "buckets": self.buckets, "spool": str(self.spool), "pid": os.getpid(), "worker": worker,
                "scheduler": scheduler if worker else None, "stage_s": self.stage_s,
                "peak_rss": _peak_rss()}  # fmt: skip

    def run_stage(self, stage: int, counts: list[int], blobs: list[bytes]) -> tuple[list[int], list[bytes]]:
        """Run stage `stage` over this group's buckets with the given state; return the accumulator's shares."""
        t0 = time.perf_counter()
        state = wire.unpack_shares(counts, blobs)
        progs = self.programs[stage]
        acc: list[Any] | None = None
        for b in self.buckets:
            shares = read_bucket(self.spool, b, self.inputs)
            part = run_program(self.rt, progs["partial"], [*shares, *state])
            del shares
            acc = part if acc is None else run_program(self.rt, progs["combine"], [*acc, *part])
        assert acc is not None
        out = wire.pack_shares(acc)
        self.stage_s.append(time.perf_counter() - t0)
        return out

    def close(self) -> None:
        """Release the runtime (every share of this group) and stop the link."""
        self.rt = None
        self._link_cm.__exit__(None, None, None)


def run_stages(rank: int, rt: Any, header: PartyHeader, staged: Staged, state: list[Any], recv: Any,
               spool: Path | None) -> list[float]:  # fmt: skip
    """Run every stage on this party's Dask workers (`party._run_stages`' scale-out); return seconds per stage.

    The coordinator spools the buckets, starts one `BucketGroup` per worker, and per stage
    combines the groups' accumulators and runs the step on its own link (rt); the outputs are
    left in `state`, as `party._run_stages` leaves them.
    """
    from distributed import Client

    assert spool is not None and header.scheduler
    workers = header.workers
    if len(header.worker_addrs) != workers or any(len(g) != len(header.addrs) for g in header.worker_addrs):
        msg = f"a scale-out job needs the link addresses of {workers} worker groups"
        raise ValueError(msg)
    groups = [w for w in range(workers) if group_buckets(w, workers, header.buckets)]
    spooler_error: list[BaseException] = []

    def spooler() -> None:
        try:
            spool_buckets(recv, spool, header.buckets, staged.inputs)
        except BaseException as e:  # NB: re-raised in the coordinator's thread below
            spooler_error.append(e)

    feeding = threading.Thread(target=spooler, daemon=True)
    feeding.start()
    programs = [{"partial": pack_program(st.partial), "combine": pack_program(st.combine)} for st in staged.stages]
    times: list[float] = []
    with Client(header.scheduler, timeout=WORKERS_TIMEOUT_S) as client:  # NB: the default: the actors use it
        client.wait_for_workers(workers, timeout=WORKERS_TIMEOUT_S)
        addrs = sorted(client.scheduler_info(n_workers=-1)["workers"])[:workers]
        futures = [
            client.submit(BucketGroup, rank, header.to_dict(), w, str(spool), programs, staged.inputs,
                          staged.precision, actor=True, workers=[addrs[w]], allow_other_workers=False,
                          pure=False, key=f"group-{header.job}-{w}")
            for w in groups
        ]  # fmt: skip
        actors: list[Any] = []
        try:
            actors = [f.result() for f in futures]
            for si, st in enumerate(staged.stages):
                t0 = time.perf_counter()
                counts, blobs = wire.pack_shares(state)
                calls = [g.run_stage(si, counts, blobs) for g in actors]
                acc: list[Any] | None = None
                for call in calls:
                    try:
                        got = call.result()
                    except Exception:
                        if spooler_error:  # NB: the reason is the coordinator's (e.g. a malformed bucket message)
                            raise spooler_error[0] from None
                        raise
                    part = wire.unpack_shares(*got)
                    acc = part if acc is None else run_program(rt, st.combine.exe, [*acc, *part])
                assert acc is not None
                state[:] = run_program(rt, st.step.exe, [*acc, *state])
                times.append(time.perf_counter() - t0)
                log.info("job %s: stage %s over %d buckets on %d workers in %.1f s",
                         header.job, st.name, header.buckets, len(actors), times[-1])  # fmt: skip
                if si == 0:
                    feeding.join()
                    if spooler_error:
                        raise spooler_error[0]
            infos = [g.info().result() for g in actors]
            job_stats[header.job] = {"workers": infos, "dask_workers": addrs}
        finally:
            for g in actors:
                with contextlib.suppress(Exception):
                    g.close().result(timeout=30)
            client.cancel(futures)
    return times


def start_dask(workers: int, host: str = "127.0.0.1") -> Any:
    """Start one party's own Dask cluster: a scheduler and `workers` worker processes on `host` (loopback).

    One thread per worker (a worker runs one group's MPC at a time), free ports and dashboards on loopback only,
    no memory limit of Dask's own (the party's memory budget decides the buckets).
    """
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host=host, scheduler_port=0,
                        dashboard_address=f"{host}:0", worker_dashboard_address=f"{host}:0", memory_limit=0,
                        silence_logs=logging.ERROR)  # fmt: skip
