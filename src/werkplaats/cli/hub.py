"""`werkplaats hub`: create, serve and describe the hub."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import WerkplaatsError
from .common import fail, service_logging
from .web import hub_app as web_users

app = typer.Typer(help="The hub: catalog, requests, approvals, jobs, results, audit log.", no_args_is_help=True)
app.add_typer(web_users, name="web-user")


def _hub(config: Path) -> Any:
    from ..workspace import pki
    from ..workspace.config import HubConfig
    from ..workspace.hub import Hub

    cfg = HubConfig.load(config)
    cfg.tls.check(cfg.name)
    return cfg, Hub(
        cfg.database,
        name=cfg.name,
        signing_key=pki.load_signing_key(cfg.signing_key),
        heartbeat_timeout_s=cfg.heartbeat_timeout_s,
        share_timeout_s=cfg.share_timeout_s,
        approval_limits=cfg.approval_limits,
        disclosure=cfg.disclosure,
        jobs=cfg.jobs,
    )


@app.command("init")
def hub_init(
    config: Annotated[Path, typer.Option(help="hub.toml")],
    admin: Annotated[str, typer.Option(help="Name of the first admin user.")] = "admin",
) -> None:
    """Create (or migrate) the hub's database and its first admin; prints the admin's token once."""
    try:
        _, hub = _hub(config)
        typer.echo(hub.create_admin(admin))
    except (WerkplaatsError, ValueError) as e:
        fail(e)


@app.command("serve")
def hub_serve(config: Annotated[Path, typer.Option(help="hub.toml")]) -> None:
    """Run the hub over HTTPS with mutual TLS."""
    from ..workspace.http import serve
    from ..workspace.hub import create_app

    service_logging()
    try:
        cfg, hub = _hub(config)
    except WerkplaatsError as e:
        fail(e)
    logging.getLogger("werkplaats.hub").info(
        "hub %s on https://%s:%d (%s)", cfg.name, cfg.host, cfg.port, cfg.database.split("://")[0]
    )
    if cfg.web is not None:  # NB: the people's pages: their own listener, server certificate only
        from ..web import create_hub_web
        from ..workspace.http import serve_web

        serve_web(create_hub_web(hub, cfg.web), cfg.web.host, cfg.web.port, cfg.tls, background=True)
        logging.getLogger("werkplaats.hub").info("web pages on https://%s:%d", cfg.web.host, cfg.web.port)
    serve(create_app(hub), cfg.host, cfg.port, cfg.tls)


@app.command("openapi")
def hub_openapi(out: Annotated[Path, typer.Option(help="Where to write the OpenAPI document.")] = Path("-")) -> None:
    """Write the hub's OpenAPI specification."""
    from ..workspace.openapi import spec

    text = json.dumps(spec(), indent=1, sort_keys=True) + "\n"
    if str(out) == "-":
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
