"""Rule 9 inside the MPC: compare a plan's cells with registered released cells, row by row, obliviously.

For the new plan N and each registered table R of the same universe (`compile/register.py`),
the program recomputes R's final-aggregate input from the same shared inputs, builds both
membership matrices over the rows of the universe's base (M_N: rows × N's cells, M_R: rows ×
R's released cells), and counts per pair of cells ``|A ∩ B| = M_N.T @ M_R`` and the symmetric
difference ``|A| + |B| − 2|A ∩ B|``. The result passes when no cell N's cell rule releases
differs from a released cell of R by between 1 and k − 1 rows; one secret 0/1 comes out, which
the program folds into the whole result's flag (REGISTER).

Rows are aligned by each row's position in the base (a hidden ``__rid`` column carried along
the spine: Filter, WithColumns, Select, a join's left side). Without a join on the spine the
rows are already in base order; with one, one oblivious sort on the row id puts them back.

Security model: every array here is secret; shapes, the cells' key domains and which
registered cells were released are public. Nothing branches on secret data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp

from ...exceptions import OperationNotDefinedError
from ...plan import nodes as n
from ..analyze import Analysis, join_renames
from ..register import RID, spine, spine_has_join
from .aggregate import Membership
from .core import I64, ROW_BITS, SCol, SFrame, b2i
from .expr import ExprEval
from .join import join


class _RidMixin:
    """Carry each spine row's position in the base as the hidden column RID (ok = 1 on real spine rows)."""

    base: n.Relation
    rid_on: bool
    base_rows: int

    def _with_rid(self, f: SFrame) -> SFrame:
        self.base_rows = f.n
        rid = SCol("int", jnp.ones((f.n,), dtype=I64), jnp.arange(f.n, dtype=I64))
        return replace(f, cols={**f.cols, RID: rid})

    def visit_Source(self, r: n.Source) -> SFrame:
        f = super().visit_Source(r)  # type: ignore[misc]
        return self._with_rid(f) if r is self.base and self.rid_on else f

    def visit_Select(self, r: n.Select) -> SFrame:
        if not self.rid_on:
            return super().visit_Select(r)  # type: ignore[misc]
        f = self.visit(r.input)  # type: ignore[attr-defined]
        ev = ExprEval(f)
        return replace(f, cols={**{name: ev(e) for name, e in r.exprs}, RID: f.cols[RID]})

    def visit_Join(self, r: n.Join) -> SFrame:
        if not self.rid_on:
            return super().visit_Join(r)  # type: ignore[misc]
        left = self.visit(r.left)  # type: ignore[attr-defined]
        self.rid_on = False
        try:
            right = self.visit(r.right)  # type: ignore[attr-defined]
        finally:
            self.rid_on = True
        a: Analysis = self.a  # type: ignore[attr-defined]
        ren = join_renames(a.schema(r.left), a.schema(r.right), r.on)
        return join(left, right, r.on, r.how, ren)  # NB: the right rows get RID's ok = 0 (padded)

    def visit_Aggregate(self, r: n.Aggregate) -> SFrame:
        if not (r is self.base and self.rid_on):
            return super().visit_Aggregate(r)  # type: ignore[misc]
        self.rid_on = False
        try:
            f = super().visit_Aggregate(r)  # type: ignore[misc]
        finally:
            self.rid_on = True
        return self._with_rid(f)  # NB: same key over the same rows: group positions agree (compile/register.py)


_RID_CLASSES: dict[type, type] = {}


def _rid_class(cls: type) -> type:
    """Return the compiler class cls with row ids (one class per compiler class)."""
    if cls not in _RID_CLASSES:
        _RID_CLASSES[cls] = type("Rid" + cls.__name__, (_RidMixin, cls), {})
    return _RID_CLASSES[cls]


def _rid_compiler(compiler: Any, a: Analysis) -> Any:
    """Return a copy of the SPU compiler that compiles a's relations with row ids, over the same inputs."""
    cls = _rid_class(type(compiler))
    rc: Any = object.__new__(cls)
    for name, value in vars(compiler).items():  # NB: per-run lists (e.g. whole-result flags) are not shared
        setattr(rc, name, [] if isinstance(value, list) else value)
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    rc.a, rc.base, rc.rid_on, rc.base_rows = a, spine(root.input)[-1], True, 0
    return rc


def aligned_membership(compiler: Any, a: Analysis) -> Any:
    """Return the base rows × cells membership of a checked plan's final aggregate (0/1, masked)."""
    rc = _rid_compiler(compiler, a)
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    f = rc.visit(root.input)
    schema = a.schema(root.input)
    domains = [schema[k].grouping_domain or () for k in root.keys]
    m = Membership(f, root.keys, domains).matrix() * f.mask[:, None]
    if not spine_has_join(root.input):
        return m  # NB: no join on the spine: rows are the base's, in its order
    rid = f.cols[RID]
    packed = ((1 - rid.ok) * 2**ROW_BITS + rid.v) * 2**ROW_BITS + jnp.arange(f.n, dtype=I64)
    out = jax.lax.sort([packed, *(m[:, j] for j in range(m.shape[1]))], num_keys=1)
    return jnp.stack(out[1:], axis=1)[: rc.base_rows]  # NB: every base row once, in order; right rows after


def register_partial(compiler: Any) -> dict[str, tuple[Any, str]]:
    """Return rule 9's per-cell sums over the rows: the plan's cell sizes, and per registered table its
    released cells' sizes and the intersections. They add up over buckets (a bucket holds whole base rows)."""
    a: Analysis = compiler.a
    if not a.register:
        return {}
    mn = aligned_membership(compiler, a)
    out: dict[str, tuple[Any, str]] = {"reg:n": (mn.sum(axis=0), "add")}
    for i, reg in enumerate(a.register):
        mr = aligned_membership(compiler, reg.analysis)[:, jnp.asarray(reg.released)]
        if mr.shape[0] != mn.shape[0]:
            msg = "MPC executor: a registered table of the same universe has another number of base rows"
            raise OperationNotDefinedError(msg)
        out[f"reg:{i}:r"] = (mr.sum(axis=0), "add")
        out[f"reg:{i}:inter"] = (mn.T @ mr, "add")
    return out


def register_finish(a: Analysis, sums: dict[str, Any]) -> Any:
    """Return a secret 0/1 from `register_partial`'s (combined) sums: 1 when no cell the plan's cell rule
    releases differs from a registered released cell by between 1 and k − 1 rows."""
    if not a.register:
        return jnp.ones((), dtype=I64)
    k = a.plan.min_group_size
    size_n = sums["reg:n"]
    shown = b2i(size_n >= k)  # NB: the cells the cell rule releases
    bad: Any = jnp.zeros((), dtype=I64)
    for i, reg in enumerate(a.register):
        kk = max(k, reg.analysis.plan.min_group_size)
        sd = size_n[:, None] + sums[f"reg:{i}:r"][None, :] - 2 * sums[f"reg:{i}:inter"]
        bad = bad + (shown[:, None] * b2i(sd >= 1) * b2i(sd <= kk - 1)).sum()
    return b2i(bad == 0)


def register_passes(compiler: Any) -> Any:
    """Return a secret 0/1: 1 when no cell the plan's cell rule releases differs from a registered
    released cell by between 1 and k − 1 rows."""
    return register_finish(compiler.a, {name: v for name, (v, _) in register_partial(compiler).items()})
