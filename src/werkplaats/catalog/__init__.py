"""Catalog metadata: table schemas with types, code lists and key declarations."""

from .schema import ColumnSchema as ColumnSchema
from .schema import TableSchema as TableSchema
from .schema import infer_schema as infer_schema

__all__ = ["ColumnSchema", "TableSchema", "infer_schema"]
