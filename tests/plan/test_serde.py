from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.exceptions import PlanFormatError
from werkplaats.plan import nodes as n
from werkplaats.plan.serde import canonical_json, plan_from_json, plan_json_schema


def example() -> wp.LazyFrame:
    return (
        wp.scan("ggd/meldingen")
        .filter((wp.col("ziekte") == "COVID-19") & ~wp.col("bsn").is_null())
        .join(wp.scan("huisartsen/consulten"), on="bsn", how="left")
        .with_columns(
            groep=wp.col("geboortedatum").age_at("2024-01-01").cut([17, 64], labels=["jong", "mid", "oud"]),
            week=wp.col("melddatum").dt.iso_week(),
            risico=wp.when(wp.col("chronisch")).then(wp.lit("ja")).otherwise(wp.lit("nee")),
            x=(wp.col("medicatie").fill_null(0) * 2.5) / 3,
        )
        .filter(wp.col("x").is_between(0, 10) | wp.col("groep").is_in(["oud"]))
        .group_by("gemeente", "groep")
        .agg(n=wp.count(), m=wp.col("x").mean(), q=wp.col("x").quantile(0.9), s=wp.col("x").std())
    )


def test_plan_json_round_trips_exactly() -> None:
    plan = example().to_plan()
    text = canonical_json(plan)
    again = plan_from_json(text)
    assert again == plan
    assert canonical_json(again) == text


def test_canonical_json_has_sorted_keys_and_no_whitespace() -> None:
    text = example().to_json()
    d = json.loads(text)
    assert text == json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert d["format"] == n.PLAN_FORMAT
    assert d["disclosure"] == {"min_group_size": 10}


# NB: approvals sign plan hashes: a change of the canonical form must be deliberate (a new format).
EXAMPLE_HASH = "a5aa481bc76431164006ad6f1c8fe437c75941bb00ea8dca59f0f3fb857fc461"


def test_plan_hash_is_sha256_of_canonical_json_and_changes_with_the_plan() -> None:
    import hashlib

    q = example()
    assert q.plan_hash() == hashlib.sha256(q.to_json().encode()).hexdigest() == EXAMPLE_HASH
    assert wp.from_plan(q.to_plan()).plan_hash() == q.plan_hash()
    assert q.plan_hash(min_group_size=11) != q.plan_hash()
    base = wp.scan("t").filter(wp.col("x") > 1)
    hashes = {
        base.agg(n=wp.count()).plan_hash(),
        base.agg(m=wp.count()).plan_hash(),  # another output name
        wp.scan("t").filter(wp.col("x") > 2).agg(n=wp.count()).plan_hash(),  # another literal
        wp.scan("t").filter(wp.col("x") > 1.0).agg(n=wp.count()).plan_hash(),  # another literal type
        wp.scan("t").filter(wp.col("x") >= 1).agg(n=wp.count()).plan_hash(),  # another operator
        wp.scan("u").filter(wp.col("x") > 1).agg(n=wp.count()).plan_hash(),  # another dataset
    }
    assert len(hashes) == 6


def test_dates_and_typed_literals_survive_round_trip() -> None:
    q = wp.scan("t").filter(wp.col("d") >= dt.date(2020, 2, 29)).agg(n=wp.count())
    d = json.loads(q.to_json())
    pred = d["root"]["input"]["predicate"]["right"]
    assert pred == {"op": "lit", "type": "date", "value": "2020-02-29"}
    assert plan_from_json(q.to_json()) == q.to_plan()


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda d: d.update(format="werkplaats.plan/0"), "format"),
        (lambda d: d["root"].update(op="drop_table"), "root"),
        (lambda d: d["disclosure"].update(min_group_size=0), "disclosure/min_group_size"),
        (lambda d: d["root"]["input"].update(dataset="../etc/passwd"), "root"),
        (lambda d: d.update(extra=1), "(document)"),
    ],
)
def test_loading_checks_the_json_schema_and_says_where(mutate, where) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(wp.scan("a/b").agg(n=wp.count()).to_json())
    mutate(d)
    with pytest.raises(PlanFormatError, match="does not match") as e:
        plan_from_json(json.dumps(d))
    assert where in str(e.value)


def test_schema_errors_follow_the_node_kind_to_the_wrong_member() -> None:
    d = json.loads(wp.scan("t").filter(wp.col("x").is_in([1])).agg(n=wp.count()).to_json())
    d["root"]["input"]["predicate"]["values"] = [1]  # NB: an untagged literal
    with pytest.raises(PlanFormatError) as e:
        plan_from_json(json.dumps(d))
    assert (
        str(e.value)
        == "plan does not match werkplaats.plan/1 at root/input/predicate/values/0: 1 is not of type 'object'"
    )
    d["root"]["input"]["predicate"]["op"] = "is_any"
    with pytest.raises(PlanFormatError, match=r"at root/input/predicate: unknown op 'is_any'; expected one of \[") as e:
        plan_from_json(json.dumps(d))
    assert "'is_in'" in str(e.value) and "'add'" in str(e.value)


@pytest.mark.parametrize("lit", [{"type": "date", "value": 3}, {"type": "date", "value": "2024-13-01"},
                                 {"type": "int", "value": True}, {"type": "int", "value": 1.5}])  # fmt: skip
def test_a_literal_whose_value_does_not_fit_its_tag_is_refused(lit: dict[str, object]) -> None:
    d = json.loads(wp.scan("t").filter(wp.col("x") == 1).agg(n=wp.count()).to_json())
    d["root"]["input"]["predicate"]["right"].update(lit)
    with pytest.raises(PlanFormatError, match=f"a literal of type '{lit['type']}' needs a JSON"):
        plan_from_json(json.dumps(d))


def test_loading_rejects_text_that_is_not_json() -> None:
    with pytest.raises(PlanFormatError, match="not valid JSON"):
        plan_from_json("{'op': 'source'}")


def test_published_schema_is_valid_json_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(plan_json_schema())


@given(st.lists(st.integers(-(2**53), 2**53), min_size=1, max_size=5), st.floats(allow_nan=False, allow_infinity=False),
       st.text(max_size=20))  # fmt: skip
def test_literals_round_trip(ints: list[int], f: float, s: str) -> None:
    q = wp.scan("t").filter(wp.col("x").is_in(ints) | (wp.col("y") > f) | (wp.col("s") == s)).agg(n=wp.count())
    assert plan_from_json(q.to_json()) == q.to_plan()
