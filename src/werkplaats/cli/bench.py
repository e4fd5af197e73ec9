"""`werkplaats bench`: run the W1 or W2 benchmark (code in the repository's bench/)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

WORKLOADS = ("w1", "w2")


def _bench_module(workload: str = "w1"):
    for base in (Path.cwd(), *Path(__file__).resolve().parents):
        if (base / "bench" / f"{workload}.py").is_file():
            sys.path.insert(0, str(base))
            return importlib.import_module(f"bench.{workload}")
    msg = f"bench/{workload}.py not found: run `werkplaats bench` from a checkout of the repository"
    raise typer.BadParameter(msg)


def bench(
    sizes: Annotated[str, typer.Option(help="Comma-separated table sizes n.")] = "10000,100000,1000000",
    out: Annotated[Path, typer.Option(help="Directory for w1.json, w1.png and w1.md (W2: w2.json and w2.md).")] = Path(
        "bench/results"
    ),
    workload: Annotated[
        str,
        typer.Option(
            help="w1: join + filter + group-by; w2: logistic regression with 10 predictors over a left join "
            "(docs/benchmarks.md)."
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
) -> None:
    """Workload W1 (MPC vs DuckDB on join + filter + group-by) or W2 (MPC vs statsmodels on a logistic
    regression over a left join), for each n."""
    if workload not in WORKLOADS:
        msg = f"--workload: unknown workload {workload!r}; known: {list(WORKLOADS)}"
        raise typer.BadParameter(msg)
    ns = [int(s.replace("_", "")) for s in sizes.split(",") if s.strip()]
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
    w1.main(ns, out, sort_yardstick=sort_yardstick, warm=warm, rules=sets, magnitude=magnitude)
    typer.echo(f"\nWrote {out / 'w1.json'}, {out / 'w1.png'} and {out / 'w1.md'}")
