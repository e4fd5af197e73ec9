"""Directly age-standardised rates (plan node Standardize), per cell of public keys, inside the MPC.

The input has one row per person at risk: ``events`` (an int or a boolean per person), ``age``
(a categorical column of age bands) and the keys. Per cell c and age band a the program counts
the persons n_ca and sums the events d_ca; per cell it computes

    rate   = per · Σ_a w_a · d_ca / n_ca        (w_a: band a's share of the standard population)
    var    = per² · Σ_a w_a² · d_ca / n_ca²     (Poisson events, Chiang 1961)
    95% CI = rate ± 1.96 · sqrt(var)            (normal approximation; the lower end at least 0)

where a band without persons in a cell contributes 0. Everything per band stays inside the
computation: only the rate and its interval leave, and only for a cell with at least k events,
at least k persons and persons in at least 2 age bands (else FEW_VALUES), where no event
count is negative or absurdly large (else OUT_OF_RANGE). Rows whose events or age band is
missing are left out; rows whose key is missing form the key's 'missing' cell, as in an
aggregate.

Security model: as `kernels/aggregate.py`: per-row arrays and per-band counts are secret; the
key domains, the age bands and the standard are public (the plan's). The program branches on
nothing secret; a withheld cell's outputs are zeroed inside the computation.

Numerics: in the model precision (FM128, 40 fraction bits) the program works with
t_a = per · w_a / n_ca and c_a = t_a · d_ca, so rate = Σ c_a and var = Σ c_a · t_a: no
intermediate is smaller than about per · w_a / n, which keeps the relative error near 1e-9.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ...exceptions import PlanError
from ...plan import nodes as n
from ...plan.limits import MAX_OUTPUT_CELLS
from ...plan.types import DType, Schema
from ...result import FEW_VALUES, OUT_OF_RANGE, REVEALED, Revealed, key_grid, reason_text
from .. import disclosure
from ..analyze import Analysis
from ..plain import _py as plain_py

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
EVENTS_LIMIT = 2**20  # events per person at most this (else OUT_OF_RANGE): keeps var below 2^60 in fixed point
PER_LIMIT = 10**6  # rates per at most a million persons
OUTPUTS = ("rate", "ci_low", "ci_high")
# A released cell needs persons in at least this many age bands: in a cell of one band,
# d = (1.96 · rate / half-width)² and n = per · w · d / rate give back its exact counts.
MIN_BANDS = 2


def _node(a: Analysis) -> n.Standardize:
    root = a.plan.root
    assert isinstance(root, n.Standardize)
    return root


def schema(a: Analysis, node: Any, base: Schema) -> Schema:
    """Check a Standardize node against its input's schema; return its output schema (keys, rate, ci_low, ci_high)."""
    r: n.Standardize = node
    where = "standardize(...)"
    for col, use in ((r.events, "events"), (r.age, "age"), *((k, "by") for k in r.keys)):
        if col not in base:
            msg = f"{where}: {use} column {col!r} is not in the input (it has {sorted(base)})"
            raise PlanError(msg)
    if len(set(r.keys)) != len(r.keys) or {r.events, r.age} & set(r.keys) or r.events == r.age:
        msg = f"{where}: events, age and the keys (by) must be different columns"
        raise PlanError(msg)
    if base[r.events].kind not in ("int", "bool"):
        kind = base[r.events].kind
        msg = f"{where}: events column {r.events!r} must be an int (events per person) or a bool, got {kind}"
        raise PlanError(msg)
    age_t = base[r.age]
    if age_t.kind != "str" or not age_t.domain:
        msg = (f"{where}: age column {r.age!r} must be categorical (age bands with a code list, e.g. "
               f"cut(age_at(...), breaks, labels=...)), got {age_t.kind}")  # fmt: skip
        raise PlanError(msg)
    for k in r.keys:
        if base[k].grouping_domain is None:
            msg = (f"{where}: key {k!r} ({base[k].kind}) has no public domain. The keys must be categorical "
                   "(a code list), boolean, a cut() of a number, or a date part")  # fmt: skip
            raise PlanError(msg)
    check_standard(r.standard, age_t.domain, r.age)
    if isinstance(r.per, bool) or not isinstance(r.per, int) or not 1 <= r.per <= PER_LIMIT:
        msg = f"{where}: per must be a whole number of persons from 1 to {PER_LIMIT:,}"
        raise PlanError(msg)
    _check_limits(a, r, base)
    out: Schema = {k: base[k] for k in r.keys}
    out.update({name: DType("float") for name in OUTPUTS})
    return out


