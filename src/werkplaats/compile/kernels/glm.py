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

The fit is written as passes over the rows (`glm_passes`; models/__init__.py): moments (n, the
terms' sums, the category counts, poisson's Σ y log y and Σ log y!), spread (Σ (x − mean)²,
Σ (y − ȳ)², and Z'Z for the leverage), one IRLS pass per step (the deviance at the current b,
A = Z'WZ and the score; its step checks convergence and solves), and final (the deviance at the
last b and the leverage counts; its step computes the outputs and the checks). Every partial is a
sum (or a count) over rows, so a bucketed job combines them across buckets by addition and runs
the same steps (`glm_stages`); the unbucketed program runs the passes on one frame, the IRLS
steps in one `jax.lax.fori_loop` (the program holds the step once).

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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import jax.numpy as jnp

from ...plan import nodes as n
from ...result import LEVERAGE, NOT_CONVERGED, RESIDUAL_DF, SINGULAR, SMALL_CATEGORY, TOO_MANY_PARAMETERS
from ..analyze import Analysis
from ..models import MAX_ROW_BITS, BucketReader, Pass, run_passes, stage_list
from ..models import glm as model
from ..staged import Leaf
from .core import F64, I64, SCol, SFrame, b2i, ratio, select, tree_reduce, wide_sqrt
from .expr import align, str_ok

if TYPE_CHECKING:
    from ..staged import Stage

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


# --- the fit, as passes over the rows (models/__init__.py: Pass) --------------------------


@dataclass
class Rows:
    """A frame's (or one bucket's) model rows: X (rows × q, the non-intercept terms), y, offset, used (0/1 int).

    cats: the 0/1 int columns whose counts the SMALL_CATEGORY check needs (`small_groups` order);
    Z: the standardised design (rows × p, zero on unused rows) once a pass's prep has made it.
    """

    X: Any
    y: Any
    off: Any
    u: Any
    cats: list[Any]
    Z: Any = None


class GlmState(NamedTuple):
    """What one pass hands the next (every field secret; the shapes follow from p, public)."""

    nobs: Any  # int: the used rows
    sy: Any  # Σ y over the used rows
    ybar: Any
    mean: Any  # (q,): the terms' means
    inv_s: Any  # (q,): 1 / their population sd
    constant: Any  # int 0/1: some term is constant
    ss: Any  # Σ (y - ybar)² (the outcome's share in the LEVERAGE check)
    small: Any  # int 0/1: SMALL_CATEGORY passes
    sylogy: Any  # poisson: Σ y log y
    slgamma: Any  # poisson: Σ log(y!)
    Ginv: Any  # (p, p), rG (p,): the design's (Z'Z) scaled inverse for the leverage (not gaussian: its last A is Z'Z)
    rG: Any
    b: Any  # (p,): the standardised coefficients
    dev: Any  # the deviance at the previous b
    null_dev: Any
    smallest: Any  # the smallest LDL' pivot of A over the solves
    Ainv: Any  # (p, p), r (p,): the last solve's scaled inverse and its Jacobi scale
    r: Any
    t: Any  # solves done (float)
    started: Any  # int 0/1: a deviance has been evaluated
    first: Any  # the first step at which the convergence rule held (float)
    found: Any  # int 0/1
    conv: Any  # int 0/1: the rule held at the last evaluation


def small_groups(a: Analysis) -> list[tuple[str, list[int]]]:
    """Return the SMALL_CATEGORY check's groups (public): ("both", [one column]) or ("codes", [dummy columns]).

    "both": a 0/1 column whose ones and zeros each need k rows (a binomial outcome, a bool predictor);
    "codes": a categorical's dummies, each and the reference (the rest) needing k rows. Indices count `Rows.cats`.
    """
    node = a.plan.root
    assert isinstance(node, n.Glm)
    out: list[tuple[str, list[int]]] = []
    i = 0
    if node.family == "binomial":
        out.append(("both", [i]))
        i += 1
    codes: dict[str, list[int]] = {}
    for t in model.terms(a)[1:]:
        if t.kind == "bool":
            out.append(("both", [i]))
            i += 1
        elif t.kind == "dummy":
            assert t.column is not None
            codes.setdefault(t.column, []).append(i)
            i += 1
    return out + [("codes", idx) for idx in codes.values()]


