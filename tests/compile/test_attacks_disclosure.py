"""The analyst's attacks on one person's data (issue 10), on the plain executor.

Each test is one attack, named after it, asserting that the person's value is NOT
released: the plan is refused (PlanError naming the rule), or the value is withheld
with the rule's reason in the ``reason`` column, or (perturbation) the difference
the attacker computes is noise, not the person's contribution. Where cheap, the test
also runs the attack with ``DisclosureRules.cells_only()`` (the code before these
rules) and asserts that it leaks there: proof that the test can fail.

tests/mpc/test_attacks_disclosure.py runs the same attacks (those of them that run
once or twice) on one MPC cluster with a small table, through the ``run`` and
``people`` fixtures it overrides. No test id or message names a person's value.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.catalog.schema import TableSchema, infer_schema
from werkplaats.compile.register import Register
from werkplaats.result import (
    COMPLEMENT,
    DOMINANCE,
    EXTREME,
    FEW_CONTRIBUTORS,
    FEW_VALUES,
    P_PERCENT,
    QUANTILE_SIDES,
    REGISTER,
    SECONDARY,
    reason_text,
)

K = 10
CELLS_ONLY = wp.DisclosureRules.cells_only()
NO_KEYS = dataclasses.replace(wp.DisclosureRules(), person_keys=())  # the default, but bsn not known as a key
Run = Callable[..., pd.DataFrame]


@dataclasses.dataclass
class People:
    """A gemeente register: a large group with the target, a group of exactly k, a small one, the rest."""

    df: pd.DataFrame
    schema: TableSchema
    target: int  # the target's bsn (row 0): the largest income and the only one of the oldest age
    big: int  # rows of GM01 (the target's gemeente)

    @property
    def x(self) -> pd.Series:
        return self.df.iloc[0]


def make_people(big: int, rest: int, seed: int = 1) -> People:
    rng = np.random.default_rng(seed)
    gem = ["GM01"] * big + ["GM02"] * K + ["GM03"] * 4 + ["GM04"] * rest
    n = len(gem)
    df = pd.DataFrame({
        "bsn": (100_000_000 + rng.choice(900_000_000, n, replace=False)).astype(np.int64),
        "volgnummer": np.arange(n, dtype=np.int64),  # a unique number that is not a person key
        "gemeente": pd.Categorical(gem, categories=["GM01", "GM02", "GM03", "GM04"]),
        "leeftijd": rng.integers(0, 90, n).astype(np.int64),
        "inkomen": rng.integers(10_000, 60_000, n).astype(np.int64),
        "hiv": rng.random(n) < 0.05,
    })  # fmt: skip
    df.loc[0, ["leeftijd", "inkomen", "hiv"]] = [101, 199_999, True]  # the target
    df.loc[1:K, "leeftijd"] = np.arange(K)  # at least k minors in GM01: an age filter removes k or more
    schema = infer_schema("p", df)
    fix = {"inkomen": {"role": "magnitude", "minimum": 0, "maximum": 10_000_000},
           "leeftijd": {"minimum": 0, "maximum": 120}, "volgnummer": {"minimum": 0, "maximum": 1_000_000}}  # fmt: skip
    cols = tuple(dataclasses.replace(c, **fix.get(c.name, {})) for c in schema.columns)
    return People(df, dataclasses.replace(schema, columns=cols), int(df.loc[0, "bsn"]), big)


@pytest.fixture(scope="module")
def people() -> People:
    return make_people(big=1014, rest=72)


@pytest.fixture(scope="module")
def run(people: People) -> Run:
    """Run a query on the people table (plain executor), with the given rules (default: the defaults)."""

    def go(q: wp.LazyFrame, rules: wp.DisclosureRules | None = None, tables: dict[str, pd.DataFrame] | None = None,
           schemas: dict[str, TableSchema] | None = None, key: int = 11, register: Register | None = None,
           ) -> pd.DataFrame:  # fmt: skip
        return wp.run_local(q, tables or {"p": people.df}, schemas=schemas or {"p": people.schema}, rules=rules,
                            perturbation_key=key, register=register)  # fmt: skip

    return go


def withheld_for(out: pd.DataFrame, row: int, stat: str, codes: tuple[int, ...]) -> bool:
    """Whether the statistic is withheld in that row, the reason naming one of the codes' rules."""
    reason = out["reason"][row] or ""
    return bool(pd.isna(out[stat][row])) and any(reason_text(c, K) in reason for c in codes)


