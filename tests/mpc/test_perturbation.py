"""Rule 6 in the MPC: record keys from the engines' key parts, the same noise as the plain executor, exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.compile.rules import DisclosureRules
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc

RNG = np.random.default_rng(6)
N = 80
PEOPLE = pd.DataFrame({
    "bsn": RNG.choice(10**9, N, replace=False),
    "gemeente": pd.Categorical(RNG.choice(["GM1", "GM2", "GM3"], N)),
    "ziek": RNG.integers(0, 2, N).astype(bool),
})  # fmt: skip
CONSULTS = pd.DataFrame({"bsn": RNG.choice(PEOPLE["bsn"], 3 * N), "kosten": RNG.integers(0, 500, 3 * N)})
TABLES = {"p": PEOPLE, "c": CONSULTS}
RULES = replace(DisclosureRules(), complement=False)  # NB: the left join removes no rows; rule 5 is tested elsewhere

PER_PERSON = wp.scan("c").group_by("bsn").agg(nc=wp.count())
# Record keys from the left side of a join (the people), through a person-key group-by on the right.
JOINED = (wp.scan("p").join(PER_PERSON, on="bsn", how="left").group_by("gemeente")
          .agg(n=wp.count(), z=wp.col("ziek").sum(), c=wp.col("nc").count(), m=wp.col("nc").mean()))  # fmt: skip
# Record keys from an intermediate group-by on the person key.
GROUPED = PER_PERSON.with_columns(veel=wp.col("nc") >= 3).group_by("veel").agg(n=wp.count())


def _both(cluster: LocalCluster, q: wp.LazyFrame, key: int, rules: DisclosureRules = RULES) -> pd.DataFrame:
    plain = wp.run_local(q, TABLES, rules=rules, perturbation_key=key)
    mpc = wp.run_local(q, TABLES, engine="mpc", cluster=cluster, rules=rules, perturbation_key=key)
    assert not frame_differences(mpc, plain)
    return mpc


def test_mpc_equals_plain_with_the_same_key_and_the_noise_is_keyed(cluster: LocalCluster) -> None:
    exact = wp.run_local(JOINED, TABLES, rules=replace(RULES, counts="exact"))
    a = _both(cluster, JOINED, 2**64 - 3)
    b = _both(cluster, JOINED, 17)
    released = ~a["suppressed"]
    assert released.sum() >= 2
    counts = ["n", "z", "c"]

    def vals(df: pd.DataFrame) -> np.ndarray:
        return df.loc[released, counts].astype(float).to_numpy()  # NB: a statistic withheld on its own is NaN

    shown = ~np.isnan(vals(exact))
    assert (vals(a)[shown] != vals(exact)[shown]).any()  # perturbed
    assert (vals(a)[shown] != vals(b)[shown]).any()  # a different key, other noise
    assert (np.abs(vals(a) - vals(exact))[shown] <= RULES.ptable.D).all()
    assert np.allclose(a.loc[released, "m"].astype(float), exact.loc[released, "m"].astype(float), atol=1e-4)


def test_record_keys_after_a_person_key_group_by_and_rounding(cluster: LocalCluster) -> None:
    _both(cluster, GROUPED, 5)
    rounded = _both(cluster, JOINED, 5, replace(RULES, counts="round"))
    released = ~rounded["suppressed"]
    got = rounded.loc[released, ["n", "z", "c"]].astype(float).to_numpy()
    assert (got[~np.isnan(got)] % 5 == 0).all()


def test_an_engine_makes_its_key_part_once_and_keeps_it_private(tmp_path: Path) -> None:
    from werkplaats.workspace.engine_run import KEY_PART_FILE, perturbation_key_part

    first = perturbation_key_part(tmp_path)
    assert perturbation_key_part(tmp_path) == first  # kept across jobs: the same cells get the same noise
    assert (tmp_path / KEY_PART_FILE).stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other"
    other.mkdir()
    assert perturbation_key_part(other) != first  # each engine its own random part
    (tmp_path / KEY_PART_FILE).unlink()  # rotation
    assert perturbation_key_part(tmp_path) != first
