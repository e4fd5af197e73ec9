"""Hub backends for the workspace tests (SQLite, PostgreSQL) and the one live workspace of real processes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests marked ``registers`` after every other test.

    Rule 9 compares every released cell of the live workspace's collaboration with the cells of
    later jobs: a test that releases small cells on purpose (to difference them) would otherwise
    make a later, unrelated test's small cells differ from a registered one by fewer than k rows.
    """
    items.sort(key=lambda it: it.get_closest_marker("registers") is not None)


PG = os.environ.get("WERKPLAATS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_database() -> Iterator[str]:
    import psycopg

    name = "wp_test_" + uuid.uuid4().hex[:12]
    try:
        admin = psycopg.connect(PG, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        if os.environ.get("WERKPLAATS_REQUIRE_PG"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG} ({type(e).__name__}); set WERKPLAATS_TEST_PG")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        yield from _pg_database()


# NB: the one live workspace of real processes, `ws`, is in tests/conftest.py (the browser tests share it)
