"""Rule 6 on the plain executor: the perturbation table, record keys, and perturbed counts against the table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.compile.perturb import record_keys_np, round_np, split_key
from werkplaats.compile.ptable import RESOLUTION, last_row, noise, rows, support, table
from werkplaats.compile.rules import DisclosureRules, PTable

TABLES = [PTable(), PTable(3, 2.0, 2), PTable(5, 3.0, 0), PTable(1, 0.5, 0), PTable(4, 2.5, 1)]


@pytest.mark.parametrize("pt", TABLES, ids=str)
def test_rows_are_distributions_with_the_stated_constraints(pt: PTable) -> None:
    assert [r.i for r in rows(pt)] == list(range(last_row(pt) + 1))
    for r in rows(pt):
        assert sum(r.counts) == RESOLUTION and min(r.counts) >= 0
        allowed = set(support(r.i, pt))
        for v, c in zip(r.values, r.counts, strict=True):
            if c:
                assert v in allowed and r.i + v >= 0 and not 1 <= r.i + v <= pt.js and abs(v) <= pt.D
        assert abs(r.mean) <= 1 / RESOLUTION  # NB: unbiased up to the 1/256 resolution
        if r.i == 0:
            assert r.counts == (RESOLUTION,)  # an empty cell stays empty
            continue
        vs = [v for v in support(r.i, pt)]
        bound = -min(vs) * max(vs)
        assert abs(r.var - min(pt.V, bound)) <= 0.05  # the variance V where feasible, else the largest possible


def test_table_is_deterministic_and_published_with_its_stated_moments() -> None:
    t = table(PTable())
    assert t.equals(table(PTable()))
    assert {"i", "v", "p", "ck_from", "ck_to", "row_mean", "row_var"} <= set(t.columns)
    for _i, g in t.groupby("i"):
        assert g["p"].sum() == pytest.approx(1.0)
        assert (g["p"] * g["v"]).sum() == pytest.approx(g["row_mean"].iloc[0])
        assert list(g["ck_from"])[1:] == list(g["ck_to"])[:-1] and g["ck_to"].iloc[-1] == RESOLUTION


@pytest.mark.parametrize("pt", TABLES, ids=str)
def test_noise_over_all_cell_keys_has_exactly_the_table_frequencies(pt: PTable) -> None:
    ck = np.arange(RESOLUTION)
    for r in rows(pt):
        got = noise(pt, np.full(RESOLUTION, r.i), ck)
        freq = {v: int((got == v).sum()) for v in r.values}
        assert freq == dict(zip(r.values, r.counts, strict=True))
    big = noise(pt, np.full(RESOLUTION, 10_000), ck)  # every larger count uses the last row
    assert (big == noise(pt, np.full(RESOLUTION, last_row(pt)), ck)).all()


def test_record_keys_are_uniform_keyed_and_deterministic() -> None:
    x = np.arange(100_000, dtype=np.int64) * 7919 + 10**8
    ok = np.ones_like(x)
    a = record_keys_np(x, ok, 12345)
    assert (a == record_keys_np(x, ok, 12345)).all()
    assert a.min() >= 0 and a.max() < 256
    freq = np.bincount(a, minlength=256)
    chi2 = ((freq - len(x) / 256) ** 2 / (len(x) / 256)).sum()
    assert chi2 < 350  # 255 degrees of freedom: the 99.9th percentile is ~330
    b = record_keys_np(x, ok, 12346)  # a neighbouring key: unrelated record keys
    assert (a == b).mean() < 0.01
    assert (record_keys_np(x, np.zeros_like(x), 12345) == 0).all()  # a missing person key counts 0


def test_key_parts_add_up_to_the_key() -> None:
    for key in (0, 1, 2**63, 2**64 - 1, 123456789):
        parts = split_key(key)
        assert len(parts) == 3 and sum(parts) % 2**64 == key


def test_rounding_to_the_nearest_multiple() -> None:
    assert round_np(np.array([0, 2, 3, 7, 8, 12, 13]), 5).tolist() == [0, 0, 5, 5, 10, 10, 15]


# --- perturbed counts on the plain executor ---------------------------------------------------

CELLS = 150
CODES = [f"c{i:03d}" for i in range(CELLS)]


def _people(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "bsn": rng.choice(10**9, n, replace=False),
        "g": pd.Categorical([CODES[i] for i in rng.integers(0, CELLS, n)], categories=CODES),
        "ziek": rng.integers(0, 2, n).astype(bool),
        "leeftijd": rng.integers(0, 100, n),
    })  # fmt: skip


PEOPLE = _people(8_000)
Q = wp.scan("t").group_by("g").agg(n=wp.count(), z=wp.col("ziek").sum(), m=wp.col("leeftijd").mean())
EXACT = wp.run_local(Q, {"t": PEOPLE}, rules=DisclosureRules.cells_only())


def _released(df: pd.DataFrame, col: str) -> np.ndarray:
    return df[col].to_numpy(dtype=float)[:CELLS]


def test_same_query_twice_gives_the_same_answer() -> None:
    a = wp.run_local(Q, {"t": PEOPLE}, perturbation_key=99)
    b = wp.run_local(Q, {"t": PEOPLE}, perturbation_key=99)
    assert a.equals(b)
    shuffled = PEOPLE.sample(frac=1.0, random_state=1).reset_index(drop=True)  # row order does not matter
    assert wp.run_local(Q, {"t": shuffled}, perturbation_key=99).equals(a)


def test_counts_are_perturbed_means_are_not_and_a_different_key_gives_different_noise() -> None:
    a = wp.run_local(Q, {"t": PEOPLE}, perturbation_key=1)
    b = wp.run_local(Q, {"t": PEOPLE}, perturbation_key=2)
    assert (a["suppressed"] == EXACT["suppressed"]).all()  # suppression is decided on true counts
    for col in ("n", "z"):
        da, db = _released(a, col) - _released(EXACT, col), _released(b, col) - _released(EXACT, col)
        assert np.abs(da).max() <= PTable().D and (da != 0).mean() > 0.4
        assert (da != db).mean() > 0.4
    assert np.allclose(_released(a, "m"), _released(EXACT, "m"))


def test_bias_and_variance_follow_the_table() -> None:
    noises = []
    for key in range(12):
        got = wp.run_local(Q, {"t": PEOPLE}, perturbation_key=key)
        noises.append(_released(got, "n") - _released(EXACT, "n"))
    v = np.concatenate(noises)  # 1,800 cells, each with count >= last row
    row = rows(PTable())[-1]
    se = np.sqrt(row.var / len(v))
    assert abs(v.mean() - row.mean) < 4 * se
    assert v.var() == pytest.approx(row.var, rel=0.15)
    freq = np.array([(v == x).sum() for x in row.values])
    expected = np.array(row.counts) / RESOLUTION * len(v)
    chi2 = ((freq - expected) ** 2 / expected).sum()
    assert chi2 < 20  # 4 degrees of freedom: the 99.9th percentile is ~18.5


def test_differencing_one_person_yields_noise_that_follows_the_table() -> None:
    """The attack of the issue: two queries differing by one row in a cell give that person's count."""
    q = wp.scan("t").filter(wp.col("leeftijd") >= 1).group_by("g").agg(n=wp.count())
    rest = PEOPLE[PEOPLE["leeftijd"] != 0]
    one = rest.groupby("g", observed=False).head(1).assign(leeftijd=0)  # exactly one person aged 0 per cell
    world = pd.concat([rest, one], ignore_index=True)
    q0 = wp.scan("t").filter(wp.col("leeftijd") >= 0).group_by("g").agg(n=wp.count())

    exact = DisclosureRules.cells_only()
    diff_exact = _released(wp.run_local(q0, {"t": world}, rules=exact), "n") - _released(
        wp.run_local(q, {"t": world}, rules=exact), "n")  # fmt: skip
    assert (diff_exact == 1).all()  # without rule 6 the difference is each cell's one person

    rules = replace(DisclosureRules(), complement=False)  # NB: each filter removes 0 or many rows anyway
    diffs = []
    for key in range(6):
        d = _released(wp.run_local(q0, {"t": world}, rules=rules, perturbation_key=key), "n") - _released(
            wp.run_local(q, {"t": world}, rules=rules, perturbation_key=key), "n")  # fmt: skip
        diffs.append(d - 1)
    d = np.concatenate(diffs)  # the difference of two cells' independent noises
    p = np.array(rows(PTable())[-1].counts) / RESOLUTION
    conv = np.convolve(p, p[::-1])  # the distribution of v1 - v2, for -2D..2D
    freq = np.array([(d == x).sum() for x in range(-2 * PTable().D, 2 * PTable().D + 1)])
    assert freq.sum() == len(d)
    assert (d == 0).mean() < 0.35  # the person's own 1 shows only as often as two noises happen to agree
    keep = conv * len(d) >= 5
    chi2 = (((freq - conv * len(d)) ** 2 / (conv * len(d)))[keep]).sum()
    assert chi2 < 27  # at most 8 degrees of freedom: the 99.9th percentile is ~26


