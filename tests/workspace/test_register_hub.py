"""Rule 9 in the live workspace: the hub registers a released result, and the next job of the collaboration that
differs from it by one age year (a few people) is withheld as a whole inside the MPC (REGISTER).

The cells are large (all reports by hospital admission), so that they differ from every other test's
released cells (one disease per gemeente) by far more than k rows: the shared workspace's other jobs pass.
"""

from __future__ import annotations

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.synth.write import load_region

from .live import PURPOSE, approve_all, connect

K = 10


def by_admission(max_age: int) -> wp.LazyFrame:
    # NB: joined to the GP's patients as the other live tests' analyses are: a registered table over the same rows
    # that read a dataset a request does not read cannot be checked in its run, and the request is refused
    gp = wp.scan("huisartsen/patienten").select("bsn", chronisch=wp.col("chronische_aandoeningen") >= 1)
    return (wp.scan("ggd/meldingen").filter(wp.col("leeftijd") <= max_age).join(gp, on="bsn", how="left")
            .group_by("ziekenhuisopname").agg(n=wp.count()))  # fmt: skip


def _ages(ws: LocalWorkspace) -> int:
    """Return an age a: at least k reports on each side of it, and 1 … k − 1 reports without admission aged a + 1."""
    m = load_region(ws.region).tables["ggd/meldingen"]
    for a in range(30, 90):
        older = m[m["leeftijd"] == a + 1]
        if (
            (m["leeftijd"] <= a).sum() >= 2 * K
            and (m["leeftijd"] > a + 1).sum() >= K
            and 1 <= older["ziekenhuisopname"].eq(False).sum() <= K - 1
        ):
            return a
    pytest.skip("no age splits the region's reports as this test needs")


@pytest.mark.registers
def test_a_request_one_age_year_wider_than_a_released_one_is_withheld(ws: LocalWorkspace) -> None:
    a = _ages(ws)
    c = connect(ws)
    first = c.submit(by_admission(a), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, first.id)
    got = first.run(timeout=300)
    assert isinstance(got, pd.DataFrame) and not got["suppressed"].all()
    entries = ws.client("fg").get("/audit")["entries"]
    release = [e for e in entries if e["action"] == "result-release" and e["details"].get("request") == first.id]
    assert release and release[-1]["details"]["registered"] is True
    assert release[-1]["details"]["plan_hash"]
    second = c.submit(by_admission(a + 1), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, second.id)
    got = second.run(timeout=300)
    assert got["suppressed"].all()
    assert all(str(r).startswith("the whole result: a cell differs from a cell of an earlier released result")
               for r in got["reason"])  # fmt: skip
