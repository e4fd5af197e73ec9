"""The fall-risk template finds the generator's model; its tiers, AUC and calibration read true (plain; MPC = plain).

Default run: the session's 200K region (one seed) and one small region under MPC (the fit, ~45 s). The slow
runs (``pytest -m slow tests/usecases/test_fall_risk.py``): 95% coverage over 10 seeds (~130 s), MPC = plain
at 200K (~200 s) and the tier and AUC-table plans under MPC on the small region (~40 s).
"""

from __future__ import annotations

import math
from importlib import import_module
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

import werkplaats as wp
from werkplaats import usecases as uc
from werkplaats.compile.register import Register
from werkplaats.exceptions import PlanError
from werkplaats.mpc.cluster import LocalCluster
from werkplaats.result import frame_differences
from werkplaats.synth.generate import generate
from werkplaats.synth.write import LoadedRegion, load_region, write_region

fr = import_module("werkplaats.usecases.fall_risk")  # NB: the module; uc.fall_risk is the template function

# Counts exact (rule 6 off) so that the tables compare exactly with the generator's data; the default
# rules' perturbation is tested separately (test_evaluation_under_the_default_rules).
EXACT = wp.DisclosureRules(counts="exact")
Z999 = 3.2905267314919255  # two-sided 99.9%
YEAR = 2024


def _run(r: LoadedRegion, plan: wp.LazyFrame, rules: wp.DisclosureRules = EXACT, **kw: object) -> pd.DataFrame:
    return wp.run_local(plan, r.tables, schemas=r.catalog, rules=rules, perturbation_key=7, **kw)  # type: ignore[arg-type]


def _clients(r: LoadedRegion) -> pd.DataFrame:
    """The model's rows computed in pandas from the generator's tables (the test's own oracle)."""
    c = r.tables["vvt/clienten"]
    end = pd.to_datetime(c["einddatum"])
    c = c[(pd.to_datetime(c["startdatum"]) <= "2024-12-31") & (end.isna() | (end >= "2024-01-01"))]
    gp = r.tables["huisartsen/patienten"][["bsn", "medicatie", "chronische_aandoeningen"]]
    m = c.merge(gp, on="bsn", how="left")
    # NB: on 31 December every birthday of the year has passed: age = year - birth year
    age = YEAR - pd.to_datetime(m["geboortedatum"]).dt.year
    return pd.DataFrame({
        "val": (m["valincidenten"] >= 1).to_numpy(),
        "huisarts": m["medicatie"].notna().to_numpy(),
        "leeftijd_per_10j_boven_80": ((age - 80) / 10).to_numpy(float),
        "polyfarmacie": (m["medicatie"] >= 5).to_numpy(float),
        "chronische_aandoeningen": m["chronische_aandoeningen"].to_numpy(float),
        "vrouw": (m["geslacht"] == "V").to_numpy(float),
        "verpleeghuiszorg": (m["zorgvorm"] == "verpleeghuiszorg").to_numpy(float),
    })  # fmt: skip


