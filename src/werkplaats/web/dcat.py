"""The catalog as DCAT-AP (JSON-LD), public, for the national publicatiepunt to harvest."""

# OWNER: helper oversight

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
