"""The benchmarks' shared measuring (bench/measure.py): the MPC == plain check each benchmark reports; its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from bench.measure import mb, mpc_equals_plain, save, timed

from werkplaats.result import Revealed


def _rev(cells: list[int], values: list[float]) -> Revealed:
    ok = np.array(cells, dtype=np.int64)
    return Revealed(ok, {"n": (ok.copy(), np.array(values, dtype=float))})


def test_mpc_equals_plain_within_tolerance() -> None:
    plain = _rev([1, 1, 0], [12.0, 30.5, 0.0])
    assert mpc_equals_plain(_rev([1, 1, 0], [12.0, 30.5004, 0.0]), plain)


def test_mpc_differs_from_plain_on_a_released_cell_or_a_value() -> None:
    plain = _rev([1, 1, 0], [12.0, 30.5, 0.0])
    assert not mpc_equals_plain(_rev([1, 0, 0], [12.0, 30.5, 0.0]), plain)  # NB: a cell withheld by one side only
    assert not mpc_equals_plain(_rev([1, 1, 0], [12.0, 30.51, 0.0]), plain)  # NB: off by more than 1e-3
    assert not mpc_equals_plain(_rev([1, 1, 0], [13.0, 30.5, 0.0]), plain)


def test_save_writes_the_results_and_their_table(tmp_path: Path) -> None:
    results = [{"n": 10, "bytes_sent": [1_000_000, 2_000_000, 3_000_000]}]
    save(tmp_path, "w9", results, lambda rs: "\n".join(f"| {r['n']} | {mb(r['bytes_sent'])} |" for r in rs))
    assert json.loads((tmp_path / "w9.json").read_text()) == results
    assert (tmp_path / "w9.md").read_text() == "| 10 | 1 / 2 / 3 |\n"


def test_timed_returns_the_result_and_a_duration() -> None:
    got, s = timed(lambda: sum(range(1000)))
    assert got == 499500
    assert 0 <= s < 5
