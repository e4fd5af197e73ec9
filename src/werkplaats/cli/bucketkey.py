"""`werkplaats datastation bucket-key`: a collaboration's bucket key, held by its datastations only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import WerkplaatsError
from .common import fail

app = typer.Typer(
    help="The collaboration's bucket key (bucketed jobs): create, rotate, fetch; never seen by hub or engines.",
    no_args_is_help=True,
)
Config = Annotated[Path, typer.Option(help="datastation.toml")]
Collaboration = Annotated[str, typer.Option(help="The collaboration's name.")]


@contextmanager
def _keys(config: Path) -> Iterator[Any]:
    """Open the datastation's bucket keys for the block and close them after; a WerkplaatsError exits with 1."""
    from ..workspace.bucketkey import BucketKeys
    from ..workspace.config import DatastationConfig

    try:
        keys = BucketKeys.from_config(DatastationConfig.load(config))
        try:
            yield keys
        finally:
            keys.close()
    except WerkplaatsError as e:
        fail(e)


@app.command("publish")
def bk_publish(config: Config) -> None:
    """Publish this datastation's encryption key at the hub, signed by its organisation (created the first time)."""
    with _keys(config) as keys:
        typer.echo(f"published encryption key {keys.publish_encryption_key()}")


def _create(config: Path, collaboration: str, what: str) -> None:
    with _keys(config) as keys:
        version = keys.create(collaboration)
    typer.echo(f"{what} version {version} of {collaboration}'s bucket key; sealed to each member with data")


@app.command("create")
def bk_create(config: Config, collaboration: Collaboration) -> None:
    """Create the collaboration's bucket key: 32 random bytes sealed to each member with data, signed, uploaded."""
    _create(config, collaboration, "created")


@app.command("rotate")
def bk_rotate(config: Config, collaboration: Collaboration) -> None:
    """Create the next version of the collaboration's bucket key (new jobs use it; older versions stay readable)."""
    _create(config, collaboration, "rotated to")


@app.command("fetch")
def bk_fetch(
    config: Config,
    collaboration: Collaboration,
    version: Annotated[int | None, typer.Option(help="The version (default: the newest).")] = None,
) -> None:
    """Fetch this datastation's envelope of the bucket key, check the creator's signature, decrypt and keep it."""
    with _keys(config) as keys:
        got = keys.fetch(collaboration, version)
    typer.echo(f"version {got} of {collaboration}'s bucket key checked and kept")


@app.command("list")
def bk_list(config: Config, collaboration: Collaboration) -> None:
    """List the versions of the collaboration's bucket key at the hub, and which of them this datastation holds."""
    from urllib.parse import quote

    with _keys(config) as keys:
        listed = keys.station.hub.get(f"/collaborations/{quote(collaboration, safe='')}/bucket-keys")
        here = set(keys.versions(collaboration))
    if not listed:
        typer.echo(f"{collaboration} has no bucket key yet")
    for v in listed:
        held = "held here" if v["version"] in here else "not fetched"
        typer.echo(
            f"v{v['version']:<4} by {v['creator']:<14} {v['created'][:19]}  {held}  to: {', '.join(v['recipients'])}"
        )
