"""The generalised linear model summary (plan.nodes.Glm): gaussian, binomial (logit) and poisson (log).

The public, data-independent parts (terms, outputs, constants, the schema check) and the plain
executor's NumPy fit live here; the MPC kernel is `compile/kernels/glm.py`. Both executors follow
the same algorithm in the same order (docs/plans.md, "Models"): standardise the terms over the used
rows, a fixed number of IRLS steps from the intercept-only fit, the checks, back-transform; so MPC equals plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...exceptions import PlanError
from ...plan import nodes as n
from ...plan.types import DType, Schema
from ...result import (
    LEVERAGE,
    NOT_CONVERGED,
    RESIDUAL_DF,
    REVEALED,
    SINGULAR,
    SMALL_CATEGORY,
    TOO_MANY_PARAMETERS,
    Revealed,
    reason_text,
)
from ..analyze import RIGHT_SUFFIX, Analysis

# --- constants shared by both executors --------------------------------------

ITERS = {"gaussian": 2, "binomial": 12, "poisson": 12}  # IRLS iterations, public and fixed
TOL = 1e-8  # converged when |dev_t - dev_{t-1}| / (|dev_t| + 0.1) < TOL (statsmodels' rule)
MAX_STD_COEF = 30.0  # |b_j| on the standardised scale above this: separation -> NOT_CONVERGED
SINGULAR_PIVOT = 1e-8  # smallest Cholesky pivot of A = Z'WZ/n (standardised) below this -> SINGULAR
CONSTANT_SD = 2.0**-18  # a term whose population sd over the used rows is below this -> SINGULAR (the MPC: var < 2^-36)
MAX_TERMS = 30  # p, the intercept included

# The fit output's entries, in order (output "fit").
FIT_STATS = ("n", "deviance", "null_deviance", "llf", "scale", "iterations", "converged")


@dataclass(frozen=True, slots=True)
class Term:
    """One column of the model matrix: the intercept, a numeric or bool column, or one dummy of a str column.

    kind: "intercept", "numeric" (int/float), "bool" (0/1) or "dummy" (1 where ``column == code``).
    """

    name: str
    column: str | None
    kind: str
    code: str | None = None


def _glm(a: Analysis) -> n.Glm:
    root = a.plan.root
    assert isinstance(root, n.Glm)
    return root


def references(node: n.Glm, base: Schema) -> dict[str, str]:
    """Return the reference category of every str predictor: the one ``node.reference`` names, else the first code."""
    chosen = dict(node.reference)
    out = {}
    for x in node.x:
        t = base.get(x)
        if t is not None and t.kind == "str" and t.domain:
            out[x] = str(chosen.get(x, t.domain[0]))
    return out


def terms_of(node: n.Glm, base: Schema) -> list[Term]:
    """Return the model's terms from the node and its input's schema (public facts only)."""
    refs = references(node, base)
    out = [Term("intercept", None, "intercept")]
    for x in node.x:
        t = base[x]
        if t.kind in ("int", "float"):
            out.append(Term(x, x, "numeric"))
        elif t.kind == "bool":
            out.append(Term(x, x, "bool"))
        else:
            out.extend(Term(f"{x}[{c}]", x, "dummy", str(c)) for c in t.domain or () if str(c) != refs[x])
    return out


def terms(a: Analysis, node: n.Glm | None = None) -> list[Term]:
    """Return the model's terms: intercept first, then per predictor in order (docs/plans.md)."""
    node = node if node is not None else _glm(a)
    return terms_of(node, a.schema(node.input))


def output_kinds(a: Analysis) -> list[tuple[str, str]]:
    """Return the outputs after ``__withheld``: term_ok [p], estimate [p], std_error [p], fit [7]."""
    return [("term_ok", "int"), ("estimate", "float"), ("std_error", "float"), ("fit", "float")]


# --- the schema check ----------------------------------------------------------

_Y_KINDS = {"gaussian": ("int", "float", "bool"), "binomial": ("bool",), "poisson": ("int",)}
_Y_HINT = {
    "gaussian": "a number (int or float) or a bool",
    "binomial": "a bool (compute one, e.g. with_columns(val=wp.col('valincidenten') >= 1))",
    "poisson": "an int (a count)",
}


