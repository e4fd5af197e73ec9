"""The join methods compared in one run: W1 with the sort join, W1 with the merge join, the bare sort of 2n.

For each size n, back to back on this machine: SPU's bare quick sort of 2n keys (the yardstick,
bench/yardstick.py), W1 with the join forced to today's sort (`WERKPLAATS_JOIN=sort`) and W1 with
the merge of owner-sorted inputs (`WERKPLAATS_JOIN=merge`, kernels/merge.py). Each W1 run starts
fresh parties (they inherit the setting and compile afresh) and checks MPC == DuckDB.

    flock /tmp/werkplaats-heavy.lock .venv/bin/python -m bench.join --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from werkplaats.compile.kernels.merge import METHOD_ENV
from werkplaats.mpc.cluster import LocalCluster

from . import measure, w1
from .yardstick import run_sort_yardstick

METHODS = ("sort", "merge")


def run_size(n: int, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Return the yardstick's and each method's W1 measurements at size n."""
    with LocalCluster() as cluster:
        ys = run_sort_yardstick(cluster, 2 * n)
    out: dict[str, Any] = {"n": n, "sort_2n_s": ys.wall_s}
    before = os.environ.get(METHOD_ENV)
    try:
        for m in methods:
            os.environ[METHOD_ENV] = m
            r = w1.run_one(n, sort_yardstick=False)
            r["ratio_to_sort_2n"] = r["mpc_s"] / ys.wall_s
            out[m] = r
    finally:
        if before is None:
            os.environ.pop(METHOD_ENV, None)
        else:
            os.environ[METHOD_ENV] = before
    return out


def table(results: list[dict[str, Any]]) -> str:
    """Return the comparison as a Markdown table."""
    head = ("| n | join | W1 MPC s | party run s | compile s | ÷ bare sort of 2n | MB sent per party "
            "| peak RSS per party (MB) | equal |\n|---:|---|---:|---:|---:|---:|---|---|---|")  # fmt: skip
    rows = []
    for res in results:
        for m in METHODS:
            if m not in res:
                continue
            r = res[m]
            rows.append(f"| {res['n']:,} | {m} | {r['mpc_s']:.1f} | {r['party_run_s']:.1f} "
                        f"| {r['party_compile_s']:.1f} "
                        f"| {r['ratio_to_sort_2n']:.2f} (sort {res['sort_2n_s']:.1f} s) "
                        f"| {measure.mb(r['bytes_sent'])} | {measure.mb(r['peak_rss'])} "
                        f"| {r['mpc_equals_plain']} |")  # fmt: skip
    return "\n".join([head, *rows])


def main(sizes: list[int], out: Path, methods: tuple[str, ...] = METHODS) -> list[dict[str, Any]]:
    """Run the comparison for every size; write join.json and join.md into out/."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for n in sizes:
        res = run_size(n, methods)
        results.append(res)
        for m in methods:
            r = res[m]
            print(f"n={n:>9,}  {m:<5}  W1 {r['mpc_s']:8.1f} s  (run {r['party_run_s']:.1f} s)  "
                  f"sort(2n) {res['sort_2n_s']:7.1f} s  ratio {r['ratio_to_sort_2n']:.2f}  "
                  f"peak RSS {max(r['peak_rss']) / 1e9:.2f} GB  equal={r['mpc_equals_plain']}", flush=True)  # fmt: skip
        measure.save(out, "join", results, table)
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--out", type=Path, default=Path("bench/results/join"))
    args = p.parse_args()
    main([int(s) for s in args.sizes.split(",")], args.out, tuple(args.methods.split(",")))
