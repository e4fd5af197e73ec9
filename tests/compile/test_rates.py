"""Directly age-standardised rates (LazyFrame.standardize) on the plain executor, against a hand computation.

Also the cell rule on rates, an analyst isolating one person, hostile standard populations, and the
public standards (werkplaats.plan.standards). The MPC executor runs the same measure in
tests/mpc/test_rates.py.
"""

from __future__ import annotations

import doctest
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.compile.models.rates import Z95
from werkplaats.plan import nodes as n
from werkplaats.plan import standards
from werkplaats.plan.standards import ESP2013_BANDS, regroup, standard_population

K = 10
BANDS = ("0-64", "65-74", "75-84", "85+")
BREAKS = [64, 74, 84]
STANDARD = regroup(standard_population("esp2013"), breaks=BREAKS, labels=list(BANDS))
GEMEENTEN = ("A", "B", "C")
CELLS_ONLY = wp.DisclosureRules.cells_only()


def people(n: int, seed: int, *, p_event: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "bsn": np.arange(n),
        "gemeente": pd.Categorical(rng.choice(GEMEENTEN, n), categories=GEMEENTEN),
        "vrouw": rng.random(n) < 0.5,
        "leeftijd": rng.integers(40, 100, n),
        "opnamen": rng.binomial(3, p_event, n),
    })  # fmt: skip


def rate_query(by: str | list[str] = "gemeente", events: str = "opnamen", standard: object = None,
               per: int = 100_000) -> wp.LazyFrame:  # fmt: skip
    band = wp.col("leeftijd").cut(BREAKS, labels=list(BANDS))
    return (wp.scan("p").with_columns(band=band)
            .standardize(events=events, age="band", standard=STANDARD if standard is None else standard, by=by,
                         per=per))  # fmt: skip


def run(q: wp.LazyFrame | n.Plan, df: pd.DataFrame, rules: wp.DisclosureRules = CELLS_ONLY) -> pd.DataFrame:
    return wp.run_local(q, {"p": df}, engine="plain", min_group_size=K, rules=rules, perturbation_key=1)


def hand(df: pd.DataFrame, by: list[str], events: str = "opnamen", per: int = 100_000) -> dict[tuple, dict]:
    """The textbook computation with pandas: crude rate per band, weighted by the standard's shares; per key tuple."""
    d = df.dropna(subset=[events, "leeftijd"]).copy()
    d["band"] = pd.cut(d["leeftijd"].astype(float), [-np.inf, *BREAKS, np.inf], labels=list(BANDS), right=True)
    d["e"] = d[events].astype(float)
    total = sum(STANDARD.values())
    out: dict[tuple, dict] = {}
    keys = [tuple(None if pd.isna(v) else v for v in t) for t in d[by].astype(object).itertuples(index=False)]
    d["cell"] = keys
    for key, cell in d.groupby("cell", sort=False):
        g = cell.groupby("band", observed=True)["e"].agg(["size", "sum"])
        w = g.index.astype(str).map(lambda b: STANDARD[b] / total).to_numpy(dtype=float)
        rate = float((per * w * g["sum"] / g["size"]).sum())
        var = float((per**2 * w**2 * g["sum"] / g["size"] ** 2).sum())
        out[key] = {"rate": rate, "lo": max(rate - Z95 * math.sqrt(var), 0.0), "hi": rate + Z95 * math.sqrt(var),
                    "n": len(cell), "d": float(cell["e"].sum()), "bands": len(g)}  # fmt: skip
    return out


def cell_of(out: pd.DataFrame, **keys: object) -> pd.Series:
    sel = np.ones(len(out), dtype=bool)
    for k, v in keys.items():
        sel &= out[k].isna().to_numpy() if v is None else (out[k] == v).fillna(False).to_numpy()
    assert sel.sum() == 1
    return out[sel].iloc[0]


# --- the numbers --------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 400), seed=st.integers(0, 2**32 - 1), p=st.sampled_from([0.02, 0.2, 0.6]),
       two_keys=st.booleans(), missing=st.booleans(), as_bool=st.booleans())  # fmt: skip
