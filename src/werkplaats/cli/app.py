"""Register the werkplaats commands; each group lives in its own module."""

from __future__ import annotations

import typer

from . import bench, demo, plan, synth

app = typer.Typer(
    name="werkplaats",
    help="werkplaats: analyse joint person-level data under secure multi-party computation.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("demo")(demo.demo)
app.command("bench")(bench.bench)
app.command("synth")(synth.synth)
app.add_typer(plan.app, name="plan")


def main() -> None:
    """Run the CLI."""
    app()
