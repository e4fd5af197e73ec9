"""A datastation's stewards' pages: inbox, review, approve (signed here), reject, the datastation's log.

Security model: these pages run in the datastation's process, on the organisation's side. Every
logged-in user is a steward of this datastation's organisation (its own accounts); a session of
another datastation is unknown here. The review page reads the request from the hub with the
steward's token, checks that the plan hashes to the plan hash, and shows the plan's text as this
node computes it from that plan (`StewardDesk.review`), never the hub's stored text, and the
columns of *our* datasets the plan reads, worked out here from the plan. An approval is signed
here with the organisation's key, and only for the plan the steward read: the form carries the
plan hash shown, and the POST reviews the request again and refuses when the hash differs.
"""

# OWNER: helper station

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from ..exceptions import WerkplaatsError
from ..plan.serde import plan_from_dict
from ..workspace.audit import LogError
from ..workspace.http import HubError
from ..workspace.jobs import columns_read
from ..workspace.signing import (
    ApprovalError,
    approval_id,
    canonical,
    check_in_ranges,
    parse_range,
    sha256,
    template_hash,
)
from ..workspace.steward import Review
from .deps import CsrfDep, WebUser, require_role
from .i18n import negotiate, translations
from .render import render

if TYPE_CHECKING:
    from ..workspace.datastation import Datastation

router = APIRouter()
Steward = Annotated[WebUser, require_role("steward")]
PAGE = 50  # NB: rows per page of the decided requests and of the log


def _station(request: Request, user: WebUser) -> Datastation:
    """This app's datastation; refuse (403) a user who is not a steward of its organisation."""
    station: Datastation = request.app.state.station
    if user.organisation != station.cfg.organisation:
        raise HTTPException(403, "forbidden-role")  # NB: a steward, but of another organisation
    return station


def _tr(request: Request) -> Any:
    """The gettext function of the request's language."""
    return translations(negotiate(request)).gettext


class HubProblem(Exception):
    """The hub answered a page's call with an error, or could not be reached (shown on a page of its own, 502)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _hub_failed(request: Request, e: Exception) -> HubProblem:
    """The problem to show for a hub that answered with an error or could not be reached."""
    _ = _tr(request)
    if isinstance(e, HubError) and e.status:  # NB: status 0: the connection failed
        return HubProblem(_("The hub answered: {detail}").format(detail=e.detail))
    return HubProblem(_("The hub cannot be reached; try again later."))


def shows_hub_problems(page: Callable[..., Response]) -> Callable[..., Response]:
    """Render a HubProblem raised by a page as a page saying what the hub answered (nothing was done)."""

    @functools.wraps(page)
    def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return page(request, *args, **kwargs)
        except HubProblem as e:
            return render(request, "station/hub_problem.html", {"detail": e.detail}, status=502)

    return wrapper


def _requests(request: Request, station: Datastation) -> list[dict[str, Any]]:
    """Every request the steward's account may see at the hub (summaries, without plans)."""
    try:
        c = station.steward()
        try:
            rows: list[dict[str, Any]] = c.get("/requests")
        finally:
            c.close()
    except (HubError, httpx.HTTPError, OSError) as e:
        raise _hub_failed(request, e) from None
    except WerkplaatsError as e:  # NB: no steward_token in datastation.toml
        raise HubProblem(str(e)) from None
    return rows


def _when(iso: str) -> str:
    """A timestamp as the pages show it: date and minutes, UTC."""
    try:
        t = dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso or "")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if t.tzinfo else t.strftime("%Y-%m-%d %H:%M")


def _decision(r: dict[str, Any], org: str) -> dict[str, Any]:
    """This organisation's decision on a request: waiting, approved (by whom, until when) or rejected (why)."""
    if org in r.get("rejections", {}):
        rj = r["rejections"][org]
        return {"state": "rejected", "by": rj.get("by", ""), "reason": rj.get("reason", "")}
    if org in r.get("approvals", {}):
        a = r["approvals"][org]
        body = a.get("body", {})
        return {
            "state": "approved",
            "by": body.get("steward") or a.get("by", ""),
            "when": _when(body.get("issued", "")),
            "expires": _when(body.get("expires", "")),
            "max_runs": body.get("max_runs"),
            "mode": body.get("mode", "plan"),
        }
    return {"state": "pending"}


def _pages(total: int, page: int) -> tuple[int, int]:
    """The page number within range and the number of pages."""
    n = max(1, math.ceil(total / PAGE))
    return min(max(page, 1), n), n