def test_plain_equals_hand_computation_on_random_tables(n: int, seed: int, p: float, two_keys: bool, missing: bool,
                                                        as_bool: bool) -> None:  # fmt: skip
    df = people(n, seed, p_event=p)
    rng = np.random.default_rng(seed + 1)
    if as_bool:
        df["opnamen"] = df["opnamen"] > 0
    if missing:  # NB: missing events or age: the row is left out; a missing key: the key's 'missing' cell
        df["opnamen"] = df["opnamen"].astype("boolean" if as_bool else "Int64").where(rng.random(n) > 0.1, pd.NA)
        df["leeftijd"] = df["leeftijd"].astype("Int64").where(rng.random(n) > 0.1, pd.NA)
        df["gemeente"] = df["gemeente"].where(rng.random(n) > 0.1)
    by = ["gemeente", "vrouw"] if two_keys else ["gemeente"]
    out = run(rate_query(by=by), df)
    want = hand(df, by)
    assert len(out) == (4 * 3 if two_keys else 4)
    for _, row in out.iterrows():
        key = tuple(None if pd.isna(row[k]) else row[k] for k in by)
        if key not in want:  # NB: an empty cell: withheld
            assert row["suppressed"] and pd.isna(row["rate"])
            continue
        w = want[key]
        released = w["n"] >= K and w["d"] >= K and w["bands"] >= 2
        assert row["suppressed"] == (not released)
        if released:
            assert row["rate"] == pytest.approx(w["rate"], rel=1e-9, abs=1e-9)
            assert row["ci_low"] == pytest.approx(w["lo"], rel=1e-9, abs=1e-9)
            assert row["ci_high"] == pytest.approx(w["hi"], rel=1e-9, abs=1e-9)
        else:
            assert pd.isna(row["rate"]) and pd.isna(row["ci_low"]) and pd.isna(row["ci_high"])


def test_a_small_age_band_counts_fully_inside_the_rate() -> None:
    # NB: gemeente A has 2 persons of 85+, both with 3 admissions: an aggregate would withhold that band's cell,
    # but the rate weighs it with the standard's share of 85+ (3%) all the same
    rng = np.random.default_rng(3)
    young = pd.DataFrame({"bsn": np.arange(300), "gemeente": "A", "leeftijd": rng.integers(40, 85, 300),
                          "opnamen": rng.binomial(1, 0.1, 300)})  # fmt: skip
    old = pd.DataFrame({"bsn": [300, 301], "gemeente": "A", "leeftijd": [90, 95], "opnamen": [3, 3]})
    df = pd.concat([young, old], ignore_index=True)
    df["gemeente"] = pd.Categorical(df["gemeente"].tolist(), categories=["A", "B"])
    a = cell_of(run(rate_query(), df), gemeente="A")
    full = hand(df, ["gemeente"])[("A",)]
    assert a["rate"] == pytest.approx(full["rate"], rel=1e-9)
    w85 = STANDARD["85+"] / sum(STANDARD.values())
    without = hand(young, ["gemeente"])[("A",)]  # NB: the rate if the small band were dropped: biased
    assert a["rate"] - without["rate"] == pytest.approx(100_000 * w85 * 3.0, rel=1e-9)
    counts = run(wp.scan("p").with_columns(band=wp.col("leeftijd").cut(BREAKS, labels=list(BANDS)))
                 .group_by("gemeente", "band").agg(n=wp.count()), df)  # fmt: skip
    assert cell_of(counts, gemeente="A", band="85+")["suppressed"]  # NB: what an aggregate would have shown


def test_a_cell_with_fewer_than_k_events_is_withheld() -> None:
    df = pd.DataFrame({"bsn": np.arange(200), "gemeente": ["A"] * 100 + ["B"] * 100,
                       "leeftijd": np.tile([50, 70, 80, 90], 50), "opnamen": 0})  # fmt: skip
    df.loc[:8, "opnamen"] = 1  # NB: A: 9 events
    df.loc[100:109, "opnamen"] = 1  # NB: B: 10 events
    df["gemeente"] = pd.Categorical(df["gemeente"].tolist(), categories=["A", "B"])
    out = run(rate_query(), df)
    a, b = cell_of(out, gemeente="A"), cell_of(out, gemeente="B")
    assert a["suppressed"] and pd.isna(a["rate"]) and a["reason"].startswith("fewer than 10 events or 10 persons")
    assert not b["suppressed"] and b["rate"] > 0 and b["ci_low"] < b["rate"] < b["ci_high"]


def test_negative_events_withhold_the_cell_as_out_of_range() -> None:
    df = people(300, 4)
    df.loc[df["gemeente"] == "B", "opnamen"] = -1
    out = run(rate_query(), df)
    assert cell_of(out, gemeente="B")["suppressed"] and "out of range" in cell_of(out, gemeente="B")["reason"]
    assert not cell_of(out, gemeente="A")["suppressed"]


def test_the_rate_is_per_the_given_number_of_persons() -> None:
    df = people(400, 5)
    per_k = cell_of(run(rate_query(per=1000), df), gemeente="A")
    per_100k = cell_of(run(rate_query(), df), gemeente="A")
    assert per_100k["rate"] == pytest.approx(100 * per_k["rate"], rel=1e-12)


# --- attacks --------------------------------------------------------------------------------------


