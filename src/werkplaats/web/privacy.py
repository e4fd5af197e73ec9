"""The privacy officer's pages: audit trail, chain self-check, processing register, use per collaboration.

Everything here reads what the hub's API gives an overseer: the audit chain (``hub.audit_entries``), its
verification (``audit.verify_chain``, a *self-check*: the hub checks its own chain with its own keys) and
the processing register (``register.register_rows`` / ``register.export``). The verification that counts
holds the chain against the nodes' own anchors (``werkplaats audit verify --hub-key … --anchors …``); the
audit page says so and shows the command.
"""

# OWNER: helper oversight

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..workspace import audit, db, register
from ..workspace.hub.core import Hub
from .deps import HubDep, SessionDep, WebUser, require_role
from .render import render

router = APIRouter()
Officer = Annotated[WebUser, require_role("privacy-officer")]
PAGE = 50  # NB: entries per page of the audit trail and the register
VERIFY_COMMAND = "werkplaats audit verify --hub-key keys/hub.pub --anchors nodes/"
_ENTRY = re.compile(r"^entry (\d+)\b")
USE_ACTIONS = ("request", "approval", "rejection", "job-created", "contribution", "nothing-sent", "result-release")


def _date(v: str) -> str:
    """A YYYY-MM-DD date from a query parameter ('' when empty or not a date)."""
    try:
        return dt.date.fromisoformat(v).isoformat() if v else ""
    except ValueError:
        return ""


