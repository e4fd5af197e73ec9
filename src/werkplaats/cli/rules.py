"""`werkplaats rules`: the published parameters of the disclosure rules (docs/disclosure.md)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="The disclosure rules' published parameters.", no_args_is_help=True)


@app.command("ptable")
def ptable(
    d: Annotated[int, typer.Option("--D", help="The largest absolute noise.")] = 2,
    v: Annotated[float, typer.Option("--V", help="The noise's variance (where a row allows it).")] = 1.0,
    js: Annotated[int, typer.Option("--js", help="Counts 1..js are never released as such.")] = 0,
) -> None:
    """Print rule 6's perturbation table: per count, each noise's probability, cell keys, row mean and variance."""
    from ..compile.ptable import last_row, table
    from ..compile.rules import DisclosureRules, PTable
    from ..exceptions import PlanError

    pt = PTable(d, v, js)
    try:
        DisclosureRules(ptable=pt)  # NB: validates the parameters
    except PlanError as e:
        raise typer.BadParameter(str(e)) from None
    t = table(pt)
    typer.echo(f"Perturbation table (D={d}, V={v}, js={js}); the last row is for counts of {last_row(pt)} and more.")
    typer.echo(f"{'count':>6} {'noise':>6} {'p':>9} {'cell keys':>11} {'row mean':>9} {'row var':>8}")
    for r in t.itertuples(index=False):
        count = f"{r.i}+" if r.i_and_above else str(r.i)
        keys = f"{r.ck_from}-{r.ck_to - 1}"
        typer.echo(f"{count:>6} {r.v:>+6d} {r.p256:>5d}/256 {keys:>11} {r.row_mean:>9.4f} {r.row_var:>8.4f}")
