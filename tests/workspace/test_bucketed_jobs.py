"""Bucketed jobs through the services (issue 13 §2): the hub's decision, the owners' buckets, the engines' spool.

In process (cheap): the settings, the engine's inbox for bucket shares (attacks: wrong digest, plan
hash, bucket index or count, padded size, a duplicate bucket), its spool directory (0700, gone
after the job) and its memory budget. With the session's workspace (`ws`): one bucketed job end
to end, equal to the plain executor, and a datastation without the bucket key refusing.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import werkplaats as wp
from werkplaats.demo.workspace import LocalWorkspace
from werkplaats.synth.write import load_region
from werkplaats.workspace import pki
from werkplaats.workspace.bucketkey import BucketKeyError, BucketKeys
from werkplaats.workspace.client import JobFailed
from werkplaats.workspace.config import ConfigError, DatastationConfig, EngineConfig, HubConfig, job_settings
from werkplaats.workspace.engine import Engine
from werkplaats.workspace.hub.lifecycle import upper_rows
from werkplaats.workspace.messages import BucketPlan, JobPayload, ShareHeader, pack
from werkplaats.workspace.signing import canonical, sha256

from .live import PURPOSE, analysis, approve_all, assert_like_truth, connect, station, truth
from .test_attack_pinning import FakeHub, Node, _engine_toml, _job, _post
from .wait import wait_until

COUNT = 4


@pytest.fixture
def bnode(tmp_path: Path) -> Iterator[Node]:
    """An engine (in process) that took a job split into four buckets."""
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    cfg = EngineConfig.load(_engine_toml(tmp_path, pub))
    e = Engine(cfg)
    hub = FakeHub()
    e.hub = hub  # type: ignore[assignment]
    job = _job(tmp_path, cfg, 7, keys={"ggd": pub}, signer=tmp_path / "ggd.key")
    job = job.model_copy(update={"buckets": BucketPlan(count=COUNT, key_version=1)})
    e.take(job)
    assert 7 in e.jobs, hub.reasons()
    with TestClient(e.app()) as client:
        yield Node(e, client, hub, tmp_path / "ggd.key", job)


def _bucket(n: Node, bucket: int | None, *, buckets: int = COUNT, rows: int = 1024, plan_hash: str | None = None,
            damage: bool = False, size: int = 64, job: int = 7) -> bytes:  # fmt: skip
    blobs = [bytes([bucket or 0]) * size]
    h = ShareHeader(job=job, dataset="ggd/meldingen", organisation="ggd", rows=rows, share_blobs=[1],
                    digest=hashlib.sha256(blobs[0]).hexdigest(), plan_hash=plan_hash or n.job.plan_hash,
                    schema_sha256=sha256(canonical(n.job.schemas["ggd/meldingen"])),
                    rules_sha256=sha256(canonical(n.job.rules)), bucket=bucket,
                    buckets=buckets if bucket is not None else 0,
                    key_version=(n.job.buckets.key_version if n.job.buckets and bucket is not None
                                 else None))  # fmt: skip
    h = h.model_copy(update={"signature": pki.sign(pki.load_signing_key(n.key), canonical(h.signed_part()))})
    if damage:
        blobs = [bytes([255]) * size]  # NB: another share under the signed header (its digest no longer matches)
    return pack(h, blobs)


def test_settings_of_bucketed_jobs(tmp_path: Path) -> None:
    jobs = {"memory_budget_gb": 4, "pp": {"buckets": 8}}
    assert job_settings(jobs, "pp") == (4.0, 8) and job_settings(jobs, "other") == (4.0, 0)
    assert job_settings({}, "pp") == (2.0, 0)
    base = '[hub]\nlisten = "127.0.0.1:1"\nsigning_key = "k"\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n'
    for bad, why in (("buckets = 3", "power of two"), ("memory_budget_gb = 0", "positive"), ("bucket = 2", "unknown")):
        (tmp_path / "hub.toml").write_text(base + f"[jobs]\n{bad}\n")
        with pytest.raises(ConfigError, match=why):
            HubConfig.load(tmp_path / "hub.toml")
    (tmp_path / "hub.toml").write_text(base + "[jobs]\nmemory_budget_gb = 1.5\n[jobs.pp]\nbuckets = 4\n")
    assert job_settings(HubConfig.load(tmp_path / "hub.toml").jobs, "pp") == (1.5, 4)
    assert upper_rows(1200) == 1250 and upper_rows(990) == 995 and upper_rows(None) == 0


def test_engine_keeps_each_bucket_once_on_disk_and_runs_only_when_all_arrived(bnode: Node) -> None:
    e = bnode.engine
    for b in range(COUNT - 1):
        assert _post(bnode, _bucket(bnode, b)).status_code == 200
    assert e.next_ready() is None  # NB: a bucket is missing
    assert e.missing(7, e.jobs[7]) == [f"ggd/meldingen ({COUNT - 1} of {COUNT} buckets)"]
    r = _post(bnode, _bucket(bnode, 1, size=32))
    assert r.status_code == 409 and "bucket 1 of ggd/meldingen" in r.json()["detail"]  # NB: never overwritten
    assert e.spool.read(7, 0, 1)[1][0] == bytes([1]) * 64
    assert _post(bnode, _bucket(bnode, COUNT - 1)).status_code == 200
    job_dir = e.spool.job_dir(7)
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700 and len(list(job_dir.iterdir())) == COUNT
    assert not list((e.spool.root / "incoming").iterdir())  # NB: nothing left half-received
    assert e.next_ready() == 7
    e.drop(7)  # NB: the job ended, whatever happened
    assert not job_dir.exists() and 7 not in e.inbox


@pytest.mark.parametrize(
    ("change", "status", "why"),
    [
        ({"damage": True}, 400, "damaged (digest)"),
        ({"plan_hash": "0" * 64}, 403, "made for another plan"),
        ({"bucket": COUNT}, 403, f"job 7 has buckets 0 to {COUNT - 1}"),
        ({"buckets": 2}, 403, f"job 7 takes {COUNT} buckets"),
        ({"bucket": None}, 403, "is a whole table"),
    ],
    ids=["digest", "plan-hash", "bucket-index", "bucket-count", "unbucketed"],
)
def test_engine_refuses_a_wrong_bucket_share(bnode: Node, change: dict[str, object], status: int, why: str) -> None:
    kw: dict[str, object] = {"bucket": 0, **change}
    r = _post(bnode, _bucket(bnode, **kw))  # type: ignore[arg-type]
    assert r.status_code == status and why in r.json()["detail"], r.text
    assert 7 not in bnode.engine.inbox and not bnode.engine.spool.job_dir(7).exists()


def test_engine_refuses_another_padded_size_and_a_bucket_for_an_unbucketed_job(bnode: Node, tmp_path: Path) -> None:
    assert _post(bnode, _bucket(bnode, 0, rows=1024)).status_code == 200
    r = _post(bnode, _bucket(bnode, 1, rows=2048))
    assert r.status_code == 403 and "another padded size" in r.json()["detail"]
    plain = bnode.job.model_copy(update={"job": 8, "buckets": None})
    bnode.engine.take(plain)
    r = _post(bnode, _bucket(bnode, 0, job=8), job=8)
    assert r.status_code == 403 and "job 8 takes whole tables (unbucketed)" in r.json()["detail"]


def test_engine_refuses_a_job_over_its_memory_budget() -> None:
    from werkplaats.catalog.frictionless import from_frictionless
    from werkplaats.plan.serde import plan_to_dict
    from werkplaats.workspace.engine_run import check_memory
    from werkplaats.workspace.jobs import job_analysis

    from .test_attack_pinning import SCHEMA

    catalog = {"ggd/meldingen": from_frictionless("ggd/meldingen", SCHEMA)}
    plan = plan_to_dict(wp.scan("ggd/meldingen").group_by("gemeente").agg(n=wp.count()).to_plan())
    a = job_analysis(plan, catalog, {})
    check_memory(a, {"ggd/meldingen": 10_000}, True, 2.0)
    with pytest.raises(wp.WerkplaatsError, match=r"more than this engine's memory budget of 0\.5 GB"):
        check_memory(a, {"ggd/meldingen": 10_000_000}, True, 0.5)


# -- end to end, with the session's workspace (tests/conftest.py gives BUCKETED two buckets in hub.toml) ----------

BUCKETED = "pp-buckets"


def _bucketed_collaboration(ws: LocalWorkspace) -> None:
    """Create the collaboration whose jobs the hub splits in two buckets, its stewards linking their datasets."""
    adm = ws.client("admin")
    try:
        if any(c["name"] == BUCKETED for c in adm.get("/collaborations")):
            return
        adm.post("/collaborations", {"name": BUCKETED, "purpose": PURPOSE, "members": list(ws.organisations)})
    finally:
        adm.close()
    for o in ws.organisations:
        st = ws.client(f"steward-{o}")
        try:
            for d in ("ggd/meldingen", "huisartsen/patienten"):
                if d.startswith(o + "/"):
                    st.post(f"/collaborations/{BUCKETED}/datasets/{d}")
        finally:
            st.close()


def test_a_bucketed_job_equals_the_plain_executor_and_leaves_no_share_behind(ws: LocalWorkspace) -> None:
    _bucketed_collaboration(ws)
    c = connect(ws)
    req = c.submit(analysis(), collaboration=BUCKETED, purpose=PURPOSE)
    approve_all(ws, req.id, max_runs=3)
    # NB: no bucket key yet: the hub fails the job at once, naming the command that creates one (nothing moved)
    with pytest.raises(JobFailed, match=f"bucket-key create --collaboration {BUCKETED}"):
        req.run(timeout=60)
    keys = BucketKeys.from_config(DatastationConfig.load(ws.datastation_config("ggd")))
    try:
        version = keys.create(BUCKETED)
    finally:
        keys.close()
    # NB: a datastation that cannot get the version a job names refuses it (nothing sent)
    job = JobPayload.from_dict(
        {"v": 1, "job": 0, "request": req.id, "collaboration": BUCKETED, "purpose": PURPOSE, "plan": {},
         "plan_hash": "", "datasets": [], "columns": {}, "schemas": {}, "approvals": [], "organisation_keys": {},
         "engines": [], "state": "approved", "buckets": {"count": 2, "key_version": version + 5}})  # fmt: skip
    with pytest.raises(BucketKeyError, match=f"version {version + 5} of the bucket key of {BUCKETED}"):
        station(ws, "huisartsen").bucket_secret(job)
    got = req.run(timeout=600)
    assert isinstance(got, pd.DataFrame)
    region = load_region(ws.region)
    assert_like_truth(got, truth(region.tables, region.catalog))
    jid = int(got.attrs["job"])
    j = c.client.get(f"/jobs/{jid}")
    engines = [f"engine{i}" for i in range(3)]
    assert all(j["progress"][e].get("buckets") == 2 for e in engines), j["progress"]
    spools = [EngineConfig.load(ws.engine_config(i)).state_dir / "spool" / f"job{jid}" for i in range(3)]
    # NB: every engine drops the job's spool directory once the link has closed (just after the release)
    wait_until(lambda: not any(d.exists() for d in spools), 60, "the engines' spool directories of the job removed")
