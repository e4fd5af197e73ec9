"""Plans: the analysis as data — nodes, canonical JSON and hash, JSON Schema, types, explain.

Everything here is public: a plan holds no data, only the description of an analysis.
"""

from .nodes import DEFAULT_MIN_GROUP_SIZE as DEFAULT_MIN_GROUP_SIZE
from .nodes import PLAN_FORMAT as PLAN_FORMAT
from .nodes import Plan as Plan

__all__ = ["DEFAULT_MIN_GROUP_SIZE", "PLAN_FORMAT", "Plan"]
