"""Rule 9 inside the MPC: compare a plan's cells with registered released cells, row by row, obliviously.

For the new plan N and each other registered cell definition R of the same universe
(`compile/register.py`, `checks`), the program recomputes R's final-aggregate input from the
same shared inputs, builds both membership matrices over the rows of the universe's base (M_N:
rows × N's cells, M_R: rows × R's cells), and counts per pair of cells ``|A ∩ B| = M_N.T @ M_R``
and the symmetric difference ``|A| + |B| − 2|A ∩ B|``. The result passes when no cell N's cell
rule releases differs from a released cell of R by between 1 and ``t`` rows, where ``t`` =
max(k, the release's k) − 1 of the strictest registered release of that cell, 0 where none is
registered; one secret 0/1 comes out, which the program folds into the whole result's flag
(REGISTER). Registered releases of N's own cell definition (the same query again) need no second
membership: cells of one definition are disjoint, so two of them differ by the sum of their sizes.

The definitions R are compiled in (they are computations); the thresholds ``t`` are the
program's public inputs (`mpc/party.public_shares`), so another release of a registered
definition, or more of them, changes no program (`mpc/programs.py`'s cache key holds the
definitions only). A bucketed program compiles them in as constants.

Rows are aligned by each row's position in the base (a hidden ``__rid`` column carried along
the spine: Filter, WithColumns, Select, a join's left side). Without a join on the spine the
rows are already in base order; with one, one oblivious sort on the row id puts them back.

Security model: every array here is secret but the thresholds; shapes, the cells' key domains
and which registered cells were released (the thresholds) are public. Nothing branches on
secret data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp

from ...exceptions import OperationNotDefinedError
from ...plan import nodes as n
from ..analyze import Analysis, join_renames
from ..register import RID, checks, spine, spine_has_join
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


def register_partial(compiler: Any, f: SFrame) -> dict[str, tuple[Any, str]]:
    """Return rule 9's per-cell sums over the rows of f, the plan's final aggregate's input: the plan's cell
    sizes, and per other registered definition its cells' sizes and the intersections. They add up over
    buckets (a bucket holds whole base rows)."""
    a: Analysis = compiler.a
    ch = checks(a)
    if not ch.own:
        return {}
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    schema = a.schema(root.input)
    domains = [schema[k].grouping_domain or () for k in root.keys]
    # NB: each row is in one cell, and a spine row is one base row: the sizes are those of the aligned membership
    out: dict[str, tuple[Any, str]] = {"reg:n": (Membership(f, root.keys, domains).matrix_sums([f.mask])[0], "add")}
    if not ch.others:
        return out
    mn = aligned_membership(compiler, a)
    for i, ra in enumerate(ch.others):
        mr = aligned_membership(compiler, ra)
        if mr.shape[0] != mn.shape[0]:
            msg = "MPC executor: a registered table of the same universe has another number of base rows"
            raise OperationNotDefinedError(msg)
        out[f"reg:{i}:r"] = (mr.sum(axis=0), "add")
        out[f"reg:{i}:inter"] = (mn.T @ mr, "add")
    return out


BIG = 2**41  # NB: above any cell size (rows are below 2^40): "no such cell"


def _own_bad(size: Any, shown: Any, t: Any) -> Any:
    """Return how many released cells j of the plan's own definition have a shown cell i ≠ j within t_j rows.

    Cells of one definition are disjoint, so cells i ≠ j differ by |i| + |j| rows (≥ k when i is
    shown) and a cell from itself by 0: the pairwise check reduces to the smallest shown size
    other than j's own, from a prefix and a suffix minimum (no cells × cells comparisons).
    """
    a = shown * size + (1 - shown) * BIG
    big = jnp.full((1,), BIG, dtype=I64)
    pre = jax.lax.associative_scan(jnp.minimum, a)
    suf = jax.lax.associative_scan(jnp.minimum, a, reverse=True)
    other = jnp.minimum(jnp.concatenate([big, pre[:-1]]), jnp.concatenate([suf[1:], big]))
    return b2i(other + size <= t).sum()  # NB: t = 0 where no release is registered: never (other + size ≥ 1)


def register_finish(a: Analysis, sums: dict[str, Any], thresholds: Any = None) -> Any:
    """Return a secret 0/1 from `register_partial`'s (combined) sums: 1 when no cell the plan's cell rule
    releases differs from a registered released cell by between 1 and k − 1 rows.

    thresholds: `register.Checks.thresholds` as the program's public inputs; None: compiled in as constants.
    """
    ch = checks(a)
    if not ch.own:
        return jnp.ones((), dtype=I64)
    ts = [jnp.asarray(t) for t in ch.thresholds] if thresholds is None else list(thresholds)
    if len(ts) != 1 + len(ch.others):
        msg = "MPC executor: rule 9's thresholds do not match the registered definitions"
        raise OperationNotDefinedError(msg)
    size_n = sums["reg:n"]
    shown = b2i(size_n >= a.plan.min_group_size)  # NB: the cells the cell rule releases
    bad = _own_bad(size_n, shown, ts[0])
    for i in range(len(ch.others)):
        sd = size_n[:, None] + sums[f"reg:{i}:r"][None, :] - 2 * sums[f"reg:{i}:inter"]
        bad = bad + (shown[:, None] * b2i(sd >= 1) * b2i(sd <= ts[i + 1][None, :])).sum()
    return b2i(bad == 0)
