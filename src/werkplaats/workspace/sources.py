"""Read an organisation's source (CSV, Parquet, DuckDB file, PostgreSQL table) into typed columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..catalog.frictionless import read_csv
from ..catalog.schema import TableSchema
from ..exceptions import DataValidationError
from .config import DatasetSource


def read_source(ds: DatasetSource, schema: TableSchema) -> pd.DataFrame:
    """Return the dataset's columns from its source; errors name the dataset, never values."""
    src = ds.source
    if src.startswith("postgresql"):
        return _sql_table(ds, schema)
    p = Path(src)
    if not p.exists():
        msg = f"dataset {ds.name!r}: source {src!r} does not exist"
        raise DataValidationError(msg)
    if p.suffix == ".csv":
        return read_csv(p, schema)
    if p.suffix == ".parquet":
        df = pd.read_parquet(p)
    elif p.suffix in (".duckdb", ".db"):
        import duckdb

        if not ds.table:
            msg = f"dataset {ds.name!r}: a DuckDB source needs 'table'"
            raise DataValidationError(msg)
        con = duckdb.connect(str(p), read_only=True)
        try:
            df = con.execute(f'SELECT * FROM "{ds.table.replace(chr(34), "")}"').df()
        finally:
            con.close()
    else:
        msg = f"dataset {ds.name!r}: unknown source type {p.suffix!r} (csv, parquet, duckdb, postgresql://)"
        raise DataValidationError(msg)
    missing = [c for c in schema.names if c not in df.columns]
    if missing:
        msg = f"dataset {ds.name!r} ({len(df)} rows): columns missing from the source: {missing}"
        raise DataValidationError(msg)
    return df[schema.names]


def _sql_table(ds: DatasetSource, schema: TableSchema) -> pd.DataFrame:
    """Read the schema's columns of a PostgreSQL table."""
    import sqlalchemy as sa

    from .sql import make_engine

    if not ds.table:
        msg = f"dataset {ds.name!r}: a PostgreSQL source needs 'table'"
        raise DataValidationError(msg)
    eng = make_engine(ds.source)
    try:
        with eng.connect() as conn:
            t = sa.Table(ds.table, sa.MetaData(), autoload_with=conn)
            cols = [c for c in schema.names if c in t.c]
            missing = [c for c in schema.names if c not in t.c]
            if missing:
                msg = f"dataset {ds.name!r}: columns missing from table {ds.table!r}: {missing}"
                raise DataValidationError(msg)
            df = pd.read_sql(sa.select(*[t.c[c] for c in cols]), conn)
    finally:
        eng.dispose()
    return df
