"""Infection hotspots (pandemische paraatheid): weekly counts per gemeente or wijk, early warning.

The plan counts events per region and ISO week of one ISO year, from one of three
signals: GGD notifications, GP consults with respiratory ICPC codes, or hospital
admissions of a diagnosis group. With ``risk_groups=True`` it joins the GP's patient
record and the VVT client list on the person key and splits each count by risk group.

Early warning (``early_warning``) works on two revealed series, the reporting year and
the year before, with the *historical limits* method (Stroup et al., 1989; the method
behind CDC's notifiable-disease tables and the idea that Farrington's method refines):
the expected count of week w is the mean of weeks w-3 … w+3 of the previous year, and a
week is flagged when its count exceeds ``mean + z * max(sd, sqrt(mean), 1)``. Comparing
with the same season last year keeps the winter wave from raising alarms; an outbreak
out of season stands out. Suppressed counts (below k) are read as k - 1, the largest
value they can have, so a suppressed baseline never lowers the threshold; a suppressed
week is never flagged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..exceptions import PlanError
from ..expr import AggExpr, Expr, col, count, lit, when
from ..frame import LazyFrame, scan
from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE

SIGNALS = ("ggd", "huisarts", "ziekenhuis")
LEVELS = ("gemeente", "wijk")
RISK_GROUPS = ("vvt_client", "70+", "chronisch", "overig")


def iso_year_bounds(year: int) -> tuple[dt.date, dt.date]:
    """Return the Monday of ISO week 1 and the Sunday of the last ISO week of a year."""
    first = dt.date.fromisocalendar(year, 1, 1)
    last = dt.date.fromisocalendar(year + 1, 1, 1) - dt.timedelta(days=1)
    return first, last


def _risk(frame: LazyFrame, age: Expr, reference: dt.date, *, has_gp: bool) -> LazyFrame:
    """Join GP chronic conditions and VVT care on the person key; add 'risicogroep'."""
    gp = scan("huisartsen/patienten").select("bsn", chronisch=col("chronische_aandoeningen") >= 1)
    vvt = (scan("vvt/clienten")
           .filter((col("startdatum") <= reference) & (col("einddatum").is_null() | (col("einddatum") >= reference)))
           .select("bsn", vvt_client=lit(True)))  # fmt: skip
    joined = frame if has_gp else frame.join(gp, on="bsn", how="left")
    joined = joined.join(vvt, on="bsn", how="left")
    group = (when(col("vvt_client").fill_null(False)).then("vvt_client")
             .when(age.fill_null(False)).then("70+")
             .when(col("chronisch").fill_null(False)).then("chronisch")
             .otherwise("overig"))  # fmt: skip
    return joined.with_columns(risicogroep=group)


def infection_hotspots(
    year: int = 2024,
    *,
    signal: str = "ggd",
    level: str = "gemeente",
    disease: str = "influenza A",
    icpc: Sequence[str] = ("R80",),
    diagnosis: str = "luchtweginfectie",
    risk_groups: bool = False,
    risk_counts: bool = False,
    hospital: bool = False,
) -> LazyFrame:
    """Return the plan: events per region (``level``) and ISO week of ``year``.

    signal "ggd" counts notifications of ``disease`` by first day of illness; "huisarts"
    counts GP consults with an ICPC code in ``icpc`` (residence from the patient record);
    "ziekenhuis" counts admissions in diagnosis group ``diagnosis``. With ``risk_groups``
    each count is split by risicogroep: vvt_client, else 70+, else chronisch (one or more
    chronic conditions at the GP), else overig — each person in the first group that fits.
    With ``risk_counts`` the cells stay region × week and count, among the events, the VVT
    clients (``vvt_client``), people of 70 and over (``70plus``) and people with chronic
    conditions (``chronisch``); these overlap, and each is a count under the k rule.
    With ``hospital`` (signal "ggd" only) the hospital's admissions in ``diagnosis`` during the
    year are joined per person and ``opgenomen`` counts the cases the hospital admitted
    (a count, so under the k rule like a cell).
    """
    if signal not in SIGNALS:
        msg = f"signal must be one of {SIGNALS}, got {signal!r}"
        raise PlanError(msg)
    if level not in LEVELS:
        msg = f"level must be one of {LEVELS}, got {level!r}"
        raise PlanError(msg)
    first, last = iso_year_bounds(year)
    reference = first  # NB: age and VVT care are taken at the start of the reporting year
    age: Expr | None = None
    if signal == "ggd":
        date = "eerste_ziektedag"
        frame = scan("ggd/meldingen").filter((col("ziekte") == disease) & col(date).is_between(first, last))
        age = col("leeftijd") >= 70
    elif signal == "huisarts":
        date = "datum"
        patients = scan("huisartsen/patienten").select(
            "bsn", "gemeente", "wijk", "geboortedatum", chronisch=col("chronische_aandoeningen") >= 1
        )
        frame = (scan("huisartsen/consulten")
                 .filter(col("icpc").is_in(list(icpc)) & col(date).is_between(first, last))
                 .join(patients, on="bsn", how="inner"))  # fmt: skip
        age = col("geboortedatum").age_at(reference) >= 70
    else:
        date = "opnamedatum"
        frame = scan("ziekenhuis/opnamen").filter(
            (col("diagnosegroep") == diagnosis) & col(date).is_between(first, last)
        )
    if (risk_groups or risk_counts) and signal == "ziekenhuis":
        born = scan("gemeente/inwoners").select("bsn", "geboortedatum")
        frame = frame.join(born, on="bsn", how="left")
        age = col("geboortedatum").age_at(reference) >= 70
    keys = [level, "week"]
    aggs: dict[str, AggExpr] = {"n": count()}
    if risk_groups or risk_counts:
        assert age is not None  # NB: every signal has an age once risk groups are asked for
        frame = _risk(frame, age, reference, has_gp=signal == "huisarts")
    if risk_groups:
        keys.append("risicogroep")
    if risk_counts:
        aggs["vvt_client"] = col("vvt_client").fill_null(False).sum()
        aggs["70plus"] = age.fill_null(False).sum()  # type: ignore[union-attr]
        aggs["chronisch"] = col("chronisch").fill_null(False).sum()
    if hospital:
        if signal != "ggd":
            msg = "hospital=True joins hospital admissions to GGD notifications; use it with signal='ggd'"
            raise PlanError(msg)
        admitted = (scan("ziekenhuis/opnamen")
                    .filter((col("diagnosegroep") == diagnosis) & col("opnamedatum").is_between(first, last))
                    .group_by("bsn").agg(opnamen=count()))  # fmt: skip
        frame = frame.join(admitted, on="bsn", how="left")
        aggs["opgenomen"] = (col("opnamen").fill_null(0) >= 1).sum()
    return frame.with_columns(week=col(date).dt.iso_week()).group_by(*keys).agg(**aggs)


def incidence(result: pd.DataFrame, population: pd.DataFrame, level: str = "gemeente") -> pd.DataFrame:
    """Add 'inwoners' (public population of the region) and 'per_100k' to a revealed series."""
    pop = population.groupby(level, as_index=False)["inwoners"].sum()
    out = result.merge(pop, on=level, how="left")
    out["per_100k"] = out["n"].astype(float) / out["inwoners"] * 100_000
    return out


def early_warning(
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    *,
    year: int,
    level: str = "gemeente",
    population: pd.DataFrame | None = None,
    z: float = 3.0,
    half_window: int = 3,
) -> pd.DataFrame:
    """Flag region-weeks of ``current`` that exceed their historical limit from ``baseline``.

    Both frames are revealed outputs of ``infection_hotspots`` (without risk groups) for
    the reporting year and the year before. Returns one row per region and week with
    n, expected, threshold, flag (and per_100k when a population is given).
    """
    k = int(current.attrs.get("min_group_size", DEFAULT_MIN_GROUP_SIZE))

    def table(df: pd.DataFrame) -> pd.DataFrame:
        d = df[df[level].notna() & df["week"].notna()].copy()
        d["count"] = np.where(d["suppressed"], k - 1, d["n"].astype("Float64").fillna(k - 1)).astype(float)
        return d.pivot(index=level, columns="week", values="count").reindex(columns=range(1, 54), fill_value=0.0)

    cur = table(current)
    base = table(baseline).reindex(cur.index, fill_value=float(k - 1))
    base_weeks = dt.date(year - 1, 12, 28).isocalendar().week
    suppressed = (
        current[current[level].notna() & current["week"].notna()]
        .pivot(index=level, columns="week", values="suppressed")
        .reindex(columns=range(1, 54), fill_value=True)
    )
    rows = []
    weeks = dt.date(year, 12, 28).isocalendar().week  # NB: 28 December is always in the last ISO week
    for region in cur.index:
        for w in range(1, weeks + 1):
            window = [x for x in range(w - half_window, w + half_window + 1) if 1 <= x <= base_weeks]
            hist = base.loc[region, window].to_numpy(dtype=float)
            mean, sd = float(hist.mean()), float(hist.std(ddof=1)) if len(hist) > 1 else 0.0
            threshold = mean + z * max(sd, np.sqrt(mean), 1.0)
            is_supp = bool(suppressed.loc[region, w])
            n = None if is_supp else float(cur.loc[region, w])
            rows.append({level: region, "week": w, "n": n, "suppressed": is_supp, "expected": mean,
                         "threshold": threshold, "flag": (n is not None) and n > threshold})  # fmt: skip
    out = pd.DataFrame(rows)
    if population is not None:
        pop = population.groupby(level, as_index=False)["inwoners"].sum()
        out = out.merge(pop, on=level, how="left")
        out["per_100k"] = out["n"].astype(float) / out["inwoners"] * 100_000
    return out


def chronic_notifications(year: int = 2024, *, disease: str = "influenza A", level: str = "gemeente") -> LazyFrame:
    """Return the plan: per region, GP patients, the chronically ill, and who of them the GGD notified.

    The risk group of a pandemic, counted where it lives, with the GGD's notifications of
    ``disease`` (first day of illness in calendar ``year``) among them. It starts from the GP's
    patient record (``huisartsen/patienten``: residence, ``chronisch`` = one or more chronic
    conditions) and left-joins the persons the GGD notified that year, so every patient counts
    once however often they were notified. Per ``level`` (gemeente or wijk):

    - ``n``: registered patients; ``chronisch``: of them with a chronic condition;
    - ``gemeld``: patients notified with ``disease``; ``gemeld_chronisch``: of those, the chronically ill.

    Each is a count under the k rule. Notifications of people not registered with a GP of the
    region are not counted (the GP record gives the residence and the condition).
    """
    if level not in LEVELS:
        msg = f"level must be one of {LEVELS}, got {level!r}"
        raise PlanError(msg)
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    notified = (scan("ggd/meldingen")
                .filter((col("ziekte") == disease) & col("eerste_ziektedag").is_between(first, last))
                .group_by("bsn").agg(meldingen=count()))  # fmt: skip
    patients = scan("huisartsen/patienten").select("bsn", level, chronisch=col("chronische_aandoeningen") >= 1)
    gemeld = col("meldingen").fill_null(0) >= 1
    return (patients.join(notified, on="bsn", how="left")
            .with_columns(gemeld=gemeld, gemeld_chronisch=gemeld & col("chronisch"))
            .group_by(level)
            .agg(n=count(), chronisch=col("chronisch").sum(), gemeld=col("gemeld").sum(),
                 gemeld_chronisch=col("gemeld_chronisch").sum()))  # fmt: skip
