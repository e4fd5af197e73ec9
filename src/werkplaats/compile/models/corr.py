"""The correlation summary (plan node Corr): Pearson correlations of numeric columns, computed in the MPC.

What is released: the p × p matrix (its p(p-1)/2 off-diagonal values) and n, the number of rows
where every column is present, rounded to the rules' ``rounding_base`` unless counts are exact
(no record keys reach a summary, so rule 6 rounds: an exact n would let two requests difference
counts). Nothing else: no mean, no variance, no row.

The computation, the same on both executors (NumPy for plain, SPU fixed point for MPC):

1. w = the row mask times every column's validity; n = Σ w.
2. The means m_j = Σ w x_j / n. In the MPC the division is done on a normalised divisor: n's
   power-of-two bucket e is found by comparisons with public 2^e, n · 2^-(e+1) lies in [0.5, 1),
   where SPU's reciprocal is accurate to ~1e-11 (it is not for large divisors).
3. Centred values d_j = w (x_j - m_j), then each column scaled by a secret power of two s_j, chosen
   (by comparisons of Σ d_j², measured at two scales so that neither can wrap) so that
   Σ (s_j d_j)² lies in [2^40, 2^42): no product can leave the fixed-point range, and small
   columns keep their precision. A correlation does not change when a column is scaled.
4. C_ij = Σ d'_i d'_j - (Σ d'_i)(Σ d'_j) / n (the corrected two-pass algorithm: the second term
   removes what an inexact mean leaves), products summed exactly in the ring.
5. r_ij = C_ij / sqrt(C_ii C_jj), with 1 / sqrt(v), v = C_jj 2^-40 in [1, 4), by SPU's reciprocal
   and sqrt and two Newton steps (SPU's own rsqrt is off by ~7e-5; its reciprocal and sqrt are
   accurate only in a limited range, hence the scaling).

The MPC computes this in three passes over the rows (`passes`): range (n, Σ x, min, max), spread
(the rows at each column's minimum and maximum and their 2 × 2 tables, Σ d² and its coarse copy),
products (Σ d', Σ d'_i d'_j); each pass's partials add (min and max combine by min and max), so a
bucketed job combines them across buckets and runs the same steps (`stages`).

The checks, inside the MPC, withhold the whole matrix (first failure wins):

- FEW_VALUES: n < k;
- OUT_OF_RANGE: a value used has |x| > 2^31 (the fixed-point arithmetic above needs |x - m| < 2^32);
- SMALL_CATEGORY: a column takes exactly two values over the rows used and one of them is held by
  fewer than k rows (a bool column, or a 0/1 column made from one), or two such columns have a
  cell of their 2 × 2 table with fewer than k rows (their correlation, n and the margins give the
  cells back);
- SINGULAR: a column is constant over the rows used (its minimum equals its maximum), or nearly so
  (Σ (x - m)² < n · 2^-24, a variance below 6e-8, where fixed point cannot resolve it): its
  correlations are not defined, and a NaN is never released.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ...exceptions import PlanError
from ...plan import nodes as n
from ...plan.types import DType, Schema
from ...result import FEW_VALUES, OUT_OF_RANGE, REVEALED, SINGULAR, SMALL_CATEGORY, Revealed, reason_text
from ..analyze import Analysis

KINDS = ("int", "float", "bool")
MAX_COLUMNS = 30  # NB: p(p+1)/2 products per row inside the MPC
VALUE_LIMIT = 2.0**31  # |x| of every value used (OUT_OF_RANGE beyond)
NEAR_CONSTANT = 2.0**-24  # a column whose variance (Σ (x - m)² / n) is below this counts as constant
TARGET = 40  # Σ d'² of each scaled column lies in [2^TARGET, 2^(TARGET + 2))
COARSE = 24  # the coarse copy d · 2^-24, whose squares cannot wrap for |d| < 2^32
BIG_AT = 44  # Σ d² ≥ 2^44 (seen on the coarse copy): the direct Σ d² may have wrapped; use the coarse one
SCALE_LO, SCALE_HI = -32, 23  # the exponents e of the scale 2^-e


def _node(a: Analysis) -> n.Corr:
    root = a.plan.root
    assert isinstance(root, n.Corr)
    return root


def _pairs(p: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(p) for j in range(i + 1, p)]


def schema(a: Analysis, node: Any, base: Schema) -> Schema:
    """Check a Corr node against its input's schema; the output is the matrix (one float column per column)."""
    cols = node.columns
    if len(cols) < 2:
        msg = "corr(): needs two or more columns"
        raise PlanError(msg)
    if len(set(cols)) != len(cols):
        msg = "corr(): a column is named twice"
        raise PlanError(msg)
    if len(cols) > MAX_COLUMNS:
        msg = f"corr(): at most {MAX_COLUMNS} columns, got {len(cols)}"
        raise PlanError(msg)
    for c in cols:
        if c not in base:
            msg = f"corr(): no column {c!r} (columns: {', '.join(sorted(base))})"
            raise PlanError(msg)
        if base[c].kind not in KINDS:
            msg = f"corr(): column {c!r} is {base[c].kind}; correlations take int, float or bool columns"
            raise PlanError(msg)
    return {"column": DType("str", tuple(cols)), **{c: DType("float") for c in cols}}


