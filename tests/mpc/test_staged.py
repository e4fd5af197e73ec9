"""Bucketed (staged) programs, without the party runtime: SPU's simulator runs each stage's programs.

The tables are split into buckets by a test hash of the person key, padded and encoded as the
owners would (tests/mpc/owner_buckets.py); every stage's partial runs once per bucket (one compiled
program), the partials combine bucket by bucket, and the step runs on the combination, exactly as
`compile.staged` describes. Every value between the programs is revealed here (a simulator), which
the real runtime never does. The result must equal the plain executor's (DuckDB), cell for cell and
code for code. The heavy differential set is ``pytest -m slow tests/mpc/test_staged.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

import jax
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import werkplaats as wp
from tests.mpc.owner_buckets import bucket_inputs, bucket_of
from tests.mpc.test_differential import plans, tables
from tests.mpc.test_rules_cells import RULES
from werkplaats.catalog.schema import infer_schema
from werkplaats.compile import disclosure
from werkplaats.compile.analyze import Analysis, result_frame
from werkplaats.compile.kernels.cellkey import key_inputs, split_key
from werkplaats.compile.layout import ROW, layout
from werkplaats.compile.spu import build_program, output_kinds
from werkplaats.compile.staged import Leaf, build_staged, combine, merge_top, staged_reason
from werkplaats.exceptions import OperationNotDefinedError
from werkplaats.local import prepare
from werkplaats.mpc.encode import encode
from werkplaats.mpc.programs import _compile
from werkplaats.mpc.runtime import enable_x64, precision_of, runtime_config
from werkplaats.plan import nodes as n
from werkplaats.result import Revealed, frame_differences

pytestmark = pytest.mark.mpc
enable_x64()

RNG = np.random.default_rng(13)
N = 70
PEOPLE = pd.DataFrame({
    "bsn": RNG.choice(10**9, N, replace=False),
    "gemeente": pd.Categorical(RNG.choice(["GM1", "GM2", "GM3"], N, p=[0.5, 0.35, 0.15])),
    "leeftijd": RNG.integers(0, 100, N),
    "gewicht": RNG.integers(40 * 64, 120 * 64, N) / 64,  # NB: exact in fixed point
    "ziek": RNG.integers(0, 2, N).astype(bool),
})  # fmt: skip
CONSULTS = pd.DataFrame({"bsn": RNG.choice(PEOPLE["bsn"], 3 * N), "kosten": RNG.integers(0, 500, 3 * N)})
TABLES = {"p": PEOPLE, "c": CONSULTS}
KEY = 2**64 - 5

PER_PERSON = wp.scan("c").group_by("bsn").agg(nc=wp.count(), kc=wp.col("kosten").sum())
# One stage: a join and an intermediate group-by on the person key, a filter (rule 5), rules 2, 6 and 7.
JOINED = (wp.scan("p").join(PER_PERSON, on="bsn", how="left").filter(wp.col("leeftijd") >= 20)
          .group_by("gemeente")
          .agg(n=wp.count(), z=wp.col("ziek").sum(), c=wp.col("nc").count(), m=wp.col("nc").mean(),
               s=wp.col("kc").sum(), g=wp.col("gewicht").sum(), lo=wp.col("leeftijd").min(),
               hi=wp.col("gewicht").max()))  # fmt: skip
# Two stages: variances around each cell's mean, rule 4's rounded extremes (the rows sharing them).
SPREAD = (wp.scan("p").group_by("gemeente", "ziek")
          .agg(n=wp.count(), v=wp.col("leeftijd").var(), sd=wp.col("gewicht").std(), hi=wp.col("leeftijd").max(),
               lo=wp.col("gewicht").min()))  # fmt: skip
ROUND_EXTREMES = replace(wp.DisclosureRules(cells_per_source=False), extremes="round")


class Sim:
    """SPU's three-party simulator under the plan's runtime configuration; each program compiled once."""

    def __init__(self, a: Analysis) -> None:
        from spu.utils.simulation import Simulator

        self.sim = Simulator(3, runtime_config(precision_of(a.plan)))
        self.exes: dict[int, Any] = {}

    def __call__(self, fn: Any, *args: Any) -> list[np.ndarray]:
        if id(fn) not in self.exes:
            self.exes[id(fn)] = (_compile(fn, [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in args]),
                                 fn)  # fmt: skip
        return [np.asarray(x) for x in self.sim(self.exes[id(fn)][0], *args)]


def run_staged(a: Analysis, tables: dict[str, pd.DataFrame], count: int, key: int = KEY, person: str = "bsn",
               raw: dict[str, pd.DataFrame] | None = None) -> tuple[pd.DataFrame, Any]:  # fmt: skip
    """Return the staged program's result frame over count buckets, and the staged program."""
    slots, buckets, padded = bucket_inputs(a, tables, count, person, raw=raw)
    sp = build_staged(a, slots, padded, buckets=count)
    sim = Sim(a)
    state: list[Any] = [np.asarray([p], dtype=np.int64) for p in split_key(key)][: key_inputs(a)]
    assert len(state) == len(sp.state_in)
    for stage in sp.stages:
        fold = combine(stage.leaves)
        acc: list[Any] | None = None
        for b in range(count):
            part = sim(stage.partial, *buckets[b], *state)
            assert [(x.shape, str(x.dtype)) for x in part] == [(lf.shape, lf.dtype) for lf in stage.leaves]
            acc = part if acc is None else sim(fold, *acc, *part)
        assert acc is not None
        state = sim(stage.step, *acc, *state)
    return frame_of(a, state), sp


