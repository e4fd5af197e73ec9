"""The GLM inside the MPC (compile/kernels/glm.py): equal to the plain executor and to statsmodels.

Each case runs one plan in both executors on the same tables and asserts the same terms, the
same reason (released or the same check withheld), estimates and standard errors within 1e-3
absolute or relative of each other and of statsmodels on the same rows, the same n and
iteration count. The larger accuracy run is slow-marked:
``flock /tmp/werkplaats-heavy.lock .venv/bin/python -m pytest -q -m slow tests/mpc/test_glm.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import werkplaats as wp
from tests.compile.test_glm import CODES, close, people, reference_fit
from werkplaats.compile.kernels.cellkey import key_inputs
from werkplaats.local import prepare
from werkplaats.mpc import LocalCluster
from werkplaats.mpc.runtime import precision_of
from werkplaats.result import NOT_CONVERGED, SINGULAR, SMALL_CATEGORY, reason_text

pytestmark = pytest.mark.mpc

K = 10
X = ["leeftijd", "bmi", "vrouw", "zorg"]
Y = {"gaussian": "score", "binomial": "val", "poisson": "vallen"}


def both(cluster: LocalCluster, q: wp.LazyFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Run q in both executors; assert they agree (terms, reason, numbers, n, iterations); return MPC's."""
    plain = wp.run_local(q, tables, engine="plain", min_group_size=K)
    mpc = wp.run_local(q, tables, engine="mpc", min_group_size=K, cluster=cluster)
    assert mpc["term"].tolist() == plain["term"].tolist()
    assert mpc.attrs.get("withheld") == plain.attrs.get("withheld")
    assert mpc["suppressed"].tolist() == plain["suppressed"].tolist()
    if plain.attrs.get("withheld") is None:
        for col in ("estimate", "std_error"):
            for got, want in zip(mpc[col], plain[col], strict=True):
                assert close(float(got), float(want)), (col, got, want)
        for key in ("n", "df_resid", "iterations", "converged"):
            assert mpc.attrs[key] == plain.attrs[key], key
        for key in ("deviance", "null_deviance", "aic"):
            assert close(mpc.attrs[key], plain.attrs[key]), key
    return mpc


def matches_statsmodels(out: pd.DataFrame, res: object) -> None:
    params, bse = np.asarray(res.params), np.asarray(res.bse)  # type: ignore[attr-defined]
    for got, want in zip(out["estimate"], params, strict=True):
        assert close(float(got), float(want))
    for got, want in zip(out["std_error"], bse, strict=True):
        assert close(float(got), float(want))
    assert out.attrs["n"] == int(res.nobs)  # type: ignore[attr-defined]
    assert close(out.attrs["deviance"], float(res.deviance))  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", ["gaussian", "poisson"])
def test_family_equals_plain_and_statsmodels(cluster: LocalCluster, family: str) -> None:
    df = people(1500, 7)
    offset = "log_jaren" if family == "poisson" else None
    q = wp.scan("t").fit(wp.glm(y=Y[family], x=X, family=family, offset=offset))
    out = both(cluster, q, {"t": df})
    assert out.attrs.get("withheld") is None and out.attrs["converged"]
    _, res = reference_fit(df, Y[family], X, family, offset, None)
    matches_statsmodels(out, res)


def fall_tables(n_rows: int, seed: int) -> dict[str, pd.DataFrame]:
    """Clients (val, age, sex), a GP record for ~80% of them (bmi, a care type), visits (several per client)."""
    df = people(n_rows, seed, nulls=0.02)
    rng = np.random.default_rng(seed + 1)
    has_gp = rng.random(n_rows) < 0.8
    gp = df.loc[has_gp, ["bsn", "bmi", "zorg"]].reset_index(drop=True)
    visits = pd.DataFrame(
        {"bsn": rng.choice(df["bsn"].to_numpy(), 3 * n_rows), "minuten": rng.integers(5, 60, 3 * n_rows)}
    )
    clients = df[["bsn", "leeftijd", "vrouw", "val"]]
    return {"clients": clients, "gp": gp, "visits": visits}


