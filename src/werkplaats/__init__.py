"""werkplaats: analyse joint person-level data under secure multi-party computation.

Data stays at the source; analyses run on the joint data as if it were one source;
only aggregated, disclosure-controlled results come out.
"""

from __future__ import annotations

from typing import Any

from . import stats as stats
from .catalog.schema import ColumnSchema as ColumnSchema
from .catalog.schema import TableSchema as TableSchema
from .compile.rules import DisclosureRules as DisclosureRules
from .compile.rules import PTable as PTable
from .exceptions import DataValidationError as DataValidationError
from .exceptions import MPCError as MPCError
from .exceptions import PartyFailedError as PartyFailedError
from .exceptions import PlanError as PlanError
from .exceptions import WerkplaatsError as WerkplaatsError
from .expr import AggExpr as AggExpr
from .expr import Expr as Expr
from .expr import col as col
from .expr import count as count
from .expr import lit as lit
from .expr import when as when
from .frame import GlmSpec as GlmSpec
from .frame import LazyFrame as LazyFrame
from .frame import concat as concat
from .frame import from_plan as from_plan
from .frame import glm as glm
from .frame import scan as scan
from .local import run_local as run_local
from .plan.standards import standard_population as standard_population

__version__ = "0.1.0"


def connect(url: str, *, token: str, ca: Any = None, cert: Any = None, key: Any = None) -> Any:
    """Connect to a workspace hub; see werkplaats.workspace.client."""
    from .workspace.client import connect as _connect

    return _connect(url, token=token, ca=ca, cert=cert, key=key)


__all__ = [
    "AggExpr",
    "ColumnSchema",
    "DataValidationError",
    "DisclosureRules",
    "Expr",
    "GlmSpec",
    "LazyFrame",
    "MPCError",
    "PTable",
    "PartyFailedError",
    "PlanError",
    "TableSchema",
    "WerkplaatsError",
    "col",
    "concat",
    "connect",
    "count",
    "from_plan",
    "glm",
    "lit",
    "run_local",
    "scan",
    "standard_population",
    "stats",
    "when",
]
