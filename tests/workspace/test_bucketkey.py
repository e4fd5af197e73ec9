"""The collaboration's bucket key: sealed to member datastations only, never in the clear at the hub (in process).

The honest path (publish, create, fetch, rotate) beside each attack: a hub that swaps an envelope,
a recipient's encryption key, the version or the creator, or replays an old version under a new
number; an outsider and an engine asking for a key; a truncated or garbled envelope. On SQLite
and PostgreSQL (the ``hub`` fixture of test_hub).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.workspace import bucketkey as bk
from werkplaats.workspace import db, pki
from werkplaats.workspace.audit import FileLog, read_log
from werkplaats.workspace.bucketkey import BucketKeyError, BucketKeys, Station
from werkplaats.workspace.http import HubError
from werkplaats.workspace.hub import bucketkeys as hub_bucketkeys
from werkplaats.workspace.hub.bucketkeys import latest_bucket_key_version

from .test_hub import PEER, Api, _node
from .test_hub import hub as hub

Tamper = Callable[[str, str, Any], Any]


class HubApi:
    """A datastation's hub client over the in-process hub (as `http.Client`), optionally lying on the way back."""

    def __init__(self, client: TestClient, token: str, cert: str, tamper: Tamper | None = None) -> None:
        self.c, self.h, self.tamper = client, {"Authorization": f"Bearer {token}", PEER.decode(): cert}, tamper

    def _do(self, method: str, path: str, **kw: Any) -> Any:
        r = self.c.request(method, "/api/v1" + path, headers=self.h, **kw)
        if r.status_code >= 400:
            raise HubError(r.status_code, r.json().get("detail", r.text))
        doc = r.json()
        return self.tamper(method, path, copy.deepcopy(doc)) if self.tamper else doc

    def get(self, path: str, **params: Any) -> Any:
        return self._do("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        return self._do("POST", path, json=body or {})

    def put(self, path: str, body: Any) -> Any:
        return self._do("PUT", path, json=body)

    def close(self) -> None:
        pass


class Env:
    """The in-process hub with member datastations of ggd and huisartsen (data in pp) and of ggz (outsider)."""

    def __init__(self, h: Any, u: dict[str, Api], keys: dict[str, Any], root: Path) -> None:
        self.h, self.u, self.keys, self.root = h, u, keys, root
        self.pins = {org: pki.public_key_b64(k) for org, k in keys.items()}
        self.tokens: dict[str, str] = {}
        for org, nd in (("ggd", "ds-ggd"), ("huisartsen", "ds-ha"), ("ggz", "ds-ggz")):
            self.tokens[org] = _node(u, nd, "datastation", organisation=org).h["Authorization"][7:]
        self.node = {"ggd": "ds-ggd", "huisartsen": "ds-ha", "ggz": "ds-ggz"}

    def station(self, org: str, tamper: Tamper | None = None) -> BucketKeys:
        """The bucket keys of org's datastation (its own state directory), talking to the hub through tamper."""
        api = HubApi(self.u["admin"].c, self.tokens[org], self.node[org], tamper)
        state = self.root / f"state-{org}"
        log = FileLog(state / "contributions.jsonl", org, self.keys[org])
        return BucketKeys(state, Station(org, self.node[org], self.keys[org], dict(self.pins), api, log))  # type: ignore[arg-type]


@pytest.fixture
def env(hub: Any, tmp_path: Path) -> Env:
    h, u, keys = hub
    return Env(h, u, keys, tmp_path)


def _ready(env: Env) -> tuple[BucketKeys, BucketKeys]:
    """ggd's and huisartsen's datastations with their encryption keys published."""
    ggd, ha = env.station("ggd"), env.station("huisartsen")
    ggd.publish_encryption_key()
    ha.publish_encryption_key()
    return ggd, ha


def _refused(keys: BucketKeys, version: int, match: str) -> None:
    """Fetching version is refused with a clear reason, and nothing is stored."""
    with pytest.raises(BucketKeyError, match=match):
        keys.fetch("pp", version)
    assert keys.versions("pp") == []


# -- the honest path ----------------------------------------------------------------------------


def test_a_member_creates_the_key_and_the_others_fetch_the_same_one(env: Env) -> None:
    ggd, ha = _ready(env)
    with env.h.sessions() as s:
        assert latest_bucket_key_version(s, "pp") is None
    assert ggd.create("pp") == 1
    with env.h.sessions() as s:
        assert latest_bucket_key_version(s, "pp") == 1
    v1 = ggd.get("pp", 1)
    assert len(v1) == 32 and ha.get("pp", 1) == v1  # NB: fetched on demand, checked, decrypted
    assert ha.current("pp") == (1, v1)
    # stored for the datastation only: directory 0700, key files 0600
    assert stat.S_IMODE(ha.dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in ha.dir.iterdir()} == {0o600}
    # a store without a station reads what is kept, and fetches nothing
    assert BucketKeys(ha.state_dir).get("pp", 1) == v1
    with pytest.raises(BucketKeyError, match="no version 2"):
        BucketKeys(ha.state_dir).get("pp", 2)
    # rotation: the next version, a fresh key; the old one stays readable
    assert ha.create("pp") == 2
    assert ggd.get("pp", 2) == ha.get("pp", 2) != v1
    assert ggd.current("pp") == (2, ggd.get("pp", 2)) and ggd.get("pp", 1) == v1
    # each datastation's own log notes the key (created, received), never the key
    for keys, want in ((ggd, ["bucket-key-created", "bucket-key-received"]),
                       (ha, ["bucket-key-received", "bucket-key-created"])):  # fmt: skip
        assert keys.station is not None and keys.station.log is not None
        entries, problems = read_log(keys.station.log.path, env.pins[keys.station.organisation])
        assert problems == [] and [e["action"] for e in entries] == want
        assert [e["details"]["version"] for e in entries] == [1, 2]
    listed = env.u["analist"].get("/collaborations/pp/bucket-keys")
    assert [(v["version"], v["creator"], v["recipients"]) for v in listed] == [
        (1, "ggd", ["ggd", "huisartsen"]), (2, "huisartsen", ["ggd", "huisartsen"])]  # fmt: skip


def test_republishing_the_same_key_is_quiet_and_a_rotated_signing_key_re_signs_it(env: Env) -> None:
    ggd = env.station("ggd")
    fp = ggd.publish_encryption_key()
    assert ggd.publish_encryption_key() == fp  # NB: at every start: the hub keeps and audits it once

    def published() -> int:
        with env.h.sessions() as s:
            return [e["action"] for e in env.h.audit_entries(s)].count("encryption-key-published")

    assert published() == 1
    new = pki.new_signing_key(env.root / "ggd-2.key")
    env.u["admin"].put("/organisations/ggd/signing-key", {"signing_key": new, "reason": "rotation"})
    assert ggd.station is not None
    ggd.station.signing_key = pki.load_signing_key(env.root / "ggd-2.key")
    assert ggd.publish_encryption_key() == fp and published() == 2  # NB: the same key, signed with the new one
    with env.h.sessions() as s:
        row = s.scalars(select(db.EncryptionKey)).one()
        assert bk.check_encryption_key({"record": row.record, "signature": row.signature}, "ggd", new)


def test_the_hub_never_holds_the_key_in_the_clear(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ggd, ha = _ready(env)
    ggd.create("pp")
    ha.create("pp")
    secrets = [ggd.get("pp", 1), ha.get("pp", 1), ggd.get("pp", 2), ha.get("pp", 2)]
    forms = {f(k) for k in secrets for f in (bytes.hex, lambda b: base64.b64encode(b).decode(), repr)}
    with env.h.sessions() as s:
        dump = []
        for table in db.Base.metadata.sorted_tables:
            dump += [repr(tuple(row)) for row in s.execute(select(table))]
        dump.append(repr(list(s.execute(text("SELECT * FROM audit")))))
    text_dump = "\n".join(dump)
    assert "bucket-key-created" in text_dump and "encryption-key-published" in text_dump  # NB: audited
    assert not any(f in text_dump for f in forms)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(f in logs for f in forms)


# -- a lying hub --------------------------------------------------------------------------------


def _set_envelope(env: Env, version: int, org: str, new: str) -> None:
    with env.h.sessions() as s:
        row = s.scalars(select(db.BucketKeySet).where(db.BucketKeySet.version == version)).one()
        row.envelopes = {**row.envelopes, org: new}
        s.commit()


def test_a_swapped_envelope_is_refused(env: Env) -> None:
    ggd, _ = _ready(env)
    ggd.create("pp")
    with env.h.sessions() as s:
        row = s.scalars(select(db.BucketKeySet)).one()
        theirs = row.envelopes["ggd"]
    _set_envelope(env, 1, "huisartsen", theirs)  # NB: ggd's envelope handed to huisartsen
    _refused(env.station("huisartsen"), 1, "differs from the one the creator signed")


def test_a_truncated_or_garbled_envelope_is_refused(env: Env) -> None:
    ggd, _ = _ready(env)
    ggd.create("pp")
    with env.h.sessions() as s:
        good = base64.b64decode(s.scalars(select(db.BucketKeySet)).one().envelopes["huisartsen"])
    _set_envelope(env, 1, "huisartsen", base64.b64encode(good[:-5]).decode())
    _refused(env.station("huisartsen"), 1, "differs from the one the creator signed")
    _set_envelope(env, 1, "huisartsen", "not base64!")
    _refused(env.station("huisartsen"), 1, "not valid base64")
    # below the manifest, the envelope itself: truncated, or one bit flipped
    ha_key = env.station("huisartsen").encryption_key()
    aad = bk.envelope_aad("pp", 1, "huisartsen", "ggd")
    with pytest.raises(BucketKeyError, match="truncated or garbled"):
        bk.open_envelope(good[:-1], ha_key, aad)
    flipped = good[:50] + bytes([good[50] ^ 1]) + good[51:]
    with pytest.raises(BucketKeyError, match="does not decrypt"):
        bk.open_envelope(flipped, ha_key, aad)
    assert len(bk.open_envelope(good, ha_key, aad)) == 32
    for c, v, r, by in (("pp", 2, "huisartsen", "ggd"), ("pp", 1, "ggd", "ggd"), ("pp", 1, "huisartsen", "ggz"),
                        ("xx", 1, "huisartsen", "ggd")):  # fmt: skip
        other = bk.envelope_aad(c, v, r, by)
        with pytest.raises(BucketKeyError, match="does not decrypt"):  # NB: bound to collaboration, version, ...
            bk.open_envelope(good, ha_key, other)


def test_a_renumbered_or_replayed_version_is_refused(env: Env) -> None:
    ggd, _ = _ready(env)
    ggd.create("pp")
    ggd.create("pp")
    with env.h.sessions() as s:
        rows = {r.version: r for r in s.scalars(select(db.BucketKeySet))}
        old = (rows[1].manifest, rows[1].signature, rows[1].envelopes)

    def replay(method: str, path: str, doc: Any) -> Any:  # NB: version 1's set served as version 2
        if path.endswith("/bucket-keys/2"):
            return {"manifest": old[0], "signature": old[1], "envelope": old[2]["huisartsen"]}
        return doc

    _refused(env.station("huisartsen", replay), 2, "a replay under another number")

    def renumber(method: str, path: str, doc: Any) -> Any:  # NB: ... with its number changed to 2
        if path.endswith("/bucket-keys/2"):
            return {"manifest": {**old[0], "version": 2}, "signature": old[1], "envelope": old[2]["huisartsen"]}
        return doc

    _refused(env.station("huisartsen", renumber), 2, "not signed by its creator")
    # the hub's own store rewritten the same way
    with env.h.sessions() as s:
        row = s.scalars(select(db.BucketKeySet).where(db.BucketKeySet.version == 2)).one()
        row.manifest, row.signature, row.envelopes = {**old[0], "version": 2}, old[1], old[2]
        s.commit()
    _refused(env.station("huisartsen"), 2, "not signed by its creator")
    assert env.station("huisartsen").get("pp", 1) == ggd.get("pp", 1)  # NB: the honest version 1 still works


def test_a_swapped_creator_is_refused(env: Env) -> None:
    ggd, _ = _ready(env)
    ggd.create("pp")

    def as_creator(who: str) -> Tamper:
        def tamper(method: str, path: str, doc: Any) -> Any:
            if path.endswith("/bucket-keys/1"):
                doc["manifest"]["creator"] = who
            return doc

        return tamper

    _refused(env.station("huisartsen", as_creator("huisartsen")), 1, "not signed by its creator 'huisartsen'")
    _refused(env.station("huisartsen", as_creator("hub")), 1, "has not pinned")
    # a set the hub makes up itself, signed with a key of its own in the name of ggd
    ha = env.station("huisartsen")
    pub = bk.encryption_public_b64(ha.encryption_key())
    manifest, envs = bk.key_set(b"\x01" * 32, collaboration="pp", version=1, creator="ggd",
                                recipients={"huisartsen": pub})  # fmt: skip
    mallory = pki.load_signing_key(_fake_key(env))
    forged = {"manifest": manifest, "signature": pki.sign(mallory, bk.canonical(manifest)),
              "envelope": envs["huisartsen"]}  # fmt: skip
    _refused(env.station("huisartsen", lambda m, p, d: forged if p.endswith("/1") else d), 1, "not signed")


def test_a_swapped_recipient_key_is_caught_before_anything_is_sealed(env: Env) -> None:
    ggd, ha = _ready(env)
    mallory = bk.X25519PrivateKey.generate()
    with env.h.sessions() as s:  # NB: the hub replaces huisartsen's published key with its own
        o = s.scalars(select(db.Organisation).where(db.Organisation.name == "huisartsen")).one()
        row = s.scalars(select(db.EncryptionKey).where(db.EncryptionKey.organisation_id == o.id)).one()
        record = {**row.record, "public_key": bk.encryption_public_b64(mallory)}
        row.record, row.public_key = record, record["public_key"]
        s.commit()
    with pytest.raises(BucketKeyError, match="not signed by huisartsen's signing key"):
        ggd.create("pp")
    # ... or re-signs it with a key of its own: the creator checks its own pin, never the hub's copy
    fake = bk.signed_encryption_key(pki.load_signing_key(_fake_key(env)), organisation="huisartsen",
                                    node="ds-ha", public_key=bk.encryption_public_b64(mallory))  # fmt: skip

    def swap(method: str, path: str, doc: Any) -> Any:
        if path.endswith("/recipients"):
            for r in doc["recipients"]:
                if r["organisation"] == "huisartsen":
                    r["key"] = fake
        return doc

    with pytest.raises(BucketKeyError, match="not signed by huisartsen's signing key"):
        env.station("ggd", swap).create("pp")
    with env.h.sessions() as s:
        assert latest_bucket_key_version(s, "pp") is None  # NB: nothing was uploaded
    # a key set sealed to another key than the fetcher's own (the creator was deceived): refused at the fetcher
    ha.publish_encryption_key()  # NB: the honest key back at the hub
    ggd.create("pp")
    with env.h.sessions() as s:
        row = s.scalars(select(db.BucketKeySet)).one()
        manifest = copy.deepcopy(row.manifest)
    manifest["recipients"]["huisartsen"]["public_key"] = bk.encryption_public_b64(mallory)
    bad = {"manifest": manifest, "signature": pki.sign(env.keys["ggd"], bk.canonical(manifest)),
           "envelope": row.envelopes["huisartsen"]}  # fmt: skip
    _refused(env.station("huisartsen", lambda m, p, d: bad if p.endswith("/1") else d), 1, "another key than")


def _fake_key(env: Env) -> Path:
    p = env.root / "mallory.key"
    if not p.exists():
        pki.new_signing_key(p)
    return p


# -- who may ask ----------------------------------------------------------------------------------


def test_outsiders_and_engines_get_no_envelope(env: Env) -> None:
    ggd, _ = _ready(env)
    ggd.create("pp")
    outsider = env.station("ggz")
    outsider.publish_encryption_key()
    with pytest.raises(BucketKeyError, match="not a member of collaboration 'pp'"):
        outsider.fetch("pp", 1)
    with pytest.raises(HubError, match="403"):
        outsider.create("pp")
    env.u["buiten"].get("/collaborations/pp/bucket-keys", status=403)  # NB: a ggz scientist, outside pp
    # a member without data in the collaboration is no recipient either
    with env.h.sessions() as s:
        collab = s.scalars(select(db.Collaboration).where(db.Collaboration.name == "pp")).one()
        ggz = s.scalars(select(db.Organisation).where(db.Organisation.name == "ggz")).one()
        s.add(db.Member(collaboration_id=collab.id, organisation_id=ggz.id))
        s.commit()
    with pytest.raises(BucketKeyError, match="no envelope for ggz"):
        outsider.fetch("pp", 1)
    assert outsider.versions("pp") == []
    # nor can a creator seal to it: the hub keeps the set to the members with data
    ha = env.station("huisartsen")
    recips = {o: bk.encryption_public_b64(k.encryption_key()) for o, k in (("ggd", ggd), ("huisartsen", ha),
                                                                            ("ggz", outsider))}  # fmt: skip
    manifest, envs = bk.key_set(b"\x02" * 32, collaboration="pp", version=2, creator="ggd", recipients=recips)
    body = {"manifest": manifest, "signature": pki.sign(env.keys["ggd"], bk.canonical(manifest)), "envelopes": envs}
    api = HubApi(env.u["admin"].c, env.tokens["ggd"], "ds-ggd")
    with pytest.raises(HubError, match="not to \\['ggz'\\]"):
        api.post("/collaborations/pp/bucket-keys", body)
    # engines: no part in bucket keys at all
    engine = _node(env.u, "engine0", "engine", party=0, url="https://e0:1", mpc_address="e0:2")
    engine.get("/collaborations/pp/bucket-keys/1", status=403)
    engine.get("/collaborations/pp/bucket-keys", status=403)
    engine.get("/collaborations/pp/bucket-keys/recipients", status=403)
    engine.post("/collaborations/pp/bucket-keys", body, status=403)
    # nor people, whatever their role (they may list the versions of a collaboration they see)
    env.u["admin"].get("/collaborations/pp/bucket-keys/1", status=403)
    env.u["analist"].get("/collaborations/pp/bucket-keys/1", status=403)


def test_the_hub_refuses_what_it_can_check(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    ggd, ha = _ready(env)
    api = {o: HubApi(env.u["admin"].c, env.tokens[o], env.node[o]) for o in ("ggd", "huisartsen")}
    # a datastation publishes its own organisation's encryption key only, signed by it
    doc = bk.signed_encryption_key(env.keys["ggd"], organisation="ggd", node="ds-ggd",
                                   public_key=bk.encryption_public_b64(ggd.encryption_key()))  # fmt: skip
    with pytest.raises(HubError, match="only ggd's datastation"):
        api["huisartsen"].put("/encryption-keys/ggd", doc)
    forged = bk.signed_encryption_key(env.keys["huisartsen"], organisation="ggd", node="ds-ggd",
                                      public_key=doc["record"]["public_key"])  # fmt: skip
    with pytest.raises(HubError, match="not signed by ggd's signing key"):
        api["ggd"].put("/encryption-keys/ggd", forged)
    recips = {o: bk.encryption_public_b64(k.encryption_key()) for o, k in (("ggd", ggd), ("huisartsen", ha))}

    def upload(version: int, signer: Any, creator: str = "ggd", who: str = "ggd") -> None:
        manifest, envs = bk.key_set(b"\x03" * 32, collaboration="pp", version=version, creator=creator,
                                    recipients=recips)  # fmt: skip
        body = {"manifest": manifest, "signature": pki.sign(signer, bk.canonical(manifest)), "envelopes": envs}
        api[who].post("/collaborations/pp/bucket-keys", body)

    with pytest.raises(HubError, match=r"next version of 'pp'.s bucket key is 1, not 3"):
        upload(3, env.keys["ggd"])
    with pytest.raises(HubError, match="not signed by its creator"):
        upload(1, env.keys["huisartsen"])
    with pytest.raises(HubError, match="as huisartsen, not as 'ggd'"):
        upload(1, env.keys["ggd"], who="huisartsen")
    with env.h.sessions() as s:
        assert latest_bucket_key_version(s, "pp") is None
    upload(1, env.keys["ggd"])
    # two members uploading the same version at once: the second gets 409, not an error
    monkeypatch.setattr(hub_bucketkeys, "latest_bucket_key_version", lambda s, c: None)
    with pytest.raises(HubError, match=r"409: version 1 of 'pp'.s bucket key exists already"):
        upload(1, env.keys["ggd"])


def test_only_members_with_a_published_key_and_pins_can_be_sealed_to(env: Env) -> None:
    ggd = env.station("ggd")
    ggd.publish_encryption_key()
    with pytest.raises(BucketKeyError, match=r"published no encryption key yet: \['huisartsen'\]"):
        ggd.create("pp")
    env.station("huisartsen").publish_encryption_key()
    assert ggd.station is not None
    del ggd.station.pins["huisartsen"]  # NB: its operator never pinned huisartsen's signing key
    with pytest.raises(BucketKeyError, match="not pinned here"):
        ggd.create("pp")
    with pytest.raises(BucketKeyError, match="no bucket key yet"):
        env.station("huisartsen").fetch("pp")


# -- the real processes ----------------------------------------------------------------------------


def _key_forms(state_dirs: list[Path]) -> set[bytes]:
    """Every stored bucket key of these datastations, raw, hex and base64."""
    out: set[bytes] = set()
    for d in state_dirs:
        for p in (d / "bucket-keys").glob("*.v*.json"):
            k = base64.b64decode(json.loads(p.read_text())["key"])
            out |= {k, k.hex().encode(), base64.b64encode(k)}
    return out


def test_the_workspace_creates_the_key_and_the_command_fetches_it(ws: LocalWorkspace) -> None:
    """LocalWorkspace created version 1 at ggd's datastation; huisartsen's operator fetches it with the command."""
    cfg = ws.root / "nodes" / "ds-huisartsen" / "datastation.toml"
    run = [sys.executable, "-m", "werkplaats", "datastation", "bucket-key"]
    opts = ["--config", str(cfg), "--collaboration", COLLABORATION]
    got = subprocess.run([*run, "fetch", *opts, "--version", "1"], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0 and "version 1 of" in got.stdout, got.stdout + got.stderr
    listed = subprocess.run([*run, "list", *opts], capture_output=True, text=True, timeout=120)
    assert "v1" in listed.stdout and "by ggd" in listed.stdout and "held here" in listed.stdout, listed.stdout
    states = [ws.root / "nodes" / f"ds-{o}" / "state" for o in ws.organisations]
    held = [BucketKeys(d).get(COLLABORATION, 1) for d in states]
    assert held[0] == held[1] and len(held[0]) == 32
    # neither the hub's database nor any node's log holds a key in the clear
    forms = _key_forms(states)
    files = [*(ws.root / "hub").glob("hub.db*"), *(ws.root / "logs").iterdir()]
    files += [p for o in ws.organisations for p in (ws.root / "nodes" / f"ds-{o}" / "state").glob("*.jsonl")]
    for f in files:
        data = f.read_bytes()
        assert not any(k in data for k in forms), f.name
