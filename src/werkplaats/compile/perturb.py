"""Rule 6 outside the MPC: which rows carry record keys, and the plain executor's perturbation.

The MPC side is `kernels/cellkey.py` (its docstring describes the method: record keys from a
keyed mixing of the person key, cell keys, the table's noise, rounding). This module holds
what both executors decide from the plan and the catalog alone (``mode``, ``has_record_keys``,
``person_key_column``), the same mixing function in NumPy (uint64 arithmetic wraps as SPU's
ring does), and `perturb_plain`: the plain executor carries each row's person key through its
SQL as a hidden column, computes the record keys in NumPy and applies the same table, so the
two executors release the same numbers under the same key.

Security model: the plain executor runs where the data is in one place (tests, previews on
dummy data); the key is given by the caller. Nothing here is sent anywhere.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ..plan import nodes as n
from ..plan.types import infer
from ..result import Revealed
from .analyze import Analysis
from .plain import PlainCompiler, cells_of, expr_sql, q, run_sql
from .ptable import noise
from .rules import DisclosureRules

# Public odd constants of the mixing function (the hexadecimal digits of pi and e, made odd).
C0 = 0x243F6A8885A308D3
C1 = 0x13198A2E03707345
C2 = 0xA4093822299F31D1
C3 = 0xB7E151628AED2A6B
RK_BITS = 8
KEY_PARTS = 3
PK = "__werkplaats_pk"  # NB: the hidden column of the plain executor's keyed query


def _i64(c: int) -> int:
    """Return a 64-bit constant as the signed int64 with the same bits."""
    return c - 2**64 if c >= 2**63 else c


# --- which rows carry record keys (static) ------------------------------------------------


def person_key_column(a: Analysis, dataset: str, columns: tuple[str, ...] | None = None) -> str | None:
    """Return the source column a dataset's records take their person key from, or None.

    The first column (in catalog order) the catalog marks ``person_key`` or that the rules name
    as one; with ``columns``, only among those (the pruned source's).
    """
    return person_key_in(a.catalog[dataset], a.rules, columns)


def person_key_in(schema: Any, rules: DisclosureRules, columns: tuple[str, ...] | None = None) -> str | None:
    """Return the person-key column of a table schema (see person_key_column)."""
    for c in schema.columns:
        if (c.role == "person_key" or c.name in rules.person_keys) and (columns is None or c.name in columns):
            return str(c.name)
    return None


def _is_person_key(a: Analysis, rel: n.Relation, name: str) -> bool:
    from .lineage import column_of, origins

    found = origins(a, rel, name)
    return bool(found) and all(column_of(a, o).role == "person_key" or o[1] in a.rules.person_keys for o in found)


def has_record_keys(a: Analysis, rel: n.Relation) -> bool:
    """Return whether rel's rows carry record keys: from a source's person key, the left side of a join,
    or the key of an intermediate group-by on a person key."""
    match rel:
        case n.Source(dataset, columns):
            return person_key_column(a, dataset, columns) is not None
        case n.Filter(inp, _) | n.WithColumns(inp, _) | n.Select(inp, _):
            return has_record_keys(a, inp)
        case n.Join(left, _, _, _):
            return has_record_keys(a, left)
        case n.Aggregate(inp, keys, _):
            return len(keys) == 1 and _is_person_key(a, inp, keys[0])
        case n.Concat(inputs, distinct_on):
            if distinct_on is not None:
                return True  # NB: one row per person again: record keys from the distinct key (as a group-by)
            return all(has_record_keys(a, i) for i in inputs) and len({pk_dtype(a, i) for i in inputs}) == 1
    return False


def group_key_is_person_key(a: Analysis, rel: n.Aggregate) -> bool:
    """Return whether an intermediate group-by's single key is a person key (its rows get record keys)."""
    return has_record_keys(a, rel)


def effective_rules(a: Analysis) -> DisclosureRules:
    """Return the rules as a checked plan applies them: ``counts = "perturb"`` becomes ``"round"`` without record keys.

    So that every rule that asks whether counts are perturbed (rule 7's margins, the register)
    sees what is done: rounded counts do not cover margins.
    """
    if a.rules.counts == "perturb" and mode(a) == "round":
        return replace(a.rules, counts="round")
    return a.rules


def mode(a: Analysis) -> str:
    """Return how the plan's released counts are treated: "exact", "round" or "perturb".

    "perturb" needs record keys on the rows of the final aggregate; without them, counts are rounded.
    """
    r = a.rules
    if r.counts == "perturb":
        root = a.plan.root
        if not isinstance(root, n.Aggregate):
            return "round"  # NB: no record keys reach a summary (compile/models): its counts are rounded
        return "perturb" if has_record_keys(a, root.input) else "round"
    return r.counts


def is_count(agg: n.Agg, arg_kind: str | None) -> bool:
    """Return whether a statistic is a count: ``len``, ``count``, or the sum of a boolean."""
    return agg.func in ("len", "count") or (agg.func == "sum" and arg_kind == "bool")


# --- record keys: NumPy (plain executor) and JAX/SPU (MPC executor) ------------------------


def record_keys_np(x: np.ndarray, ok: np.ndarray, key: int) -> np.ndarray:
    """Return the record keys (0..255, int64) of person keys x (int64; 0 where not ok) under key K (NumPy)."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.int64).view(np.uint64)
        k = np.array([key % 2**64], dtype=np.uint64)
        a = k * np.uint64(2) + np.uint64(1)
        h = x * a + k * np.uint64(C0)
        h = (h + (h >> np.uint64(31))) * np.uint64(C1)
        h = (h + k * np.uint64(C2)) * a
        h = (h + (h >> np.uint64(29))) * np.uint64(C3)
        rk = (h + (h >> np.uint64(32))) >> np.uint64(64 - RK_BITS)
    return rk.astype(np.int64) * np.asarray(ok, dtype=np.int64)


def split_key(key: int) -> list[int]:
    """Return three random int64 parts whose sum mod 2^64 is key (as the int64 of its bits), e.g. for a local run."""
    p = [secrets.randbits(64) for _ in range(KEY_PARTS - 1)]
    last = (key - sum(p)) % 2**64
    return [_i64(v) for v in (*p, last)]


def round_np(count: np.ndarray, base: int) -> np.ndarray:
    """Return counts rounded to the nearest multiple of base, halves up (NumPy)."""
    c = np.asarray(count, dtype=np.int64)
    return c if base <= 1 else (c + base // 2) // base * base


def cell_keys_np(rk_sums: np.ndarray) -> np.ndarray:
    """Return cell keys from per-cell sums of record keys."""
    return np.asarray(rk_sums, dtype=np.int64) % 256


def key_inputs(a: Analysis) -> int:
    """Return how many key inputs the MPC program takes after its slots: the three parts of K, or none."""
    return KEY_PARTS if mode(a) == "perturb" else 0


# --- the plain executor ---------------------------------------------------------------------


def pk_dtype(a: Analysis, rel: n.Relation) -> Any:
    """Return the type of the column rel's rows take their record keys from (see has_record_keys)."""
    match rel:
        case n.Source(dataset, columns):
            return a.schema(rel)[str(person_key_column(a, dataset, columns))]
        case n.Filter(inp, _) | n.WithColumns(inp, _) | n.Select(inp, _):
            return pk_dtype(a, inp)
        case n.Join(left, _, _, _):
            return pk_dtype(a, left)
        case n.Aggregate(_, keys, _):
            return a.schema(rel)[keys[0]]
        case n.Concat(inputs, distinct_on):
            return a.schema(rel)[distinct_on] if distinct_on is not None else pk_dtype(a, inputs[0])
    msg = f"no person key in {type(rel).__name__}"  # pragma: no cover - has_record_keys is checked first
    raise TypeError(msg)


class KeyedSql(PlainCompiler):
    """The plain executor's SQL of a relation with one more, hidden column: each row's person key (or NULL)."""

    name = "the plain executor (record keys)"
    carried = (PK,)

    def visit_Source(self, r: n.Source) -> str:
        pk = person_key_column(self.a, r.dataset, r.columns)
        return self.with_hidden(r, q(pk) if pk else "NULL")

    def visit_Aggregate(self, r: n.Aggregate) -> str:
        return self.with_hidden(r, q(r.keys[0]) if has_record_keys(self.a, r) else "NULL")

    def visit_Concat(self, r: n.Concat) -> str:
        if r.distinct_on is not None:  # NB: one row per person again: its key is the distinct key
            return self.with_hidden(r, q(r.distinct_on))
        return super().visit_Concat(r)


def _pk_codes(values: pd.Series, t: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (person keys as the MPC's integer keys, validity): as kernels/join.key_values makes them."""
    ok = values.notna().to_numpy()
    if t.kind == "str":
        index = {v: i for i, v in enumerate(t.domain or ())}
        codes = np.array([index.get(v, 0) if o else 0 for v, o in zip(values, ok, strict=True)], dtype=np.int64)
        ok = ok & np.array([v in index for v in values], dtype=bool)
    elif t.kind == "date":
        days = pd.to_datetime(values).to_numpy().astype("datetime64[D]").astype(np.int64)
        codes = np.where(ok, days + 2**20, 0)
    else:
        codes = np.where(ok, values.fillna(0).to_numpy().astype(np.int64), 0)
    return codes * ok, ok.astype(np.int64)


def perturb_plain(a: Analysis, tables: dict[str, pd.DataFrame], rev: Revealed, key: int | None) -> Revealed:
    """Return the plain executor's revealed cells with each released count perturbed or rounded (rule 6)."""
    how = mode(a)
    root = a.plan.root
    assert isinstance(root, n.Aggregate)
    schema = a.schema(root.input)
    counts = []
    for name, g in root.aggs:
        kind = infer(g.arg, schema).kind if g.arg is not None else None
        if is_count(g, kind):
            counts.append((name, g))
    if how == "exact" or not counts:
        return rev
    stats = dict(rev.stats)
    if how == "round":
        for name, _ in counts:
            code, value = stats[name]
            stats[name] = (code, np.where(code == 1, round_np(value, a.rules.rounding_base), value))
        return Revealed(rev.cell_ok, stats, rev.withheld)
    weights = []
    for _, g in counts:
        if g.func == "len":
            weights.append("1")
        elif g.func == "count":
            weights.append(f"CASE WHEN {expr_sql(g.arg)} IS NULL THEN 0 ELSE 1 END")  # type: ignore[arg-type]
        else:
            weights.append(f"CASE WHEN {expr_sql(g.arg)} THEN 1 ELSE 0 END")  # type: ignore[arg-type]
    keys = [q(k) for k in root.keys]
    cols = [*keys, q(PK), *(f"{w} AS {q(f'__w{j}')}" for j, w in enumerate(weights))]
    got = run_sql(f"SELECT {', '.join(cols)} FROM ({KeyedSql(a).visit(root.input)})", tables)
    pk, ok = _pk_codes(got[PK], pk_dtype(a, root.input))
    rk = record_keys_np(pk, ok, key if key is not None else secrets.randbits(64))
    ncells, rows = cells_of(a, got)
    cell = np.array(rows, dtype=np.int64)
    for j, (name, _) in enumerate(counts):
        sums = np.bincount(cell, weights=rk * got[f"__w{j}"].to_numpy(dtype=np.int64), minlength=ncells)
        ck = cell_keys_np(sums.astype(np.int64))
        code, value = stats[name]
        shown = code == 1
        stats[name] = (code, value + np.where(shown, noise(a.rules.ptable, np.where(shown, value, 0), ck), 0))
    return Revealed(rev.cell_ok, stats, rev.withheld)
