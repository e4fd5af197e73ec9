"""Dashboards for inzichtvragers (published by analysts from released results) and their questions."""

# OWNER: helper dashboards

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
