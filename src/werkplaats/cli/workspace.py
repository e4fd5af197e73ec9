"""CLI of the workspace services: pki, hub, datastation, engine, audit, request."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import WerkplaatsError

pki_app = typer.Typer(help="The workspace CA, node certificates and signing keys.", no_args_is_help=True)
hub_app = typer.Typer(help="The hub: catalog, requests, approvals, jobs, results, audit log.", no_args_is_help=True)
ds_app = typer.Typer(help="A datastation: an organisation's data stays here.", no_args_is_help=True)
engine_app = typer.Typer(help="An engine: one of the three MPC compute parties.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log (verwerkingsregister).", no_args_is_help=True)
request_app = typer.Typer(
    help="Analysis requests at the hub (uses WERKPLAATS_HUB, WERKPLAATS_TOKEN, WERKPLAATS_CA/CERT/KEY).",
    no_args_is_help=True,
)


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# -- pki ------------------------------------------------------------------------------------


@pki_app.command("init")
def pki_init(directory: Annotated[Path, typer.Argument(help="Directory for ca.crt and ca.key.")]) -> None:
    """Create the workspace CA."""
    from ..workspace import pki

    try:
        typer.echo(f"CA certificate: {pki.init_ca(directory)}")
    except WerkplaatsError as e:
        _fail(e)


@pki_app.command("issue")
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
        _fail(e)
    typer.echo(f"{cert}\n{key}")


@pki_app.command("signing-key")
def pki_signing_key(path: Annotated[Path, typer.Argument(help="Where to write the Ed25519 private key.")]) -> None:
    """Create an organisation's (or the hub's) Ed25519 signing key; prints the public key to register."""
    from ..workspace import pki

    try:
        typer.echo(pki.new_signing_key(path))
    except WerkplaatsError as e:
        _fail(e)


# -- hub ------------------------------------------------------------------------------------


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
    )


@hub_app.command("init")
def hub_init(
    config: Annotated[Path, typer.Option(help="hub.toml")],
    admin: Annotated[str, typer.Option(help="Name of the first admin user.")] = "admin",
) -> None:
    """Create (or migrate) the hub's database and its first admin; prints the admin's token once."""
    try:
        _, hub = _hub(config)
        typer.echo(hub.create_admin(admin))
    except (WerkplaatsError, ValueError) as e:
        _fail(e)


@hub_app.command("serve")
def hub_serve(config: Annotated[Path, typer.Option(help="hub.toml")]) -> None:
    """Run the hub over HTTPS with mutual TLS."""
    from ..workspace.http import serve
    from ..workspace.hub import create_app

    _logging()
    try:
        cfg, hub = _hub(config)
    except WerkplaatsError as e:
        _fail(e)
    logging.getLogger("werkplaats.hub").info(
        "hub %s on https://%s:%d (%s)", cfg.name, cfg.host, cfg.port, cfg.database.split("://")[0]
    )
    serve(create_app(hub), cfg.host, cfg.port, cfg.tls)


@hub_app.command("openapi")
def hub_openapi(out: Annotated[Path, typer.Option(help="Where to write the OpenAPI document.")] = Path("-")) -> None:
    """Write the hub's OpenAPI specification."""
    from ..workspace.openapi import spec

    text = json.dumps(spec(), indent=1, sort_keys=True) + "\n"
    if str(out) == "-":
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


# -- datastation -----------------------------------------------------------------------------


def _station(config: Path) -> Any:
    from ..workspace.config import DatastationConfig
    from ..workspace.datastation import Datastation

    return Datastation(DatastationConfig.load(config))


@ds_app.command("serve")
def ds_serve(
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    publish: Annotated[bool, typer.Option(help="Publish catalog metadata first.")] = True,
) -> None:
    """Publish the catalog entries, then take jobs from the hub."""
    _logging()
    try:
        st = _station(config)
        if publish:
            for name in st.publish():
                logging.getLogger("werkplaats.datastation").info("published %s", name)
        st.serve()
    except WerkplaatsError as e:
        _fail(e)


@ds_app.command("publish")
def ds_publish(config: Annotated[Path, typer.Option(help="datastation.toml")]) -> None:
    """Validate every source and publish its metadata to the hub's catalog."""
    try:
        for name in _station(config).publish():
            typer.echo(f"published {name}")
    except WerkplaatsError as e:
        _fail(e)


