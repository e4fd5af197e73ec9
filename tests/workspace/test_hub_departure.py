"""An organisation leaves a collaboration or the workspace: its datasets stop being usable at once (in process).

On SQLite and PostgreSQL (the ``hub`` fixture of test_hub).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from werkplaats.workspace import db
from werkplaats.workspace.messages import PartState, ProgressReport

from .test_hub import Api, _engines, _node
from .test_hub import hub as hub
from .test_hub_scope import _plan, _record, _request, _signed, _take

RUNNING = ProgressReport(state=PartState.RUNNING).to_dict()


@pytest.fixture
def nodes(hub: Any) -> dict[str, Api]:
    _h, u, _keys = hub
    e = _engines(u)
    return {"engine0": e[0], "ds-ha": _node(u, "ds-ha", "datastation", organisation="huisartsen")}


def _delete(api: Api, path: str, status: int = 200) -> Any:
    r = api.c.delete("/api/v1" + path, headers=api.h)
    assert r.status_code == status, r.text
    return r.json()


def _actions(u: dict[str, Api]) -> list[dict[str, Any]]:
    return u["admin"].get("/audit")["entries"]


def test_an_organisation_leaves_a_collaboration(hub: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = hub
    r = _request(u, keys, max_runs=5)
    waiting = u["analist"].post(f"/requests/{r['id']}/run")["job"]  # NB: approved, not yet handed out
    handed = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    payload = _take(nodes["ds-ha"], handed)  # NB: the datastation has the job; it has sent nothing yet
    # only an admin takes an organisation out
    assert _delete(u["st-ha"], "/collaborations/pp/members/huisartsen", 403)
    out = _delete(u["admin"], "/collaborations/pp/members/huisartsen?reason=contract%20ended")
    assert out["collaborations"] == ["pp"] and out["jobs_failed"] == [waiting, handed]
    assert out["datasets_removed"] and all(d.startswith("huisartsen/") for d in out["datasets_removed"])
    why = "organisation 'huisartsen' left collaboration 'pp': contract ended"
    assert u["analist"].get(f"/jobs/{waiting}")["state"] == "failed"
    assert u["analist"].get(f"/jobs/{waiting}")["reason"] == why
    # at run and at submit: refused, saying why
    gone = "organisation 'huisartsen' is no longer a member of collaboration 'pp'; its datasets cannot be read"
    assert u["analist"].post(f"/requests/{r['id']}/run", status=409)["detail"] == gone
    assert (
        u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()}, 409)["detail"] == gone
    )
    # the nodes: nothing handed out, no engine starts it, the datastation's contribution is refused (send nothing)
    assert nodes["ds-ha"].get("/node/jobs") == []
    assert nodes["engine0"].get("/node/jobs") == []
    assert "cannot become running" in nodes["engine0"].post(f"/node/jobs/{waiting}/progress", RUNNING, 409)["detail"]
    refused = nodes["ds-ha"].post(f"/node/jobs/{handed}/contribution", _signed(_record(payload), keys["huisartsen"]),
                                  status=409)["detail"]  # fmt: skip
    assert "send nothing" in refused
    assert "huisartsen" not in [c for x in u["admin"].get("/collaborations") for c in x["members"]]
    # the audit: the removal, and each job failed with the reason
    entries = _actions(u)
    (removed,) = [e for e in entries if e["action"] == "member-removed"]
    assert removed["actor"] == "beheerder" and removed["details"]["organisation"] == "huisartsen"
    assert removed["details"]["jobs_failed"] == [waiting, handed]
    ends = {e["details"]["job"]: e["details"]["detail"] for e in entries if e["action"] == "job-end"}
    assert ends == {waiting: why, handed: why}
    assert u["admin"].get("/audit/verify")["ok"] is True
    assert _delete(u["admin"], "/collaborations/pp/members/huisartsen", 404)["detail"] == (
        "huisartsen is not a member of collaboration 'pp'"
    )


def test_a_membership_gone_by_any_path_stops_jobs_at_hand_out_start_and_contribution(
    hub: Any, nodes: dict[str, Api]
) -> None:
    """The attack: a job approved before the organisation left, still waiting, must not start (the checks do not
    rely on the removal endpoint having failed it: here the membership row is deleted directly)."""
    h, u, keys = hub
    r = _request(u, keys, max_runs=5)
    first = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    second = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    payload = _take(nodes["ds-ha"], second)
    with h.sessions.begin() as s:
        o = s.scalars(select(db.Organisation).where(db.Organisation.name == "huisartsen")).one()
        s.execute(delete(db.Member).where(db.Member.organisation_id == o.id))
    gone = "organisation 'huisartsen' is no longer a member of collaboration 'pp'; its datasets cannot be read"
    # an engine that was handed the job before cannot start it
    why = nodes["engine0"].post(f"/node/jobs/{first}/progress", RUNNING, 409)["detail"]
    assert why == f"job {first} failed: {gone}"
    assert u["analist"].get(f"/jobs/{first}")["state"] == "failed"
    # the datastation's contribution is refused, and the job fails
    refused = nodes["ds-ha"].post(f"/node/jobs/{second}/contribution", _signed(_record(payload), keys["huisartsen"]),
                                  status=409)["detail"]  # fmt: skip
    assert refused == f"job {second} failed: {gone}; send nothing"
    job = u["analist"].get(f"/jobs/{second}")
    assert (job["state"], job["reason"]) == ("failed", gone)
    assert nodes["ds-ha"].get("/node/jobs") == []


def test_an_organisation_leaves_the_workspace(hub: Any, nodes: dict[str, Api]) -> None:
    _h, u, keys = hub
    r = _request(u, keys, max_runs=5)
    waiting = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    assert _delete(u["analist"], "/organisations/huisartsen", 403)
    out = _delete(u["admin"], "/organisations/huisartsen?reason=opgeheven")
    assert out["collaborations"] == ["pp"] and out["jobs_failed"] == [waiting]
    assert u["analist"].get(f"/jobs/{waiting}")["state"] == "failed"
    gone = "organisation 'huisartsen' has left the workspace; its datasets cannot be read"
    assert u["analist"].post(f"/requests/{r['id']}/run", status=409)["detail"] == gone
    assert (
        u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()}, 409)["detail"] == gone
    )
    # its people and nodes are out: their tokens no longer count
    assert u["st-ha"].get("/me", status=403)["detail"] == "st-ha's organisation huisartsen has left the workspace"
    assert nodes["ds-ha"].get("/node/jobs", status=403)["detail"] == (
        "node ds-ha's organisation huisartsen has left the workspace"
    )
    orgs = {o["name"]: o for o in u["admin"].get("/organisations")}
    assert orgs["huisartsen"]["left"] and orgs["ggd"]["left"] is None
    assert "left the workspace at" in _delete(u["admin"], "/organisations/huisartsen", 409)["detail"]
    # its name is not free again: a newcomer cannot take over what it signed
    u["admin"].post("/organisations", {"name": "huisartsen", "signing_key": "k"}, status=409)
    (left,) = [e for e in _actions(u) if e["action"] == "organisation-left"]
    assert left["details"]["organisation"] == "huisartsen" and left["details"]["detail"] == "opgeheven"
    assert u["admin"].get("/audit/verify")["ok"] is True
    # the other members work on
    assert u["analist"].get("/me")["name"] == "analist"
