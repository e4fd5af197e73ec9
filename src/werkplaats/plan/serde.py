"""Canonical JSON for plans: to_dict/from_dict pairs, plan_hash, schema check.

Nodes are encoded from their dataclass fields, one codec per field type
(FIELD_CODECS): a node is ``{"op": <class name in snake_case>, <field>: ...}``.

The canonical form is UTF-8 JSON with sorted keys and no whitespace; its SHA-256
is the plan hash that approvals sign. Loading validates against the published
JSON Schema before any node is built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import fields
from functools import cache
from importlib import resources
from typing import Any, TypeAlias, TypeVar

import jsonschema
from jsonschema.exceptions import best_match, relevance

from ..exceptions import PlanFormatError
from . import nodes as n
from .limits import MAX_PLAN_BYTES, MAX_PLAN_DEPTH, MAX_PLAN_NODES, MAX_SAFE_INT

T = TypeVar("T")

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


# The JSON value each literal tag allows (bool is not an int here).
_LIT_JSON: dict[str, tuple[type, ...]] = {
    "null": (type(None),), "bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "date": (str,),
}  # fmt: skip


def lit_from_json(d: dict[str, Any]) -> n.LitValue:
    """Decode a tagged literal; refuse a value that does not fit its tag."""
    t, v = d["type"], d["value"]
    fits = isinstance(v, _LIT_JSON.get(t, ())) and (t in ("bool", "null") or not isinstance(v, bool))
    try:
        if not fits:
            raise ValueError
        if t == "date":
            return dt.date.fromisoformat(v)
    except ValueError:
        msg = f"a literal of type {t!r} needs a JSON {'ISO date string' if t == 'date' else t} value"
        raise PlanFormatError(msg) from None
    if t == "float":
        return _finite(v, "a float literal")
    if t == "int" and abs(v) > MAX_SAFE_INT:
        msg = "an int literal must lie within ±2^53 (beyond it a float64 no longer holds every integer)"
        raise PlanFormatError(msg)
    return v


def _finite(v: Any, what: str) -> float:
    """Return v as a float; refuse NaN and ±Infinity, which no executor computes with alike."""
    try:
        x = float(v)
    except OverflowError:  # NB: an int beyond float64 (10^400)
        x = math.inf
    if not math.isfinite(x):
        msg = f"{what} must be a finite number, not NaN or Infinity"
        raise PlanFormatError(msg)
    return x


# --- nodes: one codec per field type ------------------------------------------

Codec: TypeAlias = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# A node's JSON op is its class name in snake_case (IsIn → "is_in"); BinOp uses its operator.
EXPR_OPS: dict[str, type] = {_snake(c.__name__): c for c in n.EXPR_NODES if c is not n.BinOp}
RELATION_OPS: dict[str, type] = {_snake(c.__name__): c for c in n.RELATION_NODES}


def _field_codec(annotation: str) -> tuple[Codec, bool]:
    """Return the codec of a field's annotation and whether None is allowed (then left out)."""
    optional = annotation.endswith(" | None")
    kind = annotation.removesuffix(" | None")
    if kind.startswith("TLiteral["):
        kind = "str"
    try:
        return FIELD_CODECS[kind], optional
    except KeyError:
        msg = f"the plan format has no JSON codec for a field of type {annotation!r}"
        raise PlanFormatError(msg) from None


def fields_to_json(node: Any) -> dict[str, Any]:
    """Encode a node's fields by their declared types; None in an optional field is left out."""
    out: dict[str, Any] = {}
    for f in fields(node):
        value = getattr(node, f.name)
        (encode, _), optional = _field_codec(str(f.type))
        if value is None and optional:
            continue
        out[f.name] = encode(value)
    return out


def fields_from_json(cls: type[T], d: dict[str, Any]) -> T:
    """Decode a node of class cls from the members named like its fields."""
    kwargs = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in d:
            (_, decode), _ = _field_codec(str(f.type))
            kwargs[f.name] = decode(d[f.name])
    return cls(**kwargs)


def expr_to_json(e: n.Expr) -> dict[str, Any]:
    """Encode an expression node."""
    if isinstance(e, n.Lit):
        return {"op": "lit", **lit_to_json(e.value)}  # NB: the literal's tag and value sit beside op
    if isinstance(e, n.BinOp):
        return {"op": e.op, "left": expr_to_json(e.left), "right": expr_to_json(e.right)}
    if type(e) not in n.EXPR_NODES:
        msg = f"cannot serialise expression node {type(e).__name__}"
        raise PlanFormatError(msg)
    return {"op": _snake(type(e).__name__), **fields_to_json(e)}


