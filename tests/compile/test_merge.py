"""The merge join and the owner's row order (compile/order.py, kernels/merge.py), in clear JAX.

The kernel is a JAX function; run eagerly on clear arrays it computes what the parties compute
on shares, so its logic is checked here against pandas without MPC (tests/mpc/test_merge.py runs
it under MPC). The attacker: an owner that did not sort cannot make the result wrong.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import werkplaats as wp
from werkplaats.compile import order
from werkplaats.compile.kernels.core import I64, SCol, SFrame
from werkplaats.compile.kernels.merge import bitonic_merge, merge_join, unmerge
from werkplaats.compile.layout import Slot
from werkplaats.local import prepare
from werkplaats.mpc.runtime import enable_x64

enable_x64()
RULES = wp.DisclosureRules.cells_only()


def _frame_of(v: Any, ok: Any, p: Any, mask: Any) -> SFrame:
    f = p.astype(jnp.float64) / 4
    cols = {"k": SCol("int", ok, v), "p": SCol("int", jnp.ones_like(p), p), "f": SCol("float", jnp.ones_like(p), f)}
    return SFrame(v.shape[0], mask, cols)


def _sorted_keys(draw: st.DrawFn, size: int, hi: int) -> list[int | None]:
    keys = draw(st.lists(st.one_of(st.none(), st.integers(0, hi)), min_size=size, max_size=size))
    return sorted(keys, key=lambda k: 0 if k is None else k)  # NB: as key_values packs them: missing → 0


Side = tuple[list[int | None], list[int], list[int]]  # keys, payload, mask


@st.composite
def sides(draw: st.DrawFn) -> tuple[Side, Side]:
    # NB: a few sizes, so that the jitted kernel compiles a few times (eager JAX took 30 s for 25 examples)
    nl, nr = draw(st.sampled_from([1, 24])), draw(st.sampled_from([1, 20]))
    lkeys = _sorted_keys(draw, nl, 12)
    rkeys = _sorted_keys(draw, nr, 12)
    lmask = draw(st.lists(st.integers(0, 1), min_size=nl, max_size=nl))
    # NB: the right side is unique on the key among its valid rows: duplicates beyond the first are masked out
    rmask, seen = [], set()
    for k in rkeys:
        valid = draw(st.integers(0, 1)) and k not in seen
        if valid:
            seen.add(k)
        rmask.append(int(valid))
    lpay = list(range(100, 100 + nl))
    rpay = draw(st.lists(st.integers(-50, 50), min_size=nr, max_size=nr))
    return (lkeys, lpay, lmask), (rkeys, rpay, rmask)


def _expected(left: Side, right: Side, how: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (mask, matched right p, its ok) per left row, by a dictionary lookup."""
    rk = {k: p for k, p, m in zip(*right, strict=True) if k is not None and m}
    got = [k is not None and k in rk for k in left[0]]
    vals = [rk[k] if g else 0 for k, g in zip(left[0], got, strict=True)]
    mask = np.asarray(left[2]) * (np.asarray(got) if how == "inner" else 1)
    return mask, np.asarray(vals), np.asarray(got, dtype=int)


@functools.cache
def _jitted(how: str) -> Any:
    def run(lk: Any, lok: Any, lp: Any, lm: Any, rk: Any, rok: Any, rp: Any, rm: Any) -> Any:
        left = _frame_of(lk, lok, lp, lm)
        out, sorted_ok = merge_join(left, _frame_of(rk, rok, rp, rm), "k", how, {"p": "p_r", "f": "f_r"})
        c = out.cols
        return out.mask, c["p_r"].v, c["p_r"].ok, c["f_r"].v, c["p"].v, sorted_ok

    return jax.jit(run)


def _arrays(side: Side) -> list[Any]:
    keys, payload, mask = side
    ok = [k is not None for k in keys]
    return [np.asarray([k or 0 for k in keys], dtype=np.int64), np.asarray(ok, dtype=np.int64),
            np.asarray(payload, dtype=np.int64), np.asarray(mask, dtype=np.int64)]  # fmt: skip


@given(sides(), st.sampled_from(["inner", "left"]))
def test_merge_join_equals_a_lookup_on_sorted_inputs(sides: tuple[Side, Side], how: str) -> None:
    left, right = sides
    mask_out, p_r, p_ok, f_r, p, sorted_ok = _jitted(how)(*_arrays(left), *_arrays(right))
    mask, vals, got = _expected(left, right, how)
    assert int(sorted_ok) == 1
    assert np.array_equal(np.asarray(mask_out), mask)  # NB: the left rows, in their order
    assert np.array_equal(np.asarray(p_r), vals)
    assert np.array_equal(np.asarray(p_ok), got)
    assert np.allclose(np.asarray(f_r), vals / 4)
    assert np.array_equal(np.asarray(p), np.asarray(left[1]))


def test_an_unsorted_input_is_detected_not_joined_wrongly() -> None:
    """Attacker: an owner that sends its rows unsorted (or lies about sorting) gets the result withheld."""
    run = _jitted("inner")
    right = ([1, 2, 3, 4], [10, 20, 30, 40], [1, 1, 1, 1])
    left_ok = ([1, 2, 3, 4], [0, 0, 0, 0], [1, 1, 1, 1])
    assert int(run(*_arrays(left_ok), *_arrays(right))[-1]) == 1
    for lkeys in ([4, 3, 2, 1], [1, 3, 2, 4], [2, 2, 1, 1]):
        left = (lkeys, [0, 0, 0, 0], [1, 1, 1, 1])
        assert int(run(*_arrays(left), *_arrays(right))[-1]) == 0, lkeys
    rev = ([4, 3, 2, 1], [40, 30, 20, 10], [1, 1, 1, 1])
    assert int(run(*_arrays(left_ok), *_arrays(rev))[-1]) == 0