def _column(base: Schema, name: object, role: str) -> DType:
    if not isinstance(name, str) or name not in base:
        msg = f"fit(...): unknown column {name!r} as {role}; available columns: {sorted(base)}"
        raise PlanError(msg)
    return base[name]


def schema(a: Analysis, node: n.Glm, base: Schema) -> Schema:
    """Check a Glm node against its input's schema and return the summary's output schema (one row per term)."""
    if node.family not in n.GLM_FAMILIES:
        msg = f"fit(...): family must be one of {n.GLM_FAMILIES}, got {node.family!r}"
        raise PlanError(msg)
    yt = _column(base, node.y, "the outcome (y)")
    if yt.kind not in _Y_KINDS[node.family]:
        msg = f"fit(...): the outcome {node.y!r} is {yt.kind}; a {node.family} model needs {_Y_HINT[node.family]}"
        raise PlanError(msg)
    if node.family == "poisson":
        _poisson_outcome(a, node, base)
    if not node.x:
        msg = "fit(...): a model needs at least one predictor (x)"
        raise PlanError(msg)
    seen: set[str] = set()
    for x in node.x:
        xt = _column(base, x, "a predictor (x)")
        if x in seen:
            msg = f"fit(...): the predictor {x!r} appears twice in x"
            raise PlanError(msg)
        seen.add(x)
        if x == node.y:
            msg = f"fit(...): {x!r} is the outcome; it cannot also be a predictor"
            raise PlanError(msg)
        if xt.kind == "str" and not xt.domain:
            msg = (f"fit(...): the predictor {x!r} is a str column without a code list; a categorical predictor "
                   "needs its public categories (declare them in the schema, or derive a coded column)")  # fmt: skip
            raise PlanError(msg)
        if xt.kind not in ("int", "float", "bool", "str"):
            msg = (f"fit(...): the predictor {x!r} is a {xt.kind}; use age_at(...) or a date part "
                   "(year, month) as a number instead")  # fmt: skip
            raise PlanError(msg)
    if node.offset is not None:
        if node.family != "poisson":
            msg = "fit(...): an offset is for the poisson family (log link) only"
            raise PlanError(msg)
        ot = _column(base, node.offset, "the offset")
        if ot.kind not in ("int", "float"):
            msg = f"fit(...): the offset {node.offset!r} is {ot.kind}; it must be a number (e.g. log person-years)"
            raise PlanError(msg)
        if node.offset == node.y or node.offset in node.x:
            msg = f"fit(...): the offset {node.offset!r} is also the outcome or a predictor"
            raise PlanError(msg)
    refs_seen: set[str] = set()
    for col, code in node.reference:
        if col in refs_seen:
            msg = f"fit(...): reference names the column {col!r} twice"
            raise PlanError(msg)
        refs_seen.add(col)
        if col not in node.x:
            msg = f"fit(...): reference names {col!r}, which is not a predictor; predictors: {list(node.x)}"
            raise PlanError(msg)
        t = base[col]
        if t.kind != "str":
            msg = f"fit(...): reference names {col!r}, a {t.kind} predictor; only categorical (str) ones have one"
            raise PlanError(msg)
        if str(code) not in [str(c) for c in t.domain or ()]:
            msg = f"fit(...): the reference category {code!r} of {col!r} is not in its code list {list(t.domain or ())}"
            raise PlanError(msg)
    p = len(terms_of(node, base))
    if p > MAX_TERMS:
        msg = (f"fit(...): the model has {p} terms (intercept and dummies included); at most {MAX_TERMS} "
               "(merge categories or leave out predictors)")  # fmt: skip
        raise PlanError(msg)
    if p < 2:
        msg = "fit(...): the model has no term besides the intercept (a categorical predictor with one code)"
        raise PlanError(msg)
    return {"term": DType("str"), "estimate": DType("float"), "std_error": DType("float")}


def _poisson_outcome(a: Analysis, node: n.Glm, base: Schema) -> None:
    """Refuse a poisson outcome whose catalog column declares a negative minimum (counts are >= 0)."""
    lo = _declared_minimum(a, node.input, node.y)
    if lo is not None and lo < 0:
        msg = (f"fit(...): the outcome {node.y!r} of a poisson model must be a count (>= 0), but its schema "
               f"declares a minimum of {lo:g}")  # fmt: skip
        raise PlanError(msg)


