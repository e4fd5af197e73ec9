"""Admissions across hospitals (a --hospitals 3 region): MPC == plain == the generator's truth == pandas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats import usecases as uc
from werkplaats.mpc.cluster import LocalCluster
from werkplaats.result import frame_differences
from werkplaats.synth.generate import generate
from werkplaats.synth.write import LoadedRegion, load_region, write_region

# NB: counts exact and k = 1, so that every cell compares with the truth exactly; rule 8 off on so few rows.
RULES = wp.DisclosureRules(cells_per_source=False, counts="exact")


@pytest.fixture(scope="module")
def hospitals3(tmp_path_factory: pytest.TempPathFactory) -> LoadedRegion:
    out: Path = tmp_path_factory.mktemp("hospitals3")
    write_region(generate(5, 3000, hospitals=3, gp_practices=12), out)
    return load_region(out)


def _run(r: LoadedRegion, plan: wp.LazyFrame, **kw: object) -> pd.DataFrame:
    return wp.run_local(plan, r.tables, schemas=r.catalog, min_group_size=1, rules=RULES, **kw)  # type: ignore[arg-type]


def _truth(r: LoadedRegion, key: str) -> pd.DataFrame:
    return pd.DataFrame(r.truth["hospitals"][f"per_{key}"]).set_index(key)


def test_the_region_has_three_hospitals_and_persons_in_more_than_one(hospitals3: LoadedRegion) -> None:
    names = uc.hospital_datasets(3)
    assert all(n in hospitals3.tables for n in names) and "ziekenhuis/opnamen" not in hospitals3.tables
    assert sum(1 for n in hospitals3.tables if n.startswith("huisartsenpraktijk_")) == 24
    assert hospitals3.truth["hospitals"]["persons_in_several_hospitals"] > 0


@pytest.mark.parametrize("by", ["gemeente", "leeftijdsgroep"])
def test_persons_counted_once_across_hospitals_match_the_truth(hospitals3: LoadedRegion, by: str) -> None:
    got = _run(hospitals3, uc.admissions_across_hospitals(3, by=by)).dropna(subset=[by]).set_index(by)
    truth = _truth(hospitals3, by)
    shown = got.loc[truth.index[truth["personen"] > 0]]
    assert (shown["personen"] == truth["personen"].loc[shown.index]).all()
    assert got["personen"].sum() == hospitals3.truth["hospitals"]["personen"]


def test_admissions_and_persons_match_pandas(hospitals3: LoadedRegion) -> None:
    t = hospitals3.tables
    rows = pd.concat([t[n] for n in uc.hospital_datasets(3)], ignore_index=True)
    rows = rows[pd.to_datetime(rows["opnamedatum"]).dt.year == 2024]
    adm = _run(hospitals3, uc.admissions_across_hospitals(3, persons_once=False)).dropna(subset=["gemeente"])
    want = rows.groupby(rows["gemeente"].astype(str)).size()
    assert adm.set_index("gemeente")["opnamen"].loc[want.index].tolist() == want.tolist()
    assert adm["opnamen"].sum() == hospitals3.truth["hospitals"]["opnamen"] > hospitals3.truth["hospitals"]["personen"]


@pytest.mark.mpc
def test_union_template_mpc_equals_plain(hospitals3: LoadedRegion, cluster: LocalCluster) -> None:
    plan = uc.admissions_across_hospitals(3, by="leeftijdsgroep")
    plain = _run(hospitals3, plan, perturbation_key=3)
    mpc = _run(hospitals3, plan, perturbation_key=3, engine="mpc", cluster=cluster)
    assert not frame_differences(mpc, plain)
