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


def staged_reason(a: Analysis) -> str | None:
    """Return why a checked plan cannot run bucketed, or None when it can.

    E.g. a dataset without a person key, a join on another key than the person key, an exact
    quantile or median. The reason is shown to the analyst and names the node or statistic.
    """
    raise NotImplementedError


def build_staged(a: Analysis, slots: list[Slot], rows: dict[str, int]) -> StagedProgram:
    """Return the staged program of a plan over one bucket's slots (rows: each dataset's padded bucket size)."""
    raise NotImplementedError


def combine(leaves: list[Leaf]) -> Callable[..., tuple[Any, ...]]:
    """Return the JAX function (*acc, *part) -> acc that combines two buckets' partials leaf by leaf."""
    raise NotImplementedError
