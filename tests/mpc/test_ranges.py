"""Numeric edges under MPC: each statistic equals the plain oracle, exact or withheld as out of range.

Before the range check, a sum past 2^63 wrapped, and means near 2^30, variances near 10^8
and int medians near 2^53 came out wrong, revealed as if they were right.
"""

from __future__ import annotations

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

from ..compile.test_ranges import RULES, check_edges, edge_query, edge_table

pytestmark = pytest.mark.mpc


def test_edge_values_are_exact_or_withheld_like_the_plain_oracle(cluster: LocalCluster) -> None:
    t = {"t": edge_table()}
    mpc = wp.run_local(edge_query(), t, engine="mpc", cluster=cluster, rules=RULES)
    check_edges(mpc)
    assert not frame_differences(mpc, wp.run_local(edge_query(), t, rules=RULES))


def test_a_float_sum_past_the_fixed_point_range_is_withheld_inside_the_mpc(cluster: LocalCluster) -> None:
    t = {"t": pd.DataFrame({"f": pd.array([2.0**30 - 1] * 17_000, dtype="Float64"),
                            "g": pd.array([True, False] * 8_500, dtype="boolean")})}  # fmt: skip
    q = wp.scan("t").group_by("g").agg(s=wp.col("f").sum(), n=wp.count())
    mpc = wp.run_local(q, t, engine="mpc", cluster=cluster)
    assert not frame_differences(mpc, wp.run_local(q, t))
    assert mpc["s"].isna().tolist() == [False, False, True]  # NB: each half is in range; the missing-key cell empty
    assert mpc["reason"].tolist()[:2] == [None, None]
    t["t"]["g"] = pd.array([True] * 17_000, dtype="boolean")
    mpc = wp.run_local(q, t, engine="mpc", cluster=cluster)
    assert not frame_differences(mpc, wp.run_local(q, t))
    assert pd.isna(mpc["s"][1]) and "out of range" in mpc["reason"][1]


def test_statistics_of_declared_ranges_skip_the_check_and_still_equal_the_oracle(cluster: LocalCluster) -> None:
    from werkplaats.catalog.schema import ColumnSchema, TableSchema

    schemas = {"t": TableSchema("t", (ColumnSchema("age", "int", minimum=0, maximum=120),
                                      ColumnSchema("g", "bool")))}  # fmt: skip
    t = {"t": pd.DataFrame({"age": pd.array([(i * 37) % 121 for i in range(60)], dtype="Int64"),
                            "g": pd.array([i % 3 == 0 for i in range(60)], dtype="boolean")})}  # fmt: skip
    c = wp.col
    q = wp.scan("t").group_by("g").agg(s=c("age").sum(), m=c("age").mean(), v=c("age").var(), med=c("age").median())
    mpc = wp.run_local(q, t, engine="mpc", cluster=cluster, schemas=schemas, rules=RULES)
    assert not frame_differences(mpc, wp.run_local(q, t, schemas=schemas, rules=RULES))
    assert mpc["s"].notna().sum() == 2 and mpc["reason"].tolist()[:2] == [None, None]
