"""Attacks on the scale work at the program level (issue 13): unions, the merge join, padded buckets.

Fast: the plain executor (the oracle the MPC programs equal; disclosure control is decided from the
same checked plan), the merge kernel in clear JAX (what the parties compute on shares), and the
owners' splitting and encoding. An analyst stacks a dataset on itself or adds one isolated person of
a tiny source to a released table; an owner sends keys that are negative, zero or missing in either
tie order; an owner's bucket holds more rows than the public padded size. Tests marked
``xfail(strict=True)`` show a weakness that is still open, with where to fix it in their reason.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from tests.compile.test_merge import Side, _arrays, _expected, _jitted
from werkplaats.catalog.schema import infer_schema
from werkplaats.compile.analyze import Analysis
from werkplaats.compile.layout import layout
from werkplaats.exceptions import MPCError, PartyFailedError, PlanError
from werkplaats.local import prepare
from werkplaats.mpc import LocalCluster
from werkplaats.mpc import buckets as bk
from werkplaats.mpc.encode import encode
from werkplaats.mpc.process import STAGED_SELFTEST, PartyHeader
from werkplaats.mpc.share import bucket_rows, share_arrays, share_buckets

A, B = wp.scan("ziekenhuis_a/opnamen"), wp.scan("ziekenhuis_b/opnamen")
RULES = wp.DisclosureRules(person_keys=("bsn",))  # NB: the defaults: perturbed counts, every rule on
SECRET = bytes(range(32))


def _hospital(first: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "bsn": pd.array(np.arange(first, first + n), dtype="Int64"),
        "gemeente": pd.Categorical(rng.choice(["Assen", "Emmen"], n), categories=["Assen", "Emmen"]),
        "leeftijd": pd.array(rng.integers(20, 80, n), dtype="Int64"),
        "kosten": pd.array(rng.integers(100, 1000, n), dtype="Int64"),
    })  # fmt: skip


def _plain(q: wp.LazyFrame, t: dict[str, pd.DataFrame], rules: wp.DisclosureRules = RULES) -> pd.DataFrame:
    return wp.run_local(q, t, engine="plain", min_group_size=10, rules=rules, perturbation_key=7)


# -- an analyst and unions -----------------------------------------------------------------------------


def test_a_dataset_stacked_on_itself_does_not_release_a_cell_under_k() -> None:
    a = pd.DataFrame({"bsn": pd.array(np.arange(46), dtype="Int64"),
                      "gemeente": pd.Categorical(["Assen"] * 40 + ["Emmen"] * 6)})  # fmt: skip
    t = {"ziekenhuis_a/opnamen": a, "ziekenhuis_b/opnamen": a.iloc[0:0]}
    alone = _plain(A.group_by("gemeente").agg(n=wp.count()), t).set_index("gemeente")
    assert bool(alone.loc["Emmen", "suppressed"])  # NB: 6 persons, under k: suppressed
    exact = dataclasses.replace(RULES, counts="exact", cells_per_source=False)
    for rules in (RULES, exact):
        try:
            got = _plain(wp.concat([A, A]).group_by("gemeente").agg(n=wp.count()), t, rules).set_index("gemeente")
        except PlanError:
            continue  # NB: refusing the plan is a fix too
        assert bool(got.loc["Emmen", "suppressed"]) and pd.isna(got.loc["Emmen", "n"])


def test_one_person_of_a_tiny_source_is_not_isolated_by_a_union() -> None:
    a, b = _hospital(0, 200, 1), _hospital(1000, 200, 2)
    b.loc[7, ["leeftijd", "gemeente", "kosten"]] = [99, "Emmen", 777]  # NB: the only one aged 90 or over
    t = {"ziekenhuis_a/opnamen": a, "ziekenhuis_b/opnamen": b}
    cells = {"n": wp.count(), "kosten": wp.col("kosten").sum()}
    before = _plain(A.group_by("gemeente").agg(**cells), t).set_index("gemeente")
    union = wp.concat([A, B.filter(wp.col("leeftijd") >= 90)]).group_by("gemeente").agg(**cells)
    after = _plain(union, t).set_index("gemeente")
    assert not before["suppressed"].loc[["Assen", "Emmen"]].any()  # NB: the first release, honest
    diff = after["kosten"].loc["Emmen"] - before["kosten"].loc["Emmen"]
    assert pd.isna(diff) or diff != 777, "the union released one person's value: the difference of two sums"


def test_distinct_on_must_be_a_person_key_so_it_cannot_pick_one_row_per_group() -> None:
    """distinct_on a group column would keep one person's row per group: refused (tests/plan/test_concat.py too)."""
    t = {"ziekenhuis_a/opnamen": _hospital(0, 50, 1), "ziekenhuis_b/opnamen": _hospital(1000, 50, 2)}
    for col in ("gemeente", "leeftijd"):
        q = wp.concat([A, B], distinct_on=col).agg(n=wp.count(), kosten=wp.col("kosten").sum())
        with pytest.raises(PlanError, match=f"distinct on '{col}': it must be a person key"):
            _plain(q, t)
    got = _plain(wp.concat([A, B], distinct_on="bsn").agg(n=wp.count()), t)
    assert not bool(got["suppressed"].iloc[0])  # NB: the person key itself is fine


