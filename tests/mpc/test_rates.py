"""Directly age-standardised rates inside the MPC equal the plain executor's (tests/compile/test_rates.py).

One fixed case with two keys (gemeente × vrouw): every cell's code, rate and interval agree, a
cell below k events is withheld inside the computation, a cell with events in every person
(two age bands) agrees, and rows with a missing event count, age or key are treated alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from tests.compile.test_rates import CELLS_ONLY, K, people, rate_query
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc


def fixed_case() -> pd.DataFrame:
    df = people(600, 11, p_event=0.1)
    df.loc[(df["gemeente"] == "C") & df["vrouw"], "opnamen"] = 0  # NB: C × vrouw: no events, withheld
    df.loc[df["gemeente"] == "C", "leeftijd"] = np.where(df.loc[df["gemeente"] == "C", "bsn"] % 2, 90, 70)
    df.loc[(df["gemeente"] == "C") & ~df["vrouw"], "opnamen"] = 1
    df["opnamen"] = df["opnamen"].astype("Int64")
    df["leeftijd"] = df["leeftijd"].astype("Int64")
    df.loc[df["bsn"] % 17 == 1, "opnamen"] = pd.NA  # NB: missing events or age: left out
    df.loc[df["bsn"] % 19 == 2, "leeftijd"] = pd.NA
    df.loc[df["bsn"] % 5 == 3, "gemeente"] = np.nan  # NB: a missing key: the key's 'missing' cell
    return df


def test_rates_in_the_mpc_equal_plain_with_two_keys(cluster: LocalCluster) -> None:
    df = fixed_case()
    q = rate_query(by=["gemeente", "vrouw"])
    plain = wp.run_local(q, {"p": df}, engine="plain", min_group_size=K, rules=CELLS_ONLY)
    mpc = wp.run_local(q, {"p": df}, engine="mpc", min_group_size=K, rules=CELLS_ONLY, cluster=cluster)
    assert not frame_differences(mpc, plain, atol=1e-6, rtol=1e-6)
    assert mpc["reason"].tolist() == plain["reason"].tolist()
    released = mpc[~mpc["suppressed"]]
    assert len(released) == 6  # NB: B and missing (both sexes), A's women, C's men; A's men have 9 events
    assert np.isclose(mpc.loc[(mpc["gemeente"] == "C") & (mpc["vrouw"] == False), "rate"].iloc[0],  # noqa: E712
                      100_000.0 * (10_500 + 2500) / 100_000)  # fmt: skip