def test_counts_round_mode_rounds_released_counts() -> None:
    got = wp.run_local(Q, {"t": PEOPLE}, rules=DisclosureRules(counts="round"))
    for col in ("n", "z"):
        vals = _released(got, col)
        assert (vals % 5 == 0).all()
        assert (np.abs(vals - _released(EXACT, col)) <= 2).all()


def test_without_a_person_key_counts_are_rounded() -> None:
    t = PEOPLE.drop(columns=["bsn"])
    got = wp.run_local(Q, {"t": t}, perturbation_key=1)
    assert (_released(got, "n") % 5 == 0).all()
    from werkplaats.local import prepare

    a, _ = prepare(Q, {"t": t})
    assert a.rules.counts == "round"  # so that rule 7 treats them as rounded, not perturbed
    assert prepare(Q, {"t": PEOPLE})[0].rules.counts == "perturb"


def test_cli_prints_the_published_table() -> None:
    from typer.testing import CliRunner

    from werkplaats.cli.app import app

    got = CliRunner().invoke(app, ["rules", "ptable"])
    assert got.exit_code == 0
    assert "3+" in got.output and "16/256" in got.output and "0.9922" in got.output
    assert CliRunner().invoke(app, ["rules", "ptable", "--D", "-1"]).exit_code != 0
