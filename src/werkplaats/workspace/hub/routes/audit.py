"""The audit log: read it, verify its chain, export it as a register (admins and privacy officers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi.responses import PlainTextResponse

from ... import audit, register
from ...messages import AuditHead
from ..core import Caller
from ..deps import HubDep, SessionDep, require
from ..schemas import AuditDump, AuditEntryPublic, AuditVerdict

router = APIRouter()
Overseer = Annotated[Caller, require("admin", "privacy-officer")]


@router.get("/audit", response_model=AuditDump)
def get_audit(c: Overseer, s: SessionDep, hub: HubDep) -> AuditDump:
    """Return the audit chain and the public keys that verify it."""
    entries = [AuditEntryPublic(**e) for e in hub.audit_entries(s)]
    return AuditDump(entries=entries, keys=hub.audit_keys(s))


@router.get("/audit/verify", response_model=AuditVerdict)
def verify_audit(c: Overseer, s: SessionDep, hub: HubDep) -> AuditVerdict:
    """Verify the audit chain (hashes, order, signatures); list every problem."""
    problems = audit.verify_chain(hub.audit_entries(s), hub.audit_keys(s))
    return AuditVerdict(ok=not problems, problems=problems)


@router.get("/audit/export", response_class=PlainTextResponse)
def export_audit(c: Overseer, s: SessionDep, hub: HubDep, format: str = "csv") -> str:
    """Export the audit chain as a register of processing (CSV or JSON, as text)."""
    if format not in ("csv", "json"):
        raise HTTPException(422, "format must be csv or json")
    return register.export(hub.audit_entries(s), format)


@router.get("/node/audit-head", response_model=AuditHead)
def node_audit_head(c: Annotated[Caller, require("datastation", "engine")], s: SessionDep, hub: HubDep) -> AuditHead:
    """The chain's head signed by the hub: what a node's operator re-anchors to after a restore (see `reanchor`)."""
    return hub.audit_head(s)
