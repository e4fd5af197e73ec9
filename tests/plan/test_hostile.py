"""Hostile plans: nesting, size, literals. Each is refused with an error naming the limit or the rule."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.exceptions import PlanError, PlanFormatError
from werkplaats.plan import limits
from werkplaats.plan.serde import plan_from_dict, plan_from_json


def _doc(predicate: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(wp.scan("t").filter(wp.col("x") == 1).agg(n=wp.count()).to_json())
    d["root"]["input"]["predicate"] = predicate
    return d


def _nots(depth: int) -> dict[str, Any]:
    e: dict[str, Any] = {"op": "col", "name": "x"}
    for _ in range(depth):
        e = {"op": "not", "arg": e}
    return e


def test_a_deep_not_chain_validates_once_per_node() -> None:
    # NB: on the schema's oneOf over every op this took hours (8 branches re-checked the argument per level)
    plan = plan_from_dict(_doc(_nots(16)))
    e = plan.root.input.predicate  # type: ignore[union-attr]
    for _ in range(16):
        e = e.arg  # type: ignore[union-attr]
    assert e == wp.col("x").node


def test_nesting_beyond_the_depth_limit_is_refused_naming_it() -> None:
    with pytest.raises(PlanFormatError, match=f"nested more than {limits.MAX_PLAN_DEPTH} levels"):
        plan_from_dict(_doc(_nots(limits.MAX_PLAN_DEPTH)))
    text = '{"root":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(PlanFormatError, match="nested too deeply"):
        plan_from_json(text)


def test_a_plan_with_too_many_nodes_or_bytes_is_refused_naming_the_limit() -> None:
    d = json.loads(wp.scan("t").select(a=wp.col("x")).agg(n=wp.count()).to_json())
    d["root"]["input"]["exprs"] = [{"name": f"c{i}", "expr": {"op": "col", "name": "x"}} for i in range(5001)]
    with pytest.raises(PlanFormatError, match=f"more than {limits.MAX_PLAN_NODES} JSON objects and arrays"):
        plan_from_dict(d)
    big = _doc({"op": "eq", "left": {"op": "col", "name": "x"}, "right": {"op": "lit", "type": "str", "value": "a"}})
    big["root"]["input"]["predicate"]["right"]["value"] = "a" * limits.MAX_PLAN_BYTES
    with pytest.raises(PlanFormatError, match=f"larger than {limits.MAX_PLAN_BYTES} bytes"):
        plan_from_dict(big)
    with pytest.raises(PlanFormatError, match=f"larger than {limits.MAX_PLAN_BYTES} bytes"):
        plan_from_json(json.dumps(big))


def _lit(t: str, v: Any) -> dict[str, Any]:
    return {"op": "eq", "left": {"op": "col", "name": "x"}, "right": {"op": "lit", "type": t, "value": v}}


@pytest.mark.parametrize(
    "lit, says",
    [
        (("float", math.nan), "NaN or Infinity"),
        (("float", math.inf), "NaN or Infinity"),
        (("float", -math.inf), "NaN or Infinity"),
        (("float", 10**400), "NaN or Infinity"),
        (("date", 5), "a literal of type 'date' needs a JSON ISO date string"),
        (("float", "x"), "a literal of type 'float' needs a JSON float"),
        (("int", 10**400), r"within ±2\^53"),
        (("int", -(2**53) - 1), r"within ±2\^53"),
    ],
)
def test_hostile_literals_are_refused_with_the_rule(lit: tuple[str, Any], says: str) -> None:
    with pytest.raises(PlanFormatError, match=says):
        plan_from_dict(_doc(_lit(*lit)))


def test_nan_and_infinity_in_json_text_are_refused() -> None:
    for const in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps(_doc(_lit("float", 1.5))).replace("1.5", const)
        with pytest.raises(PlanFormatError, match=f"{const} is not a JSON number"):
            plan_from_json(text)
    d = _doc({"op": "cut", "arg": {"op": "col", "name": "x"}, "breaks": [1, math.nan], "labels": ["a", "b", "c"]})
    with pytest.raises(PlanFormatError, match="NaN or Infinity"):
        plan_from_dict(d)


def test_the_largest_safe_int_literal_is_kept_exactly() -> None:
    plan = plan_from_dict(_doc(_lit("int", 2**53)))
    assert plan.root.input.predicate.right.value == 2**53  # type: ignore[union-attr]


T = {"t": pd.DataFrame({"x": [1, 2, 3], "f": [0.5, 1.0, 2.0]})}


@pytest.mark.parametrize("value", [10**400, -(2**63), math.nan, math.inf, 1e20, -(2.0**31)])
def test_the_checker_refuses_unsafe_literals_of_plans_built_in_python(value: float) -> None:
    q = wp.scan("t").filter(wp.col("x") < wp.lit(value)).agg(n=wp.count())
    with pytest.raises(PlanError, match=r"±2\^53|NaN or Infinity|within ±2\^30"):
        wp.run_local(q, T, min_group_size=1)


def test_size_limits_of_is_in_aggregates_and_output_cells() -> None:
    many = list(range(limits.MAX_IS_IN_VALUES + 1))
    with pytest.raises(PlanError, match=f"is_in in filter: {len(many)} values, more than the limit of 1000"):
        wp.run_local(wp.scan("t").filter(wp.col("x").is_in(many)).agg(n=wp.count()), T, min_group_size=1)
    aggs = {f"s{i}": wp.col("x").sum() for i in range(limits.MAX_AGGREGATES + 1)}
    with pytest.raises(PlanError, match=f"51 aggregates, more than the limit of {limits.MAX_AGGREGATES}"):
        wp.run_local(wp.scan("t").agg(**aggs), T, min_group_size=1)
    breaks = list(range(400))
    q = (
        wp.scan("t")
        .with_columns(a=wp.col("x").cut(breaks, labels=[f"a{i}" for i in range(401)]),
                      b=wp.col("f").cut(breaks, labels=[f"b{i}" for i in range(401)]))
        .group_by("a", "b")
        .agg(n=wp.count())
    )  # fmt: skip
    with pytest.raises(PlanError, match=f"160801 cells .* more than the limit of {limits.MAX_OUTPUT_CELLS}"):
        wp.run_local(q, T, min_group_size=1)
    with pytest.raises(PlanFormatError, match=r"values.*is too long"):
        plan_from_json(wp.scan("t").filter(wp.col("x").is_in(many)).agg(n=wp.count()).to_json())


def test_cut_breaks_beyond_the_fixed_point_range_are_refused() -> None:
    q = (
        wp.scan("t")
        .with_columns(b=wp.col("f").cut([0.0, 1e12], labels=["a", "b", "c"]))
        .group_by("b")
        .agg(n=wp.count())
    )
    with pytest.raises(PlanError, match=r"breaks must be finite numbers within ±2\^30"):
        wp.run_local(q, T, min_group_size=1)
