"""Web logins: argon2id password hashes, TOTP second factor, lockout, server-side sessions.

OWNER: helper "auth" — replace this stub. ``HubAccounts`` keeps accounts in the hub's database
(``db.WebAccount``, ``db.WebSession``); ``StationAccounts`` in the datastation's own store.
"""

from __future__ import annotations

from typing import Any

from ..workspace.config import WebConfig
from ..workspace.hub.core import Hub
from .deps import WebUser


class HubAccounts:
    """The hub's web accounts (stub)."""

    def __init__(self, hub: Hub, cfg: WebConfig) -> None:
        self.hub, self.cfg = hub, cfg

    def user_for(self, token: str) -> WebUser | None:
        return None


class StationAccounts:
    """A datastation's stewards' accounts (stub)."""

    def __init__(self, station: Any, cfg: WebConfig) -> None:
        self.station, self.cfg = station, cfg

    def user_for(self, token: str) -> WebUser | None:
        return None
