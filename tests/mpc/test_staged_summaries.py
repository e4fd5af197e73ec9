"""Summaries in buckets (issue 13 §2): a model's or a measure's staged program equals its unbucketed one.

Each summary is a list of passes over the rows (`compile/models.Pass`); the unbucketed program runs
them on one frame, the staged one runs every pass per bucket, combines the partials and steps on
their totals (`models.stage_list`). Here the stages run in SPU's simulator (three parties in one
process, the model precision FM128/40): stage by stage, bucket by bucket, the partials combined as
the contract's ops say. The test's runner reveals the partials between the calls (the simulator
returns values); the parties' runtime keeps them secret (`test_partials_never_leave_the_mpc`
checks the program's structure). Buckets are rows split by the person key and padded with
all-zero rows whose ROW slot is 0, as the owners do (`mpc.buckets`).

The larger runs are slow-marked:
``flock /tmp/werkplaats-heavy.lock .venv/bin/python -m pytest -q -m slow tests/mpc/test_staged_summaries.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from tests.compile.test_glm import close, people
from werkplaats.compile.analyze import Analysis
from werkplaats.compile.layout import ROW, layout
from werkplaats.compile.models import BucketReader, summary_module
from werkplaats.compile.spu import SpuCompiler, build_program
from werkplaats.compile.staged import Leaf, Stage
from werkplaats.local import prepare
from werkplaats.mpc.encode import encode
from werkplaats.mpc.runtime import enable_x64, runtime_config

pytestmark = pytest.mark.mpc

K = 10
X = ["leeftijd", "bmi", "vrouw", "zorg"]
Y = {"gaussian": "score", "binomial": "val", "poisson": "vallen"}


# --- a stage-by-stage runner in SPU's simulator ------------------------------------------------


def simulator() -> Any:
    import spu.utils.simulation as spsim

    enable_x64()
    return spsim.Simulator(3, runtime_config("model"))


def sim_call(sim: Any, fn: Callable[..., tuple[Any, ...]], args: Sequence[Any]) -> list[np.ndarray]:
    """Run fn on secret inputs in the simulator; return its outputs (the simulator reveals them)."""
    import spu.utils.simulation as spsim

    out = spsim.sim_jax(sim, fn)(*[np.asarray(x) for x in args])
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def combine(leaves: list[Leaf], acc: list[np.ndarray] | None, part: list[np.ndarray]) -> list[np.ndarray]:
    """Combine two buckets' partials leaf by leaf, as the contract's ops say."""
    if acc is None:
        return part
    ops = {"add": np.add, "min": np.minimum, "max": np.maximum}
    return [ops[leaf.op](x, y) for leaf, x, y in zip(leaves, acc, part, strict=True)]


def run_staged(sim: Any, stages: list[Stage], buckets: list[list[np.ndarray]],
               timings: list[tuple[str, float]] | None = None) -> list[np.ndarray]:  # fmt: skip
    """Run a staged program: per stage, the partial on every bucket, combined, then the step."""
    state: list[np.ndarray] = []
    for stage in stages:
        t0 = time.perf_counter()
        acc = None
        for inputs in buckets:
            part = sim_call(sim, stage.partial, [*inputs, *state])
            assert len(part) == len(stage.leaves)
            for leaf, x in zip(stage.leaves, part, strict=True):
                assert tuple(x.shape) == tuple(leaf.shape), (stage.name, leaf, x.shape)
            acc = combine(stage.leaves, acc, part)
        assert acc is not None
        state = sim_call(sim, stage.step, [*acc, *state])
        if timings is not None:
            timings.append((stage.name, time.perf_counter() - t0))
    return state


# --- buckets as the owners make them ---------------------------------------------------------------


def bucket_inputs(a: Analysis, tables: dict[str, pd.DataFrame], count: int,
                  key: str = "bsn") -> tuple[list[list[np.ndarray]], dict[str, int]]:  # fmt: skip
    """Split every table by its person key into `count` buckets, encode and pad them: each bucket's inputs.

    A bucket's inputs are the slots of layout(padded, bucketed=True): per dataset its ROW slot (1 for a
    real row, 0 for padding), then the unbucketed slots' arrays padded with zero rows.
    """
    padded = {ds: max(int(np.bincount(df[key].to_numpy() % count, minlength=count).max()), 1) + 3
              for ds, df in tables.items()}  # fmt: skip
    slots = layout(a, padded, bucketed=True)
    datasets = list(dict.fromkeys(s.dataset for s in slots))
    out = []
    for b in range(count):
        inputs: list[np.ndarray] = []
        for ds in datasets:
            df = tables[ds]
            part = df[df[key].to_numpy() % count == b].reset_index(drop=True)
            arrays = encode(a, ds, part, layout(a, {ds: len(part)}))
            size = padded[ds]
            inputs.append(np.concatenate([np.ones(len(part), np.int64), np.zeros(size - len(part), np.int64)]))
            for arr in arrays:
                pad = np.zeros((size - arr.shape[0], *arr.shape[1:]), dtype=arr.dtype)
                inputs.append(np.concatenate([arr[: len(part)], pad]) if len(part) else pad)
        out.append(inputs)
    assert [s.column for s in slots if s.column == ROW] == [ROW] * len(datasets)
    return out, padded


def reader(a: Analysis, padded: dict[str, int], example: list[np.ndarray]) -> BucketReader:
    """Read one bucket as compile/staged does: the summary's input frame and the relational part's partials.

    The partials (rule 5's counts, `SpuCompiler.whole_leaves`) and their shapes are found by tracing one bucket.
    """
    import jax

    from werkplaats.compile.kernels.aggregate import values
    from werkplaats.compile.spu import whole_flags

    slots = layout(a, padded, bucketed=True)
    root = a.plan.root

    def read(inputs: Sequence[Any]) -> tuple[Any, list[Any]]:
        c = SpuCompiler(a, slots, list(inputs), padded)
        f = c.visit(root.input)  # type: ignore[attr-defined]
        whole = values(c.whole_leaves())
        return f, [whole[name] for name in sorted(whole)]

    def partials(*inputs: Any) -> dict[str, Any]:
        c = SpuCompiler(a, slots, list(inputs), padded)
        c.visit(root.input)  # type: ignore[attr-defined]
        return values(c.whole_leaves())

    shaped = jax.eval_shape(partials, *[jax.ShapeDtypeStruct(x.shape, x.dtype) for x in example])
    names = sorted(shaped)
    shapes = [shaped[name] for name in names]

    def flags(totals: Sequence[Any]) -> list[tuple[int, Any]]:
        return whole_flags(a, dict(zip(names, totals, strict=True)))

    leaves = [Leaf(tuple(s.shape), str(s.dtype), "add") for s in shapes]
    return BucketReader(len(slots), read, leaves, flags)


# --- the staged program equals the unbucketed one ----------------------------------------------------


def unbucketed(sim: Any, a: Analysis, tables: dict[str, pd.DataFrame]) -> list[np.ndarray]:
    """Run today's (unbucketed) program of the plan in the simulator; return its outputs."""
    rows = {ds: len(df) for ds, df in tables.items()}
    slots = layout(a, rows)
    inputs = []
    for ds in dict.fromkeys(s.dataset for s in slots):
        inputs += encode(a, ds, tables[ds], [s for s in slots if s.dataset == ds])
    return sim_call(sim, build_program(a, slots, rows), inputs)


def result(a: Analysis, outs: list[np.ndarray]) -> pd.DataFrame:
    mod = summary_module(a.plan.root)
    return mod.frame(a, mod.revealed(a, outs[1:], int(np.asarray(outs[0]).reshape(-1)[0])))


def staged(sim: Any, a: Analysis, tables: dict[str, pd.DataFrame], count: int,
           timings: list[tuple[str, float]] | None = None) -> tuple[list[np.ndarray], list[Stage]]:  # fmt: skip
    buckets, padded = bucket_inputs(a, tables, count)
    stages = summary_module(a.plan.root).stages(a, reader(a, padded, buckets[0]))
    return run_staged(sim, stages, buckets, timings), stages


def same_outputs(got: list[np.ndarray], want: list[np.ndarray], tol: float = 1e-7) -> None:
    """The staged program's outputs equal the unbucketed program's: codes exactly, numbers within tol."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape
        if np.issubdtype(w.dtype, np.integer):
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def test_glm_in_buckets_equals_unbucketed_and_plain() -> None:
    sim = simulator()
    df = people(240, 3)
    q = wp.scan("t").filter(wp.col("leeftijd") >= 62).fit(wp.glm(y=Y["binomial"], x=X, family="binomial"))
    a, tables = prepare(q, {"t": df}, min_group_size=K)
    want = unbucketed(sim, a, tables)
    got, stages = staged(sim, a, tables, 3)
    assert [s.name for s in stages][:3] == ["moments", "spread", "irls 1"] and stages[-1].name == "final"
    assert len({id(s.partial) for s in stages if s.name.startswith("irls")}) == 1  # NB: compiled once
    same_outputs(got, want)
    out = result(a, got)
    plain = wp.run_local(q, {"t": df}, engine="plain", min_group_size=K)
    assert out.attrs.get("withheld") == plain.attrs.get("withheld") is None
    for col in ("estimate", "std_error"):
        for g, w in zip(out[col], plain[col], strict=True):
            assert close(float(g), float(w)), (col, g, w)
    assert out.attrs["n"] == plain.attrs["n"] and out.attrs["iterations"] == plain.attrs["iterations"]
