"""Bucketed jobs through the services (issue 13 §2), in the session's workspace (`ws`): a model, an engine's limits.

- A model in buckets (collaboration ``pp-buckets``, two buckets: tests/conftest.py) through hub, datastations and
  engines equals the plain executor, staged in its five stages (slow: every stage is compiled and run).
- An engine whose memory budget is below what the job needs refuses it when it takes it: the job fails with the
  engine's reason and no datastation sends anything (the in-process side: test_bucket_limits.py).
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pandas as pd
import pytest

import werkplaats as wp
from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.workspace.client import JobFailed
from werkplaats.workspace.config import EngineConfig

from .live import PURPOSE, analysis, approve_all, connect, station
from .test_bucketed_jobs import BUCKETED, _bucketed_collaboration
from .test_models_live import close, plain
from .test_services import seen_since
from .wait import wait_until


def test_an_engine_over_its_memory_budget_refuses_the_job_when_it_takes_it_and_nothing_is_sent(
    ws: LocalWorkspace,
) -> None:
    """Engine 1 restarted with a budget below what any party needs: it refuses at take, before any owner sends."""
    c = connect(ws)
    req = c.submit(analysis("kinkhoest"), collaboration=COLLABORATION, purpose=PURPOSE)
    approve_all(ws, req.id)
    config = ws.engine_config(1)
    config.write_text(
        config.read_text().replace('state_dir = "state"\n', 'state_dir = "state"\nmemory_budget_gb = 0.3\n')
    )
    assert "memory_budget_gb = 0.3" in config.read_text()
    ws.procs["engine1"].stop()
    since = dt.datetime.now(dt.UTC)
    ws._proc("engine1", "engine", "serve", "--config", str(config), "--party", "1").start()
    try:
        wait_until(lambda: seen_since(ws, "engine1", since), 60, "engine1 (budget 0.3 GB) reports to the hub")
        with pytest.raises(JobFailed) as failed:
            req.run(timeout=120)
    finally:
        ws.procs["engine1"].stop()
        since = dt.datetime.now(dt.UTC)
        ws.start_engine(1)  # NB: its configuration written again, as the session started it
        wait_until(lambda: seen_since(ws, "engine1", since), 60, "engine1 restarted as before")
    jid = int(req.refresh()["jobs"][-1]["id"])
    why = (r"the party would need about 0\.\d GB for the job, more than this engine's memory budget of 0\.3 GB "
           r"\(memory_budget_gb in engine\.toml\): refused")  # fmt: skip
    j = c.client.get(f"/jobs/{jid}")
    assert j["progress"]["engine1"]["state"] == "failed" and re.search(why, j["progress"]["engine1"]["reason"]), j
    # NB: the job's reason is the first failure the hub heard: engine1's, or that of a datastation that asked
    # engine1 for the job in the moment between its refusal and its report (410: "nothing sent")
    assert re.fullmatch("engine1: " + why, j["reason"]) or "nothing sent" in j["reason"], j["reason"]
    assert j["reason"] in str(failed.value)
    for org in ws.organisations:  # NB: no datastation counted a contribution: no share of the job left it
        entries = station(ws, org).log.entries()
        assert not [e for e in entries if e["subject"] == f"job/{jid}" and e["action"] == "contribution"], org
    sent = [n for n, p in j["progress"].items() if n.startswith("ds-") and p.get("state") == "sent"]
    assert not sent, j["progress"]
    spools = [EngineConfig.load(ws.engine_config(i)).state_dir / "spool" / f"job{jid}" for i in range(3)]
    assert not any(d.exists() for d in spools)  # NB: no share of it arrived at any engine


def _gaussian() -> wp.LazyFrame:
    """A linear model of age on a chronic condition and sex: GGD notifications left-joined with GP patients."""
    gp = wp.scan("huisartsen/patienten").select("bsn", "geslacht", chronisch=wp.col("chronische_aandoeningen") >= 1)
    model = wp.glm(y="leeftijd", x=["chronisch", "geslacht"], family="gaussian")
    return wp.scan("ggd/meldingen").join(gp, on="bsn", how="left").fit(model)


@pytest.mark.slow  # NB: 5 stages (moments, spread, 2 IRLS steps, final), each compiled and run over 2 buckets
def test_a_model_in_buckets_through_the_services_equals_the_plain_executor(
    ws: LocalWorkspace, capsys: pytest.CaptureFixture[str]
) -> None:
    _bucketed_collaboration(ws)
    c = connect(ws)
    req = c.submit(_gaussian(), collaboration=BUCKETED, purpose=PURPOSE)
    approve_all(ws, req.id, max_runs=2)
    t0 = time.monotonic()
    try:
        got = req.run(timeout=1800)
    except JobFailed as e:  # NB: run alone, before the test above made the collaboration's bucket key
        if "has no bucket key yet" not in str(e):
            raise
        ws.create_bucket_key(collaboration=BUCKETED)
        t0 = time.monotonic()
        got = req.run(timeout=1800)
    wall = time.monotonic() - t0
    want = plain(ws, _gaussian())
    assert isinstance(got, pd.DataFrame) and list(got["term"]) == ["intercept", "chronisch", "geslacht[V]"]
    assert not got["suppressed"].any() and "withheld" not in got.attrs
    for col in ("estimate", "std_error", "statistic", "p_value", "ci_low", "ci_high"):
        assert got[col].dtype == float and close(got[col], want[col].astype(float)), col
    for k in ("n", "df_resid", "iterations", "converged", "family"):
        assert got.attrs[k] == want.attrs[k], k
    for k in ("deviance", "null_deviance", "aic", "llf"):
        assert close(got.attrs[k], want.attrs[k]), k
    assert got.attrs["n"] > 100 and abs(got.loc[1, "estimate"]) > 2 * got.loc[1, "std_error"]  # NB: a real effect
    j = c.client.get(f"/jobs/{int(got.attrs['job'])}")
    for e in (f"engine{i}" for i in range(3)):
        p = j["progress"][e]
        assert p.get("buckets") == 2 and p.get("stages") == 5 and len(p.get("stage_s", [])) == 5, p
    with capsys.disabled():  # NB: the time per stage for docs/mpc.md ("Models in buckets")
        p = j["progress"]["engine0"]
        print(f"\nbucketed gaussian model through the services: {wall:.1f} s wall; engine0 stage_s {p['stage_s']}; "
              f"{ {k: v for k, v in p.items() if k.endswith('_s') and k != 'stage_s'} }")  # fmt: skip
