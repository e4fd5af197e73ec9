"""Final aggregation over public key domains, with disclosure control inside the MPC.

Each key becomes a one-hot matrix over its public domain plus a 'missing' column;
their row-wise product is the cell membership M (n × cells). Sums of every
statistic are one matrix product ``S.T @ M`` over exact ring integers (fixed-point
values are summed by bitcast, so no truncation error accumulates). Only the
per-cell results are ever divided, square-rooted or compared. A cell with fewer
than k rows, and any statistic from fewer than k values, is zeroed and flagged
before the outputs leave the program.

Range: a summing statistic could wrap the ring (or leave fixed point's range) and come
out wrong, so beside each sum the program sums a coarse copy of the values (the ring
values shifted right, in units of 2^16, which cannot wrap) and compares that, still
secret, with the limits of `disclosure`: a statistic that may be out of range is
zeroed and flagged OUT_OF_RANGE, like a suppression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp

from ...exceptions import OperationNotDefinedError
from ...plan import nodes as n
from ...result import EXTREME, FEW_CONTRIBUTORS, OUT_OF_RANGE, QUANTILE_SIDES, UNION
from .. import disclosure
from .concat import hidden
from .core import (
    BIG,
    F64,
    FXP_BITS,
    I64,
    SCol,
    SFrame,
    b2i,
    from_ring_sum,
    ratio,
    ring_sum_operand,
    select,
    tree_reduce,
    wide_sqrt,
)
from .expr import ExprEval, align


def key_onehot(c: SCol, domain: tuple[Any, ...], *, with_missing: bool = True) -> Any:
    """Return the n × (|domain| + 1) membership of a key, the last column for missing.

    with_missing=False leaves the missing column out (see Membership).
    """
    if c.kind == "str":
        oh = align(c, domain)  # NB: the checked plan's domain order is authoritative
    elif c.oh is not None and c.kind == "int":
        oh = align(c, domain)
    elif c.kind == "bool":
        oh = jnp.stack([c.ok * (1 - c.v), c.ok * c.v], axis=1)
    elif c.kind == "int":
        consts = jnp.asarray(list(domain), dtype=I64)
        oh = b2i(c.v[:, None] == consts[None, :]) * c.ok[:, None]
    else:
        msg = f"MPC executor: cannot group by a {c.kind} column"
        raise OperationNotDefinedError(msg)
    if not with_missing:
        return oh
    return jnp.concatenate([oh, (1 - oh.sum(axis=1))[:, None]], axis=1)


class Membership:
    """Which cell each row belongs to (n × cells, cells in itertools.product order).

    With one key the missing-key cell is kept implicit: its sums are the totals minus
    the other cells' sums, exact in the ring, so no n × cells matrix is copied for it.
    The explicit matrix is built only for statistics that need it per row.
    """

    def __init__(self, frame: SFrame, keys: tuple[str, ...], domains: list[tuple[Any, ...]]) -> None:
        self._m: Any = None
        self._base: Any = None
        if not keys:
            self._m = jnp.ones((frame.n, 1), dtype=I64)
        elif len(keys) == 1:
            self._base = key_onehot(frame.cols[keys[0]], domains[0], with_missing=False)
        else:
            m = key_onehot(frame.cols[keys[0]], domains[0])
            for k, dom in zip(keys[1:], domains[1:], strict=True):
                oh = key_onehot(frame.cols[k], dom)
                m = (m[:, :, None] * oh[:, None, :]).reshape(frame.n, -1)
            self._m = m

    def matrix(self) -> Any:
        """Return the explicit n × cells matrix."""
        if self._m is None:
            self._m = jnp.concatenate([self._base, (1 - self._base.sum(axis=1))[:, None]], axis=1)
        return self._m

    def sums(self, cols: list[Any]) -> list[Any]:
        """Return per-cell exact ring sums of several n-vectors, in one matrix product."""
        if not cols:
            return []
        out = self.matrix_sums(cols)
        return [out[i] for i in range(len(cols))]

    def matrix_sums(self, cols: list[Any]) -> Any:
        """Return the per-cell exact ring sums of several n-vectors as one (len(cols), cells) array."""
        s = jnp.stack([ring_sum_operand(c) for c in cols], axis=1)
        if self._m is not None:
            out = s.T @ self._m
        else:
            known = s.T @ self._base
            missing = s.sum(axis=0) - known.sum(axis=1)
            out = jnp.concatenate([known, missing[:, None]], axis=1)
        return out


Leaves = dict[str, tuple[Any, str]]  # NB: a pass's per-cell partials: name -> (value, its staged.Leaf.op)
NONE = "none"  # NB: a partial that does not combine over buckets (exact quantiles): one bucket only


@dataclass
class Stat:
    """What the rule of one statistic sees, per cell: its counts and sums, and the passes' partials."""

    agg: n.Agg
    name: str
    is_float: bool
    nvalid: Any  # per cell
    total: Any  # per-cell ring sum of weight * value (only where the function needs it)
    p1: dict[str, Any]  # the first pass's combined partials
    derived: dict[str, Any]  # per-cell values computed between the passes (Aggregation.between)
    p2: dict[str, Any]  # the second pass's combined partials
    coarse: Any = None  # per cell: the coarse sum of the values (units of 2^16), for the range check
    in_range: Any = None  # per cell 0/1, set by a rule that checks more than the sum (var, quantiles)
    checked: bool = True  # False: known to be in range (compile.ranges), no check


