"""What every benchmark measures the same way: the coordinator's memory, a cluster (optionally
behind the latency relay), a timed job and its statistics, whether MPC equals the plain executor,
the per-job floor, the options of `run_mpc` this checkout has, and the result files.

Fixed cost of a job, as the benchmarks report it (docs/benchmarks.md, "Fixed cost per job"):

- ``spawn_s``: starting the three party processes until each has imported SPU (a workspace's
  engine pays it per job: a fresh party per job);
- ``share_s``: the owners' encoding and secret-sharing (the coordinator plays every owner);
- ``compile_s``: the slowest party's compilation (0 on a cache hit);
- ``floor_s``: the wall time of a 2-key job whose program is cached: pipes, opening the three
  links, a trivial run and reconstruction; what any job costs at least on running parties.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from werkplaats.compile.analyze import Analysis
from werkplaats.mpc.cluster import JobStats, LocalCluster, run_mpc
from werkplaats.result import Revealed

from .relay import LinkRelay
from .yardstick import run_sort_yardstick

T = TypeVar("T")


def _status(key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak_rss() -> None:
    """Reset this process' peak RSS (VmHWM), as the parties do per job."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> int:
    """Return this process' peak RSS since the last reset, in bytes."""
    return _status("VmHWM") or 0


def mpc_options(memory_budget_gb: float | None, buckets: int | None) -> dict[str, Any]:
    """Return the bucketing options this checkout's run_mpc takes (none before bucketing landed)."""
    params = inspect.signature(run_mpc).parameters
    opts: dict[str, Any] = {}
    if memory_budget_gb is not None and "memory_budget_gb" in params:
        opts["memory_budget_gb"] = memory_budget_gb
    if buckets is not None:
        if "buckets" not in params:
            msg = "--buckets: this checkout's run_mpc has no bucketed execution yet"
            raise ValueError(msg)
        opts["buckets"] = buckets
    return opts


@contextlib.contextmanager
def cluster(rtt_ms: float | None = None) -> Iterator[tuple[LocalCluster, float, LinkRelay | None]]:
    """Start fresh parties (behind the latency relay when rtt_ms is given); yield them, the start time and
    the relay."""
    with contextlib.ExitStack() as stack:
        relay = stack.enter_context(LinkRelay(rtt_ms / 2000.0)) if rtt_ms is not None else None
        c = LocalCluster(link_addrs=relay.addrs) if relay is not None else LocalCluster()
        stack.enter_context(contextlib.closing(c))
        t0 = time.perf_counter()
        c.start()
        yield c, time.perf_counter() - t0, relay


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Return fn's result and its wall time in seconds."""
    t0 = time.perf_counter()
    got = fn()
    return got, time.perf_counter() - t0


def run_job(c: LocalCluster, a: Analysis, tables: dict[str, pd.DataFrame],
            **kw: Any) -> tuple[Revealed, float, JobStats]:  # fmt: skip
    """Run one MPC job on running parties; return its result, its wall time and its statistics."""
    rev, s = timed(lambda: run_mpc(a, tables, cluster=c, **kw))
    job = c.last_stats
    assert job is not None
    return rev, s, job


def mpc_equals_plain(rev: Revealed, plain: Revealed, atol: float = 1e-3) -> bool:
    """Return whether MPC released the plain executor's cells, with every statistic's values within atol."""
    return bool(np.array_equal(rev.cell_ok, plain.cell_ok)) and all(
        np.allclose(np.asarray(rev.stats[k][1], float), np.asarray(plain.stats[k][1], float), atol=atol)
        for k in plain.stats
    )


def job_floor(c: LocalCluster) -> float:
    """Return the wall time of a trivial job on running parties with its program cached (run twice)."""
    run_sort_yardstick(c, 2)
    return run_sort_yardstick(c, 2).wall_s


def job_fields(job: JobStats) -> dict[str, Any]:
    """Return a job's statistics as the benchmarks report them (buckets and stages once bucketing landed)."""
    ps = job.parties
    return {
        "share_s": job.share_s,
        "party_run_s": max(p["run_s"] for p in ps),
        "party_compile_s": max(p["compile_s"] for p in ps),
        "program_cached": all(p.get("program_cached", False) for p in ps),
        "bytes_sent": [p["bytes_sent"] for p in ps],
        "peak_rss": [p["peak_rss"] for p in ps],
        "buckets": int(getattr(job, "buckets", 0) or max(int(p.get("buckets", 0) or 0) for p in ps) or 1),
        "stages": max(int(p.get("stages", 1) or 1) for p in ps),
        "stage_s": [p.get("stage_s") for p in ps] if any("stage_s" in p for p in ps) else None,
    }


def mb(values: list[int] | None) -> str:
    """Return byte counts as 'a / b / c' MB."""
    return " / ".join(f"{v / 1e6:.0f}" for v in values) if values else "-"


def save(out: Path, name: str, results: list[dict[str, Any]], table: Callable[[list[dict[str, Any]]], str]) -> None:
    """Write the results so far as out/<name>.json and their Markdown table as out/<name>.md."""
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    (out / f"{name}.md").write_text(table(results) + "\n")
