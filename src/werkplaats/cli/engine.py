"""`werkplaats engine`: serve one of the three MPC engines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import WerkplaatsError
from .common import fail, service_logging

app = typer.Typer(help="An engine: one of the three MPC compute parties.", no_args_is_help=True)


@app.command("serve")
def engine_serve(
    config: Annotated[Path, typer.Option(help="engine.toml")], party: Annotated[int, typer.Option(help="0, 1 or 2")]
) -> None:
    """Run one compute party: share inbox (HTTPS) and MPC link (brpc), both mutual TLS."""
    from ..workspace.config import EngineConfig
    from ..workspace.engine import Engine

    service_logging()
    try:
        Engine(EngineConfig.load(config, party)).serve()
    except WerkplaatsError as e:
        fail(e)


@app.command("reanchor")
def engine_reanchor(
    config: Annotated[Path, typer.Option(help="engine.toml")],
    party: Annotated[int, typer.Option(help="0, 1 or 2")],
    reason: Annotated[str, typer.Option(help="what was checked: the hub restored from which backup, by whom")],
) -> None:
    """Accept the hub's current audit head after a gap (a hub restored from a backup), logged in the ledger."""
    from ..workspace.config import EngineConfig
    from ..workspace.engine import Engine
    from .common import reanchor

    try:
        e = Engine(EngineConfig.load(config, party))
        reanchor(e.hub, e.ledger, e.cfg.hub_key, reason)
    except WerkplaatsError as err:
        fail(err)
