"""What the command groups share: error exit, service logging, the hub client from the environment."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from ..exceptions import WerkplaatsError


def fail(e: Exception) -> NoReturn:
    """Print the error (never a secret: errors name columns, counts and rules) and exit with status 1."""
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1)


def service_logging() -> None:
    """Log a long-running service to stderr, without the chatter of its libraries."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def hub_client() -> Any:
    """Return a hub client from WERKPLAATS_HUB, WERKPLAATS_TOKEN and WERKPLAATS_CA/CERT/KEY."""
    from ..workspace.http import Client
    from ..workspace.pki import TLSFiles

    url, token = os.environ.get("WERKPLAATS_HUB"), os.environ.get("WERKPLAATS_TOKEN")
    if not url or not token:
        fail(WerkplaatsError("set WERKPLAATS_HUB and WERKPLAATS_TOKEN (and WERKPLAATS_CA/CERT/KEY for TLS)"))
    env = [os.environ.get(f"WERKPLAATS_{k}") for k in ("CA", "CERT", "KEY")]
    tls = TLSFiles(*(Path(p) for p in env)) if all(env) else None  # type: ignore[arg-type]
    return Client(url, token=token, tls=tls)


def reanchor(hub: Any, node_log: Any, hub_key: str, reason: str) -> None:
    """Fetch the hub's signed audit head and accept it in a node's own log, explicitly (`... reanchor`)."""
    import getpass

    from ..workspace.messages import AuditHead

    head = AuditHead.from_dict(hub.get("/node/audit-head"))
    before = node_log.last_anchor()
    gap = node_log.gap(head, hub_key)
    entry = node_log.reanchor(head, hub_key, operator=f"operator:{getpass.getuser()}", reason=reason)
    was = f"entry {before.seq}" if before else "nothing"
    typer.echo(f"re-anchored at the hub's entry {head.seq} (kept before: {was}); {gap or 'there was no gap'}")
    typer.echo(f"logged as entry {entry['seq']} of {node_log.path}")
