"""The generalised linear model summary (plan.nodes.Glm): gaussian, binomial (logit) and poisson (log).

The public, data-independent parts (terms, outputs, constants, the schema check) and the plain
executor's NumPy fit live here; the MPC kernel is `compile/kernels/glm.py`. Both executors follow
the same algorithm in the same order (docs/plans.md, "Models"): standardise the terms over the used
rows, a fixed number of IRLS steps from β = 0, the checks, back-transform; so MPC equals plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...exceptions import OperationNotDefinedError, PlanError
from ...plan import nodes as n
from ...plan.types import DType, Schema
from ...result import Revealed
from ..analyze import RIGHT_SUFFIX, Analysis

# --- constants shared by both executors --------------------------------------

ITERS = {"gaussian": 2, "binomial": 12, "poisson": 12}  # IRLS iterations, public and fixed
TOL = 1e-8  # converged when |dev_t - dev_{t-1}| / (|dev_t| + 0.1) < TOL (statsmodels' rule)
MAX_STD_COEF = 30.0  # |b_j| on the standardised scale above this: separation -> NOT_CONVERGED
SINGULAR_PIVOT = 1e-8  # smallest Cholesky pivot of A = Z'WZ/n (standardised) below this -> SINGULAR
CONSTANT_SD = 1e-9  # a term whose population sd over the used rows is below this -> SINGULAR
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


def plain(a: Analysis, rows: pd.DataFrame) -> tuple[list[tuple[int, Any]], list[np.ndarray]]:
    raise OperationNotDefinedError("not implemented yet")


def revealed(a: Analysis, values: list[np.ndarray], withheld: int) -> Revealed:
    raise OperationNotDefinedError("not implemented yet")


def frame(a: Analysis, rev: Revealed) -> pd.DataFrame:
    raise OperationNotDefinedError("not implemented yet")