def _quantile_of(s: Stat) -> Any:
    if f"{s.name}:qr" in s.p1 and s.checked:
        s.in_range = s.p1[f"{s.name}:qr"]
    return s.p1[f"{s.name}:q"]


COARSE_BITS = 16


def _coarse(x: Any) -> Any:
    """Return x's ring values in units of 2^16 (of the number, also for fixed point): sums of them cannot wrap."""
    shift = COARSE_BITS + (FXP_BITS if x.dtype == F64 else 0)
    return jnp.right_shift(ring_sum_operand(x), shift)


def _within(s: Stat, limit: int) -> Any:
    """Return 0/1 per cell: |sum of values| <= limit for sure (the coarse sum is off by < nvalid units)."""
    return b2i(jnp.abs(s.coarse) + s.nvalid <= limit >> COARSE_BITS)


def _mean_in_range(s: Stat) -> Any:
    """Return 0/1 per cell: the mean's numerator and quotient are within range."""
    quotient = b2i(jnp.abs(s.coarse) + s.nvalid <= s.nvalid * (disclosure.MEAN_LIMIT >> COARSE_BITS))
    return _within(s, disclosure.DIV_LIMIT) * quotient


def _in_range(s: Stat) -> Any:
    """Return 0/1 per cell: whether the statistic's exact value is within the MPC's range."""
    func = s.agg.func
    if s.coarse is None:  # NB: booleans: counts, always in range
        return s.in_range
    if func == "sum":
        return _within(s, disclosure.SUM_LIMIT["float" if s.is_float else "int"])
    if func in ("mean", "var", "std"):
        ok = _mean_in_range(s)
        return ok * s.in_range if s.in_range is not None else ok
    return s.in_range


# func → (whether it needs the per-cell sum of values, its per-cell value). ``len`` is the cell's rows.
# NB: per cell only: what a statistic needs per row is a partial of a pass (Aggregation.first, .second)
STATISTICS: dict[str, tuple[bool, Callable[[Stat], Any]]] = {
    "count": (False, lambda s: s.nvalid),
    "sum": (True, lambda s: from_ring_sum(s.total, True) if s.is_float else s.total),
    "mean": (True, lambda s: ratio(from_ring_sum(s.total, s.is_float), s.nvalid)),
    "var": (True, lambda s: _variance(s)),
    "std": (True, lambda s: wide_sqrt(_variance(s))),
    "min": (False, lambda s: s.p1[f"{s.name}:ext"]),
    "max": (False, lambda s: s.p1[f"{s.name}:ext"]),
    "median": (False, _quantile_of),
    "quantile": (False, _quantile_of),
}


