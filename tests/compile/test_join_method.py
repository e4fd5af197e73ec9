"""Which join kernel the SPU compiler uses, read from the compiled program (no MPC run).

The demo's hotspot analysis (`usecases.infection_hotspots`) left-joins the GGD notifications
with the GP patients and the VVT clients on the person key. Both owners sort their rows
(compile/order.py), so the engines merge: the program's only sorts are the hospital admissions'
(their per-person group-by and their join). A size threshold below which small joins sort again
(`MERGE_MIN_ROWS = 2**16`, dc82894; back to 0 in 1bc0452) made the 10K-resident program sort 7,783,
7,945 and 9,349 rows instead (a sort join's output carries both sides' rows into every later
step) and send 3.3x the bytes in 3.6x the secure run (docs/benchmarks.md, "The demo's hotspot
analysis"). It also broke a chain whose small join sorted and whose next, larger join merged:
the merge read the sort join's output as owner-sorted and withheld the whole result (UNSORTED).
"""

from __future__ import annotations

import re
from collections import Counter

import jax
import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats import usecases as uc
from werkplaats.compile.kernels import merge
from werkplaats.compile.kernels.cellkey import key_inputs
from werkplaats.compile.layout import layout
from werkplaats.compile.spu import build_program
from werkplaats.local import prepare
from werkplaats.mpc.runtime import enable_x64
from werkplaats.synth.generate import generate
from werkplaats.synth.write import region_datasets

enable_x64()

# NB: the rows of `generate(1, 10_000)` (bench --workload hotspots --sizes 10K); only the shapes matter here
ROWS_10K = {"ggd/meldingen": 302, "huisartsen/patienten": 7481, "vvt/clienten": 162, "ziekenhuis/opnamen": 1404}


def sorts(fn: object, shapes: list[jax.ShapeDtypeStruct]) -> Counter[int]:
    """Return the sizes (rows) of the sort operations in fn's lowered program, with their counts."""
    text = jax.jit(fn).lower(*shapes).as_text()  # type: ignore[arg-type]
    out: Counter[int] = Counter()
    pending = False
    for line in text.splitlines():
        if '"stablehlo.sort"' in line:
            pending = True
        elif pending and line.lstrip().startswith("})") and ": (tensor<" in line:
            out[int(re.search(r"tensor<(\d+)", line).group(1))] += 1  # type: ignore[union-attr]
            pending = False
    return out


def program_sorts(a: object, rows: dict[str, int]) -> Counter[int]:
    slots = layout(a, rows)  # type: ignore[arg-type]
    shapes = [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in slots]
    shapes += [jax.ShapeDtypeStruct((1,), "int64")] * key_inputs(a)  # type: ignore[arg-type]
    return sorts(build_program(a, slots, rows), shapes)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_forced_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(merge.METHOD_ENV, raising=False)


def test_the_hotspot_program_merges_its_person_key_joins() -> None:
    region = generate(1, 1_000)  # NB: schemas and code lists; the program's shapes are the 10K region's
    schemas = {d.name: d.schema for d in region_datasets(region)}
    q = uc.infection_hotspots(2024, risk_counts=True, hospital=True)
    a, _ = prepare(q, region.tables, schemas=schemas, rules=wp.DisclosureRules(cells_per_source=False))
    got = program_sorts(a, ROWS_10K)
    hosp = ROWS_10K["ziekenhuis/opnamen"]
    # the hospital admissions' group-by per person, then their join with the notifications; nothing larger
    assert got == Counter({hosp: 1, ROWS_10K["ggd/meldingen"] + hosp: 1}), got


def test_a_chain_of_joins_merges_throughout_whatever_the_sizes() -> None:
    # a small join, then a larger one whose left side is the small join's output: merging the second
    # needs the first merged too (order.sorted_on trusts the plan), so every such join merges
    people = wp.scan("a").join(wp.scan("b"), on="bsn", how="left").join(wp.scan("c"), on="bsn", how="left")
    q = people.group_by("g").agg(n=wp.count(), sv=wp.col("v").sum())
    rng = np.random.default_rng(3)
    ids = rng.choice(10**6, 300, replace=False)
    tables = {"a": pd.DataFrame({"bsn": ids[:40], "g": pd.Categorical(rng.choice(["x", "y"], 40))}),
              "b": pd.DataFrame({"bsn": ids[10:50], "u": rng.integers(0, 5, 40)}),
              "c": pd.DataFrame({"bsn": ids[20:260], "v": rng.integers(0, 5, 240)})}  # fmt: skip
    a, _ = prepare(q, tables, rules=wp.DisclosureRules.cells_only())
    for rows in ({"a": 40, "b": 40, "c": 240}, {"a": 40, "b": 40, "c": 100_000}):
        assert program_sorts(a, rows) == Counter(), rows
