"""Sort-based secret join with a unique right side.

Both sides are stacked (right rows first) and sorted once on a packed key
(key, tag, row index) where tag orders valid right rows before left rows before
masked-out right rows. The packed key is distinct for every row, so SPU's
shuffle-then-quicksort reveals nothing but a random permutation. A segmented scan
then copies each key's right row onto the left rows that follow it. Nothing
shrinks: the output has all rows of both sides and a secret mask.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp

from ...exceptions import OperationNotDefinedError
from .core import I64, ROW_BITS, SCol, SFrame, b2i, seg_scan


def key_values(c: SCol) -> tuple[Any, Any]:
    """Return (integer key, validity) of a join or group key column."""
    if c.kind == "str":
        codes = jnp.arange(c.oh.shape[1], dtype=I64)
        return (c.oh * codes[None, :]).sum(axis=1), c.oh.sum(axis=1)
    if c.kind in ("int", "date"):
        # NB: dates may precede 1970; shift days into the non-negative range.
        return (c.v + 2**20 if c.kind == "date" else c.v), c.ok
    msg = f"MPC executor: cannot use a {c.kind} column as a key"
    raise OperationNotDefinedError(msg)


MIN_PACKED = 4  # NB: below 4 categories the one-hot is no wider than its bits


def pack_onehot(oh: Any) -> Any:
    """Return the bits of each row's code (category k → k + 1, missing → 0): n × ceil(log2(K+1)).

    Sums of public selections of columns: local, no communication.
    """
    k = oh.shape[1]
    bits = max(1, (k).bit_length())
    out = []
    for j in range(bits):
        cols = [i for i in range(k) if ((i + 1) >> j) & 1]
        out.append(oh[:, cols].sum(axis=1) if cols else jnp.zeros((oh.shape[0],), I64))
    return jnp.stack(out, axis=1)


def unpack_onehot(bits: Any, k: int) -> Any:
    """Return the n × k one-hot of packed codes, by a tree of 2^b - 1 multiplications per row."""
    m = jnp.stack([1 - bits[:, 0], bits[:, 0]], axis=1)
    for j in range(1, bits.shape[1]):
        hit = m * bits[:, j][:, None]
        m = jnp.concatenate([m - hit, hit], axis=1)
    return m[:, 1 : k + 1]


def _compact(c: SCol) -> SCol:
    """Return c with wide one-hots replaced by their code bits (see pack_onehot)."""
    parts = {p: _compact(sub) for p, sub in c.parts.items()}
    if c.oh is not None and c.oh.shape[1] >= MIN_PACKED:
        return replace(c, oh=pack_onehot(c.oh), parts=parts)
    return replace(c, parts=parts)


def _expand(packed: SCol, like: SCol) -> SCol:
    """Undo _compact on a column of the same structure as `like`."""
    parts = {p: _expand(packed.parts[p], sub) for p, sub in like.parts.items()}
    if like.oh is not None and like.oh.shape[1] >= MIN_PACKED:
        return replace(packed, oh=unpack_onehot(packed.oh, like.oh.shape[1]), parts=parts)
    return replace(packed, parts=parts)


def _pad(x: Any, before: int, after: int) -> Any:
    return jnp.concatenate([jnp.zeros((before,), x.dtype), x, jnp.zeros((after,), x.dtype)])


def join(left: SFrame, right: SFrame, on: str, how: str, renames: dict[str, str]) -> SFrame:
    """Return left ⋈ right on a key unique among right's valid rows."""
    nl, nr = left.n, right.n
    total = nl + nr
    if total >= 2**ROW_BITS:
        msg = f"MPC executor: a join of {total} rows exceeds the limit of {2**ROW_BITS - 1}"
        raise OperationNotDefinedError(msg)
    kl, okl = key_values(left.cols[on])
    kr, okr = key_values(right.cols[on])
    valid_r = right.mask * okr
    key = jnp.concatenate([kr, kl])
    tag = jnp.concatenate([2 * (1 - valid_r), jnp.ones((nl,), I64)])
    packed = (key * 4 + tag) * 2**ROW_BITS + jnp.arange(total, dtype=I64)

    # NB: every operand costs memory and a shuffle in the sort, so nothing derivable travels:
    # the left mask is zero on right rows (no separate is-left flag), and a plain integer
    # left key is rebuilt from the sorted key and its validity.
    # Wide categoricals travel as code bits, not one-hots (5 operands instead of 31 for 31 codes).
    lkey = left.cols[on]
    rebuild_key = lkey.kind == "int" and lkey.oh is None and not lkey.parts
    lcols = {name: _compact(c) for name, c in left.cols.items()}
    rcols = {name: _compact(c) for name, c in right.cols.items() if name != on}
    lfields = [(name, k, a) for name, c in lcols.items() if not (rebuild_key and name == on)
               for k, a in c.fields()]  # fmt: skip
    rfields = [(name, k, a) for name, c in rcols.items() for k, a in c.fields()]
    operands = [packed, key, _pad(left.mask, nr, 0), _pad(okl, nr, 0), _pad(valid_r, 0, nl)]
    operands += [_pad(a, nr, 0) for _, _, a in lfields]
    operands += [_pad(a, 0, nl) for _, _, a in rfields]
    if left.rk is not None:  # NB: rule 6: the output's rows are the left rows; they keep their record keys
        operands.append(_pad(left.rk, nr, 0))
    out = list(jax.lax.sort(operands, num_keys=1))
    rk = out.pop() if left.rk is not None else None
    skey, lmask, lok, rvalid = out[1:5]
    lsorted = out[5 : 5 + len(lfields)]
    rsorted = out[5 + len(lfields) :]

    start = jnp.concatenate([jnp.ones((1,), I64), b2i(skey[1:] != skey[:-1])])
    # Copy each key's first row (a valid right row, if there is one) down its segment.
    # Integer and fixed-point payloads are scanned separately (they are different types).
    rpay = [rvalid, *rsorted]
    copied: list[Any] = [None] * len(rpay)
    for dtype in {a.dtype for a in rpay}:
        idx = [i for i, a in enumerate(rpay) if a.dtype == dtype]
        block = seg_scan(start, jnp.stack([rpay[i] for i in idx], axis=1), "copy")
        for j, i in enumerate(idx):
            copied[i] = block[:, j]
    matched = copied[0] * lok
    mask = lmask * matched if how == "inner" else lmask

    cols: dict[str, SCol] = {}
    for name, c in lcols.items():
        if rebuild_key and name == on:
            cols[name] = SCol("int", lok, skey * lok)
            continue
        arrays = {k: a for (nm, k, _), a in zip(lfields, lsorted, strict=True) if nm == name}
        cols[name] = _expand(c.rebuild(arrays), left.cols[name])
    for name, c in rcols.items():
        arrays = {k: a * matched for (nm, k, _), a in zip(rfields, copied[1:], strict=True) if nm == name}
        cols[renames[name]] = _expand(c.rebuild(arrays), right.cols[name])
    return SFrame(total, mask, cols, rk=rk)