def whole_result_withheld(out: pd.DataFrame, code: int) -> bool:
    stats = [c for c in out.columns if c not in ("gemeente", "suppressed", "reason")]
    return bool(out[stats].isna().all().all()) and all(reason_text(code, K) in (r or "") for r in out["reason"])


def refused(run: Run, q: wp.LazyFrame, *words: str, rules: wp.DisclosureRules | None = None) -> str:
    with pytest.raises(wp.PlanError) as e:
        run(q, rules)
    msg = str(e.value)
    assert all(w.lower() in msg.lower() for w in words), msg
    return msg


gm01 = wp.col("gemeente") == "GM01"


# -- rule 1: the person key is a key, not a value; rule 2: contributors, not rows --------------------------


def test_attack_when_person_key_then_income_sum(run: Run, people: People) -> None:
    q = wp.scan("p").filter(gm01).agg(s=wp.when(wp.col("bsn") == people.target).then(wp.col("inkomen"))
                                      .otherwise(0).sum())  # fmt: skip
    assert run(q, CELLS_ONLY)["s"][0] == people.x.inkomen  # the code before the rules leaks it
    refused(run, q, "bsn", "person key")
    out = run(q, NO_KEYS)  # bsn not marked as a key: rule 2 (one contributor) still withholds it
    assert withheld_for(out, 0, "s", (FEW_CONTRIBUTORS, DOMINANCE, P_PERCENT))


def test_attack_person_key_and_condition_mean(run: Run, people: People) -> None:
    q = wp.scan("p").filter(gm01).agg(m=((wp.col("bsn") == people.target) & wp.col("hiv")).mean())
    leak = run(q, CELLS_ONLY)["m"][0] * people.big
    assert round(leak) == int(people.x.hiv)
    refused(run, q, "bsn", "person key")
    out = run(q, NO_KEYS)
    assert withheld_for(out, 0, "m", (FEW_CONTRIBUTORS,))


def test_attack_person_key_is_in_when_sum(run: Run, people: People) -> None:
    q = wp.scan("p").agg(s=wp.when(wp.col("bsn").is_in([people.target])).then(1).otherwise(0).sum())
    refused(run, q, "bsn", "person key")
    out = run(q, NO_KEYS)
    assert withheld_for(out, 0, "s", (FEW_CONTRIBUTORS, FEW_VALUES))


def test_attack_person_key_arithmetic(run: Run, people: People) -> None:
    q = wp.scan("p").agg(s=(wp.col("bsn") - people.target).min())
    refused(run, q, "bsn", "person key")


def test_attack_when_unique_number_then_income_sum(run: Run, people: People) -> None:
    """The same attack through a unique column that is not a person key: rule 2 alone."""
    q = wp.scan("p").agg(s=wp.when(wp.col("volgnummer") == 0).then(wp.col("inkomen")).otherwise(0).sum())
    assert run(q, CELLS_ONLY)["s"][0] == people.x.inkomen
    assert withheld_for(run(q), 0, "s", (FEW_CONTRIBUTORS, DOMINANCE, P_PERCENT))


def boolean_table() -> tuple[pd.DataFrame, TableSchema]:
    """Gemeenten with 39 of 40, 30 of 40, 35 of 35 and 11 of 40 people with a condition (the last the cell
    with the fewest true rows: the one rule 7 withholds with the first's mean)."""
    gem = ["GM01"] * 40 + ["GM02"] * 40 + ["GM03"] * 35 + ["GM04"] * 40
    flag = [True] * 39 + [False] + [True] * 30 + [False] * 10 + [True] * 35 + [True] * 11 + [False] * 29
    df = pd.DataFrame({
        "bsn": np.arange(200_000_001, 200_000_001 + len(gem), dtype=np.int64),
        "gemeente": pd.Categorical(gem, categories=["GM01", "GM02", "GM03", "GM04"]),
        "diabetes": np.array(flag, dtype=bool),
    })  # fmt: skip
    return df, infer_schema("p", df)


@pytest.fixture(scope="module")
def boolean_stats() -> tuple[str, ...]:
    """The statistics of a boolean the attack asks for (the MPC leg: fewer, each costs a compilation)."""
    return ("m", "v", "sd", "s")


