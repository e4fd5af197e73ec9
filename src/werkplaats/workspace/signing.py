"""What approvals and audit entries sign: canonical JSON, plan templates, approval checks.

An approval is an Ed25519 signature by an organisation over a small JSON body::

    {"kind": "werkplaats-approval/v1", "organisation": "ggd", "collaboration": "...",
     "purpose": "...", "mode": "plan" | "template", "plan_hash": "…",        # mode plan
     "template_hash": "…", "vary": ["/root/input/predicate/right"],          # mode template
     "ranges": {"/root/input/predicate/right": {"min": "2020-01-01", "max": "2026-12-31"}},
     "expires": "2025-01-31T00:00:00+00:00", "max_runs": 5, "issued": "...", "steward": "..."}

Mode ``template`` approves every plan equal to the approved one except for the literal
values at the JSON pointers in ``vary`` (for example the reporting week): the template
hash is the plan hash with those literals replaced by a placeholder. Each varied literal has
the range the steward sets (``{"min": …, "max": …}``, both ends included, numbers or ISO
dates; or ``{"values": [...]}``): a template approval without a range for each is refused
when signed and when verified, and a plan whose literal is outside its range is not covered
(rule 9 of docs/disclosure.md: another scientist cannot re-run a differencing attack with
new values). Hub, datastations and engines all check approvals themselves, with
`werkplaats.workspace.approvals.verify`.
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


def parse_range(text: str) -> tuple[str, dict[str, Any]]:
    """Return (pointer, range) of a command-line range: ``PTR=MIN:MAX`` or ``PTR=V1,V2,...``.

    Numbers are read as numbers; anything else (an ISO date, a code) as a string.
    """
    ptr, eq, spec = text.partition("=")
    if not eq or not ptr.startswith("/") or not spec:
        msg = f"range {text!r}: expected POINTER=MIN:MAX or POINTER=V1,V2,... (a JSON pointer from the plan's literals)"
        raise ApprovalError(msg)
    if ":" in spec:
        lo, _, hi = spec.partition(":")
        return ptr, {"min": _scalar(lo), "max": _scalar(hi)}
    return ptr, {"values": [_scalar(v) for v in spec.split(",")]}


def _scalar(text: str) -> Any:
    try:
        v = json.loads(text)
    except ValueError:
        return text
    return v if isinstance(v, int | float) and not isinstance(v, bool) else text


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def range_text(r: dict[str, Any]) -> str:
    """Return a range in words: 'from MIN to MAX' or 'one of [...]'."""
    if "values" in r:
        return f"one of {r['values']!r}"
    return f"from {r['min']!r} to {r['max']!r}"


def in_range(value: Any, r: dict[str, Any]) -> bool:
    """Return whether a literal's value is within a (checked) range; a value of another type never is."""
    if "values" in r:
        return any(type(value) is type(x) and value == x for x in r["values"])
    lo, hi = r["min"], r["max"]
    if _number(lo):
        return _number(value) and lo <= value <= hi
    return isinstance(value, str) and lo <= value <= hi


def _check_ranges(body: dict[str, Any], org: str) -> None:
    vary, ranges = body["vary"], body.get("ranges")
    if not isinstance(ranges, dict):
        msg = f"approval of {org}: a template approval needs 'ranges': the range of each literal it lets vary"
        raise ApprovalError(msg)
    missing = [p for p in vary if p not in ranges]
    if missing:
        msg = f"approval of {org}: no range for the varied literal(s) at {missing}; the steward sets one for each"
        raise ApprovalError(msg)
    extra = sorted(p for p in ranges if p not in vary)
    if extra:
        msg = f"approval of {org}: ranges for literals that do not vary: {extra}"
        raise ApprovalError(msg)
    for p, r in ranges.items():
        ok = isinstance(r, dict) and (
            (set(r) == {"values"} and isinstance(r["values"], list) and r["values"]
             and all(v is None or isinstance(v, bool | int | float | str) for v in r["values"]))
            or (set(r) == {"min", "max"} and ((_number(r["min"]) and _number(r["max"]))
                                              or (isinstance(r["min"], str) and isinstance(r["max"], str)))
                and r["min"] <= r["max"])
        )  # fmt: skip
        if not ok:
            msg = (
                f"approval of {org}: the range of {p} must be {{'min': …, 'max': …}} (two numbers or two ISO dates, "
                "min <= max) or {'values': [...]} (a non-empty list of literals)"
            )
            raise ApprovalError(msg)


def check_in_ranges(body: dict[str, Any], plan: dict[str, Any]) -> None:
    """Refuse a plan whose varied literals lie outside the ranges of a (checked) template approval."""
    org = body.get("organisation", "?")
    found = dict(literals(plan))
    for p in body.get("vary", []):
        r = body["ranges"][p]
        if p not in found or not in_range(found[p], r):
            msg = (
                f"approval of {org}: the literal at {p} is {found.get(p)!r}, outside the range the steward "
                f"approved ({range_text(r)}); a new value outside it needs a new approval"
            )
            raise ApprovalError(msg)


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
        _check_ranges(body, org)
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
    ranges: dict[str, dict[str, Any]] | None = None,
    limits: ApprovalLimits | None = None,
) -> dict[str, Any]:
    """Return the body a steward signs for a plan (mode plan), or its template (vary given).

    ranges: for a template, the range of each varied literal (see `parse_range`); the plan's
    own values must lie in them. Raise ApprovalError if a range is missing or malformed, or
    if the approval would grant more than limits (ApprovalLimits() by default).
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
        body |= {"mode": "template", "template_hash": template_hash(plan, vary), "vary": list(vary),
                 "ranges": dict(ranges or {})}  # fmt: skip
    else:
        body |= {"mode": "plan", "plan_hash": plan_hash}
    check_limits(body, limits or ApprovalLimits())
    if vary:
        check_in_ranges(body, plan)  # NB: the plan the steward read is within what they approve
    return body


def sign_approval(key: Any, body: dict[str, Any]) -> str:
    """Return the organisation's signature over an approval body."""
    return pki.sign(key, canonical(body))


def approval_id(signature: str) -> str:
    """A short, stable id of an approval: the hash of its signature."""
    return sha256(signature.encode())[:16]
