"""The analyst's pages: catalog, templates, requests, preview, run with live progress, results, downloads."""

# OWNER: helper analyst

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