def _eta(d: pd.DataFrame, coefs: dict[str, float]) -> np.ndarray:
    return coefs["intercept"] + sum(coefs[t] * d[t].to_numpy(float) for t in fr.TERMS)


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted ½."""
    ranks = rankdata(score)
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@pytest.fixture(scope="module")
def fitted(region: LoadedRegion) -> pd.DataFrame:
    return _run(region, uc.fall_risk(YEAR))


def test_the_fit_covers_the_true_coefficients(region: LoadedRegion, fitted: pd.DataFrame) -> None:
    truth = region.truth["fall_model"]
    assert fitted["term"].tolist() == ["intercept", *fr.TERMS]
    assert not fitted["suppressed"].any() and fitted.attrs["converged"]
    # complete cases: the VVT clients of the year that have a GP record, no more, no fewer
    assert fitted.attrs["n"] == truth["clients_active_2024_with_gp"]
    true = np.array([truth["coefficients"][t] for t in fitted["term"]])
    est, se = fitted["estimate"].to_numpy(float), fitted["std_error"].to_numpy(float)
    # one seed: a 99.9% interval per coefficient, so this cannot flake (the 95% coverage is the slow test's)
    assert (np.abs(est - true) <= Z999 * se).all(), list(zip(fitted["term"], est, se, true, strict=True))
    assert np.allclose(fitted["ci_high"] - fitted["ci_low"], 2 * 1.959964 * se, rtol=1e-5)
    # every effect is detected (each true coefficient is at least 0.25)
    assert (fitted.loc[1:, "ci_low"] > 0).all()


def test_complete_cases_are_a_random_subset(region: LoadedRegion) -> None:
    """The complete-case fit is unbiased here: GP registration does not depend on falls or covariates."""
    d = _clients(region)
    assert d["huisarts"].mean() == pytest.approx(0.75, abs=0.04)
    with_gp, without = d[d["huisarts"]], d[~d["huisarts"]]
    p1, p0 = with_gp["val"].mean(), without["val"].mean()
    se = math.sqrt(p1 * (1 - p1) / len(with_gp) + p0 * (1 - p0) / len(without))
    assert abs(p1 - p0) < 3.5 * se
    for c in ("leeftijd_per_10j_boven_80", "vrouw", "verpleeghuiszorg"):
        a, b = with_gp[c], without[c]
        assert abs(a.mean() - b.mean()) < 3.5 * math.sqrt(a.var() / len(a) + b.var() / len(b)), c


def test_tiers_count_the_clients_and_are_calibrated(region: LoadedRegion, fitted: pd.DataFrame) -> None:
    coefs = fr.coefficients_of(fitted)
    tiers = _run(region, fr.fall_risk_tiers(YEAR, fitted))
    d = _clients(region)
    scored = d[d["huisarts"]]
    eta = _eta(scored, coefs)
    lo, hi = fr.tier_cut_points()
    assert (lo, hi) == (pytest.approx(math.log(0.3 / 0.7), abs=1e-6), 0.0)
    own = np.where(eta <= lo, "laag", np.where(eta <= hi, "midden", "hoog"))
    shown = tiers.dropna(subset=["risiconiveau"]).set_index("risiconiveau")
    for tier in fr.TIER_LABELS:
        m = own == tier
        assert shown.loc[tier, "clients"] == m.sum(), tier
        assert shown.loc[tier, "fallers"] == scored["val"].to_numpy()[m].sum(), tier
        exact_risk = float(np.mean(1 / (1 + np.exp(-eta[m]))))
        assert abs(shown.loc[tier, "risico_gem"] - exact_risk) <= fr.RISK_MAX_ERROR + 1e-6, tier
        assert m.sum() >= 200, tier  # the thresholds split the region's clients into three real tiers
    assert shown.loc[fr.NO_SCORE, "clients"] == (~d["huisarts"]).sum()
    cal = uc.fall_risk_evaluation(tiers, _run(region, fr.fall_risk_auc_table(YEAR, fitted)))["calibration"]
    assert cal["risiconiveau"].tolist() == list(fr.TIER_LABELS)
    # a well-specified model is calibrated: each tier's observed rate within 3.3 SE of its mean risk
    se = np.sqrt(cal["verwacht"] * (1 - cal["verwacht"]) / cal["clients"].astype(float))
    assert (np.abs(cal["waargenomen"] - cal["verwacht"]) < Z999 * se).all(), cal
    assert cal["verwacht"].is_monotonic_increasing and cal["waargenomen"].is_monotonic_increasing


def test_auc_from_the_binned_table(region: LoadedRegion, fitted: pd.DataFrame) -> None:
    coefs = fr.coefficients_of(fitted)
    d = _clients(region)
    scored = d[d["huisarts"]]
    y = scored["val"].to_numpy(bool)
    auc_fit = _auc(_eta(scored, coefs), y)  # the unbinned AUC of the released model, on the same rows
    auc_true = _auc(_eta(scored, region.truth["fall_model"]["coefficients"]), y)  # the generator's own model
    # k = 1: no cell withheld, so the grouped AUC is exact and the unbinned one lies within its tie bounds
    table = _run(region, fr.fall_risk_auc_table(YEAR, fitted), rules=wp.DisclosureRules.cells_only(),
                 min_group_size=1)  # fmt: skip
    a = fr.auc_from_table(table)
    bins = pd.cut(_eta(scored, coefs), [-np.inf, *fr.ETA_BINS, np.inf], labels=False)
    assert a["auc"] == pytest.approx(_auc(bins, y), abs=1e-12)
    assert a["withheld_cells"] == 0 and a["fallers"] == y.sum()
    assert a["auc_low"] <= auc_fit <= a["auc_high"]
    assert a["auc"] < auc_fit  # the tie bias: the model orders clients within a bin better than chance
    # plausible: the released model discriminates as well as the true one, within sampling error
    assert 0.6 < auc_true < 0.8 and abs(auc_fit - auc_true) < 0.02
    # under the cell rules (k = 10, exact counts) the default bins keep every cell at this size: the same AUC
    ruled = fr.auc_from_table(_run(region, fr.fall_risk_auc_table(YEAR, fitted)))
    assert ruled == a
    bins_cal = fr.calibration_by_bin(table)
    assert bins_cal["volledig"].all() and len(bins_cal) == len(fr.ETA_BINS) + 1
    assert bins_cal["clients"].sum() == len(scored) and bins_cal["fallers"].sum() == y.sum()
    # narrower bins: less tie bias, but cells under k are withheld, and their clients are missing from the AUC
    fine = [round(-2 + 0.1 * i, 1) for i in range(41)]
    exact_fine = fr.auc_from_table(_run(region, fr.fall_risk_auc_table(YEAR, fitted, fine),
                                        rules=wp.DisclosureRules.cells_only(), min_group_size=1))  # fmt: skip
    ruled_fine = fr.auc_from_table(_run(region, fr.fall_risk_auc_table(YEAR, fitted, fine)))
    assert exact_fine["tie_share"] < a["tie_share"] / 2 and abs(exact_fine["auc"] - auc_fit) < abs(a["auc"] - auc_fit)
    assert ruled_fine["withheld_cells"] > 0 and ruled_fine["fallers"] + ruled_fine["non_fallers"] < len(scored)


def test_calibration_by_risk_decile(region: LoadedRegion, fitted: pd.DataFrame) -> None:
    """The released deciles of eta as bins: ten tenths of the scored clients, calibrated (Hosmer-Lemeshow)."""
    coefs = fr.coefficients_of(fitted)
    deciles = _run(region, uc.fall_risk_deciles(YEAR, fitted))
    bins = uc.decile_bins(deciles)
    d = _clients(region)
    eta = _eta(d[d["huisarts"]], coefs)
    assert np.allclose(bins, np.quantile(eta, np.arange(1, 10) / 10), atol=1e-3)  # DuckDB's quantile_cont
    cal = uc.calibration_by_bin(_run(region, uc.fall_risk_auc_table(YEAR, fitted, bins)))
    assert cal["volledig"].all() and len(cal) == 10
    share = cal["clients"] / cal["clients"].sum()
    assert share.between(0.07, 0.13).all(), share  # ties in eta make the tenths unequal
    assert cal["waargenomen"].iloc[-1] > 2.5 * cal["waargenomen"].iloc[0]
    hl = uc.hosmer_lemeshow(cal)
    assert hl["df"] == 8 and hl["p_value"] > 0.001, hl  # NB: the model is the true model's form
    # a miscalibrated model is caught: the same tables with every predicted risk halved
    off = cal.assign(verwacht=cal["verwacht"] / 2)
    assert uc.hosmer_lemeshow(off)["p_value"] < 1e-6
    with pytest.raises(PlanError, match="withheld"):
        uc.decile_bins(deciles.assign(q50=pd.NA))


def test_evaluation_under_the_default_rules(region: LoadedRegion, fitted: pd.DataFrame) -> None:
    """Every workspace rule on (counts perturbed): the figures stay close to the exact ones."""
    rules = wp.DisclosureRules()
    tiers = _run(region, fr.fall_risk_tiers(YEAR, fitted), rules=rules)
    table = _run(region, fr.fall_risk_auc_table(YEAR, fitted), rules=rules)
    exact = _run(region, fr.fall_risk_tiers(YEAR, fitted)).set_index("risiconiveau")
    ev = fr.fall_risk_evaluation(tiers, table)
    d_max = rules.ptable.D
    cal = ev["calibration"].set_index("risiconiveau")
    for tier in fr.TIER_LABELS:
        assert abs(cal.loc[tier, "clients"] - exact.loc[tier, "clients"]) <= d_max
        assert abs(cal.loc[tier, "fallers"] - exact.loc[tier, "fallers"]) <= d_max
    exact_auc = fr.auc_from_table(_run(region, fr.fall_risk_auc_table(YEAR, fitted)))["auc"]
    assert abs(ev["auc"]["auc"] - exact_auc) < 0.01


def test_a_tier_of_few_clients_is_withheld(region: LoadedRegion) -> None:
    """An analyst who picks coefficients that put a handful of clients in a tier learns nothing about them."""
    coefs = {"intercept": -3.0, **dict.fromkeys(fr.TERMS, 0.0), "chronische_aandoeningen": 0.55}
    d = _clients(region)
    eta = _eta(d[d["huisarts"]], coefs)
    few = int((eta > 0).sum())
    assert 1 <= few < 10  # NB: the clients with 6 chronic conditions (9 at seed 1)
    tiers = _run(region, fr.fall_risk_tiers(YEAR, coefs), rules=wp.DisclosureRules())
    hoog = tiers[tiers["risiconiveau"] == "hoog"]
    assert hoog["clients"].isna().all() and hoog["fallers"].isna().all() and hoog["risico_gem"].isna().all()


def test_differencing_two_tier_tables_is_withheld(region: LoadedRegion, fitted: pd.DataFrame) -> None:
    """Rule 9: a second tier table whose cut point moves a handful of clients is withheld, not released."""
    coefs = fr.coefficients_of(fitted)
    d = _clients(region)
    eta = np.sort(_eta(d[d["huisarts"]], coefs))
    above = eta[eta > 0]
    moved = 3  # a threshold between the 3rd and 4th lowest eta above 0 moves 3 clients from hoog to midden
    cut = float((above[moved - 1] + above[moved]) / 2)
    assert above[moved] - above[moved - 1] > 2e-6  # NB: tier_cut_points rounds to 6 decimals
    p = 1 / (1 + math.exp(-cut))
    reg = Register()
    first = _run(region, fr.fall_risk_tiers(YEAR, coefs), register=reg)
    assert not first.dropna(subset=["risiconiveau"])["suppressed"].any() and len(reg) == 1
    second = _run(region, fr.fall_risk_tiers(YEAR, coefs, thresholds=(0.3, p)), register=reg)
    assert second["suppressed"].all() and second["clients"].isna().all()
    assert "earlier released result" in str(second["reason"].iloc[0])
    # the same table again differs by 0 clients, and one that moves at least k clients differs by more: released
    wide = 1 / (1 + math.exp(-float(above[30])))
    assert (
        not _run(region, fr.fall_risk_tiers(YEAR, coefs), register=reg)
        .dropna(subset=["risiconiveau"])["suppressed"]
        .any()
    )
    third = _run(region, fr.fall_risk_tiers(YEAR, coefs, thresholds=(0.3, wide)), register=reg)
    assert not third.dropna(subset=["risiconiveau"])["suppressed"].any()


def test_released_coefficients_are_checked() -> None:
    with pytest.raises(PlanError, match="verpleeghuiszorg"):
        fr.fall_risk_tiers(YEAR, {"intercept": 0.0, **dict.fromkeys(fr.TERMS[:-1], 0.1)})
    withheld = pd.DataFrame({"term": ["intercept", *fr.TERMS], "estimate": [np.nan] * 6})
    with pytest.raises(PlanError, match="withheld"):
        fr.fall_risk_auc_table(YEAR, withheld)
    with pytest.raises(PlanError, match="increasing"):
        fr.fall_risk_auc_table(YEAR, dict.fromkeys(("intercept", *fr.TERMS), 0.0), bins=[1.0, 0.0])
    with pytest.raises(PlanError, match="thresholds"):
        fr.tier_cut_points((0.5, 0.3))
    with pytest.raises(PlanError, match="faller"):
        fr.auc_from_table(pd.DataFrame({"eta_bin": ["a"], "val": [True], "clients": [12]}))


def test_the_grouped_auc_by_hand() -> None:
    # bins low→high; fallers 1, 2, 3 and non-fallers 3, 2, 1: concordant 2·3 + 3·5 = 21, ties 3 + 4 + 3 = 10
    t = pd.DataFrame({"eta_bin": ["b00", "b01", "b02"] * 2, "val": [True] * 3 + [False] * 3,
                      "clients": [1, 2, 3, 3, 2, 1]})  # fmt: skip
    a = fr.auc_from_table(t)
    assert a["auc"] == pytest.approx((21 + 5) / 36) and a["tie_share"] == pytest.approx(10 / 36)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> LoadedRegion:
    out: Path = tmp_path_factory.mktemp("fall_small")
    write_region(generate(3, 20_000), out)
    return load_region(out)


def _mpc_equals_plain(r: LoadedRegion, cluster: LocalCluster) -> pd.DataFrame:
    rules = wp.DisclosureRules()  # NB: a workspace's rules: a model's summary passes them as it would there
    plain = _run(r, uc.fall_risk(YEAR), rules=rules)
    mpc = _run(r, uc.fall_risk(YEAR), rules=rules, engine="mpc", cluster=cluster)
    assert not plain["suppressed"].any() and not mpc["suppressed"].any()
    assert mpc["term"].tolist() == plain["term"].tolist()
    for c in ("estimate", "std_error"):
        assert np.allclose(mpc[c], plain[c], rtol=1e-3, atol=1e-3), c
    assert mpc.attrs["n"] == plain.attrs["n"] and mpc.attrs["converged"]
    return plain


@pytest.mark.mpc
def test_mpc_equals_plain_on_a_small_region(small: LoadedRegion, cluster: LocalCluster) -> None:
    plain = _mpc_equals_plain(small, cluster)
    assert plain.attrs["n"] >= 100


@pytest.mark.slow
@pytest.mark.mpc
def test_evaluation_mpc_equals_plain_on_a_small_region(small: LoadedRegion, cluster: LocalCluster) -> None:
    """The tier and AUC plans (eta, the interpolated risk, cut) under MPC: every cell as on plain (k = 1)."""
    # NB: k = 1 and rule 8's groups per rows off, so that the small region's cells are compared, not withheld
    rules = wp.DisclosureRules(counts="exact", cells_per_source=False)
    fit = _run(small, uc.fall_risk(YEAR), rules=rules)
    for plan in (fr.fall_risk_tiers(YEAR, fit), fr.fall_risk_auc_table(YEAR, fit)):
        plain = _run(small, plan, rules=rules, min_group_size=1)
        mpc = _run(small, plan, rules=rules, min_group_size=1, engine="mpc", cluster=cluster)
        assert not frame_differences(mpc, plain)
        assert (~plain["suppressed"]).sum() >= 4


@pytest.mark.slow
@pytest.mark.mpc
def test_mpc_equals_plain_at_200k(region: LoadedRegion, cluster: LocalCluster) -> None:
    _mpc_equals_plain(region, cluster)


@pytest.mark.slow
def test_95_percent_intervals_cover_the_truth_over_ten_seeds(tmp_path: Path) -> None:
    covered, total = 0, 0
    for seed in range(1, 11):
        out = tmp_path / f"s{seed}"
        write_region(generate(seed, 200_000), out)
        r = load_region(out)
        fit = _run(r, uc.fall_risk(YEAR))
        true = np.array([r.truth["fall_model"]["coefficients"][t] for t in fit["term"]])
        covered += int(((fit["ci_low"] <= true) & (true <= fit["ci_high"])).sum())
        total += len(true)
    assert covered / total >= 0.90, (covered, total)


def _own_standardised(r: LoadedRegion, standard: dict[str, float]) -> pd.Series:
    """Directly standardised val_letsel admissions per 100,000 per gemeente, computed in pandas."""
    res = r.tables["gemeente/inwoners"]
    born = pd.to_datetime(res["geboortedatum"])
    age = YEAR - born.dt.year - ((born.dt.month * 100 + born.dt.day) > 101).astype(int)
    band = pd.cut(age, [-np.inf, *fr.AGE_BAND_BREAKS, np.inf], labels=list(fr.AGE_BAND_LABELS))
    adm = r.tables["ziekenhuis/opnamen"]
    when = pd.to_datetime(adm["opnamedatum"])
    adm = adm[(adm["diagnosegroep"] == "val_letsel") & (when.dt.year == YEAR)]
    events = res["bsn"].map(adm.groupby("bsn").size()).fillna(0)
    t = pd.DataFrame({"g": res["gemeente"], "a": band, "d": events}).groupby(["g", "a"], observed=True)["d"]
    crude = (t.sum() / t.size()).rename("c").reset_index()
    total = sum(standard.values())
    crude["w"] = crude["a"].map(lambda b: standard[str(b)] / total).astype(float)
    return (crude["c"] * crude["w"]).groupby(crude["g"]).sum() * 100_000


def test_fall_admissions_standardised_per_gemeente(region: LoadedRegion) -> None:
    esp = wp.standard_population("esp2013")
    structure = _run(region, fr.region_age_structure(YEAR))
    own = fr.standard_from(structure)
    assert sum(own.values()) == region.truth["persons"]  # exact counts: every resident in one band
    for standard in (esp, own):
        out = _run(region, uc.fall_admissions_by_gemeente(YEAR, standard)).dropna(subset=["gemeente"])
        assert not out["suppressed"].any() and len(out) == 12
        expected = _own_standardised(region, standard)
        got = out.set_index("gemeente")["rate"].astype(float)
        assert np.allclose(got, expected.reindex(got.index), rtol=1e-9), (got, expected)
        assert ((out["ci_low"] < out["rate"]) & (out["rate"] < out["ci_high"])).all()
    # no gemeente effect is injected: the region's crude rate lies within (nearly) every gemeente's interval
    events = region.tables["ziekenhuis/opnamen"]
    n_adm = ((events["diagnosegroep"] == "val_letsel") & (pd.to_datetime(events["opnamedatum"]).dt.year == YEAR)).sum()
    crude = n_adm / region.truth["persons"] * 100_000
    inside = ((out["ci_low"] <= crude) & (crude <= out["ci_high"])).sum()
    assert inside >= 11, out
    # the standard must name exactly the plan's age bands; a released structure with a withheld band is refused
    with pytest.raises(PlanError):
        _run(region, uc.fall_admissions_by_gemeente(YEAR, {"0-64": 1.0, "65+": 1.0}))
    with pytest.raises(PlanError, match="90\\+"):
        fr.standard_from(structure[structure["leeftijdsband"] != "90+"])
