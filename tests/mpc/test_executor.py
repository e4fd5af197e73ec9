"""MPC equals the plain oracle on the paths random plans reach rarely."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.demo import data as demo
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc

RNG = np.random.default_rng(3)
N = 300
PEOPLE = pd.DataFrame({
    "bsn": np.arange(N),
    "gemeente": pd.Categorical(RNG.choice(["GM1", "GM2", "GM3"], N)),
    "geboren": pd.to_datetime("1935-01-01") + pd.to_timedelta(RNG.integers(0, 30_000, N), unit="D"),
    "gemeld": pd.to_datetime("2023-11-01") + pd.to_timedelta(RNG.integers(0, 120, N), unit="D"),
})  # fmt: skip
CONSULTS = pd.DataFrame({  # several consults per person: not unique on bsn
    "bsn": RNG.integers(0, N + 50, 4 * N),
    "medicatie": RNG.integers(0, 6, 4 * N),
    "kosten": RNG.integers(0, 20_000, 4 * N) / 8,
})  # fmt: skip
TABLES = {"p": PEOPLE, "c": CONSULTS}
# NB: rule 8's groups per rows is a static check, the same for both executors; these small tables would fail it.
RULES = wp.DisclosureRules(cells_per_source=False)
PKEY = 11  # NB: rule 6: both executors perturb counts alike under the same key


def both(cluster: LocalCluster, q: wp.LazyFrame, tables: dict[str, pd.DataFrame], k: int,
         floats: set[str]) -> pd.DataFrame:  # fmt: skip
    plain = wp.run_local(q, tables, engine="plain", min_group_size=k, rules=RULES, perturbation_key=PKEY)
    mpc = wp.run_local(q, tables, engine="mpc", min_group_size=k, cluster=cluster, rules=RULES, perturbation_key=PKEY)
    assert not frame_differences(mpc, plain)
    assert {c for c in plain.columns if pd.api.types.is_float_dtype(plain[c].dtype)} == floats
    return mpc


def test_join_to_a_side_aggregated_per_person(cluster: LocalCluster) -> None:
    per_person = (wp.scan("c").group_by("bsn")
                  .agg(consulten=wp.count(), med=wp.col("medicatie").sum(), maxmed=wp.col("medicatie").max(),
                       minkosten=wp.col("kosten").min(), gemkosten=wp.col("kosten").mean()))  # fmt: skip
    q = (wp.scan("p").join(per_person, on="bsn", how="left")
         .with_columns(veel=wp.col("consulten").fill_null(0) >= 4)
         .group_by("gemeente", "veel")
         .agg(n=wp.count(), c=wp.col("consulten").sum(), m=wp.col("med").mean(), mx=wp.col("maxmed").max(),
              mk=wp.col("minkosten").min(), gk=wp.col("gemkosten").mean()))  # fmt: skip
    out = both(cluster, q, TABLES, 1, {"m", "mk", "gk"})
    assert out["n"].sum() == N


def test_group_by_date_parts_and_age(cluster: LocalCluster) -> None:
    q = (wp.scan("p")
         .with_columns(week=wp.col("gemeld").dt.iso_week(), jaar=wp.col("gemeld").dt.year(),
                       oud=wp.col("geboren").age_at(dt.date(2024, 1, 1)) >= 70)
         .filter(wp.col("gemeld").dt.month().is_in([11, 12, 1]))
         .group_by("jaar", "week", "oud")
         .agg(n=wp.count(), eerste=wp.col("gemeld").min()))  # fmt: skip
    out = both(cluster, q, TABLES, 2, set())
    assert set(out["jaar"].dropna()) == {2023, 2024}
    assert len(out) == 3 * 54 * 3  # years 2023-2024 + missing, weeks 1-53 + missing, bool + missing


def test_row_count_only_and_empty_table(cluster: LocalCluster) -> None:
    empty = PEOPLE.iloc[:0]
    q = wp.scan("p").agg(n=wp.count())
    assert both(cluster, q, {"p": PEOPLE}, 1, set())["n"].tolist() == [N]
    out = both(cluster, wp.scan("p").group_by("gemeente").agg(n=wp.count()), {"p": empty}, 1, set())
    assert out["suppressed"].all()


def test_demo_analysis(cluster: LocalCluster) -> None:
    both(cluster, demo.analysis(), demo.tables(1500), 10, {"medicatie_gem"})
