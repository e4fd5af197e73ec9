"""Workload W1: join two n-row tables on a person key, filter, group by gemeente.

Left: bsn (9-digit), gemeente (30 codes), leeftijd, diagnose. Right: bsn,
chronisch, aantal. Inner join on bsn, leeftijd >= 18, per gemeente: count, mean
age, sum of chronisch; min_group_size 10. For each n it reports MPC wall time,
DuckDB time on the same query in the same run, their ratio, bytes sent and peak
RSS per party, and a bare SPU sort of 2n keys as a yardstick (bench/yardstick.py).
With ``warm``, it runs the same job a second time on the same parties, which take the
compiled program from their cache, and reports that time and the compile time saved.

``rules`` ("default" or "cells-only") says which disclosure rules the run applies
(docs/disclosure.md; "What the rules cost" compares the two). ``magnitude`` adds a sum
of ``aantal``, marked as a magnitude in the catalog, so that the dominance and p% rules
(rule 3) have a statistic to check.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import werkplaats as wp
from werkplaats.catalog.schema import TableSchema, infer_schema
from werkplaats.compile.plain import run_plain
from werkplaats.local import prepare

from . import measure
from .yardstick import run_sort_yardstick

GEMEENTEN = [f"GM{i:04d}" for i in range(1, 31)]
RULES = {"default": wp.DisclosureRules(), "cells-only": wp.DisclosureRules.cells_only()}
PERTURBATION_KEY = 1  # NB: the same for both executors, so that their perturbed counts agree


def tables(n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Return W1's two tables; 80% of the right side's persons are on the left."""
    rng = np.random.default_rng(seed)
    # NB: the same draw as choice(np.arange(100_000_000, 999_999_999)) without the 7 GB array
    persons = 100_000_000 + rng.choice(899_999_999, size=int(n * 1.2), replace=False)
    left_ids = persons[:n]
    right_ids = np.concatenate([rng.choice(left_ids, size=int(n * 0.8), replace=False), persons[n:]])[:n]
    left = pd.DataFrame({
        "bsn": left_ids.astype(np.int64),
        "gemeente": pd.Categorical(rng.choice(GEMEENTEN, n), categories=GEMEENTEN),
        "leeftijd": rng.integers(0, 100, n),
        "diagnose": rng.random(n) < 0.2,
    })  # fmt: skip
    right = pd.DataFrame({
        "bsn": rng.permutation(right_ids).astype(np.int64),
        "chronisch": rng.random(n) < 0.35,
        "aantal": rng.poisson(2.0, n),
    })  # fmt: skip
    return {"zorg/personen": left, "huisartsen/chronisch": right}


def query(magnitude: bool = False) -> wp.LazyFrame:
    """Return W1's analysis (with ``magnitude``: also the sum of a magnitude column)."""
    extra = {"aantal": wp.col("aantal").sum()} if magnitude else {}
    return (
        wp.scan("zorg/personen")
        .join(wp.scan("huisartsen/chronisch"), on="bsn", how="inner")
        .filter(wp.col("leeftijd") >= 18)
        .group_by("gemeente")
        .agg(n=wp.count(), leeftijd=wp.col("leeftijd").mean(), chronisch=wp.col("chronisch").sum(), **extra)
    )


def schemas(t: dict[str, pd.DataFrame]) -> dict[str, TableSchema]:
    """Return the tables' schemas as a catalog would give them: bsn the person key, aantal a magnitude."""
    roles = {"bsn": "person_key", "aantal": "magnitude"}
    out = {}
    for name, df in t.items():
        s = infer_schema(name, df)
        cols = tuple(replace(c, role=roles.get(c.name, "")) for c in s.columns)
        out[name] = replace(s, columns=cols)
    return out


