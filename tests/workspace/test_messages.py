"""The node protocol: every message round-trips, carries its version, and refuses versions it does not speak."""

from __future__ import annotations

import json
from typing import Any

import pytest

from werkplaats.workspace import messages as m

PLAN = {"format": "werkplaats-plan/v1", "root": {"op": "source", "dataset": "ggd/meldingen"}}
APPROVAL = {"body": {"kind": "werkplaats-approval/v1", "organisation": "ggd"}, "signature": "c2ln"}
ENGINES = [{"party": i, "name": f"engine{i}", "url": f"https://e{i}:8410", "mpc": f"e{i}:8420"} for i in range(3)]

# What each message looked like on the wire before it was typed, plus "v": in the same key order.
WIRE: dict[type[m.Message], dict[str, Any]] = {
    m.JobPayload: {"v": 1, "job": 7, "request": 3, "collaboration": "pp", "purpose": "paraatheid", "plan": PLAN,
                   "plan_hash": "a" * 64, "datasets": ["ggd/meldingen"], "columns": {"ggd/meldingen": ["bsn"]},
                   "schemas": {"ggd/meldingen": {"fields": [{"name": "bsn", "type": "integer"}]}},
                   "approvals": [APPROVAL], "organisation_keys": {"ggd": "a2V5"}, "engines": ENGINES,
                   "state": "approved"},
    m.JobStatus: {"v": 1, "job": 7, "state": "running", "reason": "", "progress": {"engine0": "compiled",
                                                                                  "ds-ggd": None}},
    m.ProgressReport: {"v": 1, "state": "done", "reason": "", "detail": {"run_s": 1.5, "bytes_sent": 1024}},
    m.ContributionRecord: {"v": 1, "kind": "werkplaats-contribution/v1", "organisation": "ggd", "job": 7,
                           "request": 3, "plan_hash": "a" * 64, "approval": "0123456789abcdef",
                           "datasets": ["ggd/meldingen"], "columns": {"ggd/meldingen": ["bsn"]},
                           "rows": {"ggd/meldingen": 1200}, "engines": ["engine0", "engine1", "engine2"],
                           "at": "2025-01-02T03:04:05.678901+00:00"},
    m.ShareHeader: {"v": 1, "job": 7, "dataset": "ggd/meldingen", "organisation": "ggd", "rows": 1234,
                    "share_blobs": [3, 3], "digest": "d" * 64, "plan_hash": "a" * 64, "schema_sha256": "e" * 64,
                    "rules_sha256": "f" * 64, "bucket": None, "buckets": 0, "key_version": None, "signature": "c2ln"},
    m.ResultShare: {"v": 1, "share_blobs": [2, 2, 2]},
}  # fmt: skip
WIRE[m.Contribution] = {"v": 1, "record": WIRE[m.ContributionRecord], "signature": "c2ln"}
WIRE[m.AuditHead] = {"v": 1, "kind": "werkplaats-audit-head/v1", "hub": "hub", "seq": 12, "hash": "b" * 64,
                     "at": "2025-01-02T03:04:05.678901+00:00", "signature": "c2ln"}  # fmt: skip
WIRE[m.JobPayload] = {
    **WIRE[m.JobPayload],
    "audit_head": WIRE[m.AuditHead],
    "rules": {"counts": "round", "dominance_pct": 80.0},
    "registered": [
        {
            "plan": "{}",
            "released": [["A"]],
            "universe": '["rows", "ggd/meldingen"]',
            "rules": {},
            "request": "2",
            "job": "5",
        }
    ],
    "buckets": {"count": 4, "key_version": 2},
    "row_counts": {"ggd/meldingen": 1200},
}
WIRE[m.JobStatus] = {**WIRE[m.JobStatus], "audit_head": WIRE[m.AuditHead]}
WIRE[m.NothingSentRecord] = {"v": 1, "kind": "werkplaats-nothing-sent/v1", "organisation": "ggd", "job": 7,
                             "request": 3, "approval": "0123456789abcdef", "reason": "job cancelled",
                             "at": "2025-01-02T03:04:05.678901+00:00"}  # fmt: skip
WIRE[m.NothingSent] = {"v": 1, "record": WIRE[m.NothingSentRecord], "signature": "c2ln"}


def test_every_message_type_is_listed_and_covered() -> None:
    defined = {c for c in vars(m).values() if isinstance(c, type) and issubclass(c, m.Message) and c is not m.Message}
    assert set(m.MESSAGES) == defined == set(WIRE)


@pytest.mark.parametrize("kind", m.MESSAGES, ids=lambda k: k.__name__)
def test_round_trip_keeps_the_wire_format(kind: type[m.Message]) -> None:
    doc = WIRE[kind]
    msg = kind.from_dict(json.loads(json.dumps(doc)))
    assert msg.to_dict() == doc
    assert list(msg.to_dict()) == list(doc)  # NB: the same keys in the same order, "v" first
    assert json.dumps(msg.to_dict()) == json.dumps(doc)
    assert kind.from_dict(msg.to_dict()) == msg