def expr_from_json(d: dict[str, Any]) -> n.Expr:
    """Decode an expression node."""
    op = d["op"]
    if op == "lit":
        return n.Lit(lit_from_json(d))
    if op in n.BINARY_OPS:
        return n.BinOp(op, expr_from_json(d["left"]), expr_from_json(d["right"]))
    if op not in EXPR_OPS:
        msg = f"unknown expression op {op!r}"
        raise PlanFormatError(msg)
    return fields_from_json(EXPR_OPS[op], d)


def agg_to_json(a: n.Agg) -> dict[str, Any]:
    """Encode an aggregate."""
    return fields_to_json(a)


def agg_from_json(d: dict[str, Any]) -> n.Agg:
    """Decode an aggregate."""
    return fields_from_json(n.Agg, d)


def rel_to_json(r: n.Relation) -> dict[str, Any]:
    """Encode a relation node."""
    if type(r) not in n.RELATION_NODES:
        msg = f"cannot serialise relation node {type(r).__name__}"
        raise PlanFormatError(msg)
    return {"op": _snake(type(r).__name__), **fields_to_json(r)}


def rel_from_json(d: dict[str, Any]) -> n.Relation:
    """Decode a relation node."""
    op = d["op"]
    if op not in RELATION_OPS:
        msg = f"unknown relation op {op!r}"
        raise PlanFormatError(msg)
    return fields_from_json(RELATION_OPS[op], d)


def _same(x: Any) -> Any:
    return x


def _floats(xs: list[Any]) -> tuple[float, ...]:
    return tuple(_finite(x, "a list of numbers (cut breaks)") for x in xs)


# Field type (as annotated in plan.nodes) → (encode, decode). A new node whose fields
# use these types needs no serde code; a new field type needs one entry here.
FIELD_CODECS: dict[str, Codec] = {
    "str": (_same, _same),
    "int": (_same, int),
    "float": (_same, lambda v: _finite(v, "a number field (quantile q)")),
    "dt.date": (lambda d: d.isoformat(), dt.date.fromisoformat),
    "LitValue": (lit_to_json, lit_from_json),
    "Expr": (expr_to_json, expr_from_json),
    "Relation": (rel_to_json, rel_from_json),
    "tuple[Relation, ...]": (lambda rs: [rel_to_json(r) for r in rs], lambda ds: tuple(rel_from_json(d) for d in ds)),
    "tuple[str, ...]": (list, tuple),
    "tuple[float, ...]": (list, _floats),
    "tuple[LitValue, ...]": (lambda vs: [lit_to_json(v) for v in vs], lambda ds: tuple(lit_from_json(d) for d in ds)),
    "tuple[tuple[Expr, Expr], ...]": (
        lambda bs: [{"if": expr_to_json(c), "then": expr_to_json(v)} for c, v in bs],
        lambda ds: tuple((expr_from_json(d["if"]), expr_from_json(d["then"])) for d in ds),
    ),
    "tuple[tuple[str, Expr], ...]": (
        lambda es: [{"name": k, "expr": expr_to_json(e)} for k, e in es],
        lambda ds: tuple((d["name"], expr_from_json(d["expr"])) for d in ds),
    ),
    "tuple[tuple[str, str], ...]": (
        lambda ps: [{"column": k, "category": v} for k, v in ps],
        lambda ds: tuple((d["column"], d["category"]) for d in ds),
    ),
    "tuple[tuple[str, float], ...]": (
        lambda ps: [{"band": k, "population": v} for k, v in ps],
        lambda ds: tuple((d["band"], _finite(d["population"], "a standard population")) for d in ds),
    ),
    "tuple[tuple[str, Agg], ...]": (
        lambda aggs: [{"name": k, **agg_to_json(a)} for k, a in aggs],
        lambda ds: tuple((d["name"], agg_from_json(d)) for d in ds),
    ),
}


# --- documents ---------------------------------------------------------------


def plan_to_dict(p: n.Plan) -> dict[str, Any]:
    """Encode a plan as its JSON document."""
    return {
        "format": n.PLAN_FORMAT,
        "root": rel_to_json(p.root),
        "disclosure": {"min_group_size": p.min_group_size},
    }