@ds_app.command("approve")
def ds_approve(
    request: Annotated[int, typer.Argument(help="The request id.")],
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    days: Annotated[int, typer.Option(help="The approval expires after this many days.")] = 30,
    max_runs: Annotated[int, typer.Option(help="How many times the plan may run on this approval.")] = 1,
    vary: Annotated[list[str], typer.Option(help="Template approval: a literal (JSON pointer) that may change.")] = [],  # noqa: B006
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Show the plan as a steward reads it, then sign and send the approval."""
    from ..workspace.signing import literals

    try:
        st = _station(config)
        c = st.steward()
        r = c.get(f"/requests/{request}")
        collab: dict[str, Any] = next((x for x in c.get("/collaborations") if x["name"] == r["collaboration"]), {})
        c.close()
    except WerkplaatsError as e:
        _fail(e)
    typer.echo(f"Request {r['id']} by {r['requester']} in collaboration {r['collaboration']!r}")
    typer.echo(f"Collaboration purpose: {collab.get('purpose', '')}")
    typer.echo(f"Purpose of this analysis: {r['purpose']}\n")
    typer.echo(r["explain"])
    typer.echo("\nLiterals (for a template approval, --vary POINTER):")
    for p, v in literals(r["plan"]):
        typer.echo(f"  {p} = {v!r}")
    if not yes and not typer.confirm(f"\nApprove for {st.cfg.organisation} ({max_runs} run(s), {days} days)?"):
        raise typer.Exit(1)
    try:
        out = st.approve(request, days=days, max_runs=max_runs, vary=list(vary) or None)
    except WerkplaatsError as e:
        _fail(e)
    typer.echo(f"approved; request status: {out['status']}")


@ds_app.command("reject")
def ds_reject(
    request: Annotated[int, typer.Argument()],
    config: Annotated[Path, typer.Option(help="datastation.toml")],
    reason: Annotated[str, typer.Option(help="Why (shown to the requester, logged).")],
) -> None:
    """Reject a request, with a reason."""
    try:
        out = _station(config).reject(request, reason)
    except WerkplaatsError as e:
        _fail(e)
    typer.echo(f"rejected; request status: {out['status']}")


@ds_app.command("log")
def ds_log(config: Annotated[Path, typer.Option(help="datastation.toml")]) -> None:
    """Verify and print the datastation's own contribution log."""
    from ..workspace import audit

    try:
        st = _station(config)
    except WerkplaatsError as e:
        _fail(e)
    entries = st.log.entries()
    problems = audit.verify_chain(entries, {st.cfg.organisation: st.public_key})
    for entry in entries:
        d = entry["details"]
        typer.echo(
            f"{entry['seq']:>4} {entry['ts'][:19]} {entry['action']:<13} {entry['subject']:<10} {d.get('detail', '')}"
            f"{' datasets=' + ','.join(d.get('datasets', [])) if d.get('datasets') else ''}"
        )
    typer.echo("log intact" if not problems else "PROBLEMS:\n  " + "\n  ".join(problems))
    if problems:
        raise typer.Exit(1)


# -- engine ---------------------------------------------------------------------------------------


@engine_app.command("serve")
def engine_serve(
    config: Annotated[Path, typer.Option(help="engine.toml")], party: Annotated[int, typer.Option(help="0, 1 or 2")]
) -> None:
    """Run one compute party: share inbox (HTTPS) and MPC link (brpc), both mutual TLS."""
    from ..workspace.config import EngineConfig
    from ..workspace.engine import Engine

    _logging()
    try:
        Engine(EngineConfig.load(config, party)).serve()
    except WerkplaatsError as e:
        _fail(e)


# -- client side: audit and requests -------------------------------------------------------------------


def _client() -> Any:
    from ..workspace.http import Client
    from ..workspace.pki import TLSFiles

    url, token = os.environ.get("WERKPLAATS_HUB"), os.environ.get("WERKPLAATS_TOKEN")
    if not url or not token:
        _fail(WerkplaatsError("set WERKPLAATS_HUB and WERKPLAATS_TOKEN (and WERKPLAATS_CA/CERT/KEY for TLS)"))
    env = [os.environ.get(f"WERKPLAATS_{k}") for k in ("CA", "CERT", "KEY")]
    tls = TLSFiles(*(Path(p) for p in env)) if all(env) else None  # type: ignore[arg-type]
    return Client(url, token=token, tls=tls)  # type: ignore[arg-type]


@audit_app.command("verify")
def audit_verify(
    file: Annotated[Path | None, typer.Option(help="A JSON audit dump (entries, keys) instead of the hub.")] = None,
) -> None:
    """Check the hash chain and every signature; name each changed, removed or reordered entry."""
    from ..workspace import audit

    try:
        doc = json.loads(file.read_text()) if file else _client().get("/audit")
    except WerkplaatsError as e:
        _fail(e)
    problems = audit.verify_chain(doc["entries"], doc["keys"])
    if problems:
        typer.echo(f"audit log BROKEN ({len(problems)} problem(s)):")
        for p in problems:
            typer.echo(f"  {p}")
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {len(doc['entries'])} entries, chain and signatures verified")


@audit_app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path, typer.Option(help="Output file; - for stdout.")] = Path("-"),
) -> None:
    """Write the processing register: who, what, which datasets and columns, purpose, when, approved by whom."""
    from ..workspace import audit

    if fmt not in ("csv", "json"):
        _fail(WerkplaatsError("--format must be csv or json"))
    try:
        text = audit.export(_client().get("/audit")["entries"], fmt)
    except WerkplaatsError as e:
        _fail(e)
    if str(out) == "-":
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


