"""HTTPS with mutual TLS between nodes: a small client, a node's poll and report steps, a uvicorn runner."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
from fastapi import HTTPException, Request

from ..exceptions import WerkplaatsError
from .messages import JobPayload, MessageError, PartState, ProgressReport
from .pki import TLSFiles, pinned_context


def _version() -> str:
    """This installation's werkplaats version (the package root's ``__version__``, read from its metadata)."""
    try:
        return version("werkplaats")
    except PackageNotFoundError:  # NB: run from a source tree that was never installed
        return "unknown"


VERSION = _version()


class HubError(WerkplaatsError):
    """The hub (or an engine) answered with an error."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    """A JSON client for the hub's API with a bearer token over mutual TLS."""

    def __init__(
        self, url: str, *, token: str, tls: TLSFiles | None = None, timeout: float = 60.0, pin: str = ""
    ) -> None:
        """A client of url; with pin, every connection is refused unless the peer's key has that SPKI fingerprint."""
        verify: Any = (pinned_context(tls, pin, url) if pin else tls.client_context()) if tls else True
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["User-Agent"] = f"werkplaats/{VERSION}"  # NB: the hub shows a node's version to its admin
        self.http = httpx.Client(base_url=self.url, verify=verify, timeout=timeout, headers=headers)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def _check(self, r: httpx.Response) -> Any:
        """Return a response's JSON (or text); raise HubError with the hub's detail for an error."""
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise HubError(r.status_code, detail if isinstance(detail, str) else str(detail))
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.text

    def _send(self, method: str, path: str, **kw: Any) -> Any:
        """Send one API request."""
        try:
            r = self.http.request(method, "/api/v1" + path, **kw)
        except httpx.HTTPError as e:  # NB: unreachable, TLS refused, connection dropped: one error type
            raise HubError(0, f"{self.url}: {type(e).__name__}: {e}") from None
        return self._check(r)

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path with query parameters."""
        return self._send("GET", path, params=params or None)

    def post(self, path: str, body: Any = None, *, content: bytes | None = None) -> Any:
        """POST JSON to an API path, or raw bytes (content) as application/octet-stream."""
        if content is not None:
            return self._send("POST", path, content=content, headers={"content-type": "application/octet-stream"})
        return self._send("POST", path, json=body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        """PUT JSON to an API path."""
        return self._send("PUT", path, json=body)


def next_jobs(hub: Client, log: logging.Logger) -> list[JobPayload] | None:
    """Return the jobs waiting for this node, or None (after a pause) while the hub cannot be reached.

    A job this node cannot read (another protocol version, a malformed payload) is reported
    failed with the reason, so that it is not offered again.
    """
    try:
        docs: list[Any] = hub.get("/node/jobs")
    except (HubError, OSError) as e:
        log.warning("hub unreachable: %s", e)
        time.sleep(2)
        return None
    jobs = []
    for doc in docs:
        try:
            jobs.append(JobPayload.from_dict(doc))
        except MessageError as e:
            jid = doc.get("job") if isinstance(doc, dict) else None
            log.warning("job %s refused: %s", jid, e)
            if isinstance(jid, int):
                report(hub, jid, ProgressReport(state=PartState.FAILED, reason=str(e)), log)
    return jobs


def report(hub: Client, jid: int, progress: ProgressReport, log: logging.Logger) -> None:
    """Report this node's progress on a job to the hub; a hub that cannot be reached is logged, not raised."""
    try:
        hub.post(f"/node/jobs/{jid}/progress", progress.to_dict())
    except (HubError, OSError) as e:
        log.warning("could not report progress of job %s: %s", jid, e)


async def raw_body(request: Request) -> bytes:
    """Return a request's body: a dependency, so that the route itself can be a plain (threadpool) function."""
    return await request.body()


async def bounded_body(request: Request) -> bytes:
    """Return a request's body, refusing (413) one over the app's ``state.max_body_bytes`` before it is all read."""
    max_bytes = int(request.app.state.max_body_bytes)
    too_big = f"message larger than the configured maximum of {max_bytes} bytes: refused"
    if int(request.headers.get("content-length") or 0) > max_bytes:
        raise HTTPException(413, too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:  # NB: a body without (or with a lying) content-length stops here
            raise HTTPException(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


def serve(app: Any, host: str, port: int, tls: TLSFiles, *, background: bool = False) -> Any:
    """Run an ASGI app with uvicorn over HTTPS that requires a client certificate of the workspace CA.

    The verified client certificate reaches the app as the ASGI TLS extension (`peer.PeerCertProtocol`).
    """
    import uvicorn

    from .peer import PeerCertProtocol

    cfg = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=PeerCertProtocol,
        log_level="warning",
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
        ssl_ca_certs=str(tls.ca),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    server = uvicorn.Server(cfg)
    if background:
        t = threading.Thread(target=server.run, daemon=True, name="uvicorn")
        t.start()
        return server
    server.run()
    return server


def serve_web(app: Any, host: str, port: int, tls: TLSFiles, *, background: bool = False) -> Any:
    """Run the web application (pages for people) with uvicorn over HTTPS with the node's server certificate.

    No client certificate is asked: browsers do not carry one; the pages log people in themselves.
    """
    import uvicorn

    cfg = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
        server_header=False,
        proxy_headers=False,  # NB: no proxy in front: X-Forwarded-* from a browser is not believed
    )
    server = uvicorn.Server(cfg)
    if background:
        t = threading.Thread(target=server.run, daemon=True, name="uvicorn-web")
        t.start()
        return server
    server.run()
    return server
