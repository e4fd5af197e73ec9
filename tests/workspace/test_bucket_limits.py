"""Bucketed jobs within the engines' limits (issue 13 §2), in process and without MPC.

- `memory.share_bytes` bounds the share message a datastation really sends (encoded, shared and framed), tightly;
- the hub picks as many buckets as the larger of the memory budget and ``max_share_mb`` ask, and the job carries
  the catalog's rounded row counts;
- an engine refuses a job over its memory budget or share size limit when it takes it, before any owner sends:
  nothing can be sent to it (410), its spool stays empty, the reason names the setting. A job without row counts
  is left to the late check (the backstop, `engine_run.run_party`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import werkplaats as wp
from werkplaats.compile.layout import layout
from werkplaats.mpc.buckets import bucket_count, padded_size
from werkplaats.mpc.encode import encode
from werkplaats.mpc.runtime import precision_of
from werkplaats.mpc.share import share_arrays, share_dataset
from werkplaats.plan.serde import plan_from_dict, plan_hash, plan_to_dict
from werkplaats.synth.generate import generate
from werkplaats.synth.write import region_datasets
from werkplaats.workspace import db, engine_run, pki
from werkplaats.workspace.catalog_io import dataset_entry
from werkplaats.workspace.config import ConfigError, EngineConfig, HubConfig, job_setting
from werkplaats.workspace.engine import Engine
from werkplaats.workspace.hub import lifecycle
from werkplaats.workspace.jobs import catalog_of, job_analysis
from werkplaats.workspace.memory import (
    MB,
    SHARE_SLACK,
    SLOT_SLACK,
    check_memory,
    share_bytes,
    share_count,
    upper_rows,
)
from werkplaats.workspace.messages import BucketPlan, JobPayload, ShareHeader, pack
from werkplaats.workspace.signing import approval_body, sign_approval

from .test_attack_pinning import FakeHub, Node, _engine_toml, _job, _post, _share
from .test_hub import Api
from .test_hub import hub as hub  # NB: the in-process hub fixture (SQLite, PostgreSQL)

GP = "huisartsen/patienten"


def _analysis(frame: wp.LazyFrame, schemas: dict[str, Any]) -> Any:
    catalog = catalog_of(schemas)
    return job_analysis(plan_to_dict(frame.to_plan(catalog=catalog)), catalog, {})


def _analysis_of(job: JobPayload) -> Any:
    return job_analysis(job.plan, catalog_of(job.schemas), job.rules)


def _message(blobs_per_slot: list[list[bytes]], rows: int) -> int:
    """The size of the share message a datastation sends for these shares (its header as it signs it)."""
    blobs = [b for s in blobs_per_slot for b in s]
    counts = [len(s) for s in blobs_per_slot]
    h = ShareHeader(job=1, dataset=GP, organisation="huisartsen", rows=rows, share_blobs=counts, digest="0" * 64,
                    plan_hash="0" * 64, schema_sha256="0" * 64, rules_sha256="0" * 64, bucket=1, buckets=2,
                    key_version=1, signature="s" * 88)  # fmt: skip
    return len(pack(h, blobs))


@pytest.mark.parametrize("summary", [False, True], ids=["aggregate-fm64", "model-fm128"])
def test_share_bytes_bounds_the_message_a_datastation_sends(summary: bool) -> None:
    region = generate(3, 1000)
    schema = next(d.schema for d in region_datasets(region) if d.name == GP)
    frame = wp.scan(GP)
    frame = (frame.fit(wp.glm(y="medicatie", x=["chronische_aandoeningen", "geslacht"], family="gaussian")) if summary
             else frame.group_by("gemeente").agg(n=wp.count(), m=wp.col("medicatie").mean()))  # fmt: skip
    from werkplaats.catalog.frictionless import to_frictionless

    a = _analysis(frame, {GP: to_frictionless(schema)})
    df = region.tables[GP]
    whole = share_dataset(a, GP, df)[0]  # NB: party 0's share of every slot, as `Datastation.handle` sends it
    slots = layout(a, {GP: len(df)})
    got, est = _message(whole, len(df)), share_bytes(a, GP, len(df), bucketed=False)
    assert got <= est <= got + SHARE_SLACK + SLOT_SLACK * len(slots), (got, est)
    assert len(slots) >= 3 and got > len(df) * (32 if summary else 16) * 2  # NB: real columns, in the job's ring
    padded = padded_size(len(df), 2)  # NB: a bucket, padded (`Datastation.send_buckets`)
    bslots = layout(a, {GP: padded}, bucketed=True)
    part = share_arrays(encode(a, GP, df.iloc[: len(df) // 2], bslots), precision_of(a.plan))[0]
    got, est = _message(part, padded), share_bytes(a, GP, padded, bucketed=True)
    assert got <= est <= got + SHARE_SLACK + SLOT_SLACK * len(bslots), (got, est)


def test_share_count_is_the_fewest_buckets_whose_messages_fit() -> None:
    region = generate(3, 1000)
    from werkplaats.catalog.frictionless import to_frictionless

    schemas = {d.name: to_frictionless(d.schema) for d in region_datasets(region) if d.name == GP}
    a = _analysis(wp.scan(GP).group_by("wijk").agg(n=wp.count()), schemas)  # NB: a one-hot of 80 codes a row
    rows = {GP: 100_000}
    whole = share_bytes(a, GP, 100_000, bucketed=False)
    assert share_count(a, rows, whole) == 1 and share_count(a, rows, whole - 1) == 2
    for limit in (whole // 2, whole // 5, whole // 40):
        c = share_count(a, rows, limit)
        assert c & (c - 1) == 0 and share_bytes(a, GP, padded_size(100_000, c), bucketed=True) <= limit
        assert share_bytes(a, GP, padded_size(100_000, c // 2), bucketed=c > 2) > limit  # NB: the fewest
    with pytest.raises(wp.WerkplaatsError, match="raise max_share_mb"):
        share_count(a, rows, SHARE_SLACK)  # NB: not even a bucket of the smallest padded size fits


def test_max_share_mb_in_hub_toml(tmp_path: Path) -> None:
    base = '[hub]\nlisten = "127.0.0.1:1"\nsigning_key = "k"\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n'
    for bad in ("max_share_mb = 0", 'max_share_mb = "64"', "max_share_mb = true"):
        (tmp_path / "hub.toml").write_text(base + f"[jobs]\n{bad}\n")
        with pytest.raises(ConfigError, match="max_share_mb must be a positive number of megabytes"):
            HubConfig.load(tmp_path / "hub.toml")
    (tmp_path / "hub.toml").write_text(base + "[jobs]\nmax_share_mb = 256\n[jobs.pp]\nmax_share_mb = 64.5\n")
    jobs = HubConfig.load(tmp_path / "hub.toml").jobs
    assert job_setting(jobs, "pp", "max_share_mb") == 64.5 and job_setting(jobs, "other", "max_share_mb") == 256
    assert job_setting({}, "pp", "max_share_mb") == 512 and job_setting({"pp": {}}, "pp", "buckets") == 0


# -- the hub: the bucket count respects max_share_mb ----------------------------------------------------------------


def _gp_request(u: dict[str, Api], keys: dict[str, Any], frame: wp.LazyFrame, runs: int) -> dict[str, Any]:
    r = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": plan_to_dict(frame.to_plan())})
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         max_runs=runs, steward="st-ha")  # fmt: skip
    u["st-ha"].post(f"/requests/{r['id']}/approvals", {"body": body, "signature": sign_approval(keys["huisartsen"],
                                                                                                   body)})  # fmt: skip
    return r


def test_the_hub_picks_enough_buckets_for_the_share_size_limit(hub: Any) -> None:
    h, u, keys = hub
    region = generate(3, 1000)
    schema = next(d.schema for d in region_datasets(region) if d.name == GP)
    u["st-ha"].put(f"/datasets/{GP}", dataset_entry(schema, title="p", row_count=9000))  # NB: at most 9,050 rows
    frame = wp.scan(GP).group_by("wijk").agg(n=wp.count())
    r = _gp_request(u, keys, frame, runs=10)
    with h.sessions() as s:
        a = job_analysis(r["plan"], catalog_of(lifecycle.catalog_docs(s, [GP])), {})
    whole = share_bytes(a, GP, upper_rows(9000), bucketed=False)

    def run(limit: float | None, budget: float = 2.0) -> tuple[dict[str, Any], JobPayload]:
        h.jobs = {"pp": {"memory_budget_gb": budget, **({"max_share_mb": limit / MB} if limit else {})}}
        jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
        with h.sessions() as s:
            j = s.get(db.Job, jid)
            assert j is not None
            return {"state": j.state, "reason": j.reason, "buckets": j.buckets}, lifecycle.payload(s, j)

    # NB: no bucket key yet: the job fails at once, saying what asked for the buckets
    j, _ = run(whole * 0.9)
    assert j["state"] == "failed" and j["reason"].startswith(
        f"the job needs 2 buckets (the share size limit of {whole * 0.9 / MB:g} MB per message (max_share_mb))"
    ), j
    with h.sessions() as s:  # NB: a version of the key as the hub keeps it (envelopes it cannot open)
        collab = s.query(db.Collaboration).filter_by(name="pp").one()
        s.add(db.BucketKeySet(collaboration_id=collab.id, version=1, creator="huisartsen", manifest={},
                              signature="s", envelopes={}))  # fmt: skip
        s.commit()
    got = {}
    for limit in (None, whole, whole * 0.9, whole * 0.5):
        j, p = run(limit)
        assert j["state"] == "approved", j
        got[limit] = p.buckets.count if p.buckets is not None else 1
        assert p.row_counts == {GP: 9000}  # NB: the catalog's rounded count: the engines' early check
    assert list(got.values()) == [1, 1, 2, 4], got
    # NB: the larger count wins, whichever of the memory budget and the share size limit asks for more
    assert bucket_count(a, {GP: upper_rows(9000)}, 0.7) == 2 and bucket_count(a, {GP: upper_rows(9000)}, 0.65) == 8
    for limit, budget, want in ((None, 0.7, 2), (whole * 0.5, 0.7, 4), (whole * 0.9, 0.65, 8)):
        j, p = run(limit, budget=budget)
        assert p.buckets == BucketPlan(count=want, key_version=1), (limit, budget, j)


# -- an engine refuses a job over its limits when it takes it ------------------------------------------------------


def _engine(tmp_path: Path, **settings: Any) -> tuple[Engine, FakeHub, JobPayload]:
    """An engine in process (engine.toml with these settings) whose hub records what it reports, and a job for it.

    The job's plan is checked and pruned as the hub stores it (its sources list the columns they read).
    """
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    e = Engine(EngineConfig.load(_engine_toml(tmp_path, pub, **settings)))
    hub = FakeHub()
    e.hub = hub  # type: ignore[assignment]
    job = _job(tmp_path, e.cfg, 7, keys={"ggd": pub}, signer=tmp_path / "ggd.key")
    catalog = catalog_of(job.schemas)
    plan = plan_to_dict(wp.scan("ggd/meldingen").group_by("gemeente").agg(n=wp.count()).to_plan(catalog=catalog))
    h = plan_hash(plan_from_dict(plan))
    body = {**job.approvals[0].body, "plan": plan, "plan_hash": h}
    appr = {"body": body, "signature": sign_approval(pki.load_signing_key(tmp_path / "ggd.key"), body)}
    doc = {**job.to_dict(), "plan": plan, "plan_hash": h, "approvals": [appr]}
    return e, hub, JobPayload.from_dict(doc)


@pytest.mark.parametrize(
    ("settings", "rows", "buckets", "why"),
    [
        (
            {"memory_budget_gb": 0.3},
            1000,
            None,
            r"the party would need about 0\.5 GB for the job, more than this engine's memory budget of 0\.3 GB "
            r"\(memory_budget_gb in engine\.toml\): refused",
        ),
        ({"memory_budget_gb": 0.3}, 1000, 2, r"about 0\.5 GB per bucket, .* memory budget of 0\.3 GB"),
        (
            {"max_share_mb": 0.05},
            20_000,
            None,
            r"a share message of ggd/meldingen would be about 0\.6\d+ MB for the table, more than this engine's "
            r"max_share_mb of 0\.05 MB \(engine\.toml\): refused",
        ),
        (
            {"max_share_mb": 0.3},
            200_000,
            4,
            r"share message of ggd/meldingen would be about 2\.\d+ MB per bucket, more than .* max_share_mb of 0\.3 MB",
        ),
    ],
    ids=["memory", "memory-per-bucket", "share-size", "share-size-per-bucket"],
)
def test_an_engine_refuses_a_job_over_its_limits_when_it_takes_it(
    tmp_path: Path, settings: dict[str, Any], rows: int, buckets: int | None, why: str
) -> None:
    e, hub, job = _engine(tmp_path, **settings)
    plan = BucketPlan(count=buckets, key_version=1) if buckets else None
    job = job.model_copy(update={"row_counts": {"ggd/meldingen": rows}, "buckets": plan})
    e.take(job)
    assert 7 not in e.jobs and 7 in e.ended
    reasons = [r for r in hub.reasons() if r]  # NB: the first report ("verifying") has none
    assert len(reasons) == 1 and re.search(why, reasons[0]), reasons
    with TestClient(e.app()) as client:
        assert client.get("/jobs/7").status_code == 410  # NB: a datastation asks before it sends: nothing sent
        n = Node(e, client, hub, tmp_path / "ggd.key", job)
        assert _post(n, _share(n, key=tmp_path / "ggd.key")).status_code == 410
    assert not e.spool.job_dir(7).exists() and 7 not in e.inbox


def test_an_engine_takes_a_job_within_its_limits_and_one_without_row_counts(tmp_path: Path) -> None:
    e, hub, job = _engine(tmp_path, memory_budget_gb=0.6, max_share_mb=1)
    big = job.model_copy(update={"row_counts": {"ggd/meldingen": 200_000}})
    e.take(big.model_copy(update={"buckets": BucketPlan(count=16, key_version=1)}))  # NB: 16 buckets of 14,336 rows
    assert 7 in e.jobs, hub.reasons()
    e.take(big.model_copy(update={"job": 8}))  # NB: the same rows unbucketed: over the memory budget
    assert 8 not in e.jobs and "memory budget of 0.6 GB" in hub.reasons()[-1], hub.reasons()
    e.take(job.model_copy(update={"job": 9}))  # NB: no row counts (an older hub): the late check is the backstop
    assert 9 in e.jobs
    with pytest.raises(wp.WerkplaatsError, match=r"memory budget of 0\.6 GB"):
        check_memory(_analysis_of(job), {"ggd/meldingen": 200_000}, False, 0.6)  # NB: what the late check says
    assert engine_run.check_memory is check_memory  # NB: one model and one message, early and late


def test_a_bug_in_the_early_check_fails_no_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    e, hub, job = _engine(tmp_path)

    def broken(*args: Any, **kw: Any) -> float:
        raise ZeroDivisionError

    monkeypatch.setattr("werkplaats.mpc.buckets.estimate_bytes", broken)
    e.take(job.model_copy(update={"row_counts": {"ggd/meldingen": 1000}}))
    assert 7 in e.jobs and not [r for r in hub.reasons() if r]  # NB: taken; the late check still runs
