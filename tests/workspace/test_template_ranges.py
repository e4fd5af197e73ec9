"""Template approvals vary only the literals the steward names, within the ranges the steward sets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

import werkplaats as wp
from werkplaats.plan.serde import plan_to_dict
from werkplaats.synth.schemas import datasets
from werkplaats.workspace import pki
from werkplaats.workspace.approvals import Scope, verify, verify_job
from werkplaats.workspace.catalog_io import dataset_entry
from werkplaats.workspace.messages import JobPayload, JobState, SignedApproval
from werkplaats.workspace.signing import (
    ApprovalError,
    approval_body,
    literals,
    parse_range,
    sign_approval,
)

from .test_hub import Api, hub  # noqa: F401  (fixture)

YEAR_2024 = {"min": "2024-01-01", "max": "2024-12-31"}


def _plan(since: dt.date) -> dict[str, Any]:
    q = wp.scan("ggd/meldingen").filter(wp.col("eerste_ziektedag") >= since).agg(n=wp.count())
    return plan_to_dict(q.to_plan())


def _body(plan: dict[str, Any], **kw: Any) -> dict[str, Any]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    args = {"organisation": "ggd", "collaboration": "pp", "purpose": "x", "plan": plan, "plan_hash": "h" * 64,
            "expires": expires, "max_runs": 5, "steward": "st-ggd"} | kw  # fmt: skip
    return approval_body(**args)


def _pointer(plan: dict[str, Any]) -> str:
    ((p, _),) = literals(plan)
    return p


def test_parse_range_reads_numbers_dates_and_lists() -> None:
    assert parse_range("/root/x=2020:2026") == ("/root/x", {"min": 2020, "max": 2026})
    assert parse_range("/root/x=2024-01-01:2024-12-31") == ("/root/x", YEAR_2024)
    assert parse_range("/root/x=R74,R80") == ("/root/x", {"values": ["R74", "R80"]})
    with pytest.raises(ApprovalError, match="POINTER=MIN:MAX"):
        parse_range("2020:2026")


def test_a_template_approval_without_a_range_is_refused_at_signing() -> None:
    plan = _plan(dt.date(2024, 1, 1))
    p = _pointer(plan)
    with pytest.raises(ApprovalError, match="no range for the varied literal"):
        _body(plan, vary=[p])
    with pytest.raises(ApprovalError, match="no range for the varied literal"):
        _body(plan, vary=[p], ranges={"/root/other": YEAR_2024})
    with pytest.raises(ApprovalError, match="must be"):
        _body(plan, vary=[p], ranges={p: {"min": "2024-12-31", "max": "2024-01-01"}})
    with pytest.raises(ApprovalError, match="outside the range"):  # NB: the plan the steward read must be in it
        _body(plan, vary=[p], ranges={p: {"min": "2025-01-01", "max": "2025-12-31"}})


def test_a_signed_template_approval_without_ranges_is_refused_at_verification(tmp_path: Path) -> None:
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    key = pki.load_signing_key(tmp_path / "ggd.key")
    plan = _plan(dt.date(2024, 1, 1))
    body = _body(plan, vary=[_pointer(plan)], ranges={_pointer(plan): YEAR_2024})
    del body["ranges"]  # NB: as an approval from before ranges, or one a steward's own tool signed without them
    appr = SignedApproval(body=body, signature=sign_approval(key, body))
    with pytest.raises(ApprovalError, match="needs 'ranges'"):
        verify(appr, key=pub, scope=Scope("pp", "x", plan, "unused"), runs_used=0)


def test_attack_template_rerun_with_a_value_outside_the_range_is_refused_by_the_hub(hub: Any) -> None:  # noqa: F811
    """Another scientist re-runs the approved template with a new literal (a differencing attack's second query)."""
    _, u, keys = hub
    tweede = Api(u["admin"].c, u["admin"].post("/users", {"name": "tweede", "role": "scientist",
                                                         "organisation": "huisartsen"})["token"])  # fmt: skip
    r1 = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan(dt.date(2024, 3, 1))})
    p = _pointer(r1["plan"])
    assert "  - n: count, " in u["analist"].get(f"/requests/{r1['id']}")["explain"]  # NB: the rules per output
    body = _body(r1["plan"], plan_hash=r1["plan_hash"], vary=[p], ranges={p: YEAR_2024})
    u["st-ggd"].post(f"/requests/{r1['id']}/approvals", {"body": body, "signature": sign_approval(keys["ggd"], body)})
    inside = tweede.post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan(dt.date(2024, 3, 2))})
    assert tweede.post(f"/requests/{inside['id']}/run")["state"] == "approved"  # NB: by the template, in range
    outside = tweede.post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan(dt.date(2023, 3, 2))})
    refused = tweede.post(f"/requests/{outside['id']}/run", status=409)
    assert p in str(refused) and "from '2024-01-01' to '2024-12-31'" in str(refused)


def test_attack_template_rerun_with_a_value_outside_the_range_is_refused_by_a_datastation(tmp_path: Path) -> None:
    """A hub that hands out the job anyway: the datastation checks the approval itself (as Datastation.handle)."""
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    key = pki.load_signing_key(tmp_path / "ggd.key")
    approved = _plan(dt.date(2024, 3, 1))
    p = _pointer(approved)
    body = _body(approved, vary=[p], ranges={p: YEAR_2024})
    appr = SignedApproval(body=body, signature=sign_approval(key, body))
    schema = next(d.schema for d in datasets(("GM1",), ("WK1",)) if d.name == "ggd/meldingen")

    def job(since: dt.date) -> JobPayload:
        plan = _plan(since)
        return JobPayload(job=1, request=1, collaboration="pp", purpose="x", plan=plan, plan_hash="unused",
                          datasets=["ggd/meldingen"], columns={"ggd/meldingen": ["eerste_ziektedag"]},
                          schemas={"ggd/meldingen": dataset_entry(schema)["table_schema"]}, approvals=[appr],
                          organisation_keys={"ggd": pub}, engines=[], state=JobState.APPROVED)  # fmt: skip

    def datastation_check(j: JobPayload) -> list[str]:
        return verify_job(j, organisations=["ggd"], runs_used={}, keys={"ggd": pub})

    assert len(datastation_check(job(dt.date(2024, 12, 1)))) == 1
    with pytest.raises(ApprovalError, match="outside the range the steward approved") as e:
        datastation_check(job(dt.date(2019, 1, 1)))
    assert p in str(e.value) and "from '2024-01-01' to '2024-12-31'" in str(e.value)


def test_the_published_schema_marks_the_person_key() -> None:
    schema = next(d.schema for d in datasets(("GM1",), ("WK1",)) if d.name == "ggd/meldingen")
    plain = wp.TableSchema(schema.name, tuple(c if c.name != "bsn" else
                                              type(c)(c.name, c.type, None, c.minimum, c.maximum) for c in
                                              schema.columns))  # fmt: skip
    assert plain.column("bsn").role == ""
    fields = {f["name"]: f for f in dataset_entry(plain, person_key="bsn")["table_schema"]["fields"]}
    assert fields["bsn"]["werkplaats:role"] == "person_key"


def test_the_steward_cli_takes_a_range_per_varied_literal() -> None:
    from typer.testing import CliRunner

    from werkplaats.cli.app import app

    out = CliRunner().invoke(app, ["datastation", "approve", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "--range" in out.stdout and "POINTER=MIN:MAX" in out.stdout