def glm_passes(a: Analysis) -> list[Pass]:
    """Return the model's passes: moments, spread, the IRLS steps (one repeated pass), the final statistics."""
    node = a.plan.root
    assert isinstance(node, n.Glm)
    family, iters, k, rules = node.family, model.ITERS[node.family], a.plan.min_group_size, a.rules
    p = len(model.terms(a))
    q = p - 1
    groups = small_groups(a)
    ncat = sum(len(idx) for _, idx in groups)
    bits = MAX_ROW_BITS

    def moments(rows: Rows, _: Any) -> list[Any]:
        uf = rows.u.astype(F64)
        yu = rows.y * uf
        counts = jnp.stack([rows.u.sum(), *((c.astype(I64) * rows.u).sum() for c in rows.cats)])
        if family == "poisson":
            sexp = (_exp(rows.off * uf) * uf).sum()
            sylogy = (yu * _log(jnp.maximum(rows.y, 1.0), 0, 60)).sum()
            pois = jnp.stack([sexp, sylogy, (_lgamma1(rows.y) * uf).sum()])
        else:
            pois = jnp.zeros((3,), dtype=F64) + yu.sum() * 0.0  # NB: secret zeros (see after_moments)
        return [counts, (rows.X * uf[:, None]).sum(axis=0), yu.sum(), pois]

    def after_moments(acc: list[Any], _: Any) -> GlmState:
        counts, sx, sy, pois = acc
        nobs = counts[0]
        ybar = ratio(sy, nobs, bits)
        # The start: the intercept-only fit, closed form for canonical links (also the null deviance's model).
        if family == "gaussian":
            b0 = ybar
        elif family == "binomial":
            q1 = jnp.clip(ybar, 1e-9, 1 - 1e-9)
            b0 = _log(q1) - _log(1.0 - q1)
        else:
            ebar = ratio(pois[0], nobs, bits)
            b0 = _log(jnp.maximum(ybar, 1e-9)) - _log(jnp.maximum(ebar, 1e-9))
        # NB: zeros that stay secret: XLA folds an integer x * 0 to a public 0 (a float one it does not fold)
        zi = b2i(nobs < 0)
        zf = sy * 0.0
        small: Any = 1 - zi
        for _, idx in groups:
            cs = [counts[1 + i] for i in idx]
            for c in cs:
                small = small * b2i(c >= k)
            small = small * b2i(nobs - sum(cs) >= k)  # NB: a 0/1 column's zeros; a categorical's reference
        return GlmState(
            nobs=nobs, sy=sy, ybar=ybar, mean=ratio(sx, nobs, bits), inv_s=jnp.zeros((q,), F64) + zf, constant=zi,
            ss=zf, small=small, sylogy=pois[1], slgamma=pois[2], Ginv=jnp.zeros((p, p), F64) + zf,
            rG=jnp.ones((p,), F64) + zf, b=(jnp.zeros((p,), dtype=F64) + zf).at[0].set(b0), dev=zf, null_dev=zf,
            smallest=zf + 2.0**60, Ainv=jnp.zeros((p, p), F64) + zf, r=jnp.ones((p,), F64) + zf, t=zf, started=zi,
            first=zf + float(iters), found=zi, conv=zi,
        )  # fmt: skip

    def spread(rows: Rows, st: GlmState) -> list[Any]:
        uf = rows.u.astype(F64)
        D = (rows.X - st.mean[None, :]) * uf[:, None]
        dy = (rows.y - st.ybar) * uf
        out = [(D * D).sum(axis=0), (dy * dy).sum()]
        return out if family == "gaussian" else [*out, D.T @ D, D.sum(axis=0)]

    def after_spread(acc: list[Any], st: GlmState) -> GlmState:
        var = ratio(acc[0], st.nobs, bits)
        inv_s = _rsqrt(jnp.maximum(var, VAR_FLOOR))
        st = st._replace(inv_s=inv_s, constant=b2i(b2i(var < VAR_FLOOR).sum() > 0), ss=acc[1])
        if family == "gaussian":
            return st
        DD, sD = acc[2], acc[3]
        zs = sD * inv_s
        top = jnp.concatenate([st.nobs.astype(F64)[None], zs])
        ZZ = jnp.concatenate([top[None, :], jnp.concatenate([zs[:, None], DD * inv_s[:, None] * inv_s[None, :]],
                                                            axis=1)], axis=0)  # fmt: skip
        Ginv, _, rG = inverse_spd(ZZ)  # NB: Z'Z of the standardised design, as the unweighted hat matrix needs
        return st._replace(Ginv=Ginv, rG=rG)

    def prep(rows: Rows, st: GlmState) -> Rows:
        uf = rows.u.astype(F64)
        D = (rows.X - st.mean[None, :]) * uf[:, None]
        Z = jnp.concatenate([uf[:, None], D * st.inv_s[None, :]], axis=1)
        return replace(rows, Z=Z)

    def evaluate(rows: Rows, b: Any) -> tuple[Any, Any, Any]:
        """Return (μ, the weights, the deviance's row sum) at b, on the used rows (zeros elsewhere)."""
        uf = rows.u.astype(F64)
        yu = rows.y * uf
        eta = (rows.Z @ b + rows.off * uf) * uf
        if family == "gaussian":
            res = yu - eta
            return eta, uf, (res * res).sum()
        eta = jnp.clip(eta, -ETA_LIMIT, ETA_LIMIT)
        if family == "binomial":
            pos = b2i(eta >= 0)
            e = _exp(-jnp.abs(eta))  # NB: in (0, 1]: no overflow
            inv1e = 1.0 / (1.0 + e)
            mu = select(pos, inv1e, e * inv1e) * uf
            softplus = jnp.maximum(eta, 0.0) + jnp.log(1.0 + e)
            return mu, mu * (1.0 - mu), ((softplus - yu * eta) * uf).sum()
        mu = _exp(eta) * uf
        return mu, mu, (mu - yu * eta).sum()  # NB: the rest of the poisson deviance (Σ y log y - y) is in the state

    def deviance(part: Any, st: GlmState) -> Any:
        if family == "gaussian":
            return part
        if family == "binomial":
            return 2.0 * part
        return 2.0 * (st.sylogy - st.sy + part)

    def convergence(dev: Any, st: GlmState) -> tuple[Any, Any, Any]:
        """statsmodels' rule |dev_t − dev_{t−1}| < 1e-8 (|dev_t| + 0.1), from the second evaluation on."""
        conv = b2i(jnp.abs(dev - st.dev) * (1.0 / model.TOL) < jnp.abs(dev) + 0.1) * st.started
        first = select(conv * (1 - st.found), st.t, st.first)
        return conv, first, st.found + conv * (1 - st.found)

    def irls(rows: Rows, st: GlmState) -> list[Any]:
        mu, w, part = evaluate(rows, st.b)
        yu = rows.y * rows.u.astype(F64)
        Z = rows.Z
        Ag = Z.T @ jnp.concatenate([Z * w[:, None], (yu - mu)[:, None]], axis=1)  # NB: one product for A and g
        return [part, Ag]

    def after_irls(acc: list[Any], st: GlmState) -> GlmState:
        part, Ag = acc
        dev = deviance(part, st)
        conv, first, found = convergence(dev, st)
        A, g = Ag[:, :p], Ag[:, p]
        Ainv, piv, r = inverse_spd(A)
        return st._replace(
            b=st.b + r * (Ainv @ (r * g)), dev=dev, null_dev=select(st.started, st.null_dev, dev),
            smallest=jnp.minimum(st.smallest, tree_reduce(piv, "min")), Ainv=Ainv, r=r, t=st.t + 1.0,
            started=b2i(st.nobs >= 0), first=first, found=found, conv=conv,
        )  # fmt: skip

    def final(rows: Rows, st: GlmState) -> list[Any]:
        _, _, part = evaluate(rows, st.b)
        if k <= 1:
            return [part, jnp.zeros((2,), dtype=I64) + b2i(rows.u.sum() < 0)]
        # LEVERAGE: no row's design leverage h_i = z_i'(Z'Z)⁻¹z_i, nor its share of the outcome's sum of squares
        # about the mean, reaches 1/(k-1) (models/glm.leverage_ok); compared row by row, counted
        G, rg = (st.Ainv, st.r) if family == "gaussian" else (st.Ginv, st.rG)  # NB: gaussian: W = 1, A = Z'Z
        Zr = rows.Z * rg[None, :]
        h = ((Zr @ G) * Zr).sum(axis=1)
        dy = (rows.y - st.ybar) * rows.u.astype(F64)
        high = b2i(h * float(k - 1) >= 1.0).sum()
        share = b2i(dy * dy * float(k - 1) >= st.ss).sum()
        return [part, jnp.stack([high, share])]

    def after_final(acc: list[Any], st: GlmState) -> tuple[list[tuple[int, Any]], list[Any]]:
        part, lev = acc
        dev = deviance(part, st)
        conv, first, _ = convergence(dev, st)
        iterations = select(conv, first, jnp.asarray(float(iters), dtype=F64))
        nobs = st.nobs
        if family == "gaussian":
            scale = ratio(dev, jnp.maximum(nobs - p, 1), bits)
            llf = _gaussian_llf(nobs, dev)
        else:
            scale = jnp.ones((), dtype=F64)
            llf = -0.5 * dev if family == "binomial" else -part - st.slgamma  # NB: Σ (y η − μ − log y!)
        # Standard errors. Cov(b) = A⁻¹ · scale (A = Z'WZ, unscaled by n), A⁻¹ = r Â⁻¹ r; Ainv here is Â⁻¹.
        Ainv, r, inv_s, mean = st.Ainv, st.r, st.inv_s, st.mean
        root_scale = wide_sqrt(scale)
        se_rest = r[1:] * inv_s * jnp.sqrt(jnp.diagonal(Ainv)[1:]) * root_scale
        v = jnp.concatenate([jnp.ones((1,), F64), -mean * inv_s * (r[1:] * _recip(r[0]))])  # NB: M's first row, ÷ r0
        se0 = r[0] * jnp.sqrt(jnp.maximum(v @ Ainv @ v, 0.0)) * root_scale
        b = st.b
        beta = jnp.concatenate([(b[0] - (b[1:] * mean * inv_s).sum())[None], b[1:] * inv_s])
        sep: Any = 1  # NB: slopes only, and not for gaussian (b on y's own scale), as models/glm.fit_plain
        if family != "gaussian":
            sep = b2i(b2i(jnp.abs(b[1:]) > model.MAX_STD_COEF).sum() == 0)
        singular_ok = (1 - st.constant) * b2i(st.smallest >= model.SINGULAR_PIVOT * nobs.astype(F64))
        lev_ok = b2i(lev[0] == 0) * b2i(lev[1] == 0) if k > 1 else jnp.ones((), dtype=I64)
        flags: list[tuple[int, Any]] = [
            (TOO_MANY_PARAMETERS, b2i(nobs >= min_rows(p, rules.model_max_params))),
            (RESIDUAL_DF, b2i(nobs >= p + rules.model_min_df)),
            (SMALL_CATEGORY, st.small),
            (SINGULAR, singular_ok),
            (NOT_CONVERGED, conv * sep),
            (LEVERAGE, lev_ok),
        ]
        stats = [nobs.astype(F64), dev, st.null_dev, llf, scale, iterations, conv.astype(F64)]
        term_ok = jnp.ones((p,), dtype=I64) - b2i(nobs < 0)
        se = jnp.concatenate([se0[None], se_rest])
        return flags, [term_ok, beta, se, jnp.stack([jnp.asarray(s, dtype=F64) for s in stats])]

    f_ = "float64"
    spread_leaves = [Leaf((q,), f_, "add"), Leaf((), f_, "add")]
    if family != "gaussian":
        spread_leaves += [Leaf((q, q), f_, "add"), Leaf((q,), f_, "add")]
    return [
        Pass(
            "moments",
            moments,
            [Leaf((1 + ncat,), "int64", "add"), Leaf((q,), f_, "add"), Leaf((), f_, "add"), Leaf((3,), f_, "add")],
            after_moments,
            state=GlmState,
        ),
        Pass("spread", spread, spread_leaves, after_spread, state=GlmState),
        Pass(
            "irls",
            irls,
            [Leaf((), f_, "add"), Leaf((p, p + 1), f_, "add")],
            after_irls,
            prep=prep,
            repeat=iters,
            state=GlmState,
        ),
        Pass("final", final, [Leaf((), f_, "add"), Leaf((2,), "int64", "add")], after_final, prep=prep),
    ]


