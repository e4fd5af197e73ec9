from __future__ import annotations

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.catalog.schema import ColumnSchema, TableSchema, infer_schema
from werkplaats.catalog.validate import validate_table
from werkplaats.exceptions import DataValidationError


def q() -> wp.LazyFrame:
    return wp.scan("t").group_by("g").agg(n=wp.count(), s=wp.col("x").sum())


SCHEMA = {"t": TableSchema("t", (ColumnSchema("g", "str", ("a", "b")), ColumnSchema("x", "int", minimum=0,
                                                                                     maximum=120)))}  # fmt: skip


def test_out_of_domain_codes_and_out_of_range_values_are_counted_never_shown() -> None:
    df = pd.DataFrame({"g": ["a", "zzz-secret", "b"], "x": [1, 999_999, 3]})
    with pytest.raises(wp.DataValidationError) as e:
        wp.run_local(q(), {"t": df}, schemas=SCHEMA, rules=wp.DisclosureRules.cells_only())
    msg = str(e.value)
    assert "dataset 't' (3 rows)" in msg
    assert "column 'g': 1 of 3 values not in its code list" in msg
    assert "column 'x': 1 of 3 values outside its range" in msg
    assert "zzz-secret" not in msg and "999999" not in msg and "999_999" not in msg


def test_missing_column_and_wrong_type_are_reported_together() -> None:
    df = pd.DataFrame({"x": ["een", "twee"]})
    with pytest.raises(wp.DataValidationError) as e:
        wp.run_local(q(), {"t": df}, schemas=SCHEMA, rules=wp.DisclosureRules.cells_only())
    assert "column 'g' is missing" in str(e.value)
    assert "column 'x': values are not of type int" in str(e.value)
    assert "een" not in str(e.value)


def test_float_column_outside_fixed_point_range_is_refused() -> None:
    df = pd.DataFrame({"g": ["a"], "f": [3.0e12]})
    with pytest.raises(wp.DataValidationError, match="outside the fixed-point range"):
        wp.run_local(wp.scan("t").agg(s=wp.col("f").sum()), {"t": df})


def test_a_categorical_with_one_category_is_text() -> None:
    df = pd.DataFrame({"g": pd.Categorical(["a"] * 3), "h": pd.Categorical([1, 2, 1])})
    schema = infer_schema("t", df[["g"]])
    out = validate_table(df, schema, ("g",), set())
    assert out["g"].tolist() == ["a", "a", "a"]
    with pytest.raises(DataValidationError, match="column 'g': values are not of type str"):
        validate_table(df.rename(columns={"g": "x", "h": "g"}), schema, ("g",), set())
