from __future__ import annotations

import pandas as pd

from werkplaats.result import frames_agree


def frame(n: list[int | None], m: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"n": pd.array(n, dtype="Int64"), "m": pd.array(m, dtype="Float64")})


def test_frames_agree_on_integers_exactly_and_floats_within_tolerance() -> None:
    assert frames_agree(frame([1, None], [2.0, None]), frame([1, None], [2.0000004, None]))
    assert not frames_agree(frame([1, None], [2.0, None]), frame([2, None], [2.0, None]))
    assert not frames_agree(frame([1, None], [2.0, None]), frame([1, None], [2.1, None]))
    assert not frames_agree(frame([1, None], [2.0, None]), frame([1, 3], [2.0, None]))
