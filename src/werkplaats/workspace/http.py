"""HTTPS with mutual TLS between nodes: a small client and a uvicorn runner."""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

import httpx

from ..exceptions import WerkplaatsError
from .pki import TLSFiles


class HubError(WerkplaatsError):
    """The hub (or an engine) answered with an error."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Client:
    """A JSON client for the hub's API with a bearer token over mutual TLS."""

    def __init__(self, url: str, *, token: str, tls: TLSFiles | None = None, timeout: float = 60.0) -> None:
        verify: Any = tls.client_context() if tls else True
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, verify=verify, timeout=timeout, headers=headers)

    def close(self) -> None:
        self.http.close()

    def _check(self, r: httpx.Response) -> Any:
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
        try:
            r = self.http.request(method, "/api/v1" + path, **kw)
        except httpx.HTTPError as e:  # NB: unreachable, TLS refused, connection dropped: one error type
            raise HubError(0, f"{self.url}: {type(e).__name__}: {e}") from None
        return self._check(r)

    def get(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, params=params or None)

    def post(self, path: str, body: Any = None, *, content: bytes | None = None) -> Any:
        if content is not None:
            return self._send("POST", path, content=content, headers={"content-type": "application/octet-stream"})
        return self._send("POST", path, json=body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        return self._send("PUT", path, json=body)


def next_jobs(hub: Client, log: Any) -> list[dict[str, Any]] | None:
    """The jobs waiting for this node, or None (after a pause) while the hub cannot be reached."""
    try:
        jobs: list[dict[str, Any]] = hub.get("/node/jobs")
    except (HubError, OSError) as e:
        log.warning("hub unreachable: %s", e)
        time.sleep(2)
        return None
    return jobs


def serve(app: Any, host: str, port: int, tls: TLSFiles, *, background: bool = False) -> Any:
    """Run an ASGI app with uvicorn over HTTPS that requires a client certificate of the workspace CA."""
    import uvicorn

    cfg = uvicorn.Config(
        app,
        host=host,
        port=port,
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
