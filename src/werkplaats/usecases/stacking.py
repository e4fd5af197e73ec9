"""Care stacking (zorgstapeling): how many residents use several kinds of care, per wijk.

The municipality's population register extract is the base, so every resident counts
once; each kind of care is joined on the person key (left joins: no match means not
used). The kinds, for one year:

- ziekenhuis: an admission in the year (ziekenhuis/opnamen, counted per person first);
- vvt: VVT care that ran in the year (vvt/clienten);
- ggz: on the GGZ waiting list or starting treatment in the year (ggz/wachtlijst);
- wmo: a Wmo provision (gemeente/sociaal_domein);
- jeugdhulp: youth care (gemeente/sociaal_domein).

``care_stacking`` reveals per wijk (or gemeente) the number of residents by number of
kinds (0, 1, 2, 3, 4+); ``care_overlap`` reveals the pairwise overlap counts (sums of
booleans, each a count under the same k rule as a cell).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from ..exceptions import PlanError
from ..expr import col, count, lit, when
from ..frame import LazyFrame, scan

KINDS = ("ziekenhuis", "vvt", "ggz", "wmo", "jeugdhulp")
CLASSES = ("0", "1", "2", "3", "4+")


def _joined(year: int) -> LazyFrame:
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    hospital = (scan("ziekenhuis/opnamen").filter(col("opnamedatum").is_between(first, last))
                .group_by("bsn").agg(opnamen=count()))  # fmt: skip
    vvt = (scan("vvt/clienten")
           .filter((col("startdatum") <= last) & (col("einddatum").is_null() | (col("einddatum") >= first)))
           .select("bsn", vvt_zorg=lit(True)))  # fmt: skip
    ggz = (scan("ggz/wachtlijst")
           .filter((col("aanmelddatum") <= last)
                   & (col("startdatum_behandeling").is_null() | (col("startdatum_behandeling") >= first)))
           .select("bsn", ggz_zorg=lit(True)))  # fmt: skip
    social = scan("gemeente/sociaal_domein").select(
        "bsn", wmo_zorg=col("wmo_voorziening").is_not_null(), jeugd_zorg=col("jeugdhulp")
    )
    return (
        scan("gemeente/inwoners")
        .select("bsn", "gemeente", "wijk")
        .join(hospital, on="bsn", how="left")
        .join(vvt, on="bsn", how="left")
        .join(ggz, on="bsn", how="left")
        .join(social, on="bsn", how="left")
        .with_columns(
            ziekenhuis=col("opnamen").fill_null(0) >= 1,
            vvt=col("vvt_zorg").fill_null(False),
            ggz=col("ggz_zorg").fill_null(False),
            wmo=col("wmo_zorg").fill_null(False),
            jeugdhulp=col("jeugd_zorg").fill_null(False),
        )
    )


def _level(level: str) -> None:
    if level not in ("gemeente", "wijk"):
        msg = f"level must be 'gemeente' or 'wijk', got {level!r}"
        raise PlanError(msg)


def care_stacking(year: int = 2024, *, level: str = "wijk") -> LazyFrame:
    """Return the plan: residents per region by number of kinds of care used in ``year``."""
    _level(level)
    total = None
    for kind in KINDS:
        term = when(col(kind)).then(1).otherwise(0)
        total = term if total is None else total + term
    assert total is not None
    return (
        _joined(year)
        .with_columns(zorgvormen=total.cut([0, 1, 2, 3], labels=list(CLASSES)))
        .group_by(level, "zorgvormen")
        .agg(inwoners=count())
    )


def care_overlap(year: int = 2024, *, level: str | None = None) -> LazyFrame:
    """Return the plan: per kind and per pair of kinds, how many residents use both.

    level=None gives one row for the whole region; "gemeente" or "wijk" one per region.
    """
    aggs = {kind: col(kind).sum() for kind in KINDS}
    for i, a in enumerate(KINDS):
        for b in KINDS[i + 1 :]:
            aggs[f"{a}&{b}"] = (col(a) & col(b)).sum()
    frame = _joined(year)
    if level is None:
        return frame.agg(inwoners=count(), **aggs)
    _level(level)
    return frame.group_by(level).agg(inwoners=count(), **aggs)


def stacking_table(result: pd.DataFrame, level: str = "wijk") -> pd.DataFrame:
    """Pivot a revealed care_stacking result: one row per region, residents per class, share 2+."""
    d = result[result[level].notna() & result["zorgvormen"].notna()]
    wide = d.pivot(index=level, columns="zorgvormen", values="inwoners").reindex(columns=list(CLASSES))
    wide.columns = [f"zorgvormen_{c.replace('+', 'plus')}" for c in wide.columns]
    total = wide.sum(axis=1, min_count=1)
    known = wide[["zorgvormen_2", "zorgvormen_3", "zorgvormen_4plus"]]
    wide["inwoners_bekend"] = total
    # NB: a withheld class (fewer than k people, or withheld so that another cannot be derived from the
    # margins: rule 7) counts as 0 in the share 2+, which says so (onderschat).
    wide["aandeel_2plus"] = known.fillna(0).sum(axis=1) / total
    wide["onderschat"] = known.isna().any(axis=1)
    return wide.reset_index()


def overlap_table(result: pd.DataFrame) -> pd.DataFrame:
    """Turn a revealed region-wide care_overlap result into a kinds × kinds table."""
    row = result.iloc[0]
    table = pd.DataFrame(index=list(KINDS), columns=list(KINDS), dtype="Float64")
    for i, a in enumerate(KINDS):
        table.loc[a, a] = row[a]
        for b in KINDS[i + 1 :]:
            table.loc[a, b] = table.loc[b, a] = row[f"{a}&{b}"]
    return table