@router.get("/inbox")
@shows_hub_problems
def inbox(request: Request, user: Steward, page: int = 1) -> Response:
    """The requests that read this organisation's data: waiting ones first, then decided ones."""
    station = _station(request, user)
    org = station.cfg.organisation
    mine = [r for r in _requests(request, station) if org in r.get("organisations", [])]
    rows = [{**r, "decision": _decision(r, org), "created_at": _when(r.get("created", ""))} for r in mine]
    waiting = sorted((r for r in rows if r["decision"]["state"] == "pending"), key=lambda r: -int(r["id"]))
    decided = sorted((r for r in rows if r["decision"]["state"] != "pending"), key=lambda r: -int(r["id"]))
    page, pages = _pages(len(decided), page)
    ctx = {
        "organisation": org,
        "waiting": waiting,
        "decided": decided[(page - 1) * PAGE : page * PAGE],
        "page": page,
        "pages": pages,
    }
    return render(request, "station/inbox.html", ctx)


def _ours(station: Datastation, rv: Review) -> dict[str, list[str]]:
    """The columns of this organisation's datasets that the plan reads, worked out here from the plan."""
    org = station.cfg.organisation
    cols = columns_read(plan_from_dict(rv.plan))
    return {d: c for d, c in sorted(cols.items()) if d.split("/")[0] == org}


def _review(request: Request, station: Datastation, rid: int) -> tuple[Review, dict[str, list[str]]]:
    """Read a request as this organisation's steward; 404 unless its plan reads our data."""
    _ = _tr(request)
    try:
        rv = station.review(rid)
    except HubError as e:
        if e.status in (403, 404):  # NB: outside our collaborations, or no such request: the same answer
            raise HTTPException(404, _("There is no request {rid} for this organisation.").format(rid=rid)) from None
        raise _hub_failed(request, e) from None
    except (httpx.HTTPError, OSError) as e:
        raise _hub_failed(request, e) from None
    except ApprovalError:  # NB: the plan the hub sent does not hash to its plan hash
        msg = _(
            "The hub sent a plan for request {rid} that does not match its plan hash. Nothing can be signed: "
            "report this to the workspace's administrator."
        ).format(rid=rid)
        raise HTTPException(409, msg) from None
    except WerkplaatsError as e:
        raise HubProblem(str(e)) from None
    ours = _ours(station, rv)
    if not ours:
        raise HTTPException(404, _("There is no request {rid} for this organisation.").format(rid=rid))
    return rv, ours


def _earlier(rv: Review, rows: list[dict[str, Any]], org: str) -> list[dict[str, Any]]:
    """Our approvals of other requests that approve this plan or its template, and whether they cover this one.

    An approval covers a plan only in its own collaboration and for its own purpose, before it expires, and
    (a template approval) with each varied value within its range; the datastation checks all of this again
    when a job comes.
    """
    now = dt.datetime.now(dt.UTC)
    out = []
    for r in rows:
        a = r.get("approvals", {}).get(org)
        if int(r["id"]) == rv.request or not a:
            continue
        body = a.get("body", {})
        within = True
        if body.get("mode") == "template":
            try:
                same = template_hash(rv.plan, list(body.get("vary", []))) == body.get("template_hash")
            except ApprovalError:
                same = False
            if not same:
                continue
            try:
                check_in_ranges(body, rv.plan)
            except (ApprovalError, KeyError, TypeError):
                within = False
        elif body.get("plan_hash") != rv.plan_hash:
            continue
        try:
            expired = dt.datetime.fromisoformat(str(body.get("expires", ""))) <= now
        except ValueError:
            expired = True
        context = body.get("collaboration") == rv.collaboration and body.get("purpose") == rv.purpose
        out.append(
            {
                "request": r["id"],
                "mode": body.get("mode", "plan"),
                "vary": body.get("vary", []),
                "ranges": body.get("ranges", {}),
                "steward": body.get("steward") or a.get("by", ""),
                "issued": _when(body.get("issued", "")),
                "expires": _when(body.get("expires", "")),
                "covers": "yes"
                if within and context and not expired
                else "context"
                if not context
                else "expired"
                if expired
                else "range",
            }
        )
    return sorted(out, key=lambda x: -int(x["request"]))


