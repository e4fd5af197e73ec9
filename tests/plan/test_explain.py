from __future__ import annotations

import pandas as pd

import werkplaats as wp
from werkplaats.catalog.schema import ColumnSchema, TableSchema
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
    a, _ = prepare(q, tables, min_group_size=15, rules=wp.DisclosureRules.cells_only())  # NB: 2 rows
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


def test_explain_names_the_rules_applied_to_each_output_statistic() -> None:
    schema = TableSchema("z/kosten", (
        ColumnSchema("bsn", "int", None, 0, 10**9, True, role="person_key"),
        ColumnSchema("gemeente", "str", ("GM1", "GM2")),
        ColumnSchema("kosten", "float", None, 0, 10**6, role="magnitude"),
        ColumnSchema("leeftijd", "int", None, 0, 110, extremes_base=5),
        ColumnSchema("ligduur", "int", None, 0, 365),
        ColumnSchema("hiv", "bool"),
    ))  # fmt: skip
    q = (
        wp.scan("z/kosten")
        .filter(wp.col("leeftijd") >= 18)
        .group_by("gemeente")
        .agg(n=wp.count(), kosten_sum=wp.col("kosten").sum(), max_leeftijd=wp.col("leeftijd").max(),
             max_ligduur=wp.col("ligduur").max(), hiv=wp.col("hiv").mean(), med=wp.col("ligduur").median())
    )  # fmt: skip
    text = explain(q.to_plan(), rules=wp.DisclosureRules(), catalog={"z/kosten": schema})
    assert "fewer than 10 rows are suppressed" in text  # NB: the existing lines stay
    assert "  - n: count, perturbed (cell key method, D=2, V=1); withheld below 10 rows" in text
    assert "  - kosten_sum: sum of a magnitude: dominance (2, 90%), p% 10, at least 10 contributors" in text
    assert "  - max_leeftijd: maximum: rounded to 5, released when 10 contributors share it" in text
    assert "  - max_ligduur: maximum: withheld (extremes, rule 4)" in text
    assert (
        "  - hiv: mean of a condition: a count of its true rows, withheld below 10 true rows, or below 10 false "
        "rows when not all are true (rule 2)"
    ) in text
    assert "  - med: median: at least 10 contributors on each side (rule 4)" in text
    assert "each filter and inner join removes no rows or at least 10 (rule 5" in text
    assert "at most 10000 groups and at most one per 10 rows of the smallest source (rule 8)" in text
    exact = q.explain(rules=wp.DisclosureRules.cells_only())
    assert "  - n: count, exact; withheld below 10 rows" in exact
    assert "  - max_ligduur: maximum: exact" in exact and "rule 5" not in exact
    assert "Disclosure rules per output" not in q.explain()  # NB: without rules, the cell rule only
