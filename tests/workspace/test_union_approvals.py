"""A union across hospitals through the hub: each hospital approves its own part; the plan names every source."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from werkplaats import usecases as uc
from werkplaats.plan.serde import plan_to_dict
from werkplaats.synth.generate import generate
from werkplaats.synth.write import region_datasets
from werkplaats.workspace import pki
from werkplaats.workspace.catalog_io import dataset_entry
from werkplaats.workspace.hub import Hub, create_app
from werkplaats.workspace.signing import approval_body, sign_approval

from .test_hub import Api, TlsLayer

HOSPITALS = ("ziekenhuis_a", "ziekenhuis_b")


def test_two_hospitals_must_each_approve_a_union_and_see_both_sources(tmp_path: Path) -> None:
    pki.new_signing_key(tmp_path / "hub.key")
    h = Hub(f"sqlite:///{tmp_path / 'hub.db'}", name="hub", signing_key=pki.load_signing_key(tmp_path / "hub.key"))
    client = TestClient(TlsLayer(create_app(h), tmp_path / "ca"))
    try:
        admin = Api(client, h.create_admin("beheerder"))
        keys, stewards = {}, {}
        for org in HOSPITALS:
            pub = pki.new_signing_key(tmp_path / f"{org}.key")
            keys[org] = pki.load_signing_key(tmp_path / f"{org}.key")
            admin.post("/organisations", {"name": org, "signing_key": pub})
            token = admin.post("/users", {"name": f"st-{org}", "role": "steward", "organisation": org})["token"]
            stewards[org] = Api(client, token)
        analist = Api(client, admin.post("/users", {"name": "analist", "role": "scientist",
                                                    "organisation": HOSPITALS[0]})["token"])  # fmt: skip
        admin.post("/collaborations", {"name": "zh", "purpose": "opnamen in de regio", "members": list(HOSPITALS)})
        for ds in region_datasets(generate(3, 1000, hospitals=2)):
            if ds.organisation in HOSPITALS:
                st = stewards[ds.organisation]
                st.put(f"/datasets/{ds.name}", dataset_entry(ds.schema, title=ds.title, min_group_size=10))
                st.post(f"/collaborations/zh/datasets/{ds.name}")
        plan = plan_to_dict(uc.admissions_across_hospitals(2).to_plan())
        r = analist.post("/requests", {"collaboration": "zh", "purpose": "opnamen", "plan": plan})
        assert r["organisations"] == list(HOSPITALS) and r["status"] == "pending-approval"
        data_read = r["explain"].split("Steps:")[0]
        assert "ziekenhuis_a/opnamen" in data_read and "ziekenhuis_b/opnamen" in data_read
        assert "Keep each person once by the person key bsn" in r["explain"]

        def approve(org: str, steward: str) -> dict[str, Any]:
            body = approval_body(organisation=org, collaboration="zh", purpose="opnamen", plan=r["plan"],
                                 plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                                 max_runs=1, steward=f"st-{org}")  # fmt: skip
            return stewards[steward].post(f"/requests/{r['id']}/approvals",
                                          {"body": body, "signature": sign_approval(keys[org], body)},
                                          status=201 if org == steward else 403)  # fmt: skip

        approve("ziekenhuis_b", "ziekenhuis_a")  # NB: a steward approves only for their own organisation
        assert approve("ziekenhuis_a", "ziekenhuis_a")["status"] == "pending-approval"
        analist.post(f"/requests/{r['id']}/run", status=409)  # NB: ziekenhuis_b has not approved its part
        assert approve("ziekenhuis_b", "ziekenhuis_b")["status"] == "approved"
        assert analist.post(f"/requests/{r['id']}/run")["state"] == "approved"
    finally:
        client.close()
        h.engine.dispose()
