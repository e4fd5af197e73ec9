"""The Python client: ``wp.connect(url, token=...)``, ``ws.table(name)``, ``frame.preview()``, ``submit``.

A request follows its life at the hub::

    ws = wp.connect("https://hub.example:8400", token="wp_...", ca="pki/ca.crt",
                    cert="pki/alice.crt", key="pki/alice.key")
    q = ws.table("ggd/meldingen").group_by("gemeente").agg(n=wp.count())
    q.preview()                                   # dummy data from the catalog, locally
    req = q.submit(collaboration="pandemische-paraatheid", purpose="...")
    req.status()                                  # pending-approval / approved / rejected
    req.run()                                     # after every steward approved: runs, waits, returns the result
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalog.schema import TableSchema
from ..compile.rules import DisclosureRules
from ..exceptions import WerkplaatsError
from ..frame import LazyFrame
from ..plan import nodes as n
from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE
from ..plan.serde import plan_to_dict
from .http import Client, HubError
from .jobs import catalog_of
from .messages import JobState, PartState
from .pki import TLSFiles


class JobFailed(WerkplaatsError):
    """A job failed; its reason says which node and why. Nothing was released."""


def dummy_table(
    schema: TableSchema, rows: int, rng: np.random.Generator, *, person_key: str = "bsn", pool: np.ndarray | None = None
) -> pd.DataFrame:
    """Generate rows that fit a schema (types, code lists, ranges, unique keys): never real data."""
    out: dict[str, Any] = {}
    for c in schema.columns:
        keyish = c.name == person_key
        if c.type == "int":
            if keyish and pool is not None:
                v = rng.choice(pool, rows, replace=not c.unique or rows > len(pool))
            elif c.unique:
                lo = int(c.minimum) if isinstance(c.minimum, int | float) else 1
                v = lo + rng.permutation(rows)
            elif c.categories:
                v = rng.choice(np.asarray(c.categories), rows)
            else:
                lo = int(c.minimum) if isinstance(c.minimum, int | float) else 0
                hi = int(c.maximum) if isinstance(c.maximum, int | float) else max(lo + 100, 100)
                v = rng.integers(lo, min(hi, lo + 10_000) + 1, rows)
            s = pd.Series(v, dtype="Int64")
        elif c.type == "float":
            flo = float(c.minimum) if isinstance(c.minimum, int | float) else 0.0
            fhi = float(c.maximum) if isinstance(c.maximum, int | float) else flo + 100.0
            s = pd.Series(rng.uniform(flo, fhi, rows), dtype="Float64")
        elif c.type == "bool":
            s = pd.Series(rng.random(rows) < 0.3, dtype="boolean")
        elif c.type == "date":
            lo_d = c.minimum if isinstance(c.minimum, dt.date) else dt.date(2020, 1, 1)
            hi_d = c.maximum if isinstance(c.maximum, dt.date) else dt.date(2024, 12, 31)
            days = rng.integers(0, (hi_d - lo_d).days + 1, rows)
            s = pd.Series(pd.to_datetime(lo_d) + pd.to_timedelta(days, unit="D")).astype("datetime64[s]")
        else:
            s = pd.Series(rng.choice(np.asarray(c.categories, dtype=object), rows), dtype=object)
        if not (keyish or c.unique):
            s = s.where(rng.random(rows) >= 0.05)  # NB: some missing values, as in real sources
        out[c.name] = s
    return pd.DataFrame(out)


class RemoteRequest:
    """An analysis request at the hub."""

    def __init__(self, ws: Workspace, info: dict[str, Any]) -> None:
        self.ws = ws
        self.id = int(info["id"])
        self.info = info

    def __repr__(self) -> str:
        return f"<Request {self.id} {self.info.get('status')} in {self.info.get('collaboration')!r}>"

    def refresh(self) -> dict[str, Any]:
        """Fetch the request's current state from the hub."""
        self.info = self.ws.client.get(f"/requests/{self.id}")
        return self.info

    def status(self) -> str:
        """pending-approval, approved or rejected (and the jobs' states in .info['jobs'])."""
        return str(self.refresh()["status"])

    def explain(self) -> str:
        """Return the plan as a steward reads it."""
        return str(self.info["explain"])

    def run(self, *, wait: bool = True, timeout: float = 3600.0) -> pd.DataFrame | int:
        """Start a job; with wait, wait for it and return the result (raises JobFailed with the reason)."""
        job = int(self.ws.client.post(f"/requests/{self.id}/run")["job"])
        if not wait:
            return job
        started = time.monotonic()
        deadline = started + timeout
        while True:
            j = self.ws.client.get(f"/jobs/{job}")
            if j["state"] == JobState.SUCCEEDED:
                return self.result()
            if j["state"] == JobState.FAILED:
                raise JobFailed(f"job {job} failed: {j['reason']}")
            if time.monotonic() > deadline:
                msg = f"job {job} still {j['state']} after {timeout:.0f} s"
                raise JobFailed(msg)
            time.sleep(_poll_s(j, time.monotonic() - started))

    def result(self) -> pd.DataFrame:
        """The released result of the latest successful job: an aggregate with suppressed cells marked, or a
        model's summary (one row per term) with its fit statistics in ``.attrs`` (None where withheld)."""
        return result_from(self.ws.client.get(f"/requests/{self.id}/result"))


