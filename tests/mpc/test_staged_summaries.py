"""Summaries in buckets (issue 13 §2): a model's or a measure's staged program equals its unbucketed one.

Each summary is a list of passes over the rows (`compile/models.Pass`); the unbucketed program runs
them on one frame, the staged one runs every pass per bucket, combines the partials and steps on
their totals (`models.stage_list`, as `compile.staged.build_staged` builds it). Here the stages run
in SPU's simulator (three parties in one process, the model precision FM128/40): stage by stage,
bucket by bucket, the partials combined as the contract's ops say. The test's runner reveals the
partials between the calls (the simulator returns values); the parties' runtime keeps them secret
(`test_partials_never_leave_the_mpc` checks the programs' structure). Buckets are rows split by the
person key and padded with all-zero rows whose ROW slot is 0, as the owners do (tests/mpc/owner_buckets.py).

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
from tests.mpc.owner_buckets import bucket_inputs
from werkplaats.compile.analyze import Analysis
from werkplaats.compile.layout import layout
from werkplaats.compile.models import summary_module
from werkplaats.compile.spu import build_program
from werkplaats.compile.staged import Leaf, Stage, build_staged
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


_PROGRAMS: dict[tuple[Any, tuple[tuple[tuple[int, ...], str], ...]], Any] = {}


def compiled(fn: Callable[..., tuple[Any, ...]], args: Sequence[Any]) -> Any:
    """Compile fn for these argument shapes, every input secret, as a party does (once per shape)."""
    import jax

    from werkplaats.mpc.programs import _compile

    key = (fn, tuple((tuple(np.shape(x)), str(np.asarray(x).dtype)) for x in args))
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _compile(fn, [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in args])
    return _PROGRAMS[key]


def output_types(exe: Any) -> list[str]:
    """Return the result types of a compiled program's main function (pphlo: secret or public)."""
    code = exe.code.decode() if isinstance(exe.code, bytes) else str(exe.code)
    head = next(line for line in code.splitlines() if "func.func @main" in line)
    results = head.split(") -> ", 1)[1].rsplit("{", 1)[0].strip()
    results = results[1:-1] if results.startswith("(") else results
    return [t.strip() for t in results.split("tensor<")[1:]]


def secret_outputs(name: str, exe: Any) -> None:
    """The attacker's check: a stage program makes nothing public (every partial, total and state stays shares)."""
    types = output_types(exe)
    assert types and all("pphlo.secret" in t for t in types), (name, types)


def sim_call(sim: Any, fn: Callable[..., tuple[Any, ...]], args: Sequence[Any]) -> list[np.ndarray]:
    """Run fn on secret inputs in the simulator; return its outputs (the simulator reveals them)."""
    exe = compiled(fn, args)
    return [np.asarray(o) for o in sim(exe, *[np.asarray(x) for x in args])]


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
    for i, stage in enumerate(stages):
        t0 = time.perf_counter()
        acc = None
        for inputs in buckets:
            secret_outputs(stage.name, compiled(stage.partial, [*inputs, *state]))
            part = sim_call(sim, stage.partial, [*inputs, *state])
            assert len(part) == len(stage.leaves)
            for leaf, x in zip(stage.leaves, part, strict=True):
                assert tuple(x.shape) == tuple(leaf.shape), (stage.name, leaf, x.shape)
            acc = combine(stage.leaves, acc, part)
        assert acc is not None
        if i < len(stages) - 1:  # NB: the last step's outputs are the results (zeroed unless released)
            secret_outputs(stage.name, compiled(stage.step, [*acc, *state]))
        state = sim_call(sim, stage.step, [*acc, *state])
        if timings is not None:
            timings.append((stage.name, time.perf_counter() - t0))
    return state


# --- the stages as a party builds them -------------------------------------------------------------


def staged_program(a: Analysis, padded: dict[str, int]) -> list[Stage]:
    """Return the plan's stages as a party builds them (compile/staged.build_staged calls the summary's hook)."""
    return build_staged(a, layout(a, padded, bucketed=True), padded).stages


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
    _, buckets, padded = bucket_inputs(a, tables, count)
    stages = staged_program(a, padded)
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


@pytest.mark.slow
@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_glm_in_buckets_equals_unbucketed_and_plain(family: str) -> None:
    sim = simulator()
    df = people(240, 3)
    offset = "log_jaren" if family == "poisson" else None
    model = wp.glm(y=Y[family], x=X, family=family, offset=offset)
    q = wp.scan("t").filter(wp.col("leeftijd") >= 62).fit(model)
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


