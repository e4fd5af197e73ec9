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
# NB: both sides' rows from which the merge is used when both inputs arrive sorted: always. At 2 x 10,000
# rows the sort join alone was 1-2 s faster end to end (the network compiles longer), but a sorted join's
# output has both sides' rows for every later step (the hotspot program at 10K ran 3.6x longer), and
# order.sorted_on promises from the plan alone that a merged join's output is sorted: a size threshold
# made a chain's larger join merge the smaller one's unsorted output (withheld, UNSORTED).
MERGE_MIN_ROWS = 0
SENTINEL = 2**50  # NB: above every packed key (join keys are validated |key| < 2^38, so |packed| < 2^41)


BITS_PER_WORD = 60  # NB: 0/1 columns packed into one ring word travel as one column


def _is_bit(c: SCol, k: str) -> bool:
    """Return whether field k of column c is 0/1 by construction: validity, one-hot or code bits, a boolean."""
    last = k.rsplit(".", 1)[-1]
    return last == "ok" or last.startswith("oh") or (k == "v" and c.kind == "bool")


def unpack_bits(word: Any, count: int, zero: Any) -> list[Any]:
    """Return the low `count` bits of secret words as arithmetic 0/1 shares.

    One conversion to a boolean share (the XOR with a public 1: SPU converts once, and JAX cannot
    fold it away), then local shifts and masks; adding the secret zero converts each bit back.
    """
    q = jnp.bitwise_xor(word, 1)
    out = [jnp.bitwise_xor(jnp.bitwise_and(q, 1), 1) + zero]
    out += [jnp.bitwise_and(jnp.right_shift(q, j), 1) + zero for j in range(1, count)]
    return out


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
    zero = okr[0] * (1 - okr[0])  # NB: a secret 0 (okr is 0/1), see bitonic_merge
    # NB: invalid right rows carry zeros, so that copying "the most recent start" never copies one of them.
    arrays = [valid_r, *(a * valid_r.astype(a.dtype) for _, _, a in rfields)]
    bits = [0, *(i + 1 for i, (nm, k, a) in enumerate(rfields) if a.dtype == I64 and _is_bit(rcols[nm], k))]
    groups = [bits[i : i + BITS_PER_WORD] for i in range(0, len(bits), BITS_PER_WORD)]
    words = [sum(arrays[i] * (1 << j) for j, i in enumerate(g)) for g in groups]  # NB: local: public factors
    ints = [i for i, a in enumerate(arrays) if a.dtype == I64 and i not in bits]
    floats = [i for i, a in enumerate(arrays) if a.dtype != I64]
    pad = size - nr

    def block(cols: list[Any]) -> Any:
        m = jnp.stack(cols, axis=1)
        return jnp.concatenate([jnp.zeros((pad, len(cols)), m.dtype), m[::-1]])

    blocks = [block([valid_r, *words, *(arrays[i] for i in ints)])]
    if floats:
        blocks.append(block([arrays[i] for i in floats]))
    key = jnp.concatenate([kl * 4 + 1, jnp.full((size - nl - nr,), SENTINEL, I64), (kr * 4)[::-1]])
    skey, sorted_blocks, swaps = bitonic_merge(key, blocks, zero)

    diff = skey[1:] - skey[:-1]
    sorted_ok = 1 - b2i(b2i(diff < 0).sum() > 0)
    # NB: packed keys of one key differ by 0 or 1; of different keys by at least 3.
    start = jnp.concatenate([jnp.ones((1,), I64), b2i(diff >= 2)]) + zero
    valid_sorted = sorted_blocks[0][:, 0]
    st = start + valid_sorted - start * valid_sorted
    # NB: the validity travels back inside the first word (bit 0): one column fewer through the unmerge
    scanned = [seg_scan(st, b[:, 1:] if i == 0 else b, "copy") for i, b in enumerate(sorted_blocks)]
    back = [b[:nl] for b in unmerge(scanned, swaps)]
    copied: list[Any] = [None] * len(arrays)
    for g, w in zip(groups, (back[0][:, j] for j in range(len(groups))), strict=True):
        for i, bit in zip(g, unpack_bits(w, len(g), zero), strict=True):
            copied[i] = bit
    for j, i in enumerate(ints):
        copied[i] = back[0][:, len(groups) + j]
    for j, i in enumerate(floats):
        copied[i] = back[1][:, j]
    matched = copied[0] * okl
    mask = left.mask * matched if how == "inner" else left.mask

    cols: dict[str, SCol] = dict(left.cols)
    for name, c in rcols.items():
        got = {k: a * matched.astype(a.dtype) for (nm, k, _), a in zip(rfields, copied[1:], strict=True) if nm == name}
        cols[renames[name]] = _expand(c.rebuild(got), right.cols[name])
    return SFrame(nl, mask, cols, rk=left.rk), sorted_ok
