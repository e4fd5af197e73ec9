"""`werkplaats audit`: verify and export the hub's audit log (verwerkingsregister)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import WerkplaatsError
from .common import fail, hub_client

app = typer.Typer(help="The audit log (verwerkingsregister).", no_args_is_help=True)


@app.command("verify")
def audit_verify(
    file: Annotated[Path | None, typer.Option(help="A JSON audit dump (entries, keys) instead of the hub.")] = None,
) -> None:
    """Check the hash chain and every signature; name each changed, removed or reordered entry."""
    from ..workspace import audit

    try:
        doc = json.loads(file.read_text()) if file else hub_client().get("/audit")
    except WerkplaatsError as e:
        fail(e)
    problems = audit.verify_chain(doc["entries"], doc["keys"])
    if problems:
        typer.echo(f"audit log BROKEN ({len(problems)} problem(s)):")
        for p in problems:
            typer.echo(f"  {p}")
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {len(doc['entries'])} entries, chain and signatures verified")


@app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path, typer.Option(help="Output file; - for stdout.")] = Path("-"),
) -> None:
    """Write the processing register: who, what, which datasets and columns, purpose, when, approved by whom."""
    from ..workspace import audit

    if fmt not in ("csv", "json"):
        fail(WerkplaatsError("--format must be csv or json"))
    try:
        text = audit.export(hub_client().get("/audit")["entries"], fmt)
    except WerkplaatsError as e:
        fail(e)
    if str(out) == "-":
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