def check_standard(standard: Any, bands: tuple[Any, ...], age: str = "age") -> None:
    """Refuse a standard population that is not exactly the age bands' code list with finite positive persons."""
    where = "standardize(...): the standard population"
    try:
        names = [str(b) for b, _ in standard]
        weights = [float(w) for _, w in standard]
    except (TypeError, ValueError):
        msg = f"{where} must map each age band to its number of persons"
        raise PlanError(msg) from None
    twice = sorted({b for b in names if names.count(b) > 1})
    if twice:
        msg = f"{where} names bands {twice} more than once"
        raise PlanError(msg)
    bad = [b for b, w in zip(names, weights, strict=True) if not math.isfinite(w) or w <= 0]
    if bad:
        msg = f"{where} must give every band a finite number of persons above 0; it does not for {bad}"
        raise PlanError(msg)
    codes = [str(b) for b in bands]
    if len(codes) < MIN_BANDS:
        msg = (f"{where}: {age!r} has one age band; a rate over one band is the crude rate, and with its "
               "interval it would give back each cell's exact counts. Use at least 2 bands, or count with "
               "group_by(...).agg(...) (its counts are perturbed or rounded)")  # fmt: skip
        raise PlanError(msg)
    missing = [b for b in codes if b not in names]
    extra = [b for b in names if b not in codes]
    if missing or extra:
        msg = (f"{where} must cover exactly the bands of {age!r}'s code list: missing {missing}; "
               f"not in the code list {extra}. Regroup it with werkplaats.plan.standards.regroup")  # fmt: skip
        raise PlanError(msg)


