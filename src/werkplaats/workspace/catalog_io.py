"""The catalog entry a datastation publishes for a dataset (the body of PUT /datasets/{org}/{table})."""

from __future__ import annotations

from typing import Any

from ..catalog.frictionless import to_frictionless
from ..catalog.schema import TableSchema
from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE


def dataset_entry(schema: TableSchema, *, title: str = "", description: str = "", update_frequency: str = "",
                  person_key: str = "bsn", min_group_size: int = DEFAULT_MIN_GROUP_SIZE, row_count: int | None = None,
                  completeness: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Return the public metadata of a dataset: schema, rules, rounded row count, completeness."""
    return {
        "title": title,
        "description": description,
        "table_schema": to_frictionless(schema),
        "update_frequency": update_frequency,
        "person_key": person_key,
        "rules": {"min_group_size": min_group_size},
        "row_count": row_count,
        "completeness": completeness or {},
    }
