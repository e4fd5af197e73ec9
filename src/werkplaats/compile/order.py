"""The owner's local order of its rows: sorted on the join key, so that the engines merge instead of sort.

Contract (issue 13; filled in by the join work): `order_rows` runs last in the owner's
encoding (`werkplaats.mpc.encode`) and `sorted_on` tells the compiler, from the plan alone,
which relations arrive sorted. A permutation of the owner's own rows before sharing reveals
nothing: the shares of a sorted table are as random as those of any other order.
"""

from __future__ import annotations

import numpy as np

from ..plan import nodes as n
from .analyze import Analysis
from .layout import Slot


def order_rows(a: Analysis, dataset: str, slots: list[Slot], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Return one owner's encoded arrays (its slots, in order) with the rows in the order the plan can use."""
    return arrays


def sorted_on(a: Analysis, rel: n.Relation) -> str | None:
    """Return the column a relation's rows arrive sorted on (public, from the plan), or None."""
    del a, rel
    return None
