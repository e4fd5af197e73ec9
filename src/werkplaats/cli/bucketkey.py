"""`werkplaats datastation bucket-key`: a collaboration's bucket key, held by its datastations only."""

from __future__ import annotations

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


def _keys(config: Path) -> Any:
    from ..workspace.bucketkey import BucketKeys
    from ..workspace.config import DatastationConfig

    return BucketKeys.from_config(DatastationConfig.load(config))


@app.command("publish")
def bk_publish(config: Config) -> None:
    """Publish this datastation's encryption key at the hub, signed by its organisation (created the first time)."""
    try:
        keys = _keys(config)
        try:
            typer.echo(f"published encryption key {keys.publish_encryption_key()}")
        finally:
            keys.close()
    except WerkplaatsError as e:
        fail(e)


def _create(config: Path, collaboration: str, what: str) -> None:
    try:
        keys = _keys(config)
        try:
            version = keys.create(collaboration)
        finally:
            keys.close()
    except WerkplaatsError as e:
        fail(e)
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
    try:
        keys = _keys(config)
        try:
            got = keys.fetch(collaboration, version)
        finally:
            keys.close()
    except WerkplaatsError as e:
        fail(e)
    typer.echo(f"version {got} of {collaboration}'s bucket key checked and kept")


@app.command("list")
def bk_list(config: Config, collaboration: Collaboration) -> None:
    """List the versions of the collaboration's bucket key at the hub, and which of them this datastation holds."""
    from urllib.parse import quote

    try:
        keys = _keys(config)
        try:
            listed = keys.station.hub.get(f"/collaborations/{quote(collaboration, safe='')}/bucket-keys")
            here = set(keys.versions(collaboration))
        finally:
            keys.close()
    except WerkplaatsError as e:
        fail(e)
    if not listed:
        typer.echo(f"{collaboration} has no bucket key yet")
    for v in listed:
        held = "held here" if v["version"] in here else "not fetched"
        typer.echo(
            f"v{v['version']:<4} by {v['creator']:<14} {v['created'][:19]}  {held}  to: {', '.join(v['recipients'])}"
        )