def test_attack_boolean_mean_reveals_the_one_without(run: Run, people: People, boolean_stats: tuple[str, ...]) -> None:
    """39 of 40 with a condition: the exact mean (0.975) tells N = 40 and that exactly one lacks it,
    whatever the counts' perturbation; var and std are functions of the mean. Withheld (rule 2: the
    false rows must be 0 or at least k, as the true rows at least k); 30 of 40 and 35 of 35 released.
    A sum of the boolean (a count: the cell's count minus it is the false rows) alike, whatever the counts' mode."""
    df, schema = boolean_table()
    d = wp.col("diabetes")
    aggs = {"m": d.mean(), "v": d.var(), "sd": d.std(), "s": d.sum()}
    q = wp.scan("p").group_by("gemeente").agg(**{k: aggs[k] for k in boolean_stats})
    before = wp.run_local(q, {"p": df}, schemas={"p": schema}, rules=CELLS_ONLY)
    assert before["m"][0] == 0.975  # the leak: 39 / 40
    out = run(q, None, {"p": df}, {"p": schema})
    for stat in ("m", "v", "sd", "s"):
        assert stat not in boolean_stats or withheld_for(out, 0, stat, (FEW_CONTRIBUTORS,)), stat
    assert abs(out["s"][1] - 30) <= wp.DisclosureRules().ptable.D  # NB: a count: perturbed
    close = {"rtol": 0, "atol": 1e-4}  # NB: the MPC's fixed point
    assert np.isclose(out["m"][1], 0.75, **close) and np.isclose(out["m"][2], 1.0, **close)
    assert withheld_for(out, 3, "m", (SECONDARY,))  # rule 7: the line's cheapest complement
    var = 0.75 * 0.25 * 40 / 39
    assert "v" not in boolean_stats or (np.isclose(out["v"][1], var, **close) and np.isclose(out["v"][2], 0, **close))
    assert "sd" not in boolean_stats or np.isclose(out["sd"][1], np.sqrt(var), **close)
    # NB: counts released exactly: the same statistics withheld (the plain executor; the MPC's flag is the same)
    exact_rules = dataclasses.replace(wp.DisclosureRules(), counts="exact")
    exact = wp.run_local(q, {"p": df}, schemas={"p": schema}, rules=exact_rules)
    assert withheld_for(exact, 0, "s", (FEW_CONTRIBUTORS,)) and withheld_for(exact, 0, "m", (FEW_CONTRIBUTORS,))
    assert exact["s"][1] == 30 and exact["s"][2] == 35


# -- rule 4: extremes are disclosive ----------------------------------------------------------------------


def test_attack_max_of_large_group(run: Run, people: People) -> None:
    q = wp.scan("p").group_by("gemeente").agg(top=wp.col("inkomen").max(), oldest=wp.col("leeftijd").max())
    assert run(q, CELLS_ONLY)["top"][0] == people.x.inkomen
    out = run(q)
    assert withheld_for(out, 0, "top", (EXTREME,)) and withheld_for(out, 0, "oldest", (EXTREME,))


def test_attack_quantile_0_and_1_are_min_and_max(run: Run, people: People) -> None:
    q = wp.scan("p").group_by("gemeente").agg(q1=wp.col("inkomen").quantile(1.0), q0=wp.col("leeftijd").quantile(0.0))
    assert run(q, CELLS_ONLY)["q1"][0] == people.x.inkomen
    out = run(q)
    assert withheld_for(out, 0, "q1", (EXTREME, QUANTILE_SIDES)) and withheld_for(
        out, 0, "q0", (EXTREME, QUANTILE_SIDES)
    )


def test_attack_group_of_exactly_k_min_max_median(run: Run, people: People) -> None:
    q = wp.scan("p").group_by("gemeente").agg(lo=wp.col("inkomen").min(), hi=wp.col("inkomen").max(),
                                               med=wp.col("inkomen").median())  # fmt: skip
    leaky = run(q, CELLS_ONLY)
    assert not leaky[["lo", "hi", "med"]].iloc[1].isna().any()  # GM02, exactly k rows: all three released before
    out = run(q)
    assert withheld_for(out, 1, "lo", (EXTREME,)) and withheld_for(out, 1, "hi", (EXTREME,))
    assert withheld_for(out, 1, "med", (QUANTILE_SIDES,))


# -- rule 5: the complement rule ------------------------------------------------------------------------


def test_attack_everyone_except_the_person_key(run: Run, people: People) -> None:
    q = wp.scan("p").filter(wp.col("bsn") != people.target).agg(n=wp.count(), s=wp.col("inkomen").sum())
    whole = wp.scan("p").agg(n=wp.count(), s=wp.col("inkomen").sum())
    assert run(whole, CELLS_ONLY)["s"][0] - run(q, CELLS_ONLY)["s"][0] == people.x.inkomen
    refused(run, q, "bsn", "person key")
    assert whole_result_withheld(run(q, NO_KEYS), COMPLEMENT)


