"""Evaluate plan expressions on secret columns.

Null semantics follow SQL: arithmetic and comparisons with a missing operand are
missing; and/or use Kleene logic; a filter keeps a row only where its predicate
is true. Categoricals are one-hot, so comparing one to a literal selects a column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from ...exceptions import OperationNotDefinedError
from ...plan import nodes as n
from ...plan.types import union_domain
from ...plan.visitor import Visitor
from .core import F64, I64, SCol, SFrame, b2i, select

EPOCH = dt.date(1970, 1, 1)

_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "eq": jnp.equal, "ne": jnp.not_equal, "lt": jnp.less,
    "le": jnp.less_equal, "gt": jnp.greater, "ge": jnp.greater_equal,
}  # fmt: skip
_ARITH: dict[str, Callable[[Any, Any], Any]] = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply}
_LOGIC = ("and", "or")
# Every binary operator this executor has a rule for (truediv: x / 0 is missing).
BINARY_OPS = (*_ARITH, "truediv", *_CMP, *_LOGIC)


def _ones(nrow: int) -> Any:
    return jnp.ones((nrow,), dtype=I64)


def lit_col(value: n.LitValue, nrow: int) -> SCol:
    """Return a public literal as a column."""
    if value is None:
        return SCol("null", jnp.zeros((nrow,), dtype=I64), jnp.zeros((nrow,), dtype=I64))
    if isinstance(value, bool):
        return SCol("bool", _ones(nrow), jnp.full((nrow,), int(value), dtype=I64))
    if isinstance(value, int):
        return SCol("int", _ones(nrow), jnp.full((nrow,), value, dtype=I64))
    if isinstance(value, float):
        return SCol("float", _ones(nrow), jnp.full((nrow,), value, dtype=F64))
    if isinstance(value, str):
        return SCol("str", _ones(nrow), oh=jnp.ones((nrow, 1), dtype=I64), domain=(value,))
    days = (value - EPOCH).days
    return SCol("date", _ones(nrow), jnp.full((nrow,), days, dtype=I64))


def str_ok(c: SCol) -> Any:
    """Return the validity of a categorical: 1 where its one-hot row has a one."""
    return c.oh.sum(axis=1)


def align(c: SCol, domain: tuple[Any, ...]) -> Any:
    """Return c's one-hot matrix re-indexed onto a (super-)domain; absent values are zeros."""
    if tuple(c.domain or ()) == tuple(domain):
        return c.oh  # NB: no copy; a one-hot over a million rows is large
    nrow = c.oh.shape[0]
    src = {v: j for j, v in enumerate(c.domain or ())}
    cols = [c.oh[:, src[v]] if v in src else jnp.zeros((nrow,), dtype=I64) for v in domain]
    return jnp.stack(cols, axis=1)


def _boolean(v: Any, ok: Any) -> SCol:
    return SCol("bool", ok, v * ok)


