"""What a job asks of one engine, from public metadata: memory per party and the size of one share message.

The same functions serve three places (issue 13, bucketed jobs):

- the hub, creating a job (`werkplaats.workspace.hub.lifecycle.plan_buckets`): enough buckets for the
  memory budget (`werkplaats.mpc.buckets.bucket_count`) and for the share size limit (`share_count`);
- an engine taking a job (`check_take`, called by `Engine.take`), before any datastation sends: with the
  upper bounds it has then, the catalog's rounded row counts in the job (`JobPayload.row_counts`, each
  plus half its rounding unit: `upper_rows`) and the bucket plan (a bucket's rows: `padded_size` of the
  upper bound);
- an engine once every share has arrived (`check_memory`, in `engine_run.run_party`), with the padded
  sizes the owners sent: the backstop for a catalog count that has gone stale, or that a hub understated.

A share message is one dataset's share for one engine (one bucket's, when bucketed). Its size is the
dataset's slots (`werkplaats.compile.layout`: every column's arrays, a one-hot counting its codes) times
the bytes of one element in the job's ring: ABY3 gives each party two of the three replicated shares,
so 16 bytes an element on FM64 (aggregates) and 32 on FM128 (models and measures), plus a little framing
(`SHARE_SLACK`, `SLOT_SLACK`: measured overheads are 30 to 40 bytes a slot).

Security model: public metadata only (the plan, the catalog, rounded row counts, the bucket plan); a
refusal names sizes computed from them and the setting that refused, never a real row count.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ..exceptions import WerkplaatsError
from .messages import JobPayload

log = logging.getLogger("werkplaats.engine")
MB = 1 << 20
SHARE_SLACK = 16 * 1024  # NB: a share message's header (JSON) and framing: measured under 1 kB
SLOT_SLACK = 256  # NB: per slot: its SPU share meta and chunk framing (measured 30-40 bytes)


def upper_rows(rounded: int | None) -> int:
    """Return an upper bound of a table's rows from the catalog's rounded count (catalog_io.rounded's rounding)."""
    if not rounded:
        return 0
    unit = 10 if rounded < 1000 else 10 ** (len(str(rounded)) - 2)
    return rounded + unit // 2


def check_memory(a: Any, rows: dict[str, int], bucketed: bool, budget_gb: float) -> None:
    """Raise unless one (bucket's) program over tables of `rows` rows fits this engine's memory budget."""
    from ..mpc.buckets import estimate_bytes

    need = estimate_bytes(a, rows, bucketed=bucketed)
    if need > budget_gb * 1e9:
        what = "per bucket" if bucketed else "for the job"
        msg = (f"the party would need about {need / 1e9:.1f} GB {what}, more than this engine's memory budget "
               f"of {budget_gb:g} GB (memory_budget_gb in engine.toml): refused")  # fmt: skip
        raise WerkplaatsError(msg)


def element_bytes(a: Any) -> int:
    """Return the bytes of one element of one party's share in the job's ring (two ABY3 shares of the ring)."""
    from ..mpc.runtime import PRECISIONS, precision_of

    field, _ = PRECISIONS[precision_of(a.plan)]
    return 2 * int(field.removeprefix("FM")) // 8


def share_bytes(a: Any, dataset: str, rows: int, *, bucketed: bool) -> int:
    """Return an upper bound of one share message of `dataset` for one engine: its slots over `rows` rows."""
    from ..compile.layout import layout

    slots = layout(a, {dataset: rows}, bucketed=bucketed)
    cells = sum(math.prod(s.shape) for s in slots)
    return cells * element_bytes(a) + SLOT_SLACK * len(slots) + SHARE_SLACK


def share_count(a: Any, rows: dict[str, int], limit_bytes: int) -> int:
    """Return the fewest buckets (1, or a power of two) whose share messages all stay within `limit_bytes`.

    rows: upper bounds of the tables' rows. Raises WerkplaatsError when even `MAX_BUCKETS` buckets'
    messages would be larger (a bucket is never padded below `MIN_PADDED` rows).
    """
    from ..mpc.buckets import MAX_BUCKETS, padded_size

    count = 1
    while count <= MAX_BUCKETS:
        bucketed = count > 1
        if all(share_bytes(a, d, padded_size(r, count), bucketed=bucketed) <= limit_bytes for d, r in rows.items()):
            return count
        count *= 2
    msg = (f"one bucket's share message would exceed {limit_bytes / MB:.3g} MB even in {MAX_BUCKETS} buckets; "
           "raise max_share_mb")  # fmt: skip
    raise WerkplaatsError(msg)


def check_share_size(a: Any, rows: dict[str, int], bucketed: bool, limit_bytes: int) -> None:
    """Raise unless every dataset's share message over `rows` rows (a bucket's, padded) fits this engine's limit."""
    for d, r in sorted(rows.items()):
        need = share_bytes(a, d, r, bucketed=bucketed)
        if need > limit_bytes:
            what = "per bucket" if bucketed else "for the table"
            msg = (f"a share message of {d} would be about {need / MB:.3g} MB {what}, more than this engine's "
                   f"max_share_mb of {limit_bytes / MB:.3g} MB (engine.toml): refused")  # fmt: skip
            raise WerkplaatsError(msg)


def planned_rows(job: JobPayload) -> dict[str, int] | None:
    """Return each dataset's rows as the job plans them (a bucket's padded size), from the catalog's upper bounds.

    None when the job does not give every dataset's rounded count (then only the late check applies).
    """
    from ..mpc.buckets import padded_size

    if any(not job.row_counts.get(d) for d in job.datasets):
        return None
    count = job.buckets.count if job.buckets is not None else 1
    return {d: padded_size(upper_rows(job.row_counts[d]), count) for d in job.datasets}


def check_take(job: JobPayload, budget_gb: float, max_share_bytes: int) -> None:
    """Refuse, when an engine takes a job, one that would not fit its memory budget or its share size limit.

    With the public upper bounds the job gives (`planned_rows`), before any datastation sends; the
    same messages as the late checks. A job without row counts is left to the late check, and so is
    one whose check fails other than with a refusal (logged: a bug in the model fails no job here).
    """
    from .jobs import catalog_of, job_analysis

    rows = planned_rows(job)
    if rows is None:
        return
    bucketed = job.buckets is not None
    try:
        a = job_analysis(job.plan, catalog_of(job.schemas), job.rules, register=job.registered)
        check_memory(a, rows, bucketed, budget_gb)
        check_share_size(a, rows, bucketed, max_share_bytes)
    except WerkplaatsError:
        raise
    except Exception:  # NB: a bug in the model never fails a job here: the late check still runs
        log.exception("job %s: the early check of its memory and share size failed; left to the late check", job.job)
