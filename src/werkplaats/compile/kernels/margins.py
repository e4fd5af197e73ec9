"""Rule 7, margins: secondary suppression of statistics that add up over cells.

A count or a sum of a released table adds up over its cells, and its total over a line
of the table (the cells that share every other key's value, the missing-key cell
included) is a margin that another query can release: the total of the whole table,
or the table grouped by one key fewer. Total minus the released cells of the line is
then the sum of the line's suppressed cells. This module withholds more cells (code
SECONDARY) until, in every line, the suppressed cells that hold anything

- hold together at least k units (rows for a count; contributors, or values, for a
  sum: the caller says which), so what can be derived is a group of at least k, and
- are not a single cell (a single one could be derived exactly, whatever it holds: a
  sum withheld for dominance, or a cell withheld to protect another line's cell).

A line without a released cell is left as it is: nothing can be subtracted from its
margin, which is a cell of the coarser table (the same rows under the same rules) and
withheld there when it holds too little.

Each line that falls short gets its released cell with the fewest units withheld as well
(the cheapest complement; the leftmost on ties), found by an oblivious tree over the
line's cells. Every key is visited ``ROUNDS`` times; a statistic whose table is still
not protected after that is withheld in every cell (SECONDARY), never released
half-protected.

One definition, two media: ``xp`` is the array module (``jax.numpy`` inside the MPC,
on secrets; ``numpy`` in the plain executor). Only arithmetic, comparisons and
reshapes: nothing branches on a value, so the MPC runs it as is. Its cost is in cells,
not rows: per line and round, a few comparisons per cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...plan import nodes as n
from ...plan.types import infer
from ...result import REVEALED, SECONDARY
from ..rules import DisclosureRules

ROUNDS = 2  # NB: rounds over all keys; one key needs one (a released cell brings >= k units)
BIG = 2**40  # NB: above any count of units, far below the ring's limit (comparisons subtract)


def additive(agg: n.Agg, arg_kind: str | None, rules: DisclosureRules) -> bool:
    """Return whether a statistic gets secondary suppression: it adds up over cells, and nothing else covers it.

    Counts (``len``, ``count``, the sum of a boolean) unless perturbation covers counts
    (rule 6); sums of any other column always (a sum of ``when(...).then(1)`` is a count in
    disguise, and sums are not perturbed); means always (a mean times its cell's released,
    perhaps perturbed, count is the cell's sum, near enough).
    """
    if not rules.secondary:
        return False
    if agg.func in ("len", "count") or (agg.func == "sum" and arg_kind == "bool"):
        return not rules.perturb
    return agg.func in ("sum", "mean")


class Margins:
    """Rule 7 for one checked plan (public facts only): which statistics get it, what a cell holds of each.

    ``units`` maps each such statistic to where its per-cell units come from: ``rows`` (the
    cell's rows: ``len``), ``n`` (its non-missing values: ``count``; a sum or mean when rule 2
    is off), ``z`` (its non-zero values, rule 2's contributors: a sum or mean), ``s`` (the sum
    itself: a sum of booleans is the count of its true rows). Each is what decided, against k,
    whether the statistic was released, so a released cell always holds at least k.
    """

    def __init__(self, a: Any) -> None:
        root = a.plan.root
        assert isinstance(root, n.Aggregate)
        schema = a.schema(root.input)
        self.k: int = a.plan.min_group_size
        self.shape = tuple(len(schema[key].grouping_domain or ()) + 1 for key in root.keys)
        self.units: dict[str, str] = {}
        for name, agg in root.aggs:
            kind = infer(agg.arg, schema).kind if agg.arg is not None else None
            if not self.shape or not additive(agg, kind, a.rules):
                continue
            if agg.func == "len":
                self.units[name] = "rows"
            elif agg.func == "count":
                self.units[name] = "n"
            else:
                bool_sum = kind == "bool" and agg.func == "sum"
                self.units[name] = "s" if bool_sum else "z" if a.rules.contributors else "n"

    def apply(self, stats: dict[str, tuple[Any, Any]], units: Callable[[str, str], Any],
              xp: Any) -> dict[str, tuple[Any, Any]]:  # fmt: skip
        """Return stats (name -> (code, value) per cell) with secondary suppression, values zeroed where added.

        units(name, source) returns a statistic's per-cell units from the source named in ``self.units``.
        """
        out = dict(stats)
        for name, src in self.units.items():
            code, value = stats[name]
            code, added = secondary(code, units(name, src), self.shape, self.k, xp)
            out[name] = (code, value * (1 - added).astype(value.dtype))
        return out

    def apply_outs(self, outs: list[Any], names: list[str], units: Callable[[str, str], Any], xp: Any) -> list[Any]:
        """Return the MPC's outputs [cell_ok, ok, value per statistic] with secondary suppression (see apply)."""
        stats = self.apply({nm: (outs[1 + 2 * j], outs[2 + 2 * j]) for j, nm in enumerate(names)}, units, xp)
        return [outs[0], *(x for nm in names for x in stats[nm])]


def plain_units(aggs: Any, rows: Any, nvalid: Any, values: list[Any],
                extras: dict[int, dict[str, list[Any]]]) -> Callable[[str, str], Any]:  # fmt: skip
    """Return the plain executor's units(name, source) (see Margins) from its per-cell arrays (compile/plain.py)."""
    index = {name: j for j, (name, _) in enumerate(aggs)}

    def units(name: str, src: str) -> Any:
        j = index[name]
        if src == "z":
            return np.asarray([z or 0 for z in extras[j]["z"]], dtype=np.int64)
        return {"rows": rows, "n": nvalid[j], "s": values[j]}[src]

    return units


def secondary(codes: Any, units: Any, shape: tuple[int, ...], k: int, xp: Any) -> tuple[Any, Any]:
    """Return (codes, added): one statistic's codes with secondary suppression, and 0/1 where it was added.

    codes: the statistic's per-cell flag (REVEALED or why withheld), cells in the order of
    ``result.key_grid`` (a C-order array of ``shape``: per key its domain plus missing);
    units: per cell what the cell holds (rows, contributors), the same >= k wherever it is
    released. The caller zeroes the values where ``added`` is 1.
    """
    if len(shape) == 0:
        return codes, codes * 0  # NB: a table of one cell has no lines
    dt = codes.dtype
    sup = (1 - (codes == REVEALED).astype(dt)).reshape(shape)
    u = units.astype(dt).reshape(shape)
    pos = (u > 0).astype(dt)
    added = sup * 0
    for _ in range(ROUNDS if len(shape) > 1 else 1):
        for axis in range(len(shape)):
            s, a, p = (xp.moveaxis(x, axis, -1) for x in (sup, u, pos))
            best, onehot = _fewest(s * BIG + (1 - s) * a, xp)
            add = onehot * (_short(s, a, p, k, xp) * (best < BIG).astype(dt))[..., None]
            add = xp.moveaxis(add, -1, axis)
            sup = sup + add  # NB: add is 1 only on released cells
            added = added + add
    short = sup.sum() * 0
    for axis in range(len(shape)):
        s, a, p = (xp.moveaxis(x, axis, -1) for x in (sup, u, pos))
        released = ((1 - s).sum(axis=-1) > 0).astype(dt)
        short = short + (_short(s, a, p, k, xp) * released).sum()
    fallback = (short > 0).astype(dt)
    added = added + fallback * (1 - sup)
    added = added.reshape(codes.shape)
    return codes + added * (SECONDARY - REVEALED), added


def _short(sup: Any, u: Any, pos: Any, k: int, xp: Any) -> Any:
    """Return per line (the last axis) 0/1: its suppressed cells hold 1..k-1 units, or are one cell holding any."""
    dt = sup.dtype
    held = (sup * u).sum(axis=-1)
    cells = (sup * pos).sum(axis=-1)
    few = (held >= 1).astype(dt) * (held <= k - 1).astype(dt)
    one = (cells == 1).astype(dt)
    return 1 - (1 - few) * (1 - one)


def _fewest(key: Any, xp: Any) -> tuple[Any, Any]:
    """Return per line (the last axis) the smallest key and the one-hot of its leftmost cell, by a tree.

    Each level pairs neighbouring segments and keeps the smaller (the left one on ties),
    carrying the winner's one-hot over the segment: comparisons per level are half the
    segments, multiplications the line's width.
    """
    dt = key.dtype
    width = key.shape[-1]
    full = 1 << (width - 1).bit_length()
    if full > width:
        pad = xp.zeros((*key.shape[:-1], full - width), dtype=dt) + BIG
        key = xp.concatenate([key, pad], axis=-1)
    vals = key
    hot = xp.ones((*key.shape, 1), dtype=dt)
    while vals.shape[-1] > 1:
        a, b = vals[..., 0::2], vals[..., 1::2]
        lt = (b < a).astype(dt)
        vals = a + lt * (b - a)
        ha, hb = hot[..., 0::2, :], hot[..., 1::2, :]
        hot = xp.concatenate([ha * (1 - lt)[..., None], hb * lt[..., None]], axis=-1)
    return vals[..., 0], hot[..., 0, :width]