def aggregate(frame: SFrame, keys: tuple[str, ...], domains: list[tuple[Any, ...]],
              aggs: tuple[tuple[str, n.Agg], ...], out_kinds: dict[str, str], k: int,
              in_range: frozenset[str] = frozenset(), count_rule: Any = None, margins: Any = None,
              rules: dict[str, disclosure.StatRule] | None = None) -> list[Any]:  # fmt: skip
    """Return [cell_ok, (ok, value) per aggregate], all zeroed where suppressed.

    in_range names the aggregates known to be within range from public facts (`compile.ranges`):
    they skip the oblivious range check. count_rule (a `cellkey.CountRule`), when given, perturbs
    or rounds the released counts last. rules: the rules 2-4 per aggregate (`disclosure.stat_rules`;
    none where not given). Each statistic's ok is its code (result.py), computed here, on secrets.

    One frame in one piece: the passes of `Aggregation` one after the other (the bucketed
    program, `compile.staged`, runs the same passes per bucket and combines their partials).
    """
    agg = Aggregation(keys, domains, aggs, out_kinds, k, in_range, count_rule, margins, rules)
    p1 = values(agg.first(frame))
    derived = agg.between(p1)
    p2 = values(agg.second(frame, p1, derived)) if agg.two_pass else {}
    return agg.finish(p1, derived, p2, frame.n)


def values(leaves: Leaves) -> dict[str, Any]:
    """Return a pass's partials without their combine ops."""
    return {name: v for name, (v, _) in leaves.items()}


def needs_second_pass(agg: n.Agg, sr: disclosure.StatRule) -> bool:
    """Return whether a statistic needs a second pass over the rows, around a per-cell value of the first.

    The variance (around each cell's mean) and rule 4's rounded extremes (the rows sharing them).
    """
    if agg.func in ("var", "std"):
        return True
    return agg.func in ("min", "max") and sr.extremes not in ("release", "withhold") and sr.base is not None


