"""The steward's desk at a datastation: read a request as the organisation's steward, sign or reject it.

Signing stays at the datastation: the approval is signed here with the organisation's key, which never
leaves this node. The plan text the steward reads is computed here from the plan that is signed (the
plan's hash is checked first), never taken from the hub's stored text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import WerkplaatsError
from ..plan.explain import explain
from ..plan.serde import plan_from_dict
from .approvals import recheck_hash
from .http import Client
from .messages import SignedApproval
from .signing import approval_body, literals, sign_approval

if TYPE_CHECKING:
    from .config import DatastationConfig


@dataclass(frozen=True)
class Review:
    """A request as its steward reads it before signing; ``explain`` is computed by this node from ``plan``."""

    request: int
    requester: str
    collaboration: str
    collaboration_purpose: str
    purpose: str
    plan: dict[str, Any]
    plan_hash: str
    explain: str
    literals: list[tuple[str, Any]]
    dpia_annex: str = ""
    created: str = ""
    approvals: dict[str, Any] = field(default_factory=dict)  # NB: the hub's record of who approved (by organisation)
    rejections: dict[str, Any] = field(default_factory=dict)


class StewardDesk:
    """The steward's commands of a datastation (mixed into `Datastation`, which holds cfg and key)."""

    cfg: DatastationConfig
    key: Any

    def steward(self) -> Client:
        """Return a client that acts as this organisation's steward."""
        if not self.cfg.steward_token:
            msg = "no steward_token in the datastation configuration"
            raise WerkplaatsError(msg)
        return Client(self.cfg.hub, token=self.cfg.steward_token, tls=self.cfg.tls)

    def review(self, request_id: int) -> Review:
        """Fetch a request and describe it as the steward reads it: the text is computed here, from the plan."""
        c = self.steward()
        try:
            r = c.get(f"/requests/{request_id}")
            collabs = c.get("/collaborations")
        finally:
            c.close()
        recheck_hash(r["plan"], r["plan_hash"])  # NB: the plan shown is the plan signed
        collab: dict[str, Any] = next((x for x in collabs if x["name"] == r["collaboration"]), {})
        return Review(
            request=int(r["id"]),
            requester=str(r["requester"]),
            collaboration=str(r["collaboration"]),
            collaboration_purpose=str(collab.get("purpose", "")),
            purpose=str(r["purpose"]),
            plan=r["plan"],
            plan_hash=str(r["plan_hash"]),
            explain=explain(plan_from_dict(r["plan"])),  # NB: never the hub's stored explain text
            literals=literals(r["plan"]),
            dpia_annex=str(collab.get("dpia_annex", "")),
            created=str(r.get("created", "")),
            approvals=dict(r.get("approvals", {})),
            rejections=dict(r.get("rejections", {})),
        )

    def approve(
        self,
        request_id: int,
        *,
        days: int = 30,
        max_runs: int = 1,
        vary: list[str] | None = None,
        ranges: dict[str, dict[str, Any]] | None = None,
        steward: str = "",
        review: Review | None = None,
    ) -> dict[str, Any]:
        """Sign and send an approval of a request (a template approval when vary is given).

        ranges: for a template approval, the range of each varied literal (`signing.parse_range`).

        review, when given, is what the steward read (`review`): exactly that plan is signed.
        """
        rv = review or self.review(request_id)
        if rv.request != request_id:
            msg = f"the review is of request {rv.request}, not {request_id}"
            raise WerkplaatsError(msg)
        c = self.steward()
        try:
            me = c.get("/me")
            body = approval_body(
                organisation=self.cfg.organisation,
                collaboration=rv.collaboration,
                purpose=rv.purpose,
                plan=rv.plan,
                plan_hash=rv.plan_hash,
                expires=dt.datetime.now(dt.UTC) + dt.timedelta(days=days),
                max_runs=max_runs,
                steward=steward or me["name"],
                vary=vary,
                ranges=ranges,
                limits=self.cfg.approval_limits,
            )
            signed = SignedApproval(body=body, signature=sign_approval(self.key, body))
            out: dict[str, Any] = c.post(f"/requests/{request_id}/approvals", signed.model_dump())
            return out
        finally:
            c.close()

    def reject(self, request_id: int, reason: str) -> dict[str, Any]:
        """Reject a request, with the reason."""
        c = self.steward()
        try:
            out: dict[str, Any] = c.post(f"/requests/{request_id}/rejections", {"reason": reason})
            return out
        finally:
            c.close()
