"""Register the werkplaats commands; each group lives in its own module."""

from __future__ import annotations

import typer

from . import audit, bench, bucketkey, compare, datastation, demo, engine, hub, pki, plan, request, rules, synth

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
app.add_typer(pki.app, name="pki")
app.add_typer(hub.app, name="hub")
datastation.app.add_typer(bucketkey.app, name="bucket-key")
app.add_typer(datastation.app, name="datastation")
app.add_typer(engine.app, name="engine")
app.add_typer(audit.app, name="audit")
app.add_typer(request.app, name="request")
app.add_typer(rules.app, name="rules")


def main() -> None:
    """Run the CLI."""
    app()