@pytest.mark.parametrize("kind", m.MESSAGES, ids=lambda k: k.__name__)
def test_unknown_or_missing_version_is_refused(kind: type[m.Message]) -> None:
    with pytest.raises(m.MessageError, match=f"{kind.NAME}: version 2 is not supported; this node speaks version 1"):
        kind.from_dict({**WIRE[kind], "v": 2})
    with pytest.raises(m.MessageError, match=f"{kind.NAME}: version True is not supported"):
        kind.from_dict({**WIRE[kind], "v": True})
    without = {k: v for k, v in WIRE[kind].items() if k != "v"}
    with pytest.raises(m.MessageError, match=f"{kind.NAME}: no version"):
        kind.from_dict(without)
    with pytest.raises(ValueError, match="version 2 is not supported"):
        kind.model_validate({**WIRE[kind], "v": 2})  # NB: also where FastAPI reads it as a request body


def test_malformed_messages_are_refused_without_echoing_values() -> None:
    with pytest.raises(m.MessageError, match="share header: rows: "):
        m.ShareHeader.from_dict({**WIRE[m.ShareHeader], "rows": "geheim-1234"})
    try:
        m.ShareHeader.from_dict({**WIRE[m.ShareHeader], "rows": "geheim-1234"})
    except m.MessageError as e:
        assert "geheim" not in str(e)
    with pytest.raises(m.MessageError, match="values: Extra inputs are not permitted"):
        m.ResultShare.from_dict({**WIRE[m.ResultShare], "values": [1, 2]})
    with pytest.raises(m.MessageError, match="job payload: not a JSON object"):
        m.JobPayload.from_dict([1])
    with pytest.raises(m.MessageError, match="progress report: state"):
        m.ProgressReport.from_dict({"v": 1, "state": "halfway"})
    with pytest.raises(m.MessageError, match=r"contribution: record: .*version 3"):
        m.Contribution.from_dict({**WIRE[m.Contribution], "record": {**WIRE[m.ContributionRecord], "v": 3}})


def test_framed_messages_round_trip_and_check_their_blob_counts() -> None:
    blobs = [bytes([i]) * (i + 1) for i in range(6)]
    header = m.ShareHeader.from_dict(WIRE[m.ShareHeader] | {"share_blobs": [2, 4]})
    got, got_blobs = m.unpack(m.ShareHeader, m.pack(header, blobs))
    assert got == header and got_blobs == blobs
    res = m.ResultShare(share_blobs=[1, 1])
    assert m.unpack(m.ResultShare, m.pack(res, blobs[:2])) == (res, blobs[:2])
    with pytest.raises(m.MessageError, match="3 blobs do not match the counts of 2 shares"):
        m.unpack(m.ResultShare, m.pack(res, blobs[:3]))
    with pytest.raises(m.MessageError, match="result share: not a framed message"):
        m.unpack(m.ResultShare, b"\x05\x00")
    with pytest.raises(m.MessageError, match="share header: version 2"):
        m.unpack(m.ShareHeader, m.pack(m.ResultShare(share_blobs=[]), []).replace(b'"v": 1', b'"v": 2'))


def test_the_share_signature_covers_every_other_field() -> None:
    header = m.ShareHeader.from_dict(WIRE[m.ShareHeader])
    part = header.signed_part()
    assert "signature" not in part and set(part) == set(WIRE[m.ShareHeader]) - {"signature"}
    assert part["v"] == 1


def test_a_bucketed_share_names_its_bucket_and_a_bucket_plan_is_checked() -> None:
    header = m.ShareHeader.from_dict(WIRE[m.ShareHeader] | {"bucket": 3, "buckets": 4, "key_version": 2})
    assert header.signed_part()["bucket"] == 3 and header.signed_part()["buckets"] == 4
    assert header.signed_part()["key_version"] == 2  # NB: signed: a hub cannot relabel the key an owner split with
    with pytest.raises(m.MessageError, match="share header: bucket"):
        m.ShareHeader.from_dict(WIRE[m.ShareHeader] | {"bucket": -1, "buckets": 4})
    with pytest.raises(m.MessageError, match=r"job payload: buckets\.count"):
        m.JobPayload.from_dict(WIRE[m.JobPayload] | {"buckets": {"count": 1, "key_version": 1}})
    with pytest.raises(m.MessageError, match=r"job payload: buckets\.key_version"):
        m.JobPayload.from_dict(WIRE[m.JobPayload] | {"buckets": {"count": 2, "key_version": 0}})
    assert m.JobPayload.from_dict(WIRE[m.JobPayload] | {"buckets": None}).buckets is None


def test_job_states_are_the_strings_of_the_database() -> None:
    assert [s.value for s in m.JobState] == ["approved", "running", "succeeded", "failed"]
    assert [s for s in m.JobState if s.ended] == [m.JobState.SUCCEEDED, m.JobState.FAILED]
    assert m.JobState("running") == "running"
    assert set(m.json_schemas()) == {k.__name__ for k in m.MESSAGES}
