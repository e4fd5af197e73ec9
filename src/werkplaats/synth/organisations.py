"""Several hospitals and GP practices: a region's care split over organisations with the same schemas.

``werkplaats synth --hospitals 3 --gp-practices 12`` generates the default region and then splits
its hospital admissions (``ziekenhuis/opnamen``) over ``ziekenhuis_a/opnamen``, ``ziekenhuis_b/opnamen``,
... and its GP records (``huisartsen/patienten``, ``huisartsen/consulten``) over
``huisartsenpraktijk_01/...``, ..., each with the same schema as the table it replaces. Without
the options nothing changes: the default region and its files stay exactly as they are.

Hospitals: each gemeente has a home hospital (gemeente i: hospital i mod H); an admission goes there
with probability HOME_HOSPITAL, else to one of the others at random, so persons with several
admissions are often in more than one hospital. GP practices: each patient is registered with exactly
one practice (patients stay unique on the person key), and a consult goes to the patient's practice.

The truth (``truth["hospitals"]``) is computed from the unsplit admissions: per gemeente and per age
group the admissions and the distinct persons admitted in the year, and how many persons are in more
than one hospital.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .generate import Region

HOME_HOSPITAL = 0.75  # share of a person's admissions in the hospital of their gemeente
HOSPITAL_TABLE, GP_TABLES = "ziekenhuis/opnamen", ("huisartsen/patienten", "huisartsen/consulten")
MAX_HOSPITALS, MAX_PRACTICES = len(string.ascii_lowercase), 99
AGE_GROUPS = ("0-17", "18-64", "65-69", "70+")  # NB: as generate.POP_GROUPS, on 1 January of the year
TRUTH_YEAR = 2024


def hospital_names(hospitals: int) -> list[str]:
    """Return the hospital organisations' admission datasets: ziekenhuis_a/opnamen, ziekenhuis_b/opnamen, ..."""
    return [f"ziekenhuis_{c}/opnamen" for c in string.ascii_lowercase[:hospitals]]


def practice_names(practices: int, table: str) -> list[str]:
    """Return the GP practices' datasets of one table: huisartsenpraktijk_01/patienten, ..."""
    return [f"huisartsenpraktijk_{i:02d}/{table}" for i in range(1, practices + 1)]


def check_counts(hospitals: int, gp_practices: int) -> None:
    """Refuse counts of organisations out of range (ValueError, as generate's)."""
    if not 1 <= hospitals <= MAX_HOSPITALS:
        msg = f"hospitals must be from 1 to {MAX_HOSPITALS} (got {hospitals})"
        raise ValueError(msg)
    if not 1 <= gp_practices <= MAX_PRACTICES:
        msg = f"gp_practices must be from 1 to {MAX_PRACTICES} (got {gp_practices})"
        raise ValueError(msg)


def split_organisations(region: Region, hospitals: int, gp_practices: int) -> None:
    """Split the region's hospital and GP tables over several organisations (in place); add their truth."""
    check_counts(hospitals, gp_practices)
    rng = np.random.default_rng([region.seed, *b"organisaties"])
    tables = region.tables
    if hospitals > 1:
        adm = tables.pop(HOSPITAL_TABLE)
        gem_index = {c: i for i, c in enumerate(region.gemeenten["code"])}
        home = np.array([gem_index[g] % hospitals for g in adm["gemeente"]], dtype=np.int64)
        other = (home + rng.integers(1, hospitals, len(adm))) % hospitals
        where = np.where(rng.random(len(adm)) < HOME_HOSPITAL, home, other)
        names = hospital_names(hospitals)
        for h, name in enumerate(names):
            tables[name] = adm[where == h].reset_index(drop=True)
        region.split[HOSPITAL_TABLE] = tuple(names)
        region.truth["hospitals"] = _hospital_truth(adm, where, names, tables["gemeente/inwoners"])
    if gp_practices > 1:
        patients, consults = tables.pop(GP_TABLES[0]), tables.pop(GP_TABLES[1])
        practice = rng.integers(0, gp_practices, len(patients))
        of = dict(zip(patients["bsn"], practice, strict=True))
        cp = np.array([of.get(b, -1) for b in consults["bsn"]], dtype=np.int64)
        cp = np.where(cp < 0, rng.integers(0, gp_practices, len(consults)), cp)
        for table, df, where in (("patienten", patients, practice), ("consulten", consults, cp)):
            names = practice_names(gp_practices, table)
            for p, name in enumerate(names):
                tables[name] = df[where == p].reset_index(drop=True)
            region.split[f"huisartsen/{table}"] = tuple(names)
        region.truth["gp_practices"] = {
            "practices": practice_names(gp_practices, "patienten"),
            "patients_per_practice": np.bincount(practice, minlength=gp_practices).tolist(),
            "note": "each patient is registered with one practice; a consult goes to the patient's practice",
        }


def _hospital_truth(adm: pd.DataFrame, where: np.ndarray, names: list[str], inwoners: pd.DataFrame) -> dict[str, Any]:
    """Return the union's figures for TRUTH_YEAR, from the unsplit admissions and where each went."""
    dates = pd.to_datetime(adm["opnamedatum"])
    in_year = (dates.dt.year == TRUTH_YEAR).to_numpy()
    year = adm[in_year].assign(ziekenhuis=where[in_year])
    persons = year.drop_duplicates("bsn")
    birth = pd.to_datetime(inwoners.set_index("bsn")["geboortedatum"])
    jan1 = pd.Timestamp(TRUTH_YEAR, 1, 1)
    b = birth.reindex(persons["bsn"]).to_numpy()
    born = pd.DatetimeIndex(b)
    age = jan1.year - born.year - ((born.month * 100 + born.day) > 101).astype(int)
    group = np.select([age < 18, age < 65, age < 70], list(AGE_GROUPS[:3]), AGE_GROUPS[3])
    hospitals_per_person = year.groupby("bsn")["ziekenhuis"].nunique()
    per_gemeente = [
        {
            "gemeente": g,
            "opnamen": int((year["gemeente"] == g).sum()),
            "personen": int((persons["gemeente"] == g).sum()),
        }
        for g in sorted(adm["gemeente"].unique())
    ]
    per_age = [{"leeftijdsgroep": a, "personen": int((group == a).sum())} for a in AGE_GROUPS]
    return {
        "hospitals": names, "year": TRUTH_YEAR, "home_hospital_share": HOME_HOSPITAL,
        "definition": f"admissions with opnamedatum in {TRUTH_YEAR}; personen: distinct bsn over every hospital "
                      f"(a person's gemeente is the same in each); leeftijdsgroep: age on {TRUTH_YEAR}-01-01 "
                      "from gemeente/inwoners.geboortedatum",
        "opnamen": len(year), "personen": len(persons),
        "persons_in_several_hospitals": int((hospitals_per_person > 1).sum()),
        "per_gemeente": per_gemeente, "per_leeftijdsgroep": per_age,
    }  # fmt: skip
