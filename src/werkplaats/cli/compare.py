"""`werkplaats compare`: one analysis on the plain (DuckDB) and the MPC executor, locally, side by side."""

from __future__ import annotations

import time
from typing import Annotated

import pandas as pd
import typer

from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE


def compare(
    persons: Annotated[int, typer.Option(help="Persons in the generated population.")] = 4000,
    min_group_size: Annotated[int, typer.Option(help="Suppress cells with fewer rows.")] = DEFAULT_MIN_GROUP_SIZE,
) -> None:
    """Generate data, run one analysis on three MPC parties and on DuckDB, and compare."""
    from ..demo import data as d
    from ..local import prepare, run_local
    from ..mpc import LocalCluster
    from ..plan.explain import explain
    from ..result import frames_agree

    tables = d.tables(persons)
    q = d.analysis()
    typer.echo("werkplaats compare — one analysis, two executors\n")
    typer.echo(f"Generated data: {', '.join(f'{k} ({len(v):,} rows)' for k, v in tables.items())}\n")
    checked, _ = prepare(q, tables, min_group_size=min_group_size)
    typer.echo(explain(checked.plan))  # NB: the checked plan: sources list the columns read
    typer.echo("\n1/2 Plain reference executor (DuckDB, all data in one place):")
    t0 = time.perf_counter()
    plain = run_local(q, tables, engine="plain", min_group_size=min_group_size)
    t_plain = time.perf_counter() - t0
    typer.echo(_show(plain))
    typer.echo("\n2/2 MPC executor: each table secret-shared by its owner; three SPU parties "
               "(ABY3, separate processes, brpc over loopback) compute on shares only:")  # fmt: skip
    t0 = time.perf_counter()
    with LocalCluster() as cluster:
        mpc = run_local(q, tables, engine="mpc", min_group_size=min_group_size, cluster=cluster)
        stats = cluster.last_stats
        logs = cluster.log_dir
    t_mpc = time.perf_counter() - t0
    typer.echo(_show(mpc))
    same = frames_agree(mpc, plain)
    typer.echo(f"\nPlain: {t_plain:.2f} s. MPC: {t_mpc:.1f} s (incl. starting the parties).")
    if stats:
        sent = ", ".join(f"party {p['rank']} {p['bytes_sent'] / 1e6:.1f} MB" for p in stats.parties)
        typer.echo(f"Data sent between parties: {sent}.")
    typer.echo(f"Results agree: {'yes' if same else 'NO'} (integers exactly; means within fixed-point tolerance).")
    typer.echo(f"Party logs: {logs}")
    exe = _command()
    typer.echo(f"\nNext: `{exe} plan example > plan.json` then `{exe} plan explain plan.json` to read a plan "
               f"as a steward does; `{exe} bench` for the W1 benchmark; docs/plans.md and docs/mpc.md "
               "for the plan format and the MPC design.")  # fmt: skip
    if not same:
        raise typer.Exit(1)


def _command() -> str:
    """Return how to call werkplaats again: the bare name if it is on PATH, else its path."""
    import shutil
    import sys
    from pathlib import Path

    exe = Path(sys.argv[0])
    if shutil.which("werkplaats") == str(exe.resolve()) or exe.name != "werkplaats":
        return "werkplaats"
    try:
        return str(exe.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def _show(df: pd.DataFrame) -> str:
    shown = df[~df["suppressed"]].drop(columns=["suppressed", "reason"])
    hidden = int(df["suppressed"].sum())
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        text = shown.to_string(index=False, float_format=lambda v: f"{v:.2f}")
    return text + f"\n({hidden} of {len(df)} cells suppressed: fewer than {df.attrs['min_group_size']} rows)"
