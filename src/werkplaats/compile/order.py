"""The owner's local order of its rows: sorted on the join key, so that the engines merge instead of sort.

`order_rows` runs last in the owner's encoding (`werkplaats.mpc.encode`): when the plan joins
one of the owner's datasets, the owner sorts its (padded) rows on the join key exactly as the
join kernel packs it (`kernels.join.key_values`: an int's value, a date's days + 2^20, a
categorical's code; missing keys and padding rows are 0 there), stably. `sorted_on` tells the
compiler, from the plan alone, which relations arrive sorted on which column, and the SPU
compiler merges (`kernels/merge.py`) where both sides of a join do.

Which column a dataset is sorted on is public, decided from the plan: the key of the first join
(pre-order from the root, left before right) whose side reads the dataset through
order-preserving nodes (Filter, WithColumns that leave the key alone, Select that passes it
through, the left side of a merged join) with the key unchanged.

Security model: a permutation of the owner's own rows before sharing reveals nothing: the
shares of a sorted table are as random as those of any other order, and the engines learn only
that the rows are sorted on a column the plan names. An owner that does not sort cannot make a
result wrong: the merge checks the order inside the MPC and the result is then withheld.
"""

from __future__ import annotations

import numpy as np

from ..plan import nodes as n
from ..plan.types import column_dtype
from .analyze import Analysis
from .layout import Slot

KEY_KINDS = ("int", "date", "str")


def _trace(rel: n.Relation, col: str) -> tuple[str, str] | None:
    """Return (dataset, source column) whose order and values `col` of rel keeps, or None."""
    if isinstance(rel, n.Source):
        return (rel.dataset, col) if rel.columns is None or col in rel.columns else None
    if isinstance(rel, n.Filter):
        return _trace(rel.input, col)
    if isinstance(rel, n.WithColumns):
        return None if any(name == col for name, _ in rel.exprs) else _trace(rel.input, col)
    if isinstance(rel, n.Select):
        for name, e in rel.exprs:
            if name == col:
                return _trace(rel.input, e.name) if isinstance(e, n.Col) else None
        return None
    if isinstance(rel, n.Join):
        # NB: a merged join's rows are its left rows in their order; an unmerged one is not traced (sorted_on)
        return _trace(rel.left, col) if col == rel.on else None
    return None  # NB: Aggregate, Concat, summaries and any node added later: not order-preserving as far as we know


def _joins(rel: n.Relation) -> list[n.Join]:
    """Return the plan's joins in pre-order (a join before its inputs, left before right)."""
    out = [rel] if isinstance(rel, n.Join) else []
    for c in n.children(rel):
        out += _joins(c)
    return out


def sort_columns(a: Analysis) -> dict[str, str]:
    """Return, per dataset, the column its owner sorts on (public, from the plan)."""
    out: dict[str, str] = {}
    for j in _joins(a.plan.root):
        for side in (j.left, j.right):
            hit = _trace(side, j.on)
            if hit is None or hit[0] in out or hit[0] not in a.catalog:
                continue
            if column_dtype(a.catalog[hit[0]].column(hit[1])).kind in KEY_KINDS:
                out[hit[0]] = hit[1]
    return out


def _key(dataset: str, column: str, kind: str, slots: list[Slot], arrays: list[np.ndarray]) -> np.ndarray | None:
    """Return the packed join key of every row, as kernels.join.key_values computes it."""
    got = {(s.dataset, s.column, s.encoding): x for s, x in zip(slots, arrays, strict=True)}
    if kind == "str":
        oh = got.get((dataset, column, "oh"))
        return None if oh is None else (oh * np.arange(oh.shape[1], dtype=np.int64)[None, :]).sum(axis=1)
    v = got.get((dataset, column, "v"))
    if v is None:
        return None
    return v.astype(np.int64) + (2**20 if kind == "date" else 0)


def order_rows(a: Analysis, dataset: str, slots: list[Slot], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Return one owner's encoded arrays (its slots, in order) with the rows in the order the plan can use."""
    col = sort_columns(a).get(dataset)
    if col is None or not arrays:
        return arrays
    kind = column_dtype(a.catalog[dataset].column(col)).kind
    key = _key(dataset, col, kind, slots, arrays)
    if key is None:
        return arrays
    perm = np.argsort(key, kind="stable")
    return [x[perm] for x in arrays]


def sorted_on(a: Analysis, rel: n.Relation) -> str | None:
    """Return the column a relation's rows arrive sorted on (public, from the plan), or None."""
    if isinstance(rel, n.Source):
        col = sort_columns(a).get(rel.dataset)
        return col if col is not None and (rel.columns is None or col in rel.columns) else None
    if isinstance(rel, n.Filter):
        return sorted_on(a, rel.input)
    if isinstance(rel, n.WithColumns):
        col = sorted_on(a, rel.input)
        return None if col is None or any(name == col for name, _ in rel.exprs) else col
    if isinstance(rel, n.Select):
        col = sorted_on(a, rel.input)
        for name, e in rel.exprs:
            if isinstance(e, n.Col) and e.name == col:
                return name
        return None
    if isinstance(rel, n.Join):
        return rel.on if merges(a, rel) else None
    return None


def merges(a: Analysis, j: n.Join) -> bool:
    """Return whether the SPU compiler merges this join: both sides arrive sorted on its key (public)."""
    return sorted_on(a, j.left) == j.on and sorted_on(a, j.right) == j.on