@dataclass
class Aggregation:
    """The final aggregate in passes: per-row partials that add up (or min, max, top-N) over rows, then cells.

    ``first(frame)`` and ``second(frame, ...)`` see rows and return per-cell partials
    (`Leaves`), which combine over any split of the rows into buckets; ``between`` and
    ``finish`` see only the combined per-cell values. Nothing else depends on the rows, so
    the program over one frame (`aggregate`) and the bucketed one (`compile.staged`) compute
    the same cells. Static facts a pass learns while tracing (the arguments' kinds) are kept.
    """

    keys: tuple[str, ...]
    domains: list[tuple[Any, ...]]
    aggs: tuple[tuple[str, n.Agg], ...]
    out_kinds: dict[str, str]
    k: int
    in_range: frozenset[str] = frozenset()
    count_rule: Any = None
    margins: Any = None
    rules: dict[str, disclosure.StatRule] | None = None
    kinds: dict[str, str] = field(default_factory=dict)  # the arguments' kinds (static; set by _args)
    index: dict[tuple[str, str], int] = field(default_factory=dict)  # rows of the first pass's "sums"
    union: list[int] = field(default_factory=list)  # rows of "sums": each union input's rows (persons) per cell

    def rule(self, name: str) -> disclosure.StatRule:
        return (self.rules or {}).get(name, disclosure.StatRule())

    @property
    def two_pass(self) -> bool:
        return any(needs_second_pass(agg, self.rule(name)) for name, agg in self.aggs)

    def _args(self, frame: SFrame) -> tuple[dict[str, SCol], dict[str, Any], Membership]:
        ev = ExprEval(frame)
        args: dict[str, SCol] = {}
        for name, agg in self.aggs:
            if agg.func == "len":
                continue
            if agg.func not in STATISTICS:
                msg = f"the MPC executor has no rule for aggregate {agg.func!r}"
                raise OperationNotDefinedError(msg)
            c = ev(agg.arg)  # type: ignore[arg-type]
            if c.kind == "str":
                msg = f"MPC executor: cannot aggregate a categorical column with {agg.func}()"
                raise OperationNotDefinedError(msg)
            sr = self.rule(name)
            if agg.func in ("min", "max") and (sr.top is not None or sr.bottom is not None):
                c = _clipped(c, sr)  # rule 4: top- and bottom-coding before the extreme
            args[name] = c
            self.kinds[name] = c.kind
        weights = {name: frame.mask * c.ok for name, c in args.items()}
        return args, weights, Membership(frame, self.keys, self.domains)

    def first(self, frame: SFrame) -> Leaves:
        """Return the first pass's per-cell partials: counts and sums in one matrix product, extremes, top-N."""
        args, weights, m = self._args(frame)
        first: list[Any] = [frame.mask]
        index: dict[tuple[str, str], int] = {}
        out: Leaves = {}
        for name, c in args.items():
            agg = dict(self.aggs)[name]
            index[(name, "n")] = len(first)
            first.append(weights[name])
            sr = self.rule(name)
            if sr.contributors:  # rule 2: the non-zero values
                index[(name, "z")] = len(first)
                first.append(weights[name] * b2i(c.v != 0))
            if sr.top_n:  # rule 3: the total of absolute contributions (ring units), and its coarse copy
                index[(name, "a")] = len(first)
                first += [weights[name] * _abs_ring(c.v), weights[name] * jnp.right_shift(_abs_ring(c.v), COARSE_BITS)]
                contrib = m.matrix() * (weights[name] * _abs_ring(c.v))[:, None]
                out[f"{name}:top"] = (jnp.stack(top_n(contrib, sr.top_n), axis=-1), f"top:{sr.top_n}")
            if STATISTICS[agg.func][0]:
                index[(name, "s")] = len(first)
                first.append(weights[name] * c.v)
                if c.kind != "bool" and name not in self.in_range:  # NB: a sum of booleans is a count, always in range
                    index[(name, "c")] = len(first)
                    first.append(_coarse(weights[name] * c.v))
            if agg.func in ("min", "max"):
                out[f"{name}:ext"] = (_extreme(agg.func, c, weights[name], m.matrix()), agg.func)
            if agg.func in ("median", "quantile"):
                q = 0.5 if agg.func == "median" else float(agg.q)  # type: ignore[arg-type]
                value, in_range = _quantile(c, weights[name], m.matrix(), q)
                out[f"{name}:q"] = (value, NONE)
                if in_range is not None:
                    out[f"{name}:qr"] = (in_range, NONE)
        self.index = index
        self.union = []
        for tag in hidden(frame):  # NB: the union rule (kernels/concat.py): each input's part of each cell
            self.union.append(len(first))
            first.append(frame.mask * frame.cols[tag].ok)
        out = {"sums": (m.matrix_sums(first), "add"), **out}
        if self.count_rule is not None:
            rk = self.count_rule.partial(frame, m, self.aggs, args, weights)
            if rk is not None:
                out["rk"] = (rk, "add")
        return out

    def between(self, p1: dict[str, Any]) -> dict[str, Any]:
        """Return the per-cell values the second pass needs, once from the combined first pass (never per bucket)."""
        sums = p1["sums"]
        out: dict[str, Any] = {}
        for name, agg in self.aggs:
            if not needs_second_pass(agg, self.rule(name)):
                continue
            if agg.func in ("var", "std"):
                is_float = self.kinds[name] == "float"
                nvalid, total = sums[self.index[(name, "n")]], sums[self.index[(name, "s")]]
                mean = ratio(from_ring_sum(total, is_float), nvalid)
                # NB: for integers the centre is the mean rounded to an integer, so the second pass is exact
                out[f"{name}:centre"] = mean if is_float else jnp.floor(mean + 0.5).astype(I64)
            else:
                rounded, exact = _round_down(p1[f"{name}:ext"], self.rule(name).base)  # type: ignore[arg-type]
                out[f"{name}:rounded"], out[f"{name}:inexact"] = rounded, exact
        return out

    def second(self, frame: SFrame, p1: dict[str, Any], derived: dict[str, Any]) -> Leaves:
        """Return the second pass's per-cell partials: sums around each cell's centre, rows sharing an extreme."""
        del p1
        args, weights, m = self._args(frame)
        out: Leaves = {}
        for name, agg in self.aggs:
            if not needs_second_pass(agg, self.rule(name)):
                continue
            c, w = args[name], weights[name]
            if agg.func in ("var", "std"):
                centre = derived[f"{name}:centre"]
                mat = m.matrix()
                row_centre = ((mat.astype(F64) if c.v.dtype == F64 else mat) @ centre[:, None])[:, 0]
                d = c.v - row_centre
                sq = d * d
                parts = [w * d, w * sq]
                if name not in self.in_range:
                    # NB: one value this far from the mean makes the sum of squares out of range by itself
                    far = b2i((d >= disclosure.DEV_LIMIT) | (d <= -disclosure.DEV_LIMIT))
                    parts += [w * far, _coarse(w * sq)]
                out[f"{name}:var"] = (m.matrix_sums(parts), "add")
            else:
                row_r = (m.matrix() @ derived[f"{name}:rounded"][:, None])[:, 0]
                rv = ring_sum_operand(c.v)
                base = self.rule(name).base
                share = rv >= row_r if agg.func == "max" else rv < row_r + base
                out[f"{name}:share"] = (m.matrix_sums([w * b2i(share)])[0], "add")
        return out

    def finish(self, p1: dict[str, Any], derived: dict[str, Any], p2: dict[str, Any], rows_bound: int) -> list[Any]:
        """Return [cell_ok, (ok, value) per aggregate] from the combined partials (per cell only).

        rows_bound: the most rows the whole frame can have (public; the sum of every bucket's padded rows).
        """
        k = self.k
        sums = p1["sums"]
        index = self.index
        rows = sums[0]
        cells = disclosure.cell_ok(rows, k, _ge)
        union = None
        for i in self.union:  # NB: the union rule: every input adds 0 or at least k rows (persons) to the cell
            ok_i = disclosure.complement_ok(sums[i], 0, k, _ge)
            union = ok_i if union is None else union * ok_i
        outs: list[Any] = [cells if union is None else cells * union]
        for name, agg in self.aggs:
            sr = self.rule(name)
            flags: list[tuple[int, Any]] = [] if union is None else [(UNION, union)]
            if agg.func == "len":
                value, nvalid, arg_kind = rows, rows, None
            else:
                arg_kind = self.kinds[name]
                nvalid = sums[index[(name, "n")]]
                total = sums[index[(name, "s")]] if (name, "s") in index else None
                coarse = sums[index[(name, "c")]] if (name, "c") in index else None
                stat = Stat(agg, name, arg_kind == "float", nvalid, total, p1, derived, p2, coarse,
                            checked=name not in self.in_range)  # fmt: skip
                value = STATISTICS[agg.func][1](stat)
                if coarse is not None or stat.in_range is not None:
                    flags.append((OUT_OF_RANGE, _in_range(stat)))
                value = _cell_rules(sr, stat, value, sums, index, name, k, flags)
            ok = disclosure.statistic_ok(agg, arg_kind, k, cells, nvalid, value, _ge)
            shown = ok
            for _, passes in flags:
                shown = shown * passes
            ok = disclosure.statistic_code(ok, flags)
            value = value.astype(F64) if self.out_kinds[name] == "float" and value.dtype != F64 else value
            outs += [ok, value * (shown.astype(F64) if value.dtype == F64 else shown)]
        if self.margins is not None:  # NB: rule 7 (kernels/margins.py): secondary suppression, on true counts
            outs = self.margins.apply_outs(outs, [nm for nm, _ in self.aggs],
                                           lambda nm, src: rows if src == "rows" else sums[index[(nm, src)]],
                                           jnp)  # fmt: skip
        if self.count_rule is not None:  # NB: rule 6 (kernels/cellkey.py) last: released counts perturbed or rounded
            outs = self.count_rule.finish(outs, self.aggs, self.kinds, p1.get("rk"), rows_bound)
        return outs


