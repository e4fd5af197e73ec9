"""Mental-health waiting lists: who waits, how long, where; joined with GP and municipal data.

Per cell (by default gemeente × age group × diagnosis group) the plan reveals:

- ``aanmeldingen``: registrations in the year;
- ``gestart``, ``wachttijd_gem``, ``wachttijd_mediaan``: treatments started in the
  year and their waits in days (start of treatment - registration);
- ``wachtend``, ``huidige_wachttijd_gem``: people still waiting on the peildatum and
  how long they have waited so far;
- ``aandeel_chronisch``, ``medicatie_gem`` (GP) and ``aandeel_wmo``, ``aandeel_jeugdhulp``
  (gemeente): the context of those on the list, as shares of the cell.

Registrations count for the year if they were made in it or were still open at its
start. Every figure is disclosure-controlled (docs/disclosure.md): a cell of fewer than k
people, or a statistic from fewer than k contributors, is suppressed; counts are perturbed;
a figure that would let a suppressed one be derived is withheld too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..exceptions import PlanError
from ..expr import col, count, lit, when
from ..frame import LazyFrame, scan

AGE_BREAKS = (17, 24, 44, 64)
AGE_LABELS = ("0-17", "18-24", "25-44", "45-64", "65+")
BY = ("gemeente", "leeftijdsgroep", "diagnosegroep")


def waiting_list(
    year: int = 2024,
    *,
    peildatum: dt.date | None = None,
    by: Sequence[str] = BY,
) -> LazyFrame:
    """Return the plan for the GGZ waiting list of ``year``, by the keys in ``by``."""
    bad = [k for k in by if k not in BY]
    if bad:
        msg = f"waiting_list: by may use {BY}; unknown: {bad}"
        raise PlanError(msg)
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    peil = peildatum or last
    start, reg = col("startdatum_behandeling"), col("aanmelddatum")
    gp = scan("huisartsen/patienten").select("bsn", "medicatie", chronisch=col("chronische_aandoeningen") >= 1)
    social = scan("gemeente/sociaal_domein").select("bsn", "jeugdhulp", wmo=col("wmo_voorziening").is_not_null())
    started = start.is_between(first, last)
    waiting = (reg <= peil) & (start.is_null() | (start > peil))
    return (
        scan("ggz/wachtlijst")
        .filter((reg <= last) & (start.is_null() | (start >= first)))
        .join(gp, on="bsn", how="left")
        .join(social, on="bsn", how="left")
        .with_columns(
            leeftijdsgroep=col("leeftijd").cut(list(AGE_BREAKS), labels=list(AGE_LABELS)),
            wachttijd=when(started).then(start - reg).otherwise(lit(None)),
            huidige_wachttijd=when(waiting).then(lit(peil) - reg).otherwise(lit(None)),
        )
        .group_by(*by)
        .agg(
            aanmeldingen=count(),
            gestart=col("wachttijd").count(),
            wachttijd_gem=col("wachttijd").mean(),
            wachttijd_mediaan=col("wachttijd").median(),
            wachtend=col("huidige_wachttijd").count(),
            huidige_wachttijd_gem=col("huidige_wachttijd").mean(),
            aandeel_chronisch=col("chronisch").fill_null(False).mean(),
            medicatie_gem=col("medicatie").mean(),
            aandeel_wmo=col("wmo").fill_null(False).mean(),
            aandeel_jeugdhulp=col("jeugdhulp").fill_null(False).mean(),
        )
    )
