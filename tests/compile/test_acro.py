"""Differential test against ACRO: whatever ACRO flags as disclosive, werkplaats withholds.

ACRO (the statistics offices' output checker, PyPI ``acro``) pins an older pandas than
werkplaats, so it runs in its own virtual environment, created once under
``~/.cache/werkplaats/acro-venv`` (or ``$WERKPLAATS_ACRO_VENV``) and reused, as a
subprocess (tests/compile/acro_driver.py) that answers JSON lines. Random tables and
plans (a count, or a sum or mean of a magnitude column, by one or two keys) go to both;
every cell ACRO flags (threshold 10, dominance n=2 90%, p-ratio 10%, zeros disclosive)
must be withheld by the plain executor under the default rules. werkplaats may be
stricter, never looser. Counts are compared on withheld or released, not on values
(released counts are perturbed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.catalog.schema import infer_schema

ACRO = "acro==1.0.2"
DRIVER = Path(__file__).with_name("acro_driver.py")
G = ["A", "B", "C"]
H = ["x", "y"]


def _venv() -> Path:
    return Path(os.environ.get("WERKPLAATS_ACRO_VENV", Path.home() / ".cache" / "werkplaats" / "acro-venv"))


def _ensure_venv() -> Path:
    """Create ACRO's virtual environment once (a marker file says it is complete); return its python."""
    venv = _venv()
    python = venv / "bin" / "python"
    done = venv / ".werkplaats-complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "acro-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # NB: two test runs at once create it only once
        if done.is_file() and python.is_file():
            return python
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True,
                           timeout=300)  # fmt: skip
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", ACRO],
                           check=True, capture_output=True, timeout=900)  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            err = getattr(e, "stderr", b"") or b""
            tail = err.decode(errors="replace").strip().splitlines()[-3:] if isinstance(err, bytes) else []
            pytest.skip(f"cannot create ACRO's virtual environment at {venv} ({type(e).__name__}: {' / '.join(tail)})")
        done.write_text(ACRO + "\n")
        return python


class Acro:
    """ACRO's driver process: one JSON case in, ACRO's per-cell failed checks out."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen([str(python), str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        first = self._read()
        assert first.get("ready"), first

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "ACRO's driver ended without an answer"
        out: dict[str, Any] = json.loads(line)
        return out

    def flags(self, case: dict[str, Any]) -> dict[tuple[str, ...], list[str]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        assert "error" not in out, out["error"]
        return {tuple(c[:-1]): c[-1] for c in out["cells"]}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def acro() -> Iterator[Acro]:
    a = Acro(_ensure_venv())
    yield a
    a.close()


@st.composite
def cases(draw: st.DrawFn) -> tuple[int, int, float, float, list[str], str]:
    """A table's parameters (seed, rows, share of zeros, share of outliers) and a plan (keys, statistic)."""
    return (draw(st.integers(0, 2**32 - 1)), draw(st.integers(120, 260)), draw(st.sampled_from([0.0, 0.3])),
            draw(st.sampled_from([0.0, 0.02, 0.05])), draw(st.sampled_from([["g"], ["g", "h"]])),
            draw(st.sampled_from(["count", "sum", "mean"])))  # fmt: skip


def table(seed: int, n: int, zeros: float, whales: float) -> pd.DataFrame:
    """Skewed groups (so that some cells are small), a magnitude with zeros and outliers."""
    rng = np.random.default_rng(seed)
    pg = rng.dirichlet([0.6, 0.6, 0.6])
    v = rng.integers(1, 60, n)
    v[rng.random(n) < zeros] = 0
    big = rng.random(n) < whales
    v[big] = rng.integers(5_000, 50_000, int(big.sum()))
    return pd.DataFrame({
        "g": pd.Categorical(rng.choice(G, n, p=pg), categories=G),
        "h": pd.Categorical(rng.choice(H, n, p=[0.85, 0.15]), categories=H),
        "v": v.astype(np.int64),
    })  # fmt: skip


def _werkplaats(df: pd.DataFrame, keys: list[str], stat: str, rules: wp.DisclosureRules | None = None) -> pd.DataFrame:
    agg = {"count": wp.count(), "sum": wp.col("v").sum(), "mean": wp.col("v").mean()}[stat]
    schema = infer_schema("t", df)
    schema = dataclasses.replace(schema, columns=tuple(
        dataclasses.replace(c, role="magnitude", minimum=0, maximum=100_000) if c.name == "v" else c
        for c in schema.columns))  # fmt: skip
    q = wp.scan("t").group_by(*keys).agg(s=agg)
    return wp.run_local(q, {"t": df}, schemas={"t": schema}, rules=rules, perturbation_key=7)


def _compare(acro: Acro, df: pd.DataFrame, keys: list[str], stat: str,
             rules: wp.DisclosureRules | None = None) -> tuple[int, int, list[str]]:  # fmt: skip
    """Return (cells ACRO flags, cells it passes, descriptions of flagged cells werkplaats released)."""
    case = {"rows": {c: [str(x) if c != "v" else int(x) for x in df[c]] for c in df.columns},
            "keys": keys, "stat": stat, "value": "v"}  # fmt: skip
    flags = acro.flags(case)
    try:
        out = _werkplaats(df, keys, stat, rules)
    except wp.PlanError:
        return sum(1 for f in flags.values() if f), sum(1 for f in flags.values() if not f), []  # refused: stricter
    released = {}
    for _, row in out.iterrows():
        if any(pd.isna(row[k]) for k in keys):
            continue  # the missing-key cell: ACRO has no such cell (the keys have no nulls here)
        released[tuple(str(row[k]) for k in keys)] = not pd.isna(row["s"])
    looser = []
    for cell, failed in flags.items():
        key = cell[: len(keys)]
        if failed and released.get(key, False):
            looser.append(f"{stat} by {keys} cell {key}: ACRO flags {failed}")  # NB: names checks, not values
    return sum(1 for f in flags.values() if f), sum(1 for f in flags.values() if not f), looser


@settings(max_examples=20)
@given(case=cases())
def test_werkplaats_withholds_every_cell_acro_flags(acro: Acro, case: tuple[int, int, float, float, list[str], str]
                                                   ) -> None:  # fmt: skip
    seed, n, zeros, whales, keys, stat = case
    _, _, looser = _compare(acro, table(seed, n, zeros, whales), keys, stat)
    assert not looser, looser


def test_the_comparison_can_fail_cells_only_releases_what_acro_flags(acro: Acro) -> None:
    """The same comparison with only the cell rule finds flagged cells released (a dominated sum)."""
    rng = np.random.default_rng(3)
    v = rng.integers(1, 60, 200)
    v[:2] = [40_000, 30_000]  # two whales in group A dominate its sum
    df = pd.DataFrame({"g": pd.Categorical(["A"] * 100 + ["B"] * 50 + ["C"] * 50, categories=G),
                       "h": pd.Categorical(["x"] * 200, categories=H), "v": v.astype(np.int64)})  # fmt: skip
    flagged, passed, looser = _compare(acro, df, ["g"], "sum", wp.DisclosureRules.cells_only())
    assert flagged >= 1 and passed >= 1
    assert looser, "with the cell rule alone the dominated sum is released, and ACRO flags it"
    _, _, looser = _compare(acro, df, ["g"], "sum")
    assert not looser, looser
    out = _werkplaats(df, ["g"], "sum")
    # NB: A is withheld (dominance), and one of B and C with it (secondary suppression, rule 7); not both
    assert out.loc[out.g.isin(["B", "C"]), "s"].notna().sum() >= 1, "undominated sums of 50 contributors are released"
