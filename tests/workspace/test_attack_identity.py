"""Node identity and hub faults across process boundaries, on the shared live workspace (``ws``).

- a node's token presented over another node's certificate is refused by the hub;
- a hub killed while a job is under way fails that job on start, with the reason, and the
  workspace keeps working afterwards;
- a job cancelled before a datastation's shares leave gets none: the datastation records its
  contribution first, the hub refuses it, and the datastation withdraws it (signed), sending nothing.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import httpx
from typer.testing import CliRunner

from werkplaats.cli.app import app as cli
from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.workspace.http import HubError, next_jobs
from werkplaats.workspace.messages import JobPayload

from .live import PURPOSE, analysis, approve_all, connect, station, wait_state
from .wait import wait_until


def restart_datastation(ws: LocalWorkspace, org: str) -> None:
    """Start a stopped datastation again and wait until it serves (it publishes its datasets first)."""
    log = ws.root / "logs" / f"ds-{org}.log"
    before = log.read_text(errors="replace").count(" serving ") if log.exists() else 0
    ws.start_datastation(org)
    wait_until(lambda: log.read_text(errors="replace").count(" serving ") > before, 120, f"ds-{org} serves again")


def _node_call(ws: LocalWorkspace, token_of: str, cert_of: str) -> httpx.Response:
    """Ask the hub for a node's jobs with one node's token over (another) node's certificate."""
    ctx = ws.tls(cert_of).client_context()
    headers = {"Authorization": f"Bearer {ws.tokens[token_of]}"}
    return httpx.get(ws.hub_url + "/api/v1/node/jobs", headers=headers, verify=ctx, timeout=30)


def test_a_node_token_over_another_nodes_certificate_is_refused(ws: LocalWorkspace) -> None:
    assert _node_call(ws, "ds-ggd", "ds-ggd").status_code == 200  # NB: its own certificate
    stolen = _node_call(ws, "ds-ggd", "engine0")
    assert stolen.status_code == 403
    assert stolen.json()["detail"] == (
        "node ds-ggd's token came with the certificate of 'engine0'; a node's token is bound to its own"
    )
    assert _node_call(ws, "engine1", "client").status_code == 403
    assert _node_call(ws, "engine1", "ds-huisartsen").status_code == 403
    assert _node_call(ws, "engine1", "engine1").status_code == 200


def test_a_hub_restart_mid_job_fails_the_job_and_the_workspace_goes_on(ws: LocalWorkspace) -> None:
    c = connect(ws)
    req = c.submit(analysis("norovirus"), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, req.id, max_runs=2)
    ws.procs["ds-huisartsen"].stop()  # NB: the job stays under way: one datastation's shares never come
    try:
        jid = req.run(wait=False)

        def ggd_sent() -> bool:
            j = c.client.get(f"/jobs/{jid}")
            assert j["state"] == "approved", j
            return (j["progress"].get("ds-ggd") or {}).get("state") == "sent"

        wait_until(ggd_sent, 120, "ds-ggd sent its shares")
        ws.procs["hub"].kill(signal.SIGKILL)  # NB: a crash: output shares or not, whatever it held in memory is gone
        ws.start_hub()
    finally:
        restart_datastation(ws, "huisartsen")
    c = connect(ws)  # NB: a fresh connection to the new hub process
    j = wait_state(c, int(jid), ("failed", "succeeded"), timeout=60)
    assert j["state"] == "failed" and j["reason"] == "the hub restarted while the job was under way"
    got = c.request(req.id).run(
        timeout=300
    )  # NB: ds-ggd sent shares for the failed job: that run stays used, max_runs is 2
    assert len(got) > 0
    actions = [e["action"] for e in ws.client("fg").get("/audit")["entries"]]
    assert actions[-1] == "result-release"


def test_a_job_cancelled_before_a_datastation_sends_gets_nothing_from_it(ws: LocalWorkspace) -> None:
    c = connect(ws)
    req = c.submit(analysis("kinkhoest"), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, req.id)
    ws.procs["ds-huisartsen"].stop()  # NB: this test plays ds-huisartsen itself (its configuration, key and log)
    try:
        jid = int(req.run(wait=False))
        wait_until(lambda: (c.client.get(f"/jobs/{jid}")["progress"].get("ds-ggd") or {}).get("state") == "sent",
                   120, "ds-ggd sent its shares")  # fmt: skip
        st = station(ws, "huisartsen")
        (job,) = [j for j in next_jobs(st.hub, logging.getLogger("test")) or [] if j.job == jid]
        connect_engines = st.connect_engines

        def connected_then_cancelled(payload: JobPayload) -> Any:
            engines = connect_engines(payload)
            # NB: the scientist cancels (with the CLI) just before the shares would leave
            env = {"WERKPLAATS_HUB": ws.hub_url, "WERKPLAATS_TOKEN": ws.tokens["analist"],
                   "WERKPLAATS_CA": str(ws.pki / "ca.crt"), "WERKPLAATS_CERT": str(ws.pki / "client.crt"),
                   "WERKPLAATS_KEY": str(ws.pki / "client.key")}  # fmt: skip
            out = CliRunner().invoke(cli, ["request", "cancel", str(jid)], env=env)
            assert out.exit_code == 0 and out.output == f"job {jid}: failed\n", out.output
            return engines

        st.connect_engines = connected_then_cancelled  # type: ignore[method-assign]
        sent: list[int] = []
        st.send = lambda *a, **k: sent.append(1)  # type: ignore[method-assign]
        st.handle(job)
        assert sent == []  # NB: before, the shares went out first and the hub's refusal came after
        mine = [e for e in st.log.entries() if e["subject"] == f"job/{jid}"]
        assert [e["action"] for e in mine] == ["contribution", "nothing-sent"]
        aid = mine[0]["details"]["approval"]
        assert st.runs_used().get(aid, 0) == 0  # NB: its own log gives the run back: nothing left
    finally:
        restart_datastation(ws, "huisartsen")
    j = c.client.get(f"/jobs/{jid}")
    assert j["state"] == "failed" and j["reason"] == "cancelled by analist"
    audit = [e for e in ws.client("fg").get("/audit")["entries"] if e["subject"] == f"job/{jid}"]
    kinds = ("contribution", "job-cancel", "nothing-sent")
    assert [(e["actor"], e["action"]) for e in audit if e["action"] in kinds] == [
        ("ds-ggd", "contribution"), ("analist", "job-cancel"), ("ds-huisartsen", "nothing-sent")]  # fmt: skip
    # ds-ggd sent its shares before the cancel: the run stays used (max_runs 1)
    assert "runs are used" in _run_refused(c, req.id)


def _run_refused(c: Any, rid: int) -> str:
    try:
        c.client.post(f"/requests/{rid}/run")
    except HubError as e:
        return e.detail
    return "ran"