def output_kinds(a: Analysis) -> list[tuple[str, str]]:
    """The program's outputs: the released flag, n, and r per pair of columns (i < j)."""
    return [("released", "int"), ("n", "int"), ("r", "float")]


def _round_base(a: Analysis) -> int:
    return 1 if a.rules.counts == "exact" else int(a.rules.rounding_base)


# --- plain (NumPy, float64) ---------------------------------------------------------------


def _floats(s: pd.Series) -> np.ndarray:
    return np.array([np.nan if v is None or v is pd.NA or v != v else float(v) for v in s.tolist()], dtype=float)


def plain(a: Analysis, rows: pd.DataFrame) -> tuple[list[tuple[int, Any]], list[np.ndarray]]:
    """The correlations on the plain executor, with the same checks as the MPC (see the module docstring)."""
    cols = _node(a).columns
    k = a.plan.min_group_size
    x = np.column_stack([_floats(rows[c]) for c in cols]) if len(rows) else np.zeros((0, len(cols)))
    x = x[~np.isnan(x).any(axis=1)]
    cnt = len(x)
    in_range = bool(cnt == 0 or np.abs(x).max() <= VALUE_LIMIT)
    small = False
    singular = False
    if cnt:
        lo, hi = x.min(axis=0), x.max(axis=0)
        at_lo, at_hi = (x == lo).sum(axis=0), (x == hi).sum(axis=0)
        two = (at_lo + at_hi == cnt) & (lo != hi)
        small = bool((two & ((at_lo < k) | (at_hi < k))).any())
        h, low = (x == hi).astype(np.int64), (x == lo).astype(np.int64)
        for i, j in _pairs(len(cols)):  # NB: two binary columns: their 2 × 2 table's cells
            cells = [h[:, i] @ h[:, j], h[:, i] @ low[:, j], low[:, i] @ h[:, j], low[:, i] @ low[:, j]]
            small = small or bool(two[i] and two[j] and min(cells) < k)
        d = x - x.mean(axis=0)
        ss = (d * d).sum(axis=0)
        singular = bool(((lo == hi) | (ss < cnt * NEAR_CONSTANT)).any())
    flags: list[tuple[int, Any]] = [(FEW_VALUES, cnt >= k), (OUT_OF_RANGE, in_range),
                                    (SMALL_CATEGORY, not small), (SINGULAR, not singular)]  # fmt: skip
    r = np.zeros(len(_pairs(len(cols))))
    if cnt and in_range and not singular:
        d = x - x.mean(axis=0)
        c = d.T @ d
        s = 1 / np.sqrt(np.diag(c))
        r = np.array([c[i, j] * s[i] * s[j] for i, j in _pairs(len(cols))])
    base = _round_base(a)
    shown = cnt if base <= 1 else (cnt + base // 2) // base * base
    return flags, [np.array([1]), np.array([shown], dtype=np.int64), r]


# --- MPC (JAX traced by SPU, FM128 with 40 fraction bits) ------------------------------------


def _pow2_bucket_scale(thresholds: list[tuple[Any, float]], below: float) -> Any:
    """Return the scale of the highest passing threshold: thresholds = [(passes, scale)] from low to high.

    ``passes`` are monotone (a higher one passes only if every lower one does); below: the scale when none passes.
    """
    out = (1 - thresholds[0][0]) * below
    for idx, (ge, scale) in enumerate(thresholds):
        nxt = thresholds[idx + 1][0] if idx + 1 < len(thresholds) else 0
        out = out + (ge - nxt) * scale
    return out


def _at_least(t: int, big_ss: Any, ss: Any, big: Any) -> Any:
    """Return whether Σ d² ≥ 2^t (0/1), from the coarse sum above 2^BIG_AT, else from the direct one."""
    import jax.numpy as jnp

    from ..kernels.core import b2i

    if t >= BIG_AT + 2:
        return b2i(big_ss >= 2.0 ** (t - 2 * COARSE))
    return jnp.maximum(big, b2i(ss >= 2.0**t))


class CorrState(NamedTuple):
    """What one pass hands the next (every field secret)."""

    cnt: Any  # int: rows where every column is present
    inv_n: Any  # 1 / n (normalised reciprocal)
    lo: Any  # (p,): each column's minimum and maximum over the rows used
    hi: Any
    m: Any  # (p,): the means
    in_range: Any  # int (p,)
    small: Any  # int (p + pairs,): a two-valued column, or a pair of them, with a small category
    singular: Any  # int (p,)
    scale: Any  # (p,): the power-of-two scale of each centred column


class Rows(NamedTuple):
    x: Any  # n × p, the columns as fixed point
    w: Any  # int (n,): 1 where the row is used (the mask times every column's validity)


def rows_of(a: Analysis, f: Any) -> Rows:
    """Return a frame's correlation rows: the columns and the used rows."""
    import jax.numpy as jnp

    from ..kernels.core import F64, I64

    cols = _node(a).columns
    w = f.mask.astype(I64)
    for c in cols:
        w = w * f.cols[c].ok.astype(I64)
    return Rows(jnp.stack([f.cols[c].v.astype(F64) for c in cols], axis=1), w)


def passes(a: Analysis) -> list[Any]:
    """Return the correlation's three passes: range (n, sums, min, max), spread (categories, Σ d²), products."""
    import jax.numpy as jnp

    from ..kernels.cellkey import round_secret
    from ..kernels.core import F64, I64, b2i, tree_reduce
    from ..staged import Leaf
    from . import MAX_ROW_BITS, Pass

    cols = _node(a).columns
    p = len(cols)
    pairs = _pairs(p)
    k = a.plan.min_group_size

    def used(rows: Rows) -> Any:
        return (rows.w == 1)[:, None]  # NB: jnp.where selects exactly; a 0/1 float product adds fixed point's noise

    def ranges(rows: Rows, _: Any) -> list[Any]:
        on = used(rows)
        lo = tree_reduce(jnp.where(on, rows.x, 2.0**33), "min")
        hi = tree_reduce(jnp.where(on, rows.x, -(2.0**33)), "max")
        return [rows.w.sum(), jnp.where(on, rows.x, 0.0).sum(axis=0), lo, hi]  # NB: ring sums; a matmul's would wrap

    def after_ranges(acc: list[Any], _: Any) -> CorrState:
        cnt, sx, lo, hi = acc
        nf = cnt.astype(F64)
        # 1/n: n's power-of-two bucket, so that the reciprocal works on [0.5, 1)
        ge = [b2i(cnt >= 2**e) for e in range(MAX_ROW_BITS)]
        half = _pow2_bucket_scale([(g, 2.0 ** -(e + 1)) for e, g in enumerate(ge)], 1.0)
        inv_n = half * (1.0 / (nf * half + (1 - ge[0]).astype(F64)))  # NB: n = 0 → 1/1 (withheld anyway)
        zi = jnp.zeros((p,), dtype=I64) + b2i(cnt < 0)  # NB: secret zeros: XLA folds an integer x * 0 to a public 0
        return CorrState(cnt=cnt, inv_n=inv_n, lo=lo, hi=hi, m=sx * inv_n,
                         in_range=b2i(hi <= VALUE_LIMIT) * b2i(lo >= -VALUE_LIMIT),
                         small=jnp.zeros((p + len(pairs),), dtype=I64) + b2i(cnt < 0), singular=zi,
                         scale=jnp.zeros((p,), dtype=F64) + nf * 0.0)  # fmt: skip

    def centred(rows: Rows, st: CorrState) -> Any:
        return jnp.where(used(rows), rows.x - st.m[None, :], 0.0)

    def spread(rows: Rows, st: CorrState) -> list[Any]:
        low = rows.w[:, None] * b2i(rows.x == st.lo[None, :])  # n × p: the row holds its column's minimum
        high = rows.w[:, None] * b2i(rows.x == st.hi[None, :])
        ends = jnp.stack([low.sum(axis=0), high.sum(axis=0)])
        cross = jnp.stack([high.T @ high, high.T @ low, low.T @ low])  # NB: exact integer products in the ring
        d = centred(rows, st)
        coarse = d * 2.0**-COARSE
        return [ends, cross, (coarse * coarse).sum(axis=0), (d * d).sum(axis=0)]  # NB: Σ d² · 2^-48 cannot wrap

    def after_spread(acc: list[Any], st: CorrState) -> CorrState:
        ends, cross, big_ss, ss = acc
        at_lo, at_hi = ends[0], ends[1]
        hh, hl, ll = cross[0], cross[1], cross[2]
        cnt, nf = st.cnt, st.cnt.astype(F64)
        same = b2i(st.lo == st.hi)
        two = b2i(at_lo + at_hi == cnt) * (1 - same)
        small = two * (1 - b2i(at_lo >= k) * b2i(at_hi >= k))
        # two binary columns: each cell of their 2 × 2 table needs k rows
        pair_small = []
        for i, j in pairs:
            cells_ok = b2i(hh[i, j] >= k) * b2i(hl[i, j] >= k) * b2i(hl[j, i] >= k) * b2i(ll[i, j] >= k)
            pair_small.append(two[i] * two[j] * (1 - cells_ok))
        big = b2i(big_ss >= 2.0 ** (BIG_AT - 2 * COARSE))
        near = (1 - big) * b2i(ss < nf * NEAR_CONSTANT)
        # scale each column: Σ (d 2^-e)² in [2^TARGET, 2^(TARGET+2))
        steps = []
        for e in range(SCALE_LO, SCALE_HI + 1):
            t = TARGET + 2 * e  # passes: Σ d² ≥ 2^t, on the coarse sum where the direct one may have wrapped
            steps.append((_at_least(t, big_ss, ss, big), 2.0**-e))
        return st._replace(small=jnp.concatenate([small, jnp.stack(pair_small)]), singular=jnp.maximum(same, near),
                           scale=_pow2_bucket_scale(steps, 2.0**-SCALE_LO))  # fmt: skip

    def products(rows: Rows, st: CorrState) -> list[Any]:
        ds = centred(rows, st) * st.scale[None, :]
        prods = [(ds[:, i] * ds[:, i]).sum() for i in range(p)] + [(ds[:, i] * ds[:, j]).sum() for i, j in pairs]
        return [ds.sum(axis=0), jnp.stack(prods)]

    def after_products(acc: list[Any], st: CorrState) -> tuple[list[tuple[int, Any]], list[Any]]:
        tot, prods = acc
        corr_tot = tot * st.inv_n
        singular = st.singular
        diag = jnp.stack([prods[i] - tot[i] * corr_tot[i] for i in range(p)])
        v = diag * 2.0**-TARGET  # in [1, 4) when not singular
        v = v + singular.astype(F64)  # NB: a singular column's v is ≥ 1 too: no 1 / sqrt(0)
        y = jnp.sqrt(1.0 / v)
        for _ in range(2):
            y = y * (1.5 - 0.5 * v * y * y)
        rs = []
        for idx, (i, j) in enumerate(pairs):
            cij = prods[p + idx] - tot[i] * corr_tot[j]
            rs.append(cij * 2.0**-TARGET * y[i] * y[j])
        flags: list[tuple[int, Any]] = [(FEW_VALUES, b2i(st.cnt >= k)), (OUT_OF_RANGE, st.in_range.prod()),
                                        (SMALL_CATEGORY, 1 - st.small.max()),
                                        (SINGULAR, 1 - singular.max())]  # fmt: skip
        shown = round_secret(st.cnt, _round_base(a), 2**MAX_ROW_BITS)
        one = jnp.ones((1,), dtype=I64)
        return flags, [one, shown.reshape(1), jnp.stack(rs)]

    f_ = "float64"
    return [
        Pass(
            "range",
            ranges,
            [Leaf((), "int64", "add"), Leaf((p,), f_, "add"), Leaf((p,), f_, "min"), Leaf((p,), f_, "max")],
            after_ranges,
            state=CorrState,
        ),
        Pass(
            "spread",
            spread,
            [
                Leaf((2, p), "int64", "add"),
                Leaf((3, p, p), "int64", "add"),
                Leaf((p,), f_, "add"),
                Leaf((p,), f_, "add"),
            ],
            after_spread,
            state=CorrState,
        ),
        Pass("products", products, [Leaf((p,), f_, "add"), Leaf((p + len(pairs),), f_, "add")], after_products),
    ]


def mpc(a: Analysis, f: Any) -> tuple[list[tuple[int, Any]], list[Any]]:
    """The correlations inside the MPC program, from the input's secret frame (see the module docstring)."""
    from . import run_passes

    flags, outs = run_passes(rows_of(a, f), passes(a))
    return flags, outs


def stages(a: Analysis, reader: Any) -> list[Any]:
    """The correlations as stages over buckets: the same three passes (models/__init__.py)."""
    from . import stage_list

    return stage_list(reader, lambda f: rows_of(a, f), passes(a))


# --- both executors --------------------------------------------------------------------------


def revealed(a: Analysis, values: list[np.ndarray], withheld: int) -> Revealed:
    """The outputs after reconstruction: n and the pairs' r in the summary, nothing when withheld."""
    p = len(_node(a).columns)
    ok = withheld == REVEALED
    r = np.clip(np.asarray(values[2], dtype=float).reshape(-1), -1.0, 1.0) if ok else np.zeros(p * (p - 1) // 2)
    cnt = int(np.asarray(values[1]).reshape(-1)[0]) if ok else 0
    return Revealed(np.zeros(0, dtype=bool), {}, int(withheld), {"n": cnt, "r": r})


WITHHELD_TEXT = {
    SMALL_CATEGORY: "a column takes two values over the rows used and one of them is held by fewer than {k} rows, "
                    "or two such columns have a combination of values (a cell of their 2 × 2 table) with fewer "
                    "than {k} rows",
    SINGULAR: "a column is constant (or nearly: variance below 6e-8) over the rows used: its correlations are "
              "not defined",
    OUT_OF_RANGE: "a value used lies beyond ±2^31, outside the range the correlation is computed in exactly",
    FEW_VALUES: "fewer than {k} rows have every column present",
}  # fmt: skip


def frame(a: Analysis, rev: Revealed) -> pd.DataFrame:
    """The matrix: one row per column (index ``column``), one float column per column; attrs n, withheld, reason.

    A withheld matrix has every value missing; ``attrs["reason"]`` says why.
    """
    cols = list(_node(a).columns)
    k = a.plan.min_group_size
    p = len(cols)
    ok = int(rev.withheld) == REVEALED
    mat = np.full((p, p), np.nan)
    if ok:
        np.fill_diagonal(mat, 1.0)
        for (i, j), v in zip(_pairs(p), rev.summary["r"], strict=True):
            mat[i, j] = mat[j, i] = float(v)
    df = pd.DataFrame({c: pd.array(mat[:, j], dtype="Float64") for j, c in enumerate(cols)},
                      index=pd.Index(cols, name="column"))  # fmt: skip
    if not ok:
        df[:] = pd.NA
    code = int(rev.withheld)
    df.attrs.update(
        n=int(rev.summary["n"]) if ok else None,
        withheld=not ok,
        reason=None if ok else WITHHELD_TEXT.get(code, reason_text(code, k)).format(k=k),
        min_group_size=k,
    )
    return df
