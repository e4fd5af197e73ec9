"""Bucketed MPC programs: a plan as stages over buckets, combined inside the MPC.

Contract (issue 13). When a job's rows do not fit the parties' memory budget, the data
owners split every table into ``count`` buckets by a keyed hash of the person key (the
same person lands in the same bucket of every table), pad every bucket to a public size
and share bucket by bucket (`werkplaats.mpc.buckets`). The parties then run a
`StagedProgram` instead of one program:

    state = the initial state inputs (the three parts of the perturbation key, when the plan needs them)
    for stage in program.stages:
        acc = None
        for b in range(count):                           # the same compiled program for every bucket
            part = stage.partial(*bucket_b_inputs, *state)
            acc = part if acc is None else combine(stage.leaves)(*acc, *part)
        state = stage.step(*acc, *state)                 # the last stage's step returns the outputs
    outputs = state                                      # [__withheld, ...], exactly as build_program's

Everything stays secret between the programs: partials, accumulators and state are shares
held by the parties (``spu.Runtime.get_var``/``set_var``); nothing is revealed before the
last step's outputs, which are disclosure-controlled like an unbucketed program's.

A bucket's inputs are the slots of `layout(a, padded_rows, bucketed=True)`: every dataset
gets an extra ``(dataset, ROW, "ok")`` slot, 1 for a real row and 0 for padding, which
becomes the dataset's row mask (`SpuCompiler.visit_Source`). Padded rows are all zero.

Leaves combine elementwise by their op: "add" (exact ring addition: counts, sums, fixed-point
sums of the ring values), "min", "max", or "top:N" (the N largest along the last axis, of the
concatenation of both: rule 3's top contributors). What does not combine (exact quantiles,
medians) is not staged: `staged_reason` says why, and the job runs unbucketed when it fits
the budget or is refused with that reason.

Security model: the stage functions are built from the plan and public metadata only (the
padded sizes, the bucket count); every party builds the same ones. Nothing branches on secret
data; the per-bucket real row counts are never revealed (only the padded size is public).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import OperationNotDefinedError
from ..plan import nodes as n
from .analyze import Analysis
from .layout import ROW as ROW
from .layout import Slot

COMBINE_OPS = ("add", "min", "max")  # and "top:N"


@dataclass(frozen=True, slots=True)
class Leaf:
    """One partial output of a stage: its shape, dtype and how two buckets' values combine."""

    shape: tuple[int, ...]
    dtype: str  # "int64" or "float64"
    op: str  # "add", "min", "max" or "top:N"


@dataclass
class Stage:
    """One pass over every bucket: a partial per bucket, combined, then one step on the combination.

    partial(*bucket_inputs, *state) -> tuple of partial leaves (as `leaves` describes them);
    step(*combined_leaves, *state) -> tuple: the next stage's state, or the program's outputs after
    the last stage.
    """

    partial: Callable[..., tuple[Any, ...]]
    leaves: list[Leaf]
    step: Callable[..., tuple[Any, ...]]
    name: str = ""  # NB: for logs and timings only ("aggregate", "irls 3", ...)


@dataclass
class StagedProgram:
    """A plan's bucketed program: its stages and the shapes of the initial state (the key parts)."""

    stages: list[Stage]
    state_in: list[tuple[tuple[int, ...], str]] = field(default_factory=list)


RUNS_UNBUCKETED = "it runs unbucketed within the memory budget or is refused"


def staged_reason(a: Analysis) -> str | None:
    """Return why a checked plan cannot run bucketed, or None when it can.

    E.g. a dataset without a person key, a join on another key than the person key, an exact
    quantile or median. The reason is shown to the analyst and names the node or statistic.
    Decided from the plan, the catalog and the rules alone (public).
    """
    root = a.plan.root
    if isinstance(root, n.Summary):
        from .models import summary_module

        mod = summary_module(root)
        if not hasattr(mod, "stages"):
            return f"the {type(root).__name__.lower()} summary cannot run in buckets yet: {RUNS_UNBUCKETED}"
        hook = getattr(mod, "staged_reason", None)
        reason = hook(a) if hook is not None else None
        if reason:
            return str(reason)
    elif isinstance(root, n.Aggregate):
        for name, agg in root.aggs:
            if agg.func in ("median", "quantile"):
                return (f"{name!r} is an exact {agg.func}, which does not combine over buckets "
                        f"(it is never approximated): {RUNS_UNBUCKETED}")  # fmt: skip
    else:
        return f"a plan ending in {type(root).__name__} cannot run in buckets: {RUNS_UNBUCKETED}"
    plans = [(a, root), *((r.analysis, r.analysis.plan.root) for r in a.register)]
    for an, top in plans:
        for child in n.children(top):
            reason = _relation_reason(an, child)
            if reason:
                return reason
    return None


