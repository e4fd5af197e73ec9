"""Merge-based secret join of two inputs that arrive sorted on the join key (issue 13).

When both owners sorted their rows on the join key before sharing (`compile/order.py`), the
engines need not sort the union of both sides: left ascending, then public sentinels, then
right reversed is a bitonic sequence, and a bitonic merge sorts it with log2(N) layers of N/2
vectorised compare-exchanges (N: the next power of two of both sides' rows). Only the packed
key ``key·4 + (1 if left)`` and the right side's payload go through the network; each layer's
secret swap bits are kept. A segmented scan then copies the most recent VALID right row of a
key onto the left rows that follow it (the right side's validity after a filter is secret, so
valid right rows cannot be put first), and the same network run backwards with the same swap
bits takes the copies back to the left rows' own positions. The left side never moves: the
output is the left rows, in their input order, with the matched right columns.

What it reveals: nothing. The network's shape depends only on the public row counts; every
comparison result stays secret. An owner that did not sort (or lied about it) cannot make the
result silently wrong: the program checks that the merged keys are in order (one comparison per
adjacent pair); if they are not, `sorted_ok` is 0 and the caller withholds the whole result
(`result.UNSORTED`). If the merged sequence is in order, it is the sorted multiset of packed
keys, whatever the inputs were, so the scan is exact.
"""

from __future__ import annotations

import os
from typing import Any

import jax.numpy as jnp

from .core import I64, SCol, SFrame, b2i, seg_scan
from .join import _compact, _expand, key_values

METHOD_ENV = "WERKPLAATS_JOIN"  # NB: "sort" or "merge" forces a method (bench/join.py compares them)
MERGE_MIN_ROWS = 0  # NB: both sides' rows from which the merge is used when both inputs arrive sorted (measured)
SENTINEL = 2**50  # NB: above every packed key (join keys are validated |key| < 2^38, so |packed| < 2^41)


def use_merge(rows: int) -> bool:
    """Return whether a join of `rows` rows (both sides, public) whose inputs arrive sorted is merged, not sorted."""
    forced = os.environ.get(METHOD_ENV, "")
    if forced in ("sort", "merge"):
        return forced == "merge"
    return rows >= MERGE_MIN_ROWS


def _pow2(n: int) -> int:
    return 1 << max(1, (n - 1).bit_length())


def _exchange(x: Any, c: Any, s: int) -> Any:
    """Swap the pairs (i, i + s) of every block of 2s rows of x where c is 1 (one multiplication per value)."""
    shape = x.shape
    blocks = x.reshape((-1, 2, s, *shape[1:]))
    a, b = blocks[:, 0], blocks[:, 1]
    cc = c.reshape(c.shape + (1,) * (a.ndim - c.ndim)).astype(a.dtype)
    d = cc * (b - a)
    return jnp.stack([a + d, b - d], axis=1).reshape(shape)


def bitonic_merge(key: Any, payload: list[Any], zero: Any = 0) -> tuple[Any, list[Any], list[tuple[int, Any]]]:
    """Sort a bitonic sequence ascending; return the key, the payload blocks and each layer's (stride, swap bits).

    key: (N,) with N a power of two; payload: (N, ·) blocks swapped alongside. zero: a secret 0
    (a scalar): adding it turns each layer's comparison bits into arithmetic shares once, so that
    the swaps are plain multiplications (in SPU's ABY3 a product with a boolean share sends three
    times the bytes, per value swapped and per layer).
    """
    n = key.shape[0]
    swaps = []
    s = n // 2
    while s >= 1:
        blocks = key.reshape(-1, 2, s)
        c = b2i(blocks[:, 0] > blocks[:, 1]) + zero
        key = _exchange(key, c, s)
        payload = [_exchange(p, c, s) for p in payload]
        swaps.append((s, c))
        s //= 2
    return key, payload, swaps


def unmerge(payload: list[Any], swaps: list[tuple[int, Any]]) -> list[Any]:
    """Undo bitonic_merge's permutation on payload blocks: the same exchanges in reverse order."""
    for s, c in reversed(swaps):
        payload = [_exchange(p, c, s) for p in payload]
    return payload


def merge_join(left: SFrame, right: SFrame, on: str, how: str, renames: dict[str, str]) -> tuple[SFrame, Any]:
    """Return (left ⋈ right, sorted_ok) for inputs sorted ascending on key_values of `on`.

    The right side's key is unique among its valid rows (as for join.join). sorted_ok is a secret
    0/1: 1 when the merged keys are in order; with 0 the frame is meaningless and must be withheld.
    """
    nl, nr = left.n, right.n
    size = _pow2(nl + nr)
    kl, okl = key_values(left.cols[on])
    kr, okr = key_values(right.cols[on])
    valid_r = right.mask * okr
    rcols = {name: _compact(c) for name, c in right.cols.items() if name != on}
    rfields = [(name, k, a) for name, c in rcols.items() for k, a in c.fields()]
    arrays = [valid_r, *(a for _, _, a in rfields)]
    dtypes = sorted({str(a.dtype) for a in arrays})
    # NB: invalid right rows carry zeros, so that copying "the most recent start" never copies one of them.
    blocks = []
    for dt in dtypes:
        idx = [i for i, a in enumerate(arrays) if str(a.dtype) == dt]
        m = jnp.stack([arrays[i] * valid_r.astype(arrays[i].dtype) if i else arrays[i] for i in idx], axis=1)
        blocks.append((idx, jnp.concatenate([jnp.zeros((size - nr, len(idx)), m.dtype), m[::-1]])))
    key = jnp.concatenate([kl * 4 + 1, jnp.full((size - nl - nr,), SENTINEL, I64), (kr * 4)[::-1]])
    zero = okr[0] * (1 - okr[0])  # NB: a secret 0 (okr is 0/1), see bitonic_merge
    skey, sorted_blocks, swaps = bitonic_merge(key, [b for _, b in blocks], zero)

    diff = skey[1:] - skey[:-1]
    sorted_ok = 1 - b2i(b2i(diff < 0).sum() > 0)
    # NB: packed keys of one key differ by 0 or 1; of different keys by at least 3.
    start = jnp.concatenate([jnp.ones((1,), I64), b2i(diff >= 2)])
    copied: list[Any] = [None] * len(arrays)
    valid_sorted = next(b[:, idx.index(0)] for (idx, _), b in zip(blocks, sorted_blocks, strict=True) if 0 in idx)
    st = start + valid_sorted - start * valid_sorted
    scanned = [seg_scan(st, b, "copy") for b in sorted_blocks]
    back = unmerge(scanned, swaps)
    for (idx, _), b in zip(blocks, back, strict=True):
        for j, i in enumerate(idx):
            copied[i] = b[:nl, j]
    matched = copied[0] * okl
    mask = left.mask * matched if how == "inner" else left.mask

    cols: dict[str, SCol] = dict(left.cols)
    for name, c in rcols.items():
        got = {k: a * matched.astype(a.dtype) for (nm, k, _), a in zip(rfields, copied[1:], strict=True) if nm == name}
        cols[renames[name]] = _expand(c.rebuild(got), right.cols[name])
    return SFrame(nl, mask, cols, rk=left.rk), sorted_ok
