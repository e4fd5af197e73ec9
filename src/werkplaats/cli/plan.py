"""`werkplaats plan ...`: read, check and explain plan files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import PlanError
from ..plan.nodes import Plan

app = typer.Typer(help="Inspect analysis plans (canonical JSON, format werkplaats.plan/1).",
                  no_args_is_help=True)  # fmt: skip

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A plan JSON file.")]


def _load(path: Path) -> Plan:
    from ..compile.analyze import check_structure
    from ..plan.serde import plan_from_json

    try:
        plan = plan_from_json(path.read_bytes())
        check_structure(plan)
        return plan
    except PlanError as e:
        typer.echo(f"error: {path}: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def explain(path: FileArg) -> None:
    """Print the plan in plain language, as a data steward reads it."""
    from ..plan.explain import explain as render

    typer.echo(render(_load(path)))


@app.command("hash")
def hash_(path: FileArg) -> None:
    """Print the plan hash (SHA-256 of the canonical JSON) that approvals sign."""
    from ..plan.serde import plan_hash

    typer.echo(plan_hash(_load(path)))


@app.command()
def validate(path: FileArg) -> None:
    """Check a plan file against the published JSON Schema and refuse row-level outputs."""
    _load(path)
    typer.echo(f"{path}: valid werkplaats.plan/1 (columns and types are checked against the catalog when it runs)")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the plan format."""
    from ..plan.serde import plan_json_schema

    typer.echo(json.dumps(plan_json_schema(), indent=2, sort_keys=True))


@app.command()
def example() -> None:
    """Print the demo analysis as canonical JSON, checked and pruned against the demo's schemas."""
    from ..demo.data import analysis, tables
    from ..local import prepare
    from ..plan.serde import canonical_json

    checked, _ = prepare(analysis(), tables(1000))  # NB: enough rows for rule 8's groups per row
    typer.echo(canonical_json(checked.plan))
