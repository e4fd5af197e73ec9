"""The hub's OpenAPI specification, generated from the app and committed as workspace/openapi.json."""

from __future__ import annotations

from typing import Any


def spec() -> dict[str, Any]:
    """Return the OpenAPI document of the hub's API (no database needed)."""
    from fastapi.openapi.utils import get_openapi

    from .hub import Hub, create_app

    hub = Hub.__new__(Hub)  # NB: routes only; no database is opened
    a = create_app(hub)
    return get_openapi(title=a.title, version=a.version, description=a.description, routes=a.routes)