def test_attack_everyone_except_one_row(run: Run, people: People) -> None:
    q = wp.scan("p").filter(wp.col("leeftijd") != 101).agg(n=wp.count(), s=wp.col("inkomen").sum())
    whole = wp.scan("p").agg(n=wp.count(), s=wp.col("inkomen").sum())
    assert run(whole, CELLS_ONLY)["s"][0] - run(q, CELLS_ONLY)["s"][0] == people.x.inkomen
    assert whole_result_withheld(run(q), COMPLEMENT)


def test_attack_inner_join_drops_one_person(run: Run, people: People) -> None:
    others = pd.DataFrame({"bsn": people.df["bsn"][1:].to_numpy(), "x": np.ones(len(people.df) - 1, dtype=np.int64)})
    tables = {"p": people.df, "o": others}
    schemas = {"p": people.schema, "o": infer_schema("o", others)}
    q = wp.scan("p").join(wp.scan("o"), on="bsn").agg(n=wp.count(), s=wp.col("inkomen").sum())
    whole = wp.scan("p").agg(n=wp.count(), s=wp.col("inkomen").sum())
    assert run(whole, CELLS_ONLY)["s"][0] - run(q, CELLS_ONLY, tables, schemas)["s"][0] == people.x.inkomen
    assert whole_result_withheld(run(q, None, tables, schemas), COMPLEMENT)


# -- rule 6: consistent perturbation of counts ------------------------------------------------------------


def test_attack_differencing_by_one_row_in_a_range_gives_noise(run: Run, people: People) -> None:
    """Counts of volgnummer < m and < m + 1 (each filter removes many rows): their difference is 1 exactly
    without perturbation; with it, the difference follows the table's noise (|d - 1| <= 2D, not always 1)."""
    d_max = wp.DisclosureRules().ptable.D
    diffs, exact = [], []
    for m in range(200, 224):
        qs = [wp.scan("p").filter(wp.col("volgnummer") < mm).agg(n=wp.count()) for mm in (m, m + 1)]
        a, b = (int(run(q)["n"][0]) for q in qs)
        diffs.append(b - a)
        if m < 205:
            exact.append(int(run(qs[1], CELLS_ONLY)["n"][0]) - int(run(qs[0], CELLS_ONLY)["n"][0]))
    assert exact == [1] * len(exact)
    assert all(abs(d - 1) <= 2 * d_max for d in diffs)
    assert sum(d == 1 for d in diffs) < 0.75 * len(diffs), "differencing still gives the person's count"
    assert len(set(diffs)) >= 3


def test_attack_near_identical_requests_repeated(run: Run, people: People) -> None:
    """Many near-identical requests (the same cells through no-op filters) give the same answer: averaging
    them removes no noise. (Counts of the same contributors get the same noise: the cell key method.)"""
    base = wp.scan("p").group_by("gemeente")
    variants = [base.agg(n=wp.count())]
    variants += [wp.scan("p").filter(wp.col("leeftijd") >= -t).group_by("gemeente").agg(n=wp.count())
                 for t in range(1, 10)]  # fmt: skip
    variants += [wp.scan("p").filter(wp.col("inkomen") < 1_000_000 + t).group_by("gemeente").agg(n=wp.count())
                 for t in range(10)]  # fmt: skip
    answers = {tuple(run(q)["n"].fillna(-1).astype(int)) for q in variants}
    assert len(answers) == 1
    truth = people.df.groupby("gemeente", observed=False).size()
    perturbed = answers.pop()
    assert abs(perturbed[3] - truth["GM04"]) <= wp.DisclosureRules().ptable.D


# -- rule 9: the query register --------------------------------------------------------------------------


def test_attack_differencing_by_one_year_in_an_age_range(run: Run, people: People) -> None:
    """Two requests whose age ranges differ by one year, which only the target has: each filter removes
    many rows (rule 5 passes), the counts are perturbed, but the income sums differ by the target's income;
    the register refuses the second."""
    q1, q2 = (wp.scan("p").filter(wp.col("leeftijd").is_between(18, hi)).agg(n=wp.count(), s=wp.col("inkomen").sum())
              for hi in (100, 101))  # fmt: skip
    assert run(q2, CELLS_ONLY)["s"][0] - run(q1, CELLS_ONLY)["s"][0] == people.x.inkomen
    reg = Register()
    first = run(q1, register=reg)
    assert not pd.isna(first["s"][0])
    assert whole_result_withheld(run(q2, register=reg), REGISTER)


