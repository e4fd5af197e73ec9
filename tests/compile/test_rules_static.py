"""Rules 1 and 8, checked before any party starts: a person key is a key; limits per request."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats import usecases as uc
from werkplaats.catalog.schema import ColumnSchema, TableSchema
from werkplaats.compile.analyze import check
from werkplaats.mpc import cluster as mpc_cluster
from werkplaats.synth.schemas import datasets

X = 100_000_007  # the target's person key (a public literal of the attacker's plan)
N = 40
rng = np.random.default_rng(3)
PEOPLE = pd.DataFrame({
    "bsn": np.arange(100_000_000, 100_000_000 + N, dtype=np.int64),
    "gemeente": pd.Categorical(rng.choice(["GM1", "GM2"], N), categories=["GM1", "GM2"]),
    "inkomen": rng.integers(10_000, 90_000, N),
    "hiv": rng.random(N) < 0.3,
})  # fmt: skip
GP = pd.DataFrame({"bsn": PEOPLE["bsn"][::2].to_numpy(), "medicatie": rng.integers(0, 5, N // 2)})
TABLES = {"p": PEOPLE, "gp": GP}
col, when, lit, scan = wp.col, wp.when, wp.lit, wp.scan

ATTACKS: dict[str, tuple[Callable[[], wp.LazyFrame], str]] = {
    "when_sum": (lambda: scan("p").agg(s=when(col("bsn") == X).then(col("inkomen")).otherwise(0).sum()),
                 "agg(s=...): bsn is a person key"),
    "bool_mean": (lambda: scan("p").agg(m=((col("bsn") == X) & col("hiv")).mean()), "a comparison"),
    "is_in": (lambda: scan("p").filter(col("bsn").is_in([X, X + 1])).agg(s=col("inkomen").sum()), "is_in"),
    "not_equal_filter": (lambda: scan("p").filter(col("bsn") != X).agg(s=col("inkomen").sum()), "filter: bsn"),
    "arithmetic": (lambda: scan("p").agg(s=(col("bsn") - X + col("inkomen")).sum()), "arithmetic"),
    "renamed": (lambda: scan("p").select(id=col("bsn"), inkomen=col("inkomen"))
                .filter(col("id").is_between(X, X)).agg(s=col("inkomen").sum()), "id is a person key"),
    "sum_of_key": (lambda: scan("p").agg(s=col("bsn").max()), "max()"),
    "is_null": (lambda: scan("p").agg(n=col("bsn").is_null().sum()), "is_null"),
    "when_value": (lambda: scan("p").agg(s=when(col("hiv")).then(col("bsn")).otherwise(0).min()), "when value"),
    "joined_to_a_literal": (lambda: scan("gp").with_columns(bsn=lit(X)).join(scan("p"), on="bsn")
                            .agg(s=col("inkomen").sum()), "join on 'bsn'"),
    "final_group_key": (lambda: scan("gp").group_by("bsn").agg(n=wp.count()).group_by("bsn")
                        .agg(n=col("n").sum()), "group key of the output"),
}  # fmt: skip


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_on_a_person_key_is_refused_plain(name: str) -> None:
    plan, where = ATTACKS[name]
    with pytest.raises(wp.PlanError, match="person key") as e:
        wp.run_local(plan(), TABLES)
    assert where in str(e.value)
    assert "may only be used to join on, to group per person before a join, or be counted" in str(e.value)
    assert str(X) not in str(e.value) and "single out one person" in str(e.value)


@pytest.mark.parametrize("name", ["when_sum", "bool_mean", "is_in", "not_equal_filter", "arithmetic", "renamed"])
def test_attack_on_a_person_key_is_refused_mpc_before_any_party_starts(name: str, monkeypatch: pytest.MonkeyPatch
                                                                        ) -> None:  # fmt: skip
    def no_parties(*args: object, **kwargs: object) -> None:
        raise AssertionError("the MPC run started")

    monkeypatch.setattr(mpc_cluster, "run_mpc", no_parties)
    monkeypatch.setattr(mpc_cluster, "LocalCluster", no_parties)
    with pytest.raises(wp.PlanError, match="person key"):
        wp.run_local(ATTACKS[name][0](), TABLES, engine="mpc")


def test_a_column_the_catalog_marks_identifying_is_a_key_too() -> None:
    schema = TableSchema("c", (ColumnSchema("clientnummer", "int", None, 0, 10**6, True, role="identifying"),
                               ColumnSchema("kosten", "int", None, 0, 10**6, role="magnitude")))  # fmt: skip
    df = pd.DataFrame({"clientnummer": range(30), "kosten": range(30)})
    q = scan("c").filter(col("clientnummer") == 7).agg(s=col("kosten").sum())
    with pytest.raises(wp.PlanError, match="clientnummer is a person key"):
        wp.run_local(q, {"c": df}, schemas={"c": schema}, rules=wp.DisclosureRules.cells_only())
    # NB: also with rules that name no person keys: the catalog's role is the data owner's, not the run's
    ok = scan("c").agg(n=col("clientnummer").count(), s=col("kosten").sum())
    assert wp.run_local(ok, {"c": df}, schemas={"c": schema}, rules=wp.DisclosureRules.cells_only())["n"][0] == 30


def test_joins_per_person_aggregation_renames_and_counts_of_the_key_pass() -> None:
    per_person = scan("gp").group_by("bsn").agg(m=col("medicatie").sum())
    q = (scan("p").select(id=col("bsn"), gemeente=col("gemeente"), inkomen=col("inkomen"))
         .select(bsn=col("id"), gemeente=col("gemeente"), inkomen=col("inkomen"))
         .join(per_person, on="bsn", how="left")
         .group_by("gemeente")
         .agg(n=wp.count(), personen=col("bsn").count(), met_gp=col("m").count(), m=col("m").sum()))  # fmt: skip
    out = wp.run_local(q, TABLES, rules=wp.DisclosureRules.cells_only(), min_group_size=1)
    want = PEOPLE.groupby("gemeente", observed=False).size()
    assert out.set_index("gemeente").loc[["GM1", "GM2"], "personen"].tolist() == want.tolist()
    assert out["met_gp"].sum() == N // 2


def _region_catalog() -> dict[str, TableSchema]:
    return {d.name: d.schema for d in datasets(("GM0001", "GM0002"), ("WK000101", "WK000201"))}


@pytest.mark.parametrize("template", [
    lambda: uc.infection_hotspots(2024, signal="ggd", level="wijk", disease="COVID-19"),
    lambda: uc.infection_hotspots(2024, signal="huisarts", level="gemeente", disease="COVID-19"),
    lambda: uc.waiting_list(), lambda: uc.care_stacking(2024), lambda: uc.care_overlap(2024),
], ids=["hotspots-ggd", "hotspots-huisarts", "waiting", "stacking", "overlap"])  # fmt: skip
def test_the_shipped_templates_pass_rule_1(template: Callable[[], wp.LazyFrame]) -> None:
    a = check(template().to_plan(), _region_catalog(), wp.DisclosureRules())
    assert a.plan.root is not None


def test_the_reference_region_marks_its_person_keys() -> None:
    for name, schema in _region_catalog().items():
        assert schema.column("bsn").role == "person_key", name
    # NB: so a run whose rules name no person keys still refuses a comparison with bsn
    q = scan("ggd/meldingen").filter(col("bsn") == X).agg(n=wp.count())
    with pytest.raises(wp.PlanError, match="bsn is a person key"):
        check(q.to_plan(), _region_catalog(), wp.DisclosureRules.cells_only())


# --- rule 8 ------------------------------------------------------------------------------------------------------


def test_one_bin_per_person_is_refused_naming_the_numbers() -> None:
    codes = [f"c{i}" for i in range(N)]
    df = PEOPLE.assign(code=pd.Categorical(codes, categories=codes))  # NB: a code list with a value per person
    q = scan("p").group_by("code").agg(s=col("inkomen").sum())
    with pytest.raises(wp.PlanError, match="rule 8") as e:
        wp.run_local(q, {"p": df})
    assert f"{N + 1} groups" in str(e.value) and f"{N} rows divided by k = 10 (4)" in str(e.value)
    assert len(wp.run_local(q, {"p": df}, rules=wp.DisclosureRules(cells_per_source=False))) == N + 1


def test_more_than_max_cells_groups_is_refused() -> None:
    codes = [f"c{i}" for i in range(10_000)]  # NB: 10,000 codes and a missing cell: 10,001 groups
    schema = TableSchema("t", (ColumnSchema("code", "str", tuple(codes)), ColumnSchema("x", "int", None, 0, 9)))
    q = scan("t").group_by("code").agg(n=wp.count())
    with pytest.raises(wp.PlanError, match=r"10001 groups .* more than the limit of 10000 per request"):
        check(q.to_plan(), {"t": schema}, wp.DisclosureRules())
    small = TableSchema("t", (ColumnSchema("code", "str", tuple(codes[:-1])), ColumnSchema("x", "int", None, 0, 9)))
    assert check(q.to_plan(), {"t": small}, wp.DisclosureRules()).plan.root is not None  # 10,000 groups: allowed
    with pytest.raises(wp.PlanError, match="more than the limit of 100"):
        check(q.to_plan(), {"t": small}, wp.DisclosureRules(max_cells=100))


def test_rule_8_allows_what_the_rows_allow_and_one_cell_always() -> None:
    q = scan("p").group_by("gemeente").agg(n=wp.count())  # NB: 3 groups, 40 rows / 10 = 4
    assert wp.run_local(q, TABLES)["gemeente"].tolist()[:2] == ["GM1", "GM2"]
    tiny = {"p": PEOPLE.head(3)}
    out = wp.run_local(scan("p").agg(n=wp.count()), tiny)  # NB: one cell is the cell rule's to withhold
    assert out["suppressed"].tolist() == [True]
