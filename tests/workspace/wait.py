"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *, every: float = 0.1) -> T:
    """Return the predicate's first truthy value; fail saying what did not happen within timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            msg = f"{what}: not within {timeout:.0f} s"
            raise AssertionError(msg)
        time.sleep(every)
