"""Attacks on the scale work through the services (issue 13): the bucket key and bucketed shares.

Played in process (no MPC, no workspace): a lying hub that serves another collaboration's key
set, a job's old key version or different key versions to different owners; a member without data,
or an organisation outside the set's recipients, creating the key; an engine offered a bucket share
replayed into another job, relabelled to another bucket index, or with a negative index; a hub that
leaves one organisation of a union out of the job's dataset list. What test_bucketkey.py,
test_bucketed_jobs.py and test_union_approvals.py already play is not repeated. Tests marked
``xfail(strict=True)`` show a weakness that is still open, with where to fix it in their reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

import werkplaats as wp
from werkplaats.mpc import wire
from werkplaats.plan.serde import plan_from_dict, plan_hash, plan_to_dict
from werkplaats.workspace import bucketkey as bk
from werkplaats.workspace import db, pki
from werkplaats.workspace.bucketkey import BucketKeyError, BucketKeys
from werkplaats.workspace.config import EngineConfig
from werkplaats.workspace.datastation import Datastation
from werkplaats.workspace.engine import Engine
from werkplaats.workspace.http import HubError
from werkplaats.workspace.messages import BucketPlan, JobPayload, ShareHeader, pack, unpack
from werkplaats.workspace.signing import approval_body, canonical, sha256, sign_approval

from .test_attack_pinning import FakeHub, Node, _engine_toml, _job, _post
from .test_bucketed_jobs import COUNT, _bucket
from .test_bucketed_jobs import bnode as bnode
from .test_bucketkey import Env, HubApi, _ready, _refused
from .test_bucketkey import env as env
from .test_hub import hub as hub


@pytest.fixture
def database(tmp_path: Path) -> str:
    """SQLite only: these attacks are on the nodes' checks, which test_bucketkey runs on PostgreSQL too."""
    return f"sqlite:///{tmp_path / 'hub.db'}"


def _sealed(env: Env, *, creator: str, recipients: dict[str, BucketKeys], collaboration: str = "pp",
            version: int = 1, secret: bytes = b"\x07" * 32) -> dict[str, Any]:  # fmt: skip
    """A key set made and signed by creator (with its own, pinned signing key), sealed to the recipients."""
    pubs = {o: bk.encryption_public_b64(k.encryption_key()) for o, k in recipients.items()}
    manifest, envs = bk.key_set(secret, collaboration=collaboration, version=version, creator=creator, recipients=pubs)
    return {"manifest": manifest, "signature": pki.sign(env.keys[creator], bk.canonical(manifest)), "envelopes": envs}


def _make_member(env: Env, org: str) -> None:
    """Add org to collaboration pp as a member (it has no dataset in pp)."""
    with env.h.sessions() as s:
        collab = s.scalars(select(db.Collaboration).where(db.Collaboration.name == "pp")).one()
        o = s.scalars(select(db.Organisation).where(db.Organisation.name == org)).one()
        s.add(db.Member(collaboration_id=collab.id, organisation_id=o.id))
        s.commit()


# -- a lying hub and the bucket key ------------------------------------------------------------------


def test_a_hub_serving_another_collaborations_genuine_key_set_is_refused(env: Env) -> None:
    """The hub answers a request for pp's key with a real, correctly signed key set of collaboration qq."""
    ggd, ha = _ready(env)
    ggd.create("pp")  # NB: the honest version 1 of pp, which the hub replaces on the way
    qq = _sealed(env, creator="ggd", recipients={"ggd": ggd, "huisartsen": ha}, collaboration="qq")

    def other(method: str, path: str, doc: Any) -> Any:
        if path.endswith("/bucket-keys/1"):
            return {"manifest": qq["manifest"], "signature": qq["signature"], "envelope": qq["envelopes"]["huisartsen"]}
        return doc

    _refused(env.station("huisartsen", other), 1, r"sent version 1 of 'qq'")
    # the envelope alone is bound to its collaboration too: relabelled, it does not open
    with pytest.raises(BucketKeyError, match="does not decrypt"):
        raw = bk._b64decode(qq["envelopes"]["huisartsen"], "the envelope")
        bk.open_envelope(raw, ha.encryption_key(), bk.envelope_aad("pp", 1, "huisartsen", "ggd"))