@request_app.command("submit")
def request_submit(
    plan: Annotated[Path, typer.Argument(help="Plan JSON file.")],
    collaboration: Annotated[str, typer.Option()],
    purpose: Annotated[str, typer.Option()],
) -> None:
    """Submit a plan as an analysis request."""
    try:
        r = _client().post(
            "/requests", {"collaboration": collaboration, "purpose": purpose, "plan": json.loads(plan.read_text())}
        )
    except WerkplaatsError as e:
        _fail(e)
    typer.echo(f"request {r['id']}: {r['status']}; needs approval of {', '.join(r['pending'])}")


@request_app.command("list")
def request_list() -> None:
    """The requests of your collaborations."""
    try:
        for r in _client().get("/requests"):
            last = r["jobs"][-1]["state"] if r["jobs"] else "-"
            typer.echo(f"{r['id']:>4}  {r['status']:<17} job:{last:<10} {r['collaboration']:<24} {r['purpose'][:50]}")
    except WerkplaatsError as e:
        _fail(e)


@request_app.command("show")
def request_show(request: Annotated[int, typer.Argument()]) -> None:
    """A request: plan as a steward reads it, approvals, jobs."""
    try:
        r = _client().get(f"/requests/{request}")
    except WerkplaatsError as e:
        _fail(e)
    typer.echo(f"request {r['id']} ({r['status']}) by {r['requester']} in {r['collaboration']}: {r['purpose']}\n")
    typer.echo(r["explain"])
    for org, a in r["approvals"].items():
        typer.echo(
            f"approved by {org} ({a['by']}): {a['body']['mode']}, until {a['body']['expires'][:10]}, "
            f"{a['body']['max_runs']} run(s)"
        )
    for org, x in r["rejections"].items():
        typer.echo(f"rejected by {org} ({x['by']}): {x['reason']}")
    for j in r["jobs"]:
        typer.echo(f"job {j['id']}: {j['state']} {j['reason']}")


@request_app.command("run")
def request_run(
    request: Annotated[int, typer.Argument()], wait: Annotated[bool, typer.Option(help="Wait for the result.")] = True
) -> None:
    """Start a job for an approved request (and wait for its result)."""
    import time

    from ..workspace.messages import JobState

    c = _client()
    try:
        job = c.post(f"/requests/{request}/run")["job"]
        typer.echo(f"job {job} started")
        while wait:
            j = c.get(f"/jobs/{job}")
            if JobState(j["state"]).ended:
                typer.echo(f"job {job}: {j['state']} {j['reason']}")
                if j["state"] == JobState.FAILED:
                    raise typer.Exit(1)
                break
            time.sleep(0.5)
    except WerkplaatsError as e:
        _fail(e)


@request_app.command("result")
def request_result(
    request: Annotated[int, typer.Argument()],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """The released aggregate of a request."""
    import pandas as pd

    try:
        r = _client().get(f"/requests/{request}/result")
    except WerkplaatsError as e:
        _fail(e)
    df = pd.DataFrame(r["rows"], columns=r["columns"])
    if fmt == "json":
        typer.echo(json.dumps(r["rows"], indent=1, default=str))
    elif fmt == "csv":
        typer.echo(df.to_csv(index=False), nl=False)
    else:
        typer.echo(df.to_string(index=False))
