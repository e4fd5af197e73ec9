"""`werkplaats audit`: verify and export the hub's audit log (verwerkingsregister)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exceptions import WerkplaatsError
from .common import fail, hub_client

app = typer.Typer(help="The audit log (verwerkingsregister).", no_args_is_help=True)


@app.command("verify")
def audit_verify(
    file: Annotated[Path | None, typer.Option(help="A JSON audit dump (entries, keys) instead of the hub.")] = None,
    hub_key: Annotated[
        Path | None,
        typer.Option(
            envvar="WERKPLAATS_HUB_KEY",
            help="The hub's public audit key as pinned at setup (a file, e.g. keys/hub.pub); "
            "by default the one a node configuration in --anchors pins.",
        ),
    ] = None,
    anchors: Annotated[
        list[Path] | None,
        typer.Option(
            "--anchors",
            help="A node's configuration (datastation.toml, engine.toml), its directory or state directory, "
            "or its log (contributions.jsonl, runs.jsonl); repeat for each node.",
        ),
    ] = None,
) -> None:
    """Check the chain and every signature with the pinned hub key; cross-check it against the nodes' own logs.

    Names each changed, removed or reordered entry, entries cut from the end (a head a node
    saw beyond the chain's end), node logs that are not intact, and contributions one side
    logged and the other lacks.
    """
    from ..workspace import audit, register

    logs, pinned, org_keys = _anchors(anchors or [])
    if hub_key is not None:
        if not hub_key.is_file():
            fail(WerkplaatsError(f"--hub-key: {str(hub_key)!r} does not exist"))
        pinned = hub_key.read_text().strip()
    if not pinned:
        fail(
            WerkplaatsError("no pinned hub key: give --hub-key FILE (keys/hub.pub) or a node configuration pinning it")
        )
    try:
        doc = json.loads(file.read_text()) if file else hub_client().get("/audit")
    except (WerkplaatsError, OSError, ValueError) as e:
        fail(WerkplaatsError(f"could not read the audit log: {e}"))
    entries = doc["entries"]
    hub_names = {str(e.get("node", "")) for e in entries}
    served = {k: v for k, v in doc.get("keys", {}).items() if k not in hub_names}
    problems = register.verify_hub_chain(entries, pinned, served | org_keys)
    for name in sorted(hub_names):
        other = doc.get("keys", {}).get(name)
        if other and other != pinned:
            fp, pin = audit.key_fingerprint(other), audit.key_fingerprint(pinned)
            problems.append(f"the hub serves audit key {fp} for {name!r}, not the pinned key {pin}")
    problems += register.cross_check(entries, pinned, logs)
    if problems:
        verdict = "REFUSED" if problems[0].startswith("refused") else "BROKEN"
        typer.echo(f"audit log {verdict} ({len(problems)} problem(s)):")
        for p in problems:
            typer.echo(f"  {p}")
        raise typer.Exit(1)
    typer.echo(
        f"audit log intact: {len(entries)} entries, chain and signatures verified with the pinned hub key "
        f"{audit.key_fingerprint(pinned)}; cross-checked against {len(logs)} node log(s)"
    )


def _anchors(paths: list[Path]) -> tuple[list[Any], str, dict[str, str]]:
    """Read the nodes' own logs; return them, the hub key a node configuration pins, the pinned organisation keys.

    A directory stands for the node configurations in it and one level below (the demo's
    nodes/), or else for the logs below it.
    """
    from ..workspace import register

    logs: list[register.NodeLog] = []
    hub_key, org_keys = "", dict[str, str]()
    try:
        for p in paths:
            if p.is_dir():
                configs = [c for c in (*sorted(p.glob("*.toml")), *sorted(p.glob("*/*.toml"))) if _node_kind(c)]
                found = sorted((*p.rglob("contributions.jsonl"), *p.rglob("runs.jsonl")))
                if not configs and not found:
                    raise WerkplaatsError(
                        f"--anchors: no node configuration or log (contributions.jsonl, runs.jsonl) in {p}"
                    )
                if not configs:
                    logs += [register.NodeLog.read(f) for f in found]
            elif p.is_file():
                configs = [p] if p.suffix == ".toml" else []
                if not configs:
                    logs.append(register.NodeLog.read(p))
            else:
                raise WerkplaatsError(f"--anchors: {p} does not exist")
            for c in configs:
                log, key, org = _config_log(c)
                logs.append(log)
                hub_key = hub_key or key
                org_keys |= org
    except (WerkplaatsError, tomllib.TOMLDecodeError) as e:
        fail(e)
    return logs, hub_key, org_keys


def _node_kind(path: Path) -> str:
    """Return 'datastation' or 'engine' for a node configuration file, '' for any other file."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    return next((k for k in ("datastation", "engine") if k in doc), "")


def _config_log(path: Path) -> tuple[Any, str, dict[str, str]]:
    """Read the log a node configuration names; return it, the hub key it pins and its organisation's key."""
    from ..workspace import pki, register
    from ..workspace.config import DatastationConfig, EngineConfig

    kind = _node_kind(path)
    if kind == "datastation":
        ds = DatastationConfig.load(path)
        pub = pki.public_key_b64(pki.load_signing_key(ds.signing_key))
        log = register.NodeLog.read(ds.state_dir / "contributions.jsonl", public_key=pub, name=ds.organisation)
        return log, ds.hub_key, {ds.organisation: pub}
    if kind == "engine":
        eng = EngineConfig.load(path)
        return register.NodeLog.read(eng.state_dir / "runs.jsonl", name=eng.name), eng.hub_key, {}
    raise WerkplaatsError(f"--anchors: {path} is neither a datastation nor an engine configuration")


@app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    out: Annotated[Path, typer.Option(help="Output file; - for stdout.")] = Path("-"),
) -> None:
    """Write the processing register: who, what, which datasets and columns, purpose, when, approved by whom."""
    from ..workspace import register

    if fmt not in ("csv", "json"):
        fail(WerkplaatsError("--format must be csv or json"))
    try:
        text = register.export(hub_client().get("/audit")["entries"], fmt)
    except WerkplaatsError as e:
        fail(e)
    if str(out) == "-":
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
