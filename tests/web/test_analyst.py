"""The analyst's pages: catalog, templates, requests, preview, run with live progress, results, downloads."""

from __future__ import annotations

from .conftest import Web
from .factories import jobs_of, released_request


def test_factories_release_a_result(web: Web) -> None:
    r, jid = released_request(web)
    res = web.api["analist"].get(f"/requests/{r['id']}/result")
    assert res["job"] == jid and res["rows"] and res["min_group_size"] == 10
    assert any(row["suppressed"] for row in res["rows"])
    assert jobs_of(web, r["id"])[0].state == "succeeded"
