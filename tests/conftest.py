from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from werkplaats.mpc import LocalCluster

settings.register_profile(
    "default", deadline=None, max_examples=25, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("dev", parent=settings.get_profile("default"), phases=[Phase.generate],
                          report_multiple_bugs=False)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """Three SPU parties shared by the whole session (each job gets fresh links)."""
    with LocalCluster() as c:
        yield c


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start one workspace of real processes (with its web apps) for every process-level test of the session."""
    from werkplaats.demo.workspace import LocalWorkspace

    w = LocalWorkspace(tmp_path_factory.mktemp("ws"), persons=6000, organisations=("ggd", "huisartsen"),
                       heartbeat_timeout_s=6,
                       jobs={"pp-buckets": {"buckets": 2}})  # NB: tests/workspace/test_bucketed_jobs.py  # fmt: skip
    try:
        w.start()
        yield w
    finally:
        w.stop()
