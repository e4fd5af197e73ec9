"""A datastation uploads a dataset's three shares at once, each to its own engine, and fails when one upload does."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from werkplaats.workspace.datastation import Datastation
from werkplaats.workspace.http import HubError


class FakeEngine:
    """An engine's connection that takes an upload after a pause, or refuses it."""

    def __init__(self, party: int, refuse: bool = False) -> None:
        self.party = party
        self.refuse = refuse
        self.got: list[Any] = []


def station(pause_s: float, log: list[tuple[int, float, float]]) -> Datastation:
    st = Datastation.__new__(Datastation)  # NB: only what send_all uses

    def send(c: FakeEngine, job: Any, dataset: str, rows: int, slots: Any, bucket: int | None = None) -> None:
        t0 = time.monotonic()
        time.sleep(pause_s)
        log.append((c.party, t0, time.monotonic()))
        if c.refuse:
            raise HubError(403, "refused by the engine")
        c.got.append((dataset, rows, slots, bucket))

    st.send = send  # type: ignore[method-assign]
    return st


def test_the_three_uploads_overlap_and_each_engine_gets_its_own_share() -> None:
    log: list[tuple[int, float, float]] = []
    engines = {p: FakeEngine(p) for p in range(3)}
    per_party = [[[b"share-of-%d" % p]] for p in range(3)]
    t0 = time.monotonic()
    station(0.3, log).send_all(engines, None, "ggd/meldingen", 10, per_party, bucket=2)  # type: ignore[arg-type]
    took = time.monotonic() - t0
    assert [e.got for e in engines.values()] == [[("ggd/meldingen", 10, per_party[p], 2)] for p in range(3)]
    assert took < 0.8, took  # NB: one after the other they take 0.9 s
    assert max(s for _, s, _ in log) < min(e for _, _, e in log)  # NB: all three were under way at once


def test_one_refused_upload_fails_the_dataset_after_every_upload_ended() -> None:
    log: list[tuple[int, float, float]] = []
    engines = {0: FakeEngine(0), 1: FakeEngine(1, refuse=True), 2: FakeEngine(2)}
    with pytest.raises(HubError, match="403"):
        station(0.1, log).send_all(engines, None, "ggd/meldingen", 10, [[[b"x"]]] * 3)  # type: ignore[arg-type]
    assert sorted(p for p, _, _ in log) == [0, 1, 2]  # NB: no upload is left running behind the error
    assert not [t for t in threading.enumerate() if t.name.startswith("upload")]
