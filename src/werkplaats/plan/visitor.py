"""One dispatch for everything that walks plan nodes: ``visit_<NodeName>`` methods.

Type inference, explain, the plain (DuckDB) executor and the MPC (JAX/SPU)
executor are each a ``Visitor`` subclass with one ``visit_<NodeName>`` method per
node kind it supports, plus declarative tables for the small operator sets (binary
operators, aggregate functions, date parts). A node without a rule raises
``OperationNotDefinedError`` naming the visitor and the node, so what each one
supports is explicit, and tests/compile/test_node_coverage.py checks that every
visitor has a rule for every kind in plan.nodes.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from ..exceptions import OperationNotDefinedError

R = TypeVar("R")


class Visitor(Generic[R]):
    """Base of every plan visitor: ``visit(node, *args)`` calls ``visit_<type(node).__name__>``."""

    #: How messages name this visitor ("the plain executor", "type inference", ...).
    name: ClassVar[str] = "this visitor"

    def visit(self, node: Any, *args: Any) -> R:
        """Return the rule's result for one node; raise OperationNotDefinedError if there is none."""
        rule = getattr(self, "visit_" + type(node).__name__, None)
        if rule is None:
            msg = f"{self.name} has no rule for {type(node).__name__}"
            raise OperationNotDefinedError(msg)
        return rule(node, *args)

    @classmethod
    def handles(cls, kind: type) -> bool:
        """Return whether this visitor has a rule for a node kind."""
        return callable(getattr(cls, "visit_" + kind.__name__, None))
