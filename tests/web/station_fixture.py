"""A real hub over HTTPS (in process, test PKI) and two datastations from their datastation.toml, with web apps.

``stations`` gives a `Stations`: ``st.web("ggd", "anna")`` is a TestClient logged in at ggd's datastation as
the steward account anna (made in the datastation's own account store), ``st.api[name]`` a user's API client
of the hub, ``st.station[org]`` the `Datastation`, ``st.submit(plan)`` a request by the analyst.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

import werkplaats as wp
from werkplaats.mpc.process import free_port
from werkplaats.plan.serde import plan_to_dict
from werkplaats.web import accounts as web_accounts
from werkplaats.web import create_station_web
from werkplaats.web.deps import COOKIE
from werkplaats.workspace import pki
from werkplaats.workspace.config import DatastationConfig, WebConfig
from werkplaats.workspace.datastation import Datastation
from werkplaats.workspace.http import Client, serve
from werkplaats.workspace.hub import Hub, create_app
from werkplaats.workspace.pki import TLSFiles

PASSWORD = "een lang en vrij uniek wachtwoord 4711"
DPIA = "DPIA pandemische paraatheid 2026, bijlage B"
TABLES = {"ggd": ["meldingen"], "huisartsen": ["patienten", "consulten"]}


def both_orgs(max_age: int = 80) -> dict[str, Any]:
    """A plan reading ggd's notifications and the GP's patients (one literal: the age limit)."""
    gp = wp.scan("huisartsen/patienten").select("bsn", chronisch=wp.col("chronische_aandoeningen") >= 1)
    lf = (
        wp.scan("ggd/meldingen")
        .filter(wp.col("leeftijd") <= max_age)
        .join(gp, on="bsn", how="left")
        .group_by("ziekenhuisopname")
        .agg(n=wp.count())
    )
    return plan_to_dict(lf.to_plan())


def gp_only() -> dict[str, Any]:
    """A plan reading only the GP's data."""
    lf = wp.scan("huisartsen/patienten").filter(wp.col("chronische_aandoeningen") >= 1).group_by("gemeente")
    return plan_to_dict(lf.agg(n=wp.count()).to_plan())


class Stations:
    """The hub, its users' API clients, the two datastations and their web apps."""

    def __init__(self, root: Path, hub: Hub, url: str, tls: TLSFiles) -> None:
        self.root, self.hub, self.url, self.tls = root, hub, url, tls
        self.api: dict[str, Client] = {}
        self.station: dict[str, Datastation] = {}
        self.app: dict[str, FastAPI] = {}
        self.public: dict[str, str] = {}
        self.clients: list[TestClient] = []

    def client(self, org: str) -> TestClient:
        """A browser at org's datastation pages, without a session."""
        c = TestClient(self.app[org], base_url="https://testserver", follow_redirects=False)
        self.clients.append(c)
        return c

    def token(self, org: str, name: str) -> str:
        """A session token of steward account name at org's datastation (the account is made if new)."""
        acc = self.app[org].state.accounts
        with acc.sessions() as s:
            a = s.scalars(select(web_accounts.StationAccount).where(web_accounts.StationAccount.name == name)).first()
        if a is None:
            acc.create_account(name, PASSWORD)
        with acc.sessions() as s:
            a = s.scalars(select(web_accounts.StationAccount).where(web_accounts.StationAccount.name == name)).one()
            return str(acc.open_session(s, a, second_factor=True))

    def web(self, org: str, name: str) -> TestClient:
        """A browser logged in at org's datastation as steward account name."""
        c = self.client(org)
        c.cookies.set(COOKIE, self.token(org, name))
        return c

    def csrf(self, org: str, c: TestClient) -> str:
        """The CSRF token of a logged-in browser's session."""
        user = self.app[org].state.accounts.user_for(c.cookies.get(COOKIE) or "")
        assert user is not None
        return str(user.csrf)

    def submit(self, plan: dict[str, Any], purpose: str = "griepgolf volgen") -> int:
        """Submit a request in collaboration pp as the analyst; return its id."""
        r = self.api["analist"].post("/requests", {"collaboration": "pp", "purpose": purpose, "plan": plan})
        return int(r["id"])

    def request(self, rid: int) -> dict[str, Any]:
        """The request as the hub holds it (the admin's view)."""
        out: dict[str, Any] = self.api["beheerder"].get(f"/requests/{rid}")
        return out


