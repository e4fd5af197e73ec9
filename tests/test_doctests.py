"""The examples in docstrings run and show what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["werkplaats.expr", "werkplaats.frame", "werkplaats.local", "werkplaats.result"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    got = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert got.attempted > 0 and got.failed == 0
