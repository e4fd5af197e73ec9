from __future__ import annotations

import pandas as pd

from werkplaats.result import frame_differences, frames_agree


def frame(n: list[int | None], m: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"n": pd.array(n, dtype="Int64"), "m": pd.array(m, dtype="Float64")})


def test_frames_agree_on_integers_exactly_and_floats_within_tolerance() -> None:
    assert frames_agree(frame([1, None], [2.0, None]), frame([1, None], [2.0000004, None]))
    assert not frames_agree(frame([1, None], [2.0, None]), frame([2, None], [2.0, None]))
    assert not frames_agree(frame([1, None], [2.0, None]), frame([1, None], [2.1, None]))
    assert not frames_agree(frame([1, None], [2.0, None]), frame([1, 3], [2.0, None]))


def test_differences_name_the_column_and_count_cells_without_values() -> None:
    got = frame([1, 7, None], [2.0, 3.0, None])
    assert frame_differences(got, frame([1, 8, None], [2.5, 3.0, None])) == [
        "column n: 1 cell(s) differ",
        "column m: 1 cell(s) differ",
    ]
    assert frame_differences(got, frame([1, 7, 4], [2.0, 3.0, None])) == [
        "column n: 1 cell(s) missing or suppressed on one side only"
    ]
    assert frame_differences(got, got[["m", "n"]]) == ["columns differ: ['n', 'm'] vs ['m', 'n']"]
    assert frame_differences(got, got.iloc[:2]) == ["3 rows vs 2"]


def test_loose_columns_get_the_wider_tolerance_of_standard_deviations() -> None:
    a, b = frame([1], [0.010]), frame([1], [0.015])
    assert frame_differences(a, b) == ["column m: 1 cell(s) differ"]
    assert frame_differences(a, b, loose={"m"}) == []
    assert frame_differences(a, frame([1], [0.025]), loose={"m"}) == ["column m: 1 cell(s) differ"]