def _declared_minimum(a: Analysis, rel: n.Relation, name: str) -> float | None:
    """Return the minimum a source's schema declares for a column that reaches rel unchanged, if any."""
    match rel:
        case n.Source(dataset, _):
            if dataset not in a.catalog or name not in a.catalog[dataset].names:
                return None
            c = a.catalog[dataset].column(name)
            return float(c.minimum) if isinstance(c.minimum, int | float) else None
        case n.Filter(inp, _):
            return _declared_minimum(a, inp, name)
        case n.WithColumns(inp, exprs):
            return None if any(k == name for k, _ in exprs) else _declared_minimum(a, inp, name)
        case n.Select(inp, exprs):
            e = dict(exprs).get(name)
            return _declared_minimum(a, inp, e.name) if isinstance(e, n.Col) else None
        case n.Join(left, right, _, _):
            if name in a.schemas.get(left, {}):
                return _declared_minimum(a, left, name)
            return _declared_minimum(a, right, name.removesuffix(RIGHT_SUFFIX))
    return None


# --- executors ------------------------------------------------------------------


def mpc(a: Analysis, f: Any) -> tuple[list[tuple[int, Any]], list[Any]]:
    """Inside the MPC: the model's checks and outputs (compile/kernels/glm.py)."""
    from ..kernels.glm import glm_mpc

    return glm_mpc(a, f)


def stages(a: Analysis, reader: Any) -> list[Any]:
    """The model as stages over buckets (compile/kernels/glm.glm_passes; models/__init__.py)."""
    from ..kernels.glm import glm_stages

    return glm_stages(a, reader)