def corr_table(seed: int, rows: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(65, 100, rows)
    df = pd.DataFrame({
        "bsn": np.arange(rows),
        "leeftijd": pd.array(age, dtype="Int64"),
        "kosten": pd.array(1e5 + 40.0 * age + rng.normal(0, 300, rows), dtype="Float64"),
        "gevallen": pd.array(rng.random(rows) < 0.3, dtype="boolean"),
        "bmi": pd.array(rng.normal(26, 4, rows), dtype="Float64"),
    })  # fmt: skip
    df.loc[rng.random(rows) < 0.1, "bmi"] = pd.NA
    return df


@pytest.mark.slow
def test_corr_in_buckets_equals_unbucketed_and_plain() -> None:
    sim = simulator()
    rules = wp.DisclosureRules(cells_per_source=False)
    q = wp.scan("t").filter(wp.col("leeftijd") >= 70).corr("leeftijd", "kosten", "gevallen", "bmi")
    df = corr_table(5)
    a, tables = prepare(q, {"t": df}, min_group_size=K, rules=rules)
    got, stages = staged(sim, a, tables, 4)
    assert [s.name for s in stages] == ["range", "spread", "products"]
    assert [leaf.op for leaf in stages[0].leaves].count("min") == 1  # NB: the minima combine by min, maxima by max
    same_outputs(got, unbucketed(sim, a, tables))
    out = result(a, got)
    plain = wp.run_local(q, {"t": df}, engine="plain", min_group_size=K, rules=rules)
    assert not out.attrs["withheld"] and out.attrs["n"] == plain.attrs["n"]
    np.testing.assert_allclose(out.to_numpy(dtype=float), plain.to_numpy(dtype=float), atol=1e-6)


def test_rates_in_buckets_equal_unbucketed_and_a_small_cell_is_withheld_alike() -> None:
    sim = simulator()
    rng = np.random.default_rng(11)
    rows = 400
    df = pd.DataFrame({
        "bsn": np.arange(rows),
        "band": pd.Categorical(rng.choice(["0-39", "40-64", "65+"], rows), categories=["0-39", "40-64", "65+"]),
        "regio": pd.Categorical(rng.choice(["noord", "zuid", "oost"], rows, p=[0.49, 0.49, 0.02]),
                                categories=["noord", "zuid", "oost"]),
        "events": pd.array(rng.poisson(0.4, rows), dtype="Int64"),
    })  # fmt: skip
    std = {"0-39": 50_000, "40-64": 30_000, "65+": 20_000}
    q = wp.scan("t").standardize(events="events", age="band", by=["regio"], standard=std, per=1000)
    a, tables = prepare(q, {"t": df}, min_group_size=K)
    got, stages = staged(sim, a, tables, 4)
    assert len(stages) == 1
    same_outputs(got, unbucketed(sim, a, tables))
    out = result(a, got)
    plain = wp.run_local(q, {"t": df}, engine="plain", min_group_size=K)
    assert out["suppressed"].tolist() == plain["suppressed"].tolist()
    assert bool(out.set_index("regio").loc["oost", "suppressed"])  # NB: a region of ~8 persons: fewer than k
    shown = ~plain["suppressed"].to_numpy()
    for col in ("rate", "ci_low", "ci_high"):
        np.testing.assert_allclose(out[col].to_numpy(dtype=float)[shown], plain[col].to_numpy(dtype=float)[shown],
                                   rtol=1e-6)  # fmt: skip


def test_gaussian_model_in_buckets_equals_unbucketed_and_plain() -> None:
    sim = simulator()
    df = people(200, 8)
    q = wp.scan("t").fit(wp.glm(y=Y["gaussian"], x=["leeftijd", "vrouw"], family="gaussian"))
    a, tables = prepare(q, {"t": df}, min_group_size=K)
    got, stages = staged(sim, a, tables, 4)
    assert [s.name for s in stages] == ["moments", "spread", "irls 1", "irls 2", "final"]
    same_outputs(got, unbucketed(sim, a, tables))
    out = result(a, got)
    plain = wp.run_local(q, {"t": df}, engine="plain", min_group_size=K)
    assert out.attrs.get("withheld") is None and plain.attrs.get("withheld") is None
    for col in ("estimate", "std_error"):
        for g, w in zip(out[col], plain[col], strict=True):
            assert close(float(g), float(w)), (col, g, w)
    for key in ("n", "df_resid", "iterations", "converged"):
        assert out.attrs[key] == plain.attrs[key], key


@pytest.mark.parametrize("summary", ["glm", "corr", "rates"])
def test_partials_never_leave_the_mpc(summary: str) -> None:
    """The attacker's view of the staged program's structure: only the last step's outputs are results.

    The partials are per-bucket aggregates whose shapes do not depend on the rows (no row-level array is
    ever combined), and the last step returns exactly the unbucketed program's outputs (disclosure-controlled,
    withheld whole). That no stage program makes anything public is checked on every program the equality
    tests run (`run_staged`: each partial's and each intermediate step's outputs are secret when compiled).
    """
    import jax

    from werkplaats.compile.spu import output_kinds

    enable_x64()
    df = people(90, 4)
    plans = {
        "glm": wp.scan("t").filter(wp.col("leeftijd") >= 61).fit(wp.glm(y="score", x=["leeftijd", "zorg"])),
        "corr": wp.scan("t").corr("leeftijd", "bmi", "score"),
        "rates": wp.scan("t").with_columns(band=wp.col("leeftijd").cut([75], labels=["<75", "75+"]))
        .standardize(events="vallen", age="band", by=["zorg"], standard={"<75": 3, "75+": 1}, per=1000),
    }  # fmt: skip
    a, _ = prepare(plans[summary], {"t": df}, min_group_size=K)
    rows = {"t": len(df)}
    want = jax.eval_shape(build_program(a, layout(a, rows), rows),
                          *[jax.ShapeDtypeStruct(s.shape, s.dtype) for s in layout(a, rows)])  # fmt: skip
    shapes = []
    for padded in ({"t": 40}, {"t": 64}):
        stages = staged_program(a, padded)
        shapes.append([[leaf.shape for leaf in s.leaves] for s in stages])
        state: list[Any] = []
        for stage in stages:
            acc = [jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for leaf in stage.leaves]
            state = list(jax.eval_shape(stage.step, *acc, *state))
        assert len(state) == len(output_kinds(a))  # NB: [__withheld, *outputs], as the unbucketed program
        assert [o.shape for o in state] == [w.shape for w in want]
    assert shapes[0] == shapes[1]  # NB: no partial grows with the bucket's (padded) rows


@pytest.mark.slow
def test_time_per_stage_of_a_logistic_model_in_buckets(capsys: pytest.CaptureFixture[str]) -> None:
    """What re-reading the buckets costs per IRLS step (docs/mpc.md, "Models in buckets"): prints the times.

    The same logistic model (4 predictors incl. a categorical) through `run_local` on three party processes,
    unbucketed and in 4 buckets (the parties spool the buckets and re-read them every stage); rows from
    WERKPLAATS_STAGED_ROWS (default 100,000). Both equal the plain executor.
    ``flock /tmp/werkplaats-heavy.lock .venv/bin/python -m pytest -q -s -m slow tests/mpc/test_staged_summaries.py
    -k time_per_stage``.
    """
    import os

    from werkplaats.mpc import LocalCluster

    rows = int(os.environ.get("WERKPLAATS_STAGED_ROWS", "100000"))
    df = people(rows, 21)
    q = wp.scan("t").fit(wp.glm(y=Y["binomial"], x=X, family="binomial"))
    plain = wp.run_local(q, {"t": df}, engine="plain", min_group_size=K)
    report = [f"rows {rows:,}, logistic, p = {len(plain)}"]
    with LocalCluster() as c:
        for count in (1, 4):
            t0 = time.perf_counter()
            out = wp.run_local(q, {"t": df}, engine="mpc", min_group_size=K, cluster=c, buckets=count)
            wall = time.perf_counter() - t0
            for col in ("estimate", "std_error"):
                for g, w in zip(out[col], plain[col], strict=True):
                    assert close(float(g), float(w)), (col, g, w)
            st = c.last_stats
            assert st is not None
            party = st.parties[0]
            line = (f"{count} bucket(s): wall {wall:.1f} s, compile {party.get('compile_s', 0):.1f} s, "
                    f"run {party.get('run_s', 0):.1f} s, sent {party.get('bytes_sent', 0) / 1e9:.2f} GB, "
                    f"peak RSS {party.get('peak_rss', 0) / 1e9:.2f} GB")  # fmt: skip
            if party.get("stage_s"):
                line += "; per stage " + ", ".join(f"{t:.1f}" for t in party["stage_s"])
            report.append(line)
    with capsys.disabled():
        print("\n" + "\n".join(report))
