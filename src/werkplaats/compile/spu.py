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
from ..result import COMPLEMENT, REGISTER, REVEALED, UNION, UNSORTED
from . import disclosure, order
from .analyze import Analysis, cell_union, join_renames
from .kernels.aggregate import Aggregation, Leaves, needs_second_pass, values
from .kernels.cellkey import CountRule, combine_key, group_key_is_person_key, person_key_column, record_keys
from .kernels.core import I64, SCol, SFrame, b2i
from .kernels.expr import ExprEval
from .kernels.groupby import group_by_secret_key
from .kernels.join import join
from .kernels.margins import Margins
from .kernels.merge import merge_join, use_merge
from .layout import ROW, Slot
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
        # NB: the owners ordered their rows for this analysis (compile/order.py); rule 9's compilers keep it
        self.order_a = a
        # NB: rule 6: the perturbation key K, from the engines' secret parts (kernels/cellkey.py)
        self.key = combine_key(key_parts) if key_parts else None
        self.inputs: dict[tuple[str, str, str], Any] = {
            (s.dataset, s.column, s.encoding): x for s, x in zip(slots, inputs, strict=True)
        }
        self.rows = {ds: (max(real, 1), real) for ds, real in rows.items()}
        # rule 5 (complement): each filter's and inner join's input and output row counts, collected while compiling
        self.counted: list[tuple[Any, Any]] = []
        # the union rule: each input's rows (persons) of a union whose rows reach no cell, on the whole result
        self.union_counted: list[Any] = []
        self.cell_union = cell_union(a.plan) if a.rules.complement else None  # NB: checked per cell instead
        # merge joins (kernels/merge.py): 1 where an input did not arrive sorted as its owner should have sent it
        self.unsorted: list[Any] = []

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
        mask = self.inputs.get((ds, ROW, "ok"))  # NB: a bucket's rows: 1 real, 0 padding (layout(bucketed=True))
        if mask is None:
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
        from .kernels.concat import hidden

        f = self.visit(r.input)
        ev = ExprEval(f)
        keep = {c: f.cols[c] for c in hidden(f)}  # NB: the union rule's columns, on their way to the cells
        return replace(f, cols={**{name: ev(e) for name, e in r.exprs}, **keep})

    def visit_Join(self, r: n.Join) -> SFrame:
        left, right = self.visit(r.left), self.visit(r.right)
        ren = join_renames(self.a.schema(r.left), self.a.schema(r.right), r.on)
        if order.merges(self.order_a, r) and use_merge(left.n + right.n):  # NB: public: plan and row counts
            out, sorted_ok = merge_join(left, right, r.on, r.how, ren)
            self.unsorted.append(1 - sorted_ok)  # NB: an owner that did not sort: the whole result is withheld
        else:
            out = join(left, right, r.on, r.how, ren)
        if r.how == "inner":
            self.complement(left.mask, out.mask)  # NB: the left rows without a match (rule 5)
            if disclosure.unique_left(self.a, r):
                self.complement(right.mask, out.mask)  # NB: and the right rows without one
        return out

    def complement(self, before: Any, after: Any) -> None:
        """Count rule 5's rows for a filter or inner join: its input's and output's row masks (padding is 0)."""
        if self.a.rules.complement:
            self.counted.append((before.sum(), after.sum()))

    def whole_leaves(self) -> Leaves:
        """Return rule 5's counts so far as partials ("whole:i": [before, after]); they add up over buckets.

        The whole result's flags come from them once combined (`whole_flags`).
        """
        out = {f"whole:{i}": (jnp.stack([b, a]), "add") for i, (b, a) in enumerate(self.counted)}
        out.update({f"union:{i}": (x, "add") for i, x in enumerate(self.union_counted)})
        if self.unsorted:
            out["unsorted"] = (sum(self.unsorted), "add")
        return out

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

    def visit_Concat(self, r: n.Concat) -> SFrame:
        from .kernels.concat import concat, distinct, hidden, tag_inputs, without_hidden  # NB: the union (H4)

        frames = [self.visit(i) for i in r.inputs]
        out = concat(frames, self.a.schema(r))
        if self.a.rules.complement:  # NB: the union rule: each input's part of a cell (or of the whole) is 0 or >= k
            out = tag_inputs(out, [f.n for f in frames])
        if r.distinct_on is not None:
            kept = distinct(out, r.distinct_on)
            self.complement(out.mask, kept.mask)  # NB: the rows distinct leaves out (rule 5)
            if self.key is not None:  # NB: rule 6: one record per person again, keyed by the kept row's person key
                kept = replace(kept, rk=record_keys(kept.cols[r.distinct_on], self.key))
            out = kept
        if r is not self.cell_union:  # NB: its rows reach no cell as they are: each input's whole part instead
            self.union_counted += [(out.mask * out.cols[c].ok).sum() for c in hidden(out)]
            out = without_hidden(out)
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
            return withhold_whole([*whole_flags(self.a, values(self.whole_leaves())), *flags], outs)
        assert isinstance(root, n.Aggregate)
        f = self.visit(root.input)
        passes = AggregatePasses(self.a, 1)
        p1 = values(passes.first(self, f))
        derived = passes.between(p1)
        p2 = values(passes.second(self, f, p1, derived)) if passes.two_pass else {}
        return passes.finish(p1, derived, p2)