def _page(rows: list[Any], page: int) -> tuple[list[Any], int, int]:
    """One page of rows (1-based, clamped), the page and the number of pages."""
    pages = max(1, -(-len(rows) // PAGE))
    page = min(max(1, page), pages)
    return rows[(page - 1) * PAGE : page * PAGE], page, pages


class Context:
    """What the filters need to place an entry: requests' collaborations and organisations, users' organisations."""

    def __init__(self, s: Session) -> None:
        collabs = {c.id: c.name for c in s.scalars(select(db.Collaboration))}
        self.collaborations = sorted(collabs.values())
        self.organisations = sorted(s.scalars(select(db.Organisation.name)))
        q = select(db.Request.id, db.Request.collaboration_id, db.Request.organisations)
        self.request_collab: dict[int, str] = {}
        self.request_orgs: dict[int, list[str]] = {}
        for rid, cid, orgs in s.execute(q):
            self.request_collab[rid] = collabs.get(cid, "")
            self.request_orgs[rid] = list(orgs or [])
        orgs_by_id = {o.id: o.name for o in s.scalars(select(db.Organisation))}
        self.actor_org = {
            name: orgs_by_id.get(oid or 0, "") for name, oid in s.execute(select(db.User.name, db.User.organisation_id))
        }
        for name, oid in s.execute(select(db.Node.name, db.Node.organisation_id)):
            self.actor_org[name] = orgs_by_id.get(oid or 0, "")

    def collaboration(self, e: dict[str, Any]) -> str:
        """The collaboration an entry is about ('' when none)."""
        d = e.get("details") or {}
        if d.get("collaboration"):
            return str(d["collaboration"])
        subject = str(e.get("subject", ""))
        if subject.startswith("collaboration/"):
            return subject.split("/", 1)[1]
        rid = d.get("request")
        return self.request_collab.get(rid, "") if isinstance(rid, int) else ""

    def organisations_of(self, e: dict[str, Any]) -> set[str]:
        """The organisations an entry involves: named in it, whose data it reads, or whose user or node acted."""
        d = e.get("details") or {}
        out = {str(d["organisation"])} if d.get("organisation") else set()
        signed = d.get("signed") or {}
        if isinstance(signed, dict) and signed.get("organisation"):
            out.add(str(signed["organisation"]))
        out |= {str(x).split("/", 1)[0] for x in d.get("datasets") or [] if isinstance(x, str)}
        subject = str(e.get("subject", ""))
        if subject.startswith("organisation/"):
            out.add(subject.split("/", 1)[1])
        rid = d.get("request")
        if isinstance(rid, int):
            out |= set(self.request_orgs.get(rid, []))
        if self.actor_org.get(str(e.get("actor", ""))):
            out.add(self.actor_org[str(e["actor"])])
        return out


def summary(e: dict[str, Any]) -> list[tuple[str, str]]:
    """What an entry says, as label/value pairs (never a signature or a signed body)."""
    d = e.get("details") or {}
    out: list[tuple[str, str]] = []
    for k in ("request", "job", "organisation", "state", "purpose", "detail", "cells", "suppressed"):
        if d.get(k) not in (None, "", []):
            out.append((k, str(d[k])))
    if d.get("datasets"):
        out.append(("datasets", ", ".join(map(str, d["datasets"]))))
    cols = d.get("columns")
    if isinstance(cols, dict) and cols:
        out.append(("columns", "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in sorted(cols.items()))))
    return out


def self_check(hub: Hub, s: Session) -> tuple[list[str], list[tuple[int, int]], int]:
    """The hub's own check of its chain (hashes, order, signatures).

    Returns the problems, the entries they name with the page of the (unfiltered) trail each is on, and
    the number of entries.
    """
    entries = hub.audit_entries(s)
    problems = audit.verify_chain(entries, hub.audit_keys(s))
    named = {int(m.group(1)) for p in problems if (m := _ENTRY.match(p))}
    newest_first = [int(e["seq"]) for e in reversed(entries)]
    broken = [(seq, i // PAGE + 1) for i, seq in enumerate(newest_first) if seq in named]
    return problems, sorted(broken), len(entries)


def _entry(e: db.AuditEntry) -> dict[str, Any]:
    """A stored audit entry as the chain's JSON (as hub.audit_entries gives it)."""
    return {k: getattr(e, k) for k in (*audit.FIELDS, "hash", "signature")}


def _count(s: Session, q: Any) -> int:
    """The number of rows a select would give."""
    return int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)


def _scan(s: Session, q: Any, keep: Any, page: int) -> tuple[list[dict[str, Any]], int, int, int]:
    """The page of entries of q that keep(entry) accepts: the entries, how many match, the page, the pages.

    NB: the scan reads actor, subject and details only, without ORM objects (~2x faster); the page's own
    entries are read whole.
    """
    lean = q.with_only_columns(db.AuditEntry.seq, db.AuditEntry.actor, db.AuditEntry.subject, db.AuditEntry.details)
    found = [seq for seq, actor, subject, details in s.execute(lean)
             if keep({"actor": actor, "subject": subject, "details": details})]  # fmt: skip
    seqs, page, pages = _page(found, page)
    got = {e.seq: e for e in s.scalars(select(db.AuditEntry).where(db.AuditEntry.seq.in_(seqs)))}
    return [_entry(got[n]) for n in seqs], len(found), page, pages


@router.get("/audit")
def audit_trail(
    request: Request,
    user: Officer,
    s: SessionDep,
    hub: HubDep,
    collaboration: str = "",
    organisation: str = "",
    action: str = "",
    date_from: str = "",
    date_to: str = "",
    page: int = 1,
) -> Response:
    """The hub's audit trail, newest first, filtered; the hub's self-check of its chain is loaded beside it.

    NB: action and dates filter in SQL and an unfiltered page reads only its own rows; collaboration and
    organisation are read from each entry's details and the requests it names, so they scan the entries.
    """
    ctx = Context(s)
    since, until = _date(date_from), _date(date_to)
    q = select(db.AuditEntry)
    if action:
        q = q.where(db.AuditEntry.action == action)
    if since:
        q = q.where(db.AuditEntry.ts >= since)
    if until:
        q = q.where(db.AuditEntry.ts < (dt.date.fromisoformat(until) + dt.timedelta(days=1)).isoformat())
    q = q.order_by(db.AuditEntry.seq.desc())
    if collaboration or organisation:

        def keep(e: dict[str, Any]) -> bool:
            return (not collaboration or ctx.collaboration(e) == collaboration) and (
                not organisation or organisation in ctx.organisations_of(e)
            )

        shown, total, page, pages = _scan(s, q, keep, page)
    else:
        total = _count(s, q)
        pages = max(1, -(-total // PAGE))
        page = min(max(1, page), pages)
        shown = [_entry(e) for e in s.scalars(q.offset((page - 1) * PAGE).limit(PAGE))]
    rows = [{"e": e, "collaboration": ctx.collaboration(e), "summary": summary(e)} for e in shown]
    filters = {"collaboration": collaboration, "organisation": organisation, "action": action,
               "date_from": since, "date_to": until}  # fmt: skip
    return render(
        request,
        "privacy/audit.html",
        {
            "rows": rows,
            "total": total,
            "all": _count(s, select(db.AuditEntry.seq)),
            "page": page,
            "pages": pages,
            "filters": filters,
            "query": {k: v for k, v in filters.items() if v},
            "collaborations": ctx.collaborations,
            "organisations": ctx.organisations,
            "actions": sorted(s.scalars(select(db.AuditEntry.action).distinct())),
            "hub_fingerprint": audit.key_fingerprint(hub.public_key),
            "verify_command": VERIFY_COMMAND,
        },
    )


@router.get("/audit/self-check")
def audit_self_check(request: Request, user: Officer, s: SessionDep, hub: HubDep) -> Response:
    """The hub's self-check of its whole chain: an htmx fragment for the audit page, or a page of its own."""
    problems, broken, n = self_check(hub, s)
    ctx = {"problems": problems, "broken": broken, "all": n, "fragment": bool(request.headers.get("hx-request"))}
    return render(request, "privacy/self_check.html", ctx)


@router.get("/register")
def register_page(
    request: Request, user: Officer, s: SessionDep, hub: HubDep, collaboration: str = "", page: int = 1
) -> Response:
    """The processing register (verwerkingsregister): what data was used, for which purpose, by whom, when.

    The page shows the entries about the use of data (USE_ACTIONS); the exports hold every entry.
    """
    ctx = Context(s)
    q = select(db.AuditEntry).where(db.AuditEntry.action.in_(USE_ACTIONS)).order_by(db.AuditEntry.seq.desc())
    if collaboration:
        shown, total, page, pages = _scan(s, q, lambda e: ctx.collaboration(e) == collaboration, page)
    else:
        total = _count(s, q)
        pages = max(1, -(-total // PAGE))
        page = min(max(1, page), pages)
        shown = [_entry(e) for e in s.scalars(q.offset((page - 1) * PAGE).limit(PAGE))]
    rows = register.register_rows(shown)
    for r, e in zip(rows, shown, strict=True):  # NB: an entry naming only its request is placed by the request's
        r["collaboration"] = r["collaboration"] or ctx.collaboration(e)
    return render(
        request,
        "privacy/register.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "collaboration": collaboration,
            "collaborations": ctx.collaborations,
            "query": {"collaboration": collaboration} if collaboration else {},
        },
    )


def _export(hub: Hub, s: Session, fmt: str) -> Response:
    """The register as the API exports it (register.export), as a download."""
    media = {"csv": "text/csv; charset=utf-8", "json": "application/json"}[fmt]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    disposition = f'attachment; filename="verwerkingsregister-{hub.name}-{stamp}.{fmt}"'
    return Response(register.export(hub.audit_entries(s), fmt), media_type=media,
                    headers={"Content-Disposition": disposition})  # fmt: skip


@router.get("/register.csv")
def register_csv(user: Officer, s: SessionDep, hub: HubDep) -> Response:
    """The processing register as CSV (the same as `GET /api/v1/audit/export?format=csv`)."""
    return _export(hub, s, "csv")


@router.get("/register.json")
def register_json(user: Officer, s: SessionDep, hub: HubDep) -> Response:
    """The processing register as JSON (the same as `GET /api/v1/audit/export?format=json`)."""
    return _export(hub, s, "json")


@router.get("/collaborations/{name}/use")
def collaboration_use(request: Request, name: str, user: Officer, s: SessionDep, hub: HubDep) -> Response:
    """Per collaboration: its requests with purpose, requester, datasets and columns; approvals, jobs, releases."""
    collab = s.scalars(select(db.Collaboration).where(db.Collaboration.name == name)).first()
    if collab is None:
        raise HTTPException(404, f"no collaboration {name!r}")
    reqs = list(s.scalars(select(db.Request).where(db.Request.collaboration_id == collab.id).order_by(db.Request.id)))
    ids = [r.id for r in reqs]
    users = {i: n for i, n in s.execute(select(db.User.id, db.User.name))}
    orgs = {i: n for i, n in s.execute(select(db.Organisation.id, db.Organisation.name))}
    approvals: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for a in s.scalars(select(db.Approval).where(db.Approval.request_id.in_(ids)).order_by(db.Approval.id)):
        approvals[a.request_id].append({
            "organisation": orgs.get(a.organisation_id, ""), "by": a.signed_by, "when": a.created,
            "expires": str(a.body.get("expires", "")), "max_runs": a.body.get("max_runs", ""),
        })  # fmt: skip
    rejections: dict[int, list[db.Rejection]] = {i: [] for i in ids}
    for rj in s.scalars(select(db.Rejection).where(db.Rejection.request_id.in_(ids)).order_by(db.Rejection.id)):
        rejections[rj.request_id].append(rj)
    jobs: dict[int, list[db.Job]] = {i: [] for i in ids}
    for j in s.scalars(select(db.Job).where(db.Job.request_id.in_(ids)).order_by(db.Job.id)):
        jobs[j.request_id].append(j)
    releases: dict[int, dict[str, Any]] = {}
    for e in s.scalars(select(db.AuditEntry).where(db.AuditEntry.action == "result-release")):
        d = e.details or {}
        if d.get("request") in approvals:
            releases[int(d["job"])] = {"ts": e.ts, **d}
    rows = [
        {
            "r": r,
            "requester": users.get(r.requester_id, ""),
            "approvals": approvals[r.id],
            "rejections": [(orgs.get(x.organisation_id, ""), x.by, x.reason, x.created) for x in rejections[r.id]],
            "jobs": [(j, releases.get(j.id)) for j in jobs[r.id]],
        }
        for r in reversed(reqs)
    ]
    read: dict[str, set[str]] = {}
    for r in reqs:
        for ds, cols in (r.columns or {}).items():
            read.setdefault(ds, set()).update(cols)
    return render(
        request,
        "privacy/use.html",
        {
            "collab": collab,
            "members": sorted(
                orgs.get(m.organisation_id, "")
                for m in s.scalars(select(db.Member).where(db.Member.collaboration_id == collab.id))
            ),
            "rows": rows,
            "read": {k: sorted(v) for k, v in sorted(read.items())},
            "released": len(releases),
        },
    )
