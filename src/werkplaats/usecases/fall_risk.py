"""Fall risk in elderly care (GERDA-style): a logistic model of falls of VVT clients, its tiers and evaluation.

Three organisations contribute: the VVT organisation (its clients, care type and registered fall
incidents), the GP groups (chronic conditions and medication) and the hospital (fall-related
admissions, for the gemeente comparison). The steps, each a plan that a steward approves:

1. ``fall_risk(year)``: a logistic regression, inside the MPC, of ``val`` (one or more registered
   falls in the year) on age, polypharmacy, chronic conditions, sex and care type, over the VVT
   clients whose care ran in the year. Only the model summary is released.
2. ``fall_risk_tiers(year, coefficients)`` and ``fall_risk_auc_table(year, coefficients)``: the
   RELEASED coefficients go back in as public literals; the linear predictor η is computed per
   client inside the MPC and only counts per risk tier and per η-bin × outcome leave it, under the
   cell rules. ``fall_risk_evaluation`` reads those two released tables: calibration by tier
   (observed rate against mean predicted risk) and the AUC of the binned table.
3. ``fall_admissions_by_gemeente(year, standard)``: age-standardised fall-related hospital admissions
   (``val_letsel``) per gemeente, over the residents of the population register.

Covariates, as the generator defines them (truth.json ``fall_model``):

- ``leeftijd_per_10j_boven_80`` = (age in whole years on the peildatum 31 December of ``year`` − 80) / 10;
- ``polyfarmacie`` = GP ``medicatie`` ≥ 5; ``chronische_aandoeningen`` = the GP's count of chronic conditions;
- ``vrouw`` = ``geslacht == "V"``; ``verpleeghuiszorg`` = ``zorgvorm == "verpleeghuiszorg"`` (reference:
  wijkverpleging and kortdurend verblijf together).

Clients without a GP record (the GP groups cover about 75% of residents) have no medication or
chronic conditions: the model is fitted on the complete cases (the GLM leaves out rows with a
missing value, statsmodels' ``missing="drop"``). That is unbiased when whether a client has a GP
record does not depend on the outcome given the covariates; in the reference region GP registration
is drawn independently of everything else (generate.py, GP_COVERAGE), so only precision is lost.
On real data, check it: the tier table's ``onbekend`` row gives the fall rate of the clients who
cannot be scored, to compare with the others.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import PlanError
from ..expr import Expr, col, count, lit, when
from ..frame import LazyFrame, glm, scan
from ..plan.standards import ESP2013_BANDS, standard_population

TERMS = ("leeftijd_per_10j_boven_80", "polyfarmacie", "chronische_aandoeningen", "vrouw", "verpleeghuiszorg")
AGE_CENTRE = 80  # years; age is centred here and counted per 10 years (as the generator does)
AGE_SCALE = 10
POLYFARMACIE_MIN = 5  # distinct medications in chronic use

# Risk tiers by predicted probability of one or more falls in the year: laag ≤ 30% < midden ≤ 50% < hoog.
# The cut points on η are their logits, so a tier is a range of the linear predictor.
TIER_THRESHOLDS = (0.30, 0.50)
TIER_LABELS = ("laag", "midden", "hoog")
NO_SCORE = "onbekend"  # no GP record: medication and chronic conditions unknown, so no score
_BOOL_TERMS = ("polyfarmacie", "vrouw", "verpleeghuiszorg")

# η-bins of the AUC table: width 0.25 from -1.5 to 1, open at both ends (12 bins). Narrower bins
# shrink the tie bias but leave more cells under k (whose clients the AUC then misses).
ETA_BINS = tuple(round(-1.5 + 0.25 * i, 2) for i in range(11))

# The mean predicted risk per cell uses the logistic function interpolated linearly between knots
# 0.5 apart on [-6, 6] (constant beyond): within 0.003 of 1 / (1 + exp(-η)) everywhere (RISK_MAX_ERROR).
RISK_KNOTS = tuple(-6.0 + 0.5 * i for i in range(25))
RISK_MAX_ERROR = 0.003

# Age bands of the standardised admission rates: ESP2013's 5-year bands, 0-4 … 85-89 and 90+.
AGE_BAND_BREAKS = tuple(range(4, 90, 5))
AGE_BAND_LABELS = ESP2013_BANDS


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def tier_cut_points(thresholds: Sequence[float] = TIER_THRESHOLDS) -> tuple[float, ...]:
    """Return the cut points on η of the risk tiers: the logits of the probability thresholds."""
    ts = tuple(float(t) for t in thresholds)
    if len(ts) != len(TIER_LABELS) - 1 or not all(0 < t < 1 for t in ts) or list(ts) != sorted(set(ts)):
        msg = f"fall risk tiers: thresholds must be {len(TIER_LABELS) - 1} increasing probabilities in (0, 1)"
        raise PlanError(msg)
    return tuple(round(_logit(t), 6) for t in ts)


def fall_risk_data(year: int = 2024) -> LazyFrame:
    """Return the model's rows: VVT clients whose care ran in ``year``, with the outcome and covariates.

    Columns: ``val`` (bool, ``valincidenten >= 1``) and the covariates of TERMS (the GP's missing
    for a client without a GP record).
    """
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    gp = scan("huisartsen/patienten").select(
        "bsn", "chronische_aandoeningen", polyfarmacie=col("medicatie") >= POLYFARMACIE_MIN
    )
    return (
        scan("vvt/clienten")
        .filter((col("startdatum") <= last) & (col("einddatum").is_null() | (col("einddatum") >= first)))
        .join(gp, on="bsn", how="left")
        .with_columns(
            val=col("valincidenten") >= 1,
            leeftijd_per_10j_boven_80=(col("geboortedatum").age_at(last) - AGE_CENTRE) / AGE_SCALE,
            vrouw=col("geslacht") == "V",
            verpleeghuiszorg=col("zorgvorm") == "verpleeghuiszorg",
        )
    )


def fall_risk(year: int = 2024) -> LazyFrame:
    """Return the plan: a logistic regression of falls in ``year`` on the five covariates (TERMS).

    Released: one row per term (intercept first) with estimate, std_error, statistic, p_value,
    ci_low, ci_high; exp(estimate) is the odds ratio. Complete cases only (see the module docstring).
    """
    return fall_risk_data(year).fit(glm(y="val", x=list(TERMS), family="binomial"))


def coefficients_of(fit: pd.DataFrame | Mapping[str, float]) -> dict[str, float]:
    """Return the released coefficients as {term: estimate} (intercept and every term of TERMS).

    ``fit`` is the released model summary (a DataFrame with ``term`` and ``estimate``) or a mapping.
    """
    if isinstance(fit, pd.DataFrame):
        if "term" not in fit or "estimate" not in fit:
            msg = "fall risk: the coefficients must be the released fit (columns term, estimate) or a mapping"
            raise PlanError(msg)
        coefs = dict(zip(fit["term"].astype(str), fit["estimate"], strict=True))
    else:
        coefs = dict(fit)
    out = {}
    for t in ("intercept", *TERMS):
        v = coefs.get(t)
        if v is None or not isinstance(v, int | float | np.floating | np.integer) or not math.isfinite(float(v)):
            msg = f"fall risk: a finite coefficient for {t!r} is needed (was the fit withheld?)"
            raise PlanError(msg)
        out[t] = float(v)
    return out


def linear_predictor(coefficients: pd.DataFrame | Mapping[str, float]) -> Expr:
    """Return η = intercept + Σ coefficient × covariate, with the coefficients as public literals.

    η is missing where a covariate is (a client without a GP record): such a client has no score,
    as the fit leaves it out.
    """
    c = coefficients_of(coefficients)
    eta: Expr = lit(c["intercept"])
    for t in TERMS:
        x = col(t)
        eta = eta + lit(c[t]) * (when(x).then(1.0).when(~x).then(0.0).otherwise(lit(None)) if t in _BOOL_TERMS else x)
    return eta


def predicted_risk(eta: Expr) -> Expr:
    """Return the logistic function of η, interpolated linearly between RISK_KNOTS (error ≤ RISK_MAX_ERROR)."""
    ks = RISK_KNOTS
    branch = when(eta.is_null()).then(lit(None)).when(eta <= ks[0]).then(_sigmoid(ks[0]))
    for lo, hi in pairwise(ks):
        slope = (_sigmoid(hi) - _sigmoid(lo)) / (hi - lo)
        branch = branch.when(eta <= hi).then(lit(round(_sigmoid(lo) - slope * lo, 10)) + lit(round(slope, 10)) * eta)
    return branch.otherwise(_sigmoid(ks[-1]))


def _scored(year: int, coefficients: pd.DataFrame | Mapping[str, float]) -> LazyFrame:
    eta = linear_predictor(coefficients)
    return fall_risk_data(year).with_columns(eta=eta).with_columns(risico=predicted_risk(col("eta")))


def fall_risk_tiers(
    year: int,
    coefficients: pd.DataFrame | Mapping[str, float],
    *,
    thresholds: Sequence[float] = TIER_THRESHOLDS,
) -> LazyFrame:
    """Return the plan: clients, fallers and mean predicted risk per risk tier, from released coefficients.

    Tiers: laag / midden / hoog by η against ``tier_cut_points(thresholds)`` (a client exactly on a
    cut point goes to the lower tier); ``onbekend`` for clients without a score (no GP record).
    Per tier: ``clients``, ``fallers`` (one or more falls) and ``risico_gem``, the mean predicted risk
    (the expected side of calibration: the mean over the tier's clients of the logistic function of
    η, within RISK_MAX_ERROR).
    """
    cuts = tier_cut_points(thresholds)
    eta = col("eta")
    tier = when(eta.is_null()).then(lit(NO_SCORE)).otherwise(eta.cut(list(cuts), labels=list(TIER_LABELS)))
    return (
        _scored(year, coefficients)
        .with_columns(risiconiveau=tier)
        .group_by("risiconiveau")
        .agg(clients=count(), fallers=col("val").sum(), risico_gem=col("risico").mean())
    )


def fall_risk_auc_table(
    year: int,
    coefficients: pd.DataFrame | Mapping[str, float],
    bins: Sequence[float] = ETA_BINS,
) -> LazyFrame:
    """Return the plan: a cross-table of η-bins × outcome over the scored clients (those with a GP record).

    Per cell (``eta_bin``, ``val``): ``clients`` and ``risico_gem`` (mean predicted risk). ``bins``
    are the public cut points on η; a bin is ``(lower, upper]``.
    """
    bs = [float(b) for b in bins]
    if not bs or bs != sorted(set(bs)):
        msg = "fall_risk_auc_table: bins must be increasing cut points on the linear predictor"
        raise PlanError(msg)
    return (
        _scored(year, coefficients)
        .filter(col("eta").is_not_null())
        .with_columns(eta_bin=col("eta").cut(bs, labels=_bin_labels(bs)))
        .group_by("eta_bin", "val")
        .agg(clients=count(), risico_gem=col("risico").mean())
    )


def fall_risk_deciles(year: int, coefficients: pd.DataFrame | Mapping[str, float]) -> LazyFrame:
    """Return the plan: the deciles of η over the scored clients (one row: q10 … q90), for decile bins.

    Pass ``decile_bins(released)`` as the ``bins`` of ``fall_risk_auc_table`` to read calibration by
    risk decile (``calibration_by_bin``) and the AUC of a decile table. The deciles are statistics
    under rule 4 (each needs k clients on either side); ties in η can make bins unequal.
    """
    return (
        _scored(year, coefficients)
        .filter(col("eta").is_not_null())
        .agg(**{f"q{10 * i}": col("eta").quantile(i / 10) for i in range(1, 10)})
    )


def decile_bins(released: pd.DataFrame, digits: int = 3) -> list[float]:
    """Return the released deciles of η as increasing cut points (rounded to ``digits``; equal ones merged).

    Refuses (PlanError) a released row whose deciles are withheld.
    """
    cols = [f"q{10 * i}" for i in range(1, 10)]
    row = released.iloc[0] if len(released) else None
    if row is None or any(c not in released or pd.isna(row[c]) for c in cols):
        msg = "decile_bins: the deciles of the linear predictor were withheld"
        raise PlanError(msg)
    return sorted({round(float(row[c]), digits) for c in cols})


def _bin_labels(bs: Sequence[float]) -> list[str]:
    """Labels that sort in η order: 'b00 (-inf, -1.5]', 'b01 (-1.5, -1.25]', …"""
    edges = ["-inf", *(f"{b:g}" for b in bs), "inf"]
    return [f"b{i:02d} ({edges[i]}, {edges[i + 1]}]" for i in range(len(bs) + 1)]


# --- reading the released tables -----------------------------------------------------------------


def calibration_by_tier(tiers: pd.DataFrame) -> pd.DataFrame:
    """Calibration from the released tier table: observed fall rate against mean predicted risk per tier.

    Returns per scored tier: clients, fallers, ``waargenomen`` (fallers / clients) with a 95% Wilson
    interval, ``verwacht`` (risico_gem), ``o_e`` (observed / expected). A withheld tier stays with
    missing values. The ``onbekend`` row (no score) is left out.
    """
    t = tiers[tiers["risiconiveau"].isin(TIER_LABELS)].copy()
    t["_o"] = t["risiconiveau"].map({lab: i for i, lab in enumerate(TIER_LABELS)})
    t = t.sort_values("_o").drop(columns="_o").reset_index(drop=True)
    n = t["clients"].astype(float)
    k = t["fallers"].astype(float)
    p = k / n
    z = 1.959963984540054
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    out = pd.DataFrame({
        "risiconiveau": t["risiconiveau"], "clients": t["clients"], "fallers": t["fallers"],
        "waargenomen": p, "ci_low": centre - half, "ci_high": centre + half,
        "verwacht": t["risico_gem"].astype(float),
    })  # fmt: skip
    out["o_e"] = out["waargenomen"] / out["verwacht"]
    return out


def auc_from_table(table: pd.DataFrame) -> dict[str, float]:
    """The AUC of the released η-bin × outcome table (a grouped AUC), with its tie bounds.

    Pairs of a faller and a non-faller in different bins count 1 when the faller's bin is higher,
    0 when lower; pairs in the same bin count ½ (a tie). The AUC of the unbinned η differs from
    this by (c − ½)·W, where W (``tie_share``) is the share of pairs within a bin and c their own
    concordance; so it lies in [auc − W/2, auc + W/2] (``auc_low``, ``auc_high``), and since a
    model orders clients within a bin better than chance (c > ½), the grouped AUC is biased down.
    Withheld cells (below k, or by secondary suppression) are left out, with their number in
    ``withheld_cells``; their clients are missing from the pairs, which biases the AUC (down when,
    as usual, they are the extreme bins' minority outcome). Rows with a missing key are not cells of
    the table (the plan scores only clients with a GP record, so they are empty). Counts perturbed
    by rule 6 move the AUC a little; exact counts without withheld cells give the exact grouped AUC.
    """
    keyed = table[table["eta_bin"].notna() & table["val"].notna()]
    shown = keyed[keyed["clients"].notna()]
    withheld = len(keyed) - len(shown)
    pos = shown[shown["val"].astype(bool)].groupby("eta_bin")["clients"].sum()
    neg = shown[~shown["val"].astype(bool)].groupby("eta_bin")["clients"].sum()
    bins = sorted(set(pos.index) | set(neg.index))
    n1 = pos.reindex(bins, fill_value=0).to_numpy(float)
    n0 = neg.reindex(bins, fill_value=0).to_numpy(float)
    pairs = n1.sum() * n0.sum()
    if pairs == 0:
        msg = "auc_from_table: the released table has no faller or no non-faller"
        raise PlanError(msg)
    below = np.concatenate([[0.0], np.cumsum(n0)[:-1]])  # non-fallers in lower bins
    concordant = float((n1 * below).sum())
    ties = float((n1 * n0).sum())
    auc = (concordant + 0.5 * ties) / pairs
    w = ties / pairs
    return {"auc": auc, "auc_low": auc - w / 2, "auc_high": auc + w / 2, "tie_share": w,
            "fallers": float(n1.sum()), "non_fallers": float(n0.sum()), "withheld_cells": float(withheld)}  # fmt: skip


def calibration_by_bin(table: pd.DataFrame) -> pd.DataFrame:
    """Calibration per η-bin from the released AUC table: observed rate against mean predicted risk.

    A bin is read only when both its cells (fallers and non-fallers) and their mean risks are
    released; otherwise its observed and expected values stay missing (``volledig`` False).
    """
    t = table[table["eta_bin"].notna() & table["val"].notna()]
    rows = []
    for b, g in t.groupby("eta_bin", sort=True):
        cells = {bool(v): r for v, r in zip(g["val"], g.itertuples(index=False), strict=True)}
        full = set(cells) == {False, True} and all(
            pd.notna(r.clients) and pd.notna(r.risico_gem) for r in cells.values()
        )
        if full:
            n1, n0 = float(cells[True].clients), float(cells[False].clients)
            e = (n1 * float(cells[True].risico_gem) + n0 * float(cells[False].risico_gem)) / (n1 + n0)
            rows.append({"eta_bin": b, "clients": n1 + n0, "fallers": n1, "waargenomen": n1 / (n1 + n0),
                         "verwacht": e, "volledig": True})  # fmt: skip
        else:
            rows.append({"eta_bin": b, "clients": np.nan, "fallers": np.nan, "waargenomen": np.nan,
                         "verwacht": np.nan, "volledig": False})  # fmt: skip
    return pd.DataFrame(rows, columns=["eta_bin", "clients", "fallers", "waargenomen", "verwacht", "volledig"])


def hosmer_lemeshow(calibration: pd.DataFrame) -> dict[str, float]:
    """The Hosmer–Lemeshow test over the read bins of ``calibration_by_bin`` (e.g. risk deciles).

    statistic = Σ_g (O_g − E_g)² / (E_g (1 − E_g / n_g)), with O_g the fallers, E_g = n_g × the
    mean predicted risk; df = G − 2 over the G bins read (``volledig``). A small p-value says the
    predictions are off somewhere; on the fitting data it is optimistic (in-sample).
    """
    full = calibration[calibration["volledig"].astype(bool)]
    n = full["clients"].to_numpy(float)
    observed = full["fallers"].to_numpy(float)
    expected = n * full["verwacht"].to_numpy(float)
    if len(full) < 3 or (expected <= 0).any() or (expected >= n).any():
        msg = "hosmer_lemeshow: needs at least 3 read bins with expected counts strictly between 0 and the bin size"
        raise PlanError(msg)
    from scipy.stats import chi2  # NB: imported when used, as werkplaats.stats does (scipy.stats loads slowly)

    stat = float((((observed - expected) ** 2) / (expected * (1 - expected / n))).sum())
    df = len(full) - 2
    return {"statistic": stat, "df": float(df), "p_value": float(chi2.sf(stat, df))}


def fall_risk_evaluation(tiers: pd.DataFrame, auc_table: pd.DataFrame) -> dict[str, Any]:
    """Read the two released evaluation tables: ``calibration`` by tier, ``auc`` and ``calibration_bins``."""
    return {
        "calibration": calibration_by_tier(tiers),
        "auc": auc_from_table(auc_table),
        "calibration_bins": calibration_by_bin(auc_table),
    }


# --- the gemeente comparison -------------------------------------------------------------------


def fall_admission_rows(year: int = 2024) -> LazyFrame:
    """Return one row per resident: gemeente, 5-year age band on 1 January of ``year``, fall admissions in the year."""
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    adm = (
        scan("ziekenhuis/opnamen")
        .filter((col("diagnosegroep") == "val_letsel") & col("opnamedatum").is_between(first, last))
        .group_by("bsn")
        .agg(opnamen=count())
    )
    return (
        scan("gemeente/inwoners")
        .select("bsn", "gemeente", "geboortedatum")
        .join(adm, on="bsn", how="left")
        .with_columns(
            leeftijdsband=col("geboortedatum").age_at(first).cut(list(AGE_BAND_BREAKS), labels=list(AGE_BAND_LABELS)),
            val_opnamen=col("opnamen").fill_null(0),
        )
    )


def region_age_structure(year: int = 2024) -> LazyFrame:
    """Return the plan: the region's residents per 5-year age band (the region's own standard population)."""
    return fall_admission_rows(year).group_by("leeftijdsband").agg(inwoners=count())


def standard_from(released: pd.DataFrame) -> dict[str, float]:
    """Return a standard population {age band: persons} from the released ``region_age_structure`` table.

    Refuses (PlanError) a table in which a band is withheld: a standard needs every band.
    """
    shown = released[released["leeftijdsband"].notna()].set_index("leeftijdsband")["inwoners"]
    missing = [b for b in AGE_BAND_LABELS if b not in shown.index or pd.isna(shown[b]) or float(shown[b]) <= 0]
    if missing:
        msg = f"standard_from: the released age structure lacks bands {missing} (withheld or empty)"
        raise PlanError(msg)
    return {b: float(shown[b]) for b in AGE_BAND_LABELS}


def fall_admissions_by_gemeente(year: int = 2024, standard: Any = "esp2013") -> LazyFrame:
    """Return the plan: directly age-standardised fall-related admissions (val_letsel) per 100,000 per gemeente.

    ``standard`` maps each age band of AGE_BAND_LABELS (ESP2013's: 0-4 … 85-89, 90+; age on 1 January)
    to its standard population: "esp2013" (the European Standard Population 2013), or the region's own
    (``standard_from`` of the released ``region_age_structure``), or any mapping over the same bands.
    Events are fall-related admissions (diagnosegroep val_letsel, admitted in the year), the persons at
    risk every resident in the population register extract (gemeente/inwoners).
    """
    if isinstance(standard, str):
        standard = standard_population(standard)
    return fall_admission_rows(year).standardize(
        events="val_opnamen", age="leeftijdsband", standard=standard, by="gemeente"
    )
