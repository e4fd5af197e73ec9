"""Frictionless Table Schema documents and CSV sources, read the way a datastation reads them.

A dataset on disk is a CSV file with a Frictionless Table Schema beside it
(``name.csv`` + ``name.schema.json``): dates as ``YYYY-MM-DD``, booleans as
``true``/``false``, a missing value as an empty field. Reading parses every column to
its declared type and reports what does not parse by column and count, never by value;
code lists, ranges and keys are then checked by ``validate_table``.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..exceptions import DataValidationError, SchemaError
from .schema import FRICTIONLESS, ColumnSchema, TableSchema

TYPES_BACK = {v: k for k, v in FRICTIONLESS.items()}
TRUE, FALSE = ("true", "True", "TRUE", "1"), ("false", "False", "FALSE", "0")


def to_frictionless(schema: TableSchema, **extra: Any) -> dict[str, Any]:
    """Return the schema as a Frictionless Table Schema, with extra top-level properties."""
    doc = schema.to_frictionless()
    doc["missingValues"] = [""]
    keys = [c.name for c in schema.columns if c.unique]
    if len(keys) == 1:
        doc["primaryKey"] = keys[0]
    doc.update({k: v for k, v in extra.items() if v is not None})
    return doc


def _bound(v: Any, kind: str) -> Any:
    if v is None:
        return None
    return dt.date.fromisoformat(v) if kind == "date" else v


def from_frictionless(name: str, doc: dict[str, Any]) -> TableSchema:
    """Read a Frictionless Table Schema into a werkplaats TableSchema (unknown types are refused)."""
    fields = doc.get("fields")
    if not isinstance(fields, list) or not fields:
        msg = f"schema of {name!r}: 'fields' must be a non-empty list"
        raise SchemaError(msg)
    pk = doc.get("primaryKey")
    pk_cols = {pk} if isinstance(pk, str) else set(pk or ())
    cols = []
    for f in fields:
        ftype = f.get("type", "string")
        if ftype not in TYPES_BACK:
            msg = f"schema of {name!r}: column {f.get('name')!r} has type {ftype!r}; supported: {sorted(TYPES_BACK)}"
            raise SchemaError(msg)
        kind = TYPES_BACK[ftype]
        cons = f.get("constraints", {})
        enum = cons.get("enum")
        ext = f.get("werkplaats:extremes", {})
        if (
            not isinstance(ext, dict)
            or set(ext) - {"base", "top", "bottom"}
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in ext.values())
        ):
            msg = f"schema of {name!r}: column {f.get('name')!r}: 'werkplaats:extremes' takes numbers base, top, bottom"
            raise SchemaError(msg)
        cols.append(ColumnSchema(
            f["name"], kind, tuple(enum) if enum is not None else None,
            _bound(cons.get("minimum"), kind), _bound(cons.get("maximum"), kind),
            bool(cons.get("unique", False)) or f["name"] in pk_cols, f.get("description", ""),
            str(f.get("werkplaats:role", "")), ext.get("base"), ext.get("top"), ext.get("bottom"),
        ))  # fmt: skip
    rules = doc.get("werkplaats:rules", {})
    if not isinstance(rules, dict):
        msg = f"schema of {name!r}: 'werkplaats:rules' must be an object of settings (docs/disclosure.md)"
        raise SchemaError(msg)
    items = tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in rules.items()))
    return TableSchema(name, tuple(cols), items)


def write_csv(df: pd.DataFrame, schema: TableSchema, path: Path) -> None:
    """Write a table in the on-disk form (the same frame gives the same bytes)."""
    out = {}
    for c in schema.columns:
        s = df[c.name]
        if c.type == "bool":
            out[c.name] = s.map({True: "true", False: "false"}).astype(object)
        elif c.type == "date":
            out[c.name] = pd.to_datetime(s).dt.strftime("%Y-%m-%d")
        elif c.type == "int":
            out[c.name] = s.astype("Int64")
        else:
            out[c.name] = s
    pd.DataFrame(out).to_csv(path, index=False, na_rep="", lineterminator="\n")


def read_csv(path: str | Path, schema: TableSchema) -> pd.DataFrame:
    """Read a CSV source into typed columns, or raise DataValidationError naming columns and counts.

    The file must be UTF-8 (an error names the line and byte offset, never the bytes), have
    a header line naming each column once, and write int columns as digits (``1e5`` is refused).
    """
    where = f"dataset {schema.name!r}: source file {str(path)!r}"
    try:
        header = _check_text(Path(path), where)
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except FileNotFoundError:
        msg = f"{where} does not exist"
        raise DataValidationError(msg) from None
    except (pd.errors.ParserError, csv.Error) as e:
        msg = f"{where} is not a well-formed CSV file ({str(e).splitlines()[0][:200]})"
        raise DataValidationError(msg) from None
    rows = len(raw)
    problems = []
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        problems.append(f"columns named more than once in the header: {twice}")
    missing = [c for c in schema.names if c not in raw.columns]
    if missing:
        problems.append(f"columns missing from the file: {missing}")
    out: dict[str, pd.Series] = {}
    for c in schema.columns:
        if c.name not in raw.columns:
            continue
        s = raw[c.name]
        present = s.notna()
        if c.type == "int":
            txt = s.str.strip()
            digits = txt.str.fullmatch(r"[+-]?[0-9]+").fillna(False).astype(bool)
            bad = present & ~digits  # NB: 1e5, 1.0, 0x10: not how an int column is written
            wide = present & digits & (txt.str.lstrip("+-").str.lstrip("0").str.len() > 18)
            if wide.any():
                problems.append(
                    f"column {c.name!r}: {int(wide.sum())} of {rows} values outside the integer range ±2^53"
                )
            v = pd.to_numeric(txt.where(digits & ~wide), errors="coerce")
            out[c.name] = v.astype("Int64")
        elif c.type == "float":
            v = pd.to_numeric(s, errors="coerce")
            bad = present & v.isna()
            out[c.name] = v.astype("Float64")
        elif c.type == "bool":
            v = s.map(lambda x: True if x in TRUE else False if x in FALSE else None)
            bad = present & v.isna()
            out[c.name] = v.astype("boolean")
        elif c.type == "date":
            v = pd.to_datetime(s, format="%Y-%m-%d", errors="coerce")
            bad = present & v.isna()
            out[c.name] = v.astype("datetime64[s]")
        else:
            bad = present & False
            out[c.name] = s.astype(object).where(present, None)
        if bad.any():
            problems.append(f"column {c.name!r}: {int(bad.sum())} of {rows} values are not of type {c.type}")
    if problems:
        msg = f"dataset {schema.name!r} ({rows} rows in {Path(path).name}): " + "; ".join(problems)
        raise DataValidationError(msg)
    return pd.DataFrame(out)


def _check_text(path: Path, where: str) -> list[str]:
    """Refuse an empty file or one that is not UTF-8 (naming line and byte offset); return the header's names."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with path.open("rb") as f:
        if not f.read(1):
            msg = f"{where} is empty (0 bytes): a CSV source needs at least its header line"
            raise DataValidationError(msg)
        f.seek(0)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                at = offset - pending + e.start
                lines += chunk[: max(at - offset, 0)].count(b"\n")
                msg = f"{where} is not valid UTF-8: an invalid byte sequence at line {lines}, byte offset {at}"
                raise DataValidationError(msg) from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
        at = offset - len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            msg = f"{where} is not valid UTF-8: it ends inside a multi-byte character at line {lines}, byte offset {at}"
            raise DataValidationError(msg) from None
    with path.open(encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f), [])


def read_schema(path: str | Path, name: str) -> TableSchema:
    """Read a ``.schema.json`` file."""
    return from_frictionless(name, json.loads(Path(path).read_text(encoding="utf-8")))