def _relation_reason(a: Analysis, rel: n.Relation) -> str | None:
    """Return why a relation below the root cannot be split into buckets by the person key, or None."""
    from .perturb import _is_person_key, person_key_column

    own: str | None = None
    match rel:
        case n.Source(dataset, _):
            if person_key_column(a, dataset) is None:
                own = (f"dataset {dataset!r} has no person key, so its rows cannot be put in buckets "
                       f"(the same person in the same bucket of every table): {RUNS_UNBUCKETED}")  # fmt: skip
        case n.Join(left, right, on, _):
            if not (_is_person_key(a, left, on) and _is_person_key(a, right, on)):
                own = (f"the join on {on!r} is not on the person key, so matching rows may be in different "
                       f"buckets: {RUNS_UNBUCKETED}")  # fmt: skip
        case n.Aggregate(inp, keys, _):
            if len(keys) != 1 or not _is_person_key(a, inp, keys[0]):
                own = (f"the intermediate group_by on {', '.join(map(repr, keys))} is not on the person key, "
                       f"so a group may span buckets: {RUNS_UNBUCKETED}")  # fmt: skip
        case n.Filter() | n.WithColumns() | n.Select():
            pass
        case _:
            if (
                type(rel).__name__ != "Concat"
            ):  # NB: a union (issue 13): the same person in the same bucket of every table
                own = f"{type(rel).__name__} cannot run in buckets: {RUNS_UNBUCKETED}"
    if own:
        return own
    for child in n.children(rel):
        reason = _relation_reason(a, child)
        if reason:
            return reason
    return None