def _others(rv: Review, org: str) -> list[dict[str, Any]]:
    """This request's decisions by the other organisations whose data it reads (from the hub's record)."""
    out = []
    for o, a in sorted(rv.approvals.items()):
        if o != org:
            body = a.get("body", {})
            out.append(
                {
                    "organisation": o,
                    "state": "approved",
                    "by": body.get("steward") or a.get("by", ""),
                    "when": _when(body.get("issued", "")),
                    "reason": "",
                }
            )
    for o, rj in sorted(rv.rejections.items()):
        if o != org:
            out.append(
                {
                    "organisation": o,
                    "state": "rejected",
                    "by": rj.get("by", ""),
                    "when": "",
                    "reason": rj.get("reason", ""),
                }
            )
    return out


def _rules(station: Datastation, rv: Review, ours: dict[str, list[str]]) -> dict[str, Any]:
    """The rules that apply: the plan's k, each of our datasets' own rules, this datastation's approval limits."""
    return {
        "k": plan_from_dict(rv.plan).min_group_size,
        "datasets": {d: dict(station.schemas[d].rules) if d in station.schemas else None for d in ours},
        "max_days": station.cfg.approval_limits.max_days,
        "max_runs": station.cfg.approval_limits.max_runs,
    }


def shown(rv: Review) -> str:
    """A digest of what the steward read and signs: request, collaboration, purpose, plan hash."""
    return sha256(canonical([rv.request, rv.collaboration, rv.purpose, rv.plan_hash]))