def test_a_member_without_data_cannot_create_the_bucket_key(env: Env) -> None:
    ggd, ha = _ready(env)
    _make_member(env, "ggz")
    body = _sealed(env, creator="ggz", recipients={"ggd": ggd, "huisartsen": ha})
    api = HubApi(env.u["admin"].c, env.tokens["ggz"], "ds-ggz")
    with pytest.raises(HubError, match="403"):
        api.post("/collaborations/pp/bucket-keys", body)


def test_a_key_set_whose_creator_sealed_no_envelope_to_itself_is_refused(env: Env) -> None:
    ggd, ha = _ready(env)
    ggd.create("pp")  # NB: the honest version 1 of pp, which the hub replaces on the way
    forged = _sealed(env, creator="ggz", recipients={"ggd": ggd, "huisartsen": ha})

    def lie(method: str, path: str, doc: Any) -> Any:
        if path.endswith("/bucket-keys/1"):
            return {"manifest": forged["manifest"], "signature": forged["signature"],
                    "envelope": forged["envelopes"]["huisartsen"]}  # fmt: skip
        return doc

    _refused(env.station("huisartsen", lie), 1, "creator")


def _station(keys: BucketKeys, env: Env, org: str) -> Any:
    """The parts of a running `Datastation` that `Datastation.bucket_secret` reads."""
    st = keys.station
    assert st is not None
    cfg = SimpleNamespace(organisations={o: p for o, p in env.pins.items() if o != org}, organisation=org,
                          name=st.node, state_dir=keys.state_dir)  # fmt: skip
    return SimpleNamespace(cfg=cfg, public_key=env.pins[org], key=st.signing_key, hub=st.hub, log=st.log)


def test_a_job_naming_a_rotated_out_key_version_is_refused(env: Env) -> None:
    ggd, ha = _ready(env)
    ggd.create("pp")
    ggd.create("pp")  # NB: rotated (say, a member left holding version 1)
    assert ha.get("pp", 2) != ha.get("pp", 1)
    ds = _station(ha, env, "huisartsen")
    honest = SimpleNamespace(collaboration="pp", buckets=BucketPlan(count=2, key_version=2))
    assert Datastation.bucket_secret(ds, honest) == ha.get("pp", 2)  # type: ignore[arg-type]
    stale = SimpleNamespace(collaboration="pp", buckets=BucketPlan(count=2, key_version=1))
    with pytest.raises(BucketKeyError, match="older than version 2"):
        Datastation.bucket_secret(ds, stale)  # type: ignore[arg-type]


# -- a lying hub and the bucket shares ---------------------------------------------------------------


def test_engine_refuses_buckets_split_with_another_key_version(bnode: Node) -> None:
    assert bnode.job.buckets == BucketPlan(count=COUNT, key_version=1)
    blobs = [b"\x00" * 64]
    h = ShareHeader(job=7, dataset="ggd/meldingen", organisation="ggd", rows=1024, share_blobs=[1],
                    digest=hashlib.sha256(blobs[0]).hexdigest(), plan_hash=bnode.job.plan_hash,
                    schema_sha256=sha256(canonical(bnode.job.schemas["ggd/meldingen"])),
                    rules_sha256=sha256(canonical(bnode.job.rules)), bucket=0, buckets=COUNT,
                    key_version=2)  # fmt: skip
    h = h.model_copy(update={"signature": pki.sign(pki.load_signing_key(bnode.key), canonical(h.signed_part()))})
    r = _post(bnode, pack(h, blobs))
    assert r.status_code == 403 and "version 2 of the bucket key" in r.json()["detail"], r.text


