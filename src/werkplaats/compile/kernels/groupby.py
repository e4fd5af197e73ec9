"""Sort-based group-by on a secret key with no public domain (e.g. a person key).

Used for intermediate aggregates, typically to make a join's right side unique.
Rows are sorted on a packed (key, missing, row index) key, aggregated with
segmented scans, and the last row of each group carries the group's values; the
output mask marks those rows. The number of groups is never revealed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ...exceptions import OperationNotDefinedError
from ...plan import nodes as n
from .core import BIG, F64, I64, ROW_BITS, SCol, SFrame, b2i, ratio, seg_scan
from .expr import ExprEval
from .join import key_values

# The aggregate functions an intermediate group-by supports, and those it refuses (explicitly).
SUPPORTED_AGGS = ("len", "count", "sum", "mean", "min", "max")
UNSUPPORTED_AGGS = ("var", "std", "median", "quantile")


def group_by_secret_key(frame: SFrame, key: str, aggs: tuple[tuple[str, n.Agg], ...],
                        out_kinds: dict[str, str]) -> SFrame:  # fmt: skip
    """Return one valid row per group of ``key`` with the named aggregates."""
    ev = ExprEval(frame)
    kcol = frame.cols[key]
    k, kok = key_values(kcol)
    group = k * 2 + (1 - kok)  # NB: missing keys form their own group, as in SQL
    packed = group * 2**ROW_BITS + jnp.arange(frame.n, dtype=I64)

    payload: list[Any] = [group, frame.mask, *(a for _, a in kcol.fields())]
    plan: list[tuple[str, str, int, int, str]] = []  # name, func, value idx, count idx, kind
    for name, agg in aggs:
        if agg.func not in SUPPORTED_AGGS:
            msg = f"MPC executor: {agg.func}() in an intermediate aggregate is not supported yet"
            raise OperationNotDefinedError(msg)
        if agg.func == "len":
            plan.append((name, "len", -1, 1, "int"))
            continue
        c = ev(agg.arg)  # type: ignore[arg-type]
        if c.kind == "str":
            msg = f"MPC executor: cannot aggregate a categorical column with {agg.func}()"
            raise OperationNotDefinedError(msg)
        w = frame.mask * c.ok
        vi, ci = len(payload), len(payload) + 1
        if agg.func in ("min", "max"):
            big = BIG[c.kind if c.kind in BIG else "int"]
            fill = -big if agg.func == "max" else big
            val = jnp.where(w == 1, c.v, jnp.full_like(c.v, fill))
        else:
            val = w * c.v
        payload += [val, w]
        plan.append((name, agg.func, vi, ci, c.kind))

    out = jax.lax.sort([packed, *payload], num_keys=1)[1:]
    sgroup = out[0]
    start = jnp.concatenate([jnp.ones((1,), I64), b2i(sgroup[1:] != sgroup[:-1])])
    end = jnp.concatenate([b2i(sgroup[1:] != sgroup[:-1]), jnp.ones((1,), I64)])
    rows = seg_scan(start, out[1], "sum")
    mask = end * b2i(rows > 0)

    nkf = len(kcol.fields())
    cols: dict[str, SCol] = {key: kcol.rebuild({k: a for (k, _), a in zip(kcol.fields(), out[2 : 2 + nkf],
                                                                        strict=True)})}  # fmt: skip
    for name, func, vi, ci, _kind in plan:
        if func == "len":
            cols[name] = SCol("int", jnp.ones_like(rows), rows)
            continue
        nvalid = seg_scan(start, out[ci], "sum")
        has = b2i(nvalid > 0)
        if func == "count":
            cols[name] = SCol("int", jnp.ones_like(rows), nvalid)
        elif func in ("sum", "mean"):
            total = seg_scan(start, out[vi], "sum")
            if func == "sum":
                cols[name] = SCol(out_kinds[name], has, total)
            else:
                cols[name] = SCol("float", has, ratio(total, nvalid))
        else:
            ext = seg_scan(start, out[vi], func)
            cols[name] = SCol(out_kinds[name], has, ext.astype(F64) if out_kinds[name] == "float" else ext)
    return SFrame(frame.n, mask, cols)