def run_one(n: int, *, sort_yardstick: bool = True, warm: bool = False, seed: int = 0, rules: str = "default",
            magnitude: bool = False, rtt_ms: float | None = None, memory_budget_gb: float | None = None,
            buckets: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Run W1 at size n on fresh parties (their first job compiles); return its measurements.

    rtt_ms puts the latency relay (bench/relay.py) between the parties; memory_budget_gb and buckets
    go to run_mpc (bucketed execution) where this checkout has it.
    """
    opts = measure.mpc_options(memory_budget_gb, buckets)
    # NB: run_mpc's default of an hour is too short for 10M on a shared 2-core machine (it timed out there once)
    opts["timeout"] = max(3600.0, 0.01 * n)
    measure.reset_peak_rss()
    t, gen_s = measure.timed(lambda: tables(n, seed))
    a, checked = prepare(query(magnitude), t, min_group_size=10, schemas=schemas(t), rules=RULES[rules])
    del t
    plain, duck_s = measure.timed(lambda: run_plain(a, checked, perturbation_key=PERTURBATION_KEY))
    with measure.cluster(rtt_ms) as (cluster, spawn_s, relay):
        rev, mpc_s, job = measure.run_job(cluster, a, checked, perturbation_key=PERTURBATION_KEY, **opts)
        coord_rss = measure.peak_rss()
        again = measure.run_job(cluster, a, checked, perturbation_key=PERTURBATION_KEY, **opts) if warm else None
        assert again is None or np.array_equal(again[0].cell_ok, rev.cell_ok)
        floor_s = measure.job_floor(cluster)
        ys = run_sort_yardstick(cluster, 2 * n) if sort_yardstick else None
        relayed = relay.bytes if relay is not None else None
    f = measure.job_fields(job)
    sort_s = ys.wall_s if ys else None
    return {
        "n": n,
        "rules": rules,
        "magnitude": magnitude,
        "rtt_ms": rtt_ms,
        "withheld": int(sum((ok != 1).sum() for ok, _ in rev.stats.values())) + int((rev.cell_ok == 0).sum()),
        "mpc_s": mpc_s,
        "duckdb_s": duck_s,
        "ratio": mpc_s / duck_s,
        **f,
        "generate_s": gen_s,
        "spawn_s": spawn_s,
        "floor_s": floor_s,
        "fixed_s": f["share_s"] + f["party_compile_s"] + floor_s,
        "coordinator_peak_rss": coord_rss,
        "relay_bytes": relayed,
        "sort_2n_s": sort_s,
        "sort_2n_run_s": max(p["run_s"] for p in ys.parties) if ys else None,
        "mpc_over_sort": mpc_s / sort_s if sort_s else None,
        "mpc_equals_plain": measure.mpc_equals_plain(rev, plain),
        "mpc_warm_s": again[1] if again else None,
        "warm_compile_s": max(p["compile_s"] for p in again[2].parties) if again else None,
        "warm_program_cached": all(p["program_cached"] for p in again[2].parties) if again else None,
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Write a log-log plot of time against n with an n log n reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = np.array([r["n"] for r in results], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.loglog(ns, [r["mpc_s"] for r in results], "o-", label="MPC (3 parties, W1)")
    ax.loglog(ns, [r["duckdb_s"] for r in results], "s-", label="DuckDB (same query)")
    if all(r["sort_2n_s"] for r in results):
        ax.loglog(ns, [r["sort_2n_s"] for r in results], "^--", label="bare SPU sort of 2n keys")
    # NB: anchored at the largest n; small runs are dominated by fixed costs (compilation).
    ref = results[-1]["mpc_s"] * (ns * np.log2(ns)) / (ns[-1] * math.log2(ns[-1]))
    ax.loglog(ns, ref, ":", color="grey", label="n log n (through the largest MPC point)")
    ax.set_xlabel("rows per table (n)")
    ax.set_ylabel("wall time (s)")
    ax.set_title("werkplaats W1: join + filter + group-by, MPC vs DuckDB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(results: list[dict[str, Any]]) -> str:
    """Return the results as Markdown: the main table, then the fixed cost per job."""
    head = ("| n | rules | RTT ms | buckets | MPC s | DuckDB s | sort 2n s | MPC ÷ sort | MB sent per party "
            "| peak RSS per party (MB) | coordinator MB | equal |\n"
            "|---:|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|")  # fmt: skip
    rows = []
    for r in results:
        srt = f"{r['sort_2n_s']:.1f}" if r["sort_2n_s"] else "-"
        over = f"{r['mpc_over_sort']:.2f}" if r.get("mpc_over_sort") else "-"
        rules = r.get("rules", "default") + (" + magnitude" if r.get("magnitude") else "")
        rtt = "direct" if r.get("rtt_ms") is None else f"{r['rtt_ms']:g}"
        coord = f"{r['coordinator_peak_rss'] / 1e6:.0f}" if r.get("coordinator_peak_rss") else "-"
        rows.append(f"| {r['n']:,} | {rules} | {rtt} | {r.get('buckets', 1)} | {r['mpc_s']:.1f} | {r['duckdb_s']:.3f} "
                    f"| {srt} | {over} | {measure.mb(r['bytes_sent'])} | {measure.mb(r['peak_rss'])} | {coord} "
                    f"| {r['mpc_equals_plain']} |")  # fmt: skip
    fixed = ["| n | RTT ms | spawn s | share s | compile s | floor s | fixed s (share + compile + floor) "
             "| warm MPC s |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        rtt = "direct" if r.get("rtt_ms") is None else f"{r['rtt_ms']:g}"
        warm = f"{r['mpc_warm_s']:.1f}" if r.get("mpc_warm_s") else "-"
        fixed.append(f"| {r['n']:,} | {rtt} | {r.get('spawn_s', 0):.1f} | {r['share_s']:.2f} "
                     f"| {r['party_compile_s']:.1f} "
                     f"| {r.get('floor_s', 0):.2f} | {r.get('fixed_s', 0):.1f} | {warm} |")  # fmt: skip
    return "\n".join([head, *rows, "", *fixed])


def main(sizes: list[int], out: Path, *, sort_yardstick: bool = True, warm: bool = False,
         rules: tuple[str, ...] = ("default",), magnitude: bool = False, rtts: tuple[float | None, ...] = (None,),
         memory_budget_gb: float | None = None, buckets: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run W1 for every size (and every rule set and RTT, one after the other), writing JSON, a PNG plot and
    a Markdown table into out/."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for n, rs, rtt in itertools.product(sizes, rules, rtts):
        r = run_one(n, sort_yardstick=sort_yardstick, warm=warm, rules=rs, magnitude=magnitude, rtt_ms=rtt,
                    memory_budget_gb=memory_budget_gb, buckets=buckets)  # fmt: skip
        results.append(r)
        print(f"n={n:>10,}  rules={rs:<10}  rtt={'direct' if rtt is None else f'{rtt:g} ms':<7} "
              f"buckets={r['buckets']:<3} MPC {r['mpc_s']:8.1f} s  DuckDB {r['duckdb_s']:7.3f} s  "
              f"sort(2n) {r['sort_2n_s'] or 0:7.1f} s  peak RSS {max(r['peak_rss']) / 1e9:.2f} GB "
              f"(coordinator {r['coordinator_peak_rss'] / 1e9:.2f})  fixed {r['fixed_s']:.1f} s "
              f"(spawn {r['spawn_s']:.1f}, share {r['share_s']:.1f}, compile {r['party_compile_s']:.1f}, "
              f"floor {r['floor_s']:.2f})  equal={r['mpc_equals_plain']}", flush=True)  # fmt: skip
        if r["mpc_warm_s"] is not None:
            print(f"           again, program from the cache: MPC {r['mpc_warm_s']:8.1f} s  "
                  f"(compile {r['party_compile_s']:.1f} s -> {r['warm_compile_s']:.2f} s, "
                  f"cached={r['warm_program_cached']})", flush=True)  # fmt: skip
        measure.save(out, "w1", results, table)
    first = [r for r in results if r["rules"] == rules[0] and r["rtt_ms"] == rtts[0]]
    plot(first, out / "w1.png")  # NB: one line per rule set would crowd it
    return results