def frame_of(a: Analysis, values: list[np.ndarray]) -> pd.DataFrame:
    """Return the result frame of an aggregate program's revealed outputs (as mpc/share.reconstruct does)."""
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    assert len(values) == len(output_kinds(a))  # NB: only the disclosure-controlled outputs leave the program
    stats = {name: (values[2 + 2 * j].astype(np.int64), values[3 + 2 * j]) for j, (name, _) in enumerate(root.aggs)}
    return result_frame(a, Revealed(values[1].astype(bool), stats, int(values[0])))


def with_roles(tables: dict[str, pd.DataFrame], roles: dict[str, str]) -> dict[str, Any]:
    """Return inferred schemas of the tables with the given columns' roles (person_key, magnitude)."""
    out = {}
    for ds, df in tables.items():
        schema = infer_schema(ds, df)
        cols = tuple(dataclasses.replace(c, role=roles[c.name]) if c.name in roles else c for c in schema.columns)
        out[ds] = dataclasses.replace(schema, columns=cols)
    return out


def both(q: wp.LazyFrame, count: int, rules: wp.DisclosureRules | None = None,
         tables: dict[str, pd.DataFrame] | None = None, k: int | None = None) -> pd.DataFrame:  # fmt: skip
    tables = tables or TABLES
    rules = rules or wp.DisclosureRules(cells_per_source=False)
    schemas = with_roles(tables, {"bsn": "person_key", "kosten": "magnitude", "gewicht": "magnitude"})
    a, checked = prepare(q, tables, rules=rules, min_group_size=k, schemas=schemas)
    plain = wp.run_local(q, tables, rules=rules, perturbation_key=KEY, min_group_size=k, schemas=schemas)
    staged, _ = run_staged(a, checked, count, raw=tables)
    assert not frame_differences(staged, plain, loose={"sd", "v", "m"}), frame_differences(staged, plain)
    return staged


def test_a_join_on_the_person_key_in_three_buckets_equals_plain_with_every_rule() -> None:
    a, _ = prepare(JOINED, TABLES, schemas=with_roles(TABLES, {"kosten": "magnitude", "gewicht": "magnitude"}))
    assert disclosure.stat_rules(a)["s"].top_n and disclosure.stat_rules(a)["g"].top_n  # NB: rule 3's top-N lists
    out = both(JOINED, 3)
    assert (~out["suppressed"]).sum() >= 2  # NB: something released, so the comparison means something


def test_variances_and_rounded_extremes_take_two_stages_and_equal_plain() -> None:
    a, _ = prepare(SPREAD, TABLES, rules=ROUND_EXTREMES)
    assert staged_reason(a) is None
    out = both(SPREAD, 2, ROUND_EXTREMES, k=5)
    assert out[["v", "sd"]].notna().to_numpy().sum() >= 2


