"""Encodings of source columns as ring elements, done by the data owner.

Each column becomes a few arrays, every one of which is secret-shared:
- ``ok``: validity (1 = value present, 0 = missing), int64;
- int, bool: ``v`` int64 (missing → 0); float: ``v`` float64, fixed point inside SPU
  (FM64, 18 fractional bits: resolution 2^-18 ≈ 3.8e-6);
- str (categorical): ``oh``, a one-hot matrix over the public code list (missing →
  a row of zeros), so equality, ``is_in`` and group-by need no secure comparison;
- date: ``v`` days since 1970-01-01, plus the parts the plan uses (``year``, ``md`` =
  month*100+day, ``iso_week``, ``month``) and one-hot forms of grouped parts.
Which encodings a table needs is decided from the plan alone (`layout`), so the
owner, the parties and the result receiver agree without talking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..compile.analyze import Analysis
from ..plan import nodes as n
from ..plan.types import column_dtype, date_part_domain


@dataclass(frozen=True, slots=True)
class Slot:
    """One shared input array: (dataset, column, encoding) and its shape."""

    dataset: str
    column: str
    encoding: str
    shape: tuple[int, ...]
    dtype: str  # "int64" or "float64"
    rows: int  # the table's real row count; an empty table is padded to one masked row


def _walk_exprs(rel: n.Relation) -> list[n.Expr]:
    out: list[n.Expr] = []
    match rel:
        case n.Filter(_, pred):
            out.append(pred)
        case n.WithColumns(_, exprs) | n.Select(_, exprs):
            out.extend(e for _, e in exprs)
        case n.Aggregate(_, _, aggs):
            out.extend(a.arg for _, a in aggs if a.arg is not None)
    for c in n.children(rel):
        out.extend(_walk_exprs(c))
    return out


def _sub(e: n.Expr) -> list[n.Expr]:
    return [e, *(x for c in n.expr_children(e) for x in _sub(c))]


def date_parts_used(plan: n.Plan) -> dict[str, set[str]]:
    """Return, per column name, the date parts the plan takes of it."""
    used: dict[str, set[str]] = {}
    for top in _walk_exprs(plan.root):
        for e in _sub(top):
            if isinstance(e, n.DatePart) and isinstance(e.arg, n.Col):
                used.setdefault(e.arg.name, set()).add(e.part)
            if isinstance(e, n.AgeAt) and isinstance(e.arg, n.Col):
                used.setdefault(e.arg.name, set()).update({"year", "md"})
    return used


def group_key_names(plan: n.Plan) -> set[str]:
    """Return the names used as group keys anywhere in the plan."""
    out: set[str] = set()

    def walk(r: n.Relation) -> None:
        if isinstance(r, n.Aggregate):
            out.update(r.keys)
        for c in n.children(r):
            walk(c)

    walk(plan.root)
    return out


def layout(a: Analysis, rows: dict[str, int]) -> list[Slot]:
    """Return every input array of the MPC program, in order (of the datasets in rows)."""
    parts = date_parts_used(a.plan)
    grouped = group_key_names(a.plan)
    slots: list[Slot] = []
    seen: set[str] = set()
    for src in n.sources(a.plan.root):
        if src.dataset in seen:
            continue
        seen.add(src.dataset)
        if src.dataset not in rows:
            continue  # NB: an owner lays out only its own datasets
        real = rows[src.dataset]
        nrow = max(real, 1)  # NB: SPU cannot reduce empty arrays; the row count is public anyway
        for col in src.columns or ():
            t = column_dtype(a.catalog[src.dataset].column(col))

            def add(
                enc: str,
                shape: tuple[int, ...],
                dtype: str = "int64",
                col: str = col,
                ds: str = src.dataset,
                real: int = real,
            ) -> None:
                slots.append(Slot(ds, col, enc, shape, dtype, real))

            if t.kind == "str":
                add("oh", (nrow, len(t.domain or ())))
                continue
            add("ok", (nrow,))
            add("v", (nrow,), "float64" if t.kind == "float" else "int64")
            if t.kind == "int" and t.domain is not None and col in grouped:
                add("oh", (nrow, len(t.domain)))
            if t.kind == "date":
                for p in sorted(parts.get(col, ())):
                    add(p, (nrow,))
                    dom = date_part_domain(p, t.years)
                    if p != "md" and dom is not None:
                        add(p + "_oh", (nrow, len(dom)))
    return slots


def encode(a: Analysis, dataset: str, df: pd.DataFrame, slots: list[Slot]) -> list[np.ndarray]:
    """Encode one owner's validated table into the arrays its slots ask for."""
    out = []
    schema = a.catalog[dataset]
    for s in slots:
        if s.dataset != dataset:
            continue
        if s.rows == 0:
            out.append(np.zeros(s.shape, dtype=s.dtype))
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
        assert arr.shape == s.shape, (s, arr.shape)
        out.append(arr.astype(s.dtype))
    return out


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