def test_a_cell_of_one_person_is_withheld_however_many_events() -> None:
    df = people(300, 6)
    df["gemeente"] = pd.Categorical(np.where(df["bsn"] == 7, "C", np.where(df["bsn"] % 2, "A", "B")),
                                    categories=GEMEENTEN)  # fmt: skip
    df.loc[df["bsn"] == 7, "opnamen"] = 50  # NB: the target's admissions pass the events rule alone
    out = run(rate_query(), df)
    c = cell_of(out, gemeente="C")
    assert c["suppressed"] and pd.isna(c["rate"]) and pd.isna(c["ci_low"]) and pd.isna(c["ci_high"])


def test_isolating_one_person_by_a_filter_is_refused_or_withheld() -> None:
    df = people(300, 7).assign(nr=np.arange(300))  # NB: nr: a row number, not a person key
    band = wp.col("leeftijd").cut(BREAKS, labels=list(BANDS))

    def only(pred: wp.Expr) -> wp.LazyFrame:
        return (
            wp.scan("p")
            .filter(pred)
            .with_columns(band=band)
            .standardize(events="opnamen", age="band", standard=STANDARD, by="gemeente")
        )

    with pytest.raises(wp.PlanError, match="person key"):
        run(only(wp.col("bsn") == 7), df, rules=wp.DisclosureRules())
    out = run(only(wp.col("nr") == 7), df, rules=wp.DisclosureRules())
    assert out["suppressed"].all() and out["rate"].isna().all()
    got = run(only(wp.col("nr") != 7), df, rules=wp.DisclosureRules())  # NB: the complement rule (rule 5)
    assert got["suppressed"].all() and got["reason"][0].startswith("the whole result: ")


def test_the_output_has_no_counts_and_the_default_rules_release_rates() -> None:
    df = people(3000, 8)
    out = run(rate_query(), df, rules=wp.DisclosureRules())
    assert list(out.columns) == ["gemeente", "rate", "ci_low", "ci_high", "suppressed", "reason"]
    assert out["suppressed"].tolist() == [False, False, False, True]


def test_a_cell_with_persons_in_one_age_band_only_is_withheld() -> None:
    # NB: one band: d = (1.96 · rate / half-width)² and n = per · w · d / rate would give back its exact counts
    df = people(400, 12)
    df.loc[df["gemeente"] == "C", "leeftijd"] = 90
    out = run(rate_query(), df)
    c = cell_of(out, gemeente="C")
    assert c["suppressed"] and pd.isna(c["rate"]) and "fewer than 2 age bands" in c["reason"]
    assert not cell_of(out, gemeente="A")["suppressed"]
    df.loc[df["bsn"] == int(df.loc[df["gemeente"] == "C", "bsn"].iloc[0]), "leeftijd"] = 70
    assert not cell_of(run(rate_query(), df), gemeente="C")["suppressed"]  # NB: a second band: released


def test_a_rate_over_one_age_band_is_refused() -> None:
    q = (wp.scan("p").with_columns(band=wp.col("leeftijd").cut([], labels=["alle"]))
         .standardize(events="opnamen", age="band", standard={"alle": 1.0}, by="gemeente"))  # fmt: skip
    with pytest.raises(wp.PlanError, match="one age band"):
        run(q, people(50, 9))


# --- hostile or wrong plans --------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "words"), [
    ({"85+": -5.0}, "band '85+': the population must be a finite number above 0"),
    ({"85+": float("nan")}, "band '85+': the population must be a finite number above 0"),
    ({"85+": float("inf")}, "band '85+': the population must be a finite number above 0"),
    ({"85+": 0.0}, "band '85+': the population must be a finite number above 0"),
    ({"85+": "veel"}, "must be a number"),
    ({"85+": None}, "missing ['85+']"),
    ({"95+": 100.0}, "not in the code list ['95+']"),
])  # fmt: skip
def test_a_hostile_standard_is_refused(change: dict[str, float | None], words: str) -> None:
    std = dict(STANDARD)
    for band, v in change.items():
        if v is None:
            del std[band]
        else:
            std[band] = v
    with pytest.raises(wp.PlanError, match="standard population") as e:
        run(rate_query(standard=std), people(50, 9))
    assert words in str(e.value)


def test_a_hostile_standard_that_bypasses_the_api_is_refused() -> None:
    doc = json.loads(rate_query().to_json())
    assert doc["root"]["op"] == "standardize"
    doc["root"]["standard"][3]["population"] = -2500.0  # NB: 85+
    with pytest.raises(wp.PlanError, match=r"standard/3/population"):  # NB: the plan format refuses it
        wp.from_plan(json.dumps(doc))
    node = rate_query().node
    assert isinstance(node, n.Standardize)
    for bad in (-2500.0, float("nan")):  # NB: a node built by hand reaches the checker
        plan = n.Plan(replace(node, standard=(*node.standard[:3], ("85+", bad))))
        with pytest.raises(wp.PlanError, match=r"finite number of persons above 0; it does not for \['85\+'\]"):
            run(plan, people(50, 9))