def _poll_s(job: dict[str, Any], waited_s: float) -> float:
    """How long to wait before asking for a job again: 0.1 s while it starts or ends, else 0.5 s.

    NB: a job ends soon after the first engine reports done (the others deliver at about the same
    time); a long secure run, or a job that waits for its engines, is asked after every 0.5 s only,
    so that a waiting analyst does not load the hub.
    """
    parts = [p.get("state") for p in job.get("progress", {}).values() if isinstance(p, dict)]
    starting = job.get("state") == JobState.APPROVED and waited_s < 30.0
    return 0.1 if starting or PartState.DONE in parts else 0.5


def result_from(r: dict[str, Any]) -> pd.DataFrame:
    """Return the result frame of the hub's answer to ``GET /requests/{id}/result`` (`hub.schemas.ResultPublic`)."""
    df = pd.DataFrame(r["rows"], columns=r["columns"])
    for c in r.get("float_columns", []):
        if c in df:  # NB: a column of withheld numbers is null in JSON: read it as floats (NaN), as released
            df[c] = pd.to_numeric(df[c].astype(object).where(df[c].notna(), np.nan)).astype(float)
    df.attrs.update(r.get("attrs", {}))  # NB: as the frame had them; a withheld statistic is None
    df.attrs["min_group_size"] = r.get("min_group_size")
    df.attrs["job"] = r.get("job")
    return df


class Workspace:
    """A connection to a workspace's hub."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
    ) -> None:
        tls = TLSFiles(Path(ca), Path(cert), Path(key)) if ca and cert and key else None
        self.client = Client(url, token=token, tls=tls)
        self.me = self.client.get("/me")
        self._catalog: dict[str, dict[str, Any]] | None = None

    def close(self) -> None:
        """Close the connection to the hub."""
        self.client.close()

    def catalog(self, refresh: bool = False) -> dict[str, dict[str, Any]]:
        """The catalog: dataset name → its entry (schema, owner, description, row count, completeness)."""
        if self._catalog is None or refresh:
            self._catalog = {d["name"]: d for d in self.client.get("/datasets")}
        return self._catalog

    def table(self, name: str) -> LazyFrame:
        """A lazy frame over a catalog dataset."""
        if name not in self.catalog():
            known = sorted(self.catalog(refresh=True))
            if name not in known:
                msg = f"no dataset {name!r} in the catalog; known: {known}"
                raise WerkplaatsError(msg)
        return LazyFrame(n.Source(name, None), self)

    def preview(self, frame: LazyFrame, *, rows: int = 200, seed: int = 0) -> pd.DataFrame:
        """Run a frame locally on dummy data generated from the catalog's schemas (never real data)."""
        from ..local import run_local

        used = {s.dataset for s in n.sources(frame.node)}
        cat = self.catalog()
        schemas = catalog_of({d: cat[d]["schema"] for d in used})
        rng = np.random.default_rng(seed)
        pool = 100_000_000 + rng.permutation(rows * 2)
        tables = {
            d: dummy_table(schemas[d], rows, rng, person_key=cat[d].get("person_key") or "bsn", pool=pool) for d in used
        }
        # NB: dummy data, k = 1: the cell rule only (rule 8 would refuse most plans on a few hundred rows), but
        # person keys stay keys (rule 1), so the preview refuses what the hub will
        rules = dataclasses.replace(DisclosureRules.cells_only(), person_keys=DisclosureRules().person_keys)
        out = run_local(frame, tables, schemas=schemas, min_group_size=1, rules=rules)
        out.attrs["preview"] = "dummy data generated from the catalog; not a result"
        return out

    def submit(
        self, frame: LazyFrame, *, collaboration: str, purpose: str, min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    ) -> RemoteRequest:
        """Submit a frame's plan as a request in a collaboration, for a purpose."""
        plan = plan_to_dict(frame.to_plan(min_group_size=min_group_size))
        info = self.client.post("/requests", {"collaboration": collaboration, "purpose": purpose, "plan": plan})
        return RemoteRequest(self, info)

    def request(self, rid: int) -> RemoteRequest:
        """Return a request at the hub by its id."""
        return RemoteRequest(self, self.client.get(f"/requests/{rid}"))

    def requests(self) -> list[dict[str, Any]]:
        """List the requests the caller may see."""
        out: list[dict[str, Any]] = self.client.get("/requests")
        return out


def connect(
    url: str, *, token: str, ca: str | Path | None = None, cert: str | Path | None = None, key: str | Path | None = None
) -> Workspace:
    """Connect to a workspace hub (mutual TLS when ca, cert and key are given)."""
    try:
        return Workspace(url, token=token, ca=ca, cert=cert, key=key)
    except HubError as e:
        msg = f"cannot connect to {url}: {e}"
        raise WerkplaatsError(msg) from None
