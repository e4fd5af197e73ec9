"""Canonical JSON for plans: to_dict/from_dict pairs, plan_hash, schema check.

The canonical form is UTF-8 JSON with sorted keys and no whitespace; its SHA-256
is the plan hash that approvals sign. Loading validates against the published
JSON Schema before any node is built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from ..exceptions import PlanFormatError
from . import nodes as n

# --- literals ----------------------------------------------------------------


def lit_to_json(v: n.LitValue) -> dict[str, Any]:
    """Encode a literal with an explicit type tag."""
    if v is None:
        return {"type": "null", "value": None}
    if isinstance(v, bool):
        return {"type": "bool", "value": v}
    if isinstance(v, int):
        return {"type": "int", "value": v}
    if isinstance(v, float):
        return {"type": "float", "value": v}
    if isinstance(v, str):
        return {"type": "str", "value": v}
    if isinstance(v, dt.date):
        return {"type": "date", "value": v.isoformat()}
    msg = f"unsupported literal type {type(v).__name__}"
    raise PlanFormatError(msg)


def lit_from_json(d: dict[str, Any]) -> n.LitValue:
    """Decode a tagged literal."""
    t, v = d["type"], d["value"]
    if t == "date":
        return dt.date.fromisoformat(v)
    if t == "float":
        return float(v)
    return v


# --- expressions -------------------------------------------------------------


def expr_to_json(e: n.Expr) -> dict[str, Any]:
    """Encode an expression node."""
    match e:
        case n.Col(name):
            return {"op": "col", "name": name}
        case n.Lit(value):
            return {"op": "lit", **lit_to_json(value)}
        case n.BinOp(op, left, right):
            return {"op": op, "left": expr_to_json(left), "right": expr_to_json(right)}
        case n.Not(arg):
            return {"op": "not", "arg": expr_to_json(arg)}
        case n.IsIn(arg, values):
            return {"op": "is_in", "arg": expr_to_json(arg), "values": [lit_to_json(v) for v in values]}
        case n.Between(arg, lower, upper):
            return {"op": "between", "arg": expr_to_json(arg), "lower": expr_to_json(lower),
                    "upper": expr_to_json(upper)}  # fmt: skip
        case n.IsNull(arg):
            return {"op": "is_null", "arg": expr_to_json(arg)}
        case n.FillNull(arg, value):
            return {"op": "fill_null", "arg": expr_to_json(arg), "value": expr_to_json(value)}
        case n.Cut(arg, breaks, labels):
            return {"op": "cut", "arg": expr_to_json(arg), "breaks": list(breaks), "labels": list(labels)}
        case n.DatePart(arg, part):
            return {"op": "date_part", "arg": expr_to_json(arg), "part": part}
        case n.AgeAt(arg, date):
            return {"op": "age_at", "arg": expr_to_json(arg), "date": date.isoformat()}
        case n.When(branches, otherwise):
            return {"op": "when",
                    "branches": [{"if": expr_to_json(c), "then": expr_to_json(v)} for c, v in branches],
                    "otherwise": expr_to_json(otherwise)}  # fmt: skip
    msg = f"cannot serialise expression node {type(e).__name__}"
    raise PlanFormatError(msg)


def expr_from_json(d: dict[str, Any]) -> n.Expr:
    """Decode an expression node."""
    op = d["op"]
    if op == "col":
        return n.Col(d["name"])
    if op == "lit":
        return n.Lit(lit_from_json(d))
    if op in n.BINARY_OPS:
        return n.BinOp(op, expr_from_json(d["left"]), expr_from_json(d["right"]))
    if op == "not":
        return n.Not(expr_from_json(d["arg"]))
    if op == "is_in":
        return n.IsIn(expr_from_json(d["arg"]), tuple(lit_from_json(v) for v in d["values"]))
    if op == "between":
        return n.Between(*(expr_from_json(d[k]) for k in ("arg", "lower", "upper")))
    if op == "is_null":
        return n.IsNull(expr_from_json(d["arg"]))
    if op == "fill_null":
        return n.FillNull(expr_from_json(d["arg"]), expr_from_json(d["value"]))
    if op == "cut":
        return n.Cut(expr_from_json(d["arg"]), tuple(float(b) for b in d["breaks"]), tuple(d["labels"]))
    if op == "date_part":
        return n.DatePart(expr_from_json(d["arg"]), d["part"])
    if op == "age_at":
        return n.AgeAt(expr_from_json(d["arg"]), dt.date.fromisoformat(d["date"]))
    if op == "when":
        branches = tuple((expr_from_json(b["if"]), expr_from_json(b["then"])) for b in d["branches"])
        return n.When(branches, expr_from_json(d["otherwise"]))
    msg = f"unknown expression op {op!r}"
    raise PlanFormatError(msg)


def agg_to_json(a: n.Agg) -> dict[str, Any]:
    """Encode an aggregate."""
    out: dict[str, Any] = {"func": a.func}
    if a.arg is not None:
        out["arg"] = expr_to_json(a.arg)
    if a.q is not None:
        out["q"] = a.q
    return out


def agg_from_json(d: dict[str, Any]) -> n.Agg:
    """Decode an aggregate."""
    arg = expr_from_json(d["arg"]) if "arg" in d else None
    return n.Agg(d["func"], arg, float(d["q"]) if "q" in d else None)


# --- relations ---------------------------------------------------------------


def _named(exprs: tuple[tuple[str, n.Expr], ...]) -> list[dict[str, Any]]:
    return [{"name": k, "expr": expr_to_json(v)} for k, v in exprs]


def _unnamed(items: list[dict[str, Any]]) -> tuple[tuple[str, n.Expr], ...]:
    return tuple((d["name"], expr_from_json(d["expr"])) for d in items)


def rel_to_json(r: n.Relation) -> dict[str, Any]:
    """Encode a relation node."""
    match r:
        case n.Source(dataset, columns):
            out: dict[str, Any] = {"op": "source", "dataset": dataset}
            if columns is not None:
                out["columns"] = list(columns)
            return out
        case n.Select(inp, exprs):
            return {"op": "select", "input": rel_to_json(inp), "exprs": _named(exprs)}
        case n.WithColumns(inp, exprs):
            return {"op": "with_columns", "input": rel_to_json(inp), "exprs": _named(exprs)}
        case n.Filter(inp, pred):
            return {"op": "filter", "input": rel_to_json(inp), "predicate": expr_to_json(pred)}
        case n.Join(left, right, on, how):
            return {"op": "join", "left": rel_to_json(left), "right": rel_to_json(right),
                    "on": on, "how": how}  # fmt: skip
        case n.Aggregate(inp, keys, aggs):
            return {"op": "aggregate", "input": rel_to_json(inp), "keys": list(keys),
                    "aggs": [{"name": k, **agg_to_json(a)} for k, a in aggs]}  # fmt: skip
    msg = f"cannot serialise relation node {type(r).__name__}"
    raise PlanFormatError(msg)


def rel_from_json(d: dict[str, Any]) -> n.Relation:
    """Decode a relation node."""
    op = d["op"]
    if op == "source":
        cols = d.get("columns")
        return n.Source(d["dataset"], tuple(cols) if cols is not None else None)
    if op == "select":
        return n.Select(rel_from_json(d["input"]), _unnamed(d["exprs"]))
    if op == "with_columns":
        return n.WithColumns(rel_from_json(d["input"]), _unnamed(d["exprs"]))
    if op == "filter":
        return n.Filter(rel_from_json(d["input"]), expr_from_json(d["predicate"]))
    if op == "join":
        return n.Join(rel_from_json(d["left"]), rel_from_json(d["right"]), d["on"], d["how"])
    if op == "aggregate":
        aggs = tuple((a["name"], agg_from_json(a)) for a in d["aggs"])
        return n.Aggregate(rel_from_json(d["input"]), tuple(d["keys"]), aggs)
    msg = f"unknown relation op {op!r}"
    raise PlanFormatError(msg)


# --- documents ---------------------------------------------------------------


def plan_to_dict(p: n.Plan) -> dict[str, Any]:
    """Encode a plan as its JSON document."""
    return {
        "format": n.PLAN_FORMAT,
        "root": rel_to_json(p.root),
        "disclosure": {"min_group_size": p.min_group_size},
    }


def plan_from_dict(d: dict[str, Any]) -> n.Plan:
    """Validate a JSON document against the schema and decode it."""
    try:
        jsonschema.validate(d, plan_json_schema())
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(document)"
        msg = f"plan does not match {n.PLAN_FORMAT} at {where}: {e.message}"
        raise PlanFormatError(msg) from None
    return n.Plan(rel_from_json(d["root"]), int(d["disclosure"]["min_group_size"]))


def canonical_json(p: n.Plan) -> str:
    """Return the canonical JSON text of a plan (sorted keys, no whitespace)."""
    return json.dumps(plan_to_dict(p), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)  # fmt: skip


def plan_from_json(text: str | bytes) -> n.Plan:
    """Parse and validate a plan's JSON text."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        msg = f"plan is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        raise PlanFormatError(msg) from None
    if not isinstance(d, dict):
        msg = "plan JSON must be an object"
        raise PlanFormatError(msg)
    return plan_from_dict(d)


def plan_hash(p: n.Plan) -> str:
    """Return the SHA-256 (hex) of the plan's canonical JSON."""
    return hashlib.sha256(canonical_json(p).encode("utf-8")).hexdigest()


@cache
def plan_json_schema() -> dict[str, Any]:
    """Return the published JSON Schema of the plan format."""
    text = resources.files("werkplaats.plan").joinpath("plan.schema.json").read_text("utf-8")
    return json.loads(text)
