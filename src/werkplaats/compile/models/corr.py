"""TODO(contract): the corr summary; see compile/models/__init__.py for the functions every summary has."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...exceptions import OperationNotDefinedError
from ...plan.types import Schema
from ...result import Revealed
from ..analyze import Analysis

_TODO = "not implemented yet"


def schema(a: Analysis, node: Any, base: Schema) -> Schema:
    raise OperationNotDefinedError(_TODO)


def output_kinds(a: Analysis) -> list[tuple[str, str]]:
    raise OperationNotDefinedError(_TODO)


def mpc(a: Analysis, f: Any) -> tuple[list[tuple[int, Any]], list[Any]]:
    raise OperationNotDefinedError(_TODO)


def plain(a: Analysis, rows: pd.DataFrame) -> tuple[list[tuple[int, Any]], list[np.ndarray]]:
    raise OperationNotDefinedError(_TODO)


def revealed(a: Analysis, values: list[np.ndarray], withheld: int) -> Revealed:
    raise OperationNotDefinedError(_TODO)


def frame(a: Analysis, rev: Revealed) -> pd.DataFrame:
    raise OperationNotDefinedError(_TODO)
