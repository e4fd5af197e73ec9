"""The size limits of a plan, in one place: checked before any work that grows with the plan.

A plan comes from an analyst (or from whoever holds a workspace account), so every node
that reads one bounds what it will look at before looking: the JSON text and its nesting
are capped before the JSON Schema is checked (`werkplaats.plan.serde`), the shape of the
computation (aggregates, output cells, `is_in` lists) when the plan is checked against the
catalog (`werkplaats.compile.analyze`). docs/plans.md lists them.
"""

from __future__ import annotations

# The plan's canonical JSON text, in bytes (the hub refuses a larger request body too).
MAX_PLAN_BYTES = 1_000_000
# JSON objects and arrays, nested: a `not(not(...))` chain of n levels nests n + 3 deep.
MAX_PLAN_DEPTH = 64
# JSON objects and arrays in the whole plan (every node, literal and list counts one).
MAX_PLAN_NODES = 10_000
# Values of one `is_in` list.
MAX_IS_IN_VALUES = 1_000
# Aggregates of one group_by(...).agg(...).
MAX_AGGREGATES = 50
# Cells of the output: groups (the product of the keys' public domains) times aggregates.
MAX_OUTPUT_CELLS = 100_000
# The largest integer a plan literal may hold: beyond 2^53 a float64 (DuckDB's double,
# JSON numbers in most languages, the MPC's fixed-point encoding) no longer holds every integer.
MAX_SAFE_INT = 2**53
# The largest float literal or cut break: the range of float values (the owners' check, catalog/validate.py);
# beyond it the MPC's fixed point (18 fractional bits in 64) has no room to compare or compute with it.
MAX_FLOAT = 2.0**30
# Characters of a request's purpose.
MAX_PURPOSE_CHARS = 2_000
