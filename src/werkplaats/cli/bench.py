"""`werkplaats bench`: run the W1 or W2 benchmark (code in the repository's bench/)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

WORKLOADS = ("w1", "w2", "hotspots")


def _bench_module(workload: str = "w1"):
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        if (base / "bench" / f"{workload}.py").is_file():
            sys.path.insert(0, str(base))
            return importlib.import_module(f"bench.{workload}")
    msg = f"bench/{workload}.py not found: run `werkplaats bench` from a checkout of the repository"
    raise typer.BadParameter(msg)


def _sizes(text: str) -> list[int]:
    """Read "10K,100K,1M" (or plain numbers) as sizes."""
    out = []
    for part in (p.strip().upper().replace("_", "") for p in text.split(",") if p.strip()):
        mult = {"K": 1_000, "M": 1_000_000}.get(part[-1], 1)
        try:
            out.append(int(float(part[:-1] if mult > 1 else part) * mult))
        except ValueError:
            msg = f"--sizes: not a size: {part!r} (e.g. 10000, 10K, 1M)"
            raise typer.BadParameter(msg) from None
    return out


def _rtts(text: str) -> tuple[float | None, ...]:
    """Read "direct,10" as round-trip times in ms (None: no relay)."""
    out: list[float | None] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        try:
            out.append(None if part in ("direct", "none") else float(part))
        except ValueError:
            msg = f"--rtt-ms: not a round-trip time: {part!r} (e.g. direct,10)"
            raise typer.BadParameter(msg) from None
    return tuple(out) or (None,)


def bench(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated table sizes n (hotspots: residents), e.g. 10K,100K,1M,10M.")
    ] = "10000,100000,1000000",
    out: Annotated[Path, typer.Option(help="Directory for w1.json, w1.png and w1.md (W2: w2.json and w2.md).")] = Path(
        "bench/results"
    ),
    workload: Annotated[
        str,
        typer.Option(
            help="w1: join + filter + group-by; w2: logistic regression with 10 predictors over a left join; "
            "hotspots: the demo's hotspot analysis on a synthetic region of n residents (docs/benchmarks.md)."
        ),
    ] = "w1",
    sort_yardstick: Annotated[bool, typer.Option(help="Also time a bare SPU sort of 2n keys.")] = True,
    warm: Annotated[
        bool, typer.Option(help="Also rerun each job on the same parties, with the compiled program from their cache.")
    ] = False,
    rules: Annotated[
        str,
        typer.Option(
            help="Comma-separated disclosure rule sets to run each size with: default, cells-only "
            "(every rule off but the cell rule); e.g. 'cells-only,default' to compare."
        ),
    ] = "default",
    magnitude: Annotated[
        bool, typer.Option(help="Add a sum of a magnitude column (dominance and p% rules) to the query.")
    ] = False,
    rtt_ms: Annotated[
        str,
        typer.Option(
            help="W1: comma-separated round-trip times to add between the parties with a delaying TCP relay "
            "(bench/relay.py), each run in turn; 'direct' for no relay, e.g. 'direct,10'."
        ),
    ] = "direct",
    memory_budget_gb: Annotated[
        float | None, typer.Option(help="Each party's memory budget (bucketed execution; default run_mpc's).")
    ] = None,
    buckets: Annotated[
        int | None, typer.Option(help="Force this many buckets (a power of two; 1: unbucketed).")
    ] = None,
) -> None:
    """Workload W1 (MPC vs DuckDB on join + filter + group-by) or W2 (MPC vs statsmodels on a logistic
    regression over a left join), for each n."""
    if workload not in WORKLOADS:
        msg = f"--workload: unknown workload {workload!r}; known: {list(WORKLOADS)}"
        raise typer.BadParameter(msg)
    ns = _sizes(sizes)
    rtts = _rtts(rtt_ms)
    if workload == "hotspots":
        hs = _bench_module("hotspots")
        hs.main(ns, out, memory_budget_gb=memory_budget_gb, buckets=buckets)
        typer.echo(f"\nWrote {out / 'hotspots.json'} and {out / 'hotspots.md'}")
        return
    if workload == "w2":
        if rules != "default" or magnitude:
            msg = "--rules and --magnitude are W1's; W2 runs a model under the default rules"
            raise typer.BadParameter(msg)
        w2 = _bench_module("w2")
        w2.main(ns, out, sort_yardstick=sort_yardstick, warm=warm)
        typer.echo(f"\nWrote {out / 'w2.json'} and {out / 'w2.md'}")
        return
    w1 = _bench_module()
    sets = tuple(r.strip() for r in rules.split(",") if r.strip())
    unknown = [r for r in sets if r not in w1.RULES]
    if unknown or not sets:
        msg = f"--rules: unknown rule set(s) {unknown}; known: {sorted(w1.RULES)}"
        raise typer.BadParameter(msg)
    w1.main(ns, out, sort_yardstick=sort_yardstick, warm=warm, rules=sets, magnitude=magnitude, rtts=rtts,
            memory_budget_gb=memory_budget_gb, buckets=buckets)  # fmt: skip
    typer.echo(f"\nWrote {out / 'w1.json'}, {out / 'w1.png'} and {out / 'w1.md'}")
