"""JSON form of table schemas (public metadata), with matching to/from pairs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .schema import ColumnSchema, TableSchema


def _enc(v: Any) -> Any:
    return {"date": v.isoformat()} if isinstance(v, dt.date) else v


def _dec(v: Any) -> Any:
    return dt.date.fromisoformat(v["date"]) if isinstance(v, dict) and "date" in v else v


def schema_to_dict(t: TableSchema) -> dict[str, Any]:
    """Encode a table schema."""
    return {
        "name": t.name,
        "columns": [
            {
                "name": c.name,
                "type": c.type,
                "categories": list(c.categories) if c.categories is not None else None,
                "minimum": _enc(c.minimum),
                "maximum": _enc(c.maximum),
                "unique": c.unique,
                "description": c.description,
                "role": c.role,
                "extremes": [c.extremes_base, c.top_code, c.bottom_code],
            }
            for c in t.columns
        ],
        "rules": [[k, list(v) if isinstance(v, tuple) else v] for k, v in t.rules],
    }


def schema_from_dict(d: dict[str, Any]) -> TableSchema:
    """Decode a table schema."""
    cols = tuple(
        ColumnSchema(
            c["name"],
            c["type"],
            tuple(c["categories"]) if c.get("categories") is not None else None,
            _dec(c.get("minimum")),
            _dec(c.get("maximum")),
            bool(c.get("unique", False)),
            c.get("description", ""),
            c.get("role", ""),
            *c.get("extremes", [None, None, None]),
        )
        for c in d["columns"]
    )
    rules = tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in d.get("rules", []))
    return TableSchema(d["name"], cols, rules)


def catalog_to_dict(catalog: dict[str, TableSchema]) -> dict[str, Any]:
    """Encode a catalog (dataset name → schema)."""
    return {k: schema_to_dict(v) for k, v in sorted(catalog.items())}


def catalog_from_dict(d: dict[str, Any]) -> dict[str, TableSchema]:
    """Decode a catalog."""
    return {k: schema_from_dict(v) for k, v in d.items()}
