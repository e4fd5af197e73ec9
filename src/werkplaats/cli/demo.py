"""`werkplaats demo`: a whole workspace on this machine, one analysis through it, step by step."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer


def _say(step: str, text: str = "") -> None:
    typer.secho(f"\n{step}", bold=True)
    if text:
        typer.echo(text)


def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where the workspace lives (default: a new temporary directory).")
    ] = None,
    persons: Annotated[int, typer.Option(help="Residents of the generated region.")] = 50_000,
    once: Annotated[bool, typer.Option("--once", help="Exit when done instead of keeping the hub running.")] = False,
) -> None:
    """Start hub, three engines and four datastations as processes (mutual TLS), run the hotspot analysis."""
    import werkplaats as wp

    from .. import usecases as uc
    from ..demo.workspace import COLLABORATION, PURPOSE, LocalWorkspace
    from ..workspace.config import DatastationConfig
    from ..workspace.datastation import Datastation
    from ..workspace.register import verify_hub_chain

    root = directory or Path(tempfile.mkdtemp(prefix="werkplaats-demo-"))
    if directory is not None and directory.exists() and any(directory.iterdir()):
        if not (directory / "hub").exists():
            raise typer.BadParameter(f"{directory} is not empty and not a demo workspace", param_hint="--dir")
        shutil.rmtree(directory)
    ws = LocalWorkspace(root, persons=persons)
    stop = {"now": False}

    def on_signal(*_: Any) -> None:
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    typer.secho("werkplaats demo — a data workspace of real services on this machine", bold=True)
    typer.echo(f"Everything lives in {root}")
    try:
        t0 = time.perf_counter()
        ws.setup()
        _say(
            "1. Reference region and PKI",
            f"   {persons:,} synthetic residents in 12 gemeenten and 80 wijken, eight sources with their "
            f"schemas: {ws.region}\n   Workspace CA and node certificates (hub, engine0-2, four datastations, "
            f"client): {ws.pki}\n   Ed25519 signing keys for the hub and each organisation: {root / 'keys'}",
        )
        ws.start_hub()
        _say(
            "2. Hub",
            f"   {ws.hub_url}  (FastAPI over mutual TLS; SQLite {root / 'hub' / 'hub.db'}; log {ws.procs['hub'].log})",
        )
        ws.register()
        _say(
            "3. Registered by the admin",
            "   organisations ggd, ziekenhuis, huisartsen, vvt with their public signing keys; a steward each;\n"
            "   the analyst (scientist, GGD), an inzichtvrager (requester, GGD) and the privacy officer (fg);\n"
            "   nodes engine0-2 and ds-<organisation>;\n"
            f"   collaboration {COLLABORATION!r} with all four as members. Tokens: {root / 'tokens.json'}",
        )
        ws.start_nodes()
        ws_client = wp.connect(
            ws.hub_url,
            token=ws.tokens["analist"],
            ca=ws.pki / "ca.crt",
            cert=ws.pki / "client.crt",
            key=ws.pki / "client.key",
        )
        cat = ws_client.catalog()
        lines = [
            f"   {d:<24} {cat[d]['row_count'] or 0:>9,} rows (rounded)  owner {cat[d]['organisation']}"
            for d in sorted(cat)
        ]
        _say(
            "4. Engines and datastations started (separate processes)",
            "   engine0-2: share inbox over HTTPS, MPC link over brpc, both mutual TLS\n"
            "   each datastation validated its sources and published their metadata to the catalog:\n"
            + "\n".join(lines)
            + f"\n   the GGD's datastation created the bucket key of {COLLABORATION!r} (bucketed jobs), sealed to\n"
            "   each member's datastation; hub and engines never see it (werkplaats datastation bucket-key --help)",
        )
        ws.start_web()
        _say("5. The web application (open it in a browser; the workspace CA signs its certificates)", _logins(ws))
        q = uc.infection_hotspots(2024, risk_counts=True, hospital=True)
        req = ws_client.submit(q, collaboration=COLLABORATION, purpose=PURPOSE)
        _say(
            f"6. The analyst submits the infection-hotspot analysis: request {req.id}",
            "   The plan as every steward reads it:\n\n" + _indent(req.explain(), 5),
        )
        for org in ws.organisations:
            st = Datastation(DatastationConfig.load(ws.root / "nodes" / f"ds-{org}" / "datastation.toml"))
            st.approve(req.id, days=7, max_runs=2)
            st.hub.close()
        info = req.refresh()
        appr = ", ".join(f"{o} ({a['by']})" for o, a in sorted(info["approvals"].items()))
        _say(
            "7. Each steward approves for their own organisation",
            f"   Ed25519 signatures over (plan hash, collaboration, purpose, expiry, max runs) by {appr}.\n"
            f"   Request status: {info['status']}.",
        )
        t1 = time.perf_counter()
        result = req.run(timeout=3600)
        took = time.perf_counter() - t1
        jid = req.refresh()["jobs"][-1]["id"]
        for _ in range(20):  # NB: engines report their statistics just after the result is released
            job = ws_client.client.get(f"/jobs/{jid}")
            if all(job["progress"].get(f"engine{i}", {}).get("state") == "done" for i in range(3)):
                break
            time.sleep(0.5)
        eng = [job["progress"].get(f"engine{i}", {}) for i in range(3)]
        mb = ", ".join(f"{e.get('bytes_sent', 0) / 1e6:.0f} MB" for e in eng)
        _say(
            f"8. Job {job['id']}: {job['state']} in {took:.0f} s",
            "   Each datastation checked its own steward's approval, validated its source, secret-shared only the\n"
            "   columns the plan reads and sent share i straight to engine i. The engines verified every approval,\n"
            f"   computed under MPC (data sent per engine: {mb}) and sent result shares to the hub,\n"
            "   which reconstructed only the disclosure-controlled aggregate.",
        )
        _say(
            "9. Result: infection hotspots (influenza A, 2024), cells of at least 10 cases",
            _result_table(result, ws.region),
        )
        fg = ws.client("fg")
        audit = fg.get("/audit")
        fg.close()
        orgs = {k: v for k, v in audit["keys"].items() if k != "hub"}
        problems = verify_hub_chain(audit["entries"], ws.public_keys["hub"], orgs)  # NB: the pinned hub key
        trail = "\n".join(
            f"   {e['seq']:>3} {e['ts'][11:19]} {e['action']:<14} {e['actor']:<18} {e['subject']}"
            for e in audit["entries"]
        )
        _say(
            "10. Audit trail (verwerkingsregister), hash-chained and signed",
            trail + f"\n   Chain and signatures: {'intact' if not problems else 'BROKEN: ' + '; '.join(problems)}"
            f" ({time.perf_counter() - t0:.0f} s in all)",
        )
        _say("Where to look next", _next_steps(ws, root))
        if once:
            return
        typer.secho("\nThe workspace keeps running; Ctrl-C stops every node.", bold=True)
        while not stop["now"]:
            time.sleep(1)
            dead = [n for n, p in ws.procs.items() if not p.alive()]
            if dead:
                typer.echo(f"nodes stopped: {dead}; see {root / 'logs'}")
                break
    except KeyboardInterrupt:
        typer.echo("\nstopping")
    finally:
        ws.stop()


def _logins(ws: Any) -> str:
    """The web addresses and the demo users' logins (TOTP secrets: the demo's only, printed as such)."""
    lines = [
        f"   hub pages:  {ws.web_url('hub')}   (CA certificate to trust: {ws.pki / 'ca.crt'})",
        *(f"   {o} datastation (its stewards):  {ws.web_url(f'ds-{o}')}" for o in ws.organisations),
        "",
        f"   {'login':<20} {'role':<16} {'where':<26} {'password':<18} TOTP secret (demo only)",
    ]
    for u in ws.logins["users"].values():
        where = "hub" if u["role"] != "steward" else f"datastation {u['organisation']}"
        lines.append(f"   {u['name']:<20} {u['role']:<16} {where:<26} {u['password']:<18} {u['totp'] or '-'}")
    return "\n".join(lines) + (
        f"\n   (also in {ws.root / 'logins.json'}; any TOTP app gives the codes from the secret. Real users set"
        "\n   their own password and enrol their own TOTP secret: these are for this demo only.)"
    )


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + ln if ln else ln for ln in text.splitlines())


def _result_table(result: pd.DataFrame, region: Path) -> str:
    from .. import usecases as uc

    pop = pd.read_csv(region / "open" / "bevolking.csv")
    names = pd.read_csv(region / "codelists" / "gemeenten.csv").set_index("code")["omschrijving"]
    shown = result[~result["suppressed"].astype(bool)].copy()
    for c in ("week", "n", "opgenomen", "70plus", "chronisch", "vvt_client"):
        shown[c] = pd.array([None if v is None or pd.isna(v) else int(v) for v in shown[c]], dtype="Int64")
    if shown.empty:
        return "   every cell is suppressed at this size; try --persons 100000"
    shown = uc.incidence(shown, pop, "gemeente")
    shown["naam"] = shown["gemeente"].map(names)
    shown = shown.sort_values("per_100k", ascending=False).head(12)
    cols = ["gemeente", "naam", "week", "n", "per_100k", "opgenomen", "70plus", "chronisch", "vvt_client"]
    table = shown[cols].astype(object)
    table["per_100k"] = [f"{v:.1f}" for v in shown["per_100k"]]
    table = table.where(shown[cols].notna(), "<k")
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        text = table.to_string(index=False)
    hidden = int(result["suppressed"].astype(bool).sum())
    return (
        _indent(text, 3) + f"\n   ({hidden} of {len(result)} gemeente-weeks suppressed: fewer than 10 cases; "
        "'<k' marks a count below 10)\n   The autumn weeks at the top are the outbreak injected in the region "
        "(see region/truth.json): influenza A out of season."
    )


def _next_steps(ws: Any, root: Path) -> str:
    env = (
        f"export WERKPLAATS_HUB={ws.hub_url} WERKPLAATS_CA={ws.pki / 'ca.crt'} "
        f"WERKPLAATS_CERT={ws.pki / 'client.crt'} WERKPLAATS_KEY={ws.pki / 'client.key'}"
    )
    return (
        f"   {env}\n"
        f"   export WERKPLAATS_TOKEN=<the 'analist' token in {root}/tokens.json>\n"
        "   werkplaats request list | show 1 | result 1         # as the analyst\n"
        f"   (token 'fg')  werkplaats audit verify --hub-key {root}/keys/hub.pub --anchors {root}/nodes\n"
        "   (token 'fg')  werkplaats audit export --format csv\n"
        f"   werkplaats datastation log --config {root}/nodes/ds-ggd/datastation.toml   # the GGD's own log\n"
        f"   node logs: {root / 'logs'}; node configurations: {root / 'nodes'}\n"
        "   docs/workspace.md (the services), docs/usecases.md (the analyses), docs/region.md (the data),\n"
        "   docs/disclosure.md (the rules every released cell passed, and why one was withheld)"
    )
