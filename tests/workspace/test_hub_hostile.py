"""Hostile input through the hub (in process, SQLite and PostgreSQL): each gets a 4xx naming what is wrong."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from werkplaats.plan import limits
from werkplaats.workspace.signing import ApprovalLimits, approval_body, sign_approval

from . import test_hub
from .test_hub import _plan

hub = test_hub.hub  # NB: the in-process hub (SQLite and PostgreSQL) of the hub's API tests


def _with_predicate(pred: dict[str, Any]) -> dict[str, Any]:
    plan = _plan()
    plan["root"]["input"]["input"]["left"]["predicate"] = pred  # NB: aggregate ← with_columns ← join ← filter
    return plan


def _lit(t: str, v: Any) -> dict[str, Any]:
    return {"op": "gt", "left": {"op": "col", "name": "datum"}, "right": {"op": "lit", "type": t, "value": v}}


@pytest.mark.parametrize(
    "pred, says",
    [
        (_lit("float", math.nan), "NaN or Infinity"),
        (_lit("float", math.inf), "NaN or Infinity"),
        (_lit("date", 5), "a literal of type 'date' needs a JSON ISO date string"),
        (_lit("float", "x"), "a literal of type 'float' needs a JSON float"),
        (_lit("int", 10**400), "within ±2^53"),
    ],
)
def test_hostile_literals_get_422_naming_the_rule(hub: Any, pred: dict[str, Any], says: str) -> None:
    _h, u, _keys = hub
    a = u["analist"]
    text = json.dumps({"collaboration": "pp", "purpose": "x", "plan": _with_predicate(pred)})  # NB: NaN as JSON text
    r = a.c.post("/api/v1/requests", content=text, headers={**a.h, "content-type": "application/json"})
    assert r.status_code == 422 and says in r.json()["detail"], r.text


def test_deep_nesting_and_oversized_plans_get_422_naming_the_limit(hub: Any) -> None:
    _h, u, _keys = hub
    e: dict[str, Any] = {"op": "col", "name": "x"}
    for _ in range(16):
        e = {"op": "not", "arg": e}
    out = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _with_predicate(e)},
                            status=422)  # fmt: skip
    assert "unknown column 'x'" in out["detail"]  # NB: the schema check got through all 16 levels at once
    for _ in range(limits.MAX_PLAN_DEPTH):
        e = {"op": "not", "arg": e}
    out = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _with_predicate(e)},
                            status=422)  # fmt: skip
    assert f"nested more than {limits.MAX_PLAN_DEPTH} levels" in out["detail"]
    big = _with_predicate(_lit("str", "a" * limits.MAX_PLAN_BYTES))
    out = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": big}, status=422)
    assert f"larger than {limits.MAX_PLAN_BYTES} bytes" in out["detail"]
    long = "x" * (limits.MAX_PURPOSE_CHARS + 1)
    out = u["analist"].post("/requests", {"collaboration": "pp", "purpose": long, "plan": _plan()}, status=422)
    assert out["detail"][0]["loc"] == ["body", "purpose"]


def _signed(keys: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {"body": body, "signature": sign_approval(keys["huisartsen"], body)}


@pytest.mark.parametrize(
    "change, says",
    [
        ({"expires": None}, "'expires' must be present"),
        ({"expires": "soon"}, "'expires' must be an ISO 8601 date and time"),
        ({"expires": "2030-01-01T00:00:00"}, "'expires' must name its time zone"),
        ({"max_runs": None}, "'max_runs' must be a whole number"),
        ({"max_runs": "x"}, "'max_runs' must be a whole number"),
        ({"max_runs": 1.5}, "'max_runs' must be a whole number"),
        ({"max_runs": 0}, "'max_runs' must be a whole number of at least 1"),
        ({"max_runs": 10**9}, "more than the limit of 1000 (max_approval_runs)"),
        ({"expires": "2999-01-01T00:00:00+00:00"}, "expires more than 730 days ahead"),
        ({"mode": "all"}, "'mode' must be 'plan' or 'template'"),
    ],
)
def test_malformed_or_absurd_approvals_get_422_naming_the_field(hub: Any, change: dict[str, Any], says: str) -> None:
    _h, u, keys = hub
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
                         max_runs=5, steward="st-ha")  # fmt: skip
    bad = {k: v for k, v in {**body, **change}.items() if v is not None}
    out = u["st-ha"].post(f"/requests/{r['id']}/approvals", _signed(keys, bad), status=422)
    assert says in out["detail"]
    assert u["st-ha"].post(f"/requests/{r['id']}/approvals", _signed(keys, body))["status"] == "approved"


def test_the_hubs_approval_limits_are_its_own_configuration(hub: Any) -> None:
    h, u, keys = hub
    h.approval_limits = ApprovalLimits(max_days=3650, max_runs=10**6)
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=3000),
                         max_runs=10**5, steward="st-ha", limits=h.approval_limits)  # fmt: skip
    assert u["st-ha"].post(f"/requests/{r['id']}/approvals", _signed(keys, body))["status"] == "approved"
