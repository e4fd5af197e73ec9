"""The client certificate of an HTTPS connection, handed to the app (uvicorn does not pass it on).

uvicorn (0.54) terminates TLS but puts nothing of the peer's certificate into the ASGI scope.
`PeerCertProtocol` is its h11 protocol with one addition: when a connection is made it reads
the verified client certificate from the transport's ``ssl_object`` and adds it to the scope
of every request on that connection as the ASGI TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``, PEM, leaf first). Any ASGI server that
implements that extension works the same way; without it, `peer_common_name` answers None
and the hub refuses node tokens (fail closed).

Security model: the scope is set by the server only, never from anything the client sends;
the certificate was verified against the workspace CA during the handshake (CERT_REQUIRED).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

from .pki import common_name

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def with_peer(app: ASGIApp, chain: list[str]) -> ASGIApp:
    """Return app with the client certificate chain (PEM) in the scope of every HTTP request."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            ext = dict(scope.get("extensions") or {})
            ext["tls"] = {**ext.get("tls", {}), "client_cert_chain": chain}
            scope["extensions"] = ext
        await app(scope, receive, send)

    return wrapped


class PeerCertProtocol(H11Protocol):
    """uvicorn's h11 protocol that passes the verified client certificate to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Read the peer's certificate once per connection; every request on it carries it."""
        super().connection_made(transport)
        sslobj: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        if der:
            self.app = with_peer(self.app, [ssl.DER_cert_to_PEM_cert(der)])


def peer_certificate(scope: Scope) -> x509.Certificate | None:
    """Return the client certificate of the request's connection, or None when the server passed none."""
    chain = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
    if not chain:
        return None
    try:
        return x509.load_pem_x509_certificate(str(chain[0]).encode())
    except ValueError:
        return None


def peer_common_name(scope: Scope) -> str | None:
    """Return the common name of the request's client certificate, or None when there is none."""
    cert = peer_certificate(scope)
    return common_name(cert) if cert is not None else None
