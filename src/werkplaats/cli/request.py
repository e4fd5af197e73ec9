"""`werkplaats request`: submit, list, show, run and cancel analysis requests' jobs, fetch their results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import WerkplaatsError
from .common import fail, hub_client

app = typer.Typer(
    help="Analysis requests at the hub (uses WERKPLAATS_HUB, WERKPLAATS_TOKEN, WERKPLAATS_CA/CERT/KEY).",
    no_args_is_help=True,
)


@app.command("submit")
def request_submit(
    plan: Annotated[Path, typer.Argument(help="Plan JSON file.")],
    collaboration: Annotated[str, typer.Option()],
    purpose: Annotated[str, typer.Option()],
) -> None:
    """Submit a plan as an analysis request."""
    try:
        r = hub_client().post(
            "/requests", {"collaboration": collaboration, "purpose": purpose, "plan": json.loads(plan.read_text())}
        )
    except WerkplaatsError as e:
        fail(e)
    typer.echo(f"request {r['id']}: {r['status']}; needs approval of {', '.join(r['pending'])}")


@app.command("list")
def request_list() -> None:
    """The requests of your collaborations."""
    try:
        for r in hub_client().get("/requests"):
            last = r["jobs"][-1]["state"] if r["jobs"] else "-"
            typer.echo(f"{r['id']:>4}  {r['status']:<17} job:{last:<10} {r['collaboration']:<24} {r['purpose'][:50]}")
    except WerkplaatsError as e:
        fail(e)


@app.command("show")
def request_show(request: Annotated[int, typer.Argument()]) -> None:
    """A request: plan as a steward reads it, approvals, jobs."""
    try:
        r = hub_client().get(f"/requests/{request}")
    except WerkplaatsError as e:
        fail(e)
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


@app.command("run")
def request_run(
    request: Annotated[int, typer.Argument()], wait: Annotated[bool, typer.Option(help="Wait for the result.")] = True
) -> None:
    """Start a job for an approved request (and wait for its result)."""
    import time

    from ..workspace.messages import JobState

    c = hub_client()
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
        fail(e)


@app.command("cancel")
def request_cancel(job: Annotated[int, typer.Argument(help="The job's id (see `werkplaats request show`).")]) -> None:
    """Cancel a job (the scientist who made the request, or an admin); its nodes drop it."""
    try:
        j = hub_client().post(f"/jobs/{job}/cancel")
    except WerkplaatsError as e:
        fail(e)
    typer.echo(f"job {job}: {j['state']}")


@app.command("result")
def request_result(
    request: Annotated[int, typer.Argument()],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
) -> None:
    """The released aggregate (or model summary) of a request."""
    import pandas as pd

    try:
        r = hub_client().get(f"/requests/{request}/result")
    except WerkplaatsError as e:
        fail(e)
    df = pd.DataFrame(r["rows"], columns=r["columns"])
    attrs = r.get("attrs") or {}  # NB: a model summary's fit statistics, or why it was withheld
    if fmt == "json":
        typer.echo(json.dumps({"rows": r["rows"], "attrs": attrs} if attrs else r["rows"], indent=1, default=str))
    elif fmt == "csv":
        typer.echo(df.to_csv(index=False), nl=False)
    else:
        typer.echo(df.to_string(index=False))
        for name, value in attrs.items():
            typer.echo(f"{name}: {value}")
