"""Public standard populations for directly age-standardised rates (``LazyFrame.standardize``).

A standard population gives each age band a number of persons; a rate standardised to it
weighs each band's crude rate by the band's share of the standard. The bands must be exactly
the code list of the plan's age column (the labels of its ``cut``), so this module also
regroups a standard's bands to coarser ones.

Everything here is public data (a published table, or a table a user supplies); nothing is
secret, and every function is pure.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..exceptions import PlanError

# The European Standard Population 2013 (Eurostat, "Revision of the European Standard Population",
# 2013 edition), per 100,000 persons, by 5-year age band 0-4 ... 85-89 and 90+.
ESP2013_BANDS = (
    "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49",
    "50-54", "55-59", "60-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90+",
)  # fmt: skip
ESP2013_POPULATION = (
    5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000,
    7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000,
)  # fmt: skip
STANDARDS: dict[str, dict[str, float]] = {
    "esp2013": {b: float(p) for b, p in zip(ESP2013_BANDS, ESP2013_POPULATION, strict=True)},
}
_BAND = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)|(\+))\s*$")


def standard_population(name_or_path: str | Path) -> dict[str, float]:
    """Return a standard population as a mapping age band → persons.

    Parameters
    ----------
    name_or_path
        A built-in standard's name (``"esp2013"``: the European Standard Population 2013,
        5-year bands ``0-4`` … ``85-89`` and ``90+``), or the path of a CSV file with a header
        ``band,population`` and one row per band (see `read_standard_csv`).

    Examples
    --------
    >>> import werkplaats as wp
    >>> esp = wp.standard_population("esp2013")
    >>> len(esp), esp["0-4"], esp["90+"], sum(esp.values())
    (19, 5000.0, 1000.0, 100000.0)
    """
    if isinstance(name_or_path, str) and name_or_path.lower() in STANDARDS:
        return dict(STANDARDS[name_or_path.lower()])
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        msg = f"unknown standard population {str(name_or_path)!r}: use one of {sorted(STANDARDS)} or a CSV file's path"
        raise PlanError(msg)
    return read_standard_csv(path)


def read_standard_csv(path: str | Path) -> dict[str, float]:
    """Return the standard population in a CSV file: a header ``band,population``, one row per age band.

    Refuses (PlanError, naming the line) a missing file or column, an empty band, a duplicate band,
    a population that is not a finite positive number, and a file without rows.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        msg = f"standard population: cannot read {str(p)!r} ({e.strerror or type(e).__name__})"
        raise PlanError(msg) from None
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "band" not in fields or "population" not in fields:
        msg = f"standard population {p.name}: the header must name the columns 'band' and 'population', got {fields}"
        raise PlanError(msg)
    out: dict[str, float] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        band, value = row.get("band", ""), row.get("population", "")
        if not band and not value:
            continue  # NB: a blank line
        if not band:
            msg = f"standard population {p.name}, line {line}: the band is empty"
            raise PlanError(msg)
        if band in out:
            msg = f"standard population {p.name}, line {line}: band {band!r} appears twice"
            raise PlanError(msg)
        out[band] = _persons(value, f"standard population {p.name}, line {line} (band {band!r})")
    if not out:
        msg = f"standard population {p.name}: no bands"
        raise PlanError(msg)
    return out


def standard_pairs(standard: object) -> tuple[tuple[str, float], ...]:
    """Return a standard population as (band, persons) pairs, refusing duplicates and persons not finite and above 0.

    ``standard`` is a mapping band → persons or an iterable of (band, persons) pairs.
    """
    where = "standardize(...): the standard population"
    items = standard.items() if isinstance(standard, Mapping) else standard
    try:
        raw = [(b, w) for b, w in items]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        msg = f"{where} must map each age band to its number of persons"
        raise PlanError(msg) from None
    out: list[tuple[str, float]] = []
    for b, w in raw:
        if not isinstance(b, str) or isinstance(w, bool):
            msg = f"{where} must map each age band (a str) to its number of persons"
            raise PlanError(msg)
        out.append((b, _persons(w, f"{where}, band {b!r}")))
    names = [b for b, _ in out]
    twice = sorted({b for b in names if names.count(b) > 1})
    if twice:
        msg = f"{where} names bands {twice} more than once"
        raise PlanError(msg)
    if not out:
        msg = f"{where} has no bands"
        raise PlanError(msg)
    return tuple(out)


