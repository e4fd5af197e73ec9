"""Table schemas in the spirit of Frictionless Table Schema.

A schema is public metadata: column names, types, code lists (the categories of a
string column, the allowed values of a coded integer), value ranges and which
columns are unique keys. Code lists and date ranges fix the shape of every result,
so that no output's shape depends on the secret data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import SchemaError

TYPES = ("int", "float", "bool", "date", "str")
# What a column is, for the disclosure rules (docs/disclosure.md): a person key or another
# row-identifying column is a key, never a value (rule 1); a magnitude (costs, income, doses)
# gets the dominance and p% rules (rule 3).
ROLES = ("", "person_key", "identifying", "magnitude")
FRICTIONLESS = {"int": "integer", "float": "number", "bool": "boolean", "date": "date", "str": "string"}


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One column: its type and the public facts about its values."""

    name: str
    type: str
    categories: tuple[Any, ...] | None = None
    minimum: float | dt.date | None = None
    maximum: float | dt.date | None = None
    unique: bool = False
    description: str = ""
    role: str = ""  # one of ROLES
    extremes_base: float | None = None  # rule 4: the rounding base its min/max are released at (steward's choice)
    top_code: float | None = None  # rule 4: values above are counted as this (top-coding), public
    bottom_code: float | None = None  # rule 4: values below are counted as this (bottom-coding), public

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            msg = f"column {self.name!r}: unknown type {self.type!r} (expected one of {TYPES})"
            raise SchemaError(msg)
        if self.role not in ROLES:
            msg = f"column {self.name!r}: unknown role {self.role!r} (expected one of {ROLES[1:]})"
            raise SchemaError(msg)
        if self.extremes_base is not None and not self.extremes_base > 0:
            msg = f"column {self.name!r}: the extremes' rounding base must be positive"
            raise SchemaError(msg)
        if self.type == "str" and not self.categories:
            msg = f"column {self.name!r}: a string column needs a code list (categories)"
            raise SchemaError(msg)

    def to_frictionless(self) -> dict[str, Any]:
        """Return the Frictionless Table Schema field for this column."""
        out: dict[str, Any] = {"name": self.name, "type": FRICTIONLESS[self.type]}
        cons: dict[str, Any] = {}
        if self.categories is not None:
            cons["enum"] = list(self.categories)
        if self.minimum is not None:
            cons["minimum"] = str(self.minimum) if isinstance(self.minimum, dt.date) else self.minimum
        if self.maximum is not None:
            cons["maximum"] = str(self.maximum) if isinstance(self.maximum, dt.date) else self.maximum
        if self.unique:
            cons["unique"] = True
        if cons:
            out["constraints"] = cons
        if self.description:
            out["description"] = self.description
        if self.role:
            out["werkplaats:role"] = self.role
        ext = {k: v for k, v in (("base", self.extremes_base), ("top", self.top_code), ("bottom", self.bottom_code))
               if v is not None}  # fmt: skip
        if ext:
            out["werkplaats:extremes"] = ext
        return out


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A dataset's columns, in order."""

    name: str
    columns: tuple[ColumnSchema, ...] = field(default_factory=tuple)
    # NB: the dataset's own disclosure settings (its schema's ``werkplaats:rules``; compile/rules.py), as sorted items
    rules: tuple[tuple[str, Any], ...] = ()

    def column(self, name: str) -> ColumnSchema:
        """Return a column by name, with a clear error if it does not exist."""
        for c in self.columns:
            if c.name == name:
                return c
        msg = f"dataset {self.name!r} has no column {name!r}; it has {[c.name for c in self.columns]}"
        raise SchemaError(msg)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_frictionless(self) -> dict[str, Any]:
        """Return the Frictionless Table Schema document."""
        doc: dict[str, Any] = {"fields": [c.to_frictionless() for c in self.columns]}
        if self.rules:
            doc["werkplaats:rules"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.rules}
        return doc


def _kind(s: pd.Series) -> str:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return "str"
    if pd.api.types.is_bool_dtype(s.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(s.dtype):
        return "int"
    if pd.api.types.is_float_dtype(s.dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "date"
    nonnull = s.dropna()
    if len(nonnull) and all(isinstance(v, bool | np.bool_) for v in nonnull):
        return "bool"
    if len(nonnull) and all(isinstance(v, dt.date) for v in nonnull):
        return "date"
    if len(nonnull) == 0 or all(isinstance(v, str) for v in nonnull):
        return "str"
    msg = f"column {s.name!r}: cannot infer a werkplaats type from pandas dtype {s.dtype}"
    raise SchemaError(msg)


def infer_schema(name: str, df: pd.DataFrame) -> TableSchema:
    """Infer a schema from a DataFrame, for local runs and tests.

    NB: inferred code lists, date ranges and uniqueness come from the data itself.
    In a workspace they come from the catalog, set by the data steward.
    """
    cols = []
    for col in df.columns:
        s = df[col]
        kind = _kind(s)
        cats: tuple[Any, ...] | None = None
        lo: Any = None
        hi: Any = None
        if kind == "str":
            if isinstance(s.dtype, pd.CategoricalDtype):
                cats = tuple(str(c) for c in s.dtype.categories)
            else:
                cats = tuple(sorted({str(v) for v in s.dropna()}))
            cats = cats or ("",)
        elif kind == "date":
            d = pd.to_datetime(s.dropna())
            if len(d):
                lo, hi = d.min().date(), d.max().date()
        unique = bool(kind in ("int", "str", "date") and s.notna().all() and s.is_unique and len(s) > 0)
        cols.append(ColumnSchema(str(col), kind, cats, lo, hi, unique))
    return TableSchema(name, tuple(cols))
