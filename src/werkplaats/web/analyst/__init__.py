"""The analyst's pages (role scientist): catalog, template gallery, requests, preview, run with live progress,
results and downloads.

Every page calls the hub's API functions with the user as caller (``user.caller()``), so the API's
membership and state checks are the pages' checks; ``require_role("scientist")`` is on every page.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import catalog, jobs, requests, results, templates

router = APIRouter()
for m in (catalog, templates, requests, jobs, results):
    router.include_router(m.router)
