"""Secret columns and frames, and the small arithmetic helpers every kernel shares.

Security model: inside an SPU program every array of an `SCol` (values, validity,
one-hots, date parts) and a frame's row mask are secret; a frame's row count, a
column's kind and its code list (``domain``) are public, fixed by the plan and the
schemas. The helpers here compute on secrets without branching on them (``select``
instead of ``if``), so what the program does depends on public metadata only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp

I64 = jnp.int64
F64 = jnp.float64
ROW_BITS = 22  # NB: row indices are packed into sort keys; frames hold < 2^22 rows.
FXP_BITS = 18  # NB: the fixed point's fractional bits, as werkplaats.mpc.runtime.FXP_FRACTION_BITS configures SPU
# NB: fills for masked min/max lie beyond every validated input (ints ±2^53, floats ±2^30).
BIG = {"int": 2**60, "float": 2.0**31, "date": 2**40}


@dataclass
class SCol:
    """A secret column: values, validity and, for categoricals, a one-hot matrix.

    Invariants: ``ok`` is 0/1; a categorical's ``oh`` row is all zeros when missing;
    date columns carry the parts the plan uses in ``parts``.
    """

    kind: str
    ok: Any
    v: Any = None
    oh: Any = None
    domain: tuple[Any, ...] | None = None
    parts: dict[str, SCol] = field(default_factory=dict)

    def fields(self) -> list[tuple[str, Any]]:
        """Return the arrays of this column, flattened, with stable names."""
        out: list[tuple[str, Any]] = [("ok", self.ok)]
        if self.v is not None:
            out.append(("v", self.v))
        if self.oh is not None:
            out.extend((f"oh{j}", self.oh[:, j]) for j in range(self.oh.shape[1]))
        for p in sorted(self.parts):
            out.extend((f"{p}.{k}", a) for k, a in self.parts[p].fields())
        return out

    def rebuild(self, arrays: dict[str, Any]) -> SCol:
        """Return a column of the same structure from flattened arrays (see fields)."""
        oh = None
        if self.oh is not None:
            oh = jnp.stack([arrays[f"oh{j}"] for j in range(self.oh.shape[1])], axis=1)
        parts = {}
        for p, sub in self.parts.items():
            prefix = p + "."
            parts[p] = sub.rebuild({k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)})
        return replace(self, ok=arrays["ok"], v=arrays.get("v") if self.v is not None else None,
                       oh=oh, parts=parts)  # fmt: skip

    def map(self, fn: Callable[[Any], Any]) -> SCol:
        """Apply fn to every array of the column."""
        return self.rebuild({k: fn(a) for k, a in self.fields()})


@dataclass
class SFrame:
    """A secret frame: n rows (public), a secret 0/1 row mask, named columns.

    rk: each row's secret record key (rule 6, `kernels/cellkey.py`), or None where the rows have no person key.
    """

    n: int
    mask: Any
    cols: dict[str, SCol]
    rk: Any = None


def b2i(x: Any) -> Any:
    """Return a boolean array as int64 0/1."""
    return x.astype(I64)


def select(c: Any, a: Any, b: Any) -> Any:
    """Return c ? a : b for 0/1 int c, by arithmetic (one multiplication)."""
    if a.ndim > c.ndim:
        c = c.reshape(c.shape + (1,) * (a.ndim - c.ndim))
    return b + c * (a - b)


def to_float(x: Any) -> Any:
    """Return numbers as fixed point."""
    return x if x.dtype == F64 else x.astype(F64)


def ring_sum_operand(x: Any) -> Any:
    """Return x as ring integers for exact sums: ints as they are, fixed point by bitcast."""
    return jax.lax.bitcast_convert_type(x, I64) if x.dtype == F64 else x


def from_ring_sum(s: Any, was_float: bool) -> Any:
    """Return a ring sum (see ring_sum_operand) as fixed point."""
    return jax.lax.bitcast_convert_type(s, F64) if was_float else s.astype(F64)


def ratio(num: Any, den: Any, bits: int = 23) -> Any:
    """Return num / den in fixed point, for an integer count den (0 is treated as 1).

    SPU's own division loses accuracy once the divisor exceeds 2^18, so: find the
    divisor's power-of-two bucket e obliviously (comparisons with public 2^e), shift
    the ring values of both operands right by e + 1 (so the divisor lies in
    [0.5, 1)), and take a Newton reciprocal there.
    NB: accurate to ~4e-6 absolute + relative for |num| < 2^45, den < 2^bits and
    |num / den| < 2^26. Costs O(bits) operations per value: use it on cells, not rows.
    """
    den = jnp.where(den == 0, jnp.ones_like(den), den)
    num_r = jax.lax.bitcast_convert_type(to_float(num), I64)
    den_r = jax.lax.bitcast_convert_type(to_float(den), I64)
    ge = [b2i(den >= 2**e) for e in range(1, bits)]
    bucket = [1 - ge[0], *(ge[e - 1] - ge[e] for e in range(1, bits - 1)), ge[-1]]
    x_r = sum(b * jnp.right_shift(num_r, e + 1) for e, b in enumerate(bucket))
    d_r = sum(b * jnp.right_shift(den_r, e + 1) for e, b in enumerate(bucket))
    x = jax.lax.bitcast_convert_type(x_r, F64)
    d = jax.lax.bitcast_convert_type(d_r, F64)
    r = 48.0 / 17.0 - 32.0 / 17.0 * d
    for _ in range(4):
        r = r * (2.0 - d * r)
    return x * r


def wide_sqrt(v: Any) -> Any:
    """Return sqrt(v) for 0 ≤ v < 2^42; SPU's sqrt alone is accurate only below ~1e5."""
    v = jnp.maximum(v, 0.0)
    small = jnp.sqrt(v)
    mid = jnp.sqrt(v * 2.0**-16) * 2.0**8
    large = jnp.sqrt(v * 2.0**-32) * 2.0**16
    return select(b2i(v > 1e9), large, select(b2i(v > 1e4), mid, small))


def tree_reduce(x: Any, func: str) -> Any:
    """Return the min or max over axis 0 by a pairwise tree of comparisons.

    NB: SPU's own reductions start from the type's extreme value, and comparing a
    value with 2^63 - 1 overflows the ring (a - b wraps); pairing real values avoids it.
    """
    op = jnp.maximum if func == "max" else jnp.minimum
    while x.shape[0] > 1:
        if x.shape[0] % 2:
            x = jnp.concatenate([x, x[-1:]], axis=0)
        x = op(x[0::2], x[1::2])
    return x[0]


def seg_scan(start: Any, x: Any, combine: str) -> Any:
    """Segmented inclusive scan over rows; a segment begins where start is 1.

    combine: "copy" (every row gets its segment's first value), "sum", "max", "min".
    """
    s2d = start.reshape(-1, 1) if x.ndim == 2 else start

    def op(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
        sa, xa = a
        sb, xb = b
        s = sa + sb - sa * sb
        if combine == "copy":
            return s, select(sb, xb, xa)
        if combine == "sum":
            return s, xb + (1 - sb) * xa
        if combine == "max":
            return s, select(sb, xb, jnp.maximum(xa, xb))
        return s, select(sb, xb, jnp.minimum(xa, xb))

    _, out = jax.lax.associative_scan(op, (s2d, x))
    return out