# -- a hostile owner and the merge join --------------------------------------------------------------


@pytest.mark.parametrize("how", ["inner", "left"])
def test_merge_join_with_negative_zero_and_missing_keys_in_either_tie_order(how: str) -> None:
    """Negative keys pack below padding, a key 0 packs as a missing one does: ties in both orders stay exact."""
    left: Side = ([-7, -3, None, 0, 0, 5], [100, 101, 102, 103, 104, 105], [1, 1, 1, 1, 1, 1])
    for right in (([-7, None, 0, 5], [11, 12, 13, 14], [1, 1, 1, 1]),  # NB: missing before 0
                  ([-7, 0, None, 5], [11, 13, 12, 14], [1, 1, 1, 1])):  # fmt: skip
        out = _jitted(how)(*_arrays(left), *_arrays(right))
        mask, vals, got = _expected(left, right, how)
        assert int(out[-1]) == 1  # NB: sorted as the owners pack it: not withheld
        assert np.array_equal(np.asarray(out[0]), mask) and np.array_equal(np.asarray(out[1]), vals)
        assert np.array_equal(np.asarray(out[2]), got)
    # an owner that sorts by the key's natural order with missing keys first has not sorted as packed: withheld
    natural: Side = ([None, -7, -3, 0, 0, 5], left[1], left[2])
    assert int(_jitted(how)(*_arrays(natural), *_arrays(right))[-1]) == 0


# -- a hostile owner and padded buckets --------------------------------------------------------------


def _w1(n: int) -> tuple[Analysis, dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(5)
    ids = rng.choice(10**9, n, replace=False)
    t = {"l": pd.DataFrame({"bsn": ids, "g": pd.Categorical(rng.choice(["a", "b"], n)), "x": rng.integers(0, 9, n)}),
         "r": pd.DataFrame({"bsn": rng.permutation(ids), "y": rng.integers(0, 9, n)})}  # fmt: skip
    q = wp.scan("l").join(wp.scan("r"), on="bsn").group_by("g").agg(n=wp.count(), y=wp.col("y").sum())
    schemas = {}
    for name, df in t.items():
        s = infer_schema(name, df)
        cols = tuple(dataclasses.replace(c, role="person_key" if c.name == "bsn" else "") for c in s.columns)
        schemas[name] = dataclasses.replace(s, columns=cols)
    a, checked = prepare(q, t, schemas=schemas)
    return a, checked


def test_an_over_full_bucket_is_refused_before_any_bucket_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every person hashed to bucket 0 (an unlucky or a hostile key): refused before the first bucket, no count."""
    a, t = _w1(3000)
    monkeypatch.setattr(bk, "assign", lambda keys, secret, count: np.zeros(len(keys), dtype=np.int64))
    stream = share_buckets(a, t, SECRET, 4)
    with pytest.raises(bk.BucketOverflowError) as e:
        next(stream)
    assert not re.search(r"\d", str(e.value))  # NB: names the dataset, never a bucket's row count


def test_encoding_more_rows_than_the_padded_size_is_refused_never_truncated() -> None:
    """A bucket handed to encode with one row over its padded size: refused, not cut to the size."""
    a, t = _w1(3000)
    padded = bucket_rows(t, 4)
    slots = layout(a, padded, bucketed=True)
    over = pd.concat([t["l"]] * 2, ignore_index=True).iloc[: padded["l"] + 1]
    with pytest.raises(MPCError, match="never truncated"):
        encode(a, "l", over, slots)
    fits = encode(a, "l", over.iloc[: padded["l"]], slots)
    assert int(fits[0].sum()) == padded["l"]  # NB: the row mask: every row real, none dropped


def _oversized_stream(size: int) -> Iterator[list[list[list[bytes]]]]:
    """Three buckets of a one-column table; bucket 1's shares carry twice the padded size (a hostile owner)."""
    for i, n in enumerate((10, 40, 5)):
        rows = 2 * size if i == 1 else size
        mask = (np.arange(rows) < n).astype(np.int64)
        vals = np.zeros(rows, dtype=np.int64)
        vals[:n] = np.arange(n)
        yield share_arrays([mask, vals])


@pytest.mark.mpc
@pytest.mark.xfail(
    strict=True,
    reason=(
        "mpc/party.py:_check_bucket checks a bucket message's index and number of shares but not each share's "
        "shape against the padded size: a bucket share with more rows than the padded size fails the job (never "
        "truncated: SPU enforces shapes), but the reason is SPU's internal 'Enforce fail ... x.shape() == "
        "y.shape()' with a C++ stack trace. Fix: compare each unpacked share's shape with the header's padded "
        "size in _check_bucket (and in the engine's inbox against ShareHeader.rows) and fail with a reason that "
        "names the bucket and the padded size."
    ),
)
def test_a_bucket_share_over_the_padded_size_fails_the_job_with_a_clear_reason(cluster: LocalCluster) -> None:
    h = PartyHeader(job=uuid.uuid4().hex, program=STAGED_SELFTEST[0], size=32, buckets=3)
    with pytest.raises(PartyFailedError) as e:
        cluster.run(h, [[], [], []], buckets=_oversized_stream(32), timeout=120)
    assert "padded" in str(e.value) and "Enforce fail" not in str(e.value), str(e.value)[:200]
