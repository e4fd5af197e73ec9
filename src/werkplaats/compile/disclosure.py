"""The disclosure rule, defined once: which cells and statistics of a final aggregate may be revealed.

Both executors apply it in their own medium: the plain executor on NumPy arrays
after DuckDB, the MPC executor on secret JAX arrays inside the computation, before
anything leaves it. Each passes ``ge(x, t)``, its own "x >= t" as a 0/1 (or
boolean) array; the rule only multiplies such arrays, which is an AND in both.

- a cell with fewer than k rows is withheld, with all its statistics;
- a statistic computed from fewer than k values is withheld on its own (variance
  and standard deviation need at least 2 values to be defined at all);
- the sum of a boolean counts the rows where it holds, so it is withheld below k,
  as a cell is;
- a mean (or variance, standard deviation) of a boolean reveals its true and its false rows
  both (39 of 40: 0.975), so with rule 2 on its false rows must be 0 or at least k as its
  true rows must be at least k (``StatRule.both_sides``); so must a sum of a boolean's
  (its cell's count minus it is the false rows);
- a statistic whose exact value may lie outside the range the MPC represents exactly
  (the limits below, docs/mpc.md) is withheld too, flagged OUT_OF_RANGE: never a wrong
  number. The MPC checks it obliviously on the secret result; the plain executor on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..plan import nodes as n
from ..plan.types import infer
from ..result import DOMINANCE, FEW_VALUES, OUT_OF_RANGE, P_PERCENT

Ge = Callable[[Any, int], Any]

# How many values a statistic needs to be defined at all (the rule asks for max(k, this)).
MIN_VALUES = {"var": 2, "std": 2}


# The ranges within which each statistic is exact (or within the documented accuracy).
SUM_LIMIT = {"int": 2**62, "float": 2**44}  # |sum|: the ring wraps at 2^63, fixed point at 2^45
DIV_LIMIT = 2**44  # |numerator| of a mean or variance (the division needs < 2^45)
MEAN_LIMIT = 2**26  # |mean| and variance: the division's quotient
DEV_LIMIT = 2**22  # |x - mean| of one value of a variance (its square stays below 2^44)
QUANTILE_INT_LIMIT = 2**43  # |value| of an int quantile's neighbours (interpolated in fixed point)
# Statistics that sum values (and so can leave the range).
SUMMING = ("sum", "mean", "var", "std")


def range_code(ok: Any, in_range: Any) -> Any:
    """Return 1 where a statistic is revealed, 0 where withheld by k, OUT_OF_RANGE where out of range."""
    return ok * (OUT_OF_RANGE - in_range)


def first_failure(flags: list[tuple[int, Any]]) -> Any:
    """Return REVEALED (1) where every (code, passes) flag passes, else the code of the first that fails.

    ``passes`` is 0/1 (or boolean) per cell in either medium; the result is computed by
    arithmetic only, so the MPC executor can use it on secrets (it branches on nothing).
    """
    code: Any = 1
    for c, passes in reversed(flags):
        p = passes * 1
        code = p * code + (1 - p) * c
    return code


def complement_ok(before: Any, after: Any, k: int, ge: Ge) -> Any:
    """Return rule 5's flag for one filter or inner join: the rows it removes are 0 or at least k.

    before/after: its input's and its output's row counts (secret scalars in the MPC).
    """
    removed = before - after
    return 1 - ge(removed, 1) * (1 - ge(removed, k))


def unique_left(a: Any, join: n.Join) -> bool:
    """Return whether a join's left side is known to be unique on its key (an Analysis's public facts).

    Then an inner join's output rows are also its matched right rows, so rule 5 counts the right
    rows it removes (those without a match) at no cost: the right side's rows minus the output's.
    """
    from .analyze import _unique_origin

    origin = _unique_origin(join.left, join.on)
    if origin is None or origin == ("", ""):
        return origin is not None  # NB: ("", ""): unique by construction (grouped by the key)
    return origin in a.unique_keys or bool(a.catalog[origin[0]].column(origin[1]).unique)  # NB: both validated


def min_values(func: str) -> int:
    """Return how many values a statistic needs to be defined at all."""
    return MIN_VALUES.get(func, 1)


def cell_ok(rows: Any, k: int, ge: Ge) -> Any:
    """Return which cells may be revealed: those with at least k rows."""
    return ge(rows, k)


def statistic_ok(agg: n.Agg, arg_kind: str | None, k: int, cells: Any, nvalid: Any, value: Any, ge: Ge) -> Any:
    """Return where one statistic may be revealed, given the cells that may (see cell_ok).

    arg_kind is the kind of the aggregate's argument (None for ``len``); nvalid the
    number of non-missing values per cell; value the statistic itself.
    """
    ok = cells * ge(nvalid, max(k, min_values(agg.func)))
    if agg.func == "sum" and arg_kind == "bool":
        ok = ok * ge(value, k)  # NB: a sum of booleans is a count: the same rule as a cell
    return ok


# Rules 2-4 (docs/disclosure.md): what each released statistic of the final aggregate is subject to.
# Both executors take the same StatRule (public: from the plan, the catalog and the rules) and
# combine their flags with `statistic_code`, so they withhold the same statistics with the same code.
FXP_BITS = 18  # NB: the MPC's fixed-point fraction bits (kernels/core.FXP_BITS): a float's ring units
RING_UNIT = 2**FXP_BITS
MAGNITUDE_RING_LIMIT = 2**62  # |total| * (a rule's numerator or denominator) must stay below it (ring units)
NOT_EVER = 2**62  # a count threshold no cell reaches


@dataclass(frozen=True)
class StatRule:
    """The rules 2-4 as they apply to one released statistic (public facts only).

    contributors: rule 2 counts its non-zero values (sum, mean); top_n: how many largest
    contributions rule 3 needs (0: not a magnitude statistic, or rule 3 off), dominance_n how many
    the dominance rule sums; dominance and
    p_ratio: (numerator, denominator) of dominance_pct / 100 and p_percent / 100, or None when
    off; extremes: the mode of a min or max ("release", "round", "withhold"); base: the rounding
    base in ring units (ints: the value; floats: value * 2^18), None where it cannot be exact
    (the extreme is then withheld); top/bottom: top- and bottom-coding (clip) before a min/max;
    sides: the least number of values a quantile needs for k contributors on each side;
    both_sides: a statistic of a boolean (its contributors are its true rows): its false rows
    (non-missing values minus contributors) must be 0 or at least k too (`both_sides_ok`).
    """

    contributors: bool = False
    top_n: int = 0
    dominance_n: int = 0
    dominance: tuple[int, int] | None = None
    p_ratio: tuple[int, int] | None = None
    extremes: str = "release"
    base: int | None = None
    top: float | None = None
    bottom: float | None = None
    sides: int | None = None
    both_sides: bool = False

    @property
    def magnitude_limit(self) -> int:
        """The largest total of absolute values (ring units) rule 3 compares exactly."""
        parts = [*(self.dominance or ()), *(self.p_ratio or ())]
        return MAGNITUDE_RING_LIMIT // max(parts, default=1)


def _ratio(pct: float) -> tuple[int, int]:
    f = (Fraction(pct) / 100).limit_denominator(10_000)
    return f.numerator, f.denominator


def quantile_sides(q: float, k: int) -> int:
    """Return the least count of values a q-quantile needs: k ranked below its lower neighbour, k above its upper.

    NB: the neighbours are those of the executors (DuckDB's quantile_cont): lo = floor((c - 1) q),
    hi = lo + 1 (capped at c - 1), also when q falls on lo exactly. Exact rational arithmetic, so the
    threshold is public and the same in both executors.
    """
    fq = Fraction(q)
    if fq <= 0 or fq >= 1:
        return NOT_EVER
    lower = 1 + math.ceil(k / fq)  # (c - 1) q >= k
    upper = math.floor(k / (1 - fq)) + 2  # (c - 1)(1 - q) > k
    return max(lower, upper)


def stat_rules(a: Any) -> dict[str, StatRule]:
    """Return, per aggregate of a checked plan's final aggregate (an Analysis), the rules 2-4 that apply to it."""
    from .lineage import column_of, expr_origins, has_role

    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    rules, k = a.rules, a.plan.min_group_size
    schema = a.schema(root.input)
    out: dict[str, StatRule] = {}
    for name, agg in root.aggs:
        if agg.arg is None:
            out[name] = StatRule()
            continue
        found = expr_origins(a, root.input, agg.arg)
        kind = infer(agg.arg, schema).kind
        kw: dict[str, Any] = {}
        if kind == "bool" and rules.contributors and agg.func in BOTH_SIDES:
            # NB: the mean of a boolean is its true rows over its non-missing ones: 39 of 40 (0.975)
            # reveals N and the one person without, whatever the counts' perturbation; var and std
            # are functions of it. A sum of a boolean is a count, its cell's count minus it the false
            # rows: held to the same rule whatever the counts' mode, so a result withholds the same
            # statistics with counts exact, rounded or perturbed (rule 6 only changes the numbers).
            kw["both_sides"] = True
            kw["contributors"] = True  # NB: its true rows (var and std: not counted otherwise)
        if agg.func in ("sum", "mean"):
            kw["contributors"] = rules.contributors
            if has_role(a, found, "magnitude") and (rules.dominance or rules.p_percent > 0):
                dom = _ratio(rules.dominance_pct) if rules.dominance else None
                pr = _ratio(rules.p_percent) if rules.p_percent > 0 else None
                dn = rules.dominance_n if dom else 0
                kw.update(dominance=dom, p_ratio=pr, dominance_n=dn, top_n=max(dn, 2 if pr else 0))
        elif agg.func in ("min", "max"):
            cols = [column_of(a, o) for o in sorted(found)]
            bases = [c.extremes_base for c in cols if c.extremes_base is not None]
            mode = "round" if bases else rules.extremes
            base = max(bases) if bases else float(rules.rounding_base)
            if len(cols) == 1:
                kw.update(top=cols[0].top_code, bottom=cols[0].bottom_code)
            kw.update(extremes=mode, base=_ring_base(base, kind))
        elif agg.func in ("median", "quantile") and rules.quantile_sides:
            kw["sides"] = quantile_sides(0.5 if agg.func == "median" else float(agg.q or 0.0), k)
        out[name] = StatRule(**kw)
    return out


# The statistics of a boolean that reveal its false rows as well as its true ones (see stat_rules).
BOTH_SIDES = ("sum", "mean", "var", "std")


def both_sides_ok(nvalid: Any, contributors: Any, k: int, ge: Ge) -> Any:
    """Return rule 2's flag for a boolean's false rows (nvalid - contributors): 0 or at least k (both media)."""
    return complement_ok(nvalid, contributors, k, ge)


def _ring_base(base: float, kind: str) -> int | None:
    """Return a rounding base in ring units, or None where rounding to it cannot be exact."""
    if kind == "bool":
        return 1  # NB: a boolean's extreme is itself; only the sharing counts
    scaled = Fraction(base) * (RING_UNIT if kind == "float" else 1)
    return int(scaled) if scaled.denominator == 1 and scaled >= 1 else None


def clip_bounds(rule: StatRule, kind: str) -> tuple[float | int | None, float | int | None]:
    """Return (bottom, top) of a min/max's top- and bottom-coding in the column's own numbers (ints: whole)."""
    lo, hi = rule.bottom, rule.top
    if kind in ("date", "bool"):
        return None, None  # NB: the bounds are numbers: no coding of dates and booleans
    if kind == "int":
        return (math.ceil(lo) if lo is not None else None), (math.floor(hi) if hi is not None else None)
    return lo, hi


def magnitude_flags(rule: StatRule, tops: list[Any], total: Any, ge: Ge) -> list[tuple[int, Any]]:
    """Return rule 3's flags: (DOMINANCE, passes), (P_PERCENT, passes), in ring units.

    tops: the rule.top_n largest absolute contributions per cell (largest first, 0 where fewer);
    total: the cell's sum of absolute contributions. Integer arithmetic only (below magnitude_limit).
    """
    flags: list[tuple[int, Any]] = []
    if rule.dominance is not None:
        num, den = rule.dominance
        top = sum(tops[: rule.dominance_n])
        flags.append((DOMINANCE, ge(total * num - top * den, 0)))
    if rule.p_ratio is not None:
        num, den = rule.p_ratio
        flags.append((P_PERCENT, ge((total - tops[0] - tops[1]) * den - tops[0] * num, 0)))
    return flags


def statistic_code(ok: Any, more: list[tuple[int, Any]]) -> Any:
    """Return a statistic's code: FEW_VALUES where ok (statistic_ok) fails, else the first failing flag of more."""
    return first_failure([(FEW_VALUES, ok), *more])
