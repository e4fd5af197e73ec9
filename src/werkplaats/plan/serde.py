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
        return float(v)
    return v


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
    return tuple(float(x) for x in xs)


# Field type (as annotated in plan.nodes) → (encode, decode). A new node whose fields
# use these types needs no serde code; a new field type needs one entry here.
FIELD_CODECS: dict[str, Codec] = {
    "str": (_same, _same),
    "int": (_same, int),
    "float": (_same, float),
    "dt.date": (lambda d: d.isoformat(), dt.date.fromisoformat),
    "LitValue": (lit_to_json, lit_from_json),
    "Expr": (expr_to_json, expr_from_json),
    "Relation": (rel_to_json, rel_from_json),
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
    """Validate a JSON document against the schema and decode it."""
    errors = list(jsonschema.Draft202012Validator(plan_json_schema()).iter_errors(d))
    if errors:
        error = max(errors, key=relevance)
        path, what = _schema_error(error)
        where = "/".join(str(p) for p in path) or "(document)"
        msg = f"plan does not match {n.PLAN_FORMAT} at {where}: {what}"
        raise PlanFormatError(msg)
    return n.Plan(rel_from_json(d["root"]), int(d["disclosure"]["min_group_size"]))


def _ops_of(branch: dict[str, Any]) -> list[str]:
    op = branch.get("properties", {}).get("op", {})
    return [op["const"]] if "const" in op else list(op.get("enum", ()))


def _schema_error(error: jsonschema.ValidationError) -> tuple[list[Any], str]:
    """Return where and what is wrong, following each node's "op" into the schema of its kind.

    NB: a node matches one of several kinds (oneOf); jsonschema alone would only say
    that it matches none, and print the whole node.
    """
    while error.validator == "oneOf" and isinstance(error.instance, dict) and "op" in error.instance:
        op = error.instance["op"]
        branches = [i for i, b in enumerate(error.validator_value) if op in _ops_of(b)]
        if not branches:
            known = sorted(o for b in error.validator_value for o in _ops_of(b))
            return list(error.absolute_path), f"unknown op {op!r}; expected one of {known}"
        subs = [e for e in error.context or () if e.relative_schema_path[0] == branches[0]]
        if not subs:
            break
        error = max(subs, key=relevance)
    error = best_match([error]) or error  # NB: descends into other combinations (e.g. a literal's type)
    return list(error.absolute_path), error.message


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