def design(a: Analysis, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (X, y, offset, used) from the input rows: X the terms' columns (intercept first) of every row.

    A row is used when y, every predictor and the offset are present (statsmodels' ``missing="drop"``);
    a str value outside its column's code list counts as missing (its one-hot row is all zeros).
    """
    node = _glm(a)
    base = a.schema(node.input)
    ts = terms_of(node, base)
    m = len(rows)
    used = np.ones(m, dtype=bool)

    def numeric(col: str) -> np.ndarray:
        v = pd.to_numeric(pd.Series(rows[col], copy=False).astype(object).where(rows[col].notna(), np.nan))
        out = np.asarray(v, dtype=float)
        return np.where(np.isfinite(out), out, np.nan)

    y = numeric(node.y) if m else np.zeros(0)
    used &= ~np.isnan(y)
    off = numeric(node.offset) if node.offset is not None and m else np.zeros(m)
    used &= ~np.isnan(off)
    X = np.zeros((m, len(ts)))
    X[:, 0] = 1.0
    strs: dict[str, pd.Series] = {}
    for x in node.x:
        if base[x].kind == "str":
            vals = pd.Series(rows[x], copy=False).astype("string") if m else pd.Series([], dtype="string")
            strs[x] = vals.where(vals.isin([str(c) for c in base[x].domain or ()]))
            used &= strs[x].notna().to_numpy(dtype=bool)
    for j, t in enumerate(ts[1:], 1):
        assert t.column is not None
        if t.kind == "dummy":
            X[:, j] = (strs[t.column] == t.code).fillna(False).to_numpy(dtype=float)
        else:
            col = numeric(t.column) if m else np.zeros(0)
            used &= ~np.isnan(col)
            X[:, j] = np.nan_to_num(col)
    return X[used], np.nan_to_num(y[used]), np.nan_to_num(off[used]), used


def _inverse_link(family: str, eta: np.ndarray) -> np.ndarray:
    if family == "gaussian":
        return eta
    if family == "binomial":
        return 0.5 * (1.0 + np.tanh(0.5 * eta))  # NB: the logistic function, without overflow
    return np.exp(np.minimum(eta, 700.0))


def _softplus(eta: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, eta)


def _deviance(family: str, y: np.ndarray, eta: np.ndarray, mu: np.ndarray) -> float:
    if family == "gaussian":
        return float(np.sum((y - mu) ** 2))
    if family == "binomial":
        return float(2.0 * np.sum(_softplus(eta) - y * eta))
    ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
    return float(2.0 * np.sum(ylogy - y * eta - (y - mu)))


def _llf(family: str, y: np.ndarray, eta: np.ndarray, mu: np.ndarray, dev: float) -> float:
    from scipy.special import gammaln

    nobs = len(y)
    if family == "gaussian":
        return float(-nobs / 2 * (np.log(2 * np.pi * dev / nobs) + 1)) if nobs and dev > 0 else 0.0
    if family == "binomial":
        return float(np.sum(y * eta - _softplus(eta)))
    return float(np.sum(y * eta - mu - gammaln(y + 1.0)))


def _null_eta(family: str, y: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Return the intercept-only model's linear predictor (with an offset: its maximum likelihood, closed form)."""
    ybar = float(y.mean()) if len(y) else 0.0
    if family == "gaussian":
        return np.full(len(y), ybar)
    if family == "binomial":
        q = min(max(ybar, 1e-300), 1 - 1e-16)
        return np.full(len(y), np.log(q / (1 - q)))
    total = float(np.exp(off).sum())
    return off + np.log(max(float(y.sum()), 1e-300) / total) if len(y) else off


def cholesky(A: np.ndarray) -> tuple[np.ndarray, float]:
    """Return (L, the smallest pivot) of A = LL' without pivoting, as the MPC does it.

    A pivot is A_jj - sum_k L_jk^2 before its square root; one below SINGULAR_PIVOT means
    A is (nearly) singular, and it is clamped there so that the arithmetic stays finite.
    """
    p = len(A)
    L = np.zeros_like(A)
    smallest = np.inf
    for j in range(p):
        d = A[j, j] - L[j, :j] @ L[j, :j]
        smallest = min(smallest, d) if np.isfinite(d) else -np.inf
        L[j, j] = np.sqrt(max(d, SINGULAR_PIVOT)) if np.isfinite(d) else 1.0
        L[j + 1 :, j] = (A[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L, float(smallest)


def inverse(L: np.ndarray) -> np.ndarray:
    """Return A^-1 = L^-T L^-1 from A's Cholesky factor (forward substitution; p <= 30)."""
    p = len(L)
    Linv = np.zeros_like(L)
    for i in range(p):
        e = np.zeros(p)
        e[i] = 1.0
        Linv[i] = (e - L[i, :i] @ Linv[:i]) / L[i, i]
    return Linv.T @ Linv


def fit_plain(a: Analysis, X: np.ndarray, y: np.ndarray, off: np.ndarray) -> dict[str, Any]:
    """Fit the model on the used rows by the shared algorithm (docs/plans.md "Models"); return every quantity."""
    family = _glm(a).family
    nobs, p = X.shape
    nn = max(nobs, 1)
    m = X[:, 1:].mean(axis=0) if nobs else np.zeros(p - 1)
    s = np.sqrt(((X[:, 1:] - m) ** 2).mean(axis=0)) if nobs else np.zeros(p - 1)
    constant = bool(np.any(s < CONSTANT_SD))
    s_safe = np.where(s < CONSTANT_SD, 1.0, s)
    Z = np.hstack([np.ones((nobs, 1)), (X[:, 1:] - m) / s_safe])
    b = np.zeros(p)
    # NB: IRLS starts from the intercept-only fit (closed form), as the MPC kernel does: from β = 0 a poisson
    # model with mean ȳ steps to log-mean ȳ - 1 and climbs down by ~1 per step (ȳ = 50: no convergence in ITERS)
    b[0] = float(_null_eta(family, y, off)[0] - off[0]) if nobs else 0.0
    eta = off + b[0]
    mu = _inverse_link(family, eta)
    dev_prev = _deviance(family, y, eta, mu)
    smallest = np.inf
    iterations, converged = ITERS[family], False
    Ainv = np.zeros((p, p))
    for t in range(1, ITERS[family] + 1):
        w = np.ones(nobs) if family == "gaussian" else (mu * (1 - mu) if family == "binomial" else mu)
        A = (Z * w[:, None]).T @ Z / nn
        g = Z.T @ (y - mu) / nn
        L, piv = cholesky(A)
        smallest = min(smallest, piv)
        Ainv = inverse(L)
        b = b + Ainv @ g
        eta = Z @ b + off
        mu = _inverse_link(family, eta)
        dev = _deviance(family, y, eta, mu)
        converged = bool(abs(dev - dev_prev) / (abs(dev) + 0.1) < TOL)
        if converged and iterations == ITERS[family]:
            iterations = t
        dev_prev = dev
    if not converged:
        iterations = ITERS[family]
    scale = float(np.sum((y - mu) ** 2) / max(nobs - p, 1)) if family == "gaussian" else 1.0
    M = np.eye(p)
    M[1:, 1:] = np.diag(1 / s_safe)
    M[0, 1:] = -m / s_safe
    beta = M @ b
    cov = M @ Ainv @ M.T * scale / nn
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    Ginv = inverse(cholesky(Z.T @ Z / nn)[0])  # NB: the design's own (unweighted) hat matrix: see leverage_ok
    leverage = np.einsum("ij,jk,ik->i", Z, Ginv, Z) / nn
    null_eta = _null_eta(family, y, off)
    null_dev = _deviance(family, y, null_eta, _inverse_link(family, null_eta))
    llf = _llf(family, y, eta, mu, dev_prev)
    finite = bool(np.all(np.isfinite(b)) and np.all(np.isfinite(se)) and np.isfinite(dev_prev) and np.isfinite(llf))
    return {
        "n": nobs, "p": p, "b": b, "beta": beta, "se": se, "deviance": dev_prev, "null_deviance": null_dev,
        "llf": llf, "scale": scale, "iterations": iterations, "converged": converged and finite,
        "singular": constant or not smallest >= SINGULAR_PIVOT,
        # NB: slopes only, and not for gaussian, whose b is on y's own scale (y ~ 1000 is no separation)
        "separated": family != "gaussian" and not bool(np.all(np.abs(b[1:]) <= MAX_STD_COEF)),
        "max_leverage": float(leverage.max()) if nobs else 0.0,
        "max_share": outcome_share(y),
    }  # fmt: skip


def outcome_share(y: np.ndarray) -> float:
    """Return the largest share of one row in the outcome's sum of squares about its mean (1 when SS = 0)."""
    if not len(y):
        return 1.0
    dev2 = (y - y.mean()) ** 2
    ss = float(dev2.sum())
    return float(dev2.max()) / ss if ss > 0 else 1.0


def small_categories(a: Analysis, X: np.ndarray, y: np.ndarray) -> bool:
    """Return whether the SMALL_CATEGORY check passes: every category of the outcome and predictors has >= k rows."""
    node, k = _glm(a), a.plan.min_group_size
    nobs = len(y)
    ok = True
    if node.family == "binomial":
        ones = int(np.sum(y > 0.5))
        ok &= ones >= k and nobs - ones >= k
    ts = terms(a)
    for x in node.x:
        cols = [j for j, t in enumerate(ts) if t.column == x]
        if ts[cols[0]].kind == "bool":
            ones = int(np.sum(X[:, cols[0]] > 0.5))
            ok &= ones >= k and nobs - ones >= k
        elif ts[cols[0]].kind == "dummy":
            per_code = X[:, cols].sum(axis=0)
            ok &= bool(np.all(per_code >= k)) and nobs - float(per_code.sum()) >= k  # NB: the reference's rows
    return bool(ok)


def leverage_ok(max_leverage: float, max_share: float, k: int) -> bool:
    """Return whether no part of the model rests on fewer than k rows (the LEVERAGE check).

    Two sides, each below 1/(k-1):

    - the predictors: every row's leverage. A row alone in a direction of the design (say a
      predictor that is 1 for one person and 0 for everyone else) has leverage 1 and the model fits
      it exactly, so the coefficients give that row's outcome away; m rows alone in a direction have
      leverage of at least 1/m each. SMALL_CATEGORY sees bool and str predictors; this sees any
      coding. It is the design's leverage, h_i = z_i' (Z'Z)^-1 z_i on the standardised terms,
      without the IRLS weights (those would also flag honest Poisson rows with a long exposure);
    - the outcome: every row's share of its sum of squares about the mean, (y_i - ybar)^2 / SS.
      An outcome that is 1 for one person and 0 for the others has a share of about 1, and the
      coefficients of its regression give that person's predictors away; m such rows, about 1/m.
      A constant outcome (SS = 0) fails: the model would give everyone's outcome away.
    """
    return k <= 1 or (max_leverage < 1 / (k - 1) and max_share < 1 / (k - 1))


def plain(a: Analysis, rows: pd.DataFrame) -> tuple[list[tuple[int, Any]], list[np.ndarray]]:
    """The plain executor's model: the checks (in the shared order) and the outputs, from the input's rows."""
    X, y, off, _ = design(a, rows)
    rules = a.rules
    nobs, p = X.shape
    with np.errstate(all="ignore"):
        fit = fit_plain(a, X, y, off)
    flags: list[tuple[int, Any]] = [
        (TOO_MANY_PARAMETERS, p <= rules.model_max_params * nobs),
        (RESIDUAL_DF, nobs - p >= rules.model_min_df),
        (SMALL_CATEGORY, small_categories(a, X, y)),
        (SINGULAR, not fit["singular"]),
        (NOT_CONVERGED, fit["converged"] and not fit["separated"]),
        (LEVERAGE, leverage_ok(fit["max_leverage"], fit["max_share"], a.plan.min_group_size)),
    ]
    stats = [nobs, fit["deviance"], fit["null_deviance"], fit["llf"], fit["scale"], fit["iterations"],
             float(fit["converged"])]  # fmt: skip
    outs = [np.ones(p, dtype=np.int64), fit["beta"], fit["se"], np.array(stats, dtype=float)]
    return [(c, int(bool(ok))) for c, ok in flags], [np.nan_to_num(np.asarray(o)) for o in outs]


def revealed(a: Analysis, values: list[np.ndarray], withheld: int) -> Revealed:
    """Return the Revealed of the reconstructed outputs (term_ok, estimate, std_error, fit)."""
    term_ok, est, se, fit = (np.asarray(v) for v in values)
    ok = np.rint(term_ok).astype(np.int64)
    summary = {name: float(v) for name, v in zip(FIT_STATS, np.asarray(fit, dtype=float), strict=True)}
    return Revealed(ok, {"estimate": (ok, np.asarray(est, float)), "std_error": (ok, np.asarray(se, float))},
                    int(withheld), summary)  # fmt: skip


Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def frame(a: Analysis, rev: Revealed) -> pd.DataFrame:
    """Return the result: one row per term, and the fit statistics in ``.attrs`` (docs/plans.md)."""
    from scipy.stats import norm

    node, k = _glm(a), a.plan.min_group_size
    ts = terms(a)
    p = len(ts)
    released = int(rev.withheld) == REVEALED and bool(np.all(rev.cell_ok == REVEALED))
    est = rev.stats["estimate"][1].astype(float)
    se = rev.stats["std_error"][1].astype(float)
    with np.errstate(all="ignore"):
        z = np.where(se > 0, est / np.where(se > 0, se, 1.0), np.nan)
        pv = 2 * norm.sf(np.abs(z))
    cols = {"estimate": est, "std_error": se, "statistic": z, "p_value": pv,
            "ci_low": est - Z95 * se, "ci_high": est + Z95 * se}  # fmt: skip
    data: dict[str, Any] = {"term": pd.array([t.name for t in ts], dtype="string")}
    for name, v in cols.items():
        arr = pd.array(np.asarray(v, dtype=float), dtype="Float64")
        if not released:
            arr[:] = pd.NA
        data[name] = arr
    reason = None if released else "the whole result: " + reason_text(rev.withheld, k)
    data["suppressed"] = np.full(p, not released)
    data["reason"] = pd.Series([reason] * p, dtype=object)
    df = pd.DataFrame(data)
    fs = rev.summary
    nobs = round(float(fs.get("n", 0.0)))
    attrs: dict[str, Any] = {
        "n": nobs, "df_resid": nobs - p, "deviance": fs.get("deviance"), "null_deviance": fs.get("null_deviance"),
        "llf": fs.get("llf"), "aic": -2 * fs["llf"] + 2 * p if "llf" in fs else None, "scale": fs.get("scale"),
        "iterations": round(float(fs.get("iterations", 0.0))), "converged": bool(fs.get("converged", 0.0) > 0.5),
        "family": node.family,
    }  # fmt: skip
    if not released:
        attrs = {key: (None if key != "family" else v) for key, v in attrs.items()}
        attrs["withheld"] = reason_text(rev.withheld, k)
    df.attrs.update(attrs)
    df.attrs["min_group_size"] = k
    return df
