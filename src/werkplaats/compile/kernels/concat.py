"""Stacking secret frames of several organisations (a union), and keeping each person once.

`concat` stacks the inputs' rows: every column is first laid out on the union of the inputs'
code lists (a public re-indexing of its one-hot columns), then each array is concatenated. The
row masks and record keys are stacked alike; nothing is compared or revealed.

`distinct` keeps each person once without revealing who is in more than one input: the rows are
sorted once on a packed key (person key, invalid flag, row index) that is distinct for every
row, so SPU's shuffle-then-sort reveals nothing but a random permutation (as in the join). A
person's valid rows then form the head of its segment, in stacking order; the first row of
each segment is kept when it is valid, and every other row's mask becomes 0. The output keeps
all rows, with a secret mask: its shape depends on the public row counts only.

The union rule (docs/disclosure.md): each input's contribution to a released cell must be 0 or at
least k. `tag_inputs` adds one hidden 0/1 column per input (`PART`: the row comes from input s),
which filters, computed columns, selections and a join's left side carry to the final aggregate;
after `distinct` they say which inputs have the kept row's person (`PART`), and which have the
person and no other input does (`ONLY`). The aggregation sums them per cell with the row counts.

Security model: every array here is secret; shapes, code lists and the stacking order of the
inputs are public (from the plan and the schemas).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp

from ...exceptions import OperationNotDefinedError
from ...plan.types import DType, date_part_domain
from .core import I64, ROW_BITS, SCol, SFrame, b2i, seg_scan
from .expr import align
from .join import _compact, _expand, key_values


def _onto(c: SCol, domain: tuple[Any, ...] | None) -> SCol:
    """Return c with its one-hot (if any) re-indexed onto domain; without a domain, without one-hot."""
    if domain is None:
        return replace(c, oh=None, domain=None) if c.kind != "str" else c
    oh = align(c, domain) if c.oh is not None else None
    return replace(c, oh=oh, domain=domain)


def conform(c: SCol, t: DType, parts: set[str]) -> SCol:
    """Return a column laid out on the stacked type t (its code list, its date parts' code lists)."""
    out = _onto(c, t.domain)
    if c.kind == "date":
        kept = {p: _onto(sub, date_part_domain(p, t.years)) for p, sub in c.parts.items() if p in parts}
        out = replace(out, parts=kept)
    return out


def concat(frames: list[SFrame], schema: dict[str, DType]) -> SFrame:
    """Return the rows of every frame, stacked in order, with each column on the stacked type of schema."""
    cols: dict[str, SCol] = {}
    for name, t in schema.items():
        parts = set.intersection(*(set(f.cols[name].parts) for f in frames))
        each = [conform(f.cols[name], t, parts) for f in frames]
        fields = [dict(c.fields()) for c in each]
        first = each[0]
        arrays = {k: jnp.concatenate([f[k].astype(a.dtype) for f in fields]) for k, a in fields[0].items()}
        cols[name] = first.rebuild(arrays)
    mask = jnp.concatenate([f.mask for f in frames])
    rk = jnp.concatenate([f.rk for f in frames]) if all(f.rk is not None for f in frames) else None
    return SFrame(sum(f.n for f in frames), mask, cols, rk=rk)


# NB: hidden columns (+ the input's index); the plan checker refuses plan columns starting with "__union"
PART, ONLY = "__union:", "__union_only:"


def hidden(f: SFrame) -> list[str]:
    """Return the names of f's hidden union columns (`PART` then `ONLY`, each by input), in order."""
    return sorted((c for c in f.cols if c.startswith((PART, ONLY))), key=lambda c: (c[: c.index(":")], _index(c)))


def _index(name: str) -> int:
    return int(name[name.index(":") + 1 :])


def without_hidden(f: SFrame) -> SFrame:
    """Return f without its hidden union columns."""
    return replace(f, cols={c: x for c, x in f.cols.items() if not c.startswith((PART, ONLY))})


def tag_inputs(f: SFrame, sizes: list[int]) -> SFrame:
    """Return a stacked frame with one hidden column per input: 1 on the rows that input stacked (public).

    NB: the column's ``ok`` is the indicator (no value array), so a join's sort carries one array per input.
    """
    cols = dict(f.cols)
    for s in range(len(sizes)):
        ind = jnp.concatenate([jnp.full((size,), int(j == s), dtype=I64) for j, size in enumerate(sizes)])
        cols[f"{PART}{s}"] = SCol("int", ind)
    return replace(f, cols=cols)


def _persons_per_input(kept: SFrame, end: Any, parts: Any) -> SFrame:
    """Return kept with, on each person's kept row, which inputs have the person (PART) and have them alone (ONLY).

    end: 1 on each person's last row (rows sorted on the person key); parts: rows × inputs, each row's
    input indicator times its validity. A scan from the end of each person's rows gives, on the
    person's first row, the person's valid rows per input.
    """
    per = seg_scan(end[::-1], parts[::-1], "sum")[::-1]
    has = b2i(per > 0)
    alone = b2i(has.sum(axis=1) == 1)
    cols = dict(kept.cols)
    for s in range(parts.shape[1]):
        cols[f"{PART}{s}"] = SCol("int", has[:, s])
        cols[f"{ONLY}{s}"] = SCol("int", has[:, s] * alone)
    return replace(kept, cols=cols)


def distinct(f: SFrame, on: str) -> SFrame:
    """Return f with only each person's first valid row (in row order) still in the mask; rows with no key drop out.

    Record keys are not carried: the caller derives them from the kept person key (rule 6). When f
    carries the hidden union columns (`tag_inputs`), the kept row's say which inputs have the person.
    """
    if f.n >= 2**ROW_BITS:
        msg = f"MPC executor: a distinct concat of {f.n} rows exceeds the limit of {2**ROW_BITS - 1}"
        raise OperationNotDefinedError(msg)
    key, ok = key_values(f.cols[on])
    valid = f.mask * ok
    packed = (key * 2 + (1 - valid)) * 2**ROW_BITS + jnp.arange(f.n, dtype=I64)
    tags = [c for c in hidden(f) if c.startswith(PART)]
    plain = without_hidden(f)
    compact = {name: _compact(c) for name, c in plain.cols.items()}
    fields = [(name, k, a) for name, c in compact.items() for k, a in c.fields()]
    out = jax.lax.sort([packed, key, valid, *(f.cols[t].ok for t in tags), *(a for _, _, a in fields)], num_keys=1)
    skey, svalid = out[1], out[2]
    stags, sorted_fields = out[3 : 3 + len(tags)], out[3 + len(tags) :]
    start = jnp.concatenate([jnp.ones((1,), I64), b2i(skey[1:] != skey[:-1])])
    cols = {}
    for name, c in compact.items():
        arrays = {k: a for (nm, k, _), a in zip(fields, sorted_fields, strict=True) if nm == name}
        cols[name] = _expand(c.rebuild(arrays), f.cols[name])
    kept = SFrame(f.n, start * svalid, cols, rk=None)
    if not tags:
        return kept
    end = jnp.concatenate([b2i(skey[1:] != skey[:-1]), jnp.ones((1,), I64)])
    return _persons_per_input(kept, end, jnp.stack(stags, axis=1) * svalid[:, None])
