"""SQLAlchemy engines from database URLs, for the hub's store and a datastation's PostgreSQL sources.

Neutral ground: the datastation reads PostgreSQL tables without importing the hub's models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine


def make_engine(url: str) -> Engine:
    """Create the SQLAlchemy engine for a database URL (sqlite:///file.db or postgresql://...)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")  # NB: psycopg 3, not psycopg2
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
    return create_engine(url, future=True, **kwargs)