def _station_toml(root: Path, org: str, url: str, tokens: dict[str, str], region: Path) -> Path:
    d = root / f"ds-{org}"
    d.mkdir()
    pins = "".join(
        f'[[engines]]\nparty = {p}\nurl = "https://127.0.0.1:9"\nspki_sha256 = "{"0" * 64}"\n' for p in (0, 1, 2)
    )
    text = (
        f'[datastation]\nname = "ds-{org}"\norganisation = "{org}"\nhub = "{url}"\ntoken = "{tokens[f"ds-{org}"]}"\n'
        f'steward_token = "{tokens[f"st-{org}"]}"\nsigning_key = "../{org}.key"\nstate_dir = "state"\n'
        "max_approval_days = 90\nmax_approval_runs = 12\n"
        f'[tls]\nca = "../pki/ca.crt"\ncert = "../pki/ds-{org}.crt"\nkey = "../pki/ds-{org}.key"\n' + pins
    )
    for table in TABLES[org]:
        text += (
            f'\n[[datasets]]\nname = "{org}/{table}"\nsource = "{region / org / table}.csv"\n'
            f'schema = "{region / org / table}.schema.json"\ntitle = "{org} {table}"\nperson_key = "bsn"\n'
            "min_group_size = 10\n"
        )
    (d / "datastation.toml").write_text(text)
    return d / "datastation.toml"


@pytest.fixture(scope="module")
def stations(tmp_path_factory: pytest.TempPathFactory, region: Path) -> Iterator[Stations]:
    root = tmp_path_factory.mktemp("stations")
    pki.init_ca(root / "pki")
    for node in ("hub", "ds-ggd", "ds-huisartsen"):
        pki.issue(root / "pki", node)
    pki.new_signing_key(root / "hub.key")
    hub = Hub(f"sqlite:///{root / 'hub.db'}", name="hub", signing_key=pki.load_signing_key(root / "hub.key"))
    port = free_port()
    server = serve(create_app(hub), "127.0.0.1", port,
                   TLSFiles(root / "pki" / "ca.crt", root / "pki" / "hub.crt", root / "pki" / "hub.key"),
                   background=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    url = f"https://127.0.0.1:{port}"
    tls = TLSFiles(root / "pki" / "ca.crt", root / "pki" / "ds-ggd.crt", root / "pki" / "ds-ggd.key")
    st = Stations(root, hub, url, tls)
    admin = st.api["beheerder"] = Client(url, token=hub.create_admin("beheerder"), tls=tls)
    tokens: dict[str, str] = {}
    for org in ("ggd", "huisartsen"):
        st.public[org] = pki.new_signing_key(root / f"{org}.key")
        admin.post("/organisations", {"name": org, "title": f"{org} Referentieregio", "signing_key": st.public[org]})
        tokens[f"st-{org}"] = admin.post("/users", {"name": f"st-{org}", "role": "steward", "organisation": org})[
            "token"
        ]
        tokens[f"ds-{org}"] = admin.post(
            "/nodes",
            {"name": f"ds-{org}", "kind": "datastation", "organisation": org, "web_url": f"https://ds-{org}.test:8443"},
        )["token"]
    tokens["analist"] = admin.post("/users", {"name": "analist", "role": "scientist", "organisation": "ggd"})["token"]
    admin.post(
        "/collaborations",
        {"name": "pp", "purpose": "pandemische paraatheid", "dpia_annex": DPIA, "members": ["ggd", "huisartsen"]},
    )
    for name in ("st-ggd", "st-huisartsen", "analist"):
        st.api[name] = Client(url, token=tokens[name], tls=tls)
    for org in ("ggd", "huisartsen"):
        cfg = DatastationConfig.load(_station_toml(root, org, url, tokens, region))
        ds = st.station[org] = Datastation(cfg)
        for name in ds.publish():
            st.api[f"st-{org}"].post(f"/collaborations/pp/datasets/{name}")
        st.app[org] = create_station_web(ds, WebConfig("127.0.0.1", 0, f"https://ds-{org}.test:8443"))
    try:
        yield st
    finally:
        for c in st.clients:
            c.close()
        for c in st.api.values():
            c.close()
        for ds in st.station.values():
            ds.hub.close()
        server.should_exit = True
        hub.engine.dispose()
