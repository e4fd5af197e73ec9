"""The plain executor against hand-computed answers (it is the oracle for everything else)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

import werkplaats as wp

PEOPLE = pd.DataFrame({
    "bsn": [1, 2, 3, 4, 5, 6],
    "gemeente": pd.Categorical(["A", "A", "A", "B", "B", None], categories=["A", "B"]),
    "leeftijd": [10, 20, 30, 40, None, 60],
    "geboren": [dt.date(2000, 3, 1), dt.date(2000, 2, 29), None, dt.date(1950, 12, 31), dt.date(1960, 1, 1),
                dt.date(1940, 6, 15)],
})  # fmt: skip
GP = pd.DataFrame({"bsn": [1, 3, 5, 7], "chronisch": [True, False, True, True]})
EXACT = wp.DisclosureRules.cells_only()  # NB: arithmetic against hand-computed answers: no perturbation (rule 6)


def test_group_by_gives_one_row_per_domain_cell_with_missing_last() -> None:
    out = wp.run_local(wp.scan("p").group_by("gemeente").agg(n=wp.count(), m=wp.col("leeftijd").mean()),
                       {"p": PEOPLE}, min_group_size=1, rules=EXACT)  # fmt: skip
    assert out["gemeente"].tolist()[:2] == ["A", "B"] and pd.isna(out["gemeente"][2])
    assert out["n"].tolist() == [3, 2, 1]
    assert out["m"].tolist() == [20.0, 40.0, 60.0]
    assert out["suppressed"].tolist() == [False, False, False]


def test_small_cells_are_suppressed_with_all_their_statistics() -> None:
    out = wp.run_local(wp.scan("p").group_by("gemeente").agg(n=wp.count(), m=wp.col("leeftijd").mean()),
                       {"p": PEOPLE}, min_group_size=3, rules=wp.DisclosureRules.cells_only())  # fmt: skip
    assert out["n"].isna().tolist() == [False, True, True]
    assert out["m"].isna().tolist() == [False, True, True]
    assert out["reason"].tolist() == [None, "fewer than 3 rows", "fewer than 3 rows"]


def test_statistic_from_too_few_values_is_suppressed_on_its_own() -> None:
    out = wp.run_local(wp.scan("p").group_by("gemeente").agg(n=wp.count(), m=wp.col("leeftijd").mean()),
                       {"p": PEOPLE}, min_group_size=2, rules=EXACT)  # fmt: skip
    b = out[out.gemeente == "B"].iloc[0]
    assert b["n"] == 2 and pd.isna(b["m"])
    assert b["reason"] == "fewer than 2 values (or a count below 2) for: m"


def test_left_join_keeps_unmatched_rows_with_nulls_and_inner_drops_them() -> None:
    t = {"p": PEOPLE, "g": GP}
    left = wp.scan("p").join(wp.scan("g"), on="bsn", how="left")
    out = wp.run_local(left.agg(n=wp.count(), c=wp.col("chronisch").count(), s=wp.col("chronisch").sum()),
                       t, min_group_size=1, rules=EXACT)  # fmt: skip
    assert (out["n"][0], out["c"][0], out["s"][0]) == (6, 3, 2)
    inner = wp.scan("p").join(wp.scan("g"), on="bsn").agg(n=wp.count())
    assert wp.run_local(inner, t, min_group_size=1, rules=EXACT)["n"][0] == 3


def test_age_at_counts_whole_years_and_handles_leap_days() -> None:
    q = (wp.scan("p").with_columns(age=wp.col("geboren").age_at("2024-02-28"))
         .with_columns(band=wp.col("age").cut([23], labels=["<=23", ">23"]))
         .group_by("band").agg(n=wp.count(), lo=wp.col("age").min(), hi=wp.col("age").max()))  # fmt: skip
    out = wp.run_local(q, {"p": PEOPLE}, min_group_size=1, rules=EXACT)
    # born 2000-03-01 → 23; 2000-02-29 → 23 (birthday not reached on 2024-02-28);
    # 1960-01-01 → 64, 1950-12-31 → 73, 1940-06-15 → 83; a missing date is its own cell.
    assert out["n"].tolist() == [2, 3, 1]
    assert out.loc[0, "lo"] == 23 and out.loc[0, "hi"] == 23
    assert out.loc[1, "lo"] == 64 and out.loc[1, "hi"] == 83
    assert pd.isna(out.loc[2, "lo"])


def test_kleene_logic_and_fill_null() -> None:
    df = pd.DataFrame({"a": pd.array([True, False, None, None], dtype="boolean"),
                       "b": pd.array([None, None, True, False], dtype="boolean")})  # fmt: skip
    q = wp.scan("t").agg(
        either=(wp.col("a") | wp.col("b")).sum(),
        both=(wp.col("a") & wp.col("b")).count(),  # false & null = false is known
        filled=wp.col("a").fill_null(True).sum(),
    )
    out = wp.run_local(q, {"t": df}, min_group_size=1, rules=EXACT)
    assert out["either"][0] == 2  # T|null=T, F|null=null, null|T=T, null|F=null
    assert out["both"][0] == 2  # F&null=F, null&F=F known; the others null
    assert out["filled"][0] == 3