def test_a_standard_naming_a_band_twice_is_refused() -> None:
    pairs = [*STANDARD.items(), ("85+", 10.0)]
    with pytest.raises(wp.PlanError, match=r"more than once"):
        run(rate_query(standard=pairs), people(50, 9))


@pytest.mark.parametrize(("query", "words"), [
    (lambda: rate_query(events="gemeente", by=[]), "must be an int"),
    (lambda: rate_query(by="leeftijd"), "no public domain"),
    (lambda: wp.scan("p").standardize(events="opnamen", age="leeftijd", standard=STANDARD), "categorical"),
    (lambda: rate_query(events="nope"), "not in the input"),
    (lambda: rate_query(per=0), "per must be"),
    (lambda: rate_query(per=1.5), "per must be"),  # type: ignore[arg-type]
    (lambda: rate_query(by="band"), "different columns"),
])  # fmt: skip
def test_a_wrong_plan_is_refused(query: object, words: str) -> None:
    with pytest.raises(wp.PlanError, match=words):
        run(query(), people(50, 9))  # type: ignore[operator]


def test_the_age_band_column_may_not_be_the_person_key() -> None:
    with pytest.raises(wp.PlanError):
        run(wp.scan("p").standardize(events="opnamen", age="bsn", standard={"0": 1.0}), people(50, 9),
            rules=replace(CELLS_ONLY, person_keys=("bsn",)))  # fmt: skip


# --- standard populations ------------------------------------------------------------------------------


def test_the_european_standard_population_2013() -> None:
    esp = standard_population("esp2013")
    assert tuple(esp) == ESP2013_BANDS and sum(esp.values()) == 100_000
    assert esp["0-4"] == 5000 and esp["45-49"] == 7000 and esp["85-89"] == 1500 and esp["90+"] == 1000


def test_docstring_examples_of_the_standards() -> None:
    got = doctest.testmod(standards, optionflags=doctest.ELLIPSIS)
    assert got.attempted > 0 and got.failed == 0


def test_a_users_csv_is_read(tmp_path: Path) -> None:
    f = tmp_path / "nl.csv"
    f.write_text("band,population\n0-64,14000000\n65-74,2000000\n75-84,1200000\n85+,400000\n")
    std = standard_population(f)
    assert std == {"0-64": 14e6, "65-74": 2e6, "75-84": 1.2e6, "85+": 4e5}
    out = run(rate_query(standard=std), people(800, 10))
    assert out["rate"].notna().sum() == 3


@pytest.mark.parametrize(("text", "words"), [
    ("band;population\n0-64;1\n", "header"),
    ("band,population\n0-64,1\n0-64,2\n", "line 3: band '0-64' appears twice"),
    ("band,population\n0-64,-1\n", "line 2 (band '0-64'): the population must be a finite number above 0"),
    ("band,population\n0-64,nan\n", "finite number above 0"),
    ("band,population\n0-64,veel\n", "must be a number"),
    ("band,population\n,5\n", "the band is empty"),
    ("band,population\n", "no bands"),
])  # fmt: skip
def test_a_bad_csv_is_refused_clearly(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "std.csv"
    f.write_text(text)
    with pytest.raises(wp.PlanError) as e:
        standard_population(f)
    assert words in str(e.value)


def test_unknown_standards_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(wp.PlanError, match="unknown standard population"):
        standard_population("who2000")
    with pytest.raises(wp.PlanError, match="cannot read"):
        standard_population(tmp_path / "absent.csv")


def test_regroup_by_groups_and_its_refusals() -> None:
    esp = standard_population("esp2013")
    young = list(ESP2013_BANDS[:13])
    got = regroup(esp, {"0-64": young, "65+": list(ESP2013_BANDS[13:])})
    assert got == {"0-64": 80_500.0, "65+": 19_500.0}
    with pytest.raises(wp.PlanError, match="unused"):
        regroup(esp, {"0-64": young})
    with pytest.raises(wp.PlanError, match="twice"):
        regroup(esp, {"a": young, "b": [*ESP2013_BANDS[12:]]})
    with pytest.raises(wp.PlanError, match="straddles"):
        regroup(esp, breaks=[66], labels=["young", "old"])
    with pytest.raises(wp.PlanError, match="labels"):
        regroup(esp, breaks=[64], labels=["young"])
    assert math.isclose(sum(regroup(esp, breaks=[64], labels=["a", "b"]).values()), 100_000)
