"""Node identity and scope at the hub, job states, runs given back, and the hub-side faults (in process).

Each attack beside the honest call; on SQLite and PostgreSQL (the ``hub`` fixture of test_hub).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from werkplaats.workspace import audit, db, pki, register
from werkplaats.workspace.hub import Hub, create_app
from werkplaats.workspace.hub.lifecycle import TransitionError, fail_late_datastations, move
from werkplaats.workspace.messages import (
    ContributionRecord,
    JobPayload,
    JobState,
    NothingSentRecord,
    PartState,
    ProgressReport,
)
from werkplaats.workspace.signing import approval_body, approval_id, canonical, sign_approval

from .test_hub import (
    Api,
    _engines,
    _node,
    _plan,
    hub,  # noqa: F401  (fixture)
)


def _request(u: dict[str, Api], keys: dict[str, Any], max_runs: int = 1) -> dict[str, Any]:
    """A request reading huisartsen data only, approved by huisartsen for max_runs runs."""
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         max_runs=max_runs, steward="st-ha")  # fmt: skip
    signed = {"body": body, "signature": sign_approval(keys["huisartsen"], body)}
    u["st-ha"].post(f"/requests/{r['id']}/approvals", signed)
    return r


def _record(payload: JobPayload, org: str = "huisartsen", **kw: Any) -> ContributionRecord:
    aid = approval_id(next(a.signature for a in payload.approvals if a.body["organisation"] == org))
    mine = [d for d in payload.datasets if d.startswith(org + "/")]
    fields = {"organisation": org, "job": payload.job, "request": payload.request, "plan_hash": payload.plan_hash,
              "approval": aid, "datasets": mine, "columns": {d: payload.columns[d] for d in mine},
              "rows": dict.fromkeys(mine, 1000), "engines": ["engine0", "engine1", "engine2"],
              "at": dt.datetime.now(dt.UTC).isoformat()} | kw  # fmt: skip
    return ContributionRecord.model_validate(fields)


def _signed(record: Any, key: Any) -> dict[str, Any]:
    return {"v": 1, "record": record.to_dict(), "signature": pki.sign(key, canonical(record.to_dict()))}


def _nothing_sent(job: JobPayload, org: str = "huisartsen", reason: str = "test") -> NothingSentRecord:
    aid = approval_id(next(a.signature for a in job.approvals if a.body["organisation"] == org))
    return NothingSentRecord(organisation=org, job=job.job, request=job.request, approval=aid, reason=reason,
                             at=dt.datetime.now(dt.UTC).isoformat())  # fmt: skip


@pytest.fixture
def env(hub: Any) -> Any:  # noqa: F811
    """The in-process hub of test_hub (hub, users, organisation keys), on SQLite and PostgreSQL."""
    return hub


@pytest.fixture
def nodes(env: Any) -> dict[str, Api]:
    """The three engines (online) and the datastations of huisartsen and ggd."""
    _h, u, _keys = env
    e = _engines(u)
    return {"engine0": e[0], "engine1": e[1], "engine2": e[2],
            "ds-ha": _node(u, "ds-ha", "datastation", organisation="huisartsen"),
            "ds-ggd": _node(u, "ds-ggd", "datastation", organisation="ggd")}  # fmt: skip


def _take(ds: Api, jid: int) -> JobPayload:
    """The payload of job jid as the datastation is handed it."""
    return next(JobPayload.from_dict(d) for d in ds.get("/node/jobs") if d["job"] == jid)


def test_a_node_token_counts_only_with_its_own_certificate(env: Any) -> None:
    h, u, _keys = env
    token = u["admin"].post("/nodes", {"name": "ds-ha", "kind": "datastation", "organisation": "huisartsen"})["token"]
    own = Api(u["admin"].c, token, cert="ds-ha")
    assert own.get("/me")["name"] == "ds-ha"
    stolen = Api(u["admin"].c, token, cert="engine0")  # NB: the token over another node's certificate
    assert stolen.get("/me", status=403)["detail"] == (
        "node ds-ha's token came with the certificate of 'engine0'; a node's token is bound to its own"
    )
    stolen.get("/node/jobs", status=403)
    bare = Api(u["admin"].c, token)  # NB: no client certificate reached the app
    assert "without a client certificate" in bare.get("/me", status=403)["detail"]
    # a refused call is no heartbeat: an engine token over another certificate does not bring the engine online
    etoken = u["admin"].post("/nodes", {"name": "engine0", "kind": "engine", "party": 0})["token"]
    Api(u["admin"].c, etoken, cert="ds-ha").get("/me", status=403)
    with h.sessions() as s:
        assert s.query(db.Node).filter_by(name="engine0").one().last_seen is None
    # user tokens are not bound to a certificate (people work from their own machines)
    assert Api(u["admin"].c, u["analist"].h["Authorization"][7:], cert="engine0").get("/me")["name"] == "analist"


def test_nodes_touch_only_jobs_and_requests_they_have_a_part_in(env: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = env
    r = _request(u, keys)
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    ggd = nodes["ds-ggd"]  # NB: the job reads no GGD data
    assert ggd.get("/node/jobs") == []
    why = ggd.get(f"/node/jobs/{jid}", status=403)["detail"]
    assert why == f"ds-ggd has no part in job {jid}: it reads no data of ggd"
    ggd.post(f"/node/jobs/{jid}/progress", ProgressReport(state=PartState.FAILED, reason="x").to_dict(), status=403)
    ggd.get(f"/jobs/{jid}", status=403)
    assert "no part in request" in ggd.get(f"/requests/{r['id']}", status=403)["detail"]  # NB: nor its plan
    assert [x["id"] for x in ggd.get("/requests")] == []
    job = _take(nodes["ds-ha"], jid)
    ggd.post(f"/node/jobs/{jid}/contribution", _signed(_record(job), keys["huisartsen"]), status=403)
    assert u["analist"].get(f"/jobs/{jid}")["state"] == "approved"  # NB: nothing the GGD node did counted
    # the honest nodes: the datastation whose data it reads, and the engines
    assert nodes["ds-ha"].get(f"/requests/{r['id']}")["plan_hash"] == r["plan_hash"]
    assert nodes["engine1"].get(f"/node/jobs/{jid}")["state"] == "approved"
    # a datastation reports only a datastation's states: it cannot start a job
    running = ProgressReport(state=PartState.RUNNING).to_dict()
    assert "does not report 'running'" in nodes["ds-ha"].post(f"/node/jobs/{jid}/progress", running, 422)["detail"]
    verified = ProgressReport(state=PartState.VERIFIED).to_dict()
    assert nodes["engine0"].post(f"/node/jobs/{jid}/progress", verified, status=422)


def test_a_job_moves_only_forward(env: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = env
    r = _request(u, keys, max_runs=5)
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    failed = ProgressReport(state=PartState.FAILED, reason="bron onleesbaar").to_dict()
    assert nodes["ds-ha"].post(f"/node/jobs/{jid}/progress", failed, status=200)["state"] == "failed"
    running = ProgressReport(state=PartState.RUNNING).to_dict()
    why = nodes["engine0"].post(f"/node/jobs/{jid}/progress", running, status=409)["detail"]
    assert why == f"job {jid} is failed; it cannot become running"
    assert u["analist"].get(f"/jobs/{jid}")["state"] == "failed"
    nodes["engine0"].c.post(f"/api/v1/node/jobs/{jid}/result-share", content=b"x", headers=nodes["engine0"].h)
    assert u["analist"].get(f"/jobs/{jid}")["state"] == "failed"
    # the honest path: approved → running (a second engine's report keeps it running)
    jid2 = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    for e in ("engine0", "engine1"):
        assert nodes[e].post(f"/node/jobs/{jid2}/progress", running, status=200)["state"] == "running"
    j = db.Job(id=1, state=JobState.SUCCEEDED.value)
    for to in JobState:
        with pytest.raises(TransitionError, match="job 1 is succeeded; it cannot become"):
            move(j, to)


def test_a_contribution_is_signed_by_the_organisation_whose_datasets_it_names(env: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = env
    r = _request(u, keys)
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    ha = nodes["ds-ha"]
    job = _take(ha, jid)
    path = f"/node/jobs/{jid}/contribution"
    other = _record(job, organisation="ggd")
    assert ha.post(path, _signed(other, keys["ggd"]), status=403)["detail"] == (
        "ds-ha speaks for huisartsen, not for ggd"
    )
    wrong_key = ha.post(path, _signed(_record(job), keys["ggd"]), status=422)["detail"]
    assert wrong_key == "the contribution record is not signed by huisartsen's key"
    theirs = _record(job, datasets=["ggd/meldingen"], columns={"ggd/meldingen": ["bsn"]})
    why = ha.post(path, _signed(theirs, keys["huisartsen"]), status=422)["detail"]
    assert "it names datasets ['ggd/meldingen'] of other organisations" in why
    elsewhere = _record(job, job=jid + 100)
    assert f"not job {jid}" in ha.post(path, _signed(elsewhere, keys["huisartsen"]), status=422)["detail"]
    unapproved = _record(job, approval="0" * 16)
    assert "approval" in ha.post(path, _signed(unapproved, keys["huisartsen"]), status=422)["detail"]
    assert ha.post(path, _signed(_record(job), keys["huisartsen"]))["ok"]
    assert "already" in ha.post(path, _signed(_record(job), keys["huisartsen"]), status=409)["detail"]
    entries = [e for e in u["fg"].get("/audit")["entries"] if e["action"] == "contribution"]
    assert len(entries) == 1 and entries[0]["details"]["signed"]["organisation"] == "huisartsen"


def test_a_failed_job_gives_its_run_back_only_when_nothing_was_sent(env: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = env
    ha, failed = nodes["ds-ha"], ProgressReport(state=PartState.FAILED, reason="engine weg").to_dict()
    # a datastation recorded its contribution (it sends only after that), then the job failed: the run is used
    r = _request(u, keys)
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    ha.post(f"/node/jobs/{jid}/contribution", _signed(_record(_take(ha, jid)), keys["huisartsen"]))
    nodes["engine0"].post(f"/node/jobs/{jid}/progress", failed, status=200)
    assert "runs are used" in u["analist"].post(f"/requests/{r['id']}/run", status=409)["detail"]
    # no datastation recorded anything before the job failed: the run comes back
    r2 = _request(u, keys)
    jid2 = u["analist"].post(f"/requests/{r2['id']}/run")["job"]
    nodes["engine0"].post(f"/node/jobs/{jid2}/progress", failed, status=200)
    jid3 = u["analist"].post(f"/requests/{r2['id']}/run")["job"]
    # the datastation recorded, then withdrew with its signed statement that it sent nothing: the run comes back
    job3 = _take(ha, jid3)
    ha.post(f"/node/jobs/{jid3}/contribution", _signed(_record(job3), keys["huisartsen"]))
    forged = _signed(_nothing_sent(job3), keys["ggd"])
    assert "not signed by huisartsen's key" in ha.post(f"/node/jobs/{jid3}/nothing-sent", forged, status=422)["detail"]
    assert "runs are used" in u["analist"].post(f"/requests/{r2['id']}/run", status=409)["detail"]
    ha.post(f"/node/jobs/{jid3}/nothing-sent", _signed(_nothing_sent(job3, reason="hub weg"), keys["huisartsen"]),
            status=200)  # fmt: skip
    j3 = u["analist"].get(f"/jobs/{jid3}")
    assert j3["state"] == "failed" and j3["reason"] == "ds-ha: sent nothing (hub weg)"
    u["analist"].post(f"/requests/{r2['id']}/run")
    actions = [e["action"] for e in u["fg"].get("/audit")["entries"]]
    assert "nothing-sent" in actions
    # a job that ran cannot be withdrawn from
    r4 = _request(u, keys)
    jid4 = u["analist"].post(f"/requests/{r4['id']}/run")["job"]
    job4 = _take(ha, jid4)
    ha.post(f"/node/jobs/{jid4}/contribution", _signed(_record(job4), keys["huisartsen"]))
    nodes["engine0"].post(f"/node/jobs/{jid4}/progress", ProgressReport(state=PartState.RUNNING).to_dict(), 200)
    late = _signed(_nothing_sent(job4), keys["huisartsen"])
    assert "it ran with the shares" in ha.post(f"/node/jobs/{jid4}/nothing-sent", late, status=409)["detail"]
    # nor once it has failed after it ran: the run stays used
    ha.post(f"/node/jobs/{jid4}/progress", ProgressReport(state=PartState.FAILED, reason="weg").to_dict(), 200)
    assert u["analist"].get(f"/jobs/{jid4}")["state"] == "failed"
    assert "it ran with the shares" in ha.post(f"/node/jobs/{jid4}/nothing-sent", late, status=409)["detail"]
    assert "runs are used" in u["analist"].post(f"/requests/{r4['id']}/run", status=409)["detail"]


def test_a_progress_detail_cannot_overwrite_the_reported_state(env: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = env
    r = _request(u, keys)
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    ha = nodes["ds-ha"]
    _take(ha, jid)
    report = {**ProgressReport(state=PartState.VERIFIED).to_dict(), "detail": {"state": "sent", "reason": "x"}}
    ha.post(f"/node/jobs/{jid}/progress", report, status=200)
    assert u["analist"].get(f"/jobs/{jid}")["progress"]["ds-ha"]["state"] == "verified"


def test_jobs_wait_until_all_three_engines_are_online(env: Any) -> None:
    h, u, keys = env
    r = _request(u, keys)
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    ha = _node(u, "ds-ha", "datastation", organisation="huisartsen")
    assert ha.get("/node/jobs") == []  # NB: no engines at all
    es = [_node(u, f"engine{i}", "engine", party=i) for i in range(3)]
    es[0].get("/me")
    es[1].get("/me")
    assert ha.get("/node/jobs") == [] and es[0].get("/node/jobs") == []  # NB: engine2 never heard from
    es[2].get("/me")
    with h.engine.begin() as conn:  # NB: engine1 last heard from longer ago than the heartbeat timeout
        old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=h.heartbeat_timeout_s + 5)
        conn.execute(update(db.Node).where(db.Node.name == "engine1").values(last_seen=old))
    assert ha.get("/node/jobs") == []
    assert u["analist"].get(f"/jobs/{jid}")["state"] == "approved"
    es[1].get("/me")
    assert [d["job"] for d in ha.get("/node/jobs")] == [jid]


def test_the_requesting_scientist_or_an_admin_cancels_a_job(env: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = env
    other = Api(u["admin"].c, u["admin"].post("/users", {"name": "collega", "role": "scientist",
                                                          "organisation": "ggd"})["token"])  # fmt: skip
    r = _request(u, keys)
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    job = _take(nodes["ds-ha"], jid)
    for who in (other, u["st-ha"], u["buiten"], nodes["engine0"]):
        who.post(f"/jobs/{jid}/cancel", status=403)
    assert u["analist"].post(f"/jobs/{jid}/cancel", status=200) == {"job": jid, "state": "failed"}
    got = u["analist"].get(f"/jobs/{jid}")
    assert got["state"] == "failed" and got["reason"] == "cancelled by analist"
    assert nodes["engine0"].get(f"/node/jobs/{jid}")["state"] == "failed"  # NB: engines drop it on their next poll
    assert nodes["ds-ha"].get("/node/jobs") == []
    late = nodes["ds-ha"].post(f"/node/jobs/{jid}/contribution", _signed(_record(job), keys["huisartsen"]), 409)
    assert late["detail"] == f"job {jid} is failed: send nothing"
    u["analist"].post(f"/jobs/{jid}/cancel", status=409)
    (entry,) = [e for e in u["fg"].get("/audit")["entries"] if e["action"] == "job-cancel"]
    assert entry["actor"] == "analist" and entry["details"]["detail"] == "cancelled by analist"
    jid2 = u["analist"].post(f"/requests/{r['id']}/run")["job"]  # NB: nothing was sent: the run came back
    assert u["admin"].post(f"/jobs/{jid2}/cancel", status=200)["state"] == "failed"


def test_a_datastation_that_never_sends_fails_the_job(env: Any, nodes: dict[str, Api]) -> None:
    h, u, keys = env
    waiting = _request(u, keys)
    jid_waiting = u["analist"].post(f"/requests/{waiting['id']}/run")["job"]  # NB: handed out below, never sent
    sent = _request(u, keys)
    jid_sent = u["analist"].post(f"/requests/{sent['id']}/run")["job"]
    _take(nodes["ds-ha"], jid_sent)
    nodes["ds-ha"].post(f"/node/jobs/{jid_sent}/progress", ProgressReport(state=PartState.SENT).to_dict(), 200)
    fail_late_datastations(h)
    assert u["analist"].get(f"/jobs/{jid_waiting}")["state"] == "approved"  # NB: within the default 600 s
    h.share_timeout_s = 0.0
    fail_late_datastations(h)
    j = u["analist"].get(f"/jobs/{jid_waiting}")
    assert j["state"] == "failed" and j["reason"] == "huisartsen sent no shares within 0 s of the job being handed out"
    assert u["analist"].get(f"/jobs/{jid_sent}")["state"] == "approved"
    not_offered = _request(u, keys)
    jid_new = u["analist"].post(f"/requests/{not_offered['id']}/run")["job"]
    fail_late_datastations(h)  # NB: never handed out: no clock runs
    assert u["analist"].get(f"/jobs/{jid_new}")["state"] == "approved"


def test_a_restarted_hub_fails_the_jobs_that_were_under_way(env: Any, nodes: dict[str, Api], database: str) -> None:
    h, u, keys = env
    running = _request(u, keys)
    jid_running = u["analist"].post(f"/requests/{running['id']}/run")["job"]
    _take(nodes["ds-ha"], jid_running)
    nodes["engine0"].post(f"/node/jobs/{jid_running}/progress", ProgressReport(state=PartState.RUNNING).to_dict(),
                          status=200)  # fmt: skip
    with h.engine.begin() as conn:  # NB: later jobs are created while no engine is online: never handed out
        conn.execute(update(db.Node).values(last_seen=None))
    waiting = _request(u, keys)
    jid_waiting = u["analist"].post(f"/requests/{waiting['id']}/run")["job"]
    again = Hub(database, name="hub", signing_key=h.key)
    try:
        with TestClient(create_app(again)) as c:  # NB: its start-up is the restart
            j = Api(c, u["analist"].h["Authorization"][7:]).get(f"/jobs/{jid_running}")
            assert j["state"] == "failed" and j["reason"] == "the hub restarted while the job was under way"
            assert Api(c, u["analist"].h["Authorization"][7:]).get(f"/jobs/{jid_waiting}")["state"] == "approved"
    finally:
        again.engine.dispose()


def test_the_audit_cross_check_accepts_a_contribution_the_datastation_withdrew(tmp_path: Path) -> None:
    pki.new_signing_key(tmp_path / "ggd.key")
    ggd = pki.load_signing_key(tmp_path / "ggd.key")
    pki.new_signing_key(tmp_path / "hub.key")
    pinned = pki.public_key_b64(pki.load_signing_key(tmp_path / "hub.key"))
    log = audit.FileLog(tmp_path / "contributions.jsonl", "ggd", ggd)
    for job in (4, 5):  # NB: the hub refused both records (the jobs were cancelled); ggd withdrew only job 5's
        log.append(actor="ds-ggd", action="contribution", subject=f"job/{job}",
                   details={"organisation": "ggd", "job": job})  # fmt: skip
    log.append(actor="ds-ggd", action="nothing-sent", subject="job/5", details={"organisation": "ggd", "job": 5})
    logs = [register.NodeLog.read(log.path, public_key=log.public_key)]
    assert register.cross_check([], pinned, logs) == ["ggd logged a contribution to job 4 that the hub's chain lacks"]


def test_a_job_number_handed_out_again_cannot_hide_a_contribution(tmp_path: Path) -> None:
    # a lying hub refuses job 5's record (ggd withdraws it), then hands out job 5 again and takes the shares
    pki.new_signing_key(tmp_path / "ggd.key")
    ggd = pki.load_signing_key(tmp_path / "ggd.key")
    pki.new_signing_key(tmp_path / "hub.key")
    pinned = pki.public_key_b64(pki.load_signing_key(tmp_path / "hub.key"))
    log = audit.FileLog(tmp_path / "contributions.jsonl", "ggd", ggd)
    details = {"organisation": "ggd", "job": 5, "approval": "a1"}
    log.append(actor="ds-ggd", action="contribution", subject="job/5", details=details)
    log.append(actor="ds-ggd", action="nothing-sent", subject="job/5", details=details)
    log.append(actor="ds-ggd", action="contribution", subject="job/5", details=details)
    standing = audit.standing_contributions(log.entries())
    assert [e["seq"] for e in standing] == [3]  # NB: the second contribution counts against the approval
    logs = [register.NodeLog.read(log.path, public_key=log.public_key)]
    assert register.cross_check([], pinned, logs) == ["ggd logged a contribution to job 5 that the hub's chain lacks"]
