"""One live workspace of real processes (hub, three engines, two datastations) and what tests do with it.

The workspace is session-scoped (``ws`` in conftest.py): every process-level test, honest or hostile,
runs against the same processes, so the suite pays their start-up once. A test that stops or
breaks a node leaves it running again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import werkplaats as wp
from werkplaats.demo.workspace import LocalWorkspace
from werkplaats.result import frame_differences
from werkplaats.workspace.config import DatastationConfig
from werkplaats.workspace.datastation import Datastation

from .wait import wait_until

PURPOSE = "Meldingen per gemeente met chronisch zieken (test)"


def analysis(disease: str = "influenza A") -> wp.LazyFrame:
    gp = wp.scan("huisartsen/patienten").select("bsn", chronisch=wp.col("chronische_aandoeningen") >= 1)
    return (wp.scan("ggd/meldingen").filter(wp.col("ziekte") == disease)
            .join(gp, on="bsn", how="left")
            .group_by("gemeente")
            .agg(n=wp.count(), chronisch=wp.col("chronisch").fill_null(False).sum(),
                 leeftijd=wp.col("leeftijd").mean()))  # fmt: skip


def truth(tables: dict[str, Any], catalog: dict[str, Any], frame: wp.LazyFrame | None = None) -> Any:
    """Return the plain executor's result of the analysis under the workspace's rules, with counts exact."""
    rules = dataclasses.replace(wp.DisclosureRules(), counts="exact")
    return wp.run_local(frame if frame is not None else analysis(), tables, schemas=catalog, rules=rules)


def assert_like_truth(got: Any, want: Any, counts: tuple[str, ...] = ("n", "chronisch")) -> None:
    """Assert the workspace's result is the plain executor's: the same cells withheld, every statistic equal,
    and each count within the perturbation table's largest deviation D of the exact count (the engines'
    perturbation key is theirs alone, so no local run can reproduce the noise itself)."""
    got = got.astype(want.dtypes.to_dict())
    assert not frame_differences(got.drop(columns=list(counts)), want.drop(columns=list(counts)))
    d = wp.DisclosureRules().ptable.D
    for c in counts:
        g, w = got[c], want[c]
        assert (g.isna() == w.isna()).all(), f"column {c}: withheld in one result only"
        assert ((g[g.notna()] - w[w.notna()]).abs() <= d).all(), f"column {c}: a count beyond the table's D"


def connect(ws: LocalWorkspace, who: str = "analist") -> Any:
    return wp.connect(ws.hub_url, token=ws.tokens[who], ca=ws.pki / "ca.crt", cert=ws.pki / "client.crt",
                      key=ws.pki / "client.key")  # fmt: skip


def station(ws: LocalWorkspace, org: str) -> Datastation:
    return Datastation(DatastationConfig.load(ws.root / "nodes" / f"ds-{org}" / "datastation.toml"))


def approve_all(ws: LocalWorkspace, rid: int, max_runs: int = 1) -> None:
    for org in ws.organisations:
        station(ws, org).approve(rid, max_runs=max_runs)


def wait_state(c: Any, job: int, states: tuple[str, ...], timeout: float = 300) -> dict[str, Any]:
    def state() -> dict[str, Any] | None:
        j: dict[str, Any] = c.client.get(f"/jobs/{job}")
        return j if j["state"] in states else None

    return wait_until(state, timeout, f"job {job} in {states}", every=0.2)
