"""Server-side render times of the analyst's pages on the 200K region (a benchmark, not a test).

A hub on SQLite in a temporary directory with the 200,000-person reference region's catalog (all
eight datasets, rounded row counts, completeness), one collaboration with every organisation, 300
other requests, and a released result of a few thousand cells: infection hotspots by wijk and ISO
week (GP consults), computed with the plain executor on the region's data and stored as the hub stores a release.
Each page is fetched in process (FastAPI's TestClient) ``REPEAT`` times; the median and the slowest
are printed in milliseconds.

Run: ``.venv/bin/python -m bench.web_analyst`` (takes about a minute: generating the region).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

import werkplaats.usecases as uc
from werkplaats.local import run_local
from werkplaats.plan.serde import plan_to_dict
from werkplaats.synth.generate import generate
from werkplaats.synth.write import region_datasets
from werkplaats.web import create_hub_web
from werkplaats.web.accounts import HubAccounts
from werkplaats.web.deps import COOKIE
from werkplaats.workspace import db, pki
from werkplaats.workspace.catalog_io import dataset_entry, rounded
from werkplaats.workspace.config import WebConfig
from werkplaats.workspace.hub import Hub
from werkplaats.workspace.hub.release import stored
from werkplaats.workspace.messages import JobState

REPEAT = 15
PERSONS = 200_000
EXTRA_REQUESTS = 300


def main() -> None:
    """Build the hub, time every analyst page, print a table."""
    t0 = time.perf_counter()
    region = generate(1, PERSONS)
    datasets = region_datasets(region)
    print(f"region of {PERSONS:,} persons generated in {time.perf_counter() - t0:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "hub.key"
        pki.new_signing_key(key)
        hub = Hub(f"sqlite:///{tmp}/hub.db", name="hub", signing_key=pki.load_signing_key(key))
        with hub.sessions() as s:
            orgs = {}
            for org in sorted({d.organisation for d in datasets}):
                orgs[org] = db.Organisation(name=org, title=org, signing_key="-")
                s.add(orgs[org])
            collab = db.Collaboration(name="regio", purpose="bench")
            s.add(collab)
            s.flush()
            for o in orgs.values():
                s.add(db.Member(collaboration_id=collab.id, organisation_id=o.id))
            for d in datasets:
                df = region.tables[d.name]
                entry = dataset_entry(d.schema, title=d.title, description=d.description,
                                      update_frequency=d.update_frequency, row_count=rounded(len(df)),
                                      completeness={c: float(df[c].notna().mean()) for c in df.columns})  # fmt: skip
                s.add(db.Dataset(name=d.name, organisation_id=orgs[d.organisation].id, **entry))
                s.add(db.CollaborationDataset(collaboration_id=collab.id, dataset=d.name))
            user = db.User(name="analist", role="scientist", organisation_id=orgs["ggd"].id, token_hash="x")
            s.add(user)
            s.flush()
            q = uc.infection_hotspots(2024, signal="huisarts", level="wijk")
            used = ["huisartsen/consulten", "huisartsen/patienten"]
            schemas = {d.name: d.schema for d in datasets}
            t1 = time.perf_counter()
            frame = run_local(q, {u: region.tables[u] for u in used}, schemas=schemas, perturbation_key=1)
            print(f"result of {len(frame):,} rows × {len(frame.columns)} columns computed in "
                  f"{time.perf_counter() - t1:.1f} s")  # fmt: skip
            plan = plan_to_dict(q.to_plan())
            r = db.Request(collaboration_id=collab.id, requester_id=user.id, purpose="bench", plan=plan,
                           plan_hash="0" * 64, explain="(bench)", organisations=["huisartsen"], datasets=used,
                           columns={u: [] for u in used})  # fmt: skip
            s.add(r)
            for i in range(EXTRA_REQUESTS):  # NB: a busy collaboration's list of requests
                s.add(db.Request(collaboration_id=collab.id, requester_id=user.id, purpose=f"bench {i}", plan=plan,
                                 plan_hash=f"{i:064d}", explain="(bench)", organisations=["huisartsen"],
                                 datasets=used, columns={u: [] for u in used}))  # fmt: skip
            s.flush()
            job = db.Job(request_id=r.id, state=JobState.SUCCEEDED.value, progress={}, approvals=[],
                         started=db.utcnow(), finished=db.utcnow())  # fmt: skip
            s.add(job)
            s.flush()
            s.add(db.Result(job_id=job.id, data=stored(frame, 10)))
            acc = db.WebAccount(user_id=user.id, password_hash="!")
            s.add(acc)
            s.commit()
            cfg = WebConfig("127.0.0.1", 0, "https://testserver")
            token = HubAccounts(hub, cfg).open_session(s, acc, second_factor=True)
            rid, jid = r.id, job.id
        c = TestClient(create_hub_web(hub, cfg), base_url="https://testserver")
        c.cookies.set(COOKIE, token)
        pages = [
            "/catalog", "/catalog/huisartsen/consulten", "/catalog/ggd/meldingen/codes/wijk?page=2", "/templates",
            "/templates/infection-hotspots", "/requests", f"/requests/{rid}", f"/requests/{rid}/preview",
            f"/requests/{rid}/preview?page=1", f"/jobs/{jid}", f"/jobs/{jid}/progress", f"/requests/{rid}/result",
            f"/requests/{rid}/result?page=80", f"/requests/{rid}/result?page=2&hx", f"/requests/{rid}/result.csv",
            f"/requests/{rid}/result.xlsx",
        ]  # fmt: skip
        print(f"{'page':48} {'median ms':>10} {'max ms':>8}")
        for p in pages:
            times = []
            for _ in range(REPEAT):
                t = time.perf_counter()
                hx = {"HX-Request": "true"} if p.endswith("&hx") else {}
                got = c.get(p.removesuffix("&hx"), headers=hx)
                times.append((time.perf_counter() - t) * 1000)
                assert got.status_code == 200, (p, got.status_code, got.text[:500])
            print(f"{p:48} {statistics.median(times):10.1f} {max(times):8.1f}")
        with hub.sessions() as s:
            assert s.scalars(select(db.Result)).first() is not None
        c.close()
        hub.engine.dispose()


if __name__ == "__main__":
    main()
