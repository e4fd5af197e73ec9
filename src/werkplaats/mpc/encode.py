"""Encodings of source columns as ring elements, done by the data owner.

Each column becomes a few arrays, every one of which is secret-shared:
- ``ok``: validity (1 = value present, 0 = missing), int64;
- int, bool: ``v`` int64 (missing → 0); float: ``v`` float64, fixed point inside SPU
  (FM64, 18 fractional bits: resolution 2^-18 ≈ 3.8e-6);
- str (categorical): ``oh``, a one-hot matrix over the public code list (missing →
  a row of zeros), so equality, ``is_in`` and group-by need no secure comparison;
- date: ``v`` days since 1970-01-01, plus the parts the plan uses (``year``, ``md`` =
  month*100+day, ``iso_week``, ``month``) and one-hot forms of grouped parts.
Which encodings a table needs is decided from the plan alone
(`werkplaats.compile.layout`), so the owner, the parties and the result receiver
agree without talking.

A bucket (`werkplaats.mpc.buckets`) is encoded against the slots of
``layout(a, padded_rows, bucketed=True)``: its real rows, then all-zero rows up to the
public padded size (before the owner's row order, `compile/order.py`); the ``(dataset, ROW, "ok")``
slot is 1 on real rows and 0 on padding. A
table longer than its slots is refused (never truncated).

Security model: this runs at the data owner, on its own validated table, before
anything is shared. The arrays it returns are clear data and must go nowhere but
into `spu.Io.make_shares` (`werkplaats.mpc.share`); only their shapes (the slots:
plan, code lists, row count) are public.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..compile.analyze import Analysis
from ..compile.layout import Slot
from ..compile.order import order_rows
from ..compile.staged import ROW
from ..exceptions import MPCError
from ..plan.types import column_dtype, date_part_domain


def encode(a: Analysis, dataset: str, df: pd.DataFrame, slots: list[Slot]) -> list[np.ndarray]:
    """Encode one owner's validated table into the arrays its slots ask for."""
    out = []
    schema = a.catalog[dataset]
    real = len(df)
    for s in slots:
        if s.dataset != dataset:
            continue
        if s.rows == 0:
            out.append(np.zeros(s.shape, dtype=s.dtype))
            continue
        if real > s.shape[0]:
            msg = f"dataset {dataset!r}: more rows than its public (padded) size; refused, never truncated"
            raise MPCError(msg)
        if s.column == ROW:
            out.append((np.arange(s.shape[0]) < real).astype(s.dtype))
            continue
        col = df[s.column]
        t = column_dtype(schema.column(s.column))
        ok = col.notna().to_numpy()
        if s.encoding == "ok":
            arr = ok.astype(np.int64)
        elif s.encoding == "oh":
            dom = list(t.domain or ())
            if t.kind == "str":
                codes = pd.Categorical(col, categories=dom).codes
            else:
                codes = pd.Categorical(col.astype("Int64"), categories=dom).codes
            arr = (codes[:, None] == np.arange(len(dom))[None, :]).astype(np.int64)
        elif s.encoding == "v":
            if t.kind == "float":
                arr = col.astype("Float64").fillna(0.0).to_numpy(dtype=np.float64)
            elif t.kind == "date":
                days = col.astype("datetime64[s]").astype("int64") // 86400
                arr = np.where(ok, days.to_numpy(dtype=np.int64, na_value=0), 0).astype(np.int64)
            else:
                arr = col.astype("Int64").fillna(0).to_numpy(dtype=np.int64)
        else:
            arr = _date_part(col, s.encoding, t.years)
        if arr.shape[0] < s.shape[0]:  # NB: a bucket: all-zero rows up to the padded size
            arr = np.concatenate([arr, np.zeros((s.shape[0] - arr.shape[0], *arr.shape[1:]), dtype=arr.dtype)])
        assert arr.shape == s.shape, (s, arr.shape)
        out.append(arr.astype(s.dtype))
    return order_rows(a, dataset, [s for s in slots if s.dataset == dataset], out)


def _date_part(col: pd.Series, enc: str, years: tuple[int, int] | None) -> np.ndarray:
    d = pd.to_datetime(col)
    ok = d.notna().to_numpy()
    part = enc.removesuffix("_oh")
    if part == "year":
        v = d.dt.year
    elif part == "month":
        v = d.dt.month
    elif part == "md":
        v = d.dt.month * 100 + d.dt.day
    else:
        v = d.dt.isocalendar().week
    vals = np.where(ok, v.to_numpy(dtype=float, na_value=0), 0).astype(np.int64)
    if not enc.endswith("_oh"):
        return vals
    dom = np.array(date_part_domain(part, years) or ())
    return ((vals[:, None] == dom[None, :]) & ok[:, None]).astype(np.int64)
