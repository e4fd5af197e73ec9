"""A datastation's stewards' pages: inbox, review, approve (signed here), reject, the datastation's log."""

# OWNER: helper station

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
