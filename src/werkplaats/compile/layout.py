"""The input layout of an MPC program: which arrays each table contributes, decided from the plan.

Every input of the SPU program is one `Slot`: a (dataset, column, encoding) with its
shape. `layout` derives the slots from the checked plan and each table's row count
alone, so the data owners (who encode and share the arrays, `werkplaats.mpc.encode`),
the parties (who compile the program over them) and the result receiver agree without
talking.

With ``bucketed=True`` (issue 13, `werkplaats.compile.staged`) the row counts are the padded
bucket sizes and every dataset's slots begin with its row-validity slot ``(dataset, ROW, "ok")``:
1 for a real row, 0 for a padding row, which becomes the dataset's row mask.

Security model: everything here is public metadata — the plan, the schemas with their
code lists and date ranges, and the row counts (with buckets: the padded sizes). No value
of any table is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..plan import nodes as n
from ..plan.types import column_dtype, date_part_domain
from .analyze import Analysis

ROW = "__row"  # NB: the column name of a bucket's row-validity slot (never a catalog column: names are identifiers)


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
    return [*n.relation_exprs(rel), *(e for c in n.children(rel) for e in _walk_exprs(c))]


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


def _merged_sources(plans: list[n.Plan]) -> list[n.Source]:
    """Return one source per dataset the plans read, with every column any of them reads, first seen first."""
    cols: dict[str, dict[str, None]] = {}
    for p in plans:
        for s in n.sources(p.root):
            cols.setdefault(s.dataset, {}).update(dict.fromkeys(s.columns or ()))
    return [n.Source(ds, tuple(used)) for ds, used in cols.items()]


def layout(a: Analysis, rows: dict[str, int], *, bucketed: bool = False) -> list[Slot]:
    """Return every input array of the MPC program, in order (of the datasets in rows).

    bucketed: rows are the padded bucket sizes, and each dataset's slots begin with its ROW slot.
    """
    plans = [a.plan, *(r.analysis.plan for r in a.register)]  # NB: rule 9 reads what registered results read
    parts: dict[str, set[str]] = {}
    grouped: set[str] = set()
    for p in plans:
        for c, ps in date_parts_used(p).items():
            parts.setdefault(c, set()).update(ps)
        grouped |= group_key_names(p)
    slots: list[Slot] = []
    for src in _merged_sources(plans):
        if src.dataset not in rows:
            continue  # NB: an owner lays out only its own datasets
        real = rows[src.dataset]
        nrow = max(real, 1)  # NB: SPU cannot reduce empty arrays; the row count is public anyway
        if bucketed:
            slots.append(Slot(src.dataset, ROW, "ok", (nrow,), "int64", real))
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