def build_staged(a: Analysis, slots: list[Slot], rows: dict[str, int], *, buckets: int | None = None) -> StagedProgram:
    """Return the staged program of a plan over one bucket's slots (rows: each dataset's padded bucket size).

    slots: ``layout(a, rows, bucketed=True)``. buckets: the job's bucket count, when the program
    may depend on it (then ranges that are in range for ``buckets`` × the padded rows skip their
    oblivious check, and released counts are rounded up to that many rows); None (the default)
    keeps the program the same for every count (every range checked obliviously), so compiled
    programs are shared across job sizes with the same padded sizes. Raises
    OperationNotDefinedError with `staged_reason` when the plan cannot run bucketed.
    """
    import jax

    from .kernels.cellkey import key_inputs
    from .spu import AggregatePasses, SpuCompiler

    reason = staged_reason(a)
    if reason:
        raise OperationNotDefinedError(f"bucketed execution: {reason}")
    root = a.plan.root
    ns = len(slots)
    slot_specs = [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in slots]

    if isinstance(root, n.Summary):
        from .models import BucketReader, summary_module
        from .spu import whole_flags

        whole: list[str] = []  # NB: the partials' names ("whole:i", "unsorted"), set while tracing (static)

        def read(inputs: Any) -> tuple[Any, list[Any]]:
            c = SpuCompiler(a, slots, list(inputs), rows)
            f = c.visit(root.input)
            got = c.whole_leaves()
            whole[:] = list(got)
            return f, [v for v, _ in got.values()]

        def flags(totals: Any) -> list[tuple[int, Any]]:
            return whole_flags(a, dict(zip(whole, totals, strict=True)))

        shapes = jax.eval_shape(lambda *x: read(x)[1], *slot_specs)
        leaves = [Leaf(tuple(x.shape), str(x.dtype), "add") for x in shapes]
        return StagedProgram(summary_module(root).stages(a, BucketReader(ns, read, leaves, flags)))

    assert isinstance(root, n.Aggregate)
    final: n.Aggregate = root
    nkey = key_inputs(a)
    state_in: list[tuple[tuple[int, ...], str]] = [((1,), "int64")] * nkey
    passes = AggregatePasses(a, buckets)
    names: dict[str, list[str]] = {}  # NB: the pass's partials' names, in order (static; set while tracing)

    def specs(shapes: Any) -> list[Any]:
        return [jax.ShapeDtypeStruct(sh, dt) for sh, dt in shapes]

    def frame(inputs: Any, keys: Any) -> tuple[Any, Any]:
        c = SpuCompiler(a, slots, list(inputs), rows, list(keys))
        return c, c.visit(final.input)

    def record(tag: str, leaves: dict[str, tuple[Any, str]]) -> tuple[Any, ...]:
        names[tag] = list(leaves)
        names[tag + ":ops"] = [op for _, op in leaves.values()]
        return tuple(v for v, _ in leaves.values())

    def partial1(*args: Any) -> tuple[Any, ...]:
        c, f = frame(args[:ns], args[ns:])
        return record("p1", passes.first(c, f))

    shapes1 = jax.eval_shape(partial1, *slot_specs, *specs(state_in))
    leaves1 = [Leaf(tuple(x.shape), str(x.dtype), op) for x, op in zip(shapes1, names["p1:ops"], strict=True)]
    n1 = len(leaves1)

    def p1_of(vals: Any) -> dict[str, Any]:
        return dict(zip(names["p1"], vals, strict=True))

    if not passes.two_pass:

        def step(*args: Any) -> tuple[Any, ...]:
            p1 = p1_of(args[:n1])
            return tuple(passes.finish(p1, passes.between(p1), {}))

        return StagedProgram([Stage(partial1, leaves1, step, "aggregate")], state_in)

    def step1(*args: Any) -> tuple[Any, ...]:
        derived = passes.between(p1_of(args[:n1]))
        names["d"] = list(derived)
        return (*args[:n1], *derived.values(), *args[n1:])

    state1 = jax.eval_shape(step1, *specs((x.shape, x.dtype) for x in leaves1), *specs(state_in))
    nd = len(names["d"])

    def unpack(state: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
        return p1_of(state[:n1]), dict(zip(names["d"], state[n1 : n1 + nd], strict=True)), state[n1 + nd :]

    def partial2(*args: Any) -> tuple[Any, ...]:
        p1, derived, keys = unpack(args[ns:])
        c, f = frame(args[:ns], keys)
        return record("p2", passes.second(c, f, p1, derived))

    shapes2 = jax.eval_shape(partial2, *slot_specs, *state1)
    leaves2 = [Leaf(tuple(x.shape), str(x.dtype), op) for x, op in zip(shapes2, names["p2:ops"], strict=True)]
    n2 = len(leaves2)

    def step2(*args: Any) -> tuple[Any, ...]:
        p1, derived, _ = unpack(args[n2:])
        return tuple(passes.finish(p1, derived, dict(zip(names["p2"], args[:n2], strict=True))))

    stages = [Stage(partial1, leaves1, step1, "aggregate 1"), Stage(partial2, leaves2, step2, "aggregate 2")]
    return StagedProgram(stages, state_in)


def combine(leaves: list[Leaf]) -> Callable[..., tuple[Any, ...]]:
    """Return the JAX function (*acc, *part) -> acc that combines two buckets' partials leaf by leaf."""
    for leaf in leaves:
        if leaf.op not in COMBINE_OPS and not leaf.op.startswith("top:"):
            raise OperationNotDefinedError(f"bucketed execution: a partial with op {leaf.op!r} does not combine")
    count = len(leaves)

    def fn(*args: Any) -> tuple[Any, ...]:
        acc, part = args[:count], args[count:]
        return tuple(_combine_one(leaf.op, x, y) for leaf, x, y in zip(leaves, acc, part, strict=True))

    return fn


def _combine_one(op: str, x: Any, y: Any) -> Any:
    import jax.numpy as jnp

    if op == "add":
        return x + y  # NB: ring addition: exact (wraps like the sum over all rows would)
    if op == "min":
        return jnp.minimum(x, y)
    if op == "max":
        return jnp.maximum(x, y)
    return merge_top(x, y)


def merge_top(x: Any, y: Any) -> Any:
    """Return the N largest of two lists each sorted largest first along the last axis (N = its length).

    By comparisons only (c_i = max(x_i, y_i, max_j min(x_j, y_{i-1-j}))), as `kernels.aggregate.top_n`.
    """
    import jax.numpy as jnp

    count = x.shape[-1]
    out = []
    for i in range(count):
        best = jnp.maximum(x[..., i], y[..., i])
        for j in range(i):
            best = jnp.maximum(best, jnp.minimum(x[..., j], y[..., i - 1 - j]))
        out.append(best)
    return jnp.stack(out, axis=-1)
