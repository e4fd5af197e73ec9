"""Correlation matrices under MPC: the same numbers and the same refusals as the plain executor."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.mpc import LocalCluster

pytestmark = pytest.mark.mpc

ROWS = 120
RULES = wp.DisclosureRules(cells_per_source=False)  # NB: n is rounded to 5 on both executors
K = 10


@pytest.fixture(scope="module")
def corr_cluster() -> Iterator[LocalCluster]:
    with LocalCluster() as c:
        yield c


def table(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(65, 100, ROWS)
    cost = 1e5 + 40.0 * age + rng.normal(0, 300, ROWS)  # a large offset, a strong correlation with age
    falls = rng.random(ROWS) < 0.3
    df = pd.DataFrame({
        "leeftijd": pd.array(age, dtype="Int64"),
        "kosten": pd.array(cost, dtype="Float64"),
        "gevallen": pd.array(falls, dtype="boolean"),
        "bmi": pd.array(rng.normal(26, 4, ROWS), dtype="Float64"),
    })  # fmt: skip
    df.loc[rng.random(ROWS) < 0.1, "bmi"] = pd.NA
    return df


def run(cluster: LocalCluster, df: pd.DataFrame, engine: str) -> pd.DataFrame:
    q = wp.scan("t").filter(wp.col("leeftijd") >= 70).corr("leeftijd", "kosten", "gevallen", "bmi")
    kw = {"cluster": cluster} if engine == "mpc" else {}
    return wp.run_local(q, {"t": df}, engine=engine, rules=RULES, min_group_size=K, **kw)


def test_mpc_equals_plain_and_refuses_alike(corr_cluster: LocalCluster) -> None:
    df = table(5)
    plain, mpc = run(corr_cluster, df, "plain"), run(corr_cluster, df, "mpc")
    assert not plain.attrs["withheld"] and not mpc.attrs["withheld"]
    assert mpc.attrs["n"] == plain.attrs["n"]
    np.testing.assert_allclose(mpc.to_numpy(dtype=float), plain.to_numpy(dtype=float), atol=1e-6)
    assert plain.loc["leeftijd", "kosten"] > 0.7  # NB: the data's strong correlation is there
    # the same plan (and program) on data where bmi takes two values, each in >= k rows, but bmi = 30 without
    # a fall holds 3 < k rows: the correlation of the two binary columns would give that cell back
    small = table(6)
    falls = np.arange(ROWS) < 50
    bmi = np.where(falls, 30.0, 20.0)
    bmi[50:53] = 30.0
    small["gevallen"], small["bmi"] = pd.array(falls, dtype="boolean"), pd.array(bmi, dtype="Float64")
    got, want = run(corr_cluster, small, "mpc"), run(corr_cluster, small, "plain")
    assert got.attrs["withheld"] and want.attrs["withheld"]
    assert got.attrs["reason"] == want.attrs["reason"]
    assert "2 × 2 table" in got.attrs["reason"]
    assert got.isna().all().all() and got.attrs["n"] is None