UNKNOWN_ROWS_BOUND = 2**40  # NB: the rows bound of a bucketed program that is not told the bucket count


class AggregatePasses:
    """A plan's final aggregate as passes over the rows of its input frame (`kernels.aggregate.Aggregation`).

    One code path for both programs: the unbucketed program runs ``first``, ``between``,
    ``second`` and ``finish`` on one frame; the bucketed one (`compile.staged`) runs each pass
    per bucket and combines the partials before the next step. ``scale`` times a frame's
    padded rows bounds the whole job's rows (the bucket count; 1 unbucketed; None: unknown,
    so that every range is checked obliviously and counts round up to `UNKNOWN_ROWS_BOUND`).
    The partials include rule 5's counts and rule 9's sums; ``finish`` returns the outputs.
    """

    def __init__(self, a: Analysis, scale: int | None) -> None:
        root = a.plan.root
        assert isinstance(root, n.Aggregate)
        self.a, self.root, self.scale = a, root, scale
        self.rules = disclosure.stat_rules(a)
        self.agg: Aggregation | None = None
        self.bound = UNKNOWN_ROWS_BOUND

    @property
    def two_pass(self) -> bool:
        """Whether a second pass over the rows is needed (variances, rule 4's rounded extremes)."""
        none = disclosure.StatRule()
        return any(needs_second_pass(agg, self.rules.get(name, none)) for name, agg in self.root.aggs)

    def aggregation(self, f: SFrame) -> Aggregation:
        """Return the aggregation (made at the first pass's trace, from the frame's public row count)."""
        if self.agg is None:
            a, root = self.a, self.root
            schema = a.schema(root.input)
            domains = [schema[k].grouping_domain or () for k in root.keys]
            kinds = {k: t.kind for k, t in a.schema(root).items()}
            known: frozenset[str] = frozenset()
            if self.scale is not None:
                self.bound = self.scale * f.n  # NB: public: the whole job's padded rows bound its real rows
                known = statically_in_range(a, self.bound)
            self.agg = Aggregation(root.keys, domains, root.aggs, kinds, a.plan.min_group_size, known,
                                   count_rule=CountRule(a), margins=Margins(a), rules=self.rules)  # fmt: skip
        return self.agg

    def first(self, compiler: SpuCompiler, f: SFrame) -> Leaves:
        """Return the first pass's partials over the frame f that compiler built (and rules 9 and 5's)."""
        out = self.aggregation(f).first(f)
        if self.a.register:  # NB: rule 9: registered cells recomputed from the same inputs (kernels/register.py)
            from .kernels.register import register_partial

            out.update(register_partial(compiler))
        out.update(compiler.whole_leaves())
        return out

    def between(self, p1: dict[str, Any]) -> dict[str, Any]:
        """Return the per-cell values the second pass needs, from the combined first pass."""
        assert self.agg is not None, "the first pass is traced first"
        return self.agg.between(p1)

    def second(self, compiler: SpuCompiler, f: SFrame, p1: dict[str, Any], derived: dict[str, Any]) -> Leaves:
        """Return the second pass's partials over the frame f."""
        del compiler
        return self.aggregation(f).second(f, p1, derived)

    def finish(self, p1: dict[str, Any], derived: dict[str, Any], p2: dict[str, Any]) -> list[Any]:
        """Return the program's outputs ([__withheld, __cell_ok, ...]) from the combined partials."""
        assert self.agg is not None, "the first pass is traced first"
        outs = self.agg.finish(p1, derived, p2, self.bound)
        flags = whole_flags(self.a, p1)
        if self.a.register:
            from .kernels.register import register_finish

            flags.append((REGISTER, register_finish(self.a, p1)))
        return withhold_whole(flags, outs)


def whole_flags(a: Analysis, combined: dict[str, Any]) -> list[tuple[int, Any]]:
    """Return rule 5's flags of the whole result from the combined counts (`SpuCompiler.whole_leaves`), in order."""
    out: list[tuple[int, Any]] = []
    i = 0
    while f"whole:{i}" in combined:
        v = combined[f"whole:{i}"]
        out.append((COMPLEMENT, disclosure.complement_ok(v[0], v[1], a.plan.min_group_size, _ge)))
        i += 1
    i = 0
    while f"union:{i}" in combined:  # NB: the union rule on the whole result: each input adds 0 or >= k
        out.append((UNION, disclosure.complement_ok(combined[f"union:{i}"], 0, a.plan.min_group_size, _ge)))
        i += 1
    if "unsorted" in combined:  # NB: a merge join's inputs were not sorted (kernels/merge.py): nothing is released
        out.insert(0, (UNSORTED, 1 - _ge(combined["unsorted"], 1)))
    return out


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

    rows gives each dataset's real row count (public metadata). The bucketed program is
    `compile.staged.build_staged`; both run the same passes (`AggregatePasses`).
    """

    def program(*inputs: Any) -> tuple[Any, ...]:
        # NB: after the slots, the engines' three parts of the perturbation key when the plan needs it (key_inputs)
        return tuple(SpuCompiler(a, slots, list(inputs[: len(slots)]), rows, list(inputs[len(slots) :])).program())

    return program
