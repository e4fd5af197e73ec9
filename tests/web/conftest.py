"""The hub's web app in process, on SQLite and PostgreSQL, with one user of every role.

``web`` gives a `Web`: ``web.as_("analist")`` returns a TestClient logged in as that user (a session
opened directly, past both factors: the login flow itself is tested in test_auth.py), ``web.hub`` the
hub, ``web.api[name]`` the user's API client (tests/workspace/test_hub.py's `Api`), ``web.keys`` the
organisations' signing keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from werkplaats.synth.generate import generate
from werkplaats.synth.write import region_datasets, write_region
from werkplaats.web import create_hub_web
from werkplaats.web.accounts import HubAccounts
from werkplaats.web.deps import COOKIE
from werkplaats.workspace import db, pki
from werkplaats.workspace.catalog_io import dataset_entry
from werkplaats.workspace.config import WebConfig
from werkplaats.workspace.hub import Hub, create_app

from ..workspace.conftest import database  # noqa: F401  (the sqlite/postgresql parameter)
from ..workspace.test_hub import Api, TlsLayer

USERS = [
    ("st-ggd", "steward", "ggd"),
    ("st-ha", "steward", "huisartsen"),
    ("analist", "scientist", "ggd"),
    ("buiten", "scientist", "ggz"),
    ("beleid", "requester", "ggd"),
    ("fg", "privacy-officer", None),
]


class Web:
    """A hub with its web app, users of every role, and a small region's catalog."""

    def __init__(self, hub: Hub, cfg: WebConfig, api: dict[str, Api], keys: dict[str, Any], region: Path) -> None:
        self.hub, self.cfg, self.api, self.keys, self.region = hub, cfg, api, keys, region
        self.app = create_hub_web(hub, cfg)
        self.clients: list[TestClient] = []

    def client(self) -> TestClient:
        """A browser without a session."""
        c = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        self.clients.append(c)
        return c

    def as_(self, name: str) -> TestClient:
        """A browser logged in as the user of that name (an account is made for them if they have none)."""
        c = self.client()
        with self.hub.sessions() as s:
            u = s.scalars(select(db.User).where(db.User.name == name)).one()
            acc = s.scalars(select(db.WebAccount).where(db.WebAccount.user_id == u.id)).first()
            if acc is None:
                acc = db.WebAccount(user_id=u.id, password_hash="!")  # NB: no password: only this session
                s.add(acc)
                s.commit()
            token = HubAccounts(self.hub, self.cfg).open_session(s, acc, second_factor=True)
        c.cookies.set(COOKIE, token)
        return c

    def csrf(self, c: TestClient) -> str:
        """The CSRF token of a logged-in client's session."""
        user = self.app.state.accounts.user_for(c.cookies.get(COOKIE) or "")
        assert user is not None
        return str(user.csrf)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("region")
    write_region(generate(3, 1000), out)
    return out


@pytest.fixture
def web(database: str, tmp_path: Path, region: Path) -> Iterator[Web]:  # noqa: F811
    pki.new_signing_key(tmp_path / "hub.key")
    h = Hub(database, name="hub", signing_key=pki.load_signing_key(tmp_path / "hub.key"))
    api_client = TestClient(TlsLayer(create_app(h), tmp_path / "ca"))
    admin = Api(api_client, h.create_admin("beheerder"))
    keys = {}
    for org in ("ggd", "huisartsen", "ggz"):
        pub = pki.new_signing_key(tmp_path / f"{org}.key")
        keys[org] = pki.load_signing_key(tmp_path / f"{org}.key")
        admin.post("/organisations", {"name": org, "title": f"{org} Referentieregio", "signing_key": pub})
    api = {"beheerder": admin}
    for name, role, org in USERS:
        api[name] = Api(api_client, admin.post("/users", {"name": name, "role": role, "organisation": org})["token"])
    admin.post("/collaborations", {"name": "pp", "purpose": "pandemische paraatheid", "members": ["ggd", "huisartsen"]})
    for ds in region_datasets(generate(3, 1000)):
        if ds.organisation in ("ggd", "huisartsen"):
            st = api["st-ggd" if ds.organisation == "ggd" else "st-ha"]
            st.put(f"/datasets/{ds.name}", dataset_entry(ds.schema, title=ds.title, min_group_size=10))
            st.post(f"/collaborations/pp/datasets/{ds.name}")
    cfg = WebConfig("127.0.0.1", 0, "https://testserver", geo_dir=region / "kaart")
    w = Web(h, cfg, api, keys, region)
    try:
        yield w
    finally:
        for c in w.clients:
            c.close()
        api_client.close()
        h.engine.dispose()
