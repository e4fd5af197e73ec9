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
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ApprovalLimits:
    """The most an approval may grant: expiry within max_days of now, at most max_runs runs.

    The hub (hub.toml ``[hub]``) and each datastation (datastation.toml ``[datastation]``)
    set their own with ``max_approval_days`` and ``max_approval_runs``; they are checked
    when a steward signs an approval and when the hub records it.
    """

    max_days: int = 730
    max_runs: int = 1000

    @classmethod
    def of(cls, section: dict[str, Any], where: str) -> ApprovalLimits:
        """Read max_approval_days and max_approval_runs from a configuration section (defaults if absent)."""
        default = cls()
        d = section.get("max_approval_days", default.max_days)
        r = section.get("max_approval_runs", default.max_runs)
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in (d, r)):
            msg = f"{where}: max_approval_days and max_approval_runs must be whole numbers of at least 1"
            raise ApprovalError(msg)
        return cls(d, r)


def check_body(body: dict[str, Any]) -> None:
    """Refuse an approval body whose fields are missing or malformed, naming the field and the rule."""
    org = body.get("organisation", "?")
    for name in ("organisation", "collaboration", "purpose", "expires"):
        if not isinstance(body.get(name), str):
            msg = f"approval of {org}: {name!r} must be present, as a string"
            raise ApprovalError(msg)
    expires = _expires(body)
    if expires.tzinfo is None or expires.utcoffset() is None:
        msg = f"approval of {org}: 'expires' must name its time zone (ISO 8601, e.g. 2025-01-31T00:00:00+00:00)"
        raise ApprovalError(msg)
    runs = body.get("max_runs")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        msg = f"approval of {org}: 'max_runs' must be a whole number of at least 1"
        raise ApprovalError(msg)
    mode = body.get("mode")
    if mode == "template":
        vary = body.get("vary")
        if not isinstance(vary, list) or not all(isinstance(p, str) for p in vary):
            msg = f"approval of {org}: 'vary' must be a list of JSON pointers"
            raise ApprovalError(msg)
    elif mode != "plan":
        msg = f"approval of {org}: 'mode' must be 'plan' or 'template'"
        raise ApprovalError(msg)


def _expires(body: dict[str, Any]) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(body["expires"])
    except (TypeError, ValueError, KeyError):
        msg = f"approval of {body.get('organisation', '?')}: 'expires' must be an ISO 8601 date and time"
        raise ApprovalError(msg) from None


def check_limits(body: dict[str, Any], limits: ApprovalLimits, at: dt.datetime | None = None) -> None:
    """Refuse an approval granting more than the limits allow: expiry too far ahead, too many runs."""
    check_body(body)
    org = body.get("organisation", "?")
    latest = (at or now()) + dt.timedelta(days=limits.max_days)
    if _expires(body) > latest:
        msg = f"approval of {org}: expires more than {limits.max_days} days ahead (the limit, max_approval_days)"
        raise ApprovalError(msg)
    if body["max_runs"] > limits.max_runs:
        msg = (
            f"approval of {org}: {body['max_runs']} runs, more than the limit of {limits.max_runs} (max_approval_runs)"
        )
        raise ApprovalError(msg)


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
    limits: ApprovalLimits | None = None,
) -> dict[str, Any]:
    """Return the body a steward signs for a plan (mode plan), or its template (vary given).

    Raise ApprovalError if it would grant more than limits (ApprovalLimits() by default).
    """
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
    check_limits(body, limits or ApprovalLimits())
    return body


def sign_approval(key: Any, body: dict[str, Any]) -> str:
    """Return the organisation's signature over an approval body."""
    return pki.sign(key, canonical(body))


def approval_id(signature: str) -> str:
    """A short, stable id of an approval: the hash of its signature."""
    return sha256(signature.encode())[:16]