def _ge(x: Any, t: int) -> Any:
    return b2i(x >= t)


def _abs_ring(v: Any) -> Any:
    """Return |v| in ring units (ints as they are, fixed point by bitcast)."""
    return jnp.abs(ring_sum_operand(v))


def _clipped(c: SCol, sr: disclosure.StatRule) -> SCol:
    """Return the column top- and bottom-coded (public bounds) for a min or max."""
    lo, hi = disclosure.clip_bounds(sr, c.kind)
    v = c.v
    if lo is not None:
        v = jnp.maximum(v, jnp.asarray(lo, dtype=v.dtype))
    if hi is not None:
        v = jnp.minimum(v, jnp.asarray(hi, dtype=v.dtype))
    return replace(c, v=v)


def _cell_rules(sr: disclosure.StatRule, s: Stat, value: Any, sums: list[Any], index: dict[tuple[str, str], int],
                name: str, k: int, flags: list[tuple[int, Any]]) -> Any:  # fmt: skip
    """Append the flags of rules 2-4 (disclosure.StatRule) to flags; return the value to release (rounded extremes)."""
    if sr.contributors:
        flags.append((FEW_CONTRIBUTORS, _ge(sums[index[(name, "z")]], k)))
    if sr.both_sides:  # NB: a boolean's false rows: 0 or at least k (rule 2)
        flags.append((FEW_CONTRIBUTORS, disclosure.both_sides_ok(s.nvalid, sums[index[(name, "z")]], k, _ge)))
    if sr.top_n:
        total, coarse = sums[index[(name, "a")]], sums[index[(name, "a")] + 1]
        flags.append((OUT_OF_RANGE, b2i(coarse + s.nvalid <= sr.magnitude_limit >> COARSE_BITS)))
        top = s.p1[f"{name}:top"]
        flags += disclosure.magnitude_flags(sr, [top[..., i] for i in range(sr.top_n)], total, _ge)
    if s.agg.func in ("min", "max") and sr.extremes != "release":
        if sr.extremes == "withhold" or sr.base is None:
            flags.append((EXTREME, jnp.zeros_like(s.nvalid)))
        else:
            value, passes = _rounded_extreme(s, value, k)
            flags.append((EXTREME, passes))
    if sr.sides is not None:
        flags.append((QUANTILE_SIDES, _ge(s.nvalid, sr.sides)))
    return value


