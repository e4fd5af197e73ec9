from __future__ import annotations

import pandas as pd

import werkplaats as wp
from werkplaats.local import prepare
from werkplaats.plan.explain import explain


def test_explain_names_sources_columns_joins_filters_groups_outputs_and_k() -> None:
    tables = {
        "ggd/meldingen": pd.DataFrame({"bsn": [1, 2], "gemeente": ["GM1", "GM2"], "ziekte": ["a", "b"],
                                       "postcode": ["1", "2"]}),
        "huisartsen/consulten": pd.DataFrame({"bsn": [1], "chronisch": [True], "icpc": ["R74"]}),
    }  # fmt: skip
    q = (
        wp.scan("ggd/meldingen")
        .filter(wp.col("ziekte") == "a")
        .join(wp.scan("huisartsen/consulten"), on="bsn", how="left")
        .group_by("gemeente")
        .agg(n=wp.count(), c=wp.col("chronisch").sum())
    )
    a, _ = prepare(q, tables, min_group_size=15)
    text = explain(a.plan)
    assert "ggd/meldingen: bsn, gemeente, ziekte" in text  # postcode is not read
    assert "huisartsen/consulten: bsn, chronisch" in text  # icpc is not read
    assert "Keep rows where (ziekte = 'a')" in text
    assert "on the person/record key bsn (left join" in text
    assert "Aggregate per gemeente: n = number of rows; c = sum of chronisch" in text
    assert "fewer than 15 rows are suppressed" in text
    assert a.plan.min_group_size == 15


def test_frame_repr_shows_its_steps() -> None:
    q = wp.scan("t").filter(wp.col("x") > 1).agg(n=wp.count())
    assert repr(q) == "<LazyFrame: Read t. Keep rows where (x > 1). Aggregate over all rows: n = number of rows.>"
