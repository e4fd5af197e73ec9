"""A job through the whole workspace (hub, four datastations, three engines as processes, mutual TLS):
where its time goes next to the secure work.

It starts `LocalWorkspace` with a region of n residents, submits the demo's hotspot analysis, has
every steward approve it for ``runs`` runs, and runs it that many times one after the other (the
first compiles at each engine, the next take the program from the engine's cache). Per run: the
analyst's wall time from "run" to the released result, each engine's compile and secure-run time
(from its progress report at the hub) and the rest, the workspace's own cost: the nodes' polling,
the datastations' validation, signing and upload, a fresh party process per job at each engine,
the barriers and the release. A watcher polls the job at the hub every 0.05 s (as the analyst:
public states only) and records when each node first reported each state, so the rest is split into
its steps (``timeline``: seconds after "run", per node and state).

    flock /tmp/werkplaats-heavy.lock python -m bench.workspace_job --persons 10000 --runs 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import werkplaats as wp
from werkplaats.demo.workspace import COLLABORATION, PURPOSE, LocalWorkspace
from werkplaats.workspace.config import DatastationConfig
from werkplaats.workspace.datastation import Datastation

from . import hotspots


def _engines_done(ws_client: Any, jid: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Return the three engines' progress reports once each says done (they report just after the release)."""
    deadline = time.monotonic() + timeout
    while True:
        job = ws_client.client.get(f"/jobs/{jid}")
        eng = [job["progress"].get(f"engine{i}", {}) for i in range(3)]
        if all(e.get("state") == "done" for e in eng) or time.monotonic() > deadline:
            return eng
        time.sleep(0.2)


def _watch(ws: Any, req_id: int, known: int, stop: threading.Event, t0: float, out: dict[str, float]) -> None:
    """Record when each node first reported each state of the request's new job (seconds after t0)."""
    c = wp.connect(ws.hub_url, token=ws.tokens["analist"], ca=ws.pki / "ca.crt",
                   cert=ws.pki / "client.crt", key=ws.pki / "client.key")  # fmt: skip
    try:
        jid = None
        while not stop.is_set():
            now = time.perf_counter() - t0
            if jid is None:
                jobs = c.client.get(f"/requests/{req_id}")["jobs"]
                if len(jobs) > known:
                    jid = int(jobs[-1]["id"])
                    out.setdefault("hub: job created", now)
            else:
                job = c.client.get(f"/jobs/{jid}")
                out.setdefault(f"hub: {job['state']}", now)
                for node, p in job["progress"].items():
                    out.setdefault(f"{node}: {p.get('state')}", now)
            stop.wait(0.05)
    finally:
        c.close()


def _steps(tl: dict[str, float], wall: float) -> dict[str, float]:
    """Return the job's steps in seconds, from the timeline (each step ends when its slowest node is there)."""
    nan = float("nan")

    def at(kind: str, state: str, pick: Any = max) -> float:
        got = [t for k, t in tl.items() if k.startswith(kind) and k.endswith(": " + state)]
        return float(pick(got)) if got else nan

    done = at("engine", "done", min)
    return {
        "run → datastations verified": at("ds-", "verified"),
        "verified → shares sent": at("ds-", "sent") - at("ds-", "verified"),
        "sent → engines running": at("engine", "running") - at("ds-", "sent"),
        "running → engines compiled": at("engine", "compiled") - at("engine", "running"),
        "compiled → first engine done": done - at("engine", "compiled"),
        "first done → released": tl.get("hub: succeeded", nan) - done,
        "released → analyst has it": wall - tl.get("hub: succeeded", nan),
    }


def run(persons: int, runs: int = 2) -> list[dict[str, Any]]:
    """Run the hotspot analysis `runs` times through a fresh local workspace; return each run's figures."""
    out = []
    with tempfile.TemporaryDirectory(prefix="werkplaats-bench-ws-") as d, LocalWorkspace(d, persons=persons) as ws:
        t0 = time.perf_counter()
        ws.start()
        start_s = time.perf_counter() - t0
        analyst = wp.connect(ws.hub_url, token=ws.tokens["analist"], ca=ws.pki / "ca.crt",
                             cert=ws.pki / "client.crt", key=ws.pki / "client.key")  # fmt: skip
        req = analyst.submit(hotspots.query(), collaboration=COLLABORATION, purpose=PURPOSE)
        for org in ws.organisations:
            st = Datastation(DatastationConfig.load(ws.datastation_config(org)))
            st.approve(req.id, days=1, max_runs=runs)
            st.hub.close()
        for i in range(runs):
            known = len(req.refresh()["jobs"])
            timeline: dict[str, float] = {}
            stop = threading.Event()
            t0 = time.perf_counter()
            watcher = threading.Thread(target=_watch, args=(ws, req.id, known, stop, t0, timeline), daemon=True)
            watcher.start()
            req.run(timeout=3600)
            wall = time.perf_counter() - t0
            stop.set()
            watcher.join()
            jid = int(req.refresh()["jobs"][-1]["id"])
            eng = _engines_done(analyst, jid)
            compile_s = max(float(e.get("compile_s", 0.0)) for e in eng)
            run_s = max(float(e.get("run_s", 0.0)) for e in eng)
            r = {
                "persons": persons,
                "run": i + 1,
                "workspace_start_s": start_s,
                "wall_s": wall,
                "compile_s": compile_s,
                "secure_run_s": run_s,
                "rest_s": wall - compile_s - run_s,
                "program_cached": [e.get("program_cached") for e in eng],
                "bytes_sent": [e.get("bytes_sent") for e in eng],
                "peak_rss": [e.get("peak_rss") for e in eng],
                "party_start_s": [e.get("party_start_s") for e in eng],  # NB: None before the spare parties
                "timeline": dict(sorted(timeline.items(), key=lambda kv: kv[1])),
                "steps": _steps(timeline, wall),
            }
            print(f"persons={persons:,} run {i + 1}: {wall:.1f} s = compile {compile_s:.1f} + secure run "
                  f"{run_s:.1f} + workspace {r['rest_s']:.1f} (cached={r['program_cached']})", flush=True)  # fmt: skip
            for k, v in r["steps"].items():
                print(f"    {k}: {v:.2f} s", flush=True)
            out.append(r)
    return out


def main(argv: list[str] | None = None) -> None:
    """Run from the command line; write workspace_job.json into --out."""
    p = argparse.ArgumentParser(prog="python -m bench.workspace_job")
    p.add_argument("--persons", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench/results"))
    args = p.parse_args(argv)
    res = run(args.persons, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "workspace_job.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
