"""The hub's FastAPI application: the routers, the lifespan and the heartbeat watchdog."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI

from .core import Hub
from .lifecycle import fail_interrupted, fail_late_datastations, fail_silent_engines
from .routes import API, admin, audit, bucketkeys, catalog, health, jobs, requests

log = logging.getLogger("werkplaats.hub")

WATCHDOG_EVERY_S = 1.0
DESCRIPTION = """The hub: catalog, collaborations, requests, approvals, jobs, results and the audit log.

``werkplaats hub serve --config hub.toml`` runs it over HTTPS with mutual TLS (uvicorn).
Every endpoint checks the caller's token, role and membership. The hub never receives
source data or shares of it: it receives the engines' shares of the *output* only, and
reconstructs the approved, disclosure-controlled aggregate from them.
"""


def create_app(hub: Hub) -> FastAPI:
    """Return the hub's HTTP API; while it runs, a watchdog fails jobs whose engines fall silent.

    On start it fails the jobs that were under way when the hub stopped (`lifecycle.fail_interrupted`).
    """
    stop = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        interrupted = fail_interrupted(hub)
        if interrupted:
            log.warning("failed jobs %s: they were under way when the hub stopped", interrupted)
        args = (hub, stop, WATCHDOG_EVERY_S)
        threading.Thread(target=watchdog, args=args, daemon=True, name="hub-watchdog").start()
        yield
        stop.set()

    app = FastAPI(title="werkplaats hub", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.hub = hub
    app.include_router(health.router)
    for r in (admin, catalog, requests, jobs, audit, bucketkeys):
        app.include_router(r.router, prefix=API)
    return app


def watchdog(hub: Hub, stop: threading.Event, every_s: float = WATCHDOG_EVERY_S) -> None:
    """Fail jobs whose engines fall silent or whose datastations do not send, every every_s seconds until stop.

    A failing check is logged (with its traceback when the error differs from the last one,
    so that an outage does not flood the log) and retried; it never stops the watchdog.
    """
    last = ""
    while not stop.wait(every_s):
        try:
            fail_silent_engines(hub)
            fail_late_datastations(hub)
        except Exception as e:  # NB: e.g. the database is briefly unreachable
            what = f"{type(e).__name__}: {e}"
            if what != last:
                log.exception("watchdog: checking the engines' heartbeats failed")
            else:
                log.debug("watchdog: checking the engines' heartbeats still fails (%s)", type(e).__name__)
            last = what
        else:
            if last:
                log.info("watchdog: checking the engines' heartbeats works again")
            last = ""
