"""Summaries: the plan roots that release a model's or a measure's summary instead of aggregate cells.

One module per root node kind (plan.nodes.SUMMARY_NODES), each with the same functions, so that
the checker, both executors, the result receiver and the result frame treat them alike:

- ``schema(a, node, base) -> Schema``: check the node against its input's schema ``base`` (raise
  PlanError saying what is wrong and where) and return the summary's output schema;
- ``output_kinds(a) -> list[tuple[str, str]]``: the program's outputs after ``__withheld``, as
  (name, kind) with kind "int" or "float"; the first is the per-row flag (1 = released);
- ``mpc(a, f) -> (flags, outs)``: inside the MPC program, from the input relation's secret frame
  (`kernels.core.SFrame`): the whole-summary checks as (reason code, secret 0/1 passes) and the
  outputs in ``output_kinds`` order;
- ``stages(a, reader) -> list[compile.staged.Stage]``: the same summary as stages over buckets
  (issue 13; see "Summaries in buckets (the hook `compile/staged.build_staged` calls for a summary root)::

    stages = summary_module(root).stages(a, BucketReader(n_inputs, read, leaves, flags))

- ``n_inputs``: how many leading arguments of every stage's ``partial`` are one bucket's inputs
  (the slots of ``layout(a, padded_rows, bucketed=True)``, in order); the state follows them.
  A summary takes no perturbation key (``perturb.mode`` is "round"), so ``state_in`` is empty.
- ``read(inputs) -> (frame, partials)``: the summary's input relation as a secret frame over one
  bucket (padding rows masked out), and the relational part's per-bucket partials that its
  whole-result flags need (e.g. `SpuCompiler.whole_leaves`' values: rule 5's rows before and
  after each filter and inner join, the merge join's unsorted count), as ``leaves`` describes
  them (public shapes, dtypes and ops; usually "add").
- ``flags(totals) -> [(code, passes)]``: the relational part's whole-result flags from those
  partials combined over every bucket (they come first, as in `SpuCompiler.program`).

Every summary is a list of `Pass`es (one pass reads every row once; `run_passes` runs them on one
frame, which is the unbucketed program, `mpc`), and `stage_list` turns the same passes into stages:
the first stage's partial adds the reader's partials, their totals ride in the state (first), and
the last step returns ``withhold_whole([*flags(totals), *summary_flags], outs)``, the program's
outputs. A repeated pass (IRLS) gives stages that share one ``partial`` and one ``step`` callable
(the iteration number is in the state), so a runtime can compile them once (dedupe by identity).
Counts in the passes are bounded by 2^MAX_ROW_BITS rows (the whole job's, not one bucket's).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ...plan import nodes as n

if TYPE_CHECKING:
    from ..kernels.core import SFrame
    from ..staged import Leaf, Stage

_MODULES = {n.Glm: "glm", n.Corr: "corr", n.Standardize: "rates"}
MAX_ROW_BITS = 32  # NB: counts inside a summary's steps stay below 2^32 rows (bucketed jobs exceed 2^22)


def summary_module(node: object) -> ModuleType:
    """Return the module (glm, corr, rates) that implements a summary root node."""
    return import_module(f"{__name__}.{_MODULES[type(node)]}")


def is_summary(plan: n.Plan) -> bool:
    """Return whether a plan's root is a summary (a model or a measure), not an aggregate."""
    return isinstance(plan.root, n.SUMMARY_NODES)


def _no_flags(totals: Sequence[Any]) -> list[tuple[int, Any]]:
    return []


@dataclass
class BucketReader:
    """How a summary's stages read one bucket (built by compile/staged.py; see the module docstring)."""

    n_inputs: int
    read: Callable[[Sequence[Any]], tuple[SFrame, list[Any]]]
    leaves: list[Leaf] = field(default_factory=list)
    flags: Callable[[Sequence[Any]], list[tuple[int, Any]]] = _no_flags


@dataclass
class Pass:
    """One pass of a summary over every row: partial sums per row set, then one step on their totals.

    partial(rows, state) -> list of leaves (as ``leaves`` describes them; state is None in the first pass);
    step(totals, state) -> the next state (a NamedTuple of arrays), or (flags, outs) after the last pass;
    prep(rows, state) -> the rows the partial reads (derived per row from the state: computed once per
    repeated pass in the unbucketed program, once per bucket and stage in the staged one);
    repeat: how many times the pass runs in a row (IRLS steps; the state carries the step number).
    """

    name: str
    partial: Callable[[Any, Any], list[Any]]
    leaves: list[Leaf]
    step: Callable[[list[Any], Any], Any]
    prep: Callable[[Any, Any], Any] | None = None
    repeat: int = 1
    state: type | None = field(default=None)  # NB: the NamedTuple the step returns (None after the last pass)


def run_passes(rows: Any, passes: list[Pass]) -> Any:
    """Return the last pass's (flags, outs) over one frame's rows: the unbucketed program (a repeat in one loop)."""
    import jax

    state: Any = None
    for p in passes:
        r = p.prep(rows, state) if p.prep is not None else rows
        if p.repeat == 1:
            state = p.step(p.partial(r, state), state)
        else:

            def body(_: Any, s: Any, p: Pass = p, r: Any = r) -> Any:
                return p.step(p.partial(r, s), s)

            state = jax.lax.fori_loop(0, p.repeat, body, state)
    return state


def stage_list(reader: BucketReader, rows_of: Callable[[SFrame], Any], passes: list[Pass]) -> list[Stage]:
    """Return the stages of a summary's passes over buckets (see the module docstring)."""
    from ..spu import withhold_whole
    from ..staged import Stage

    nc, ni = len(reader.leaves), reader.n_inputs
    assert passes and passes[0].repeat == 1, "the first pass reads no state: it runs once"
    out: list[Stage] = []
    prev: type | None = None
    for idx, p in enumerate(passes):
        first, last = idx == 0, idx == len(passes) - 1

        def partial(*args: Any, p: Pass = p, first: bool = first, prev: type | None = prev) -> tuple[Any, ...]:
            f, counts = reader.read(args[:ni])
            state = None if first else prev(*args[ni + nc :])  # type: ignore[misc]
            rows = rows_of(f)
            r = p.prep(rows, state) if p.prep is not None else rows
            leaves = p.partial(r, state)
            return (*counts, *leaves) if first else tuple(leaves)

        def step(*args: Any, p: Pass = p, first: bool = first, last: bool = last,
                 prev: type | None = prev) -> tuple[Any, ...]:  # fmt: skip
            if first:
                totals, acc, state = args[:nc], list(args[nc : nc + len(p.leaves)]), None
            else:
                acc = list(args[: len(p.leaves)])
                rest = args[len(p.leaves) :]
                totals, state = rest[:nc], prev(*rest[nc:])  # type: ignore[misc]
            new = p.step(acc, state)
            if last:
                flags, outs = new
                return tuple(withhold_whole([*reader.flags(totals), *flags], outs))
            return (*totals, *new)

        leaves = [*reader.leaves, *p.leaves] if first else p.leaves
        for rep in range(p.repeat):
            name = p.name if p.repeat == 1 else f"{p.name} {rep + 1}"
            out.append(Stage(partial, leaves, step, name))
        prev = p.state
    return out
