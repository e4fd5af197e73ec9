"""Summaries: the plan roots that release a model's or a measure's summary instead of aggregate cells.

One module per root node kind (plan.nodes.SUMMARY_NODES), each with the same functions, so that
the checker, both executors, the result receiver and the result frame treat them alike:

- ``schema(a, node, base) -> Schema``: check the node against its input's schema ``base`` (raise
  PlanError saying what is wrong and where) and return the summary's output schema;
- ``output_kinds(a) -> list[tuple[str, str]]``: the program's outputs after ``__withheld``, as
  (name, kind) with kind "int" or "float"; the first is the per-row flag (1 = released);
- ``mpc(a, f) -> (flags, outs)``: inside the MPC program, from the input relation's secret frame
  (`kernels.core.SFrame`): the whole-summary checks as (reason code, secret 0/1 passes) and the
  outputs in ``output_kinds`` order;
- ``plain(a, rows) -> (flags, outs)``: the same on the plain executor, from the input relation's
  rows (a DataFrame of the columns the node reads; rows a filter removed are not in it), as NumPy;
- ``revealed(a, values, withheld) -> Revealed``: the outputs after reconstruction (withheld: the
  whole summary's reason code, REVEALED when released; every value is zero otherwise);
- ``frame(a, rev) -> DataFrame``: the result the analyst sees.

The two executors share ``revealed`` and ``frame``, so MPC equals plain wherever the outputs do.
Each summary runs under the model precision (`precision`): FM128 with 40 fraction bits.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from ...plan import nodes as n

_MODULES = {n.Glm: "glm", n.Corr: "corr", n.Standardize: "rates"}


def summary_module(node: object) -> ModuleType:
    """Return the module (glm, corr, rates) that implements a summary root node."""
    return import_module(f"{__name__}.{_MODULES[type(node)]}")


def is_summary(plan: n.Plan) -> bool:
    """Return whether a plan's root is a summary (a model or a measure), not an aggregate."""
    return isinstance(plan.root, n.SUMMARY_NODES)
