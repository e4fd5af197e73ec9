"""A small generated example: GGD reports joined with GP data, under MPC and on DuckDB.

This is the README's first command until the workspace services exist; it then
becomes the full demo workspace. The reference region generator (`werkplaats synth`)
replaces these tables with the issue that builds it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

import werkplaats as wp

GEMEENTEN = ["GM0014", "GM0034", "GM0037", "GM0047", "GM0050", "GM0059"]
ZIEKTEN = ["COVID-19", "influenza", "kinkhoest", "mazelen"]


def tables(persons: int = 4000, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Return GGD reports and GP chronic-condition records for a generated population."""
    rng = np.random.default_rng(seed)
    bsn = rng.choice(np.arange(100_000_000, 999_999_999), size=persons, replace=False).astype(np.int64)
    birth = pd.to_datetime("1930-01-01") + pd.to_timedelta(rng.integers(0, 33_000, persons), unit="D")
    gemeente = rng.choice(GEMEENTEN, persons, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
    # An outbreak: COVID-19 reports concentrate in GM0034.
    ziekte = np.where((gemeente == "GM0034") & (rng.random(persons) < 0.5), "COVID-19",
                      rng.choice(ZIEKTEN, persons, p=[0.4, 0.4, 0.15, 0.05]))  # fmt: skip
    meldingen = pd.DataFrame({
        "bsn": bsn,
        "gemeente": pd.Categorical(gemeente, categories=GEMEENTEN),
        "ziekte": pd.Categorical(ziekte, categories=ZIEKTEN),
        "geboortedatum": birth,
        "ziekenhuisopname": rng.random(persons) < 0.08,
    })  # fmt: skip
    gp = rng.choice(bsn, size=int(persons * 0.7), replace=False)
    consulten = pd.DataFrame({
        "bsn": gp,
        "chronisch": rng.random(len(gp)) < 0.3,
        "medicatie": rng.poisson(1.5, len(gp)),
    })  # fmt: skip
    return {"ggd/meldingen": meldingen, "huisartsen/consulten": consulten}


def analysis(reference: dt.date = dt.date(2024, 1, 1)) -> wp.LazyFrame:
    """Return the demo analysis: COVID-19 reports per gemeente and age group, with GP data."""
    meld = wp.scan("ggd/meldingen")
    cons = wp.scan("huisartsen/consulten")
    return (
        meld.filter(wp.col("ziekte") == "COVID-19")
        .join(cons, on="bsn", how="left")
        .with_columns(
            leeftijdsgroep=wp.col("geboortedatum").age_at(reference).cut([17, 64], labels=["0-17", "18-64", "65+"])
        )
        .group_by("gemeente", "leeftijdsgroep")
        .agg(
            meldingen=wp.count(),
            opnames=wp.col("ziekenhuisopname").sum(),
            chronisch=wp.col("chronisch").sum(),
            medicatie_gem=wp.col("medicatie").mean(),
        )
    )
