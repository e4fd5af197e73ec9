"""Rule 6: record keys, cell keys and the perturbation (or rounding) of released counts.

Record keys. Each record gets an 8-bit record key rk = mix(person key, K), where K is a
64-bit key no single node knows (the MPC gets it as three additive parts, one per engine,
and adds them inside the program). ``mix`` works in the ring Z_2^64, where SPU's integers
live and where NumPy's uint64 arithmetic wraps alike, so both executors compute the same
keys:

    a = 2K + 1                       (odd: multiplying by it is a bijection of the ring)
    h = x·a + K·C0
    h = (h + (h >> 31))·C1           (>>: logical shifts; they carry high bits down)
    h = (h + K·C2)·a
    h = (h + (h >> 29))·C3
    rk = (h + (h >> 32)) >> 56       (the TOP 8 bits: low bits of ring products depend only
                                      on low bits of their factors)

It is a keyed mixing function, not a vetted pseudo-random function: its job is that a
node holding person keys but not K cannot compute any record key (every step involves K
twice, through a multiplication by a secret odd number), and that record keys of different
persons look independent and uniform over 0..255 (the tests measure that). An attacker
would need K — all three engines' parts — or enough (person key, record key) pairs to solve
for K, and record keys are never revealed: only released counts, each perturbed by a noise
that depends on the sum of many record keys. Replacing ``mix`` by a PRF evaluated in MPC
(e.g. LowMC or AES in SPU) would make that argument standard; it costs far more per row.

Cell keys and noise. A statistic's cell key is the sum, mod 256, of the record keys of the
records it counts (a cell's rows for ``len``; the non-missing rows for ``count``; the true
rows for the sum of a boolean); the noise is the published table's entry for
(min(count, last row), cell key) (`compile.ptable`), found by comparisons of the secret cell
key with the table's public cumulative thresholds. The same records always get the same
noise, so differencing two queries yields noise, not a person. Rounding
(``counts == "round"``, and ``"perturb"`` where the rows carry no person key) rounds a
released count to the nearest multiple of the base (halves up), by exact integer steps.

Security model: record keys, cell keys, counts and noise are secret inside the MPC; the
table, the mixing constants, the mode and the base are public. Which relations carry record
keys (`has_record_keys`) is decided from the plan and the catalog alone.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ...plan import nodes as n
from ..analyze import Analysis
from ..perturb import C0, C1, C2, C3, RK_BITS, _i64, is_count, mode
from ..perturb import group_key_is_person_key as group_key_is_person_key
from ..perturb import key_inputs as key_inputs
from ..perturb import person_key_column as person_key_column
from ..perturb import split_key as split_key
from ..ptable import last_row, rows
from ..rules import DisclosureRules, PTable
from .core import I64, SCol, b2i


def _srl(h: Any, s: int) -> Any:
    return jax.lax.shift_right_logical(h, jnp.full_like(h, s))


def record_keys(c: SCol, key: Any) -> Any:
    """Return the secret record keys (0..255) of a secret person-key column under the secret key K (shape (1,))."""
    from .join import key_values

    x, ok = key_values(c)
    a = key * 2 + 1
    h = x * a + key * _i64(C0)
    h = (h + _srl(h, 31)) * _i64(C1)
    h = (h + key * _i64(C2)) * a
    h = (h + _srl(h, 29)) * _i64(C3)
    return _srl(h + _srl(h, 32), 64 - RK_BITS) * ok


def combine_key(parts: list[Any]) -> Any:
    """Return K = p0 + p1 + p2 mod 2^64 from the engines' secret parts (ring addition wraps)."""
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return out


# --- noise and rounding on per-cell values ------------------------------------------------


def noise_secret(pt: PTable, count: Any, cell_key: Any) -> Any:
    """Return the table's noise for secret per-cell counts and cell keys (0..255), by public comparisons."""
    table = rows(pt)
    last = last_row(pt)
    ge_count = {i: b2i(count >= i) for i in range(1, last + 1)}
    thresholds = sorted({t for r in table for t in r.thresholds() if 0 < t < 256})
    ge_key = {t: b2i(cell_key >= t) for t in thresholds}
    out: Any = jnp.zeros_like(count)
    for r in table:
        if r.i == 0:
            continue  # NB: an empty cell stays empty
        member = ge_count[r.i] - ge_count[r.i + 1] if r.i < last else ge_count[r.i]
        v = r.values[0] + sum((ge_key[t] if 0 < t < 256 else int(t <= 0)) for t in r.thresholds())
        out = out + member * v
    return out


