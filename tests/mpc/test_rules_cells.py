"""Rules 2-4 under MPC: the attacks of tests/compile/test_rules_cells.py, and MPC equals plain with the rules on."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import werkplaats as wp
from tests.compile.test_rules_cells import MINE, QUERIES, codes, run_case
from tests.mpc.test_differential import plans, tables
from werkplaats.catalog.schema import infer_schema
from werkplaats.mpc import LocalCluster
from werkplaats.result import frame_differences

pytestmark = pytest.mark.mpc


def test_the_attacks_are_withheld_and_the_honest_cells_released_under_mpc(cluster: LocalCluster) -> None:
    outs = {}
    for name in QUERIES:
        plain = run_case(name)
        mpc = run_case(name, engine="mpc", cluster=cluster)
        assert not frame_differences(mpc, plain), name  # every value and every reason alike
        outs[name] = mpc
    cells = outs["cells"]
    for gem in ("A", "B"):
        assert "fewer than 10 contributors" in codes(cells, "s")[gem]
        assert "fewer than 10 contributors" in codes(cells, "m")[gem]
        assert "an extreme value" in codes(cells, "mx")[gem]
        assert "on one side of the quantile" in codes(cells, "q0")[gem]
        assert "on one side of the quantile" in codes(cells, "q1")[gem]
    assert "on one side of the quantile" in codes(cells, "med")["B"]
    assert "dominated by its largest contributors" in codes(outs["dominated"], "sk")["A"]
    assert "the p% rule" in codes(outs["p_percent"], "sk")["A"]
    assert codes(outs["rounded"], "mx") == {"A": 2000, "B": 1000}
    assert codes(outs["rounded"], "dmx")["A"] == 10.0
    assert codes(outs["top_coded"], "mx") == {"A": 2010, "B": 1109}


RULES = st.sampled_from([
    MINE,
    dataclasses.replace(MINE, extremes="round"),
    dataclasses.replace(MINE, extremes="round", rounding_base=1, dominance_n=1, p_percent=30.0),
])  # fmt: skip


@pytest.mark.slow  # NB: ~1 min; tests/mpc/test_differential.py's k = 10 test runs random plans with every rule on
@settings(max_examples=6)
@given(t=tables(), q=plans(), rules=RULES, k=st.sampled_from([1, 3, 10]))
def test_mpc_equals_plain_with_the_cell_rules_on(cluster: LocalCluster, t: dict[str, pd.DataFrame], q: wp.LazyFrame,
                                                rules: wp.DisclosureRules, k: int) -> None:  # fmt: skip
    left = infer_schema("left", t["left"])
    magnitudes = ("x", "f", "big")
    cols = tuple(dataclasses.replace(c, role="magnitude") if c.name in magnitudes else c for c in left.columns)
    left = dataclasses.replace(left, columns=cols)
    schemas = {"left": left, "right": infer_schema("right", t["right"])}
    plain = wp.run_local(q, t, engine="plain", min_group_size=k, rules=rules, schemas=schemas)
    mpc = wp.run_local(q, t, engine="mpc", min_group_size=k, rules=rules, schemas=schemas, cluster=cluster)
    assert not frame_differences(mpc, plain, loose={"sdf"})