def test_engine_refuses_a_bucket_share_replayed_into_another_job_or_bucket(bnode: Node) -> None:
    """A signed bucket share copied into another bucketed job, or relabelled as another bucket of its own job."""
    e = bnode.engine
    other = bnode.job.model_copy(update={"job": 8})
    e.take(other)
    assert 8 in e.jobs, bnode.hub.reasons()
    share = _bucket(bnode, 0)
    r = _post(bnode, share, job=8)
    assert r.status_code == 400 and "another job" in r.json()["detail"], r.text
    # relabelled: the bucket index (or the job) changed under the owner's signature
    for change in ({"bucket": 2}, {"job": 8}):
        h, blobs = unpack(ShareHeader, share)
        forged = pack(h.model_copy(update=change), blobs)
        r = _post(bnode, forged, job=int(change.get("job", 7)))
        assert r.status_code == 403 and "not signed by ggd" in r.json()["detail"], r.text
    assert not e.inbox.get(7) and not e.inbox.get(8)  # NB: nothing kept for either job
    assert _post(bnode, share).status_code == 200  # NB: the honest share still goes to its own job and bucket


def test_engine_refuses_a_negative_bucket_index(bnode: Node) -> None:
    h, blobs = unpack(ShareHeader, _bucket(bnode, 0))
    doc = {**h.signed_part(), "bucket": -1}  # NB: past the model's own check, framed by hand as a forger would
    doc["signature"] = pki.sign(pki.load_signing_key(bnode.key), canonical(doc))
    buf = io.BytesIO()
    wire.send(buf, doc, blobs)
    r = _post(bnode, buf.getvalue())
    assert r.status_code == 400 and "not a share message" in r.json()["detail"], r.text
    assert 7 not in bnode.engine.inbox and not bnode.engine.spool.job_dir(7).exists()


# -- a lying hub and a union's approvals ---------------------------------------------------------------


def test_engine_refuses_a_union_job_whose_dataset_list_leaves_one_organisation_out(tmp_path: Path) -> None:
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    other = pki.new_signing_key(tmp_path / "ggz.key")
    toml = _engine_toml(tmp_path, pub)
    toml.write_text(toml.read_text() + f'ggz = "{other}"\n')  # NB: [organisations] is the file's last table
    cfg = EngineConfig.load(toml)
    e = Engine(cfg)
    e.hub = FakeHub()  # type: ignore[assignment]
    base = _job(tmp_path, cfg, 9, keys={"ggd": pub, "ggz": other}, signer=tmp_path / "ggd.key").to_dict()
    union = wp.concat([wp.scan("ggd/meldingen"), wp.scan("ggz/meldingen")]).group_by("gemeente").agg(n=wp.count())
    plan = plan_to_dict(union.to_plan())
    h = plan_hash(plan_from_dict(plan))
    body = approval_body(organisation="ggd", collaboration="c", purpose="p", plan=plan, plan_hash=h,
                         expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1), max_runs=1, steward="s")  # fmt: skip
    approvals = [{"body": body, "signature": sign_approval(pki.load_signing_key(tmp_path / "ggd.key"), body)}]
    honest = {**base, "plan": plan, "plan_hash": h, "approvals": approvals,
              "datasets": ["ggd/meldingen", "ggz/meldingen"],
              "schemas": {d: base["schemas"]["ggd/meldingen"] for d in ("ggd/meldingen", "ggz/meldingen")}}  # fmt: skip
    e.take(JobPayload.from_dict(honest))
    assert 9 not in e.jobs and "no approval of ggz" in " ".join(e.hub.reasons())  # NB: ggz approved nothing
    lying = {**honest, "job": 10, "datasets": ["ggd/meldingen"], "schemas": base["schemas"]}
    e.take(JobPayload.from_dict(lying))
    assert 10 not in e.jobs, "the engine took a union job without the approval of one of its sources"
    assert "ggz/meldingen, which the job's dataset list leaves out" in " ".join(e.hub.reasons())
