"""Compilers from plans to executors: analysis, plain (DuckDB) and SPU (JAX)."""
