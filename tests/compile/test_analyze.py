from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.exceptions import PlanError

T = {
    "a": pd.DataFrame({"bsn": [1, 2, 3], "g": ["x", "y", "x"], "n": [1, 2, 3], "f": [0.5, 1.0, 2.0],
                       "d": [dt.date(2020, 1, 1)] * 3}),
    "b": pd.DataFrame({"bsn": [1, 1, 2], "v": [1, 2, 3]}),
    "c": pd.DataFrame({"bsn": [1, 2], "v": [1, 2]}),
}  # fmt: skip


def run(q: wp.LazyFrame) -> pd.DataFrame:
    return wp.run_local(q, T, min_group_size=1)


def test_row_level_output_is_refused_with_the_reason() -> None:
    with pytest.raises(PlanError, match=r"row-level: it ends in 'filter'.*group_by"):
        run(wp.scan("a").filter(wp.col("n") > 1))
    with pytest.raises(PlanError, match="row-level: it ends in 'select'"):
        run(wp.scan("a").select("g"))


def test_unknown_column_names_the_column_and_the_place() -> None:
    with pytest.raises(PlanError, match=r"unknown column 'leeftijd' in filter; available columns: \['bsn'"):
        run(wp.scan("a").filter(wp.col("leeftijd") > 1).agg(n=wp.count()))


def test_unknown_dataset_is_refused() -> None:
    with pytest.raises(PlanError, match="no table given for dataset 'zz'"):
        run(wp.scan("zz").agg(n=wp.count()))


@pytest.mark.parametrize(
    "q, message",
    [
        (wp.scan("a").filter(wp.col("g") > "x").agg(n=wp.count()), "strings can only be tested"),
        (wp.scan("a").filter(wp.col("n")).agg(n=wp.count()), "predicate must be boolean"),
        (wp.scan("a").with_columns(z=wp.col("g") + 1).agg(n=wp.count()), "arithmetic 'add'.*needs numbers"),
        (wp.scan("a").agg(s=wp.col("g").sum()), r"sum\(\).*needs a number or boolean, got str"),
        (wp.scan("a").with_columns(y=wp.col("n").dt.year()).agg(n=wp.count()), "needs a date, got int"),
        (wp.scan("a").with_columns(k=wp.col("n").cut([2, 1])).agg(n=wp.count()), "strictly increasing"),
        (wp.scan("a").agg(q=wp.col("n").quantile(1.5)), "0 <= q <= 1"),
        (wp.scan("a").with_columns(z=wp.lit(None)).agg(n=wp.count()), "always null"),
    ],
)
def test_type_errors_are_refused(q: wp.LazyFrame, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        run(q)


def test_final_group_key_needs_a_public_domain() -> None:
    with pytest.raises(PlanError, match="group key 'n' \\(int\\) has no public domain"):
        run(wp.scan("a").group_by("n").agg(c=wp.count()))


def test_join_with_right_side_not_known_unique_is_refused() -> None:
    q = wp.scan("a").join(wp.scan("c").with_columns(bsn=wp.col("v")), on="bsn").agg(n=wp.count())
    with pytest.raises(PlanError, match=r"not known to be unique on 'bsn'.*group_by\('bsn'\)"):
        run(q)


def test_join_with_duplicate_right_keys_is_refused_by_the_owner() -> None:
    q = wp.scan("a").join(wp.scan("b"), on="bsn").agg(n=wp.count())
    with pytest.raises(wp.DataValidationError, match=r"column 'bsn': 1 duplicate values.*aggregate that side"):
        run(q)


def test_join_after_aggregating_the_right_side_is_allowed() -> None:
    right = wp.scan("b").group_by("bsn").agg(k=wp.count(), s=wp.col("v").sum())
    out = run(wp.scan("a").join(right, on="bsn").group_by("g").agg(n=wp.count(), s=wp.col("s").sum()))
    assert out.loc[out.g == "x", "s"].tolist() == [3]
    assert out.loc[out.g == "y", "s"].tolist() == [3]


def test_expressions_cannot_be_used_as_python_booleans() -> None:
    with pytest.raises(TypeError, match=r"no truth value.*& \| ~"):
        bool(wp.col("x") > 1)
    with pytest.raises(TypeError):
        if wp.col("x") == 1:  # type: ignore[truthy-bool]
            pass


def test_join_keys_outside_the_packed_key_range_are_refused_by_the_owner() -> None:
    big = {"a": pd.DataFrame({"bsn": [1, 2**40], "g": ["x", "y"]}), "c": pd.DataFrame({"bsn": [1, 2], "v": [1, 2]})}
    q = wp.scan("a").join(wp.scan("c"), on="bsn").agg(n=wp.count())
    with pytest.raises(wp.DataValidationError, match=r"dataset 'a'.*'bsn': 1 of 2 values outside the key range"):
        wp.run_local(q, big, min_group_size=1)
