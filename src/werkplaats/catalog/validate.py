"""Validate a source table against its schema before anything is shared.

Runs at the data owner. Messages give column names, rules and counts, never values.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError
from .schema import TableSchema

INT_LIMIT = 2**53
FLOAT_LIMIT = 2.0**30
# NB: join and group keys are packed with a tag and a row index into one 63-bit sort key.
KEY_LIMIT = 2**38


def validate_table(
    df: pd.DataFrame,
    schema: TableSchema,
    columns: tuple[str, ...],
    unique: set[str],
    keys: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """Return the requested columns, normalised, or raise DataValidationError listing every problem.

    Normalised types: int → Int64, float → Float64, bool → boolean, date → datetime64[s],
    str → object (str or None).
    """
    problems: list[str] = []
    out: dict[str, pd.Series] = {}
    rows = len(df)
    for name in columns:
        if name not in df.columns:
            problems.append(f"column {name!r} is missing")
            continue
        c = schema.column(name)
        s = df[name]
        try:
            norm = _normalise(s, c.type)
        except (TypeError, ValueError):
            problems.append(f"column {name!r}: values are not of type {c.type}")
            continue
        nonnull = norm.dropna()
        # NB: no abs(): in int64, abs(-2^63) overflows to -2^63 and would pass
        if c.type == "int" and (k := int(((nonnull > INT_LIMIT) | (nonnull < -INT_LIMIT)).sum())):
            problems.append(f"column {name!r}: {k} of {rows} values outside the integer range ±2^53")
        if c.type == "int" and name in keys and (k := int(((nonnull >= KEY_LIMIT) | (nonnull <= -KEY_LIMIT)).sum())):
            problems.append(f"column {name!r}: {k} of {rows} values outside the key range ±2^38 of a join or group key")
        if c.type == "float":
            bad = ~np.isfinite(nonnull.to_numpy(dtype=float)) | (nonnull.abs() > FLOAT_LIMIT).to_numpy()
            if bad.any():
                problems.append(f"column {name!r}: {int(bad.sum())} of {rows} values not finite "
                                "or outside the fixed-point range ±2^30")  # fmt: skip
        if c.categories is not None and c.type in ("str", "int"):
            allowed = {str(v) for v in c.categories} if c.type == "str" else set(c.categories)
            bad_n = int((~nonnull.isin(allowed)).sum())
            if bad_n:
                problems.append(f"column {name!r}: {bad_n} of {rows} values not in its code list")
        if c.minimum is not None or c.maximum is not None:
            lo, hi = c.minimum, c.maximum
            vals = nonnull
            if c.type == "date":
                lo = pd.Timestamp(lo) if isinstance(lo, dt.date) else None
                hi = pd.Timestamp(hi) if isinstance(hi, dt.date) else None
            out_of = 0
            if lo is not None:
                out_of += int((vals < lo).sum())
            if hi is not None:
                out_of += int((vals > hi).sum())
            if out_of:
                problems.append(f"column {name!r}: {out_of} of {rows} values outside its range")
        if name in unique or c.unique:
            dups = int(nonnull.duplicated().sum())  # NB: missing keys never match, so may repeat
            if dups:
                problems.append(f"column {name!r}: {dups} duplicate values in a column used as "
                                "a unique key (aggregate that side first, or fix the source)")  # fmt: skip
        out[name] = norm
    if problems:
        msg = f"dataset {schema.name!r} ({rows} rows) fails validation: " + "; ".join(problems)
        raise DataValidationError(msg)
    return pd.DataFrame(out, index=pd.RangeIndex(rows))


def _normalise(s: pd.Series, kind: str) -> pd.Series:
    s = s.reset_index(drop=True)
    if kind == "int":
        if pd.api.types.is_float_dtype(s.dtype):
            nn = s.dropna()
            if (nn != np.floor(nn)).any():
                raise ValueError
        if pd.api.types.is_bool_dtype(s.dtype):
            raise TypeError
        return s.astype("Int64")
    if kind == "float":
        if pd.api.types.is_bool_dtype(s.dtype):
            raise TypeError
        return s.astype("Float64")
    if kind == "bool":
        if not (pd.api.types.is_bool_dtype(s.dtype) or s.dropna().map(type).isin([bool, np.bool_]).all()):
            raise TypeError
        return s.astype("boolean")
    if kind == "date":
        return pd.to_datetime(s).astype("datetime64[s]")
    nn = s.dropna().astype(object)  # NB: a Categorical maps its categories: one category gave a Categorical of bools
    if len(nn) and not nn.map(lambda v: isinstance(v, str)).all():
        raise TypeError
    return s.astype(object).where(s.notna(), None)
