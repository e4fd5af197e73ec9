"""The SPU compiler: a checked plan becomes one JAX function over secret inputs.

The function takes the owners' encoded input arrays (see werkplaats.mpc.encode)
and returns only disclosure-controlled per-cell outputs. Every party builds the
same function from the same plan and public metadata; nothing here branches on
secret data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jax.numpy as jnp

from ..exceptions import OperationNotDefinedError
from ..plan import nodes as n
from ..plan.types import column_dtype, date_part_domain
from ..plan.visitor import Visitor
from ..result import COMPLEMENT, REGISTER, REVEALED
from . import disclosure
from .analyze import Analysis, join_renames
from .kernels.aggregate import aggregate
from .kernels.cellkey import CountRule, combine_key, group_key_is_person_key, person_key_column, record_keys
from .kernels.core import I64, SCol, SFrame, b2i
from .kernels.expr import ExprEval
from .kernels.groupby import group_by_secret_key
from .kernels.join import join
from .kernels.margins import Margins
from .layout import Slot
from .ranges import statically_in_range


def output_kinds(a: Analysis) -> list[tuple[str, str]]:
    """Return the program's outputs as (name, kind), in order."""
    root = a.plan.root
    if isinstance(root, n.Summary):
        from .models import summary_module

        return [("__withheld", "int"), *summary_module(root).output_kinds(a)]
    assert isinstance(root, n.Aggregate)
    out = [("__withheld", "int"), ("__cell_ok", "int")]  # NB: __withheld: the whole result (Revealed.withheld)
    for name, _ in root.aggs:
        kind = a.schema(root)[name].kind
        out += [(f"{name}__ok", "int"), (name, "int" if kind == "date" else kind)]
    return out


