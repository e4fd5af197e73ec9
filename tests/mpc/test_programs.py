"""The party header, share packing and the compiled-program cache (key, disk entries, reuse across jobs)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.catalog.serde import catalog_to_dict
from werkplaats.local import prepare
from werkplaats.mpc import LocalCluster, wire
from werkplaats.mpc.process import SORT_YARDSTICK, Command, PartyHeader, TlsFiles
from werkplaats.mpc.programs import ProgramCache, job_key
from werkplaats.plan.serde import canonical_json
from werkplaats.result import frame_differences

JOINED = wp.scan("l").join(wp.scan("r"), on="bsn")
QUERY = JOINED.group_by("g").agg(n=wp.count(), y=wp.col("y").sum())


def _tables(n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    left = pd.DataFrame({"bsn": np.arange(n), "g": pd.Categorical(rng.choice(list("abc"), n), categories=list("abc"))})
    right = pd.DataFrame({"bsn": rng.permutation(n), "y": rng.integers(0, 5, n)})
    return {"l": left, "r": right}


def _header(q: wp.LazyFrame, tables: dict[str, pd.DataFrame], k: int = 1) -> PartyHeader:
    a, _ = prepare(q, tables, min_group_size=k)
    rows = {d: len(df) for d, df in tables.items()}
    return PartyHeader(job="j", plan=canonical_json(a.plan), catalog=catalog_to_dict(a.catalog), rows=rows)


def _executable(code: bytes) -> object:
    from spu import libspu

    return libspu.Executable(name="p", input_names=["in0"], output_names=["out0"], code=code)


def test_party_header_round_trips_through_its_message() -> None:
    h = PartyHeader(job="j1", addrs=("a:1", "b:2", "c:3"), share_blobs=(2, 3), program=SORT_YARDSTICK, size=8,
                    barrier=True, tls=TlsFiles("ca.pem", "cert.pem", "key.pem"))  # fmt: skip
    msg = json.loads(json.dumps(h.to_dict()))
    assert msg["cmd"] == Command.RUN == "run"
    assert PartyHeader.from_dict(msg) == h


@pytest.mark.parametrize(
    "change",
    [{"cmd": "link"}, {"v": 2}, {"share_blobs": "x"}, {"program": None}, {"plan": "{}"}, {"addrs": None}],
    ids=["not-run", "other-version", "bad-counts", "nothing-to-run", "plan-and-program", "no-addrs"],
)
def test_party_header_rejects_malformed_messages(change: dict[str, object]) -> None:
    good = PartyHeader(job="j", addrs=("a:1",), share_blobs=(2,), program=SORT_YARDSTICK, size=4).to_dict()
    with pytest.raises(ValueError):
        PartyHeader.from_dict({**good, **change})


def test_unpack_shares_rejects_counts_that_do_not_match_the_blobs() -> None:
    with pytest.raises(ValueError, match="do not match"):
        wire.unpack_shares([2, 2], [b"m", b"c", b"m"])


def test_program_key_follows_plan_shapes_and_schemas_not_formatting() -> None:
    t = _tables(50)
    h = _header(QUERY, t)
    assert h.plan is not None
    assert job_key(h) == job_key(_header(QUERY, _tables(50, seed=1)))  # other data, same public metadata
    reformatted = json.dumps(json.loads(h.plan), indent=2, sort_keys=False)
    assert job_key(PartyHeader(job="other", plan=reformatted, catalog=h.catalog, rows=h.rows)) == job_key(h)
    assert job_key(_header(QUERY, t, k=2)) != job_key(h)  # min_group_size is part of the plan
    assert job_key(_header(JOINED.group_by("g").agg(n=wp.count()), t)) != job_key(h)
    assert job_key(_header(QUERY, _tables(51))) != job_key(h)  # shapes
    wider = {"l": t["l"].assign(g=t["l"]["g"].cat.add_categories(["d"])), "r": t["r"]}
    assert job_key(_header(QUERY, wider)) != job_key(h)  # a code list is part of the schema


def test_disk_cache_entry_is_found_by_a_fresh_cache(tmp_path: Path) -> None:
    ProgramCache(tmp_path).put("k" * 64, _executable(b"program text"), 3.5)
    got = ProgramCache(tmp_path).get("k" * 64)
    assert got is not None
    exe, took = got
    assert bytes(exe.code) == b"program text" and exe.output_names == ["out0"] and took == 3.5  # type: ignore[attr-defined]
    assert [p.name for p in tmp_path.iterdir()] == ["k" * 64 + ".spu"]  # NB: no temporary file left behind
    assert ProgramCache(tmp_path).get("q" * 64) is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_unreadable_disk_entry_is_logged_and_ignored(tmp_path: Path, damage: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    key = "k" * 64
    ProgramCache(tmp_path).put(key, _executable(b"program text" * 100), 1.0)
    path = tmp_path / (key + ".spu")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        path.write_bytes(raw[:-5] + bytes([raw[-5] ^ 0xFF]) + raw[-4:])
    else:
        path.write_bytes(b"not a cache entry at all")
    with caplog.at_level(logging.WARNING, logger="werkplaats.party"):
        assert ProgramCache(tmp_path).get(key) is None
    assert "compiling afresh" in caplog.text
    fresh = ProgramCache(tmp_path)
    fresh.put(key, _executable(b"recompiled"), 1.0)
    got = ProgramCache(tmp_path).get(key)
    assert got is not None and bytes(got[0].code) == b"recompiled"  # type: ignore[attr-defined]


def test_disk_cache_keeps_only_the_newest_entries(tmp_path: Path) -> None:
    import os

    cache = ProgramCache(tmp_path, on_disk=2)
    for i, key in enumerate(("a" * 64, "b" * 64, "c" * 64)):
        cache.put(key, _executable(key.encode()), 1.0)
        os.utime(tmp_path / (key + ".spu"), (1000 + i, 1000 + i))
    cache.put("d" * 64, _executable(b"d"), 1.0)
    assert sorted(p.name[0] for p in tmp_path.glob("*.spu")) == ["c", "d"]


def _cached(c: LocalCluster) -> list[bool]:
    assert c.last_stats is not None
    return [bool(p["program_cached"]) for p in c.last_stats.parties]


ONE_COMPILES = [False, True, True]  # NB: the cluster's parties share a directory: one compiles, two read it


def _compiled_once(c: LocalCluster) -> bool:
    return sorted(_cached(c)) == ONE_COMPILES


@pytest.mark.mpc
def test_identical_job_reuses_the_compiled_program_and_a_changed_one_compiles(tmp_path: Path) -> None:
    # NB: a plan no other test runs, so its first job compiles
    q = JOINED.filter(wp.col("y") >= 0).group_by("g").agg(n=wp.count(), y=wp.col("y").sum())
    t = _tables(120)
    plain = wp.run_local(q, t, engine="plain", min_group_size=1, perturbation_key=3)
    with LocalCluster(cache_dir=tmp_path) as c:
        first = wp.run_local(q, t, engine="mpc", cluster=c, min_group_size=1, perturbation_key=3)
        assert _compiled_once(c)
        second = wp.run_local(q, t, engine="mpc", cluster=c, min_group_size=1, perturbation_key=3)
        assert _cached(c) == [True] * 3
        pd.testing.assert_frame_equal(first, second)
        assert not frame_differences(first, plain)
        wp.run_local(q, t, engine="mpc", cluster=c, min_group_size=2, perturbation_key=3)  # another plan
        assert _compiled_once(c)
        other = _tables(121)
        bigger = wp.run_local(q, other, engine="mpc", cluster=c, min_group_size=1, perturbation_key=3)  # other shapes
        assert _compiled_once(c)
        assert not frame_differences(
            bigger, wp.run_local(q, other, engine="plain", min_group_size=1, perturbation_key=3)
        )
        logs = "".join(p.read_text() for p in c.log_dir.glob("party*.log"))
    assert "from the cache" in logs and "compiled program" in logs
    with LocalCluster(cache_dir=tmp_path) as c:  # fresh processes: the programs come from disk
        third = wp.run_local(q, t, engine="mpc", cluster=c, min_group_size=1, perturbation_key=3)
        assert _cached(c) == [True] * 3
    pd.testing.assert_frame_equal(first, third)
