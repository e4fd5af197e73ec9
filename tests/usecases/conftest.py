"""The default-size region (200K persons, seed 1), generated once for the use-case tests that read it."""

from __future__ import annotations

import pytest

from werkplaats.synth.generate import generate
from werkplaats.synth.write import LoadedRegion, load_region, write_region


@pytest.fixture(scope="session")
def region(tmp_path_factory: pytest.TempPathFactory) -> LoadedRegion:
    """The region of test_truth.py and test_rules_usecases.py; tests must not change its tables."""
    out = tmp_path_factory.mktemp("region200k")
    write_region(generate(1, 200_000), out)
    return load_region(out)
