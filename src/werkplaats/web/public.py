"""Pages for everybody: home (by role), language switch, the toegankelijkheidsverklaring."""

# OWNER: helper look

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