def test_attack_many_near_identical_requests(run: Run, people: People) -> None:
    """Twenty-four requests, each moving a bound by one row: before, all are released and consecutive ones give
    one person each; with the register, no two released results differ by 1 to k - 1 rows."""
    reg = Register()
    released = []
    for m in range(300, 324):
        q = wp.scan("p").filter(wp.col("volgnummer") < m).agg(s=wp.col("inkomen").sum())
        assert not pd.isna(run(q, CELLS_ONLY)["s"][0])
        out = run(q, register=reg)
        if not pd.isna(out["s"][0]):
            released.append(m)
        else:
            assert whole_result_withheld(out, REGISTER)
    assert released and released[0] == 300
    assert all(b - a >= K for a, b in itertools.pairwise(released)), released


# -- rule 7: margins --------------------------------------------------------------------------------------


def test_attack_margin_when_group_then_one_sum(run: Run, people: People) -> None:
    q = wp.scan("p").agg(s=wp.when(wp.col("gemeente") == "GM03").then(1).otherwise(0).sum())
    assert run(q, CELLS_ONLY)["s"][0] == 4
    assert withheld_for(run(q), 0, "s", (FEW_CONTRIBUTORS, FEW_VALUES))


def test_attack_margin_total_minus_released_counts(run: Run, people: People) -> None:
    """Total count minus the released cells' counts: exactly the suppressed cell before; noise after."""
    by = wp.scan("p").group_by("gemeente").agg(n=wp.count())
    total = wp.scan("p").agg(n=wp.count())

    def derived(rules: wp.DisclosureRules | None, key: int) -> int:
        cells = run(by, rules, key=key)
        return int(run(total, rules, key=key)["n"][0]) - int(cells["n"].fillna(0).sum())

    assert derived(CELLS_ONLY, 1) == 4
    got = [derived(None, key) for key in range(1, 21)]
    assert sum(g == 4 for g in got) < 0.75 * len(got), "the suppressed count comes back from the margin"


def test_attack_margin_total_minus_released_sums(run: Run, people: People) -> None:
    """Total income minus the released cells' sums gives the suppressed cell's sum before; after, more
    than the one small cell is withheld (secondary suppression), so the difference is not its sum.
    The empty 'missing gemeente' cell must not count as the complementary cell: it is known to be 0."""
    by = wp.scan("p").group_by("gemeente").agg(s=wp.col("inkomen").sum())
    total = wp.scan("p").agg(s=wp.col("inkomen").sum())
    small = int(people.df.loc[people.df.gemeente == "GM03", "inkomen"].sum())

    def derived(rules: wp.DisclosureRules | None) -> int | None:
        t = run(total, rules)["s"][0]
        return None if pd.isna(t) else int(t) - int(run(by, rules)["s"].fillna(0).sum())

    assert derived(CELLS_ONLY) == small
    assert derived(None) != small
    out = run(by)
    assert any(reason_text(SECONDARY, K) in (r or "") for r in out["reason"]) or pd.isna(run(total)["s"][0])


# -- rule 8: limits per request ---------------------------------------------------------------------------


def test_attack_one_bin_per_person(run: Run, people: People) -> None:
    small = people.df.iloc[:200].reset_index(drop=True)
    schemas = {"p": dataclasses.replace(people.schema)}
    q = wp.scan("p").with_columns(band=wp.col("leeftijd").cut(list(range(1, 101)))).group_by("band").agg(n=wp.count())
    run(q, CELLS_ONLY, {"p": small}, schemas)  # accepted before
    with pytest.raises(wp.PlanError, match="rule 8"):
        run(q, None, {"p": small}, schemas)


# -- rule 3: dominance ------------------------------------------------------------------------------------


def test_attack_dominated_sum(run: Run, people: People) -> None:
    """A sum dominated by the target (GM02: k rows, one of them a large income) tells the target's income."""
    df = people.df.copy()
    df.loc[people.big, "inkomen"] = 5_000_000  # the first row of GM02: over 90% of its sum
    q = wp.scan("p").group_by("gemeente").agg(s=wp.col("inkomen").sum())
    out = run(q, None, {"p": df})
    assert run(q, CELLS_ONLY, {"p": df})["s"][1] == df.loc[df.gemeente == "GM02", "inkomen"].sum()
    assert withheld_for(out, 1, "s", (DOMINANCE, P_PERCENT))
    assert not pd.isna(out["s"][0])  # the big group's sum is released
