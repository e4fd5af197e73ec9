"""Releasing a result: the three engines' output shares → the disclosure-controlled result, stored and logged.

Security model: the hub sees the output shares only; combined they reveal exactly the
cells the program let through (suppressed cells are zeroed inside the parties) and
which cells were suppressed. If reconstruction fails, nothing is released and the job fails.

Rule 9: each released result's cell definitions go into the collaboration's query register
(`db.RegisteredTable`), and a job is given the entries of the same rows (`job_register`).
Trust: the hub keeps the register; a hub that leaves entries out of a job makes the check
weaker, which its audit log shows (every release is logged with its plan hash and the
entries a job was given are in the job's payload); docs/workspace.md's threat model.

A model's or measure's summary (compile/models) travels like an aggregate: reconstructed at the
plan's precision (`mpc.share.reconstruct`), its frame stored with the frame's attributes (the fit
statistics, or the reason the whole summary was withheld), its release logged. It is not registered.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...compile.analyze import analyze, result_frame
from ...compile.models import is_summary
from ...compile.register import entry_for, universe
from ...compile.rules import DisclosureRules
from ...mpc.share import reconstruct
from ...plan import nodes as n
from ...plan.serde import plan_from_dict, plan_from_json
from ...result import REVEALED
from .. import db
from ..jobs import catalog_of, job_analysis
from ..messages import JobState
from .core import Hub
from .deps import request_by_id
from .lifecycle import fail, move
from .views import catalog_docs


def release(hub: Hub, s: Session, j: db.Job, shares: list[list[Any]], actor: str) -> None:
    """Reconstruct a job's result from the three parties' output shares, store it and log its release."""
    r = request_by_id(s, j.request_id)
    try:
        a = job_analysis(r.plan, catalog_of(catalog_docs(s, r.datasets)), hub.rules_settings(_collab_name(s, r)))
        rev = reconstruct(a, shares)
        frame = result_frame(a, rev)
    except Exception as e:  # NB: nothing is released when reconstruction fails; the type says enough
        fail(hub, s, j, f"hub: could not reconstruct the result ({type(e).__name__})", "hub")
        return
    s.add(db.Result(job_id=j.id, data=stored(frame, a.plan.min_group_size)))
    summary = is_summary(a.plan)
    # NB: rule 9 registers released cells; a model's or measure's summary is released whole, not registered
    entry = None if summary else entry_for(a, rev, request=str(r.id), job=str(j.id))
    if entry is not None:  # NB: rule 9: the released cells' definitions, never their values
        s.add(db.RegisteredTable(collaboration_id=r.collaboration_id, request_id=r.id, job_id=j.id,
                                 plan_hash=r.plan_hash, universe=entry.universe, entry=entry.to_dict()))  # fmt: skip
    move(j, JobState.SUCCEEDED)
    collab = s.get(db.Collaboration, r.collaboration_id)
    # NB: a summary (a model, a measure) is released or withheld whole (the reason is in the result)
    whole = {"summary": type(a.plan.root).__name__.lower(), "withheld": rev.withheld != REVEALED} if summary else {}
    hub.log(
        s,
        actor=actor,
        action="job-end",
        subject=f"job/{j.id}",
        details={"request": r.id, "job": j.id, "state": JobState.SUCCEEDED.value},
    )
    hub.log(
        s,
        actor="hub",
        action="result-release",
        subject=f"job/{j.id}",
        details={
            "request": r.id,
            "job": j.id,
            "collaboration": collab.name if collab else "",
            "purpose": r.purpose,
            "datasets": r.datasets,
            "plan_hash": r.plan_hash,
            "cells": len(frame),
            "suppressed": int(frame["suppressed"].sum()) if "suppressed" in frame else 0,
            "registered": entry is not None,
            **whole,
        },
    )


def job_register(s: Session, r: db.Request) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Return the register entries a request's job is given (its collaboration's, of the same rows, oldest
    first) and the columns the job reads with them (the register check reads what those results read).

    NB: all of them: more than one run can check makes the job refuse (compile/register.overlapping).
    A model's or measure's summary is not checked against the register (its rows are not cells).
    """
    try:
        plan = plan_from_dict(r.plan)
        if isinstance(plan.root, n.SUMMARY_NODES):
            return [], r.columns
        u = universe(analyze(plan, catalog_of(catalog_docs(s, r.datasets)), DisclosureRules.cells_only()))
    except Exception:  # NB: a plan that no longer checks fails at the nodes, with their reason
        u = None
    if u is None:
        return [], r.columns
    rows = s.scalars(select(db.RegisteredTable).where(db.RegisteredTable.collaboration_id == r.collaboration_id,
                                                      db.RegisteredTable.universe == u)
                     .order_by(db.RegisteredTable.id))  # fmt: skip
    entries = [row.entry for row in rows]
    columns = {d: list(cs) for d, cs in r.columns.items()}
    for e in entries:
        for src in n.sources(plan_from_json(e["plan"]).root):
            if src.dataset in columns:
                columns[src.dataset] += [c for c in src.columns or () if c not in columns[src.dataset]]
    return entries, columns


def _collab_name(s: Session, r: db.Request) -> str:
    collab = s.get(db.Collaboration, r.collaboration_id)
    return collab.name if collab else ""


def stored(frame: pd.DataFrame, k: int) -> dict[str, Any]:
    """Return a result frame as the hub stores it (`db.Result.data`) and returns it (`schemas.ResultPublic`)."""
    return {"columns": [str(c) for c in frame.columns], "rows": records(frame), "min_group_size": k,
            "attrs": jsonable(dict(frame.attrs)), "float_columns": float_columns(frame)}  # fmt: skip


def jsonable(v: Any) -> Any:
    """Return a result frame's attribute as JSON: numbers, text, bools, lists and objects; a missing number is null."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [jsonable(x) for x in v]
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None  # NB: JSON has no NaN; a withheld number is null
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, str | int | float | bool):
        return v
    return str(v)


def float_columns(frame: pd.DataFrame) -> list[str]:
    """Return the frame's floating-point columns (so that a client reads a column of withheld numbers as floats)."""
    return [str(c) for c, t in frame.dtypes.items() if pd.api.types.is_float_dtype(t)]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a result frame's rows as JSON; dates (min/max of a date column) become ISO strings, never dropped."""

    def plain(v: Any) -> Any:
        if isinstance(v, dt.date):  # NB: pandas Timestamps are datetimes, hence dates
            return v.date().isoformat() if isinstance(v, dt.datetime) else v.isoformat()
        return v.item() if hasattr(v, "item") else v

    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): plain(v) for k, v in row.items()} for row in rows]
