"""One exception tree for werkplaats, rooted at WerkplaatsError.

NB: messages name columns, tables, rules and counts, never values from data.
"""

from __future__ import annotations


class WerkplaatsError(Exception):
    """Base class of every error werkplaats raises on purpose."""


class PlanError(WerkplaatsError):
    """A plan is malformed, ill-typed, or would reveal row-level data."""


class PlanFormatError(PlanError):
    """A serialised plan does not match the published JSON Schema."""


class OperationNotDefinedError(PlanError):
    """An executor has no rule for an operation in the plan."""


class SchemaError(WerkplaatsError):
    """A table does not match the schema the plan was checked against."""


class DataValidationError(SchemaError):
    """Source data breaks a rule of its schema (type, uniqueness, domain, range)."""


class MPCError(WerkplaatsError):
    """The secure computation failed; no partial result was revealed."""


class PartyFailedError(MPCError):
    """A compute party died, hung or reported an error during a job."""

    def __init__(self, party: int, reason: str) -> None:
        self.party = party
        self.reason = reason
        super().__init__(f"MPC party {party} failed: {reason}")
