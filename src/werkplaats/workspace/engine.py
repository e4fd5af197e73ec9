"""An engine: one of the three MPC compute parties, as a service.

It takes a job (plan and approvals) from the hub, verifies every approval against the
organisations' keys pinned in its own configuration and counts runs in its own ledger,
receives the shares from the datastations on its own HTTPS inbox (mutual TLS; each share
message signed by its organisation), runs the SPU program with its two peers over brpc
with TLS in a child process of its own, sends its share of the output to the hub, and deletes
every share when the job ends, whether it succeeded or failed. Jobs run one at a time,
each in its own process, so two jobs never share state (the next job's process is started
ahead, so that it has imported SPU when the job comes: `mpc.process.SpareParty`); a job still
waiting for its shares holds no slot, other jobs run meanwhile. Shares wait on disk (`inbox.Spool`), not in
memory; a bucketed job's shares (one message per dataset and bucket) are streamed to the party
bucket by bucket, and a job whose party would need more memory per bucket than this engine's
``memory_budget_gb`` is refused.

Security model: nothing the hub says is taken on trust. Organisations' public keys come
from engine.toml ([organisations]), never from the job; the inbox takes only share
messages signed with those keys, for jobs this engine has taken, for the datasets the job
reads, within a configured size, and never overwrites a share. The MPC links use this
engine's own self-signed link certificate, and trust exactly the two peers' link
certificates pinned in engine.toml ([[peers]]), not the workspace CA.
"""

from __future__ import annotations

import logging
import random
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ..exceptions import WerkplaatsError
from ..mpc.process import SpareParty
from . import pki
from .approvals import recheck_hash, verify_job
from .audit import FileLog, LogError, gap_refusal
from .config import EngineConfig
from .engine_run import run_party
from .engine_scaleout import EngineScaleout, check_job
from .http import Client, HubError, next_jobs, report, serve
from .inbox import Spool, inbox_app
from .memory import check_take
from .messages import (
    AuditHead,
    JobPayload,
    JobStatus,
    MessageError,
    PartState,
    ProgressReport,
    ResultShare,
    ShareHeader,
    pack,
)
from .pki import PinError
from .signing import canonical, sha256

log = logging.getLogger("werkplaats.engine")


@dataclass
class Taken:
    """A job this engine took from the hub and verified: waiting for its shares, or running."""

    job: JobPayload
    since: float  # NB: time.monotonic() when it was taken
    running: bool = False
    counted: bool = False  # NB: its run is in the ledger
    not_before: float = 0.0  # NB: after a back-off, not started again before this