def test_binomial_over_a_left_join_with_a_categorical(cluster: LocalCluster) -> None:
    tables = fall_tables(800, 11)
    per_person = wp.scan("visits").group_by("bsn").agg(bezoeken=wp.count())
    q = (wp.scan("clients").filter(wp.col("leeftijd") >= 65)
         .join(wp.scan("gp"), on="bsn", how="left")
         .join(per_person, on="bsn", how="left")
         .with_columns(bezoeken=wp.col("bezoeken").fill_null(0))
         .fit(wp.glm(y="val", x=["leeftijd", "vrouw", "bmi", "zorg", "bezoeken"], family="binomial",
                     reference={"zorg": "thuis"})))  # fmt: skip
    out = both(cluster, q, tables)
    assert out.attrs.get("withheld") is None and out.attrs["converged"]
    assert out["term"].tolist() == ["intercept", "leeftijd", "vrouw", "bmi", "zorg[dag]", "zorg[verpleeg]", "bezoeken"]
    # statsmodels on the same rows: the clients aged 65+ with a GP record (bmi, zorg present)
    c, gp, v = tables["clients"], tables["gp"], tables["visits"]
    rows = c[c["leeftijd"] >= 65].merge(gp, on="bsn", how="left")
    rows = rows.merge(v.groupby("bsn").size().rename("bezoeken").reset_index(), on="bsn", how="left")
    rows["bezoeken"] = rows["bezoeken"].fillna(0)
    used = rows.dropna(subset=["val", "leeftijd", "vrouw", "bmi", "zorg"])
    design = pd.DataFrame({"intercept": 1.0, "leeftijd": used["leeftijd"].astype(float),
                           "vrouw": used["vrouw"].astype(float), "bmi": used["bmi"].astype(float)})  # fmt: skip
    for code in ("dag", "verpleeg"):
        design[f"zorg[{code}]"] = (used["zorg"].astype(str) == code).astype(float)
    design["bezoeken"] = used["bezoeken"].astype(float)
    res = sm.GLM(used["val"].astype(float), design, family=sm.families.Binomial()).fit()
    matches_statsmodels(out, res)


def test_a_check_withholds_alike(cluster: LocalCluster) -> None:
    """The gaussian case's plan and row count (so the cluster reuses its compiled program), one care type rare."""
    df = people(1500, 7)
    present = df["zorg"].notna().to_numpy()
    codes = np.where(np.arange(len(df)) % 2 == 0, CODES[0], CODES[1]).astype(object)
    codes[np.flatnonzero(present)[: K - 1]] = CODES[2]  # NB: K - 1 rows of "verpleeg" among the used rows at most
    df["zorg"] = pd.Categorical(np.where(present, codes, None), categories=CODES)
    q = wp.scan("t").fit(wp.glm(y=Y["gaussian"], x=X, family="gaussian"))
    out = both(cluster, q, {"t": df})
    assert out.attrs["withheld"] == reason_text(SMALL_CATEGORY, K)
    assert out["estimate"].isna().all() and out["std_error"].isna().all()


def test_a_model_plan_runs_at_model_precision_without_key_parts() -> None:
    """A model releases no counts, so the program takes no perturbation key parts (rule 6), under FM128."""
    tables = fall_tables(50, 1)
    per_person = wp.scan("visits").group_by("bsn").agg(bezoeken=wp.count())
    q = (wp.scan("clients").join(wp.scan("gp"), on="bsn", how="left").join(per_person, on="bsn", how="left")
         .fit(wp.glm(y="val", x=["bmi"], family="binomial")))  # fmt: skip
    a, _ = prepare(q, tables, rules=wp.DisclosureRules())
    assert a.rules.counts == "perturb" and key_inputs(a) == 0
    assert precision_of(a.plan) == "model"


@pytest.mark.slow
def test_logistic_accuracy_at_100k_rows(cluster: LocalCluster) -> None:
    """The issue's accuracy at scale: a logistic model on 100,000 rows within 1e-3 of statsmodels and of plain."""
    df = people(100_000, 21, nulls=0.01)
    q = wp.scan("t").fit(wp.glm(y="val", x=X, family="binomial"))
    out = both(cluster, q, {"t": df})
    assert out.attrs.get("withheld") is None and out.attrs["converged"]
    _, res = reference_fit(df, "val", X, "binomial", None, None)
    matches_statsmodels(out, res)


@pytest.mark.slow
def test_collinear_and_separated_are_withheld_alike(cluster: LocalCluster) -> None:
    """A collinear design is SINGULAR and a separated outcome NOT_CONVERGED, in both executors (never garbage)."""
    df = people(600, 9, nulls=0.0)
    df["bmi2"] = df["bmi"] * 2.0 + 1.0
    q = wp.scan("t").fit(wp.glm(y="val", x=["leeftijd", "bmi", "bmi2"], family="binomial"))
    assert both(cluster, q, {"t": df}).attrs["withheld"] == reason_text(SINGULAR, K)
    df["val"] = pd.array(df["bmi"].to_numpy(float) > 26.0, dtype="boolean")
    q = wp.scan("t").fit(wp.glm(y="val", x=["leeftijd", "bmi"], family="binomial"))
    assert both(cluster, q, {"t": df}).attrs["withheld"] == reason_text(NOT_CONVERGED, K)