def top_n(x: Any, count: int) -> list[Any]:
    """Return the count largest values over axis 0 of non-negative x (largest first; 0 where fewer), by a tree.

    Each node of the tree holds a sorted list of the count largest values below it; two lists
    merge by comparisons only (c_i = max(a_i, b_i, max_j min(a_j, b_{i-1-j}))): no sort of the rows.
    """
    lists = [x, *(jnp.zeros_like(x) for _ in range(count - 1))]
    while lists[0].shape[0] > 1:
        if lists[0].shape[0] % 2:
            lists = [jnp.concatenate([a, jnp.zeros_like(a[:1])], axis=0) for a in lists]
        a, b = [t[0::2] for t in lists], [t[1::2] for t in lists]
        merged = []
        for i in range(count):
            best = jnp.maximum(a[i], b[i])
            for j in range(i):
                best = jnp.maximum(best, jnp.minimum(a[j], b[i - 1 - j]))
            merged.append(best)
        lists = merged
    return [t[0] for t in lists]


EXTREME_RING_LIMIT = 2**54  # NB: |ring value| of every valid input and masked fill is clipped below this


def _round_down(value: Any, base: int) -> tuple[Any, Any]:
    """Return per cell (the extreme floored to a multiple of base, in ring units; 0/1 the remainder is not 0).

    The remainder comes from binary long division by comparisons with the public base * 2^i.
    """
    r = jnp.clip(ring_sum_operand(value), -EXTREME_RING_LIMIT, EXTREME_RING_LIMIT)
    u = r + base * -(-EXTREME_RING_LIMIT // base)  # NB: a multiple of base, so u mod base = r mod base
    for i in reversed(range(((2 * EXTREME_RING_LIMIT + base) // base).bit_length() + 1)):
        t = base << i
        if t < 2**62:
            u = u - b2i(u >= t) * t
    return r - u, b2i(u != 0)


def _rounded_extreme(s: Stat, value: Any, k: int) -> tuple[Any, Any]:
    """Return a min/max floored to a multiple of base (ring units) per cell, and whether k values share it.

    The rounding is computed once between the passes (`_round_down`); the second pass counts,
    per row against its cell's rounded extreme, the values sharing it. A fixed-point value
    exactly on a multiple is withheld: the fixed point may have rounded it up.
    """
    is_float = value.dtype == F64
    rounded, inexact = s.derived[f"{s.name}:rounded"], s.derived[f"{s.name}:inexact"]
    passes = _ge(s.p2[f"{s.name}:share"], k) * (inexact if is_float else 1)
    out = jax.lax.bitcast_convert_type(rounded, F64) if is_float else rounded.astype(value.dtype)
    return out, passes


def _variance(s: Stat) -> Any:
    """Return the sample variance per cell, from the second pass's sums around each cell's centre.

    NB: for integers the centre is the mean rounded to an integer, so the second
    pass is exact integer arithmetic; only the final division is approximate.
    """
    parts = s.p2[f"{s.name}:var"]
    nvalid, is_float = s.nvalid, s.is_float
    sd, ssq = parts[0], parts[1]
    if s.checked:
        nfar, coarse_sq = parts[2], parts[3]
        sq_stat = replace(s, total=ssq, coarse=coarse_sq, in_range=None)
        quotient = jnp.abs(coarse_sq) + nvalid <= (nvalid - 1) * (disclosure.MEAN_LIMIT >> COARSE_BITS)
        s.in_range = b2i(nfar == 0) * _within(sq_stat, disclosure.DIV_LIMIT) * b2i(quotient)
    sd_f = from_ring_sum(sd, is_float)
    ssq_f = from_ring_sum(ssq, is_float)
    shift = ratio(sd_f, nvalid) * sd_f
    return ratio(ssq_f - shift, nvalid - 1)


def _extreme(func: str, c: SCol, w: Any, m: Any) -> Any:
    """Return the per-cell minimum or maximum of valid values."""
    big = BIG.get(c.kind, BIG["int"])
    fill = -big if func == "max" else big
    mw = m * w[:, None]
    fill_arr = jnp.full((1, 1), fill, dtype=c.v.dtype)
    vals = select(mw, jnp.broadcast_to(c.v[:, None], mw.shape), jnp.broadcast_to(fill_arr, mw.shape))
    return tree_reduce(vals, func)


def _quantile(c: SCol, w: Any, m: Any, q: float) -> tuple[Any, Any]:
    """Return the per-cell q-quantile with linear interpolation (DuckDB's quantile_cont), and whether in range.

    Rows are sorted on (value, row index), which is distinct per row, then each
    cell's running count gives every row its rank within the cell. An int quantile is
    in range when both values it interpolates between fit fixed point (QUANTILE_INT_LIMIT).
    """
    nrow, cells = m.shape
    idx = jnp.arange(nrow, dtype=I64)
    mw = m * w[:, None]
    ops = jax.lax.sort([c.v, idx, *(mw[:, j] for j in range(cells))], num_keys=2)
    xs = ops[0]
    ms = jnp.stack(ops[2:], axis=1)
    ranks = jax.lax.associative_scan(jnp.add, ms, axis=0)
    count = ranks[-1]
    pos = (count - 1).astype(F64) * q
    lo = jnp.floor(pos).astype(I64)
    frac = pos - lo.astype(F64)
    hi = jnp.minimum(lo + 1, jnp.maximum(count - 1, 0))
    sel_lo = ms * b2i(ranks - 1 == lo[None, :])
    sel_hi = ms * b2i(ranks - 1 == hi[None, :])
    is_float = xs.dtype == F64
    r_lo = (ring_sum_operand(xs)[None, :] @ sel_lo)[0]
    r_hi = (ring_sum_operand(xs)[None, :] @ sel_hi)[0]
    v_lo, v_hi = from_ring_sum(r_lo, is_float), from_ring_sum(r_hi, is_float)
    lim = disclosure.QUANTILE_INT_LIMIT
    in_range = None if is_float else b2i((jnp.abs(r_lo) < lim) & (jnp.abs(r_hi) < lim))
    return v_lo + frac * (v_hi - v_lo), in_range
