"""Is the hub up, and who am I."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import CallerDep, HubDep
from ..schemas import Health, Me
from . import API

router = APIRouter()


@router.get("/health", response_model=Health)
def health(hub: HubDep) -> Health:
    """Answer that the hub is up, with its name and the key that verifies its audit entries."""
    return Health(ok=True, hub=hub.name, audit_key=hub.public_key)


@router.get(API + "/me", response_model=Me)
def me(c: CallerDep) -> Me:
    """Return the caller as the hub knows them (a node's call is also its heartbeat)."""
    return Me(name=c.name, kind=c.kind, role=c.role, organisation=c.organisation)