class ExprEval(Visitor[SCol]):
    """Evaluate each expression node on the secret columns of one frame."""

    name = "the MPC executor"

    def __init__(self, frame: SFrame) -> None:
        self.f = frame

    def __call__(self, e: n.Expr) -> SCol:
        return self.visit(e)

    def visit_Col(self, e: n.Col) -> SCol:
        return self.f.cols[e.name]

    def visit_Lit(self, e: n.Lit) -> SCol:
        return lit_col(e.value, self.f.n)

    def visit_BinOp(self, e: n.BinOp) -> SCol:
        if e.op not in BINARY_OPS:
            msg = f"{self.name} has no rule for the operator {e.op!r}"
            raise OperationNotDefinedError(msg)
        a, b = self(e.left), self(e.right)
        if e.op in _LOGIC:
            return self._logic(e.op, a, b)
        ok = a.ok * b.ok
        if "str" in (a.kind, b.kind):
            if "null" in (a.kind, b.kind):
                return _boolean(jnp.zeros_like(ok), jnp.zeros_like(ok))
            dom = union_domain(a.domain, b.domain)
            ok = str_ok(a) * str_ok(b)
            eq = (align(a, dom) * align(b, dom)).sum(axis=1)
            return _boolean(eq if e.op == "eq" else ok - eq, ok)
        if e.op in _ARITH:
            return SCol("float" if "float" in (a.kind, b.kind) else "int", ok,
                        _ARITH[e.op](a.v, b.v))  # fmt: skip
        if e.op == "truediv":
            zero = b2i(b.v == 0)
            den = select(zero, jnp.ones_like(b.v), b.v).astype(F64)
            return SCol("float", ok * (1 - zero), a.v.astype(F64) / den)
        if a.kind == "bool" and b.kind == "bool":
            eq = a.v * b.v + (1 - a.v) * (1 - b.v)
            return _boolean(eq if e.op == "eq" else 1 - eq, ok)
        return _boolean(b2i(_CMP[e.op](a.v, b.v)), ok)

    def _logic(self, op: str, a: SCol, b: SCol) -> SCol:
        ta, fa = a.v * a.ok, (1 - a.v) * a.ok
        tb, fb = b.v * b.ok, (1 - b.v) * b.ok
        if op == "and":
            t, f = ta * tb, fa + fb - fa * fb
        else:
            t, f = ta + tb - ta * tb, fa * fb
        return SCol("bool", t + f, t)

    def visit_Not(self, e: n.Not) -> SCol:
        a = self(e.arg)
        return SCol("bool", a.ok, (1 - a.v) * a.ok)

    def visit_IsIn(self, e: n.IsIn) -> SCol:
        a = self(e.arg)
        vals = [v for v in e.values if v is not None]
        if a.kind == "str":
            idx = [j for j, v in enumerate(a.domain or ()) if v in vals]
            hit = a.oh[:, idx].sum(axis=1) if idx else jnp.zeros((self.f.n,), dtype=I64)
            return _boolean(hit, str_ok(a))
        if a.oh is not None and a.domain is not None:
            idx = [j for j, v in enumerate(a.domain) if v in vals]
            hit = a.oh[:, idx].sum(axis=1) if idx else jnp.zeros((self.f.n,), dtype=I64)
            return _boolean(hit, a.ok)
        if not vals:
            return _boolean(jnp.zeros_like(a.ok), a.ok)
        if a.kind == "date":
            vals = [(v - EPOCH).days for v in vals if isinstance(v, dt.date)]
        consts = jnp.asarray(np.array(vals, dtype=np.float64 if a.kind == "float" else np.int64))
        hit = b2i(a.v[:, None] == consts[None, :]).sum(axis=1)
        return _boolean(hit, a.ok)

    def visit_Between(self, e: n.Between) -> SCol:
        a, lo, hi = self(e.arg), self(e.lower), self(e.upper)
        v = b2i(a.v >= lo.v) * b2i(a.v <= hi.v)
        return _boolean(v, a.ok * lo.ok * hi.ok)

    def visit_IsNull(self, e: n.IsNull) -> SCol:
        a = self(e.arg)
        ok = str_ok(a) if a.kind == "str" else a.ok
        return SCol("bool", jnp.ones_like(ok), 1 - ok)

    def visit_FillNull(self, e: n.FillNull) -> SCol:
        a, b = self(e.arg), self(e.value)
        if a.kind == "str":
            dom = union_domain(a.domain, b.domain)
            oa, ob = align(a, dom), align(b, dom)
            miss = 1 - str_ok(a)
            return SCol("str", jnp.ones_like(miss), oh=oa + miss[:, None] * ob, domain=dom)
        kind = "float" if "float" in (a.kind, b.kind) else a.kind
        v = select(a.ok, a.v, b.v)
        return SCol(kind, a.ok + (1 - a.ok) * b.ok, v)

    def visit_Cut(self, e: n.Cut) -> SCol:
        a = self(e.arg)
        if a.kind == "int":
            # NB: for integers x > b  ⇔  x > floor(b): stay in the integer domain.
            br = jnp.asarray(np.floor(np.array(e.breaks)).astype(np.int64))
        else:
            br = jnp.asarray(np.array(e.breaks, dtype=np.float64))
        steps = b2i(a.v[:, None] > br[None, :])
        parts = [1 - steps[:, :1]]
        if steps.shape[1] > 1:
            parts.append(steps[:, :-1] - steps[:, 1:])
        parts.append(steps[:, -1:])
        oh = jnp.concatenate(parts, axis=1) * a.ok[:, None]
        return SCol("str", a.ok, oh=oh, domain=e.labels)

    def visit_DatePart(self, e: n.DatePart) -> SCol:
        a = self(e.arg)
        if e.part not in a.parts:
            msg = f"MPC executor: .dt.{e.part}() is supported on source date columns only"
            raise OperationNotDefinedError(msg)
        return a.parts[e.part]

    def visit_AgeAt(self, e: n.AgeAt) -> SCol:
        a = self(e.arg)
        if "year" not in a.parts or "md" not in a.parts:
            msg = "MPC executor: age_at() is supported on source date columns only"
            raise OperationNotDefinedError(msg)
        md = e.date.month * 100 + e.date.day
        later = b2i(a.parts["md"].v > md)
        return SCol("int", a.ok, e.date.year - a.parts["year"].v - later)

    def visit_When(self, e: n.When) -> SCol:
        out = self(e.otherwise)
        for cond, value in reversed(e.branches):
            c = self(cond)
            t = c.v * c.ok
            val = self(value)
            out = _choose(t, val, out)
        return out


def _choose(t: Any, a: SCol, b: SCol) -> SCol:
    """Return t ? a : b for columns of compatible kinds."""
    if a.kind == "null":
        a = _null_like(b)
    if b.kind == "null":
        b = _null_like(a)
    if a.kind == "str":
        dom = union_domain(a.domain, b.domain)
        return SCol("str", select(t, str_ok(a), str_ok(b)),
                    oh=select(t, align(a, dom), align(b, dom)), domain=dom)  # fmt: skip
    kind = "float" if "float" in (a.kind, b.kind) else a.kind
    av, bv = (a.v.astype(F64), b.v.astype(F64)) if kind == "float" else (a.v, b.v)
    return SCol(kind, select(t, a.ok, b.ok), select(t, av, bv))


def _null_like(c: SCol) -> SCol:
    z = jnp.zeros_like(c.ok)
    if c.kind == "str":
        return SCol("str", z, oh=jnp.zeros_like(c.oh), domain=c.domain)
    return SCol(c.kind, z, jnp.zeros_like(c.v))
