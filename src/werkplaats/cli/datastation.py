"""`werkplaats datastation`: serve an organisation's datastation; its steward approves, rejects and reads its log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import WerkplaatsError
from .common import fail, service_logging
from .web import station_app as web_users

app = typer.Typer(help="A datastation: an organisation's data stays here.", no_args_is_help=True)
app.add_typer(web_users, name="web-user")


def _station(config: Path) -> Any:
    from ..workspace.config import DatastationConfig
    from ..workspace.datastation import Datastation

    return Datastation(DatastationConfig.load(config))


@app.command("serve")
def ds_serve(
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    publish: Annotated[bool, typer.Option(help="Publish catalog metadata first.")] = True,
) -> None:
    """Publish the catalog entries, then take jobs from the hub."""
    service_logging()
    try:
        st = _station(config)
        if publish:
            for name in st.publish():
                logging.getLogger("werkplaats.datastation").info("published %s", name)
        if st.cfg.web is not None:  # NB: its stewards' pages, beside the job loop, server certificate only
            from ..web import create_station_web
            from ..workspace.http import serve_web

            web = st.cfg.web
            serve_web(create_station_web(st, web), web.host, web.port, st.cfg.tls, background=True)
            logging.getLogger("werkplaats.datastation").info("web pages on https://%s:%d", web.host, web.port)
        st.serve()
    except WerkplaatsError as e:
        fail(e)


@app.command("publish")
def ds_publish(config: Annotated[Path, typer.Option(help="datastation.toml")]) -> None:
    """Validate every source and publish its metadata to the hub's catalog."""
    try:
        for name in _station(config).publish():
            typer.echo(f"published {name}")
    except WerkplaatsError as e:
        fail(e)


@app.command("approve")
def ds_approve(
    request: Annotated[int, typer.Argument(help="The request id.")],
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    days: Annotated[int, typer.Option(help="The approval expires after this many days.")] = 30,
    max_runs: Annotated[int, typer.Option(help="How many times the plan may run on this approval.")] = 1,
    vary: Annotated[list[str], typer.Option(help="Template approval: a literal (JSON pointer) that may change.")] = [],  # noqa: B006
    ranges: Annotated[
        list[str],
        typer.Option(
            "--range", help="The range of a varied literal: POINTER=MIN:MAX or POINTER=V1,V2 (one for each --vary)."
        ),
    ] = [],  # noqa: B006
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Show the plan as a steward reads it (its text computed here from the plan), then sign and send the approval."""
    try:
        st = _station(config)
        rv = st.review(request)  # NB: the text shown is computed from the plan signed, never the hub's stored text
    except WerkplaatsError as e:
        fail(e)
    typer.echo(f"Request {rv.request} by {rv.requester} in collaboration {rv.collaboration!r}")
    typer.echo(f"Collaboration purpose: {rv.collaboration_purpose}")
    typer.echo(f"Purpose of this analysis: {rv.purpose}\n")
    typer.echo(rv.explain)
    typer.echo("\nLiterals (for a template approval, --vary POINTER --range POINTER=MIN:MAX):")
    for p, v in rv.literals:
        typer.echo(f"  {p} = {v!r}")
    if not yes and not typer.confirm(f"\nApprove for {st.cfg.organisation} ({max_runs} run(s), {days} days)?"):
        raise typer.Exit(1)
    try:
        from ..workspace.signing import parse_range

        rng = dict(parse_range(r) for r in ranges)
        out = st.approve(request, days=days, max_runs=max_runs, vary=list(vary) or None, ranges=rng, review=rv)
    except WerkplaatsError as e:
        fail(e)
    typer.echo(f"approved; request status: {out['status']}")


@app.command("reject")
def ds_reject(
    request: Annotated[int, typer.Argument()],
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    reason: Annotated[str, typer.Option(help="Why (shown to the requester, logged).")],
) -> None:
    """Reject a request, with a reason."""
    try:
        out = _station(config).reject(request, reason)
    except WerkplaatsError as e:
        fail(e)
    typer.echo(f"rejected; request status: {out['status']}")


@app.command("reanchor")
def ds_reanchor(
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    reason: Annotated[str, typer.Option(help="what was checked: the hub restored from which backup, by whom")],
) -> None:
    """Accept the hub's current audit head after a gap (a hub restored from a backup), logged in this node's own log."""
    from .common import reanchor

    try:
        st = _station(config)
        reanchor(st.hub, st.log, st.cfg.hub_key, reason)
    except WerkplaatsError as e:
        fail(e)


@app.command("log")
def ds_log(config: Annotated[Path, typer.Option(help="datastation.toml")]) -> None:
    """Verify and print the datastation's own contribution log."""
    from ..workspace import audit

    try:
        st = _station(config)
    except WerkplaatsError as e:
        fail(e)
    entries, problems = audit.read_log(st.log.path, st.public_key)  # NB: its chain and its head file
    for entry in entries:
        d = entry["details"]
        typer.echo(
            f"{entry['seq']:>4} {entry['ts'][:19]} {entry['action']:<13} {entry['subject']:<10} {d.get('detail', '')}"
            f"{' datasets=' + ','.join(d.get('datasets', [])) if d.get('datasets') else ''}"
        )
    typer.echo("log intact" if not problems else "PROBLEMS:\n  " + "\n  ".join(problems))
    if problems:
        raise typer.Exit(1)
