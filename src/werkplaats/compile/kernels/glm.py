"""The generalised linear model inside the MPC (compile/models/glm.py holds the public parts).

The kernel follows the algorithm the plain executor follows (docs/plans.md, "Models"), step by
step, on secrets and without branching on them:

1. the model matrix from the input frame's secret columns (one column per term, from the plan
   and the catalog: public), and the used rows: the frame's mask times every column's validity;
2. each non-intercept term standardised over the used rows (mean and population sd, secret);
3. a fixed, public number of IRLS steps from the intercept-only fit (closed form): per step
   η, μ, the weights, A = Z'WZ and the score Z'(y − μ) as secret sums over the rows, then the
   p × p solve: Jacobi scaling to a unit diagonal, Gauss–Jordan elimination without pivoting
   (A is symmetric positive definite) with each pivot kept for the singularity check, and one
   Newton–Schulz refinement of the inverse;
4. back-transform to the original scale; standard errors with their square roots taken on O(1)
   numbers and scaled afterwards;
5. the checks, in the shared order, as (reason code, secret 0/1 passes).

Precision: the plan runs on FM128 with 40 fraction bits (mpc/runtime.PRECISIONS). SPU's own
exp, reciprocal and reciprocal square root lose relative accuracy away from 1, so the kernel
brings numbers near 1 first (`_exp`: argument halving and squaring; `_recip`, `_rsqrt`: an
oblivious power-of-two bucket, then Newton steps), as kernels/core.ratio does for counts.

Security model: every row-wise array, every sum, the fit and the checks' outcomes are secret;
the terms, p, the family, the iteration count and the constants are public. Only the outputs,
zeroed unless every check passes (compile/spu.withhold_whole), are revealed.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from ...plan import nodes as n
from ...result import LEVERAGE, NOT_CONVERGED, RESIDUAL_DF, SINGULAR, SMALL_CATEGORY, TOO_MANY_PARAMETERS
from ..analyze import Analysis
from ..models import glm as model
from .core import F64, I64, SCol, SFrame, b2i, ratio, select, tree_reduce, wide_sqrt
from .expr import align, str_ok

ETA_LIMIT = 40.0  # |η| is clamped here inside the MPC (e^40 fits the fixed point; a fit this far is not converged)
VAR_FLOOR = model.CONSTANT_SD**2  # a variance below this counts as constant (2^-36: the plain check sd < 2^-18)
PIVOT_FLOOR = 2.0**-30  # pivots of the Jacobi-scaled A are clamped here before their reciprocal (SINGULAR flags it)


# --- accurate elementary functions in fixed point --------------------------------------


def _exp(x: Any) -> Any:
    """Return e^x for |x| <= ETA_LIMIT: Taylor of order 8 on x / 2^8, then 8 squarings (relative error < 1e-9)."""
    y = jnp.clip(x, -ETA_LIMIT, ETA_LIMIT) * 2.0**-8
    acc = jnp.ones_like(y)
    for k in range(8, 0, -1):
        acc = 1.0 + acc * y * (1.0 / k)
    for _ in range(8):
        acc = acc * acc
    return acc


def _ge_powers(x: Any, es: list[int]) -> Any:
    """Return x >= 2^e for e in es[1:] as 0/1, stacked on a last axis (one vectorised comparison)."""
    powers = jnp.asarray([2.0**e for e in es[1:]], dtype=F64)
    return b2i(x[..., None] >= powers)


def _pick(ge: Any, values: list[float]) -> Any:
    """Return values[i] for the bucket i of _ge_powers (public values, secret bucket; monotone flags telescope)."""
    steps = jnp.asarray([v - prev for v, prev in zip(values[1:], values[:-1], strict=True)], dtype=F64)
    return values[0] + (ge * steps).sum(axis=-1)


def _recip(x: Any) -> Any:
    """Return 1/x for 2^-30 <= x < 2^38, accurate to ~1e-11 relative (SPU's own degrades beyond 1e4)."""
    es = list(range(-30, 38))
    ge = _ge_powers(x, es)
    factor = _pick(ge, [2.0 ** -(e + 1) for e in es])
    xs = x * factor  # NB: in [0.5, 1)
    r = 48.0 / 17.0 - 32.0 / 17.0 * xs
    for _ in range(4):
        r = r * (2.0 - xs * r)
    return r * factor


def _rsqrt(x: Any) -> Any:
    """Return 1/sqrt(x) for 2^-40 <= x < 2^60, accurate to ~1e-11 relative (SPU's rsqrt: ~1e-4)."""
    es = list(range(-40, 60, 2))
    ge = _ge_powers(x, es)
    xs = x * _pick(ge, [2.0 ** -(e + 2) for e in es])  # NB: in [0.25, 1)
    r = 1.0 / jnp.sqrt(xs)
    for _ in range(2):
        r = r * (1.5 - 0.5 * xs * r * r)
    return r * _pick(ge, [2.0 ** -(e / 2 + 1) for e in es])


def _log(x: Any, lo: int = -40, hi: int = 60) -> Any:
    """Return log(x) for 2^lo <= x < 2^hi: SPU's log on [0.5, 1) plus the bucket's public log."""
    es = list(range(lo, hi))
    ge = _ge_powers(x, es)
    xs = x * _pick(ge, [2.0 ** -(e + 1) for e in es])
    return jnp.log(xs) + _pick(ge, [(e + 1) * math.log(2.0) for e in es])


# --- the solve ---------------------------------------------------------------------------


def _pivot_recip(piv: Any) -> Any:
    """Return 1/max(piv, PIVOT_FLOOR) for a pivot of a unit-diagonal SPD matrix (at most ~1).

    One vectorised comparison gives both the clamp and the power-of-two bucket, then three Newton
    steps on [0.5, 1) (~1e-10 relative; the Newton–Schulz step refines the inverse): a third of the
    rounds of SPU's reciprocal, which the p sequential pivots of every solve wait for.
    """
    es = list(range(-30, 2))
    ge = b2i(piv[..., None] >= jnp.asarray([PIVOT_FLOOR] + [2.0**e for e in es[1:]], dtype=F64))
    safe = select(ge[..., 0], piv, jnp.full_like(piv, PIVOT_FLOOR))
    factor = _pick(ge[..., 1:], [2.0 ** -(e + 1) for e in es])
    xs = safe * factor
    r = 48.0 / 17.0 - 32.0 / 17.0 * xs
    for _ in range(3):
        r = r * (2.0 - xs * r)
    return r * factor


def inverse_spd(A: Any) -> tuple[Any, Any, Any]:
    """Return (A⁻¹, the LDL' pivots of A, the Jacobi scale r) of a symmetric positive definite p × p A.

    A is scaled to a unit diagonal (Â = rAr, r = diag(A)^-1/2), inverted by Gauss–Jordan elimination
    without pivoting (the pivots of Â times diag(A) are A's: the squared Cholesky pivots), refined
    once by Newton–Schulz, and scaled back. A pivot below PIVOT_FLOOR (scaled) is clamped so that the
    arithmetic stays in range; the caller's SINGULAR check withholds such a fit.
    """
    p = A.shape[0]
    diag = jnp.diagonal(A)
    r = _rsqrt(jnp.maximum(diag, 2.0**-40))
    S = A * r[:, None] * r[None, :]
    aug = jnp.concatenate([S, jnp.eye(p, dtype=F64)], axis=1)
    pivots = []
    for k in range(p):
        piv = aug[k, k]
        pivots.append(piv)
        row = aug[k] * _pivot_recip(piv)
        col = aug[:, k] - jnp.eye(p, dtype=F64)[:, k]  # NB: row k becomes `row`, the others lose col_i · row
        aug = aug - col[:, None] * row[None, :]
    X = aug[:, p:]
    X = X @ (2.0 * jnp.eye(p, dtype=F64) - S @ X)  # NB: one Newton–Schulz step
    X = (X + X.T) * 0.5
    return X, jnp.stack(pivots) * diag, r


# --- the fit ----------------------------------------------------------------------------


def fit_arrays(X: Any, y: Any, off: Any, u: Any, family: str, iters: int) -> dict[str, Any]:
    """Fit a GLM on raw secret arrays: X (rows × q, the non-intercept terms), y, off (rows), u (0/1 used rows).

    Returns secret scalars and vectors: n, beta, se, deviance, null_deviance, llf, scale, iterations,
    converged, constant (any term constant), smallest (the smallest pivot of A/n), b (standardised).
    """
    q = X.shape[1]
    p = q + 1
    uf = u.astype(F64)
    nobs = u.sum()
    mean = ratio((X * uf[:, None]).sum(axis=0), nobs)
    D = (X - mean[None, :]) * uf[:, None]
    var = ratio((D * D).sum(axis=0), nobs)
    constant = b2i(var < VAR_FLOOR)
    inv_s = _rsqrt(jnp.maximum(var, VAR_FLOOR))
    Z = jnp.concatenate([uf[:, None], D * inv_s[None, :]], axis=1)
    yu = y * uf
    off = off * uf

    # The start: the intercept-only fit, closed form for canonical links (also the null deviance's model).
    ybar = ratio(yu.sum(), nobs)
    if family == "gaussian":
        b0 = ybar
    elif family == "binomial":
        q1 = jnp.clip(ybar, 1e-9, 1 - 1e-9)
        b0 = _log(q1) - _log(1.0 - q1)
    else:
        ebar = ratio((_exp(off) * uf).sum(), nobs)
        b0 = _log(jnp.maximum(ybar, 1e-9)) - _log(jnp.maximum(ebar, 1e-9))
    b = jnp.zeros((p,), dtype=F64).at[0].set(b0)
    ylogy = yu * _log(jnp.maximum(y, 1.0), 0, 60) if family == "poisson" else None

    def evaluate(b: Any) -> tuple[Any, Any, Any, Any]:
        """Return (η, μ, the weights, the deviance) at b, on the used rows (zeros elsewhere)."""
        eta = (Z @ b + off) * uf
        if family == "gaussian":
            res = yu - eta
            return eta, eta, uf, (res * res).sum()
        eta = jnp.clip(eta, -ETA_LIMIT, ETA_LIMIT)
        if family == "binomial":
            pos = b2i(eta >= 0)
            e = _exp(-jnp.abs(eta))  # NB: in (0, 1]: no overflow
            inv1e = 1.0 / (1.0 + e)
            mu = select(pos, inv1e, e * inv1e) * uf
            softplus = jnp.maximum(eta, 0.0) + jnp.log(1.0 + e)
            return eta, mu, mu * (1.0 - mu), 2.0 * ((softplus - yu * eta) * uf).sum()
        mu = _exp(eta) * uf
        return eta, mu, mu, 2.0 * (ylogy - yu * eta - yu + mu).sum()

    eta, mu, w, dev = evaluate(b)
    null_dev = dev

    def step(t: Any, c: tuple[Any, ...]) -> tuple[Any, ...]:
        """One IRLS step (a loop body, so the program holds it once): solve, update, the new deviance."""
        b, eta, mu, w, dev, smallest, _, _, first, found, _ = c
        Ag = Z.T @ jnp.concatenate([Z * w[:, None], (yu - mu)[:, None]], axis=1)  # NB: one product for A and g
        A, g = Ag[:, :p], Ag[:, p]
        Ainv, piv, r = inverse_spd(A)
        smallest = jnp.minimum(smallest, tree_reduce(piv, "min"))
        b = b + r * (Ainv @ (r * g))
        eta, mu, w, dev_t = evaluate(b)
        conv = b2i(jnp.abs(dev_t - dev) * (1.0 / model.TOL) < jnp.abs(dev_t) + 0.1)
        first = select(conv * (1 - found), (t + 1).astype(F64), first)
        found = found + conv * (1 - found)
        return b, eta, mu, w, dev_t, smallest, Ainv, r, first, found, conv

    zero_i = nobs * 0
    start = (b, eta, mu, w, dev, jnp.asarray(2.0**60, dtype=F64), jnp.zeros((p, p), dtype=F64),
             jnp.ones((p,), dtype=F64), jnp.asarray(float(iters), dtype=F64), zero_i, zero_i)  # fmt: skip
    b, eta, mu, w, dev, smallest, Ainv, r, first, _, converged = jax.lax.fori_loop(0, iters, step, start)
    iterations = select(converged, first, jnp.asarray(float(iters), dtype=F64))

    resid_df = jnp.maximum(nobs - p, 1)
    if family == "gaussian":
        scale = ratio(dev, resid_df)
        llf = _gaussian_llf(nobs, dev)
    else:
        scale = jnp.ones((), dtype=F64)
        llf = -0.5 * dev if family == "binomial" else (yu * eta - mu - _lgamma1(y) * uf).sum()
    # Standard errors. Cov(b) = A⁻¹ · scale (A = Z'WZ, unscaled by n), A⁻¹ = r Â⁻¹ r; Ainv here is Â⁻¹.
    root_scale = wide_sqrt(scale)
    se_rest = r[1:] * inv_s * jnp.sqrt(jnp.diagonal(Ainv)[1:]) * root_scale
    v = jnp.concatenate([jnp.ones((1,), F64), -mean * inv_s * (r[1:] * _recip(r[0]))])  # NB: M's first row, ÷ r0
    se0 = r[0] * jnp.sqrt(jnp.maximum(v @ Ainv @ v, 0.0)) * root_scale
    beta = jnp.concatenate([(b[0] - (b[1:] * mean * inv_s).sum())[None], b[1:] * inv_s])
    return {
        "n": nobs, "beta": beta, "se": jnp.concatenate([se0[None], se_rest]), "deviance": dev,
        "null_deviance": null_dev, "llf": llf, "scale": scale, "iterations": iterations,
        "converged": converged, "constant": b2i(constant.sum() > 0), "smallest_raw": smallest, "b": b,
        "Z": Z, "ybar": ybar, "Ainv": Ainv, "r": r,
    }  # fmt: skip


def _gaussian_llf(nobs: Any, dev: Any) -> Any:
    """Return -n/2 (log(2π dev / n) + 1), with the logs taken on numbers near 1 (power-of-two buckets)."""
    sigma2 = ratio(dev, nobs)
    log_sigma2 = _log(jnp.maximum(sigma2, 2.0**-40))
    return -0.5 * nobs.astype(F64) * (log_sigma2 + math.log(2 * math.pi) + 1.0)


def _lgamma1(y: Any) -> Any:
    """Return log(y!) for counts y >= 0: Stirling's series at y + 7, minus log((y+1)···(y+6))."""
    z = jnp.maximum(y, 0.0) + 7.0
    log_z = _log(z, 2, 60)
    iz = _recip(z)
    iz2 = iz * iz
    series = iz * (1.0 / 12 - iz2 * (1.0 / 360 - iz2 * (1.0 / 1260)))
    lg = (z - 0.5) * log_z - z + 0.5 * math.log(2 * math.pi) + series
    shifts = jnp.stack([jnp.maximum(y, 0.0) + i for i in range(1, 7)], axis=1)
    return lg - _log(shifts, 0, 60).sum(axis=1)


# --- the plan's model --------------------------------------------------------------------


def design(a: Analysis, f: SFrame) -> tuple[Any, Any, Any, Any, list[tuple[str, Any]]]:
    """Return (X without the intercept, y, offset, used rows, [(term kind, its 0/1 column)]) from the frame."""
    node = a.plan.root
    assert isinstance(node, n.Glm)
    base = a.schema(node.input)
    ts = model.terms(a)
    used = f.mask
    ycol = f.cols[node.y]
    used = used * ycol.ok
    y = ycol.v.astype(F64)
    off = jnp.zeros((f.n,), dtype=F64)
    if node.offset is not None:
        oc = f.cols[node.offset]
        used = used * oc.ok
        off = oc.v.astype(F64)
    onehots: dict[str, Any] = {}
    for x in node.x:
        c: SCol = f.cols[x]
        if base[x].kind == "str":
            onehots[x] = align(c, tuple(base[x].domain or ()))
            used = used * onehots[x].sum(axis=1)  # NB: a value outside the code list is missing
        else:
            used = used * (c.ok if c.kind != "str" else str_ok(c))
    cols: list[Any] = []
    kinds: list[tuple[str, Any]] = []
    for t in ts[1:]:
        assert t.column is not None
        if t.kind == "dummy":
            dom = [str(v) for v in base[t.column].domain or ()]
            col = onehots[t.column][:, dom.index(str(t.code))]
            kinds.append(("dummy:" + t.column, col))
            cols.append(col.astype(F64))
        else:
            c = f.cols[t.column]
            if t.kind == "bool":
                kinds.append(("bool", c.v))
            cols.append(c.v.astype(F64))
    return jnp.stack(cols, axis=1), y, off, used, kinds


def glm_mpc(a: Analysis, f: SFrame) -> tuple[list[tuple[int, Any]], list[Any]]:
    """Return the model's checks (reason code, secret passes) in the shared order and its outputs.

    Outputs (models/glm.output_kinds): term_ok [p], estimate [p], std_error [p], fit [7] (FIT_STATS).
    """
    node = a.plan.root
    assert isinstance(node, n.Glm)
    X, y, off, used, kinds = design(a, f)
    p = X.shape[1] + 1
    fit = fit_arrays(X, y, off, used, node.family, model.ITERS[node.family])
    nobs = fit["n"]
    k = a.plan.min_group_size
    rules = a.rules

    small: Any = jnp.ones((), dtype=I64)

    def both_sides(count: Any) -> Any:
        return b2i(count >= k) * b2i(nobs - count >= k)

    if node.family == "binomial":
        small = small * both_sides((f.cols[node.y].v * used).sum())
    dummies: dict[str, list[Any]] = {}
    for kind, col in kinds:
        if kind == "bool":
            small = small * both_sides((col.astype(I64) * used).sum())
        else:
            dummies.setdefault(kind, []).append((col * used).sum())
    for counts in dummies.values():
        for c in counts:
            small = small * b2i(c >= k)
        small = small * b2i(nobs - sum(counts) >= k)  # NB: the reference category's rows

    sep: Any = 1  # NB: slopes only, and not for gaussian (b on y's own scale), as models/glm.fit_plain
    if node.family != "gaussian":
        sep = b2i(b2i(jnp.abs(fit["b"][1:]) > model.MAX_STD_COEF).sum() == 0)
    # LEVERAGE: no row's design leverage h_i = z_i'(Z'Z)⁻¹z_i, nor its share of the outcome's sum of squares
    # about the mean, reaches 1/(k-1) (models/glm.leverage_ok); compared row by row, (k-1)·h_i < 1
    Z = fit["Z"]
    if node.family == "gaussian":  # NB: W = 1 on the used rows: the last step's A is Z'Z already
        Ginv, r = fit["Ainv"], fit["r"]
    else:
        Ginv, _, r = inverse_spd(Z.T @ Z)
    Zr = Z * r[None, :]
    h = ((Zr @ Ginv) * Zr).sum(axis=1)
    dy = (y - fit["ybar"]) * used
    ss = (dy * dy).sum()
    lev_ok = b2i(b2i(h * float(k - 1) >= 1.0).sum() == 0) * b2i(b2i(dy * dy * float(k - 1) >= ss).sum() == 0)
    singular_ok = (1 - fit["constant"]) * b2i(fit["smallest_raw"] >= model.SINGULAR_PIVOT * nobs.astype(F64))
    flags: list[tuple[int, Any]] = [
        (TOO_MANY_PARAMETERS, b2i(nobs >= min_rows(p, rules.model_max_params))),
        (RESIDUAL_DF, b2i(nobs >= p + rules.model_min_df)),
        (SMALL_CATEGORY, small),
        (SINGULAR, singular_ok),
        (NOT_CONVERGED, fit["converged"] * sep),
        (LEVERAGE, lev_ok if k > 1 else jnp.ones((), dtype=I64)),
    ]
    stats = [nobs.astype(F64), fit["deviance"], fit["null_deviance"], fit["llf"], fit["scale"],
             fit["iterations"], fit["converged"].astype(F64)]  # fmt: skip
    term_ok = jnp.ones((p,), dtype=I64) + nobs * 0
    return flags, [term_ok, fit["beta"], fit["se"], jnp.stack([jnp.asarray(s, dtype=F64) for s in stats])]


def min_rows(p: int, max_params: float) -> int:
    """Return the fewest rows n with p <= max_params · n in floating point (the plain executor's test)."""
    t = max(1, math.ceil(p / max_params) - 2)
    while p > max_params * t:
        t += 1
    return t