def _check_limits(a: Analysis, r: n.Standardize, base: Schema) -> None:
    """Refuse more cells than rule 8 allows (max_cells; cells_per_source), as for an aggregate."""
    groups = 1
    for k in r.keys:
        groups *= len(base[k].grouping_domain or ()) + 1
    if groups * len(OUTPUTS) > MAX_OUTPUT_CELLS or groups > a.rules.max_cells:
        msg = (f"standardize: the output would have {groups} groups (the cells of {list(r.keys)}, each with a "
               f"'missing' value), more than the limit of {a.rules.max_cells} per request (rule 8); group by "
               "fewer or coarser keys")  # fmt: skip
        raise PlanError(msg)
    if a.rules.cells_per_source and a.row_counts:
        known = {s.dataset: a.row_counts[s.dataset] for s in n.sources(r) if s.dataset in a.row_counts}
        if known:
            ds = min(known, key=lambda d: known[d])
            limit = max(known[ds] // a.plan.min_group_size, 1)
            if groups > limit:
                msg = (f"standardize: the output would have {groups} groups, more than {ds}'s {known[ds]} rows "
                       f"divided by k = {a.plan.min_group_size} ({limit}) (rule 8, cells_per_source); group by "
                       "fewer or coarser keys")  # fmt: skip
                raise PlanError(msg)


def weights(r: n.Standardize, bands: tuple[Any, ...]) -> np.ndarray:
    """Return each band's share of the standard population, in the code list's order."""
    std = {str(b): float(w) for b, w in r.standard}
    w = np.array([std[str(b)] for b in bands], dtype=float)
    return w / w.sum()


def _domains(a: Analysis) -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
    r = _node(a)
    base = a.schema(r.input)
    return [base[k].grouping_domain or () for k in r.keys], base[r.age].domain or ()


def output_kinds(a: Analysis) -> list[tuple[str, str]]:
    """Return the outputs after ``__withheld``: the per-cell code (1 = released), then rate, ci_low, ci_high."""
    return [("released", "int"), *((name, "float") for name in OUTPUTS)]


def measures(nn: Any, d: Any, bad: Any, w: np.ndarray, per: int, k: int, xp: Any, ge: Any, div: Any,
             sqrt: Any) -> list[Any]:  # fmt: skip
    """Return [code, rate, ci_low, ci_high] per cell from per-band persons nn and events d (bands × cells).

    bad: per cell, the rows whose events are out of range. The same arithmetic in NumPy (plain)
    and in JAX (the MPC); ``div(num, den)`` divides by a positive count, ``sqrt`` of a non-negative.
    """
    tot_n, tot_d = nn.sum(axis=0), d.sum(axis=0)
    t = div(xp.asarray(per * w)[:, None], xp.where(nn > 0, nn, xp.ones_like(nn)))  # NB: per · w_a / n_ca
    c = t * d  # NB: each band's part of the rate; 0 where the band is empty (d = 0)
    rate = c.sum(axis=0)
    half = Z95 * sqrt(xp.maximum((c * t).sum(axis=0), 0.0))
    bands = (ge(nn, 1) * 1).sum(axis=0)  # NB: with one band, rate and interval give back the cell's counts
    few = ge(tot_d, k) * ge(tot_n, k) * ge(bands, MIN_BANDS)
    code = disclosure.first_failure([(OUT_OF_RANGE, ge(0, bad)), (FEW_VALUES, few)])
    keep = (code == REVEALED) * 1.0
    return [code, rate * keep, xp.maximum(rate - half, 0.0) * keep, (rate + half) * keep]


def plain(a: Analysis, rows: pd.DataFrame) -> tuple[list[tuple[int, Any]], list[np.ndarray]]:
    """Compute the rates on the plain executor from the input's rows (NumPy, float64)."""
    r = _node(a)
    domains, bands = _domains(a)
    ncell = len(key_grid(domains))
    cell = np.zeros(len(rows), dtype=np.int64)
    for key, dom in zip(r.keys, domains, strict=True):
        pos = {_py(v): i for i, v in enumerate(dom)}
        idx = np.array([pos.get(_py(v), len(dom)) for v in rows[key].tolist()], dtype=np.int64)
        cell = cell * (len(dom) + 1) + idx  # NB: itertools.product order, 'missing' last (result.key_grid)
    band_pos = {str(b): i for i, b in enumerate(bands)}
    band = np.array([band_pos.get(str(v), -1) if _py(v) is not None else -1 for v in rows[r.age].tolist()],
                    dtype=np.int64)  # fmt: skip
    ev = [_py(v) for v in rows[r.events].tolist()]
    use = np.array([v is not None for v in ev], dtype=bool) & (band >= 0)
    events = np.array([int(v) if v is not None else 0 for v in ev], dtype=np.int64)
    nn = np.zeros((len(bands), ncell), dtype=np.int64)
    d = np.zeros((len(bands), ncell), dtype=np.int64)
    np.add.at(nn, (band[use], cell[use]), 1)
    np.add.at(d, (band[use], cell[use]), events[use])
    out_of_range = use & ((events < 0) | (events > EVENTS_LIMIT))
    bad = np.bincount(cell[out_of_range], minlength=ncell).astype(np.int64)
    w = weights(r, bands)
    with np.errstate(invalid="ignore"):
        outs = measures(nn, d, bad, w, r.per, a.plan.min_group_size, np, np.greater_equal,
                        np.divide, np.sqrt)  # fmt: skip
    return [], [np.asarray(outs[0], dtype=np.int64), *(np.asarray(o, dtype=float) for o in outs[1:])]


def passes(a: Analysis) -> list[Any]:
    """Return the rates' one pass: per-cell, per-band persons and events (sums that add across buckets)."""
    from ..kernels.rates import rate_measures, rate_sums
    from ..staged import Leaf
    from . import Pass

    r = _node(a)
    domains, bands = _domains(a)
    cells = len(key_grid(domains))
    w, k = weights(r, bands), a.plan.min_group_size

    def partial(f: Any, _: Any) -> list[Any]:
        return [rate_sums(f, r, domains, bands)]

    def step(acc: list[Any], _: Any) -> tuple[list[tuple[int, Any]], list[Any]]:
        return [], rate_measures(acc[0], r, bands, w, k)

    return [Pass("rates", partial, [Leaf((2 * len(bands) + 1, cells), "int64", "add")], step)]


def mpc(a: Analysis, f: Any) -> tuple[list[tuple[int, Any]], list[Any]]:
    """Compute the rates inside the MPC program from the input's secret frame (see the module docstring)."""
    from . import run_passes

    flags, outs = run_passes(f, passes(a))
    return flags, outs


def stages(a: Analysis, reader: Any) -> list[Any]:
    """The rates as one stage over buckets: the per-cell sums add, the step computes the rates (models/__init__.py)."""
    from . import stage_list

    return stage_list(reader, lambda f: f, passes(a))


def revealed(a: Analysis, values: list[np.ndarray], withheld: int) -> Revealed:
    """Return the revealed per-cell codes and values (all zero when the whole result is withheld)."""
    code = np.asarray(values[0]).astype(np.int64).reshape(-1)
    stats = {name: (code, np.asarray(v, dtype=float).reshape(-1)) for name, v in zip(OUTPUTS, values[1:], strict=True)}
    return Revealed(code == REVEALED, stats, int(withheld))


def frame(a: Analysis, rev: Revealed) -> pd.DataFrame:
    """Return one row per cell of the keys' domains: keys…, rate, ci_low, ci_high, suppressed, reason."""
    r = _node(a)
    base = a.schema(r.input)
    domains, _ = _domains(a)
    grid = key_grid(domains)
    k = a.plan.min_group_size
    data: dict[str, Any] = {}
    for i, key in enumerate(r.keys):
        dtype = {"bool": "boolean", "int": "Int64", "str": "string"}[base[key].kind]
        data[key] = pd.array([g[i] for g in grid], dtype=dtype)
    whole = int(rev.withheld) != REVEALED
    shown = rev.cell_ok.astype(bool) & (not whole)
    for name in OUTPUTS:
        col = pd.array(np.asarray(rev.stats[name][1], dtype=float), dtype="Float64")
        col[~shown] = pd.NA
        data[name] = col
    code = rev.stats[OUTPUTS[0]][0]
    reasons: list[str | None] = []
    for c in range(len(grid)):
        if whole:
            reasons.append("the whole result: " + reason_text(rev.withheld, k))
        elif int(code[c]) == FEW_VALUES:
            reasons.append(f"fewer than {k} events or {k} persons, or persons in fewer than {MIN_BANDS} age bands")
        elif int(code[c]) != REVEALED:
            reasons.append(reason_text(int(code[c]), k))
        else:
            reasons.append(None)
    data["suppressed"] = ~shown
    data["reason"] = pd.Series(reasons, dtype=object)
    df = pd.DataFrame(data)
    df.attrs.update(min_group_size=k, per=r.per, ci="95%, normal approximation")
    return df


def _py(v: Any) -> Any:
    """Return a plain Python value (the plain executor's `_py`), a whole float as an int."""
    v = plain_py(v)
    return int(v) if isinstance(v, float) and v.is_integer() else v
