"""The hub: catalog, collaborations, requests, approvals, jobs, results and the audit log.

``werkplaats hub serve --config hub.toml`` runs it over HTTPS with mutual TLS (uvicorn).
Every endpoint checks the caller's token, role and membership. The hub never receives
source data or shares of it: it receives the engines' shares of the *output* only, and
reconstructs the approved, disclosure-controlled aggregate from them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..compile.analyze import analyze
from ..exceptions import PlanError, SchemaError
from ..mpc import wire
from ..plan import nodes as n
from ..plan.serde import plan_from_dict
from . import audit, db, pki
from .jobs import catalog_of, check_plan, describe
from .signing import ApprovalError, approval_id, check_approval, template_hash

API = "/api/v1"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "wp_" + secrets.token_urlsafe(32)


@dataclass
class Caller:
    kind: str  # user | node
    name: str
    role: str  # a user's role, or the node kind
    organisation: str | None
    id: int


class Hub:
    """The hub's state: database, signing key, and the engines' output shares in flight."""

    def __init__(self, database: str, *, name: str, signing_key: Any, heartbeat_timeout_s: float = 30.0) -> None:
        self.engine = db.make_engine(database)
        db.migrate(self.engine)
        self.sessions = db.sessions(self.engine)
        self.name = name
        self.key = signing_key
        self.public_key = pki.public_key_b64(signing_key)
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.result_shares: dict[int, dict[int, list[Any]]] = {}
        self.lock = threading.Lock()
        self.audit_lock = threading.Lock()

    # -- audit --------------------------------------------------------------------------
    def log(self, s: Session, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        """Append an audit entry and commit it with the session's other changes.

        NB: appends are serialised (read the last entry, chain, insert, commit), so concurrent
        requests never race for a sequence number. One hub process writes the chain.
        """
        with self.audit_lock:
            last = s.scalars(select(db.AuditEntry).order_by(db.AuditEntry.seq.desc()).limit(1)).first()
            prev = _entry_dict(last) if last else None
            e = audit.make_entry(
                prev, node=self.name, actor=actor, action=action, subject=subject, details=details, key=self.key
            )
            s.add(db.AuditEntry(**e))
            s.commit()

    def audit_entries(self, s: Session) -> list[dict[str, Any]]:
        return [_entry_dict(e) for e in s.scalars(select(db.AuditEntry).order_by(db.AuditEntry.seq))]

    def audit_keys(self, s: Session) -> dict[str, str]:
        keys = {self.name: self.public_key}
        keys |= {o.name: o.signing_key for o in s.scalars(select(db.Organisation))}
        return keys

    # -- bootstrap ----------------------------------------------------------------------
    def create_admin(self, name: str) -> str:
        token = new_token()
        with self.sessions.begin() as s:
            if s.scalars(select(db.User).where(db.User.name == name)).first():
                msg = f"user {name!r} exists"
                raise ValueError(msg)
            s.add(db.User(name=name, role="admin", token_hash=token_hash(token)))
        return token


def _entry_dict(e: db.AuditEntry) -> dict[str, Any]:
    return {k: getattr(e, k) for k in (*audit.FIELDS, "hash", "signature")}


# -- request bodies ------------------------------------------------------------------------


class OrganisationIn(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    title: str = ""
    kind: str = ""
    signing_key: str


class UserIn(BaseModel):
    name: str
    role: str
    organisation: str | None = None


class NodeIn(BaseModel):
    name: str
    kind: str
    organisation: str | None = None
    party: int | None = None
    url: str = ""
    mpc_address: str = ""


class CollaborationIn(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")
    title: str = ""
    purpose: str
    dpia_annex: str = ""
    members: list[str]


class DatasetIn(BaseModel):
    title: str = ""
    description: str = ""
    table_schema: dict[str, Any]
    update_frequency: str = ""
    person_key: str = ""
    rules: dict[str, Any] = {}
    row_count: int | None = None
    completeness: dict[str, float] = {}


class RequestIn(BaseModel):
    collaboration: str
    purpose: str
    plan: dict[str, Any]


class ApprovalIn(BaseModel):
    body: dict[str, Any]
    signature: str


class RejectionIn(BaseModel):
    reason: str


class ProgressIn(BaseModel):
    state: str
    reason: str = ""
    detail: dict[str, Any] = {}


class ContributionIn(BaseModel):
    record: dict[str, Any]
    signature: str


def create_app(hub: Hub) -> FastAPI:
    """The hub's HTTP API."""
    stop = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=watchdog, daemon=True, name="hub-watchdog").start()
        yield
        stop.set()

    app = FastAPI(title="werkplaats hub", version="1", description=__doc__, lifespan=lifespan)

    def session() -> Any:
        with hub.sessions() as s:
            yield s

    def caller(request: Request, s: Session = Depends(session)) -> Caller:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            raise HTTPException(401, "missing bearer token")
        h = token_hash(auth.split(None, 1)[1].strip())
        u = s.scalars(select(db.User).where(db.User.token_hash == h)).first()
        if u is not None:
            org = s.get(db.Organisation, u.organisation_id) if u.organisation_id else None
            return Caller("user", u.name, u.role, org.name if org else None, u.id)
        nd = s.scalars(select(db.Node).where(db.Node.token_hash == h)).first()
        if nd is not None:
            org = s.get(db.Organisation, nd.organisation_id) if nd.organisation_id else None
            nd.last_seen = db.utcnow()
            s.commit()
            return Caller("node", nd.name, nd.kind, org.name if org else None, nd.id)
        raise HTTPException(401, "unknown token")

    def need(c: Caller, *roles: str) -> None:
        if c.role not in roles:
            raise HTTPException(403, f"role {c.role!r} may not do this (needs one of {list(roles)})")

    def org_by_name(s: Session, name: str) -> db.Organisation:
        o = s.scalars(select(db.Organisation).where(db.Organisation.name == name)).first()
        if o is None:
            raise HTTPException(404, f"no organisation {name!r}")
        return o

    def collab_by_name(s: Session, name: str) -> db.Collaboration:
        c = s.scalars(select(db.Collaboration).where(db.Collaboration.name == name)).first()
        if c is None:
            raise HTTPException(404, f"no collaboration {name!r}")
        return c

    def members(s: Session, collab: db.Collaboration) -> list[str]:
        q = (
            select(db.Organisation.name)
            .join(db.Member, db.Member.organisation_id == db.Organisation.id)
            .where(db.Member.collaboration_id == collab.id)
        )
        return list(s.scalars(q))

    def need_member(s: Session, c: Caller, collab: db.Collaboration) -> None:
        if c.role in ("admin", "privacy-officer"):
            return
        if c.organisation is None or c.organisation not in members(s, collab):
            raise HTTPException(403, f"{c.name} is not a member of collaboration {collab.name!r}")

    def request_or_404(s: Session, rid: int) -> db.Request:
        r = s.get(db.Request, rid)
        if r is None:
            raise HTTPException(404, f"no request {rid}")
        return r

    # -- who am I ---------------------------------------------------------------------------
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "hub": hub.name, "audit_key": hub.public_key}

    @app.get(API + "/me")
    def me(c: Caller = Depends(caller)) -> dict[str, Any]:
        return {"name": c.name, "kind": c.kind, "role": c.role, "organisation": c.organisation}

    # -- organisations, users, nodes --------------------------------------------------------
    @app.post(API + "/organisations", status_code=201)
    def add_org(body: OrganisationIn, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "admin")
        if s.scalars(select(db.Organisation).where(db.Organisation.name == body.name)).first():
            raise HTTPException(409, f"organisation {body.name!r} exists")
        s.add(db.Organisation(name=body.name, title=body.title, kind=body.kind, signing_key=body.signing_key))
        s.commit()
        return {"name": body.name}

    @app.get(API + "/organisations")
    def list_orgs(c: Caller = Depends(caller), s: Session = Depends(session)) -> list[dict[str, Any]]:
        return [
            {"name": o.name, "title": o.title, "kind": o.kind, "signing_key": o.signing_key}
            for o in s.scalars(select(db.Organisation).order_by(db.Organisation.name))
        ]

    @app.post(API + "/users", status_code=201)
    def add_user(body: UserIn, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "admin")
        if body.role not in db.ROLES:
            raise HTTPException(422, f"role must be one of {list(db.ROLES)}")
        org = org_by_name(s, body.organisation) if body.organisation else None
        if body.role in ("steward", "scientist", "requester") and org is None:
            raise HTTPException(422, f"a {body.role} belongs to an organisation")
        token = new_token()
        s.add(
            db.User(
                name=body.name, role=body.role, organisation_id=org.id if org else None, token_hash=token_hash(token)
            )
        )
        s.commit()
        return {"name": body.name, "token": token}

    @app.post(API + "/nodes", status_code=201)
    def add_node(body: NodeIn, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "admin")
        if body.kind not in db.NODE_KINDS:
            raise HTTPException(422, f"kind must be one of {list(db.NODE_KINDS)}")
        if body.kind == "engine" and body.party not in (0, 1, 2):
            raise HTTPException(422, "an engine needs party 0, 1 or 2")
        org = org_by_name(s, body.organisation) if body.organisation else None
        if body.kind == "datastation" and org is None:
            raise HTTPException(422, "a datastation belongs to an organisation")
        token = new_token()
        s.add(
            db.Node(
                name=body.name,
                kind=body.kind,
                organisation_id=org.id if org else None,
                party=body.party,
                url=body.url,
                mpc_address=body.mpc_address,
                token_hash=token_hash(token),
            )
        )
        s.commit()
        return {"name": body.name, "token": token}

    # -- collaborations ------------------------------------------------------------------------
    @app.post(API + "/collaborations", status_code=201)
    def add_collab(body: CollaborationIn, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "admin")
        collab = db.Collaboration(name=body.name, title=body.title, purpose=body.purpose, dpia_annex=body.dpia_annex)
        s.add(collab)
        s.flush()
        for m in body.members:
            s.add(db.Member(collaboration_id=collab.id, organisation_id=org_by_name(s, m).id))
        s.commit()
        return {"name": body.name}

    @app.get(API + "/collaborations")
    def list_collabs(c: Caller = Depends(caller), s: Session = Depends(session)) -> list[dict[str, Any]]:
        out = []
        for collab in s.scalars(select(db.Collaboration).order_by(db.Collaboration.name)):
            ms = members(s, collab)
            if c.role in ("admin", "privacy-officer") or c.organisation in ms:
                ds = list(
                    s.scalars(
                        select(db.CollaborationDataset.dataset).where(
                            db.CollaborationDataset.collaboration_id == collab.id
                        )
                    )
                )
                out.append(
                    {
                        "name": collab.name,
                        "title": collab.title,
                        "purpose": collab.purpose,
                        "dpia_annex": collab.dpia_annex,
                        "members": ms,
                        "datasets": sorted(ds),
                    }
                )
        return out

    @app.post(API + "/collaborations/{name}/datasets/{org}/{table}", status_code=201)
    def add_collab_dataset(
        name: str, org: str, table: str, c: Caller = Depends(caller), s: Session = Depends(session)
    ) -> dict[str, Any]:
        need(c, "steward", "admin")
        collab = collab_by_name(s, name)
        if c.role == "steward" and c.organisation != org:
            raise HTTPException(403, f"only a steward of {org} adds {org}'s datasets")
        if org not in members(s, collab):
            raise HTTPException(422, f"{org} is not a member of {name}")
        ds = f"{org}/{table}"
        if not s.scalars(select(db.Dataset).where(db.Dataset.name == ds)).first():
            raise HTTPException(404, f"no dataset {ds!r} in the catalog")
        s.add(db.CollaborationDataset(collaboration_id=collab.id, dataset=ds))
        s.commit()
        return {"collaboration": name, "dataset": ds}

    # -- catalog ---------------------------------------------------------------------------------
    @app.put(API + "/datasets/{org}/{table}")
    def put_dataset(
        org: str, table: str, body: DatasetIn, c: Caller = Depends(caller), s: Session = Depends(session)
    ) -> dict[str, Any]:
        need(c, "steward", "datastation")
        if c.organisation != org:
            raise HTTPException(403, f"only {org}'s steward or datastation publishes {org}'s datasets")
        name = f"{org}/{table}"
        try:
            catalog_of({name: body.table_schema})
        except SchemaError as e:
            raise HTTPException(422, str(e)) from None
        o = org_by_name(s, org)
        d = s.scalars(select(db.Dataset).where(db.Dataset.name == name)).first()
        if d is None:
            d = db.Dataset(name=name, organisation_id=o.id, table_schema=body.table_schema)
            s.add(d)
        for k in (
            "title",
            "description",
            "table_schema",
            "update_frequency",
            "person_key",
            "rules",
            "row_count",
            "completeness",
        ):
            setattr(d, k, getattr(body, k))
        d.updated = db.utcnow()
        s.commit()
        return {"name": name}

    def dataset_dict(d: db.Dataset, s: Session) -> dict[str, Any]:
        org = s.get(db.Organisation, d.organisation_id)
        return {
            "name": d.name,
            "organisation": org.name if org else "",
            "title": d.title,
            "description": d.description,
            "schema": d.table_schema,
            "update_frequency": d.update_frequency,
            "person_key": d.person_key,
            "rules": d.rules,
            "row_count": d.row_count,
            "completeness": d.completeness,
            "updated": d.updated.isoformat(),
        }

    @app.get(API + "/datasets")
    def list_datasets(c: Caller = Depends(caller), s: Session = Depends(session)) -> list[dict[str, Any]]:
        return [dataset_dict(d, s) for d in s.scalars(select(db.Dataset).order_by(db.Dataset.name))]

    @app.get(API + "/datasets/{org}/{table}")
    def get_dataset(org: str, table: str, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        d = s.scalars(select(db.Dataset).where(db.Dataset.name == f"{org}/{table}")).first()
        if d is None:
            raise HTTPException(404, f"no dataset {org}/{table}")
        return dataset_dict(d, s)

    def catalog_docs(s: Session, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        q = select(db.Dataset)
        if names is not None:
            q = q.where(db.Dataset.name.in_(names))
        return {d.name: d.table_schema for d in s.scalars(q)}

    # -- requests -------------------------------------------------------------------------------
    def request_dict(r: db.Request, s: Session) -> dict[str, Any]:
        collab = s.get(db.Collaboration, r.collaboration_id)
        user = s.get(db.User, r.requester_id)
        approvals = {}
        for a in s.scalars(select(db.Approval).where(db.Approval.request_id == r.id)):
            approvals[a.body.get("organisation")] = {"body": a.body, "signature": a.signature, "by": a.signed_by}
        rejections = {}
        for j in s.scalars(select(db.Rejection).where(db.Rejection.request_id == r.id)):
            org = s.get(db.Organisation, j.organisation_id)
            rejections[org.name if org else "?"] = {"reason": j.reason, "by": j.by}
        jobs = [
            {"id": j.id, "state": j.state, "reason": j.reason, "progress": j.progress, "created": j.created.isoformat()}
            for j in s.scalars(select(db.Job).where(db.Job.request_id == r.id).order_by(db.Job.id))
        ]
        pending = [o for o in r.organisations if o not in approvals and o not in rejections]
        status = "rejected" if rejections else "pending-approval" if pending else "approved"
        return {
            "id": r.id,
            "collaboration": collab.name if collab else "",
            "purpose": r.purpose,
            "requester": user.name if user else "",
            "plan": r.plan,
            "plan_hash": r.plan_hash,
            "explain": r.explain,
            "organisations": r.organisations,
            "datasets": r.datasets,
            "columns": r.columns,
            "status": status,
            "pending": pending,
            "approvals": approvals,
            "rejections": rejections,
            "jobs": jobs,
            "created": r.created.isoformat(),
        }

    @app.post(API + "/requests", status_code=201)
    def submit(body: RequestIn, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "scientist")
        collab = collab_by_name(s, body.collaboration)
        need_member(s, c, collab)
        allowed = set(
            s.scalars(
                select(db.CollaborationDataset.dataset).where(db.CollaborationDataset.collaboration_id == collab.id)
            )
        )
        docs = catalog_docs(s)
        try:
            catalog = catalog_of(docs)
            raw = plan_from_dict(body.plan)
            used = {src.dataset for src in n.sources(raw.root)}
            outside = sorted(used - allowed)
            if outside:
                raise HTTPException(422, f"datasets {outside} are not part of collaboration {collab.name!r}")
            rules_k = [
                int(
                    (s.scalars(select(db.Dataset).where(db.Dataset.name == d)).one().rules or {}).get(
                        "min_group_size", 1
                    )
                )
                for d in used
            ]
            plan, _ = check_plan(body.plan, catalog, max(rules_k, default=1))
        except (PlanError, SchemaError) as e:
            raise HTTPException(422, str(e)) from None
        info = describe(plan)
        orgs = sorted({d.split("/")[0] for d in info["datasets"]})
        r = db.Request(
            collaboration_id=collab.id,
            requester_id=c.id,
            purpose=body.purpose,
            plan=info["plan"],
            plan_hash=info["plan_hash"],
            explain=info["explain"],
            organisations=orgs,
            datasets=info["datasets"],
            columns=info["columns"],
        )
        s.add(r)
        s.flush()
        hub.log(
            s,
            actor=c.name,
            action="request",
            subject=f"request/{r.id}",
            details={
                "request": r.id,
                "collaboration": collab.name,
                "purpose": body.purpose,
                "plan_hash": r.plan_hash,
                "datasets": r.datasets,
                "columns": r.columns,
            },
        )
        s.commit()
        return request_dict(r, s)

    @app.get(API + "/requests")
    def list_requests(c: Caller = Depends(caller), s: Session = Depends(session)) -> list[dict[str, Any]]:
        out = []
        for r in s.scalars(select(db.Request).order_by(db.Request.id)):
            collab = s.get(db.Collaboration, r.collaboration_id)
            if c.role in ("admin", "privacy-officer") or (collab and c.organisation in members(s, collab)):
                d = request_dict(r, s)
                del d["plan"]
                out.append(d)
        return out

    @app.get(API + "/requests/{rid}")
    def get_request(rid: int, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        r = request_or_404(s, rid)
        if c.kind == "user":
            need_member(s, c, s.get(db.Collaboration, r.collaboration_id))  # type: ignore[arg-type]
        return request_dict(r, s)

    @app.post(API + "/requests/{rid}/approvals", status_code=201)
    def approve(
        rid: int, body: ApprovalIn, c: Caller = Depends(caller), s: Session = Depends(session)
    ) -> dict[str, Any]:
        need(c, "steward")
        r = request_or_404(s, rid)
        collab = s.get(db.Collaboration, r.collaboration_id)
        assert collab is not None
        org = body.body.get("organisation")
        if org != c.organisation:
            raise HTTPException(403, f"a steward of {c.organisation} cannot approve for {org}")
        if org not in r.organisations:
            raise HTTPException(422, f"request {rid} reads no data of {org}")
        o = org_by_name(s, str(org))
        try:
            check_approval(
                {"body": body.body, "signature": body.signature},
                public_key=o.signing_key,
                plan=r.plan,
                plan_hash=r.plan_hash,
                collaboration=collab.name,
                purpose=r.purpose,
                runs_used=0,
            )
        except ApprovalError as e:
            raise HTTPException(422, str(e)) from None
        s.add(
            db.Approval(
                request_id=r.id, organisation_id=o.id, body=body.body, signature=body.signature, signed_by=c.name
            )
        )
        hub.log(
            s,
            actor=c.name,
            action="approval",
            subject=f"request/{r.id}",
            details={
                "request": r.id,
                "organisation": org,
                "collaboration": collab.name,
                "purpose": r.purpose,
                "plan_hash": r.plan_hash,
                "mode": body.body.get("mode"),
                "expires": body.body.get("expires"),
                "max_runs": body.body.get("max_runs"),
                "approval": approval_id(body.signature),
                "approved_by": [c.name],
            },
        )
        s.commit()
        return request_dict(r, s)

    @app.post(API + "/requests/{rid}/rejections", status_code=201)
    def reject(
        rid: int, body: RejectionIn, c: Caller = Depends(caller), s: Session = Depends(session)
    ) -> dict[str, Any]:
        need(c, "steward")
        r = request_or_404(s, rid)
        if c.organisation not in r.organisations:
            raise HTTPException(422, f"request {rid} reads no data of {c.organisation}")
        o = org_by_name(s, c.organisation)  # type: ignore[arg-type]
        s.add(db.Rejection(request_id=r.id, organisation_id=o.id, reason=body.reason, by=c.name))
        hub.log(
            s,
            actor=c.name,
            action="rejection",
            subject=f"request/{r.id}",
            details={"request": r.id, "organisation": o.name, "detail": body.reason},
        )
        s.commit()
        return request_dict(r, s)

    def template_approvals(s: Session, r: db.Request, org: str) -> list[db.Approval]:
        o = org_by_name(s, org)
        out = []
        for a in s.scalars(
            select(db.Approval).where(db.Approval.organisation_id == o.id).order_by(db.Approval.id.desc())
        ):
            if a.body.get("mode") != "template":
                continue
            try:
                if template_hash(r.plan, list(a.body.get("vary", []))) == a.body.get("template_hash"):
                    out.append(a)
            except ApprovalError:
                continue
        return out

    def runs_used(s: Session, aid: str) -> int:
        n = 0
        for j in s.scalars(select(db.Job)):
            if any(approval_id(a["signature"]) == aid for a in j.approvals) and j.state != "failed":
                n += 1
        return n

    @app.post(API + "/requests/{rid}/run", status_code=201)
    def run(rid: int, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "scientist")
        r = request_or_404(s, rid)
        collab = s.get(db.Collaboration, r.collaboration_id)
        assert collab is not None
        need_member(s, c, collab)
        if s.scalars(select(db.Rejection).where(db.Rejection.request_id == r.id)).first():
            raise HTTPException(409, f"request {rid} was rejected")
        chosen: list[dict[str, Any]] = []
        problems: list[str] = []
        for org in r.organisations:
            o = org_by_name(s, org)
            cands = list(
                s.scalars(
                    select(db.Approval)
                    .where(db.Approval.request_id == r.id, db.Approval.organisation_id == o.id)
                    .order_by(db.Approval.id.desc())
                )
            )
            cands += template_approvals(s, r, org)
            picked = None
            for a in cands:
                appr = {"body": a.body, "signature": a.signature}
                try:
                    check_approval(
                        appr,
                        public_key=o.signing_key,
                        plan=r.plan,
                        plan_hash=r.plan_hash,
                        collaboration=collab.name,
                        purpose=r.purpose,
                        runs_used=runs_used(s, approval_id(a.signature)),
                    )
                except ApprovalError as e:
                    problems.append(str(e))
                    continue
                picked = appr
                break
            if picked is None:
                problems.append(f"{org} has not approved this plan")
            else:
                chosen.append(picked)
        if len(chosen) != len(r.organisations):
            raise HTTPException(409, "cannot run: " + "; ".join(dict.fromkeys(problems)))
        job = db.Job(request_id=r.id, state="approved", approvals=chosen, progress={})
        s.add(job)
        s.flush()
        hub.log(
            s,
            actor=c.name,
            action="job-created",
            subject=f"job/{job.id}",
            details={
                "request": r.id,
                "job": job.id,
                "collaboration": collab.name,
                "purpose": r.purpose,
                "datasets": r.datasets,
                "columns": r.columns,
                "approved_by": [a["body"]["organisation"] + ":" + a["body"].get("steward", "") for a in chosen],
            },
        )
        s.commit()
        return {"job": job.id, "state": job.state}

    @app.get(API + "/jobs/{jid}")
    def get_job(jid: int, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        j = s.get(db.Job, jid)
        if j is None:
            raise HTTPException(404, f"no job {jid}")
        r = request_or_404(s, j.request_id)
        if c.kind == "user":
            need_member(s, c, s.get(db.Collaboration, r.collaboration_id))  # type: ignore[arg-type]
        return {
            "id": j.id,
            "request": r.id,
            "state": j.state,
            "reason": j.reason,
            "progress": j.progress,
            "created": j.created.isoformat(),
            "started": j.started.isoformat() if j.started else None,
            "finished": j.finished.isoformat() if j.finished else None,
        }

    @app.get(API + "/requests/{rid}/result")
    def result(rid: int, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "scientist", "requester", "admin")
        r = request_or_404(s, rid)
        need_member(s, c, s.get(db.Collaboration, r.collaboration_id))  # type: ignore[arg-type]
        for j in s.scalars(select(db.Job).where(db.Job.request_id == r.id).order_by(db.Job.id.desc())):
            if j.state == "succeeded":
                res = s.scalars(select(db.Result).where(db.Result.job_id == j.id)).one()
                return {"request": r.id, "job": j.id, **res.data}
        raise HTTPException(404, f"request {rid} has no released result yet")

    # -- audit -------------------------------------------------------------------------------------
    @app.get(API + "/audit")
    def get_audit(c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "admin", "privacy-officer")
        return {"entries": hub.audit_entries(s), "keys": hub.audit_keys(s)}

    @app.get(API + "/audit/verify")
    def verify_audit(c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "admin", "privacy-officer")
        problems = audit.verify_chain(hub.audit_entries(s), hub.audit_keys(s))
        return {"ok": not problems, "problems": problems}

    @app.get(API + "/audit/export", response_class=PlainTextResponse)
    def export_audit(format: str = "csv", c: Caller = Depends(caller), s: Session = Depends(session)) -> str:
        need(c, "admin", "privacy-officer")
        if format not in ("csv", "json"):
            raise HTTPException(422, "format must be csv or json")
        return audit.export(hub.audit_entries(s), format)

    # -- nodes: datastations and engines ---------------------------------------------------------------
    def job_payload(s: Session, j: db.Job) -> dict[str, Any]:
        r = request_or_404(s, j.request_id)
        collab = s.get(db.Collaboration, r.collaboration_id)
        engines = [
            {"party": e.party, "name": e.name, "url": e.url, "mpc": e.mpc_address}
            for e in s.scalars(select(db.Node).where(db.Node.kind == "engine").order_by(db.Node.party))
        ]
        keys = {o.name: o.signing_key for o in s.scalars(select(db.Organisation))}
        return {
            "job": j.id,
            "request": r.id,
            "collaboration": collab.name if collab else "",
            "purpose": r.purpose,
            "plan": r.plan,
            "plan_hash": r.plan_hash,
            "datasets": r.datasets,
            "columns": r.columns,
            "schemas": catalog_docs(s, r.datasets),
            "approvals": j.approvals,
            "organisation_keys": keys,
            "engines": engines,
            "state": j.state,
        }

    @app.get(API + "/node/jobs")
    def node_jobs(c: Caller = Depends(caller), s: Session = Depends(session)) -> list[dict[str, Any]]:
        need(c, "datastation", "engine")
        out = []
        for j in s.scalars(select(db.Job).where(db.Job.state.in_(("approved", "running"))).order_by(db.Job.id)):
            if c.name in j.progress:
                continue  # NB: this node has taken the job already
            r = request_or_404(s, j.request_id)
            if c.role == "datastation" and c.organisation not in r.organisations:
                continue
            out.append(job_payload(s, j))
        return out

    @app.get(API + "/node/jobs/{jid}")
    def node_job(jid: int, c: Caller = Depends(caller), s: Session = Depends(session)) -> dict[str, Any]:
        need(c, "datastation", "engine")
        j = s.get(db.Job, jid)
        if j is None:
            raise HTTPException(404, f"no job {jid}")
        return {"job": j.id, "state": j.state, "reason": j.reason,
                "progress": {k: v.get("state") for k, v in j.progress.items()}}  # fmt: skip

    def fail(s: Session, j: db.Job, reason: str, actor: str) -> None:
        if j.state in ("succeeded", "failed"):
            return
        j.state, j.reason, j.finished = "failed", reason, db.utcnow()
        with hub.lock:
            hub.result_shares.pop(j.id, None)
        hub.log(
            s,
            actor=actor,
            action="job-end",
            subject=f"job/{j.id}",
            details={"request": j.request_id, "job": j.id, "state": "failed", "detail": reason},
        )

    @app.post(API + "/node/jobs/{jid}/progress")
    def progress(
        jid: int, body: ProgressIn, c: Caller = Depends(caller), s: Session = Depends(session)
    ) -> dict[str, Any]:
        need(c, "datastation", "engine")
        j = s.get(db.Job, jid)
        if j is None:
            raise HTTPException(404, f"no job {jid}")
        prog = dict(j.progress)
        prog[c.name] = {"state": body.state, "reason": body.reason, "at": db.utcnow().isoformat(), **body.detail}
        j.progress = prog
        if body.state == "failed":
            fail(s, j, f"{c.name}: {body.reason}", c.name)
        elif body.state == "running" and j.state == "approved":
            j.state, j.started = "running", db.utcnow()
            hub.log(
                s,
                actor=c.name,
                action="job-start",
                subject=f"job/{j.id}",
                details={"request": j.request_id, "job": j.id},
            )
        s.commit()
        return {"job": j.id, "state": j.state}

    @app.post(API + "/node/jobs/{jid}/contribution", status_code=201)
    def contribution(
        jid: int, body: ContributionIn, c: Caller = Depends(caller), s: Session = Depends(session)
    ) -> dict[str, Any]:
        need(c, "datastation")
        j = s.get(db.Job, jid)
        if j is None:
            raise HTTPException(404, f"no job {jid}")
        o = org_by_name(s, c.organisation)  # type: ignore[arg-type]
        from .signing import canonical

        if not pki.verify(o.signing_key, canonical(body.record), body.signature):
            raise HTTPException(422, "the contribution record is not signed by the organisation's key")
        r = request_or_404(s, j.request_id)
        hub.log(
            s,
            actor=c.name,
            action="contribution",
            subject=f"job/{j.id}",
            details={
                "request": r.id,
                "job": j.id,
                "datasets": body.record.get("datasets", []),
                "columns": body.record.get("columns", {}),
                "signed": {"organisation": o.name, "record": body.record, "signature": body.signature},
            },
        )
        s.commit()
        return {"ok": True}

    @app.post(API + "/node/jobs/{jid}/result-share")
    async def result_share(jid: int, request: Request, c: Caller = Depends(caller)) -> dict[str, Any]:
        need(c, "engine")
        data = await request.body()
        header, blobs = wire.recv(io.BytesIO(data))
        with hub.sessions() as s:
            j = s.get(db.Job, jid)
            if j is None:
                raise HTTPException(404, f"no job {jid}")
            if j.state != "running":
                raise HTTPException(409, f"job {jid} is {j.state}")
            party = s.scalars(select(db.Node).where(db.Node.name == c.name)).one().party
            outs, pos = [], 0
            for cnt in header["share_blobs"]:
                outs.append(wire.unpack_share(blobs[pos : pos + cnt]))
                pos += cnt
            with hub.lock:
                got = hub.result_shares.setdefault(jid, {})
                got[int(party or 0)] = outs
                complete = len(got) == 3
                shares = [got[i] for i in range(3)] if complete else None
                if complete:
                    del hub.result_shares[jid]
            if shares is not None:
                release(s, j, shares, c.name)
            s.commit()
            return {"job": jid, "state": j.state}

    def release(s: Session, j: db.Job, shares: list[list[Any]], actor: str) -> None:
        from ..local import result_frame
        from ..mpc.cluster import reconstruct

        r = request_or_404(s, j.request_id)
        try:
            a = analyze(plan_from_dict(r.plan), catalog_of(catalog_docs(s, r.datasets)))
            frame = result_frame(a, reconstruct(a, shares))
        except Exception as e:  # NB: nothing is released when reconstruction fails
            fail(s, j, f"hub: could not reconstruct the result ({type(e).__name__})", "hub")
            return
        data = {"columns": list(frame.columns), "rows": _records(frame), "min_group_size": a.plan.min_group_size}
        s.add(db.Result(job_id=j.id, data=data))
        j.state, j.finished = "succeeded", db.utcnow()
        collab = s.get(db.Collaboration, r.collaboration_id)
        hub.log(
            s,
            actor=actor,
            action="job-end",
            subject=f"job/{j.id}",
            details={"request": r.id, "job": j.id, "state": "succeeded"},
        )
        hub.log(
            s,
            actor="hub",
            action="result-release",
            subject=f"job/{j.id}",
            details={
                "request": r.id,
                "job": j.id,
                "collaboration": collab.name if collab else "",
                "purpose": r.purpose,
                "datasets": r.datasets,
                "cells": len(frame),
                "suppressed": int(frame["suppressed"].sum()),
            },
        )

    # -- watchdog: a running job fails when an engine goes silent ------------------------------------
    def watchdog() -> None:
        while not stop.is_set():
            time.sleep(1.0)
            try:
                with hub.sessions() as s:
                    limit = db.utcnow() - dt.timedelta(seconds=hub.heartbeat_timeout_s)
                    for j in s.scalars(select(db.Job).where(db.Job.state == "running")):
                        for e in s.scalars(select(db.Node).where(db.Node.kind == "engine")):
                            seen = e.last_seen
                            if seen is not None and seen.tzinfo is None:
                                seen = seen.replace(tzinfo=dt.UTC)
                            if seen is None or seen < limit:
                                fail(s, j, f"{e.name} (party {e.party}) stopped responding", "hub")
                                break
                    s.commit()
            except Exception:
                pass

    return app


def _records(frame: Any) -> list[dict[str, Any]]:
    """JSON rows of a result frame; dates (min/max of a date column) become ISO strings, never dropped."""

    def plain(v: Any) -> Any:
        if isinstance(v, dt.date):  # NB: pandas Timestamps are datetimes, hence dates
            return v.date().isoformat() if isinstance(v, dt.datetime) else v.isoformat()
        return v.item() if hasattr(v, "item") else v

    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{k: plain(v) for k, v in row.items()} for row in rows]