def plan_from_dict(d: dict[str, Any]) -> n.Plan:
    """Check a JSON document's size, then validate it against the schema and decode it.

    NB: the size is bounded first (nesting, nodes, bytes; `werkplaats.plan.limits`) and the
    schema is dispatched on each node's op, so that checking grows linearly with the plan.
    """
    _check_size(d)
    try:
        errors = list(_validator().iter_errors(d))
    except RecursionError:  # NB: a caller already deep in its own stack
        msg = f"plan does not match {n.PLAN_FORMAT}: nested too deeply to check"
        raise PlanFormatError(msg) from None
    if errors:
        error = max(errors, key=relevance)
        path, what = _schema_error(error)
        where = "/".join(str(p) for p in path) or "(document)"
        msg = f"plan does not match {n.PLAN_FORMAT} at {where}: {what}"
        raise PlanFormatError(msg)
    return n.Plan(rel_from_json(d["root"]), int(d["disclosure"]["min_group_size"]))


def _check_size(d: Any) -> None:
    """Refuse a document nested deeper, with more objects and arrays, or longer than the limits allow."""
    count, todo = 0, [(d, 1)]
    while todo:  # NB: iterative, so that a hostile nesting cannot exhaust the stack
        x, depth = todo.pop()
        if not isinstance(x, dict | list):
            continue
        count += 1
        if depth > MAX_PLAN_DEPTH:
            msg = f"plan is nested more than {MAX_PLAN_DEPTH} levels deep (the limit of JSON objects and arrays)"
            raise PlanFormatError(msg)
        if count > MAX_PLAN_NODES:
            msg = f"plan has more than {MAX_PLAN_NODES} JSON objects and arrays (the limit of plan nodes)"
            raise PlanFormatError(msg)
        todo.extend((v, depth + 1) for v in (x.values() if isinstance(x, dict) else x))
    try:
        size = len(json.dumps(d, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except ValueError:
        msg = "plan holds NaN or Infinity: numbers in a plan must be finite"
        raise PlanFormatError(msg) from None
    except TypeError:
        msg = "plan holds a value that is not JSON"
        raise PlanFormatError(msg) from None
    if size > MAX_PLAN_BYTES:
        msg = f"plan is larger than {MAX_PLAN_BYTES} bytes of JSON (the limit of a plan's size)"
        raise PlanFormatError(msg)


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(plan_json_schema())


def _schema_error(error: jsonschema.ValidationError) -> tuple[list[Any], str]:
    """Return where and what is wrong; an unknown op is named with the ops its place allows.

    NB: the schema checks each node against its own op only (if/then), so an error is
    already about the right member; an unknown op fails the enum of the node's kind.
    """
    path = list(error.absolute_path)
    if error.validator == "enum" and path and path[-1] == "op" and isinstance(error.instance, str):
        return path[:-1], f"unknown op {error.instance!r}; expected one of {sorted(error.validator_value)}"
    error = best_match([error]) or error
    return list(error.absolute_path), error.message


def canonical_json(p: n.Plan) -> str:
    """Return the canonical JSON text of a plan (sorted keys, no whitespace)."""
    return json.dumps(plan_to_dict(p), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)  # fmt: skip


def plan_from_json(text: str | bytes) -> n.Plan:
    """Parse and validate a plan's JSON text (bounded in size before it is parsed)."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_PLAN_BYTES:
        msg = f"plan is larger than {MAX_PLAN_BYTES} bytes of JSON (the limit of a plan's size)"
        raise PlanFormatError(msg)
    try:
        d = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        msg = f"plan is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        raise PlanFormatError(msg) from None
    except (RecursionError, UnicodeDecodeError) as e:
        what = "nested too deeply" if isinstance(e, RecursionError) else "not UTF-8"
        msg = f"plan is not valid JSON: {what}"
        raise PlanFormatError(msg) from None
    if not isinstance(d, dict):
        msg = "plan JSON must be an object"
        raise PlanFormatError(msg)
    return plan_from_dict(d)


def _no_constant(name: str) -> Any:
    msg = f"plan is not valid JSON: {name} is not a JSON number (numbers in a plan must be finite)"
    raise PlanFormatError(msg)


def plan_hash(p: n.Plan) -> str:
    """Return the SHA-256 (hex) of the plan's canonical JSON."""
    return hashlib.sha256(canonical_json(p).encode("utf-8")).hexdigest()


@cache
def plan_json_schema() -> dict[str, Any]:
    """Return the published JSON Schema of the plan format."""
    text = resources.files("werkplaats.plan").joinpath("plan.schema.json").read_text("utf-8")
    return json.loads(text)
