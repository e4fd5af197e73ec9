"""The privacy officer's pages: audit trail, chain self-check, processing register, use per collaboration."""

# OWNER: helper oversight

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