def round_secret(count: Any, base: int, max_count: int) -> Any:
    """Return non-negative secret counts (below max_count) rounded to the nearest multiple of base, halves up.

    Exact integer steps: the quotient's bits, highest first, by comparisons (no division).
    """
    if base <= 1:
        return count
    r = count + base // 2
    q = jnp.zeros_like(count)
    for e in reversed(range(max(1, (max_count // base + 1).bit_length()))):
        step = b2i(r - q * base >= (2**e) * base)
        q = q + step * 2**e
    return q * base


def perturb_outputs(outs: list[Any], counts: list[tuple[int, Any]], rules: DisclosureRules, how: str,
                    max_count: int) -> list[Any]:  # fmt: skip
    """Return the program's outputs with each released count perturbed or rounded (inside the MPC).

    counts: (output index of the statistic's code, its per-cell ring sum of record keys or None).
    The code at that index says whether the value (at index + 1) is released (1); an unreleased
    value is 0 already, and a count of 0 gets no noise and rounds to 0, so no further branch is needed.
    """
    outs = list(outs)
    for j, rk_sum in counts:
        value = outs[j + 1]
        shown = b2i(outs[j] == 1)
        if how == "perturb" and rk_sum is not None:
            ck = jnp.bitwise_and(rk_sum, jnp.asarray(255, dtype=I64))
            outs[j + 1] = value + shown * noise_secret(rules.ptable, value, ck)
        elif how in ("round", "perturb"):
            outs[j + 1] = shown * round_secret(value, rules.rounding_base, max_count) + (1 - shown) * value
    return outs


class CountRule:
    """Rule 6 inside the MPC, for `aggregate.aggregate`: perturb or round the released counts last."""

    def __init__(self, a: Analysis) -> None:
        self.rules = a.rules
        self.how = mode(a)

    def _counts(self, aggs: tuple[tuple[str, n.Agg], ...], kinds: dict[str, str]) -> list[tuple[int, str, n.Agg]]:
        """Return the counts among the statistics: (output index of the code, name, aggregate)."""
        return [(1 + 2 * j, name, agg) for j, (name, agg) in enumerate(aggs) if is_count(agg, kinds.get(name))]

    def partial(self, frame: Any, m: Any, aggs: tuple[tuple[str, n.Agg], ...], args: dict[str, SCol],
                weights: dict[str, Any]) -> Any:  # fmt: skip
        """Return the per-cell ring sums of record keys of the rows each count counts ((counts, cells)), or None.

        Sums over rows: they add up over buckets. None when nothing is perturbed by record keys.
        """
        if self.how != "perturb" or frame.rk is None:
            return None
        ws = []
        for _, name, agg in self._counts(aggs, {nm: c.kind for nm, c in args.items()}):
            if agg.func == "len":
                ws.append(frame.mask)
            elif agg.func == "count":
                ws.append(weights[name])
            else:
                ws.append(weights[name] * args[name].v)
        return m.matrix_sums([frame.rk * w for w in ws]) if ws else None

    def finish(self, outs: list[Any], aggs: tuple[tuple[str, n.Agg], ...], kinds: dict[str, str], rk_sums: Any,
               max_count: int) -> list[Any]:  # fmt: skip
        """Return outs ([cells, (code, value) per aggregate]) with the counts among them perturbed or rounded.

        rk_sums: `partial`'s sums (combined over buckets), or None; max_count: the most rows a count can hold.
        """
        if self.how == "exact":
            return outs
        found = self._counts(aggs, kinds)
        if not found:
            return outs
        if rk_sums is not None:
            counts = [(j, rk_sums[i]) for i, (j, _, _) in enumerate(found)]
        else:
            counts = [(j, None) for j, _, _ in found]
        return perturb_outputs(outs, counts, self.rules, self.how, max_count)
