"""`werkplaats pki`: the workspace CA, node certificates and organisations' signing keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import WerkplaatsError
from .common import fail

app = typer.Typer(help="The workspace CA, node certificates and signing keys.", no_args_is_help=True)


@app.command("init")
def pki_init(directory: Annotated[Path, typer.Argument(help="Directory for ca.crt and ca.key.")]) -> None:
    """Create the workspace CA."""
    from ..workspace import pki

    try:
        typer.echo(f"CA certificate: {pki.init_ca(directory)}")
    except WerkplaatsError as e:
        fail(e)


@app.command("issue")
def pki_issue(
    node: Annotated[str, typer.Argument(help="Node name: the certificate's common name, e.g. hub, engine0, ds-ggd.")],
    directory: Annotated[Path, typer.Option("--dir", help="The CA directory.")] = Path("pki"),
    host: Annotated[list[str], typer.Option(help="Host names or IP addresses the node is reached at.")] = [],  # noqa: B006
    days: Annotated[int, typer.Option(help="Validity in days.")] = 365,
) -> None:
    """Issue a node certificate signed by the workspace CA."""
    from ..workspace import pki

    try:
        cert, key = pki.issue(directory, node, hosts=tuple(host) or ("127.0.0.1", "localhost"), days=days)
    except WerkplaatsError as e:
        fail(e)
    typer.echo(f"{cert}\n{key}")


@app.command("signing-key")
def pki_signing_key(path: Annotated[Path, typer.Argument(help="Where to write the Ed25519 private key.")]) -> None:
    """Create an organisation's (or the hub's) Ed25519 signing key; prints the public key to register."""
    from ..workspace import pki

    try:
        typer.echo(pki.new_signing_key(path))
    except WerkplaatsError as e:
        fail(e)


@app.command("fingerprint")
def pki_fingerprint(
    cert: Annotated[Path, typer.Argument(help="A node's certificate (PEM), e.g. pki/engine0.crt.")],
) -> None:
    """Print the SHA-256 fingerprint of a certificate's public key (SPKI): the pin a datastation or engine sets."""
    from ..workspace import pki

    try:
        typer.echo(pki.fingerprint(cert))
    except WerkplaatsError as e:
        fail(e)


@app.command("link-cert")
def pki_link_cert(
    name: Annotated[str, typer.Argument(help="The engine's link certificate name, e.g. engine0-link.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write NAME.crt and NAME.key.")] = Path("."),
    host: Annotated[list[str], typer.Option(help="Host names or IP addresses of the engine's MPC address.")] = [],  # noqa: B006
) -> None:
    """Create an engine's self-signed link certificate for its MPC links; prints its fingerprint for the peers."""
    from ..workspace import pki

    try:
        cert, key = pki.link_certificate(directory, name, hosts=tuple(host) or ("127.0.0.1",))
        typer.echo(f"{cert}\n{key}\nspki_sha256 = {pki.fingerprint(cert)}")
    except WerkplaatsError as e:
        fail(e)