def _gaussian_llf(nobs: Any, dev: Any) -> Any:
    """Return -n/2 (log(2π dev / n) + 1), with the logs taken on numbers near 1 (power-of-two buckets)."""
    sigma2 = ratio(dev, nobs, MAX_ROW_BITS)
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


def design(a: Analysis, f: SFrame) -> tuple[Any, Any, Any, Any, list[Any]]:
    """Return (X without the intercept, y, offset, used rows, the 0/1 columns of `small_groups`) from the frame."""
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
    cats = [ycol.v] if node.family == "binomial" else []
    return jnp.stack(cols, axis=1), y, off, used, cats + [col for _, col in kinds]


def rows_of(a: Analysis, f: SFrame) -> Rows:
    """Return a frame's model rows (design: the terms' columns, the used rows, the check's category columns)."""
    X, y, off, used, cats = design(a, f)
    return Rows(X, y, off, used, cats)


def glm_mpc(a: Analysis, f: SFrame) -> tuple[list[tuple[int, Any]], list[Any]]:
    """Return the model's checks (reason code, secret passes) in the shared order and its outputs.

    Outputs (models/glm.output_kinds): term_ok [p], estimate [p], std_error [p], fit [7] (FIT_STATS).
    The unbucketed program: every pass of `glm_passes` over the one frame.
    """
    flags, outs = run_passes(rows_of(a, f), glm_passes(a))
    return flags, outs


def glm_stages(a: Analysis, reader: BucketReader) -> list[Stage]:
    """Return the model as stages over buckets: the same passes, each one stage (models/__init__.py)."""
    return stage_list(reader, lambda f: rows_of(a, f), glm_passes(a))


def min_rows(p: int, max_params: float) -> int:
    """Return the fewest rows n with p <= max_params · n in floating point (the plain executor's test)."""
    t = max(1, math.ceil(p / max_params) - 2)
    while p > max_params * t:
        t += 1
    return t
