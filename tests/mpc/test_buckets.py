"""Bucketed execution, runtime side: buckets at the owner, padding, the party protocol, spooling."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.compile.layout import layout
from werkplaats.compile.staged import ROW
from werkplaats.exceptions import MPCError, PartyFailedError
from werkplaats.local import prepare
from werkplaats.mpc import LocalCluster
from werkplaats.mpc import buckets as bk
from werkplaats.mpc.encode import encode
from werkplaats.mpc.process import STAGED_SELFTEST, PartyHeader
from werkplaats.mpc.share import reconstruct_arrays, share_arrays

SECRET = bytes(range(32))


def _w1(n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(100_000_000, 999_999_999), size=int(n * 1.2), replace=False)
    left = pd.DataFrame({"bsn": ids[:n], "gemeente": pd.Categorical(rng.choice(["A", "B", "C"], n)),
                         "leeftijd": rng.integers(0, 100, n)})  # fmt: skip
    right_ids = np.concatenate([rng.choice(ids[:n], int(n * 0.8), replace=False), ids[n:]])[:n]
    right = pd.DataFrame({"bsn": rng.permutation(right_ids), "chronisch": rng.random(n) < 0.35})
    return {"l": left, "r": right}


def _query() -> wp.LazyFrame:
    return (wp.scan("l").join(wp.scan("r"), on="bsn").filter(wp.col("leeftijd") >= 18).group_by("gemeente")
            .agg(n=wp.count(), leeftijd=wp.col("leeftijd").mean(), chronisch=wp.col("chronisch").sum()))  # fmt: skip


# --- at the owner ---------------------------------------------------------------------------


def test_padded_size_is_public_bounded_and_on_the_ladder() -> None:
    assert bk.padded_size(1234, 1) == 1234
    for real in (1000, 50_000, 1_000_000, 10_000_000):
        for count in (2, 4, 16, 256):
            p = bk.padded_size(real, count)
            mean = real / count
            assert p >= mean + 6 * np.sqrt(mean)  # NB: far above the largest bucket of a fair hash
            assert p % bk.MIN_PADDED == 0 and p <= max(2 * mean, 4 * bk.MIN_PADDED) + 8 * np.sqrt(mean) + 2048
    assert bk.padded_size(1_000_000, 8) == bk.padded_size(1_001_000, 8)  # NB: nearby sizes share a program
    assert bk.padded_size(1_000_000, 8) <= 1.2 * 1_000_000 / 8


def test_assign_is_keyed_deterministic_and_the_same_in_every_table() -> None:
    keys = pd.Series(np.arange(100_000, 110_000))
    b = bk.assign(keys, SECRET, 8)
    assert b.min() == 0 and b.max() == 7
    assert np.array_equal(b, bk.assign(keys.sample(frac=1, random_state=1).sort_index(), SECRET, 8))
    assert np.array_equal(bk.assign(keys.astype(str), SECRET, 8), b)  # NB: the canonical key: "100000" either way
    assert not np.array_equal(bk.assign(keys, bytes(32), 8), b)  # NB: another key, another assignment
    counts = np.bincount(b, minlength=8)
    assert counts.min() > 1000  # NB: about 1250 each
    with pytest.raises(ValueError, match="16 bytes"):
        bk.assign(keys, b"short", 8)


def test_split_keeps_every_row_once_and_persons_together() -> None:
    t = _w1(3000)
    a, checked = prepare(_query(), t)
    parts = {d: bk.split(a, d, df, SECRET, 4) for d, df in checked.items()}
    for d, df in checked.items():
        assert sum(len(p) for p in parts[d]) == len(df)
    for i in range(4):
        left, right = set(parts["l"][i]["bsn"]), set(parts["r"][i]["bsn"])
        for j in range(4):
            if j != i:
                assert not left & set(parts["r"][j]["bsn"])
        assert left & right  # NB: the joined persons of bucket i are all in bucket i


def test_an_over_full_bucket_is_refused_naming_the_dataset_but_no_count(monkeypatch: pytest.MonkeyPatch) -> None:
    t = _w1(3000)
    a, checked = prepare(_query(), t)
    monkeypatch.setattr(bk, "assign", lambda keys, secret, count: np.zeros(len(keys), dtype=np.int64))
    with pytest.raises(bk.BucketOverflowError) as e:
        bk.split(a, "r", checked["r"], SECRET, 4)
    assert "'r'" in str(e.value) and not re.search(r"\d", str(e.value))  # NB: no row count of any bucket


def test_bucket_count_follows_the_budget() -> None:
    t = _w1(1000)
    a, _ = prepare(_query(), t)
    assert bk.bucket_count(a, {"l": 1000, "r": 1000}) == 1
    big = {"l": 1_000_000, "r": 1_000_000}
    c = bk.bucket_count(a, big, 2.0)
    assert c > 1 and c & (c - 1) == 0
    padded = {d: bk.padded_size(r, c) for d, r in big.items()}
    assert bk.estimate_bytes(a, padded, bucketed=True) <= 2e9 * bk.MARGIN
    assert bk.bucket_count(a, big, 8.0) < c  # NB: more memory, fewer buckets
    assert bk.bucket_count(a, {"l": 10_000_000, "r": 10_000_000}, 2.0) >= 8 * c // 2
    with pytest.raises(MPCError, match="memory budget"):
        bk.bucket_count(a, big, 0.1)


def test_encode_pads_a_bucket_and_marks_real_rows() -> None:
    t = _w1(500)
    a, checked = prepare(_query(), t)
    slots = layout(a, {"l": 256, "r": 256}, bucketed=True)
    part = checked["l"].iloc[:200]
    arrays = encode(a, "l", part, slots)
    mine = [s for s in slots if s.dataset == "l"]
    assert mine[0].column == ROW
    row = arrays[0]
    assert row.sum() == 200 and set(row.tolist()) == {0, 1}  # NB: the owner may sort its rows (compile/order.py)
    for s, arr in zip(mine, arrays, strict=True):
        assert arr.shape == s.shape
        assert not arr[row == 0].any()  # NB: padding rows are all zero
    with pytest.raises(MPCError, match="'l'") as e:
        encode(a, "l", checked["l"].iloc[:300], slots)
    assert not re.search(r"\d", str(e.value).replace("'l'", ""))


def test_padded_shapes_do_not_depend_on_the_bucket_fillings() -> None:
    """Two tables of the same size but different persons (other bucket fillings) give the same shapes."""
    a, c1 = prepare(_query(), _w1(4000, seed=1))
    _, c2 = prepare(_query(), _w1(4000, seed=2))
    f1 = [np.bincount(bk.assign(c1["l"]["bsn"], SECRET, 4), minlength=4)]
    f2 = [np.bincount(bk.assign(c2["l"]["bsn"], SECRET, 4), minlength=4)]
    assert not np.array_equal(f1, f2)
    from werkplaats.mpc.share import bucket_rows

    r1, r2 = bucket_rows(c1, 4), bucket_rows(c2, 4)
    assert r1 == r2
    assert [s.shape for s in layout(a, r1, bucketed=True)] == [s.shape for s in layout(a, r2, bucketed=True)]


# --- the party protocol (built-in self-test programs) ---------------------------------------


def _stream(parts: list[np.ndarray], size: int, bad: int | None = None):  # type: ignore[no-untyped-def]
    for i, v in enumerate(parts):
        row = (np.arange(size) < len(v)).astype(np.int64)
        vals = np.zeros(size, dtype=np.int64)
        vals[: len(v)] = v
        shares = share_arrays([row, vals])
        if i == bad:
            shares = [s[:1] for s in shares]  # NB: one share where the program takes two
        yield shares


def _selftest(c: LocalCluster, two: bool, parts: list[np.ndarray], size: int, bad: int | None = None):  # type: ignore[no-untyped-def]
    h = PartyHeader(job=uuid.uuid4().hex, program=STAGED_SELFTEST[int(two)], size=size, buckets=len(parts))
    outs, stats = c.run(h, [[], [], []], buckets=_stream(parts, size, bad), timeout=300)
    return [int(x[0]) for x in reconstruct_arrays(outs)], stats


pytestmark = []
mpc = pytest.mark.mpc


@pytest.fixture(scope="module")
def spooled(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalCluster, Path]:
    root = tmp_path_factory.mktemp("spool")
    mp = pytest.MonkeyPatch()
    mp.setenv("WERKPLAATS_SPOOL_DIR", str(root))
    c = LocalCluster()  # NB: its spool directory is made in the root
    c.start()
    mp.undo()
    yield c, root
    c.close()
    assert not list(root.iterdir())


@mpc
def test_one_and_two_stage_programs_combine_buckets_and_never_count_padding(spooled) -> None:  # type: ignore[no-untyped-def]
    c, root = spooled
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 50, k) for k in (100, 0, 37, 128)]  # NB: an empty bucket too
    v = np.concatenate(parts)
    out, stats = _selftest(c, False, parts, 128)
    assert out[1:] == [len(v), int(v.sum()), int(v.max())]
    assert all(s["buckets"] == 4 and s["stages"] == 1 for s in stats)
    out, stats = _selftest(c, True, parts, 128)
    assert out[1:] == [len(v), int(v.sum()), int(v.max()), int(((v * len(v) - v.sum()) ** 2).sum())]
    assert all(s["stages"] == 2 and len(s["stage_s"]) == 2 for s in stats)
    logs = "".join(p.read_text() for p in c.log_dir.glob("party*.log"))
    used = re.findall(r"spooling to (\S+)", logs)
    assert used and all(Path(u).parent.parent == root for u in used)
    assert not list(root.rglob("werkplaats-buckets-*"))  # NB: the spool directories are gone after the job


@mpc
def test_a_bucket_with_the_wrong_blob_count_fails_cleanly_and_the_spool_goes(spooled) -> None:  # type: ignore[no-untyped-def]
    c, root = spooled
    parts = [np.arange(10), np.arange(20), np.arange(5)]
    with pytest.raises(PartyFailedError, match="bucket 1: expected 2 input shares"):
        _selftest(c, True, parts, 32, bad=1)
    assert not list(root.rglob("werkplaats-buckets-*"))  # NB: also those of the parties the cluster killed
    out, _ = _selftest(c, False, parts, 32)  # NB: the cluster starts fresh parties and runs the next job
    assert out[1] == 35


# --- plans: bucketed == unbucketed == plain ---------------------------------------------------


def _check_w1(c: LocalCluster, q: wp.LazyFrame, stages: int) -> None:
    from werkplaats.result import frame_differences

    t = _w1(2000)
    kw = {"min_group_size": 5, "perturbation_key": 7}
    plain = wp.run_local(q, t, **kw)
    flat = wp.run_local(q, t, engine="mpc", cluster=c, **kw)
    four = wp.run_local(q, t, engine="mpc", cluster=c, buckets=4, **kw)
    assert c.last_stats is not None and c.last_stats.buckets == 4
    assert all(p["stages"] == stages for p in c.last_stats.parties)
    assert not frame_differences(flat, plain)
    assert not frame_differences(four, plain)
    assert (~plain["suppressed"]).sum() >= 3


@mpc
@pytest.mark.slow  # NB: 96 s; two stages in buckets equal plain by default in test_staged.py (15 s)
def test_w1_with_a_variance_bucketed_equals_unbucketed_and_plain(cluster: LocalCluster) -> None:
    """Two stages (the variance's second pass around each cell's mean), 4 buckets."""
    q = (wp.scan("l").join(wp.scan("r"), on="bsn").filter(wp.col("leeftijd") >= 18).group_by("gemeente")
         .agg(n=wp.count(), leeftijd=wp.col("leeftijd").mean(), sd=wp.col("leeftijd").std(),
              chronisch=wp.col("chronisch").sum()))  # fmt: skip
    _check_w1(cluster, q, 2)


@mpc
@pytest.mark.slow
def test_w1_bucketed_equals_unbucketed_and_plain(cluster: LocalCluster) -> None:
    """One stage, 4 buckets (W1 at 1M in 8 buckets: docs/mpc.md, "Bucketed execution: the runtime")."""
    _check_w1(cluster, _query(), 1)


@mpc
def test_a_plan_that_needs_buckets_but_does_not_combine_is_refused(cluster: LocalCluster) -> None:
    q = wp.scan("l").group_by("gemeente").agg(m=wp.col("leeftijd").median())
    with pytest.raises(MPCError, match="buckets"):
        wp.run_local(q, _w1(500), engine="mpc", cluster=cluster, buckets=2, perturbation_key=1)
