"""wp.concat: the plan node, its canonical JSON and schema, its checks against the catalog, its explanation."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.catalog.schema import infer_schema
from werkplaats.compile.analyze import check
from werkplaats.compile.rules import DisclosureRules
from werkplaats.exceptions import PlanError, PlanFormatError
from werkplaats.plan import nodes as n
from werkplaats.plan.explain import explain
from werkplaats.plan.serde import canonical_json, plan_from_json, plan_to_dict

RULES = DisclosureRules(person_keys=("bsn",))


def _table(cats: list[str], **extra: object) -> pd.DataFrame:
    return pd.DataFrame({
        "bsn": pd.array([1, 2, 3], dtype="Int64"),
        "gemeente": pd.Categorical(cats, categories=cats),
        "leeftijd": pd.array([40, 50, 60], dtype="Int64"),
        **extra,
    })  # fmt: skip


CATALOG = {
    "ziekenhuis_a/opnamen": infer_schema("ziekenhuis_a/opnamen", _table(["x", "y", "z"])),
    "ziekenhuis_b/opnamen": infer_schema("ziekenhuis_b/opnamen", _table(["y", "z", "w"])),
    "ziekenhuis_c/opnamen": infer_schema("ziekenhuis_c/opnamen", _table(["x", "y", "z"], extra=[1.0, 2.0, 3.0])),
    "ziekenhuis_d/opnamen": infer_schema(
        "ziekenhuis_d/opnamen", _table(["x", "y", "z"]).assign(leeftijd=[40.5, 50.0, 60.0])
    ),
}
A, B = wp.scan("ziekenhuis_a/opnamen"), wp.scan("ziekenhuis_b/opnamen")


def _count(q: wp.LazyFrame) -> n.Plan:
    return q.group_by("gemeente").agg(n=wp.count()).to_plan()


def test_concat_round_trips_through_canonical_json_and_the_schema() -> None:
    for distinct in (None, "bsn"):
        plan = _count(wp.concat([A, B.filter(wp.col("leeftijd") > 45)], distinct_on=distinct))
        text = canonical_json(plan)
        assert plan_from_json(text) == plan
        root = json.loads(text)["root"]["input"]
        assert root["op"] == "concat" and len(root["inputs"]) == 2
        assert ("distinct_on" in root) == (distinct is not None)


def test_the_schema_refuses_a_concat_of_one_input_and_unknown_members() -> None:
    d = plan_to_dict(_count(wp.concat([A, B])))
    d["root"]["input"]["inputs"] = d["root"]["input"]["inputs"][:1]
    with pytest.raises(PlanFormatError, match="inputs"):
        plan_from_json(json.dumps(d))
    d = plan_to_dict(_count(wp.concat([A, B])))
    d["root"]["input"]["distinct"] = True
    with pytest.raises(PlanFormatError):
        plan_from_json(json.dumps(d))


def test_concat_needs_a_list_of_two_frames() -> None:
    with pytest.raises(PlanError, match="two or more"):
        wp.concat([A])
    with pytest.raises(PlanError, match="two or more"):
        wp.concat(A)  # type: ignore[arg-type]


def test_code_lists_are_unioned_in_order_of_first_appearance() -> None:
    a = check(_count(wp.concat([A, B])), CATALOG, RULES)
    assert a.schema(a.plan.root.input)["gemeente"].domain == ("x", "y", "z", "w")  # type: ignore[attr-defined]


def test_a_missing_or_extra_column_is_refused_naming_it_and_the_sources() -> None:
    with pytest.raises(PlanError, match=r"input 2 \(ziekenhuis_c/opnamen\) has a column 'extra'"):
        check(_count(wp.concat([A, wp.scan("ziekenhuis_c/opnamen")])), CATALOG, RULES)
    with pytest.raises(PlanError, match=r"input 2 .* has no column 'leeftijd'"):
        check(_count(wp.concat([A, B.select("bsn", "gemeente")])), CATALOG, RULES)


def test_a_column_of_another_type_is_refused_naming_it() -> None:
    with pytest.raises(PlanError, match=r"column 'leeftijd' is int in input 1 .* but float in input 2"):
        check(_count(wp.concat([A, wp.scan("ziekenhuis_d/opnamen")])), CATALOG, RULES)


def test_distinct_must_be_on_a_person_key_column() -> None:
    with pytest.raises(PlanError, match="not a column"):
        check(_count(wp.concat([A, B], distinct_on="bsn2")), CATALOG, RULES)
    with pytest.raises(PlanError, match="must be a person key in every input"):
        check(_count(wp.concat([A, B], distinct_on="leeftijd")), CATALOG, RULES)


def test_a_person_key_stays_one_after_a_concat() -> None:
    with pytest.raises(PlanError, match="bsn is a person key"):
        check(_count(wp.concat([A, B]).filter(wp.col("bsn") == 2)), CATALOG, RULES)


def test_a_distinct_input_that_reorders_a_persons_rows_is_refused() -> None:
    right = wp.scan("ziekenhuis_c/opnamen").group_by("gemeente").agg(m=wp.count())
    with pytest.raises(PlanError, match="joins on 'gemeente'"):
        check(_count(wp.concat([A.join(right, on="gemeente"), A.join(right, on="gemeente")], distinct_on="bsn")),
              CATALOG, RULES)  # fmt: skip


def test_explain_names_every_source_and_what_distinct_keeps() -> None:
    text = explain(_count(wp.concat([A, B], distinct_on="bsn")), rules=RULES)
    data = text.split("Steps:")[0]
    assert "ziekenhuis_a/opnamen" in data and "ziekenhuis_b/opnamen" in data
    assert "Prepare part 1 of the union: Read ziekenhuis_a/opnamen." in text
    assert "Prepare part 2 of the union: Read ziekenhuis_b/opnamen." in text
    assert "Stack the rows of the 2 parts (ziekenhuis_a/opnamen, ziekenhuis_b/opnamen)" in text
    assert "Keep each person once by the person key bsn: the row of the first part" in text
    assert "each filter, inner join and distinct removes no rows or at least 10 (rule 5" in text
