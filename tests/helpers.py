"""Shared helpers for tests: comparing an MPC result with the plain oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd

META = ("suppressed", "reason")


def assert_same_result(mpc: pd.DataFrame, plain: pd.DataFrame, *, float_cols: set[str],
                       atol: float = 1e-3, rtol: float = 1e-4,
                       loose: frozenset[str] = frozenset()) -> None:  # fmt: skip
    """Assert identical shape, keys, suppression and integers; floats within tolerance.

    The tolerance is the documented fixed-point accuracy: 2^-18 per input value plus
    about 4e-6 relative for each division (see docs/mpc.md). Columns in ``loose``
    (standard deviations) get an absolute tolerance of 1e-2: near zero, the square
    root magnifies the variance's fixed-point error.
    """
    assert list(mpc.columns) == list(plain.columns)
    assert len(mpc) == len(plain)
    for c in mpc.columns:
        a, b = mpc[c], plain[c]
        na_a, na_b = a.isna().to_numpy(), b.isna().to_numpy()
        assert np.array_equal(na_a, na_b), f"column {c}: different missing/suppressed cells"
        if c in float_cols:
            x = a[~na_a].astype(float).to_numpy()
            y = b[~na_b].astype(float).to_numpy()
            tol = 1e-2 if c in loose else atol
            assert np.allclose(x, y, atol=tol, rtol=rtol), f"column {c}: {np.max(np.abs(x - y))}"
        else:
            assert a[~na_a].tolist() == b[~na_b].tolist(), f"column {c} differs"