class SpuCompiler(Visitor[SFrame]):
    """Turn each relation node into a secret frame, from the input arrays."""

    name = "the MPC executor"

    def __init__(self, a: Analysis, slots: list[Slot], inputs: list[Any], rows: dict[str, int],
                 key_parts: list[Any] | None = None) -> None:  # fmt: skip
        self.a = a
        # NB: rule 6: the perturbation key K, from the engines' secret parts (kernels/cellkey.py)
        self.key = combine_key(key_parts) if key_parts else None
        self.inputs: dict[tuple[str, str, str], Any] = {
            (s.dataset, s.column, s.encoding): x for s, x in zip(slots, inputs, strict=True)
        }
        self.rows = {ds: (max(real, 1), real) for ds, real in rows.items()}
        # (code, passes) flags of the whole result, collected while compiling: rule 5 (complement), rule 9 (register)
        self.whole: list[tuple[int, Any]] = []

    def visit_Source(self, r: n.Source) -> SFrame:
        ds = r.dataset
        nrow, real = self.rows.get(ds, (1, 0))
        cols = {}
        for c in r.columns or ():
            t = column_dtype(self.a.catalog[ds].column(c))
            get = self.inputs.get
            if t.kind == "str":
                oh = self.inputs[(ds, c, "oh")]
                cols[c] = SCol("str", oh.sum(axis=1), oh=oh, domain=t.domain)
                continue
            ok, v = self.inputs[(ds, c, "ok")], self.inputs[(ds, c, "v")]
            col = SCol(t.kind, ok, v, oh=get((ds, c, "oh")), domain=t.domain)
            for p in ("year", "md", "iso_week", "month"):
                if (ds, c, p) in self.inputs:
                    col.parts[p] = SCol("int", ok, self.inputs[(ds, c, p)], oh=get((ds, c, p + "_oh")),
                                        domain=date_part_domain(p, t.years))  # fmt: skip
            cols[c] = col
        mask = jnp.ones((nrow,), dtype=I64) if real else jnp.zeros((nrow,), dtype=I64)
        pk = person_key_column(self.a, ds, r.columns) if self.key is not None else None
        return SFrame(nrow, mask, cols, rk=record_keys(cols[pk], self.key) if pk is not None else None)

    def visit_Filter(self, r: n.Filter) -> SFrame:
        f = self.visit(r.input)
        p = ExprEval(f)(r.predicate)
        mask = f.mask * p.v * p.ok
        self.complement(f.mask, mask)
        return replace(f, mask=mask)

    def visit_WithColumns(self, r: n.WithColumns) -> SFrame:
        f = self.visit(r.input)
        ev = ExprEval(f)
        cols = dict(f.cols)
        for name, e in r.exprs:
            cols[name] = ev(e)
        return replace(f, cols=cols)

    def visit_Select(self, r: n.Select) -> SFrame:
        f = self.visit(r.input)
        ev = ExprEval(f)
        return replace(f, cols={name: ev(e) for name, e in r.exprs})

    def visit_Join(self, r: n.Join) -> SFrame:
        left, right = self.visit(r.left), self.visit(r.right)
        ren = join_renames(self.a.schema(r.left), self.a.schema(r.right), r.on)
        out = join(left, right, r.on, r.how, ren)
        if r.how == "inner":
            self.complement(left.mask, out.mask)  # NB: the left rows without a match (rule 5)
            if disclosure.unique_left(self.a, r):
                self.complement(right.mask, out.mask)  # NB: and the right rows without one
        return out

    def complement(self, before: Any, after: Any) -> None:
        """Add rule 5's flag for a filter or inner join: its input's and output's row masks (padding is 0)."""
        if self.a.rules.complement:
            ok = disclosure.complement_ok(before.sum(), after.sum(), self.a.plan.min_group_size, _ge)
            self.whole.append((COMPLEMENT, ok))

    def visit_Aggregate(self, r: n.Aggregate) -> SFrame:
        if len(r.keys) != 1:
            msg = "MPC executor: an intermediate group_by needs exactly one key (e.g. the person key)"
            raise OperationNotDefinedError(msg)
        f = self.visit(r.input)
        kinds = {k: t.kind for k, t in self.a.schema(r).items()}
        out = group_by_secret_key(f, r.keys[0], r.aggs, kinds)
        if self.key is not None and group_key_is_person_key(self.a, r):  # NB: rule 6: one record per person again
            out = replace(out, rk=record_keys(out.cols[r.keys[0]], self.key))
        return out

    def visit_Glm(self, r: n.Glm) -> SFrame:
        return self.visit(r.input)  # NB: a summary is only a root: program() computes it from its input

    def visit_Corr(self, r: n.Corr) -> SFrame:
        return self.visit(r.input)

    def visit_Standardize(self, r: n.Standardize) -> SFrame:
        return self.visit(r.input)

    def program(self) -> list[Any]:
        """Return the program's outputs (see output_kinds) for the plan's final aggregate or summary."""
        root = self.a.plan.root
        if isinstance(root, n.Summary):
            from .models import summary_module

            flags, outs = summary_module(root).mpc(self.a, self.visit(root.input))
            return withhold_whole([*self.whole, *flags], outs)
        assert isinstance(root, n.Aggregate)
        f = self.visit(root.input)
        schema = self.a.schema(root.input)
        domains = [schema[k].grouping_domain or () for k in root.keys]
        kinds = {k: t.kind for k, t in self.a.schema(root).items()}
        known = statically_in_range(self.a, f.n)  # NB: f.n is public: the padded row count
        outs = aggregate(f, root.keys, domains, root.aggs, kinds, self.a.plan.min_group_size, known,
                         count_rule=CountRule(self.a), rules=disclosure.stat_rules(self.a),
                         margins=Margins(self.a))  # fmt: skip
        # NB: the whole result's flags (self.whole) are complete here: rule 9 appends its own above this line
        if self.a.register:  # NB: rule 9: registered cells recomputed from the same inputs (kernels/register.py)
            from .kernels.register import register_passes

            self.whole.append((REGISTER, register_passes(self)))
        return withhold_whole(self.whole, outs)


def withhold_whole(flags: list[tuple[int, Any]], outs: list[Any]) -> list[Any]:
    """Return [withheld, *outs]: the whole result's code, and every cell flag and value zeroed unless REVEALED.

    NB: the code derives from the cell flags even without flags, so that it is a secret like every output.
    """
    code = disclosure.first_failure(flags) + outs[0].sum() * 0
    keep = b2i(code == REVEALED)
    return [code, *(o * keep.astype(o.dtype) for o in outs)]


def _ge(x: Any, t: int) -> Any:
    return b2i(x >= t)


def build_program(a: Analysis, slots: list[Slot], rows: dict[str, int]) -> Callable[..., tuple[Any, ...]]:
    """Return the JAX function of a plan: encoded inputs in, suppressed per-cell outputs out.

    rows gives each dataset's real row count (public metadata).
    """

    def program(*inputs: Any) -> tuple[Any, ...]:
        # NB: after the slots, the engines' three parts of the perturbation key when the plan needs it (key_inputs)
        return tuple(SpuCompiler(a, slots, list(inputs[: len(slots)]), rows, list(inputs[len(slots) :])).program())

    return program
