"""The perturbation table of rule 6 (the cell key method), as the ONS/sdcTools ``ptable``.

For each original count i = 0, 1, …, L (L = D + js + 1, the last row; every larger count
uses it) a distribution of the noise v in [-D, D] such that i + v >= 0, i + v is not in
1..js, its mean is 0 (unbiased) and its variance V where that is feasible (else the largest
variance the row's support allows). Among those, the distribution of maximum entropy (as the
R package ``ptable`` does): p_v ∝ exp(a·v + b·v²), found by minimising the convex dual.

The probabilities are then quantised to multiples of 1/256, the cell key's resolution,
keeping the mean 0 as nearly as possible (then the variance as near V); row 0 is all 0:
an empty cell stays empty. A cell with count i and cell key ck in 0..255 gets the noise
v whose cumulative range [lo_v, hi_v) holds ck. Everything here is deterministic and
public: the table is published (`table`), only the cell keys are secret.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

from .rules import PTable

RESOLUTION = 256  # NB: cell keys are sums of 8-bit record keys mod 256


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the table: the noise distribution of an original count i (of every count >= i for the last row).

    counts[j] is 256 × the probability of the noise values[j]; mean and var are the row's
    actual (stated) mean and variance after quantisation.
    """

    i: int
    values: tuple[int, ...]
    counts: tuple[int, ...]
    mean: float
    var: float

    def thresholds(self) -> tuple[int, ...]:
        """Return, for each noise value but the first, the smallest cell key that gets it or a larger one."""
        out, acc = [], 0
        for c in self.counts[:-1]:
            acc += c
            out.append(acc)
        return tuple(out)


def last_row(pt: PTable) -> int:
    """Return the last row of the table: every count from here on has the full support [-D, D]."""
    return pt.D + pt.js + 1


def support(i: int, pt: PTable) -> list[int]:
    """Return the noise values allowed for count i: within [-D, D], i + v >= 0 and i + v not in 1..js."""
    if i == 0:
        return [0]
    return [v for v in range(-pt.D, pt.D + 1) if i + v >= 0 and not 1 <= i + v <= pt.js]


def _max_entropy(vs: np.ndarray, var: float) -> np.ndarray:
    """Return the maximum-entropy distribution on vs with mean 0 and variance var (feasible, inside the bound)."""
    from scipy.optimize import minimize

    target = np.array([0.0, var])
    feats = np.stack([vs, vs * vs], axis=1)

    def dual(lam: np.ndarray) -> tuple[float, np.ndarray]:
        z = feats @ lam
        m = z.max()
        w = np.exp(z - m)
        s = w.sum()
        p = w / s
        return float(m + math.log(s) - lam @ target), feats.T @ p - target

    res = minimize(dual, np.zeros(2), jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 1000})
    z = feats @ res.x
    w = np.exp(z - z.max())
    return w / w.sum()


def _distribution(i: int, pt: PTable) -> tuple[list[int], np.ndarray]:
    vs = support(i, pt)
    if len(vs) == 1 or pt.V == 0:
        return [0], np.array([1.0])
    lo, hi = min(vs), max(vs)
    bound = -lo * hi  # NB: the largest variance of a mean-0 distribution on [lo, hi]: mass on both ends
    if bound * (1 - 1e-9) <= pt.V:
        p = np.array([hi / (hi - lo) if v == lo else (-lo / (hi - lo) if v == hi else 0.0) for v in vs])
        return vs, p
    return vs, _max_entropy(np.array(vs, dtype=float), pt.V)


def _quantise(vs: list[int], p: np.ndarray, var: float) -> list[int]:
    """Return integer counts summing to 256, near 256·p, with Σ n·v as near 0 as possible, then Σ n·v² near 256·var."""
    target = p * RESOLUTION
    n = [int(x) for x in np.floor(target)]
    for j in np.argsort(-(target - np.floor(target)), kind="stable")[: RESOLUTION - sum(n)]:
        n[int(j)] += 1

    def cost(m: list[int]) -> tuple[int, int, float]:
        s1 = sum(c * v for c, v in zip(m, vs, strict=True))
        s2 = sum(c * v * v for c, v in zip(m, vs, strict=True))
        return abs(s1), abs(s2 - round(RESOLUTION * var)), float(np.abs(np.array(m) - target).sum())

    best = cost(n)
    while True:
        moves = []
        for a in range(len(vs)):
            for b in range(len(vs)):
                if a != b and n[a] > 0 and (n[b] > 0 or target[b] > 0):
                    m = list(n)
                    m[a] -= 1
                    m[b] += 1
                    moves.append((cost(m), a, b))
        if not moves:
            return n
        c, a, b = min(moves)
        if c >= best:
            return n
        n[a] -= 1
        n[b] += 1
        best = c


@cache
def rows(pt: PTable) -> tuple[Row, ...]:
    """Return the table's rows 0..last_row(pt), quantised to 1/256 (see the module docstring)."""
    out = []
    for i in range(last_row(pt) + 1):
        vs, p = _distribution(i, pt)
        counts = _quantise(vs, p, pt.V) if len(vs) > 1 else [RESOLUTION]
        full = list(range(-pt.D, pt.D + 1)) if i > 0 else [0]
        cmap = dict(zip(vs, counts, strict=True))
        cs = [cmap.get(v, 0) for v in full]
        mean = sum(c * v for c, v in zip(cs, full, strict=True)) / RESOLUTION
        var = sum(c * (v - mean) ** 2 for c, v in zip(cs, full, strict=True)) / RESOLUTION
        out.append(Row(i, tuple(full), tuple(cs), mean, var))
    return tuple(out)


def noise(pt: PTable, count: np.ndarray, cell_key: np.ndarray) -> np.ndarray:
    """Return the noise of each cell (NumPy): the table's entry for (min(count, last row), cell key)."""
    count = np.asarray(count, dtype=np.int64)
    ck = np.asarray(cell_key, dtype=np.int64)
    out = np.zeros(count.shape, dtype=np.int64)
    r = np.minimum(count, last_row(pt))
    for row in rows(pt):
        v = row.values[0] + sum((ck >= t).astype(np.int64) for t in row.thresholds())
        out = np.where(r == row.i, v, out)
    return out


def table(pt: PTable) -> pd.DataFrame:
    """Return the published table: per original count i (the last row: i and above) and noise v,

    its probability p (a multiple of 1/256), the cell keys that get it [ck_from, ck_to), and the
    row's actual mean and variance.
    """
    recs = []
    for row in rows(pt):
        lo = 0
        for v, c in zip(row.values, row.counts, strict=True):
            if c:
                recs.append({"i": row.i, "i_and_above": row.i == last_row(pt), "v": v, "p": c / RESOLUTION,
                             "p256": c, "ck_from": lo, "ck_to": lo + c,
                             "row_mean": row.mean, "row_var": row.var})  # fmt: skip
            lo += c
    return pd.DataFrame.from_records(recs)
