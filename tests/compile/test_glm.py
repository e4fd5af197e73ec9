"""The GLM summary on the plain executor (compile/models/glm.py): statsmodels' numbers, the checks, the refusals.

The MPC executor runs the same algorithm (tests/mpc/test_glm.py compares it with this one).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import event, given
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.catalog.schema import infer_schema
from werkplaats.compile.models import glm as G
from werkplaats.exceptions import PlanError
from werkplaats.plan import nodes as n
from werkplaats.plan import serde
from werkplaats.result import (
    LEVERAGE,
    NOT_CONVERGED,
    RESIDUAL_DF,
    SINGULAR,
    SMALL_CATEGORY,
    TOO_MANY_PARAMETERS,
    reason_text,
)

K = 10
CODES = ("dag", "thuis", "verpleeg")
FAMILIES = {"gaussian": sm.families.Gaussian, "binomial": sm.families.Binomial, "poisson": sm.families.Poisson}


def close(got: float, want: float, tol: float = 1e-3) -> bool:
    """Within 1e-3 absolute or 1e-3 relative (the issue's accuracy)."""
    return abs(got - want) <= max(tol, tol * abs(want))


def fit(q: wp.LazyFrame, tables: dict[str, pd.DataFrame], **kw: object) -> pd.DataFrame:
    return wp.run_local(q, tables, engine="plain", min_group_size=K, **kw)  # type: ignore[arg-type]


def withheld(out: pd.DataFrame, code: int) -> bool:
    """Whether the whole summary is withheld for reason code, with every number NA."""
    nums = out[["estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high"]]
    return (
        out.attrs.get("withheld") == reason_text(code, K)
        and bool(out["suppressed"].all())
        and bool(nums.isna().all().all())
        and out.attrs["n"] is None
        and out.attrs["aic"] is None
    )


def people(n_rows: int, seed: int, *, nulls: float = 0.05) -> pd.DataFrame:
    """A table of people with a float, an int, a bool and a categorical predictor and three outcomes."""
    rng = np.random.default_rng(seed)
    age = rng.integers(60, 96, n_rows)
    bmi = rng.normal(26, 4, n_rows)
    vrouw = rng.random(n_rows) < 0.55
    zorg = rng.choice(CODES, n_rows, p=[0.3, 0.4, 0.3])
    jaren = rng.uniform(0.2, 3.0, n_rows)
    eta = -0.8 + 0.04 * (age - 78) + 0.05 * (bmi - 26) + 0.4 * vrouw + 0.6 * (zorg == "verpleeg")
    df = pd.DataFrame({
        "bsn": np.arange(n_rows),
        "leeftijd": pd.array(age, dtype="Int64"),
        "bmi": bmi,
        "vrouw": pd.array(vrouw, dtype="boolean"),
        "zorg": pd.Categorical(zorg, categories=CODES),
        "log_jaren": np.log(jaren),
        "score": eta + rng.normal(0, 1.5, n_rows),
        "val": pd.array(rng.random(n_rows) < 1 / (1 + np.exp(-eta)), dtype="boolean"),
        "vallen": pd.array(rng.poisson(np.exp(eta) * jaren), dtype="Int64"),
    })  # fmt: skip
    for col in ("leeftijd", "bmi", "vrouw", "zorg", "score", "val", "vallen", "log_jaren"):
        df.loc[rng.random(n_rows) < nulls, col] = None
    return df


def reference_fit(df: pd.DataFrame, y: str, x: list[str], family: str, offset: str | None,
                  reference: str | None, *, run: bool = True) -> tuple[pd.DataFrame, Any]:  # fmt: skip
    """statsmodels' GLM on the same rows (missing="drop"), with the dummies of C(zorg) from the code list.

    With run=False only the design matrix of the used rows (and None).
    """
    used = df[[y, *x, *([offset] if offset else [])]].dropna()
    X = pd.DataFrame({"intercept": np.ones(len(used))}, index=used.index)
    for c in x:
        if c == "zorg":
            ref = reference or CODES[0]
            for code in CODES:
                if code != ref:
                    X[f"zorg[{code}]"] = (used[c].astype(str) == code).astype(float)
        else:
            X[c] = used[c].astype(float)
    off = used[offset].astype(float) if offset else None
    if not run:
        return X, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(used[y].astype(float), X, family=FAMILIES[family](), offset=off, missing="drop").fit()
    return X, res


def expected_static_reason(X: pd.DataFrame, yv: pd.Series, family: str, x: list[str]) -> int | None:
    """The first failing check of those that counts decide (TOO_MANY_PARAMETERS, RESIDUAL_DF, SMALL_CATEGORY)."""
    rows, p = X.shape
    if p > 0.33 * rows:
        return TOO_MANY_PARAMETERS
    if rows - p < 10:
        return RESIDUAL_DF
    counts: list[float] = []
    if family == "binomial":
        counts += [float(yv.sum()), rows - float(yv.sum())]
    if "vrouw" in x:
        counts += [float(X["vrouw"].sum()), rows - float(X["vrouw"].sum())]
    if "zorg" in x:
        dummies = X[[c for c in X.columns if c.startswith("zorg[")]]
        counts += [*dummies.sum().tolist(), rows - float(dummies.to_numpy().sum())]
    return SMALL_CATEGORY if any(c < K for c in counts) else None


# --- statsmodels equivalence (Hypothesis) ----------------------------------------------------


@given(
    family=st.sampled_from(sorted(FAMILIES)),
    n_rows=st.one_of(st.integers(12, 80), st.integers(300, 1000)),  # NB: the checks' edge, and releases
    seed=st.integers(0, 2**32 - 1),
    x=st.lists(st.sampled_from(["leeftijd", "bmi", "vrouw", "zorg"]), min_size=1, max_size=4, unique=True),
    nulls=st.sampled_from([0.0, 0.05, 0.2]),
    reference=st.sampled_from([None, "thuis", "verpleeg"]),
    use_offset=st.booleans(),
)
def test_equals_statsmodels_on_random_tables(family: str, n_rows: int, seed: int, x: list[str], nulls: float,
                                             reference: str | None, use_offset: bool) -> None:  # fmt: skip
    df = people(n_rows, seed, nulls=nulls)
    y = {"gaussian": "score", "binomial": "val", "poisson": "vallen"}[family]
    offset = "log_jaren" if family == "poisson" and use_offset else None
    ref = {"zorg": reference} if reference and "zorg" in x else None
    q = wp.scan("t").fit(wp.glm(y=y, x=x, family=family, offset=offset, reference=ref))
    out = fit(q, {"t": df})
    X, _ = reference_fit(df, y, x, family, offset, reference, run=False)
    assert out["term"].tolist() == list(X.columns)
    event(f"{family}: {out.attrs.get('withheld') or 'released'}")
    static = expected_static_reason(X, df.loc[X.index, y].astype(float), family, x)
    if static is not None:
        assert withheld(out, static), (out.attrs.get("withheld"), static)
        return
    _, res = reference_fit(df, y, x, family, offset, reference)
    hat = float(np.max(np.linalg.qr(X.to_numpy(float))[0] ** 2 @ np.ones(X.shape[1])))  # NB: the design's leverage
    yv = df.loc[X.index, y].astype(float)
    share = float(((yv - yv.mean()) ** 2).max() / ((yv - yv.mean()) ** 2).sum())
    if min(abs(hat - 1 / (K - 1)), abs(share - 1 / (K - 1))) < 1e-6:
        return  # NB: at the leverage check's boundary rounding may decide either way
    if out.attrs.get("withheld") == reason_text(LEVERAGE, K):
        assert max(hat, share) >= 1 / (K - 1)
        return
    if out.attrs.get("withheld") is not None:
        # NB: only the numerical checks may withhold here, and only when statsmodels has trouble too
        Z = (X.iloc[:, 1:] - X.iloc[:, 1:].mean()) / X.iloc[:, 1:].std(ddof=0).replace(0, 1)
        std_coef = np.abs(np.asarray(res.params[1:]) * X.iloc[:, 1:].std(ddof=0).to_numpy())
        trouble = (
            np.linalg.cond(np.column_stack([np.ones(len(Z)), Z])) > 1e3
            or not res.converged
            or res.fit_history["iteration"] > G.ITERS[family] - 3  # NB: statsmodels needed about our fixed budget
            or float(std_coef.max()) > 15
        )
        assert trouble and out.attrs["withheld"] in (reason_text(SINGULAR, K), reason_text(NOT_CONVERGED, K))
        return
    assert res.converged and hat < 1 / (K - 1) and share < 1 / (K - 1)
    for got, want in zip(out["estimate"], res.params, strict=True):
        assert close(got, want), (list(out["estimate"]), list(res.params))
    for got, want in zip(out["std_error"], res.bse, strict=True):
        assert close(got, want), (list(out["std_error"]), list(res.bse))
    for got, want in zip(out["p_value"], res.pvalues, strict=True):
        assert close(got, want)
    ci = np.asarray(res.conf_int())
    assert np.allclose(out[["ci_low", "ci_high"]].to_numpy(float), ci, atol=1e-3, rtol=1e-3)
    a = out.attrs
    assert a["n"] == res.nobs and a["df_resid"] == res.df_resid and a["converged"] is True
    for key, want in (("deviance", res.deviance), ("null_deviance", res.null_deviance), ("aic", res.aic),
                      ("llf", res.llf)):  # fmt: skip
        assert close(a[key], want), (key, a[key], want)
    assert a["family"] == family and 1 <= a["iterations"] <= G.ITERS[family]


def test_a_fixed_case_per_family_is_released_and_equals_statsmodels() -> None:
    """The differential test above must not pass by withholding everything: a clear case releases."""
    df = people(2000, 7)
    for family, y, offset in (
        ("gaussian", "score", None),
        ("binomial", "val", None),
        ("poisson", "vallen", "log_jaren"),
    ):
        x = ["leeftijd", "bmi", "vrouw", "zorg"]
        out = fit(wp.scan("t").fit(wp.glm(y=y, x=x, family=family, offset=offset)), {"t": df})
        _, res = reference_fit(df, y, x, family, offset, None)
        assert out.attrs.get("withheld") is None and not out["suppressed"].any()
        assert np.allclose(out["estimate"].to_numpy(float), res.params, atol=1e-6, rtol=1e-6)
        assert np.allclose(out["std_error"].to_numpy(float), res.bse, atol=1e-6, rtol=1e-6)
        assert close(out.attrs["aic"], res.aic, 1e-6) and out.attrs["n"] == res.nobs < 2000  # NB: nulls dropped
        assert out["reason"].isna().all()


# --- the checks, each withholding with its reason ----------------------------------------------


def test_too_few_rows_withholds_for_residual_degrees_of_freedom() -> None:
    df = people(11, 1, nulls=0.0)
    out = fit(wp.scan("t").fit(wp.glm(y="score", x=["bmi"])), {"t": df})
    assert withheld(out, RESIDUAL_DF)  # NB: n - p = 9 < 10; p = 2 <= 0.33 * 11
    loose = replace(wp.DisclosureRules(), model_min_df=9)
    out = wp.run_local(wp.scan("t").fit(wp.glm(y="score", x=["bmi"])), {"t": df}, min_group_size=1, rules=loose)
    assert out.attrs.get("withheld") is None and out.attrs["df_resid"] == 9
    # NB: with k = 10, 11 rows have an average leverage of 2/11 > 1/9: the leverage check withholds next
    assert withheld(fit(wp.scan("t").fit(wp.glm(y="score", x=["bmi"])), {"t": df}, rules=loose), LEVERAGE)


def test_too_many_parameters_for_the_rows() -> None:
    df = people(14, 1, nulls=0.0)
    out = fit(wp.scan("t").fit(wp.glm(y="score", x=["bmi", "leeftijd", "vrouw", "log_jaren"])), {"t": df})
    assert withheld(out, TOO_MANY_PARAMETERS)  # NB: p = 5 > 0.33 * 14


def test_a_category_with_fewer_than_k_rows() -> None:
    df = people(300, 2, nulls=0.0)
    rare = df.index[df["zorg"] == "dag"][K - 1 :]
    df = df.drop(rare).reset_index(drop=True)  # NB: K - 1 rows of code "dag" (the reference) remain
    out = fit(wp.scan("t").fit(wp.glm(y="score", x=["bmi", "zorg"])), {"t": df})
    assert withheld(out, SMALL_CATEGORY)
    # the same rows with one more "dag" row pass
    one_more = pd.concat([df, people(300, 2, nulls=0.0).query("zorg == 'dag'").iloc[[K]]], ignore_index=True)
    one_more["bsn"] = np.arange(len(one_more))
    assert fit(wp.scan("t").fit(wp.glm(y="score", x=["bmi", "zorg"])), {"t": one_more}).attrs.get("withheld") is None
    # a bool predictor, and a binary outcome
    few_women = people(300, 3, nulls=0.0)
    few_women["vrouw"] = pd.array(np.arange(300) < K - 1, dtype="boolean")
    assert withheld(fit(wp.scan("t").fit(wp.glm(y="score", x=["bmi", "vrouw"])), {"t": few_women}), SMALL_CATEGORY)
    few_falls = people(300, 3, nulls=0.0)
    few_falls["val"] = pd.array(np.arange(300) >= 300 - (K - 1), dtype="boolean")
    q = wp.scan("t").fit(wp.glm(y="val", x=["bmi"], family="binomial"))
    assert withheld(fit(q, {"t": few_falls}), SMALL_CATEGORY)


def test_collinear_predictors_are_singular_never_garbage() -> None:
    df = people(300, 4, nulls=0.0)
    df["bmi2"] = 2 * df["bmi"] - 3  # NB: exactly collinear with bmi and the intercept
    df["constant"] = 5.0
    df["is_dag"] = pd.array(df["zorg"] == "dag", dtype="boolean")  # NB: = 1 - both dummies
    for family, y in (("gaussian", "score"), ("binomial", "val"), ("poisson", "vallen")):
        for x in (["bmi", "bmi2"], ["bmi", "constant"], ["zorg", "is_dag"]):
            out = fit(wp.scan("t").fit(wp.glm(y=y, x=x, family=family)), {"t": df})
            assert withheld(out, SINGULAR), (family, x, out.attrs.get("withheld"))


def test_perfect_separation_does_not_converge() -> None:
    df = people(300, 5, nulls=0.0)
    df["val"] = pd.array(df["bmi"] > 26, dtype="boolean")
    out = fit(wp.scan("t").fit(wp.glm(y="val", x=["bmi", "leeftijd"], family="binomial")), {"t": df})
    assert withheld(out, NOT_CONVERGED)
    # quasi-separation: one category holds no falls at all
    df = people(600, 5, nulls=0.0)
    df["val"] = df["val"] & (df["zorg"] != "thuis")
    out = fit(wp.scan("t").fit(wp.glm(y="val", x=["bmi", "zorg"], family="binomial")), {"t": df})
    assert withheld(out, NOT_CONVERGED)


def test_missing_values_are_dropped_as_statsmodels_does() -> None:
    df = people(500, 6, nulls=0.0)
    df["zorg"] = df["zorg"].astype(object)
    df.loc[:19, "zorg"] = None
    df.loc[20:39, "vrouw"] = None
    df.loc[40:59, "leeftijd"] = None
    df.loc[60:79, "score"] = None
    out = fit(wp.scan("t").fit(wp.glm(y="score", x=["leeftijd", "vrouw", "zorg"])), {"t": df})
    _, res = reference_fit(df, "score", ["leeftijd", "vrouw", "zorg"], "gaussian", None, None)
    assert out.attrs["n"] == res.nobs == 420
    assert np.allclose(out["estimate"].to_numpy(float), res.params, atol=1e-6)


def test_a_poisson_offset_and_a_chosen_reference() -> None:
    df = people(1500, 8, nulls=0.0)
    ref = {"zorg": "verpleeg"}
    q = wp.scan("t").fit(
        wp.glm(y="vallen", x=["leeftijd", "zorg"], family="poisson", offset="log_jaren", reference=ref)
    )
    out = fit(q, {"t": df})
    _, res = reference_fit(df, "vallen", ["leeftijd", "zorg"], "poisson", "log_jaren", "verpleeg")
    assert out["term"].tolist() == ["intercept", "leeftijd", "zorg[dag]", "zorg[thuis]"]
    assert np.allclose(out["estimate"].to_numpy(float), res.params, atol=1e-6)
    assert close(out.attrs["null_deviance"], res.null_deviance, 1e-6)  # NB: the intercept-only model with the offset


# --- attacks ------------------------------------------------------------------------------------


def test_a_model_over_one_person_is_withheld() -> None:
    df = people(400, 9, nulls=0.0)
    one = wp.scan("t").with_columns(nr=wp.col("leeftijd") * 1000 + wp.col("bmi"))
    target = float(df["leeftijd"][7]) * 1000 + float(df["bmi"][7])
    q = one.filter(wp.col("nr") == target).fit(wp.glm(y="score", x=["bmi"]))
    assert withheld(fit(q, {"t": df}), TOO_MANY_PARAMETERS)
    with pytest.raises(PlanError, match="bsn is a person key"):  # NB: by the person key itself: refused (rule 1)
        fit(wp.scan("t").filter(wp.col("bsn") == 7).fit(wp.glm(y="score", x=["bmi"])), {"t": df})
    # a rare category isolates a few people
    df["zorg"] = pd.Categorical(["dag"] * 3 + ["thuis"] * 397, categories=CODES)
    q = wp.scan("t").filter(wp.col("zorg") == "dag").fit(wp.glm(y="score", x=["bmi"]))
    assert withheld(fit(q, {"t": df}), TOO_MANY_PARAMETERS)  # NB: 3 rows; the complement rule passes (397 removed)
    # an indicator of one person as a predictor: its coefficient would be that person's residual
    df = people(400, 9, nulls=0.0)
    q = (
        wp.scan("t")
        .with_columns(doel=wp.col("bmi") == float(df["bmi"][7]))
        .fit(wp.glm(y="score", x=["leeftijd", "doel"]))
    )
    assert withheld(fit(q, {"t": df}), SMALL_CATEGORY)


def test_a_one_person_indicator_coded_as_a_number_is_withheld_by_leverage() -> None:
    """The same attack with a numeric predictor, which SMALL_CATEGORY does not see: the model would fit
    the person's row exactly, and estimate + fitted value give the person's outcome away."""
    df = people(400, 9, nulls=0.0)
    plain = wp.scan("t").fit(wp.glm(y="score", x=["leeftijd", "bmi"]))
    target = float(df["bmi"][7])
    for then, otherwise in ((1, 0), (5.0, 0.001), (1.0, wp.col("bmi") * 1e-6)):
        doel = wp.when(wp.col("bmi") == target).then(then).otherwise(otherwise)
        q = wp.scan("t").with_columns(doel=doel).fit(wp.glm(y="score", x=["leeftijd", "bmi", "doel"]))
        out = fit(q, {"t": df}, rules=wp.DisclosureRules.cells_only())
        assert withheld(out, LEVERAGE), out.attrs.get("withheld")
    # two people alone in a direction: leverage 1/2 each
    pair = wp.when(wp.col("bmi").is_in([target, float(df["bmi"][8])])).then(1).otherwise(0)
    q = wp.scan("t").with_columns(doel=pair).fit(wp.glm(y="score", x=["leeftijd", "bmi", "doel"]))
    assert withheld(fit(q, {"t": df}), LEVERAGE)
    # k people alone in a direction pass (as a category of k rows does), and so does the honest model
    tenth = float(df["bmi"].sort_values().iloc[K - 1])
    group = wp.when(wp.col("bmi") <= tenth).then(1).otherwise(0)
    q = wp.scan("t").with_columns(doel=group).fit(wp.glm(y="score", x=["leeftijd", "bmi", "doel"]))
    assert fit(q, {"t": df}).attrs.get("withheld") is None
    assert fit(plain, {"t": df}).attrs.get("withheld") is None


def test_a_one_person_outcome_is_withheld() -> None:
    """An outcome that is 1 for one person and 0 for everyone else: its regression's coefficients are
    (X'X)^-1 x_i and give that person's predictors away. Binomial: SMALL_CATEGORY; otherwise LEVERAGE."""
    df = people(400, 10, nulls=0.0)
    target = float(df["bmi"][7])
    one = wp.when(wp.col("bmi") == target)
    q = wp.scan("t").with_columns(doel=one.then(1.0).otherwise(0.0)).fit(wp.glm(y="doel", x=["leeftijd", "vrouw"]))
    out = fit(q, {"t": df}, rules=wp.DisclosureRules.cells_only())
    assert withheld(out, LEVERAGE)
    q = wp.scan("t").with_columns(doel=one.then(1).otherwise(0)).fit(wp.glm(y="doel", x=["leeftijd"], family="poisson"))
    assert withheld(fit(q, {"t": df}), LEVERAGE)
    q = wp.scan("t").with_columns(doel=one.then(True).otherwise(False))
    assert withheld(fit(q.fit(wp.glm(y="doel", x=["leeftijd"], family="binomial")), {"t": df}), SMALL_CATEGORY)
    # a constant outcome would give everyone's value away
    q = wp.scan("t").with_columns(doel=wp.lit(3.0)).fit(wp.glm(y="doel", x=["leeftijd"]))
    assert withheld(fit(q, {"t": df}), LEVERAGE)


def test_the_person_key_is_refused_as_a_predictor_or_outcome() -> None:
    df = people(100, 1)
    for spec in (wp.glm(y="score", x=["bsn"]), wp.glm(y="bsn", x=["bmi"]),
                 wp.glm(y="vallen", x=["bmi"], family="poisson", offset="bsn")):  # fmt: skip
        with pytest.raises(PlanError, match="person key"):
            fit(wp.scan("t").fit(spec), {"t": df})


# --- the plan: refusals, explain, JSON -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (dict(y="score", x=["gewicht"]), r"unknown column 'gewicht' as a predictor.*available columns: \['bmi'"),
        (dict(y="scoor", x=["bmi"]), "unknown column 'scoor' as the outcome"),
        (dict(y="score", x=["bmi", "bmi"]), "'bmi' appears twice"),
        (dict(y="score", x=["score"]), "is the outcome"),
        (dict(y="vallen", x=["bmi"], family="binomial"), "is int; a binomial model needs a bool"),
        (dict(y="score", x=["bmi"], family="poisson"), "is float; a poisson model needs an int"),
        (
            dict(y="score", x=["zorg"], reference={"zorg": "ziekenhuis"}),
            "'ziekenhuis' of 'zorg' is not in its code list",
        ),
        (dict(y="score", x=["bmi"], reference={"bmi": "1"}), "only categorical"),
        (dict(y="score", x=["bmi"], reference={"zorg": "dag"}), "not a predictor"),
        (dict(y="score", x=["datum"]), "is a date; use age_at"),
        (dict(y="score", x=["code"]), "more than 30 terms|at most 30"),
        (dict(y="vallen", x=["bmi"], family="poisson", offset="zorg"), "the offset 'zorg' is str"),
    ],
)
def test_the_schema_check_refuses_with_the_column_and_the_rule(spec: dict, match: str) -> None:
    df = people(100, 1)
    df["datum"] = pd.Timestamp("2024-01-01")
    df["code"] = pd.Categorical([f"c{i % 40}" for i in range(100)])
    with pytest.raises(PlanError, match=match):
        fit(wp.scan("t").fit(wp.glm(**spec)), {"t": df})


