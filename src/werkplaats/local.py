"""run_local: run a plan on in-memory tables, on the plain or the MPC executor."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import pandas as pd

from .catalog.schema import TableSchema, infer_schema
from .catalog.validate import validate_table
from .compile.analyze import Analysis, check, result_frame
from .compile.register import Register, attach, register_sources
from .compile.rules import DisclosureRules
from .exceptions import PlanError
from .plan import nodes as n
from .plan.serde import plan_from_json

if TYPE_CHECKING:
    from .frame import LazyFrame
    from .mpc.cluster import LocalCluster


def prepare(
    frame: LazyFrame | n.Plan,
    tables: dict[str, pd.DataFrame],
    *,
    min_group_size: int | None = None,
    schemas: dict[str, TableSchema] | None = None,
    rules: DisclosureRules | None = None,
    register: Register | None = None,
) -> tuple[Analysis, dict[str, pd.DataFrame]]:
    """Check the plan and validate each source as its owner would; return both.

    register: rule 9's released cell definitions; those of the plan's universe are attached to
    the Analysis, and the columns they read are validated too.
    """
    plan = frame if isinstance(frame, n.Plan) else frame.to_plan()
    if min_group_size is not None:
        plan = n.Plan(plan.root, int(min_group_size))
    catalog = dict(schemas or {})
    for s in n.sources(plan.root):
        if s.dataset not in catalog:
            if s.dataset not in tables:
                msg = f"no table given for dataset {s.dataset!r}; pass tables={{{s.dataset!r}: df}}"
                raise PlanError(msg)
            catalog[s.dataset] = infer_schema(s.dataset, tables[s.dataset])
    a = check(plan, catalog, rules, {ds: len(df) for ds, df in tables.items()})
    if register is not None:
        for e in register.entries:
            for s in n.sources(plan_from_json(e.plan).root):
                if s.dataset not in catalog and s.dataset in tables:
                    catalog[s.dataset] = infer_schema(s.dataset, tables[s.dataset])
        attach(a, register.entries, catalog)
    used: dict[str, set[str]] = {}
    for s in [*n.sources(a.plan.root), *register_sources(a)]:
        used.setdefault(s.dataset, set()).update(s.columns or ())
    for r in a.register:  # NB: the register check joins as its registered plans did: the same key checks
        a.unique_keys |= r.analysis.unique_keys
        a.key_columns |= r.analysis.key_columns
    checked = {}
    for ds, cols in used.items():
        schema = catalog[ds]
        ordered = tuple(c for c in schema.names if c in cols)
        uniq = {col for d, col in a.unique_keys if d == ds}
        keys = frozenset(col for d, col in a.key_columns if d == ds)
        checked[ds] = validate_table(tables[ds], schema, ordered, uniq, keys)
    return a, checked


def run_local(
    frame: LazyFrame | n.Plan,
    tables: dict[str, pd.DataFrame],
    *,
    engine: str = "plain",
    min_group_size: int | None = None,
    schemas: dict[str, TableSchema] | None = None,
    cluster: LocalCluster | None = None,
    rules: DisclosureRules | None = None,
    perturbation_key: int | None = None,
    register: Register | None = None,
    memory_budget_gb: float = 2.0,
    buckets: int | None = None,
    **mpc_options: Any,
) -> pd.DataFrame:
    """Run a plan on local tables and return its disclosure-controlled aggregates.

    Parameters
    ----------
    frame
        The analysis (a LazyFrame or a Plan).
    tables
        One DataFrame per dataset name the plan reads.
    engine
        ``"plain"`` (DuckDB, the reference) or ``"mpc"`` (three SPU parties in three
        processes; each table is secret-shared by its owner).
    min_group_size
        Cells with fewer rows, and statistics from fewer values, are suppressed.
        Defaults to the plan's own (10).
    schemas
        Catalog schemas; inferred from the tables where not given. An inferred schema
        takes its code lists and date ranges from the data.
    cluster
        A running :class:`werkplaats.mpc.LocalCluster` to reuse; one is started and
        stopped for this run when not given.
    rules
        The disclosure rules to apply (docs/disclosure.md); default ``DisclosureRules()``,
        what a workspace applies. ``DisclosureRules.cells_only()`` switches every rule but
        the cell rule off, for exact comparisons.
    perturbation_key
        The key of the record keys that perturb counts (rule 6), as a number below 2^64.
        A workspace's engines hold theirs as shares; a local run takes it here, so that
        both executors, and two runs, perturb alike. Default: a fresh random key per run.
    register
        Rule 9's query register (:class:`werkplaats.compile.register.Register`): the run is
        checked against the released tables it holds of the same rows (its whole result is
        withheld, REGISTER, when a cell differs from a released one by 1 … k − 1 rows), and
        records its own released cells in it. A workspace's hub keeps one per collaboration.
    memory_budget_gb
        The MPC executor's memory budget per party (GB, default 2): a job the memory model
        puts over it runs bucketed (docs/mpc.md, "Bucketed execution"), or is refused with the
        reason when its plan does not combine across buckets (an exact quantile).
    buckets
        Force the MPC executor's bucket count (a power of two; 1: unbucketed), e.g. in tests.

    Returns
    -------
    pandas.DataFrame
        One row per cell of the key domains, a column per statistic, and the columns
        ``suppressed`` and ``reason``.

    Examples
    --------
    >>> import pandas as pd, werkplaats as wp
    >>> df = pd.DataFrame({"bsn": range(40), "gemeente": ["A"] * 35 + ["B"] * 5})
    >>> q = wp.scan("t").group_by("gemeente").agg(n=wp.count())
    >>> out = wp.run_local(q, {"t": df}, perturbation_key=1)
    >>> print(out[["gemeente", "n", "reason"]].to_string(index=False))
    gemeente    n             reason
           A   35               None
           B <NA> fewer than 10 rows
        <NA> <NA> fewer than 10 rows
    """
    a, checked = prepare(frame, tables, min_group_size=min_group_size, schemas=schemas, rules=rules,
                         register=register)  # fmt: skip
    key = perturbation_key if perturbation_key is not None else secrets.randbits(64)  # NB: rule 6
    if engine == "plain":
        from .compile.plain import run_plain

        rev = run_plain(a, checked, perturbation_key=key)
    elif engine == "mpc":
        from .mpc.cluster import run_mpc

        rev = run_mpc(a, checked, cluster=cluster, perturbation_key=key, memory_budget_gb=memory_budget_gb,
                      buckets=buckets, **mpc_options)  # fmt: skip
    else:
        msg = f"engine must be 'plain' or 'mpc', got {engine!r}"
        raise PlanError(msg)
    if register is not None:
        register.record(a, rev)
    out = result_frame(a, rev)
    out.attrs["engine"] = engine
    return out
