"""Admissions across hospitals: one analysis over the same table of several hospital organisations.

A region with several hospitals (``werkplaats synth --hospitals 3``) has one admissions table per
hospital: ``ziekenhuis_a/opnamen``, ``ziekenhuis_b/opnamen``, ... with the same schema. This template
stacks them (``wp.concat``) and counts, per gemeente or per age group, either the admissions in a
year or the persons admitted, each person once across every hospital (``distinct_on="bsn"``,
done inside the secure computation: nobody learns who was in which hospitals). Every hospital
approves the plan for its own part.

The age group is the age on 1 January of the year (0-17, 18-64, 65-69, 70+, as the open
population counts), from the population register (``gemeente/inwoners``, joined on the person key
after the union).
"""

from __future__ import annotations

import datetime as dt

from ..exceptions import PlanError
from ..expr import col, count
from ..frame import LazyFrame, concat, scan

AGE_GROUPS = ("0-17", "18-64", "65-69", "70+")


def hospital_datasets(hospitals: int = 3) -> list[str]:
    """Return the admissions datasets of a region with that many hospitals: ziekenhuis_a/opnamen, ..."""
    if not 2 <= hospitals <= 26:
        msg = f"hospitals must be from 2 to 26, got {hospitals}"
        raise PlanError(msg)
    return [f"ziekenhuis_{chr(ord('a') + i)}/opnamen" for i in range(hospitals)]


def admissions_across_hospitals(hospitals: int | list[str] = 3, year: int = 2024, *, persons_once: bool = True,
                                by: str = "gemeente") -> LazyFrame:  # fmt: skip
    """Return the plan: admissions (or persons admitted, each once) in ``year`` across hospitals, per ``by``.

    Parameters
    ----------
    hospitals
        The number of hospitals of a ``--hospitals N`` region, or their datasets' names.
    year
        Admissions with an admission date in this year.
    persons_once
        True: the output ``personen`` counts each person once, whichever hospitals admitted them;
        False: ``opnamen`` counts admissions.
    by
        "gemeente" (of residence) or "leeftijdsgroep" (age on 1 January of the year).

    Examples
    --------
    >>> from werkplaats import usecases as uc
    >>> plan = uc.admissions_across_hospitals(2, by="gemeente").to_plan()
    >>> [s.dataset for s in plan.root.input.inputs]
    ['ziekenhuis_a/opnamen', 'ziekenhuis_b/opnamen']
    """
    names = hospital_datasets(hospitals) if isinstance(hospitals, int) else list(hospitals)
    if by not in ("gemeente", "leeftijdsgroep"):
        msg = f"by must be 'gemeente' or 'leeftijdsgroep', got {by!r}"
        raise PlanError(msg)
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    cols = ["bsn", "gemeente"]
    parts = [scan(ds).filter(col("opnamedatum").is_between(first, last)).select(*cols) for ds in names]
    rows = concat(parts, distinct_on="bsn" if persons_once else None)
    name = "personen" if persons_once else "opnamen"
    if by == "gemeente":
        return rows.group_by("gemeente").agg(**{name: count()})
    people = scan("gemeente/inwoners").select("bsn", "geboortedatum")
    age = col("geboortedatum").age_at(first).cut([17, 64, 69], labels=list(AGE_GROUPS))
    return (
        rows.join(people, on="bsn").with_columns(leeftijdsgroep=age).group_by("leeftijdsgroep").agg(**{name: count()})
    )