class Engine:
    """One compute party's node."""

    def __init__(self, cfg: EngineConfig) -> None:
        cfg.tls.check(cfg.name)  # NB: refuse to start with a missing, foreign or expired certificate
        self.cfg = cfg
        self.hub = Client(cfg.hub, token=cfg.token, tls=cfg.tls)
        self.inbox: dict[int, dict[str, dict[int, ShareHeader]]] = {}  # NB: job → dataset → bucket → header (on disk)
        self.jobs: dict[int, Taken] = {}  # NB: jobs taken from the hub and verified; only their shares are taken
        self.ended: set[int] = set()  # NB: jobs that ended here: their shares are dropped (410)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(cfg.state_dir)  # NB: the shares, one 0700 directory per job
        self.spool.clear()  # NB: a previous run's leftovers are of jobs that ended with it
        self.ledger = FileLog(cfg.state_dir / "runs.jsonl", cfg.name)  # NB: hash-chained; its head in runs.jsonl.head
        self.last_head: AuditHead | None = None  # NB: the newest signed hub head seen while polling a job
        self.server: Any = None
        self.child: subprocess.Popen[bytes] | None = None
        self.link_bundle = self.peer_bundle()  # NB: refuse to start when a peer's link certificate is not its pin
        self.scaleout = EngineScaleout(cfg)  # NB: [scaleout]: a bucketed job's buckets on this engine's Dask workers
        # NB: the next job's party, started ahead by the runner thread (`run_next`); killed when the engine stops
        self.spare = SpareParty(cfg.party, cfg.state_dir, cache_dir=cfg.state_dir / "programs")

    # -- the share inbox ------------------------------------------------------------------
    def app(self) -> FastAPI:
        """Return the engine's share inbox (workspace/inbox.py)."""
        return inbox_app(self)

    # -- jobs ----------------------------------------------------------------------------
    def runs_used(self) -> dict[str, int]:
        """Return how many runs this engine took part in under each approval (its own ledger, checked intact)."""
        used: dict[str, int] = {}
        for e in self.ledger.check():  # NB: an emptied or cut ledger raises LogError: no run is re-allowed
            for aid in e["details"].get("approvals", []) if e["action"] == "run" else []:
                used[aid] = used.get(aid, 0) + 1
        return used

    def count_runs(self, ids: list[str], job: int = 0) -> None:
        """Count one run under each of the approvals in the ledger."""
        self.ledger.append(
            actor=self.cfg.name, action="run", subject=f"job/{job}", details={"job": job, "approvals": ids}
        )

    def anchor(self, head: AuditHead | None) -> None:
        """Keep the hub's signed audit head in the ledger when it is newer; a problem is logged."""
        try:
            warning = self.ledger.anchor(head, self.cfg.hub_key)
        except LogError as e:
            warning = str(e)
        if warning:
            log.warning("audit: %s", warning)

    def progress(self, jid: int, state: PartState, reason: str = "", **detail: Any) -> None:
        """Report this engine's part in a job to the hub."""
        report(self.hub, jid, ProgressReport(state=state, reason=reason, detail=detail), log)

    def job_status(self, jid: int) -> JobStatus | None:
        """Return the job's state and the state of each node's part, or None when the hub cannot say."""
        try:
            status = JobStatus.from_dict(self.hub.get(f"/node/jobs/{jid}"))
        except (HubError, OSError, MessageError):
            return None
        self.last_head = status.audit_head or self.last_head
        return status

    def job_ended(self, jid: int) -> bool:
        """Whether the hub says the job has ended (succeeded or failed)."""
        status = self.job_status(jid)
        return status is not None and status.state.ended

    def take(self, job: JobPayload) -> None:
        """Verify a job the hub offers and expect its shares; waiting for them holds no slot (see `run_next`)."""
        jid = job.job
        with self.lock:
            if jid in self.jobs or jid in self.ended:
                return
        try:
            self.ledger.check()  # NB: a ledger that is not intact takes part in no job (LogError says why)
            gap = self.ledger.gap(job.audit_head, self.cfg.hub_key)
            if gap:  # NB: a hub behind what this engine anchored (restored, cut): only its operator re-anchors
                raise LogError(gap_refusal(gap, "engine"))
            self.anchor(job.audit_head)
            self.progress(jid, PartState.VERIFYING)
            recheck_hash(job.plan, job.plan_hash)
            check_sources(job)
            self.check_peers(job)
            # NB: the organisations' keys pinned in engine.toml, never the keys the hub lists in the job
            verify_job(job, organisations=job.organisations(), runs_used=self.runs_used(), keys=self.cfg.organisations)
            check_take(job, self.cfg.memory_budget_gb, self.cfg.max_share_bytes)  # NB: before any owner sends
        except WerkplaatsError as e:
            with self.lock:
                self.ended.add(jid)
            self.progress(jid, PartState.FAILED, str(e))
            return
        with self.lock:
            self.jobs[jid] = Taken(job, time.monotonic())

    def check_peers(self, job: JobPayload) -> None:
        """Refuse a job whose engines differ from this engine's pins: parties, or the peers' MPC addresses."""
        named = {e.party: e for e in job.engines}
        if len(job.engines) != 3 or set(named) != {0, 1, 2}:
            msg = (
                f"the job names engines for parties {sorted(e.party for e in job.engines)}, not one for each of 0, 1, 2"
            )
            raise PinError(msg)
        if named[self.cfg.party].mpc != self.cfg.mpc:
            msg = f"the job gives party {self.cfg.party} the MPC address {named[self.cfg.party].mpc}, not this engine's"
            raise PinError(msg)
        for p in self.cfg.peers:
            if named[p.party].mpc != p.mpc:
                msg = f"the job links party {p.party} at {named[p.party].mpc}, not at its pinned address {p.mpc}"
                raise PinError(msg)
        check_job(self.cfg, job)  # NB: a bucketed job: the peers are pinned with as many workers as this engine has

    def check_share(self, job: JobPayload, h: ShareHeader) -> None:
        """Raise unless a share header is for a dataset of the job, signed with its organisation's pinned key."""
        org = h.dataset.split("/")[0]
        if h.dataset not in job.datasets:
            msg = f"job {job.job} reads no dataset {h.dataset!r}"
            raise WerkplaatsError(msg)
        key = self.cfg.organisations.get(org, "")
        if h.organisation != org or not key or not pki.verify(key, canonical(h.signed_part()), h.signature):
            msg = f"the share of {h.dataset} is not signed by {org} (the key pinned in this engine's configuration)"
            raise WerkplaatsError(msg)
        if h.plan_hash != job.plan_hash:
            msg = f"the share of {h.dataset} was made for another plan"
            raise WerkplaatsError(msg)
        # NB: the schema (ranges, code lists, rules) and the disclosure settings this engine compiles with must
        # be those the owner checked and signed: a hub that gave engines others could make a result wrong
        if h.dataset not in job.schemas or h.schema_sha256 != sha256(canonical(job.schemas[h.dataset])):
            msg = f"the schema of {h.dataset} in the job is not the one {org} checked and signed"
            raise WerkplaatsError(msg)
        if h.rules_sha256 != sha256(canonical(job.rules)):
            msg = f"the job's disclosure rules are not those {org} saw when it shared {h.dataset}"
            raise WerkplaatsError(msg)
        count = job.buckets.count if job.buckets is not None else 0
        if h.buckets != count or (h.bucket is None) != (count == 0):
            got = f"bucket {h.bucket} of {h.buckets}" if h.bucket is not None else "a whole table"
            want = f"{count} buckets" if count else "whole tables (unbucketed)"
            msg = f"the share of {h.dataset} is {got}; job {job.job} takes {want}"
            raise WerkplaatsError(msg)
        if job.buckets is not None and h.key_version != job.buckets.key_version:
            # NB: owners split with different key versions put one person's rows in different buckets: a wrong join
            msg = (f"the share of {h.dataset} was split with version {h.key_version} of the bucket key; job {job.job} "
                   f"names version {job.buckets.key_version}: refused")  # fmt: skip
            raise WerkplaatsError(msg)
        if h.bucket is not None and h.bucket >= count:
            msg = f"the share of {h.dataset} is of bucket {h.bucket}; job {job.job} has buckets 0 to {count - 1}"
            raise WerkplaatsError(msg)

    def complete(self, jid: int, t: Taken) -> bool:
        """Whether every share of a job has arrived: each dataset's, of each bucket (call with the lock held)."""
        held = self.inbox.get(jid, {})
        n = t.job.buckets.count if t.job.buckets is not None else 1
        return all(len(held.get(d, {})) == n for d in t.job.datasets)

    def missing(self, jid: int, t: Taken) -> list[str]:
        """Return which shares of a job have not arrived: datasets, with how many of their buckets did."""
        with self.lock:
            held = {d: len(b) for d, b in self.inbox.get(jid, {}).items()}
        if t.job.buckets is None:
            return sorted(d for d in t.job.datasets if not held.get(d))
        n = t.job.buckets.count
        return sorted(f"{d} ({held.get(d, 0)} of {n} buckets)" for d in t.job.datasets if held.get(d, 0) != n)

    def other_ready(self, jid: int) -> bool:
        """Whether a job other than jid has all its shares here and waits to run."""
        with self.lock:
            return any(j != jid and not t.running and self.complete(j, t) for j, t in self.jobs.items())

    def peer_bundle(self) -> Path:
        """Write the peers' link certificates, each checked against its pin, as this engine's MPC trust bundle."""
        pems = []
        for p in self.cfg.peers:
            got = pki.fingerprint(p.cert)
            if got != p.spki_sha256:
                msg = f"the link certificate {str(p.cert)!r} of party {p.party} does not match its pinned fingerprint"
                raise PinError(msg)
            pems.append(p.cert.read_text().strip() + "\n")
        pki.fingerprint(self.cfg.link_cert)  # NB: this engine's own link certificate must exist and be readable
        if not self.cfg.link_key.is_file():
            msg = f"link key {str(self.cfg.link_key)!r} does not exist"
            raise PinError(msg)
        out = self.cfg.state_dir / "link-peers.pem"
        tmp = out.with_suffix(".tmp")
        tmp.write_text("".join(pems))
        tmp.replace(out)
        return out

    def drop(self, jid: int) -> None:
        """Forget a job and drop every share of it, whatever happened; later shares of it are refused."""
        with self.lock:
            self.inbox.pop(jid, None)
            self.jobs.pop(jid, None)
            self.ended.add(jid)
            self.spool.remove(jid)  # NB: under the lock: the inbox keeps no share of an ended job

    def expire(self) -> None:
        """Drop waiting jobs that ended at the hub; fail those whose shares did not all arrive in time."""
        now = time.monotonic()
        with self.lock:
            waiting = {jid: t for jid, t in self.jobs.items() if not t.running}
        for jid, t in waiting.items():
            if now - t.since > self.cfg.share_timeout_s:
                missing = self.missing(jid, t)
                self.drop(jid)
                self.progress(jid, PartState.FAILED, f"shares of {missing} did not arrive within "
                              f"{self.cfg.share_timeout_s:.0f} s")  # fmt: skip
            elif self.job_ended(jid):
                self.drop(jid)

    def next_ready(self) -> int | None:
        """Return a taken job whose shares have all arrived (the lowest id first) and mark it running."""
        now = time.monotonic()
        with self.lock:
            for jid, t in sorted(self.jobs.items()):
                if not t.running and now >= t.not_before and self.complete(jid, t):
                    t.running = True
                    return jid
        return None

    def run_next(self) -> None:
        """Run ready jobs one at a time (the one slot: the MPC port), until stopped; keep a spare party ready."""
        try:
            while not self.stop.is_set():
                self.refill_spare()  # NB: this thread lives as long as the engine: its parties die with it
                jid = self.next_ready()
                if jid is None:
                    with self.lock:
                        waiting = bool(self.jobs)
                    self.stop.wait(0.05 if waiting else 0.2)  # NB: a local check: a job starts once its shares are in
                    continue
                try:
                    self.run(jid)
                except Exception as e:  # NB: one bad job never stops the engine
                    log.exception("job %s failed", jid)
                    self.drop(jid)
                    self.progress(jid, PartState.FAILED, f"{type(e).__name__}: {e}")
        finally:
            self.spare.close()

    def refill_spare(self) -> None:
        """Start the next job's party ahead when there is none (or it died); a failure to start is logged."""
        try:
            self.spare.refill()
        except OSError as e:  # NB: the job will start its own party (and say why it could not)
            log.warning("could not start a spare party: %s", e)

    def run(self, jid: int) -> None:
        """Run a job whose shares have all arrived: this engine's party, its output share to the hub."""
        with self.lock:
            t = self.jobs[jid]
            inputs = {d: dict(self.inbox[jid][d]) for d in t.job.datasets}
        job = t.job
        backed_off = False
        try:
            if not t.counted:
                # NB: checked again: another job may have used a run meanwhile
                ids = verify_job(job, organisations=job.organisations(), runs_used=self.runs_used(),
                                 keys=self.cfg.organisations)  # fmt: skip
                self.count_runs(ids, jid)
                t.counted = True
            self.progress(jid, PartState.RUNNING)

            def deliver(reply: dict[str, Any], blobs: list[bytes]) -> None:
                self.hub.post(
                    f"/node/jobs/{jid}/result-share", content=pack(ResultShare(share_blobs=reply["share_blobs"]), blobs)
                )
                self.progress(jid, PartState.DONE, "", **_stats(reply.get("stats", {})))

            backed_off = self.run_party(job, inputs, deliver)
        except WerkplaatsError as e:
            self.progress(jid, PartState.FAILED, str(e))
        finally:
            if backed_off:  # NB: its shares stay; it runs once the peers are free
                with self.lock:
                    t.running, t.not_before = False, time.monotonic() + random.uniform(1.0, 5.0)
            else:
                self.drop(jid)  # NB: every share of the job is dropped, whatever happened
            self.anchor(self.last_head)

    def run_party(self, job: JobPayload, inputs: dict[str, dict[int, ShareHeader]], deliver: Any) -> bool:
        """Run the job's SPU program in a party process of its own (workspace/engine_run.py)."""
        return run_party(self, job, inputs, deliver)

    def heartbeat(self, every_s: float = 2.0) -> None:
        """Tell the hub this engine is alive, whatever the job loop is doing (its own connection)."""
        hb = Client(self.cfg.hub, token=self.cfg.token, tls=self.cfg.tls, timeout=10)
        while not self.stop.wait(every_s):
            try:
                hb.get("/me")
            except (HubError, OSError) as e:
                log.warning("heartbeat: hub unreachable: %s", e)

    def serve(self, poll_s: float = 0.5) -> None:
        """Serve the share inbox and take jobs from the hub until stopped."""
        self.server = serve(self.app(), self.cfg.host, self.cfg.port, self.cfg.tls, background=True)
        threading.Thread(target=self.heartbeat, daemon=True, name="heartbeat").start()
        log.info(
            "engine %s (party %d) inbox on %s:%d, MPC on %s",
            self.cfg.name,
            self.cfg.party,
            self.cfg.host,
            self.cfg.port,
            self.cfg.mpc,
        )
        # NB: jobs run on their own thread, so that this loop keeps taking jobs (and their shares) meanwhile
        threading.Thread(target=self.run_next, daemon=True, name="runner").start()
        try:
            while not self.stop.is_set():
                jobs = next_jobs(self.hub, log)
                if jobs is None:
                    continue
                for job in jobs:
                    try:
                        self.take(job)
                    except Exception as e:
                        log.exception("job %s failed", job.job)
                        self.drop(job.job)
                        self.progress(job.job, PartState.FAILED, f"{type(e).__name__}: {e}")
                self.expire()
                time.sleep(poll_s)
        finally:
            self.stop.set()
            self.scaleout.stop()  # NB: the engine's own Dask cluster (scheduler "local") and its workers
            self.spare.close()  # NB: the runner closes it too; whichever comes first, no spare outlives the engine
            if self.server is not None:
                self.server.should_exit = True


def check_sources(job: JobPayload) -> None:
    """Refuse a job whose dataset list leaves out a source of its plan (and so that source's approval)."""
    from ..plan import nodes as n
    from ..plan.serde import plan_from_dict

    missing = sorted({s.dataset for s in n.sources(plan_from_dict(job.plan).root)} - set(job.datasets))
    if missing:  # NB: a hub that drops one organisation of a union from the list would skip its approval check
        msg = f"the job's plan reads {', '.join(missing)}, which the job's dataset list leaves out: refused"
        raise WerkplaatsError(msg)


def _stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Return a party's public figures for a progress report: numbers rounded, lists of numbers too."""
    out: dict[str, Any] = {}
    for k, v in stats.items():
        if k == "workers" and isinstance(v, list):  # NB: scale-out: one dict per worker group; reported: how many
            out[k] = float(len(v))
        elif isinstance(v, list | tuple):
            if all(isinstance(x, int | float) for x in v):  # NB: not scale-out's "dask_workers" (addresses)
                out[k] = [round(float(x), 3) for x in v]
        elif isinstance(v, bool | int | float):
            out[k] = round(float(v), 3)
    return out
