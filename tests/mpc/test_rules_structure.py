"""Rules 5 and 7 inside the MPC: the complement rule and secondary suppression, equal to the plain executor.

The queries are those of tests/compile/test_rules_structure.py (the attacker's and the honest
ones); each runs in both executors, which must agree on every value and every code.
"""

from __future__ import annotations

import pandas as pd
import pytest

import werkplaats as wp
from tests.compile.test_rules_structure import (
    COMPLEMENT_ONLY,
    PEOPLE,
    TABLES,
    D,
    K,
    margin_queries,
    whole_withheld,
)
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc


def both(cluster: LocalCluster, q: wp.LazyFrame, rules: wp.DisclosureRules,
         tables: dict[str, pd.DataFrame] = TABLES) -> pd.DataFrame:  # fmt: skip
    plain = wp.run_local(q, tables, engine="plain", min_group_size=K, rules=rules, perturbation_key=1)
    mpc = wp.run_local(q, tables, engine="mpc", min_group_size=K, rules=rules, perturbation_key=1, cluster=cluster)
    assert not frame_differences(mpc, plain)
    assert mpc["reason"].tolist() == plain["reason"].tolist()  # NB: the same code for every cell
    return mpc


def test_complement_rule_in_the_mpc(cluster: LocalCluster) -> None:
    everyone_but_x = (wp.scan("p").filter(wp.col("geboortedatum") != D)
                      .group_by("gemeente").agg(n=wp.count(), s=wp.col("inkomen").sum()))  # fmt: skip
    assert whole_withheld(both(cluster, everyone_but_x, COMPLEMENT_ONLY))
    right_lacks_one = wp.scan("p").join(wp.scan("g"), on="bsn").agg(n=wp.count(), s=wp.col("inkomen").sum())
    assert whole_withheld(both(cluster, right_lacks_one, COMPLEMENT_ONLY))
    left_lacks_one = wp.scan("g").join(wp.scan("p"), on="bsn").agg(n=wp.count(), s=wp.col("inkomen").sum())
    assert whole_withheld(both(cluster, left_lacks_one, COMPLEMENT_ONLY))
    many = wp.scan("p").filter(wp.col("nr") >= K).group_by("gemeente").agg(n=wp.count())
    out = both(cluster, many, COMPLEMENT_ONLY)
    assert not whole_withheld(out) and out["n"].sum() == len(PEOPLE) - K - 3  # NB: D (3 rows) suppressed
    none_removed = wp.scan("p").filter(wp.col("inkomen") > 0).agg(n=wp.count())
    assert both(cluster, none_removed, COMPLEMENT_ONLY)["n"][0] == len(PEOPLE)


def test_secondary_suppression_in_the_mpc(cluster: LocalCluster) -> None:
    one_key, two_keys = (both(cluster, q, rules) for q, rules in margin_queries())
    for stat in ("n", "s", "m"):  # NB: C (12 rows, the fewest released) hides D (3 rows)
        assert one_key[stat].isna().tolist() == [False, False, True, True, True]
    assert "secondary suppression" in one_key["reason"][2]
    assert two_keys["n"].notna().sum() == 2