def test_a_cell_too_small_in_every_bucket_is_released_only_as_the_combined_cell() -> None:
    # the attacker's hope: a bucket's partial cell of < k rows comes out. Here every bucket's cell of GM9 has < k
    # rows and the combined cell >= k: the one output is the combined cell (equal to plain), nothing per bucket.
    k, count = 10, 3
    extra = pd.DataFrame({"bsn": np.arange(1, 13) * 7919, "gemeente": "GM9", "leeftijd": 50, "gewicht": 70.0,
                          "ziek": False})  # fmt: skip
    small = pd.DataFrame({"bsn": np.arange(1, 8) * 104729, "gemeente": "GM8", "leeftijd": 60, "gewicht": 80.0,
                          "ziek": True})  # fmt: skip
    people = pd.concat([PEOPLE, extra, small], ignore_index=True)
    people["gemeente"] = pd.Categorical(people["gemeente"])
    per_bucket = np.bincount(bucket_of(extra["bsn"], count), minlength=count)
    assert per_bucket.max() < k <= per_bucket.sum()
    q = wp.scan("p").group_by("gemeente").agg(n=wp.count(), s=wp.col("leeftijd").sum())
    rules = replace(wp.DisclosureRules.cells_only(), counts="exact", person_keys=("bsn",))
    out = both(q, count, rules, {"p": people}, k)
    row = out.set_index("gemeente")
    assert row.loc["GM9", "n"] == 12 and row.loc["GM9", "s"] == 600  # the combined cell, exactly
    assert bool(row.loc["GM8", "suppressed"])  # 7 rows in all: withheld, whatever one bucket holds


def test_rule_9_withholds_differencing_by_one_person_bucketed() -> None:
    # the attack of tests/compile/test_register.py through a left join: the first request released and
    # registered; the second (one person more) compared inside the staged program, withheld as a whole
    from tests.compile.test_register import ATTACKS, REGISTER_ONLY, K, whole_withheld
    from tests.compile.test_register import TABLES as PEOPLE_GP
    from werkplaats.compile.register import Register

    first, second = ATTACKS["joined"]
    schemas = with_roles(PEOPLE_GP, {"bsn": "person_key"})
    reg = Register()
    wp.run_local(first, PEOPLE_GP, min_group_size=K, rules=REGISTER_ONLY, register=reg, schemas=schemas)
    assert len(reg) == 1
    a, checked = prepare(second, PEOPLE_GP, min_group_size=K, rules=REGISTER_ONLY, register=reg, schemas=schemas)
    assert a.register and staged_reason(a) is None
    staged, _ = run_staged(a, checked, 2, raw=PEOPLE_GP)
    plain = wp.run_local(second, PEOPLE_GP, min_group_size=K, rules=REGISTER_ONLY, register=reg, schemas=schemas)
    assert not frame_differences(staged, plain) and list(staged["reason"]) == list(plain["reason"])
    assert whole_withheld(staged)


def test_what_does_not_combine_is_refused_never_approximated() -> None:
    q = wp.scan("p").group_by("gemeente").agg(med=wp.col("leeftijd").median())
    a, _ = prepare(q, TABLES)
    reason = staged_reason(a)
    assert reason is not None and "'med'" in reason and "median" in reason and "unbucketed" in reason
    slots = layout(a, {"p": 40}, bucketed=True)
    with pytest.raises(OperationNotDefinedError, match="median"):
        build_staged(a, slots, {"p": 40})
    # a join on another key than the person key, a group-by on another key, a dataset without a person key
    per_age = wp.scan("c").select(leeftijd=wp.col("kosten")).group_by("leeftijd").agg(nk=wp.count())
    other = wp.scan("p").join(per_age, on="leeftijd", how="left").group_by("gemeente").agg(n=wp.count())
    a, _ = prepare(other, TABLES)
    assert "not on the person key" in (staged_reason(a) or "")
    nokey = wp.scan("t").group_by("g").agg(n=wp.count())
    a, _ = prepare(nokey, {"t": pd.DataFrame({"g": ["a", "b"] * 20})})
    assert "'t' has no person key" in (staged_reason(a) or "")


