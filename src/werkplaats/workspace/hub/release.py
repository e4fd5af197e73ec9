"""Releasing a result: the three engines' output shares → the disclosure-controlled result, stored and logged.

Security model: the hub sees the output shares only; combined they reveal exactly the
cells the program let through (suppressed cells are zeroed inside the parties) and
which cells were suppressed. If reconstruction fails, nothing is released and the job fails.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from ...compile.analyze import result_frame
from ...mpc.share import reconstruct
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
        frame = result_frame(a, reconstruct(a, shares))
    except Exception as e:  # NB: nothing is released when reconstruction fails; the type says enough
        fail(hub, s, j, f"hub: could not reconstruct the result ({type(e).__name__})", "hub")
        return
    data = {"columns": list(frame.columns), "rows": records(frame), "min_group_size": a.plan.min_group_size}
    s.add(db.Result(job_id=j.id, data=data))
    move(j, JobState.SUCCEEDED)
    collab = s.get(db.Collaboration, r.collaboration_id)
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
            "cells": len(frame),
            "suppressed": int(frame["suppressed"].sum()),
        },
    )


def _collab_name(s: Session, r: db.Request) -> str:
    collab = s.get(db.Collaboration, r.collaboration_id)
    return collab.name if collab else ""


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a result frame's rows as JSON; dates (min/max of a date column) become ISO strings, never dropped."""

    def plain(v: Any) -> Any:
        if isinstance(v, dt.date):  # NB: pandas Timestamps are datetimes, hence dates
            return v.date().isoformat() if isinstance(v, dt.datetime) else v.isoformat()
        return v.item() if hasattr(v, "item") else v

    rows = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{str(k): plain(v) for k, v in row.items()} for row in rows]