@jax.jit
def _merge_unmerge(key: Any, rows: Any) -> Any:
    skey, (srows,), swaps = bitonic_merge(key, [rows])
    return skey, srows, unmerge([srows], swaps)[0]


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=64), st.data())
def test_bitonic_merge_sorts_and_unmerge_inverts(values: list[int], data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(values)))
    a, b = sorted(values[:cut]), sorted(values[cut:])
    size = 1 << max(1, (len(values) - 1).bit_length())
    key = jnp.asarray(a + [2**50] * (size - len(values)) + b[::-1], dtype=I64)
    rows = jnp.arange(size, dtype=I64)[:, None]
    skey, srows, back = _merge_unmerge(key, rows)
    assert list(np.asarray(skey)) == sorted(np.asarray(key).tolist())
    assert np.array_equal(np.asarray(key)[np.asarray(srows)[:, 0]], np.asarray(skey))
    assert np.array_equal(np.asarray(back), np.asarray(rows))


def _w1_like() -> tuple[wp.LazyFrame, dict[str, pd.DataFrame]]:
    left = pd.DataFrame({"pid": pd.array([5, None, 3, 9], dtype="Int64"),
                         "g": pd.Categorical(list("abca"), categories=list("abcd"))})  # fmt: skip
    right = pd.DataFrame({"pid": pd.array([9, 3, 1], dtype="Int64"), "y": [1, 2, 3]})
    q = wp.scan("l").join(wp.scan("r"), on="pid").group_by("g").agg(n=wp.count())
    return q, {"l": left, "r": right}


def test_owners_sort_on_the_join_key_and_the_compiler_knows() -> None:
    q, t = _w1_like()
    a, _ = prepare(q, t, rules=RULES)
    assert order.sort_columns(a) == {"l": "pid", "r": "pid"}
    join = order._joins(a.plan.root)[0]
    assert order.merges(a, join)
    slots = [Slot("l", "pid", "ok", (4,), "int64", 4), Slot("l", "pid", "v", (4,), "int64", 4),
             Slot("l", "g", "oh", (4, 4), "int64", 4)]  # fmt: skip
    ok = np.array([1, 0, 1, 1])
    v = np.array([5, 0, 3, 9])
    oh = np.eye(4, dtype=np.int64)[[0, 1, 2, 0]]
    got = order.order_rows(a, "l", slots, [ok, v, oh])
    assert got[1].tolist() == [0, 3, 5, 9]  # NB: the missing key (0) first
    assert got[0].tolist() == [0, 1, 1, 1]
    assert got[2].argmax(axis=1).tolist() == [1, 2, 0, 0]  # NB: the rows move together


@pytest.mark.parametrize("kind", ["date", "str"])
def test_order_rows_packs_dates_and_categoricals_as_the_kernel_does(kind: str) -> None:
    if kind == "date":
        left = pd.DataFrame(
            {"k": pd.to_datetime(["2001-01-01", None, "1950-05-05"]).astype("datetime64[s]"), "x": [True, False, True]}
        )
        right = pd.DataFrame({"k": pd.to_datetime(["1950-05-05"]).astype("datetime64[s]"), "y": [1]})
    else:
        left = pd.DataFrame({"k": pd.Categorical(["c", None, "a"], categories=list("abc")), "x": [True, False, True]})
        right = pd.DataFrame({"k": pd.Categorical(["a"], categories=list("abc")), "y": [1]})
    a, _ = prepare(
        wp.scan("l").join(wp.scan("r"), on="k").group_by("x").agg(n=wp.count()), {"l": left, "r": right}, rules=RULES
    )
    assert order.sort_columns(a)["l"] == "k"
    x = np.array([1, 2, 3])
    if kind == "date":
        days = np.array(
            [(dt.date(2001, 1, 1) - dt.date(1970, 1, 1)).days, 0, (dt.date(1950, 5, 5) - dt.date(1970, 1, 1)).days]
        )
        slots = [Slot("l", "k", "v", (3,), "int64", 3), Slot("l", "x", "v", (3,), "int64", 3)]
        got = order.order_rows(a, "l", slots, [days, x])
        assert got[1].tolist() == [3, 2, 1]  # NB: 1950 (negative days) < missing (0 days + 2^20 as for 1970) < 2001
    else:
        oh = np.array([[0, 0, 1], [0, 0, 0], [1, 0, 0]])
        slots = [Slot("l", "k", "oh", (3, 3), "int64", 3), Slot("l", "x", "v", (3,), "int64", 3)]
        got = order.order_rows(a, "l", slots, [oh, x])
        assert got[1].tolist() == [2, 3, 1]  # NB: missing and code 0 both pack to 0; stable


def test_sorted_on_follows_order_preserving_nodes_only() -> None:
    q, t = _w1_like()
    a, _ = prepare(q, t, rules=RULES)
    src = wp.scan("l").to_plan().root
    assert order.sorted_on(a, src) == "pid"
    assert order.sorted_on(a, wp.scan("l").filter(wp.col("g") == "a").to_plan().root) == "pid"
    assert order.sorted_on(a, wp.scan("l").with_columns(pid=wp.col("pid") + 1).to_plan().root) is None
    assert order.sorted_on(a, wp.scan("l").with_columns(z=wp.col("pid") + 1).to_plan().root) == "pid"
    assert order.sorted_on(a, wp.scan("l").select(p=wp.col("pid")).to_plan().root) == "p"
    assert order.sorted_on(a, wp.scan("l").select(p=wp.col("pid") * 2).to_plan().root) is None
    agg = wp.scan("l").group_by("pid").agg(n=wp.count()).to_plan().root
    assert order.sorted_on(a, agg) is None  # NB: not proven: an intermediate group-by's output order
