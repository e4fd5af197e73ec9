"""The catalog entry a datastation publishes for a dataset (the body of PUT /datasets/{org}/{table})."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..catalog.frictionless import to_frictionless
from ..catalog.schema import TableSchema
from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE


def rounded(n: int) -> int:
    """A row count rounded for the catalog: to 10 below 1,000, else to 2 significant digits.

    NB: the public row count; rule 8 (docs/disclosure.md) is checked with it by the hub and the engines alike.
    """
    if n < 1000:
        return round(n, -1)
    return round(n, -(len(str(n)) - 2))


def dataset_entry(schema: TableSchema, *, title: str = "", description: str = "", update_frequency: str = "",
                  person_key: str = "bsn", min_group_size: int = DEFAULT_MIN_GROUP_SIZE, row_count: int | None = None,
                  completeness: dict[str, float] | None = None) -> dict[str, Any]:  # fmt: skip
    """Return the public metadata of a dataset: schema, rules, rounded row count, completeness.

    The person_key column is marked ``werkplaats:role: person_key`` in the published schema
    (rule 1, docs/disclosure.md) unless the schema already gives it a role.
    """
    if person_key in schema.names and not schema.column(person_key).role:
        cols = tuple(dataclasses.replace(c, role="person_key") if c.name == person_key else c for c in schema.columns)
        schema = dataclasses.replace(schema, columns=cols)
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
