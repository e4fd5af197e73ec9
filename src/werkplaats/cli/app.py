"""Register the werkplaats commands; each group lives in its own module."""

from __future__ import annotations

import typer

from . import bench, compare, demo, plan, synth, workspace

app = typer.Typer(
    name="werkplaats",
    help="werkplaats: analyse joint person-level data under secure multi-party computation.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("demo")(demo.demo)
app.command("compare")(compare.compare)
app.command("bench")(bench.bench)
app.command("synth")(synth.synth)
app.add_typer(plan.app, name="plan")
app.add_typer(workspace.pki_app, name="pki")
app.add_typer(workspace.hub_app, name="hub")
app.add_typer(workspace.ds_app, name="datastation")
app.add_typer(workspace.engine_app, name="engine")
app.add_typer(workspace.audit_app, name="audit")
app.add_typer(workspace.request_app, name="request")


def main() -> None:
    """Run the CLI."""
    app()
