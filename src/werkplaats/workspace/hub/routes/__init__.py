"""The hub's routers, one per resource: health, admin, catalog, requests, jobs (and the node endpoints), audit."""

API = "/api/v1"  # NB: every route but /health lives under it
