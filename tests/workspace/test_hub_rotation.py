"""Keys over time at the hub: an organisation's signing key rotated (the old one revoked), node certificates revoked.

In process, on SQLite and PostgreSQL (the ``hub`` fixture of test_hub). The attacker holds the old key or
a revoked certificate with a still-valid token.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509

from werkplaats.workspace import audit, pki, register
from werkplaats.workspace.signing import approval_body, sign_approval

from .test_hub import Api, _engines, _node
from .test_hub import hub as hub
from .test_hub_scope import _plan, _record, _request, _signed, _take


def _approve(u: dict[str, Api], r: dict[str, Any], key: Any, status: int = 201) -> Any:
    body = approval_body(organisation="huisartsen", collaboration="pp", purpose="x", plan=r["plan"],
                         plan_hash=r["plan_hash"], expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
                         max_runs=5, steward="st-ha")  # fmt: skip
    return u["st-ha"].post(f"/requests/{r['id']}/approvals", {"body": body, "signature": sign_approval(key, body)},
                           status=status)  # fmt: skip


def test_a_rotated_key_is_refused_and_what_it_signed_before_still_verifies(hub: Any, tmp_path: Path) -> None:
    h, u, keys = hub
    _engines(u)
    ds = _node(u, "ds-ha", "datastation", organisation="huisartsen")
    old = keys["huisartsen"]
    r = _request(u, keys, max_runs=5)  # NB: approved with the old key
    jid = u["analist"].post(f"/requests/{r['id']}/run")["job"]
    ds.post(f"/node/jobs/{jid}/contribution", _signed(_record(_take(ds, jid)), old))  # NB: signed with the old key
    waiting = u["analist"].post(f"/requests/{r['id']}/run")["job"]  # NB: approved under the old key, not yet run
    new_pub = pki.new_signing_key(tmp_path / "ha-new.key")
    new = pki.load_signing_key(tmp_path / "ha-new.key")
    # only an admin rotates; the new key must be a key, new, and never revoked before
    u["st-ha"].put("/organisations/huisartsen/signing-key", {"signing_key": new_pub}, status=403)
    u["admin"].put("/organisations/huisartsen/signing-key", {"signing_key": "bm90IGEga2V5"}, status=422)
    out = u["admin"].put("/organisations/huisartsen/signing-key", {"signing_key": new_pub, "reason": "key lost"})
    assert out == {"organisation": "huisartsen", "revoked_key": pki.public_key_b64(old), "signing_key": new_pub}
    assert "current signing key" in u["admin"].put("/organisations/huisartsen/signing-key",
                                                   {"signing_key": new_pub}, status=409)["detail"]  # fmt: skip
    job = u["analist"].get(f"/jobs/{waiting}")
    assert (job["state"], job["reason"]) == (
        "failed",
        "the approval of huisartsen was signed with a key revoked since (key rotated by beheerder)",
    )
    # the attacker with the old key: its new approval, the old approval's next run and its contribution are refused
    r2 = u["analist"].post("/requests", {"collaboration": "pp", "purpose": "x", "plan": _plan()})
    why = _approve(u, r2, old, status=422)["detail"]
    assert why == "approval of huisartsen: the signature does not verify against the organisation's registered key"
    assert "does not verify" in u["analist"].post(f"/requests/{r['id']}/run", status=409)["detail"]
    # the honest steward signs with the new key; a contribution signed with the old key is refused, the new one counts
    _approve(u, r2, new)
    jid2 = u["analist"].post(f"/requests/{r2['id']}/run")["job"]
    payload = _take(ds, jid2)
    refused = ds.post(f"/node/jobs/{jid2}/contribution", _signed(_record(payload), old), status=422)["detail"]
    assert refused == "the contribution record is not signed by huisartsen's key"
    ds.post(f"/node/jobs/{jid2}/contribution", _signed(_record(payload), new))
    # the old key cannot come back
    assert "was revoked" in u["admin"].put("/organisations/huisartsen/signing-key",
                                           {"signing_key": pki.public_key_b64(old)}, status=409)["detail"]  # fmt: skip
    # the audit: the rotation names both keys, and the contribution signed before it verifies with the key of its time
    dump = u["admin"].get("/audit")
    (rot,) = [e for e in dump["entries"] if e["action"] == "key-rotated"]
    assert rot["details"]["old"] == pki.public_key_b64(old) and rot["details"]["new"] == new_pub
    assert rot["actor"] == "beheerder" and rot["details"]["detail"] == "key lost"
    assert u["admin"].get("/audit/verify") == {"ok": True, "problems": []}
    assert register.verify_hub_chain(dump["entries"], h.public_key, {"huisartsen": new_pub}) == []
    # a forged chain cannot use that to pass: an entry signed with the old key after the rotation does not verify
    contributions = [e for e in dump["entries"] if e["action"] == "contribution"]
    late = {
        **contributions[-1],
        "details": {**contributions[-1]["details"], "signed": contributions[0]["details"]["signed"]},
    }
    assert any("contribution record" in p for p in audit.verify_chain([*dump["entries"][:-1], late], dump["keys"]))


def _cert(api: Api, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(api.c.app.pem(name).encode())  # type: ignore[attr-defined]


def test_a_revoked_node_certificate_is_refused_with_a_valid_token(hub: Any) -> None:
    _h, u, _keys = hub
    e = _engines(u)
    ds = _node(u, "ds-ha", "datastation", organisation="huisartsen")
    assert ds.get("/me")["name"] == "ds-ha"
    fp = pki.spki_sha256(_cert(ds, "ds-ha"))
    u["st-ha"].post("/nodes/ds-ha/certificate-revocations", {"fingerprint": fp}, status=403)
    assert u["admin"].post("/nodes/nergens/certificate-revocations", {"fingerprint": fp}, status=404)
    assert "fingerprint or serial" in u["admin"].post("/nodes/ds-ha/certificate-revocations", {}, status=422)["detail"]
    u["admin"].post("/nodes/ds-ha/certificate-revocations", {"fingerprint": "NOT-HEX"}, status=422)
    rev = u["admin"].post("/nodes/ds-ha/certificate-revocations", {"fingerprint": fp, "reason": "laptop stolen"})
    assert rev["node"] == "ds-ha" and rev["fingerprint"] == fp
    # the attacker holds the node's certificate, key and token: refused
    assert ds.get("/me", status=403)["detail"].startswith("node ds-ha's certificate was revoked on ")
    ds.get("/node/jobs", status=403)
    # by serial: engine0's certificate
    serial = format(_cert(e[0], "engine0").serial_number, "x")
    u["admin"].post("/nodes/engine0/certificate-revocations", {"serial": serial})
    e[0].get("/me", status=403)
    assert e[1].get("/me")["name"] == "engine1"  # NB: the other nodes work on
    assert [x["node"] for x in u["admin"].get("/certificate-revocations")] == ["ds-ha", "engine0"]
    logged = [x for x in u["admin"].get("/audit")["entries"] if x["action"] == "certificate-revoked"]
    assert [(x["details"]["node"], x["details"]["detail"]) for x in logged] == [("ds-ha", "laptop stolen"),
                                                                                 ("engine0", "")]  # fmt: skip
    # the operator's way back: a new key and certificate for the node (the same token) is accepted
    del ds.c.app.pems["ds-ha"]  # type: ignore[attr-defined]
    assert pki.spki_sha256(_cert(ds, "ds-ha")) != fp
    assert ds.get("/me")["name"] == "ds-ha"
