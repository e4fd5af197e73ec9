"""Rules 5 and 7 in the plain executor: the complement rule and secondary suppression (margins).

The attacker's queries (what the rules block) and the honest ones (what they let through).
The MPC executor runs the same queries in tests/mpc/test_rules_structure.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.compile import plain
from werkplaats.compile.kernels import margins
from werkplaats.compile.kernels.margins import secondary
from werkplaats.local import prepare
from werkplaats.result import COMPLEMENT, REVEALED, SECONDARY

K = 10
N = 60
RNG = np.random.default_rng(10)
# NB: gemeente D holds 3 people, the others many; every birth date is unique
GEMEENTE = ["A"] * 25 + ["B"] * 20 + ["C"] * 12 + ["D"] * 3
PEOPLE = pd.DataFrame({
    "bsn": np.arange(N),
    "gemeente": pd.Categorical(GEMEENTE, categories=["A", "B", "C", "D"]),
    "geboortedatum": [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in RNG.permutation(20_000)[:N]],
    "inkomen": RNG.integers(1_000, 90_000, N),
    "even": np.arange(N) % 2 == 0,
    "nr": np.arange(N),  # NB: not a person key: a row number the filters below cut at
})  # fmt: skip
# the right side of a join lacks one person (bsn 7)
GP = pd.DataFrame({"bsn": [b for b in range(N) if b != 7], "chronisch": RNG.random(N - 1) < 0.5})
TABLES = {"p": PEOPLE, "g": GP}
X = 7  # the target
D = PEOPLE["geboortedatum"][X]

COMPLEMENT_ONLY = replace(wp.DisclosureRules.cells_only(), complement=True)
SECONDARY_ONLY = replace(wp.DisclosureRules.cells_only(), secondary=True)


def run(q: wp.LazyFrame, rules: wp.DisclosureRules, tables: dict[str, pd.DataFrame] = TABLES) -> pd.DataFrame:
    return wp.run_local(q, tables, engine="plain", min_group_size=K, rules=rules, perturbation_key=1)


def whole_withheld(out: pd.DataFrame) -> bool:
    return bool(out["suppressed"].all()) and all(r.startswith("the whole result: ") for r in out["reason"])


def total_income() -> wp.LazyFrame:
    return wp.scan("p").agg(n=wp.count(), s=wp.col("inkomen").sum())


# --- rule 5: the complement rule -------------------------------------------------------------


def test_everyone_except_x_leaks_without_the_rule_and_is_withheld_with_it() -> None:
    everyone_but_x = wp.scan("p").filter(wp.col("geboortedatum") != D).agg(n=wp.count(), s=wp.col("inkomen").sum())
    whole = run(total_income(), wp.DisclosureRules.cells_only())
    leak = run(everyone_but_x, wp.DisclosureRules.cells_only())
    assert whole["s"][0] - leak["s"][0] == PEOPLE["inkomen"][X]  # NB: the attack, without rule 5
    out = run(everyone_but_x, COMPLEMENT_ONLY)
    assert whole_withheld(out) and out["s"].isna().all()
    assert "a filter or join in the plan removes between 1 and 9 rows" in out["reason"][0]
    default = run(everyone_but_x, wp.DisclosureRules())
    assert whole_withheld(default)


def test_an_inner_join_whose_right_side_lacks_one_person_is_withheld() -> None:
    q = wp.scan("p").join(wp.scan("g"), on="bsn").agg(n=wp.count(), s=wp.col("inkomen").sum())
    leak = run(q, wp.DisclosureRules.cells_only())
    assert run(total_income(), wp.DisclosureRules.cells_only())["s"][0] - leak["s"][0] == PEOPLE["inkomen"][X]
    assert whole_withheld(run(q, COMPLEMENT_ONLY))


def test_an_inner_join_with_a_unique_left_side_counts_the_right_rows_it_drops() -> None:
    q = wp.scan("g").join(wp.scan("p"), on="bsn").agg(n=wp.count(), s=wp.col("inkomen").sum())
    leak = run(q, wp.DisclosureRules.cells_only())
    assert run(total_income(), wp.DisclosureRules.cells_only())["s"][0] - leak["s"][0] == PEOPLE["inkomen"][X]
    assert whole_withheld(run(q, COMPLEMENT_ONLY))
    many = pd.DataFrame({"bsn": np.arange(N - K), "chronisch": True})  # NB: the right side has K rows more
    assert run(q, COMPLEMENT_ONLY, {"p": PEOPLE, "g": many})["n"][0] == N - K


def test_a_filter_inside_a_joined_per_person_aggregate_counts_too() -> None:
    per_person = wp.scan("p").filter(wp.col("geboortedatum") != D).group_by("bsn").agg(i=wp.col("inkomen").sum())
    q = wp.scan("p").join(per_person, on="bsn", how="left").agg(s=wp.col("i").sum())
    assert whole_withheld(run(q, COMPLEMENT_ONLY))


@pytest.mark.parametrize(("removed", "withheld"), [(0, False), (1, True), (K - 1, True), (K, False), (N - 1, False)])
def test_the_rows_a_filter_removes_are_zero_or_at_least_k(removed: int, withheld: bool) -> None:
    q = wp.scan("p").filter(wp.col("nr") >= removed).group_by("gemeente").agg(n=wp.count())
    out = run(q, COMPLEMENT_ONLY)
    assert whole_withheld(out) == withheld
    if not withheld:
        truth = PEOPLE[PEOPLE.nr >= removed].groupby("gemeente", observed=False).size()
        released = out.dropna(subset=["n"])
        assert released["n"].tolist() == [truth[g] for g in released["gemeente"]]


def test_honest_filters_and_joins_pass() -> None:
    many = wp.scan("p").filter(wp.col("gemeente") == "A").agg(n=wp.count(), s=wp.col("inkomen").sum())
    out = run(many, COMPLEMENT_ONLY)
    assert out["n"][0] == 25 and out["s"][0] == PEOPLE["inkomen"][:25].sum()
    none = wp.scan("p").filter(wp.col("inkomen") > 0).agg(n=wp.count())
    assert run(none, COMPLEMENT_ONLY)["n"][0] == N
    full_right = pd.DataFrame({"bsn": np.arange(N), "chronisch": [*GP["chronisch"].tolist(), True]})
    joined = wp.scan("p").join(wp.scan("g"), on="bsn").agg(n=wp.count())
    assert run(joined, COMPLEMENT_ONLY, {"p": PEOPLE, "g": full_right})["n"][0] == N


def test_the_plain_executor_reports_the_whole_result_code() -> None:
    q = wp.scan("p").filter(wp.col("geboortedatum") != D).group_by("gemeente").agg(n=wp.count())
    a, checked = prepare(q, TABLES, min_group_size=K, rules=COMPLEMENT_ONLY)
    rev = plain.run_plain(a, checked)
    assert rev.withheld == COMPLEMENT
    assert not rev.cell_ok.any() and not rev.stats["n"][0].any() and not rev.stats["n"][1].any()
    a2, checked2 = prepare(wp.scan("p").group_by("gemeente").agg(n=wp.count()), TABLES, min_group_size=K,
                           rules=COMPLEMENT_ONLY)  # fmt: skip
    assert plain.run_plain(a2, checked2).withheld == REVEALED


# --- rule 7: margins (secondary suppression) -------------------------------------------------

ROUND = replace(wp.DisclosureRules.cells_only(), counts="round", secondary=True)


def by_gemeente() -> wp.LazyFrame:
    return wp.scan("p").group_by("gemeente").agg(n=wp.count(), s=wp.col("inkomen").sum(), m=wp.col("inkomen").mean())


def by_two_keys() -> wp.LazyFrame:
    return wp.scan("p").group_by("gemeente", "even").agg(n=wp.count(), s=wp.col("inkomen").sum())


def margin_queries() -> list[tuple[wp.LazyFrame, wp.DisclosureRules]]:
    """The queries of this section, with their rules (the MPC test runs them too)."""
    return [(by_gemeente(), replace(ROUND, contributors=True)), (by_two_keys(), SECONDARY_ONLY)]


def assert_protected(out: pd.DataFrame, keys: list[str], stat: str) -> None:
    """Every line with a released cell: its suppressed non-empty cells are none, or several holding >= K rows."""
    truth = PEOPLE.groupby(keys, observed=False, dropna=False).size()
    held = [int(truth.get(tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]], 0)) if not any(
        pd.isna(r[k]) for k in keys) else 0 for _, r in out.iterrows()]  # fmt: skip
    frame = out.assign(held=held, sup=out[stat].isna())
    for key in keys:
        others = [k for k in keys if k != key]
        lines = frame.groupby(others, dropna=False) if others else [((), frame)]
        for _, line in lines:
            hidden = line[line.sup & (line.held > 0)]
            assert line.sup.all() or len(hidden) == 0 or (len(hidden) >= 2 and hidden.held.sum() >= K), line


def test_a_total_minus_the_released_cells_gives_the_suppressed_count_without_the_rule() -> None:
    total = run(total_income(), wp.DisclosureRules.cells_only())
    leak = run(by_gemeente(), wp.DisclosureRules.cells_only())
    assert leak["n"].isna().tolist() == [False, False, False, True, True]
    assert total["n"][0] - leak["n"].sum() == 3  # NB: gemeente D's count, derived from the margin
    assert total["s"][0] - leak["s"].sum() == PEOPLE["inkomen"][GEMEENTE.index("D") :].sum()


@pytest.mark.parametrize("rules", [ROUND, SECONDARY_ONLY], ids=["round", "exact"])
def test_margin_attack_on_counts_and_sums_is_blocked(rules: wp.DisclosureRules) -> None:
    out = run(by_gemeente(), rules)
    # C (12 rows) is the released cell with the fewest rows: withheld with D (3 rows)
    assert out["n"].isna().tolist() == [False, False, True, True, True]
    assert out["s"].isna().tolist() == [False, False, True, True, True]
    assert out["m"].isna().tolist() == [False, False, True, True, True]  # NB: C's mean times C's count: its sum
    assert "secondary suppression" in out["reason"][2]
    assert_protected(out, ["gemeente"], "n")
    assert_protected(out, ["gemeente"], "s")
    total = run(total_income(), rules)
    assert total["s"][0] - out["s"].sum() == PEOPLE["inkomen"][GEMEENTE.index("C") :].sum()  # NB: C and D together


def test_two_keys_every_line_is_protected() -> None:
    out = run(by_two_keys(), SECONDARY_ONLY)
    cells_only = run(by_two_keys(), wp.DisclosureRules.cells_only())
    assert out["n"].isna().sum() > cells_only["n"].isna().sum()
    assert out["n"].notna().sum() == 2  # NB: gemeente A's two cells; B's are withheld to hide C's and D's
    assert_protected(out, ["gemeente", "even"], "n")
    assert_protected(out, ["gemeente", "even"], "s")


def test_a_disguised_count_of_a_suppressed_cell_ends_up_withheld() -> None:
    q = wp.scan("p").agg(d=wp.when(wp.col("gemeente") == "D").then(1).otherwise(0).sum())
    assert run(q, wp.DisclosureRules.cells_only())["d"][0] == 3  # NB: the leak without rules 2 and 7
    assert run(q, wp.DisclosureRules())["d"].isna().all()


def test_honest_tables_lose_nothing_and_perturbed_counts_are_left_to_rule_6() -> None:
    big = wp.scan("p").filter(wp.col("gemeente") != "D").group_by("gemeente").agg(n=wp.count())
    out = run(big, replace(SECONDARY_ONLY, complement=False))
    assert out["n"].isna().tolist() == [False, False, False, True, True]  # NB: D and missing: empty, nothing to hide
    # NB: perturbation needs record keys, so a person key (cells_only names none); without one counts are rounded
    perturbed = run(by_gemeente(), replace(SECONDARY_ONLY, counts="perturb", person_keys=("bsn",)))
    assert perturbed["n"].isna().tolist() == [False, False, False, True, True]  # counts: rule 6 covers them
    assert perturbed["s"].isna().tolist() == [False, False, True, True, True]  # sums: rule 7
    assert perturbed["m"].isna().tolist() == [False, False, True, True, True]  # and means


def test_secondary_on_a_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    # rows: the lines of the first key; a 3 x 3 grid, cell (1, 1) holds 3, cell (2, 2) none
    codes = np.array([1, 1, 1, 1, 0, 1, 1, 1, 0])
    units = np.array([20, 30, 40, 12, 3, 50, 25, 25, 0])
    got, added = secondary(codes, units, (3, 3), K, np)
    assert got.tolist() == [1, 1, 1, SECONDARY, 0, 1, SECONDARY, SECONDARY, 0]
    assert added.tolist() == [0, 0, 0, 1, 0, 0, 1, 1, 0]
    # the second row has no released cell: left alone; the first column hides the 3 behind 30, the first row
    # then hides that 30 (a single suppressed cell in its line) behind the other 30
    got, _ = secondary(np.array([1, 1, 0, 0]), np.array([30, 30, 3, 0]), (2, 2), K, np)
    assert got.tolist() == [SECONDARY, SECONDARY, 0, 0]
    assert secondary(np.array([0, 0]), np.array([3, 0]), (2,), K, np)[0].tolist() == [0, 0]
    # not protected after the rounds (here: none): the statistic is withheld in every cell
    monkeypatch.setattr(margins, "ROUNDS", 0)
    got, _ = secondary(codes, units, (3, 3), K, np)
    assert got.tolist() == [SECONDARY, SECONDARY, SECONDARY, SECONDARY, 0, SECONDARY, SECONDARY, SECONDARY, 0]