def test_an_offset_outside_poisson_in_a_plan_is_refused() -> None:
    """wp.glm refuses it; a hand-written plan (JSON) reaches the checker."""
    node = n.Glm(n.Source("t", None), "score", ("bmi",), "gaussian", "log_jaren", ())
    with pytest.raises(PlanError, match="offset is for the poisson family"):
        fit(n.Plan(node, K), {"t": people(100, 1)})  # type: ignore[arg-type]


def test_a_poisson_outcome_whose_schema_allows_negative_values_is_refused() -> None:
    df = people(400, 1, nulls=0.0)
    schema = infer_schema("t", df)
    cols = tuple(replace(c, minimum=-5, maximum=50) if c.name == "vallen" else c for c in schema.columns)
    q = wp.scan("t").fit(wp.glm(y="vallen", x=["bmi"], family="poisson"))
    with pytest.raises(PlanError, match=r"must be a count \(>= 0\), but its schema declares a minimum of -5"):
        fit(q, {"t": df}, schemas={"t": replace(schema, columns=cols)})
    counts = tuple(replace(c, minimum=0, maximum=50) if c.name == "vallen" else c for c in schema.columns)
    assert fit(q, {"t": df}, schemas={"t": replace(schema, columns=counts)}).attrs.get("withheld") is None


def test_explain_json_and_hash() -> None:
    q = wp.scan("t").fit(
        wp.glm(y="val", x=["leeftijd", "vrouw", "zorg"], family="binomial", reference={"zorg": "thuis"})
    )
    text = q.explain()
    assert "logistic regression of val on 3 variables (leeftijd, vrouw, zorg)" in text
    assert "reference categories zorg = thuis" in text and "releases coefficients, standard errors" in text
    plan = q.to_plan()
    doc = q.to_json()
    back = serde.plan_from_json(doc)
    assert back == plan and serde.plan_hash(back) == q.plan_hash()
    other = wp.scan("t").fit(wp.glm(y="val", x=["leeftijd", "vrouw", "zorg"], family="binomial"))
    assert other.plan_hash() != q.plan_hash()  # NB: the reference category is part of what is approved
    root = json.loads(doc)["root"]
    assert (root["op"], root["family"], root["reference"]) == (
        "glm",
        "binomial",
        [{"column": "zorg", "category": "thuis"}],
    )
