"""The hub: catalog, collaborations, requests, approvals, jobs, results and the audit log.

``werkplaats hub serve --config hub.toml`` runs it over HTTPS with mutual TLS (uvicorn).
The package follows the shape of the FastAPI full-stack template:

- `core` — `Hub` (database, signing key, audit chain, output shares in flight) and `Caller`;
- `app` — `create_app`: the routers, the lifespan and the heartbeat watchdog;
- `deps` — dependencies: session, caller, ``require(*roles)``, lookups that answer 404;
- `schemas` — request and response models (the OpenAPI document describes every answer);
- `routes/` — one router per resource: health, admin, catalog, requests, jobs, audit;
- `approvals` — which stored approvals a run goes under (checked with `workspace.approvals.verify`);
- `lifecycle` — a job's states, its payload for nodes, the silent-engine check;
- `release` — output shares → the released, disclosure-controlled result;
- `views` — stored rows as the API shows them.

Security model: every endpoint checks the caller's token, role and membership. The hub
never receives source data or shares of it: it receives the engines' shares of the
*output* only, and reconstructs the approved, disclosure-controlled aggregate from them.
"""

from .app import create_app as create_app
from .core import Hub as Hub

__all__ = ["Hub", "create_app"]