@pytest.mark.slow  # NB: ~15 s; the unbucketed program's equality with plain is tests/mpc/test_differential.py's
def test_the_unbucketed_program_is_the_same_passes() -> None:
    # one bucket, no padding: the staged program's stages over one frame equal build_program's outputs
    a, checked = prepare(SPREAD, TABLES, rules=ROUND_EXTREMES)
    staged, sp = run_staged(a, checked, 1, raw=TABLES)
    assert len(sp.stages) == 2
    rows = {"p": len(checked["p"])}
    slots = layout(a, rows)
    sim = Sim(a)
    keys = [np.asarray([p], dtype=np.int64) for p in split_key(KEY)][: key_inputs(a)]  # NB: the same rule 6 key
    once = frame_of(a, sim(build_program(a, slots, rows), *encode(a, "p", checked["p"], slots), *keys))
    assert not frame_differences(staged, once, loose={"sd", "v"})


def test_partials_combine_by_their_op() -> None:
    leaves = [Leaf((2,), "int64", "add"), Leaf((2,), "int64", "min"), Leaf((2,), "int64", "max"),
              Leaf((1, 3), "int64", "top:3")]  # fmt: skip
    acc = [np.array([1, 2]), np.array([5, -1]), np.array([5, -1]), np.array([[9, 4, 0]])]
    part = [np.array([3, -2]), np.array([4, 0]), np.array([4, 0]), np.array([[7, 5, 4]])]
    out = [np.asarray(x) for x in jax.jit(combine(leaves))(*acc, *part)]
    assert [x.tolist() for x in out] == [[4, 0], [4, -1], [5, 0], [[9, 7, 5]]]
    assert np.asarray(merge_top(np.array([3, 3]), np.array([3, 1]))).tolist() == [3, 3]
    with pytest.raises(OperationNotDefinedError):
        combine([Leaf((1,), "float64", "none")])


@pytest.mark.slow
@settings(max_examples=30)
@given(data=st.data())
def test_the_differential_set_runs_bucketed(data: st.DataObject) -> None:
    # the differential tests' tables and plans (tests/mpc/test_differential.py) with k as the person key, the cell
    # rules drawn as tests/mpc/test_rules_cells.py draws them, in 2 or 3 buckets: equal to plain, or refused
    t = data.draw(tables())
    t["left"] = t["left"].assign(k=t["left"]["k"].fillna(0))  # NB: a person key is never missing
    q, k, rules = data.draw(plans()), data.draw(st.sampled_from([1, 3, 10])), data.draw(RULES)
    rules = replace(rules, cells_per_source=False)
    schemas = with_roles(t, {"k": "person_key", "x": "magnitude", "f": "magnitude", "big": "magnitude"})
    try:
        a, checked = prepare(q, t, rules=rules, min_group_size=k, schemas=schemas)
    except wp.PlanError:
        return  # NB: e.g. rule 1: the person key aggregated
    reason = staged_reason(a)
    if reason is not None:
        assert "median" in reason or "quantile" in reason
        return
    plain = wp.run_local(q, t, rules=rules, perturbation_key=KEY, min_group_size=k, schemas=schemas)
    staged, _ = run_staged(a, checked, data.draw(st.sampled_from([2, 3])), person="k", raw=t)
    assert not frame_differences(staged, plain, loose={"sdf"})


def test_rows_slot_comes_first_and_padded_sizes_are_the_rows() -> None:
    a, _ = prepare(JOINED, TABLES)
    slots = layout(a, {"p": 32, "c": 64}, bucketed=True)
    firsts = [next(s for s in slots if s.dataset == ds) for ds in ("p", "c")]
    assert [(s.column, s.encoding, s.shape, s.rows) for s in firsts] == [(ROW, "ok", (32,), 32), (ROW, "ok", (64,), 64)]
    assert all(s.shape[0] == (32 if s.dataset == "p" else 64) for s in slots)
    assert [s for s in slots if s.column != ROW] == [replace(s) for s in layout(a, {"p": 32, "c": 64})]
