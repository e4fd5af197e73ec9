"""Generate the reference region: places, people, per-organisation sources and the truth.

Everything is vectorised over persons and events (numpy), so 2M persons take
minutes, not hours. Each part draws from its own random stream derived from the
seed, so the same seed gives the same bytes.

The injected effects (written to the truth file):

- an early influenza A outbreak in one wijk, ISO weeks 38–41 of 2024: GGD reports,
  GP consults (R80) and respiratory hospital admissions all rise there;
- a fall-risk logistic model for VVT clients with known coefficients;
- a GGZ waiting-list bottleneck: one gemeente's waits are about twice as long;
- care stacking: one 'kwetsbare wijk' whose residents are frailer, so more of them
  use several kinds of care.

NB: this module is over 400 lines on purpose. ``generate`` draws every source from the same
population arrays (birth dates, wijk, frailty, coverage) in one pass; split into functions, it
would hand a dozen arrays from one to the next without making any part independent, and the
tests pin its output byte for byte.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import codes, geo

START = dt.date(2023, 1, 1)
END = dt.date(2024, 12, 31)  # also the peildatum (snapshot date) of every source
NDAYS = (END - START).days + 1
YEAR_START = dt.date(2024, 1, 1)  # the analysis year; 2023 is the baseline history
OUTBREAK_GEMEENTE = 2  # index; the outbreak is in this gemeente's most populous wijk
OUTBREAK_DISEASE = "influenza A"
OUTBREAK_YEAR = 2024
OUTBREAK_WEEKS = (38, 39, 40, 41)
OUTBREAK_WEEK_WEIGHTS = (0.15, 0.35, 0.30, 0.20)
OUTBREAK_ATTACK_RATE = 0.06
BOTTLENECK_GEMEENTE = 1
KWETSBARE_WIJK = (0, 4)  # (gemeente index, wijk index within it)
FALL_MODEL = {
    "intercept": -1.2,
    "leeftijd_per_10j_boven_80": 0.45,
    "polyfarmacie": 0.7,  # medicatie >= 5
    "chronische_aandoeningen": 0.25,  # per condition
    "vrouw": 0.3,
    "verpleeghuiszorg": 0.5,
}
GGZ_MEAN_WAIT = 85.0
GGZ_BOTTLENECK_WAIT = 190.0
GGZ_DIAGNOSIS_FACTOR = {"autisme": 1.3, "persoonlijkheid": 1.2, "eetstoornis": 0.8}
# NB: Dutch age structure (CBS 2024, rounded), 5-year bands 0-4 … 95-99.
AGE_BANDS = np.array([5.0, 5.2, 5.6, 5.9, 6.4, 6.7, 6.5, 6.2, 6.0, 6.1,
                      7.0, 7.2, 6.6, 5.8, 5.4, 4.2, 2.6, 1.4, 0.6, 0.15])  # fmt: skip
POP_GROUPS = ("0-17", "18-64", "65-69", "70+")
GP_COVERAGE = 0.75  # share of residents registered with the participating GP groups
HOSPITAL_COVERAGE = 0.85  # share of admissions in the participating hospital


@dataclass
class Region:
    """The generated region in memory: what `werkplaats synth` writes to disk."""

    seed: int
    persons: int
    gemeenten: pd.DataFrame
    wijken: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    population: pd.DataFrame
    geo: dict[str, Any]
    truth: dict[str, Any] = field(default_factory=dict)
    # NB: a table split over several organisations (synth/organisations.py): its name → the datasets that replace it
    split: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _stream(seed: int, part: str) -> np.random.Generator:
    return np.random.default_rng([seed, *part.encode()])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _day(d: dt.date) -> int:
    return (d - START).days


def _dates(days: np.ndarray) -> np.ndarray:
    return np.datetime64(START.isoformat(), "D") + days.astype("timedelta64[D]")


def _age_at(birth: np.ndarray, when: np.ndarray) -> np.ndarray:
    b, w = pd.DatetimeIndex(birth), pd.DatetimeIndex(when)
    later = (w.month * 100 + w.day) < (b.month * 100 + b.day)
    return np.asarray(w.year - b.year - later, dtype=np.int64)


def _season(amplitude: float, peak_doy: int = 24) -> np.ndarray:
    """Probability per day of the period, peaking at day-of-year peak_doy."""
    doy = pd.DatetimeIndex(_dates(np.arange(NDAYS))).dayofyear.to_numpy()
    w = 1 + amplitude * np.cos(2 * np.pi * (doy - peak_doy) / 365.25)
    return w / w.sum()


def _draw_days(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(np.searchsorted(np.cumsum(p), rng.random(size), side="right"), len(p) - 1)


def _events(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    """Return the person index of each event, for Poisson counts with means lam."""
    return np.repeat(np.arange(len(lam)), rng.poisson(lam))


def _choice(rng: np.random.Generator, labels: tuple[str, ...], p: Any, size: int) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.asarray(labels, dtype=object)[rng.choice(len(labels), size, p=p / p.sum())]


def _bsn(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distinct 9-digit person keys that fail the 11-proef, so none is a real BSN."""
    out = np.zeros(0, dtype=np.int64)
    weights = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1])
    while len(out) < n:
        cand = rng.integers(100_000_000, 1_000_000_000, size=int(n * 1.2) + 64)
        digits = (cand[:, None] // 10 ** np.arange(8, -1, -1)) % 10
        cand = cand[(digits @ weights) % 11 != 0]
        out = np.unique(np.concatenate([out, cand]))
    return rng.permutation(out)[:n].astype(np.int64)


def _places(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], np.ndarray]:
    rng = _stream(seed, "places")
    box = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    k = len(codes.GEMEENTE_NAMES)
    gseeds = geo.relaxed_seeds(rng, k, box)
    gcells = geo.voronoi_cells(gseeds, box)
    # NB: the biggest cell gets the city; names follow area order for a stable map.
    order = np.argsort([-geo.area(c) for c in gcells], kind="stable")
    gcells = [gcells[i] for i in order]
    gem_rows, wijk_rows, gfeat, wfeat = [], [], [], []
    wijk_share = []
    for g, (name, weight, nw) in enumerate(zip(codes.GEMEENTE_NAMES, codes.GEMEENTE_WEIGHTS,
                                                codes.WIJKEN_PER_GEMEENTE, strict=True)):  # fmt: skip
        gcode = f"GM{9001 + g}"
        gem_rows.append({"code": gcode, "naam": name})
        gfeat.append(({"code": gcode, "naam": name}, gcells[g]))
        wcells = geo.voronoi_cells(geo.relaxed_seeds(rng, nw, gcells[g]), gcells[g])
        shares = rng.dirichlet(np.full(nw, 8.0))
        for w in range(nw):
            wcode = f"WK{9001 + g}{w + 1:02d}"
            wname = f"{name} {codes.WIJK_NAMES[w]}"
            wijk_rows.append({"code": wcode, "naam": wname, "gemeente": gcode})
            wfeat.append(({"code": wcode, "naam": wname, "gemeente": gcode}, wcells[w]))
            wijk_share.append(weight * shares[w])
    maps = {"gemeenten": geo.feature_collection(gfeat), "wijken": geo.feature_collection(wfeat)}
    return pd.DataFrame(gem_rows), pd.DataFrame(wijk_rows), maps, np.array(wijk_share)


