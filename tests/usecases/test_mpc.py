"""Every template gives the same result on the MPC executor as on the plain one."""

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

# NB: small region, k = 1, so that nearly every cell's values are compared, not suppressed; rule 8's groups per
# rows (a static check, the same for both executors) would refuse most templates on so few rows.
RULES = wp.DisclosureRules(cells_per_source=False)
PLANS = {
    "hotspots-ggd-gemeente": lambda: uc.infection_hotspots(2024),
    "hotspots-ggd-wijk": lambda: uc.infection_hotspots(2024, level="wijk"),
    "hotspots-huisarts-risk": lambda: uc.infection_hotspots(2024, signal="huisarts", risk_groups=True),
    "hotspots-ziekenhuis-risk": lambda: uc.infection_hotspots(2024, signal="ziekenhuis", risk_groups=True),
    "waiting-list": lambda: uc.waiting_list(by=("gemeente", "leeftijdsgroep")),
    "care-stacking": lambda: uc.care_stacking(),
    "care-overlap": lambda: uc.care_overlap(),
    "chronic-notifications": lambda: uc.chronic_notifications(2024, disease="COVID-19"),
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> LoadedRegion:
    out: Path = tmp_path_factory.mktemp("small")
    write_region(generate(5, 1500), out)  # NB: small; every template still releases cells
    return load_region(out)


@pytest.mark.parametrize("name", list(PLANS))
def test_template_mpc_equals_plain(small: LoadedRegion, cluster: LocalCluster, name: str) -> None:
    plan = PLANS[name]()
    plain = wp.run_local(plan, small.tables, schemas=small.catalog, min_group_size=1, rules=RULES, perturbation_key=3)
    mpc = wp.run_local(
        plan,
        small.tables,
        schemas=small.catalog,
        engine="mpc",
        cluster=cluster,
        min_group_size=1,
        rules=RULES,
        perturbation_key=3,
    )
    assert not frame_differences(mpc, plain)
    assert (~plain["suppressed"]).sum() > 0


def test_chronic_notifications_counts_each_patient_once(small: LoadedRegion) -> None:
    """Patients, the chronically ill, and who of them the GGD notified, per gemeente: as pandas counts them."""
    exact = wp.DisclosureRules(cells_per_source=False, counts="exact")  # NB: rule 6's perturbation off
    plan = uc.chronic_notifications(2024, disease="COVID-19")
    got = wp.run_local(plan, small.tables, schemas=small.catalog, min_group_size=1, rules=exact)
    m, p = small.tables["ggd/meldingen"], small.tables["huisartsen/patienten"]
    day = pd.to_datetime(m["eerste_ziektedag"])
    ill = set(m.loc[(m["ziekte"] == "COVID-19") & (day.dt.year == 2024), "bsn"])
    p = p.assign(chronisch=p["chronische_aandoeningen"] >= 1, gemeld=p["bsn"].isin(ill))
    p = p.assign(gemeld_chronisch=p["chronisch"] & p["gemeld"])
    truth = p.groupby("gemeente")[["chronisch", "gemeld", "gemeld_chronisch"]].sum()
    truth.insert(0, "n", p.groupby("gemeente").size())
    got = got[got["gemeente"].notna()].set_index("gemeente")
    assert len(got) == len(truth) and truth["gemeld"].sum() > 0
    for col in truth:
        assert got.loc[truth.index, col].fillna(0).astype(int).tolist() == truth[col].astype(int).tolist(), col
