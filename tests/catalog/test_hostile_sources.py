"""Hostile CSV sources: each is refused naming the file, column, rule and count, never a value or a byte."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from werkplaats.catalog.frictionless import read_csv
from werkplaats.catalog.schema import ColumnSchema, TableSchema
from werkplaats.catalog.validate import validate_table
from werkplaats.exceptions import DataValidationError

SCHEMA = TableSchema("ggd/t", (ColumnSchema("bsn", "int", unique=True), ColumnSchema("x", "int"),
                               ColumnSchema("naam", "str", ("a", "b", "c", "d", "ok", "José"))))  # fmt: skip


def _csv(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "t.csv"
    p.write_bytes(data)
    return p


def test_an_honest_file_reads_to_typed_columns(tmp_path: Path) -> None:
    df = read_csv(_csv(tmp_path, b"bsn,x,naam\n1,-5,Jos\xc3\xa9\n2,+7,\n"), SCHEMA)
    assert df["x"].tolist() == [-5, 7] and str(df["x"].dtype) == "Int64"
    assert df["naam"].tolist() == ["José", None]


def test_an_empty_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"'ggd/t': source file '.*t\.csv' is empty \(0 bytes\)"):
        read_csv(_csv(tmp_path, b""), SCHEMA)


def test_bytes_that_are_not_utf8_are_located_never_quoted(tmp_path: Path) -> None:
    data = b"bsn,x,naam\n1,2,ok\n2,3,Jan\xe9Secret\n"  # NB: Latin-1
    with pytest.raises(DataValidationError) as e:
        read_csv(_csv(tmp_path, data), SCHEMA)
    msg = str(e.value)
    assert "t.csv' is not valid UTF-8: an invalid byte sequence at line 3, byte offset 25" in msg
    assert data.index(b"\xe9") == 25
    assert "xe9" not in msg and "Secret" not in msg and "Jan" not in msg and "é" not in msg
    with pytest.raises(DataValidationError, match="ends inside a multi-byte character at line 2, byte offset 17"):
        read_csv(_csv(tmp_path, b"bsn,x,naam\n1,2,ok\xc3"), SCHEMA)


def test_an_int_written_as_a_float_is_refused_not_converted(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError) as e:
        read_csv(_csv(tmp_path, b"bsn,x,naam\n1,1e5,a\n2,3.0,b\n3,4,c\n"), SCHEMA)
    assert "column 'x': 2 of 3 values are not of type int" in str(e.value)
    assert "1e5" not in str(e.value) and "100000" not in str(e.value)


def test_a_column_named_twice_in_the_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"columns named more than once in the header: \['x'\]"):
        read_csv(_csv(tmp_path, b"bsn,x,naam,x\n1,2,a,999\n"), SCHEMA)


def test_ints_beyond_the_safe_range_are_refused_including_minus_2_63(tmp_path: Path) -> None:
    df = read_csv(_csv(tmp_path, b"bsn,x,naam\n1,-9007199254740993,a\n2,9007199254740993,b\n3,1,c\n"), SCHEMA)
    with pytest.raises(DataValidationError, match=r"column 'x': 2 of 3 values outside the integer range ±2\^53"):
        validate_table(df, SCHEMA, ("bsn", "x"), set())
    data = b"bsn,x,naam\n1,-9223372036854775808,a\n2,123456789012345678901234,b\n3,1,c\n"
    with pytest.raises(DataValidationError, match=r"column 'x': 2 of 3 values outside the integer range ±2\^53"):
        read_csv(_csv(tmp_path, data), SCHEMA)
    # NB: from Parquet, DuckDB or PostgreSQL an int64 of -2^63 arrives as it is; abs() of it overflows
    keys = pd.DataFrame({"bsn": pd.array([-(2**63), 1], dtype="Int64"), "x": [1, 2]})
    with pytest.raises(DataValidationError, match=r"column 'bsn': 1 of 2 values outside the integer range") as e:
        validate_table(keys, SCHEMA, ("bsn", "x"), set(), frozenset({"bsn"}))
    assert "column 'bsn': 1 of 2 values outside the key range ±2^38" in str(e.value)
