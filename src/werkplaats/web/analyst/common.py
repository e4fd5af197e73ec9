"""What the analyst's pages share: the role, translations in Python, a request as the API shows it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Request
from sqlalchemy.orm import Session

from ...workspace.hub.deps import request_by_id
from ...workspace.hub.routes import requests as api
from ...workspace.hub.schemas import RequestPublic
from ..deps import WebUser, require_role
from ..i18n import negotiate, translations

Scientist = Annotated[WebUser, require_role("scientist")]
PAGE_ROWS = 50  # NB: rows of a result table per page


def gettext_of(request: Request) -> Callable[[str], str]:
    """The gettext function of the request's language (for strings made in Python)."""
    return translations(negotiate(request)).gettext


def request_of(s: Session, user: WebUser, rid: int) -> RequestPublic:
    """The request as the API returns it to this user (404 unknown, 403 outside the user's collaborations)."""
    return api.get_request(user.caller(), request_by_id(s, rid), s)


def pages(total: int, page: int, per: int = PAGE_ROWS) -> dict[str, Any]:
    """Where a page of a long table starts and ends, and how many pages there are (page clamped to them)."""
    count = max(1, -(-total // per))
    page = min(max(1, page), count)
    return {"page": page, "pages": count, "start": (page - 1) * per, "stop": min(total, page * per), "total": total}
