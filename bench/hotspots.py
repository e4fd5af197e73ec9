"""The demo's hotspot analysis on a synthetic region of n residents: time and memory per party.

The plan is the one `werkplaats demo` submits: `uc.infection_hotspots(2024, risk_counts=True,
hospital=True)` (GGD notifications joined with GP patients, VVT clients and hospital admissions,
per gemeente and ISO week), under the demo collaboration's rules (every rule on but rule 8's
cells per source; docs/disclosure.md). The region is `werkplaats synth`'s generator with n
residents. For every n, in the same run: generating the region, the plain executor's time, the
MPC wall time on fresh local parties (as a workspace's engines, whose party process holds the
job), bytes sent and peak RSS per party and of the coordinator (which plays every owner), the
buckets used, and whether MPC equals the plain executor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import werkplaats as wp
from werkplaats import usecases as uc
from werkplaats.compile.plain import run_plain
from werkplaats.local import prepare
from werkplaats.synth.generate import generate
from werkplaats.synth.write import region_datasets

from . import measure

RULES = wp.DisclosureRules(cells_per_source=False)  # NB: the demo collaboration's (demo/workspace.py)
PERTURBATION_KEY = 1


def query() -> wp.LazyFrame:
    """Return the demo's analysis."""
    return uc.infection_hotspots(2024, risk_counts=True, hospital=True)


def run_one(n: int, *, seed: int = 1, memory_budget_gb: float | None = None, buckets: int | None = None,
            rtt_ms: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the hotspot analysis on a region of n residents; return its measurements."""
    opts = measure.mpc_options(memory_budget_gb, buckets)
    measure.reset_peak_rss()
    region, gen_s = measure.timed(lambda: generate(seed, n))
    schemas = {d.name: d.schema for d in region_datasets(region)}
    a, checked = prepare(query(), region.tables, schemas=schemas, rules=RULES)
    rows = {d: len(df) for d, df in checked.items()}
    del region
    plain, plain_s = measure.timed(lambda: run_plain(a, checked, perturbation_key=PERTURBATION_KEY))
    with measure.cluster(rtt_ms) as (cluster, spawn_s, _relay):
        rev, mpc_s, job = measure.run_job(cluster, a, checked, perturbation_key=PERTURBATION_KEY, **opts)
        coord = measure.peak_rss()
    return {
        "n": n,
        "rows": rows,
        "generate_s": gen_s,
        "plain_s": plain_s,
        "spawn_s": spawn_s,
        "mpc_s": mpc_s,
        **measure.job_fields(job),
        "coordinator_peak_rss": coord,
        "released_cells": int((rev.cell_ok == 1).sum()),
        "mpc_equals_plain": measure.mpc_equals_plain(rev, plain),
    }


def table(results: list[dict[str, Any]]) -> str:
    """Return the results as a Markdown table."""
    out = ["| residents | rows (largest source) | buckets | MPC s | compile / run s | plain s | MB sent per party "
           "| peak RSS per party (MB) | coordinator MB | equal |",
           "|---:|---:|---:|---:|---|---:|---|---|---:|---|"]  # fmt: skip
    for r in results:
        out.append(f"| {r['n']:,} | {max(r['rows'].values()):,} | {r['buckets']} | {r['mpc_s']:.1f} "
                   f"| {r['party_compile_s']:.1f} / {r['party_run_s']:.1f} | {r['plain_s']:.2f} "
                   f"| {measure.mb(r['bytes_sent'])} | {measure.mb(r['peak_rss'])} "
                   f"| {r['coordinator_peak_rss'] / 1e6:.0f} | {r['mpc_equals_plain']} |")  # fmt: skip
    return "\n".join(out)


def main(sizes: list[int], out: Path, *, memory_budget_gb: float | None = None,
         buckets: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run the hotspot analysis for every region size; write hotspots.json and hotspots.md into out/."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for n in sizes:
        r = run_one(n, memory_budget_gb=memory_budget_gb, buckets=buckets)
        results.append(r)
        print(f"residents={n:>10,}  buckets={r['buckets']:<3} MPC {r['mpc_s']:8.1f} s "
              f"(compile {r['party_compile_s']:.1f}, run {r['party_run_s']:.1f})  plain {r['plain_s']:.2f} s  "
              f"peak RSS {measure.mb(r['peak_rss'])} MB (coordinator {r['coordinator_peak_rss'] / 1e6:.0f})  "
              f"equal={r['mpc_equals_plain']}", flush=True)  # fmt: skip
        measure.save(out, "hotspots", results, table)
    return results
