"""The admin's pages: organisations, users and roles, collaborations, node health."""

# OWNER: helper oversight

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
