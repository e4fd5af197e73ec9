"""The analyst's attacks of issue 10 on the MPC executor: the rules hold inside the secure computation.

The same tests as tests/compile/test_attacks_disclosure.py (imported from there, so
one definition of each attack), with its ``people`` and ``run`` fixtures replaced: a
small table (tens of rows) and one session cluster. Runs under the default rules (and
``NO_KEYS``) go to the MPC executor; runs under ``cells_only()``, which only show that
the attack leaks without the rules, go to the plain executor (MPC equals plain is
tested elsewhere, and this keeps the MPC runs to about one per attack). The attacks
that take many runs (differencing over many ranges, margins over many keys, one bin
per person) stay plain-only; the plain executor applies the same rules.
"""

from __future__ import annotations

import pandas as pd
import pytest

import werkplaats as wp
from tests.compile.test_attacks_disclosure import (
    CELLS_ONLY,
    People,
    Run,
    make_people,
    test_attack_boolean_mean_reveals_the_one_without,
    test_attack_differencing_by_one_year_in_an_age_range,
    test_attack_dominated_sum,
    test_attack_everyone_except_one_row,
    test_attack_everyone_except_the_person_key,
    test_attack_group_of_exactly_k_min_max_median,
    test_attack_inner_join_drops_one_person,
    test_attack_margin_total_minus_released_sums,
    test_attack_margin_when_group_then_one_sum,
    test_attack_max_of_large_group,
    test_attack_person_key_and_condition_mean,
    test_attack_person_key_arithmetic,
    test_attack_person_key_is_in_when_sum,
    test_attack_quantile_0_and_1_are_min_and_max,
    test_attack_when_person_key_then_income_sum,
    test_attack_when_unique_number_then_income_sum,
)
from werkplaats.catalog.schema import TableSchema
from werkplaats.compile.register import Register
from werkplaats.mpc import LocalCluster

pytestmark = pytest.mark.mpc

__all__ = [
    "test_attack_boolean_mean_reveals_the_one_without",
    "test_attack_differencing_by_one_year_in_an_age_range",
    "test_attack_dominated_sum",
    "test_attack_everyone_except_one_row",
    "test_attack_everyone_except_the_person_key",
    "test_attack_group_of_exactly_k_min_max_median",
    "test_attack_inner_join_drops_one_person",
    "test_attack_margin_total_minus_released_sums",
    "test_attack_margin_when_group_then_one_sum",
    "test_attack_max_of_large_group",
    "test_attack_person_key_and_condition_mean",
    "test_attack_person_key_arithmetic",
    "test_attack_person_key_is_in_when_sum",
    "test_attack_quantile_0_and_1_are_min_and_max",
    "test_attack_when_person_key_then_income_sum",
    "test_attack_when_unique_number_then_income_sum",
]


@pytest.fixture(scope="module")
def people() -> People:
    return make_people(big=30, rest=16)


@pytest.fixture(scope="module")
def boolean_stats() -> tuple[str, ...]:
    """The boolean attack's statistics under MPC: the mean and the sum (var and std add ~15 s of compilation;
    their flag is the mean's, the same code in the kernel: plain-tested)."""
    return ("m", "s")


@pytest.fixture(scope="module")
def run(people: People, cluster: LocalCluster) -> Run:
    """Run a query on the MPC executor (cells_only() runs, the 'before' leg, on the plain one)."""

    def go(q: wp.LazyFrame, rules: wp.DisclosureRules | None = None, tables: dict[str, pd.DataFrame] | None = None,
           schemas: dict[str, TableSchema] | None = None, key: int = 11, register: Register | None = None,
           ) -> pd.DataFrame:  # fmt: skip
        mpc = {} if rules == CELLS_ONLY else {"engine": "mpc", "cluster": cluster}
        return wp.run_local(q, tables or {"p": people.df}, schemas=schemas or {"p": people.schema}, rules=rules,
                            perturbation_key=key, register=register, **mpc)  # fmt: skip

    return go


def test_attack_same_query_again_and_a_no_op_filter_give_the_same_perturbed_counts(run: Run, people: People) -> None:
    """Repeating a request, or disguising it with a filter that removes no one, gives the same noise."""
    q = wp.scan("p").group_by("gemeente").agg(n=wp.count())
    disguised = wp.scan("p").filter(wp.col("leeftijd") >= -1).group_by("gemeente").agg(n=wp.count())
    answers = [tuple(run(x)["n"].fillna(-1).astype(int)) for x in (q, q, disguised)]
    assert answers[0] == answers[1] == answers[2]
    plain = wp.run_local(q, {"p": people.df}, schemas={"p": people.schema}, perturbation_key=11)
    assert tuple(plain["n"].fillna(-1).astype(int)) == answers[0]  # MPC and plain perturb alike