def _review_page(
    request: Request,
    station: Datastation,
    rv: Review,
    ours: dict[str, list[str]],
    *,
    form: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    """Render the review page of a request (with the approve and reject forms while it waits for us)."""
    org = station.cfg.organisation
    rows = _requests(request, station)
    summary = next((r for r in rows if int(r["id"]) == rv.request), {})
    decision = _decision({"approvals": rv.approvals, "rejections": rv.rejections}, org)
    ctx = {
        "rv": rv,
        "shown": shown(rv),
        "organisation": org,
        "ours": ours,
        "held": {d: d in station.schemas for d in ours},
        "created_at": _when(rv.created),
        "status": summary.get("status", ""),
        "decision": decision,
        "spent": _spent(station, rv),
        "others": _others(rv, org),
        "earlier": _earlier(rv, rows, org),
        "rules": _rules(station, rv, ours),
        "form": {
            "days": min(30, station.cfg.approval_limits.max_days),
            "max_runs": 1,
            "vary": [],
            "ranges": {},
            "reason": "",
            "reject_error": False,
            **(form or {}),
        },
        "errors": errors or [],
        "done": request.query_params.get("done", ""),
    }
    return render(request, "station/review.html", ctx, status=status)


@router.get("/inbox/{rid}")
@shows_hub_problems
def review(request: Request, rid: int, user: Steward) -> Response:
    """A request as this organisation's steward reads it before deciding."""
    station = _station(request, user)
    rv, ours = _review(request, station, rid)
    return _review_page(request, station, rv, ours)


def _spent(station: Datastation, rv: Review) -> str:
    """Why this organisation's approval of the request no longer covers a run ("expired", "used") or ''."""
    a = rv.approvals.get(station.cfg.organisation)
    if not a or station.cfg.organisation in rv.rejections:
        return ""
    body = a.get("body", {})
    try:
        if dt.datetime.fromisoformat(str(body.get("expires", ""))) <= dt.datetime.now(dt.UTC):
            return "expired"
        used = station.runs_used().get(approval_id(str(a.get("signature", ""))), 0)  # NB: counted in its own log
    except (ValueError, LogError):
        return ""
    return "used" if used >= int(body.get("max_runs", 1)) else ""


def _decided(request: Request, station: Datastation, rv: Review) -> str:
    """'' while the request waits for us (or our approval is spent), else that it was decided: nothing is signed."""
    state = _decision({"approvals": rv.approvals, "rejections": rv.rejections}, station.cfg.organisation)["state"]
    if state == "pending" or (state == "approved" and _spent(station, rv)):
        return ""
    return _tr(request)("Your organisation has already decided on this request.")


def _log_intact(request: Request, station: Datastation) -> str:
    """'' when the datastation's own log is intact, else why not (nothing is signed onto a damaged log)."""
    try:
        station.log.check()
    except LogError as e:
        _ = _tr(request)
        return _("This datastation's own log is not intact, so nothing is signed here: {problem}").format(problem=e)
    return ""


@router.post("/inbox/{rid}/approve")
@shows_hub_problems
def approve(
    request: Request,
    rid: int,
    user: Steward,
    _csrf: CsrfDep,
    plan_hash: Annotated[str, Form()] = "",
    read: Annotated[str, Form()] = "",
    days: Annotated[str, Form()] = "",
    max_runs: Annotated[str, Form()] = "",
    vary: Annotated[list[int], Form()] = [],  # noqa: B006  (FastAPI copies the default)
    ranges: Annotated[list[str], Form()] = [],  # noqa: B006
) -> Response:
    """Sign an approval of exactly the plan the steward read, with the organisation's key, and send it to the hub."""
    station = _station(request, user)
    _ = _tr(request)
    rv, ours = _review(request, station, rid)  # NB: read again: what is signed is what the hub holds now
    decided = _decided(request, station, rv)
    if decided:
        return _review_page(request, station, rv, ours, errors=[decided], status=409)
    limits = station.cfg.approval_limits
    form = {"days": days, "max_runs": max_runs, "vary": vary, "ranges": dict(enumerate(ranges)), "reason": ""}
    errors: list[str] = []
    if plan_hash != rv.plan_hash or read != shown(rv):  # NB: the hub changed the plan or its purpose meanwhile
        msg = _("The request changed since you read it. Read it again below before you decide.")
        return _review_page(request, station, rv, ours, errors=[msg], status=409)
    d = _whole(days)
    if d is None or not 1 <= d <= limits.max_days:
        errors.append(_("Valid for: a whole number of days from 1 to {n}.").format(n=limits.max_days))
    n = _whole(max_runs)
    if n is None or not 1 <= n <= limits.max_runs:
        errors.append(_("Maximum runs: a whole number from 1 to {n}.").format(n=limits.max_runs))
    pointers: list[str] = []
    spans: dict[str, dict[str, Any]] = {}
    for i in sorted(set(vary)):
        if not 0 <= i < len(rv.literals):
            errors.append(_("A value that may vary is not one of the plan's values."))
            continue
        ptr = rv.literals[i][0]
        text = ranges[i].strip() if i < len(ranges) else ""
        if not text:
            errors.append(_("Give a range for each value that may vary ({pointer}).").format(pointer=ptr))
            continue
        try:
            spans[ptr] = parse_range(f"{ptr}={text}")[1]
        except ApprovalError:
            errors.append(_("The range of {pointer} must be MIN:MAX or V1,V2,… .").format(pointer=ptr))
            continue
        pointers.append(ptr)
    problem = _log_intact(request, station)
    if problem:
        errors.append(problem)
    if errors or d is None or n is None:
        return _review_page(request, station, rv, ours, form=form, errors=errors, status=422)
    try:
        out = station.approve(
            rid, days=d, max_runs=n, vary=pointers or None, ranges=spans or None, steward=user.name, review=rv
        )
    except ApprovalError as e:  # NB: e.g. a range the plan's own value is outside of, or beyond the limits
        return _review_page(request, station, rv, ours, form=form, errors=[str(e)], status=422)
    except HubError as e:
        if not e.status:
            raise _hub_failed(request, e) from None
        msg = _("The hub did not accept the approval: {detail}").format(detail=e.detail)
        return _review_page(
            request, station, rv, ours, form=form, errors=[msg], status=e.status if e.status < 500 else 502
        )
    except (httpx.HTTPError, OSError) as e:
        raise _hub_failed(request, e) from None
    mine = out.get("approvals", {}).get(station.cfg.organisation, {})
    body = mine.get("body", {})
    station.log.append(
        actor=user.name,
        action="approval",
        subject=f"request/{rid}",
        details={
            "request": rid,
            "collaboration": rv.collaboration,
            "purpose": rv.purpose,
            "plan_hash": rv.plan_hash,
            "mode": body.get("mode", "template" if pointers else "plan"),
            "vary": pointers,
            "expires": body.get("expires", ""),
            "max_runs": n,
            "approval": approval_id(mine["signature"]) if mine.get("signature") else "",
            "datasets": sorted(ours),
        },
    )
    return RedirectResponse(f"/inbox/{rid}?done=approved", status_code=303)


def _whole(text: str) -> int | None:
    """A whole number typed in a form, or None."""
    t = text.strip()
    return int(t) if t.isdigit() and len(t) < 10 else None


@router.post("/inbox/{rid}/reject")
@shows_hub_problems
def reject(request: Request, rid: int, user: Steward, _csrf: CsrfDep, reason: Annotated[str, Form()] = "") -> Response:
    """Reject a request with a reason; the hub records it and the analyst sees it."""
    station = _station(request, user)
    _ = _tr(request)
    rv, ours = _review(request, station, rid)
    decided = _decided(request, station, rv)
    if decided:
        return _review_page(request, station, rv, ours, errors=[decided], status=409)
    reason = reason.strip()
    if not reason:
        msg = _("Give the reason for the rejection: the analyst reads it.")
        return _review_page(
            request, station, rv, ours, form={"reason": "", "reject_error": True}, errors=[msg], status=422
        )
    if len(reason) > 2000:
        msg = _("The reason is too long (at most 2,000 characters).")
        return _review_page(
            request, station, rv, ours, form={"reason": reason, "reject_error": True}, errors=[msg], status=422
        )
    problem = _log_intact(request, station)
    if problem:
        return _review_page(request, station, rv, ours, form={"reason": reason}, errors=[problem], status=422)
    try:
        station.reject(rid, reason)
    except HubError as e:
        if not e.status:
            raise _hub_failed(request, e) from None
        msg = _("The hub did not accept the rejection: {detail}").format(detail=e.detail)
        return _review_page(
            request,
            station,
            rv,
            ours,
            form={"reason": reason},
            errors=[msg],
            status=e.status if e.status < 500 else 502,
        )
    except (httpx.HTTPError, OSError) as e:
        raise _hub_failed(request, e) from None
    station.log.append(
        actor=user.name,
        action="rejection",
        subject=f"request/{rid}",
        details={"request": rid, "collaboration": rv.collaboration, "plan_hash": rv.plan_hash, "detail": reason},
    )
    return RedirectResponse(f"/inbox/{rid}?done=rejected", status_code=303)


def N_(message: str) -> str:
    """Mark a message id for extraction; it is translated where it is shown."""
    return message


ACTIONS = {  # NB: the log's actions as a steward reads them; an action not listed is shown as it is
    "contribution": N_("contribution to a job"),
    "refusal": N_("job refused"),
    "nothing-sent": N_("contribution withdrawn, nothing sent"),
    "approval": N_("approval signed here"),
    "rejection": N_("rejection"),
    "hub-head": N_("hub's audit head anchored"),
    "reanchor": N_("re-anchored by the operator"),
    "web-login": N_("login"),
    "web-login-failed": N_("failed login"),
    "web-locked": N_("account locked"),
    "web-logout": N_("logout"),
    "web-totp-enrolled": N_("second factor set up"),
    "web-totp-reset": N_("second factor reset"),
    "web-unlocked": N_("account unlocked"),
}
SHOWN = {  # NB: the facts of an entry shown on the log page (never a signature or a source row)
    "request": N_("request"),
    "job": N_("job"),
    "collaboration": N_("collaboration"),
    "purpose": N_("purpose"),
    "mode": N_("kind of approval"),
    "max_runs": N_("maximum runs"),
    "expires": N_("valid until"),
    "datasets": N_("datasets"),
    "rows": N_("rows (rounded)"),
    "reason": N_("reason"),
    "detail": N_("reason"),
    "approval": N_("approval"),
}


def _fact(value: Any) -> str:
    """A log entry's value as the page shows it."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, str) and len(value) > 19 and value[4:5] == "-" and value[10:11] == "T":
        return _when(value)
    return str(value)


@router.get("/log")
@shows_hub_problems
def log_page(request: Request, user: Steward, page: int = 1) -> Response:
    """The datastation's own hash-chained log, newest first, with its chain checked."""
    station = _station(request, user)
    _ = _tr(request)
    try:
        entries = station.log.check()
        problem = ""
    except LogError as e:
        problem = str(e)
        try:
            entries = station.log.entries()
        except (OSError, ValueError):
            entries = []
    page, pages = _pages(len(entries), page)
    newest = entries[::-1][(page - 1) * PAGE : page * PAGE]
    rows = []
    for entry in newest:
        raw = entry.get("details")
        d: dict[str, Any] = raw if isinstance(raw, dict) else {}
        facts = [(_(label), _fact(d[k])) for k, label in SHOWN.items() if k in d and d[k] not in ("", None, [], {})]
        rows.append(
            {
                "seq": entry.get("seq"),
                "ts": _when(str(entry.get("ts", ""))),
                "actor": entry.get("actor", ""),
                "action": _(ACTIONS[a]) if (a := str(entry.get("action", ""))) in ACTIONS else a,
                "subject": entry.get("subject", ""),
                "facts": facts,
            }
        )
    ctx = {
        "rows": rows,
        "problem": problem,
        "total": len(entries),
        "page": page,
        "pages": pages,
        "path_shown": station.log.path.name,
    }
    return render(request, "station/log.html", ctx)
