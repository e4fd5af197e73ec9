"""Vectorised JAX kernels that SPU runs on secret-shared columns.

Every kernel works on whole columns (no Python loops over rows) and never shrinks
a column: filters and joins produce secret validity masks instead.
"""
