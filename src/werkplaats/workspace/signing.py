"""What approvals and audit entries sign: canonical JSON, plan templates, approval checks.

An approval is an Ed25519 signature by an organisation over a small JSON body::

    {"kind": "werkplaats-approval/v1", "organisation": "ggd", "collaboration": "...",
     "purpose": "...", "mode": "plan" | "template", "plan_hash": "…",        # mode plan
     "template_hash": "…", "vary": ["/root/input/predicate/right"],          # mode template
     "expires": "2025-01-31T00:00:00+00:00", "max_runs": 5, "issued": "...", "steward": "..."}

Mode ``template`` approves every plan equal to the approved one except for the literal
values at the JSON pointers in ``vary`` (for example the reporting week): the template
hash is the plan hash with those literals replaced by a placeholder. Hub, datastations
and engines all check approvals themselves, with `werkplaats.workspace.approvals.verify`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from ..exceptions import WerkplaatsError
from . import pki

APPROVAL_KIND = "werkplaats-approval/v1"


class ApprovalError(WerkplaatsError):
    """An approval does not cover a job: wrong signature, plan, collaboration, purpose, expiry or runs."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 of data."""
    return hashlib.sha256(data).hexdigest()


def literals(plan: dict[str, Any]) -> list[tuple[str, Any]]:
    """Return (JSON pointer, value) of every literal in a plan's JSON, in document order."""
    out: list[tuple[str, Any]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("op") == "lit":
                out.append((path, node.get("value")))
                return
            for k in sorted(node):
                walk(node[k], f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(plan, "")
    return out


def template_hash(plan: dict[str, Any], vary: list[str]) -> str:
    """Hash of the plan with the literals at the pointers in vary replaced by a placeholder."""
    found = {p for p, _ in literals(plan)}
    missing = [p for p in vary if p not in found]
    if missing:
        msg = f"template: no literal at {missing}; the plan's literals are at {sorted(found)}"
        raise ApprovalError(msg)
    doc = json.loads(json.dumps(plan))
    for p in vary:
        parts = [int(x) if x.isdigit() else x for x in p.strip("/").split("/")]
        node = doc
        for x in parts[:-1]:
            node = node[x]
        node[parts[-1]] = {"op": "param"}
    return sha256(canonical(doc))


def now() -> dt.datetime:
    """Return the current time in UTC."""
    return dt.datetime.now(dt.UTC)


def approval_body(
    *,
    organisation: str,
    collaboration: str,
    purpose: str,
    plan: dict[str, Any],
    plan_hash: str,
    expires: dt.datetime,
    max_runs: int,
    steward: str,
    vary: list[str] | None = None,
) -> dict[str, Any]:
    """Return the body a steward signs for a plan (mode plan), or its template (vary given)."""
    if max_runs < 1:
        msg = "max_runs must be at least 1"
        raise ApprovalError(msg)
    body: dict[str, Any] = {
        "kind": APPROVAL_KIND,
        "organisation": organisation,
        "collaboration": collaboration,
        "purpose": purpose,
        "expires": expires.astimezone(dt.UTC).isoformat(),
        "max_runs": int(max_runs),
        "issued": now().isoformat(),
        "steward": steward,
    }
    if vary:
        body |= {"mode": "template", "template_hash": template_hash(plan, vary), "vary": list(vary)}
    else:
        body |= {"mode": "plan", "plan_hash": plan_hash}
    return body


def sign_approval(key: Any, body: dict[str, Any]) -> str:
    """Return the organisation's signature over an approval body."""
    return pki.sign(key, canonical(body))


def approval_id(signature: str) -> str:
    """A short, stable id of an approval: the hash of its signature."""
    return sha256(signature.encode())[:16]