def generate(seed: int = 1, persons: int = 200_000, *, hospitals: int = 1, gp_practices: int = 1) -> Region:
    """Generate a region of the given size; the same arguments give the same region.

    hospitals, gp_practices: split the hospital admissions and the GP records over that many
    organisations with the same schemas (synth/organisations.py); 1 (the default) leaves them whole.
    """
    from .organisations import check_counts, split_organisations

    if persons < 1000:
        msg = f"persons must be at least 1000 (got {persons}): smaller regions suppress almost every cell"
        raise ValueError(msg)
    check_counts(hospitals, gp_practices)
    gemeenten, wijken, maps, wijk_share = _places(seed)
    gem_of_wijk = np.array([int(c[2:6]) - 9001 for c in wijken["code"]])
    nw = len(wijken)
    first_wijk = np.concatenate([[0], np.cumsum(codes.WIJKEN_PER_GEMEENTE)[:-1]])
    g0 = first_wijk[OUTBREAK_GEMEENTE]
    # NB: the outbreak is in the gemeente's most populous wijk, so it is big enough to see at any seed.
    outbreak_wijk = g0 + int(np.argmax(wijk_share[g0 : g0 + codes.WIJKEN_PER_GEMEENTE[OUTBREAK_GEMEENTE]]))
    kwetsbaar = first_wijk[KWETSBARE_WIJK[0]] + KWETSBARE_WIJK[1]

    # -- people ------------------------------------------------------------------------
    rng = _stream(seed, "persons")
    n = persons
    age_beta = rng.normal(0, 0.35, nw)
    frail_w = rng.normal(0, 0.2, nw)
    frail_w[kwetsbaar] = 2.0
    wijk = rng.choice(nw, n, p=wijk_share / wijk_share.sum())
    mid = np.arange(20) * 5 + 2.5
    tilt = AGE_BANDS[None, :] * np.exp(age_beta[:, None] * (mid[None, :] - 42) / 25)
    cdf = np.cumsum(tilt / tilt.sum(axis=1, keepdims=True), axis=1)
    band = (cdf[wijk] < rng.random(n)[:, None]).sum(axis=1)
    age_days = ((5 * band + 5 * rng.random(n)) * 365.25).astype(np.int64)
    birth = np.datetime64(END.isoformat(), "D") - age_days.astype("timedelta64[D]")
    age = _age_at(birth, np.full(n, np.datetime64(END.isoformat(), "D")))
    female = rng.random(n) < 0.505
    z = frail_w[wijk] + rng.normal(0, 1, n)
    bsn = _bsn(rng, n)
    born = (birth - np.datetime64(START.isoformat(), "D")).astype(np.int64)  # day of birth in period days
    gem = gem_of_wijk[wijk]
    gem_codes = gemeenten["code"].to_numpy(dtype=object)
    wijk_codes = wijken["code"].to_numpy(dtype=object)

    # -- GP: patients and their chronic conditions, medication --------------------------
    rng = _stream(seed, "huisartsen")
    chronic = np.minimum(rng.poisson((0.08 + 0.9 * (age / 80) ** 2) * np.exp(0.3 * z)), 6)
    medication = np.minimum(rng.poisson(0.2 + 1.3 * chronic + 0.02 * np.maximum(age - 50, 0)), 20)
    gp = rng.random(n) < GP_COVERAGE
    patienten = pd.DataFrame({
        "bsn": bsn[gp], "geboortedatum": birth[gp], "geslacht": np.where(female[gp], "V", "M"),
        "gemeente": gem_codes[gem[gp]], "wijk": wijk_codes[wijk[gp]],
        "chronische_aandoeningen": chronic[gp], "medicatie": medication[gp],
    })  # fmt: skip
    # consults: respiratory ones follow the season, others are spread over the period
    other = [c for c in codes.ICPC if c not in codes.RESPIRATORY_ICPC]
    who = _events(rng, np.where(gp, 2 * 1.8 * (1 + 0.4 * chronic), 0.0))
    c_other = pd.DataFrame({"p": who, "d": rng.integers(0, NDAYS, len(who)),
                            "icpc": _choice(rng, tuple(other), np.ones(len(other)), len(who))})  # fmt: skip
    vulnerable = (age < 5) | (age >= 70)
    who = _events(rng, np.where(gp, 2 * 0.35 * np.where(vulnerable, 1.6, 1.0), 0.0))
    c_resp = pd.DataFrame({"p": who, "d": _draw_days(rng, _season(0.7), len(who)),
                           "icpc": _choice(rng, codes.RESPIRATORY_ICPC, (0.55, 0.15, 0.2, 0.1), len(who))})  # fmt: skip

    # -- infections: GGD reports (background and the outbreak) -------------------------
    rng = _stream(seed, "ggd")
    rates = {  # per person per year, seasonal amplitude, peak day of year
        "COVID-19": (0.006, 0.6, 24), "influenza A": (0.006, 0.95, 30), "kinkhoest": (0.0008, 0.2, 60),
        "mazelen": (0.00005, 0.3, 90), "legionellose": (0.0001, 0.8, 220), "hepatitis A": (0.00005, 0.2, 250),
    }  # fmt: skip
    resp_age = np.where(age >= 70, 2.5, np.where(age < 5, 1.5, 1.0))
    inf_p, inf_d, inf_dis = [], [], []
    for disease, (rate, amp, peak) in rates.items():
        lam = 2 * rate * (resp_age if disease in ("COVID-19", "influenza A") else 1.0)
        who = _events(rng, np.broadcast_to(lam, (n,)).astype(float))
        inf_p.append(who)
        inf_d.append(_draw_days(rng, _season(amp, peak), len(who)))
        inf_dis.append(np.full(len(who), disease, dtype=object))
    bg_reported = [np.ones(len(p), dtype=bool) for p in inf_p]
    # the outbreak: infections among the wijk's residents, some reported, some at the GP
    residents = np.flatnonzero(wijk == outbreak_wijk)
    infected = residents[rng.random(len(residents)) < OUTBREAK_ATTACK_RATE]
    week_start = _day(dt.date.fromisocalendar(OUTBREAK_YEAR, OUTBREAK_WEEKS[0], 1))
    week = rng.choice(len(OUTBREAK_WEEKS), len(infected), p=OUTBREAK_WEEK_WEIGHTS)
    onset_ob = week_start + 7 * week + rng.integers(0, 7, len(infected))
    inf_p.append(infected)
    inf_d.append(onset_ob)
    inf_dis.append(np.full(len(infected), OUTBREAK_DISEASE, dtype=object))
    bg_reported.append(rng.random(len(infected)) < 0.6)
    p_all, onset, disease_all = np.concatenate(inf_p), np.concatenate(inf_d), np.concatenate(inf_dis)
    reported = np.concatenate(bg_reported)
    is_outbreak = np.zeros(len(p_all), dtype=bool)
    is_outbreak[-len(infected) :] = True
    delay = 1 + rng.poisson(2.5, len(p_all))
    respiratory = np.isin(disease_all, ["COVID-19", "influenza A"])
    p_hosp = np.where(respiratory, 0.02 + 0.12 * (age[p_all] >= 70) + 0.05 * (z[p_all] > 1.5), 0.05)
    hosp = rng.random(len(p_all)) < p_hosp
    keep = reported & (onset + delay < NDAYS) & (onset >= born[p_all])
    onset_dates = _dates(onset[keep])
    meldingen = pd.DataFrame({
        "bsn": bsn[p_all[keep]], "ziekte": disease_all[keep],
        "eerste_ziektedag": onset_dates, "meldingsdatum": _dates(onset[keep] + delay[keep]),
        "gemeente": gem_codes[gem[p_all[keep]]], "wijk": wijk_codes[wijk[p_all[keep]]],
        "leeftijd": _age_at(birth[p_all[keep]], onset_dates), "ziekenhuisopname": hosp[keep],
    }).sort_values(["meldingsdatum", "bsn"], kind="stable")  # fmt: skip
    # outbreak GP consults (R80) for infected GP patients
    ob_gp = infected[gp[infected] & (rng.random(len(infected)) < 0.7)]
    ob_gp_day = onset_ob[np.searchsorted(infected, ob_gp)] + rng.integers(0, 4, len(ob_gp))
    c_ob = pd.DataFrame({"p": ob_gp, "d": np.minimum(ob_gp_day, NDAYS - 1), "icpc": "R80"})
    consults = pd.concat([c_other, c_resp, c_ob], ignore_index=True)
    consults = consults[consults["d"].to_numpy() >= born[consults["p"].to_numpy()]]
    consulten = pd.DataFrame({"bsn": bsn[consults["p"].to_numpy()], "datum": _dates(consults["d"].to_numpy()),
                              "icpc": consults["icpc"].to_numpy()})  # fmt: skip
    consulten = consulten.sort_values(["datum", "bsn", "icpc"], kind="stable")

    # -- VVT clients and the fall model --------------------------------------------------
    rng = _stream(seed, "vvt")
    old = age >= 65
    client = old & (rng.random(n) < _sigmoid(-3.0 + 0.1 * (age - 75) + 0.6 * z))
    ci = np.flatnonzero(client)
    nh = rng.random(len(ci)) < _sigmoid(-2.0 + 0.08 * (age[ci] - 80) + 0.5 * z[ci])
    short = ~nh & (rng.random(len(ci)) < 0.08)
    care = np.where(nh, "verpleeghuiszorg", np.where(short, "kortdurend_verblijf", "wijkverpleging"))
    start_day = rng.integers(_day(dt.date(2016, 1, 1)), NDAYS, len(ci))
    ended = rng.random(len(ci)) < 0.25
    end_day = start_day + (rng.random(len(ci)) * (NDAYS - start_day)).astype(np.int64)
    active = (~ended) | (end_day >= _day(YEAR_START))
    fm = FALL_MODEL
    logit = (fm["intercept"] + fm["leeftijd_per_10j_boven_80"] * (age[ci] - 80) / 10
             + fm["polyfarmacie"] * (medication[ci] >= 5) + fm["chronische_aandoeningen"] * chronic[ci]
             + fm["vrouw"] * female[ci] + fm["verpleeghuiszorg"] * nh)  # fmt: skip
    fell = active & (rng.random(len(ci)) < _sigmoid(logit))
    falls = np.where(fell, 1 + rng.poisson(0.6, len(ci)), 0)
    clienten = pd.DataFrame({
        "bsn": bsn[ci], "geboortedatum": birth[ci], "geslacht": np.where(female[ci], "V", "M"),
        "zorgvorm": care, "startdatum": _dates(start_day),
        "einddatum": pd.Series(_dates(end_day)).where(ended), "valincidenten": falls,
    })  # fmt: skip

    # -- hospital admissions ---------------------------------------------------------------
    rng = _stream(seed, "ziekenhuis")
    base = np.clip(0.05 * np.exp(0.03 * (age - 40)), 0.02, 0.6) * np.exp(0.3 * z)
    who = _events(rng, 2 * base)
    adm = [
        (
            who,
            rng.integers(0, NDAYS, len(who)),
            _choice(rng, ("hart_vaat", "oncologie", "bewegingsapparaat", "overig"), (0.3, 0.2, 0.2, 0.3), len(who)),
        )
    ]
    who = _events(rng, 2 * (0.004 + 0.03 * (age >= 70)))
    adm.append((who, _draw_days(rng, _season(0.8), len(who)), np.full(len(who), "luchtweginfectie", dtype=object)))
    sev = np.flatnonzero(hosp)  # hospitalised GGD cases (reported or not)
    adm.append(
        (
            p_all[sev],
            np.minimum(onset[sev] + rng.integers(1, 6, len(sev)), NDAYS - 1),
            np.full(len(sev), "luchtweginfectie", dtype=object),
        )
    )
    fall_adm = ci[fell & (rng.random(len(ci)) < 0.2)]
    adm.append(
        (
            fall_adm,
            rng.integers(_day(YEAR_START), NDAYS, len(fall_adm)),
            np.full(len(fall_adm), "val_letsel", dtype=object),
        )
    )
    who = _events(rng, np.where(old & ~client, 2 * 0.01 * np.exp(0.06 * (age - 65)), 0.0))
    adm.append((who, rng.integers(0, NDAYS, len(who)), np.full(len(who), "val_letsel", dtype=object)))
    ap = np.concatenate([a[0] for a in adm])
    ad = np.concatenate([a[1] for a in adm])
    ag = np.concatenate([a[2] for a in adm])
    here = (rng.random(len(ap)) < HOSPITAL_COVERAGE) & (ad >= born[ap])
    ap, ad, ag = ap[here], ad[here], ag[here]
    stay_mean = {"luchtweginfectie": 5, "val_letsel": 7, "hart_vaat": 4, "oncologie": 5, "bewegingsapparaat": 3,
                 "overig": 2}  # fmt: skip
    stay = 1 + rng.poisson(np.array([stay_mean[g] for g in ag], dtype=float)) if len(ag) else np.zeros(0, int)
    opnamen = pd.DataFrame({
        "bsn": bsn[ap], "opnamedatum": _dates(ad), "diagnosegroep": ag, "ligduur": stay,
        "gemeente": gem_codes[gem[ap]], "wijk": wijk_codes[wijk[ap]],
    }).sort_values(["opnamedatum", "bsn"], kind="stable")  # fmt: skip

    # -- GGZ waiting list ---------------------------------------------------------------------
    rng = _stream(seed, "ggz")
    logit = -3.6 + 0.5 * z + 0.6 * ((age >= 12) & (age <= 35)) - 1.0 * (age < 12) - 0.8 * (age >= 70)
    gi = np.flatnonzero((age >= 6) & (rng.random(n) < _sigmoid(logit)))
    reg_day = rng.integers(0, NDAYS, len(gi))
    reg_dates = _dates(reg_day)
    reg_age = _age_at(birth[gi], reg_dates)
    young = reg_age < 18
    groups = tuple(codes.GGZ_GROUPS)
    p_young = np.array([0.15, 0.15, 0.30, 0.20, 0.10, 0.0, 0.10, 0.0])
    p_adult = np.array([0.25, 0.30, 0.05, 0.05, 0.05, 0.10, 0.10, 0.10])
    diag = np.where(young, _choice(rng, groups, p_young, len(gi)), _choice(rng, groups, p_adult, len(gi)))
    mean_wait = np.where(gem[gi] == BOTTLENECK_GEMEENTE, GGZ_BOTTLENECK_WAIT, GGZ_MEAN_WAIT)
    mean_wait = mean_wait * np.array([GGZ_DIAGNOSIS_FACTOR.get(d, 1.0) for d in diag])
    wait = np.ceil(rng.gamma(2.0, mean_wait / 2.0)).astype(np.int64)
    start = reg_day + wait
    started = start < NDAYS
    wachtlijst = pd.DataFrame({
        "bsn": bsn[gi], "aanmelddatum": reg_dates,
        "startdatum_behandeling": pd.Series(_dates(np.minimum(start, NDAYS - 1))).where(started),
        "leeftijd": reg_age, "diagnosegroep": diag, "gemeente": gem_codes[gem[gi]],
    }).sort_values(["aanmelddatum", "bsn"], kind="stable")  # fmt: skip

    # -- municipal social domain (2024) and the population register extract --------------------
    rng = _stream(seed, "gemeente")
    wmo = rng.random(n) < _sigmoid(-4.2 + 0.06 * np.maximum(age - 55, 0) + 0.8 * z)
    wmo_kind = np.where(age >= 65,
                        _choice(rng, tuple(codes.WMO), (0.45, 0.15, 0.35, 0.05), n),
                        _choice(rng, tuple(codes.WMO), (0.10, 0.50, 0.25, 0.15), n))  # fmt: skip
    youth = (age < 18) & (rng.random(n) < _sigmoid(-2.4 + 0.7 * z))
    si = np.flatnonzero(wmo | youth)
    sociaal = pd.DataFrame({
        "bsn": bsn[si], "gemeente": gem_codes[gem[si]], "wijk": wijk_codes[wijk[si]],
        "wmo_voorziening": pd.Series(wmo_kind[si]).where(wmo[si]), "jeugdhulp": youth[si],
    })  # fmt: skip
    inwoners = pd.DataFrame({"bsn": bsn, "geboortedatum": birth, "geslacht": np.where(female, "V", "M"),
                             "gemeente": gem_codes[gem], "wijk": wijk_codes[wijk]})  # fmt: skip

    tables = {
        "ggd/meldingen": meldingen, "huisartsen/patienten": patienten, "huisartsen/consulten": consulten,
        "ziekenhuis/opnamen": opnamen, "vvt/clienten": clienten, "ggz/wachtlijst": wachtlijst,
        "gemeente/inwoners": inwoners, "gemeente/sociaal_domein": sociaal,
    }  # fmt: skip
    tables = {k: v.reset_index(drop=True) for k, v in tables.items()}

    # -- public population counts (CBS-style open data) ---------------------------------------
    age_jan = _age_at(birth, np.full(n, np.datetime64(YEAR_START.isoformat(), "D")))
    grp = np.select([age_jan < 18, age_jan < 65, age_jan < 70], POP_GROUPS[:3], POP_GROUPS[3])
    population = (pd.DataFrame({"gemeente": gem_codes[gem], "wijk": wijk_codes[wijk], "leeftijdsgroep": grp})
                  .value_counts().rename("inwoners").reset_index()
                  .sort_values(["gemeente", "wijk", "leeftijdsgroep"]).reset_index(drop=True))  # fmt: skip

    # -- the truth --------------------------------------------------------------------------------
    in_year = ad >= _day(YEAR_START)
    kinds = {
        "ziekenhuis": np.isin(np.arange(n), ap[in_year]),
        "vvt": np.isin(np.arange(n), ci[active]),
        "ggz": np.isin(np.arange(n), gi[(~started) | (start >= _day(YEAR_START))]),
        "wmo": wmo,
        "jeugdhulp": youth,
    }
    nkinds = np.sum(list(kinds.values()), axis=0)
    stacking = []
    for w in range(nw):
        m = wijk == w
        k = nkinds[m]
        stacking.append({"wijk": wijk_codes[w], "inwoners": int(m.sum()), "zorgvormen_0": int((k == 0).sum()),
                         "zorgvormen_1": int((k == 1).sum()), "zorgvormen_2": int((k == 2).sum()),
                         "zorgvormen_3": int((k == 3).sum()), "zorgvormen_4plus": int((k >= 4).sum())})  # fmt: skip
    pairs = {f"{a}&{b}": int((kinds[a] & kinds[b]).sum()) for i, a in enumerate(kinds) for b in list(kinds)[i + 1 :]}
    wait_rows = []
    done_2024 = started & (start >= _day(YEAR_START))
    for g in range(len(gemeenten)):
        m = done_2024 & (gem[gi] == g)
        waiting = (~started) & (gem[gi] == g)
        w = wait[m]
        wait_rows.append({
            "gemeente": gem_codes[g], "mean_wait_parameter": GGZ_BOTTLENECK_WAIT if g == BOTTLENECK_GEMEENTE
            else GGZ_MEAN_WAIT, "gestart_2024": int(m.sum()),
            "wachttijd_gem": float(w.mean()) if len(w) else None,
            "wachttijd_mediaan": float(np.median(w)) if len(w) else None,
            "wachtend_op_peildatum": int(waiting.sum()),
        })  # fmt: skip
    ob_reports = meldingen.merge(pd.DataFrame({"bsn": bsn[infected]}), on="bsn")
    truth = {
        "seed": seed, "persons": persons, "period": [START.isoformat(), END.isoformat()],
        "peildatum": END.isoformat(),
        "outbreak": {
            "disease": OUTBREAK_DISEASE, "gemeente": gem_codes[OUTBREAK_GEMEENTE],
            "wijk": wijk_codes[outbreak_wijk], "iso_year": OUTBREAK_YEAR, "iso_weeks": list(OUTBREAK_WEEKS),
            "attack_rate": OUTBREAK_ATTACK_RATE, "infected": len(infected),
            "reported": int(is_outbreak[keep].sum()), "gp_consults_r80": len(ob_gp),
            "residents": len(residents), "reports_of_infected_persons": len(ob_reports),
        },
        "fall_model": {
            "population": "VVT clients active in 2024 (vvt/clienten: einddatum empty or in 2024)",
            "outcome": "valincidenten >= 1",
            "covariates": {
                "leeftijd_per_10j_boven_80": "(age in whole years on the peildatum 2024-12-31 - 80) / 10, "
                                             "from vvt/clienten.geboortedatum",
                "polyfarmacie": "huisartsen/patienten.medicatie >= 5",
                "chronische_aandoeningen": "huisartsen/patienten.chronische_aandoeningen (count)",
                "vrouw": "vvt/clienten.geslacht == 'V'",
                "verpleeghuiszorg": "vvt/clienten.zorgvorm == 'verpleeghuiszorg'",
            },
            "coefficients": FALL_MODEL,
            "age": {"centre": 80, "per_years": 10, "on": END.isoformat(), "in": "whole years"},
            "note": "medication and chronic conditions are generated for every person; only GP patients "
                    "have them in huisartsen/patienten",
            "gp_record": f"drawn for every resident with probability {GP_COVERAGE}, independently of age, frailty "
                         "and falls: complete cases (clients with a GP record) are a random subset",
            "clients_active_2024": int(active.sum()), "fallers_2024": int(fell.sum()),
            "clients_active_2024_with_gp": int((active & gp[ci]).sum()),
            "fallers_2024_with_gp": int((fell & gp[ci]).sum()),
        },
        "waiting_list": {
            "bottleneck_gemeente": gem_codes[BOTTLENECK_GEMEENTE],
            "definition": "wait = startdatum_behandeling - aanmelddatum in days, for treatments started in 2024; "
                          "wachtend = no startdatum_behandeling on the peildatum",
            "per_gemeente": wait_rows,
        },
        "care_stacking": {
            "kwetsbare_wijk": wijk_codes[kwetsbaar], "year": 2024,
            "kinds": {
                "ziekenhuis": "an admission (ziekenhuis/opnamen) in 2024",
                "vvt": "a VVT client whose care ran in 2024 (einddatum empty or in 2024)",
                "ggz": "on the GGZ waiting list or starting treatment in 2024 "
                       "(startdatum_behandeling empty or in 2024)",
                "wmo": "a Wmo provision in 2024 (gemeente/sociaal_domein.wmo_voorziening)",
                "jeugdhulp": "youth care in 2024 (gemeente/sociaal_domein.jeugdhulp)",
            },
            "per_wijk": stacking,
            "pairs": pairs,
        },
    }  # fmt: skip
    region = Region(seed, persons, gemeenten, wijken, tables, population, maps, truth)
    if hospitals > 1 or gp_practices > 1:
        split_organisations(region, hospitals, gp_practices)
    return region