def _persons(value: object, where: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        msg = f"{where}: the population must be a number, got {value!r}"
        raise PlanError(msg) from None
    if not math.isfinite(x) or x <= 0:
        msg = f"{where}: the population must be a finite number above 0"
        raise PlanError(msg)
    return x


def band_bounds(band: str) -> tuple[int, float]:
    """Return an age band's lowest and highest whole age: ``"65-69"`` → (65, 69), ``"90+"`` → (90, inf)."""
    m = _BAND.match(band)
    if m is None:
        msg = f"age band {band!r}: expected 'a-b' (e.g. '65-69') or 'a+' (e.g. '90+')"
        raise PlanError(msg)
    lo = int(m.group(1))
    hi = math.inf if m.group(3) else float(int(m.group(2)))
    if hi < lo:
        msg = f"age band {band!r}: its upper age is below its lower"
        raise PlanError(msg)
    return lo, hi


def regroup(
    standard: Mapping[str, float],
    groups: Mapping[str, Sequence[str]] | None = None,
    *,
    breaks: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """Return a standard population with its bands merged into coarser ones.

    Either ``groups`` (new band → the standard's bands it merges; together they must use every
    band exactly once), or ``breaks`` and ``labels`` exactly as given to ``cut`` for the age
    column: bins (-inf, b0], (b0, b1], …, (bk, inf) of whole ages. A standard band that would
    straddle a break is refused: regroup to breaks at band edges (e.g. 64, 74, 84).

    Examples
    --------
    >>> from werkplaats.plan.standards import regroup, standard_population
    >>> esp = standard_population("esp2013")
    >>> regroup(esp, breaks=[64, 74, 84], labels=["0-64", "65-74", "75-84", "85+"])
    {'0-64': 80500.0, '65-74': 10500.0, '75-84': 6500.0, '85+': 2500.0}
    """
    if (groups is None) == (breaks is None):
        msg = "regroup: give either groups, or breaks and labels"
        raise PlanError(msg)
    if breaks is not None:
        bs = [float(b) for b in breaks]
        if labels is None or len(labels) != len(bs) + 1 or len(set(labels)) != len(labels):
            msg = f"regroup: needs {len(bs) + 1} distinct labels for {len(bs)} breaks"
            raise PlanError(msg)
        if bs != sorted(set(bs)):
            msg = "regroup: breaks must be strictly increasing"
            raise PlanError(msg)
        for band in standard:
            lo, hi = band_bounds(band)
            if sum(lo > b for b in bs) != sum(hi > b for b in bs):
                msg = f"regroup: standard band {band!r} straddles a break; choose breaks at band edges"
                raise PlanError(msg)
        groups = _by_breaks(standard, bs, [str(x) for x in labels])
    assert groups is not None
    used = [b for members in groups.values() for b in members]
    unknown = sorted(set(used) - set(standard))
    if unknown:
        msg = f"regroup: bands {unknown} are not in the standard"
        raise PlanError(msg)
    twice = sorted({b for b in used if used.count(b) > 1})
    left = sorted(set(standard) - set(used), key=list(standard).index)
    if twice or left:
        msg = f"regroup: every band must be used exactly once (twice: {twice}; unused: {left})"
        raise PlanError(msg)
    out = {str(new): float(sum(standard[b] for b in members)) for new, members in groups.items()}
    empty = [b for b, v in out.items() if v <= 0]
    if empty:
        msg = f"regroup: new bands {empty} have no standard population"
        raise PlanError(msg)
    return out


def _by_breaks(standard: Mapping[str, float], breaks: list[float], labels: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {lab: [] for lab in labels}
    for band in standard:
        lo, _ = band_bounds(band)
        out[labels[sum(lo > b for b in breaks)]].append(band)
    return out
