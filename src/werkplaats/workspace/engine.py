"""An engine: one of the three MPC compute parties, as a service.

It takes a job (plan and approvals) from the hub, verifies every approval against the
organisations' registered keys and counts runs in its own ledger, receives the shares
from the datastations on its own HTTPS inbox (mutual TLS; each share message signed by
its organisation), runs the SPU program with its two peers over brpc with TLS in a fresh
child process, sends its share of the output to the hub, and deletes every share when
the job ends, whether it succeeded or failed. Jobs run one at a time, each in its own
process, so two jobs never share state.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import subprocess
import threading
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from ..catalog.serde import catalog_to_dict
from ..compile.analyze import analyze
from ..exceptions import WerkplaatsError
from ..mpc.process import Command, PartyHeader, TlsFiles, spawn_party
from ..plan import nodes as n
from ..plan.serde import canonical_json, plan_from_dict
from . import pki
from .approvals import recheck_hash, verify_job
from .audit import FileLog, LogError
from .config import EngineConfig
from .http import Client, HubError, next_jobs, raw_body, report, serve
from .jobs import catalog_of
from .messages import (
    AuditHead,
    JobPayload,
    JobState,
    JobStatus,
    MessageError,
    PartState,
    ProgressReport,
    ResultShare,
    ShareHeader,
    pack,
    unpack,
)
from .signing import canonical

log = logging.getLogger("werkplaats.engine")
SHARE_WAIT_S = 600.0
LINKABLE = (PartState.COMPILED, PartState.DONE)  # NB: an engine whose party compiled (or finished) may be linked to


class Engine:
    """One compute party's node."""

    def __init__(self, cfg: EngineConfig) -> None:
        cfg.tls.check(cfg.name)  # NB: refuse to start with a missing, foreign or expired certificate
        self.cfg = cfg
        self.hub = Client(cfg.hub, token=cfg.token, tls=cfg.tls)
        self.inbox: dict[int, dict[str, tuple[ShareHeader, list[bytes]]]] = {}  # NB: job → dataset → share
        self.lock = threading.Lock()
        self.stop = threading.Event()
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = FileLog(cfg.state_dir / "runs.jsonl", cfg.name)  # NB: hash-chained; its head in runs.jsonl.head
        self.last_head: AuditHead | None = None  # NB: the newest signed hub head seen while polling a job
        self.server: Any = None
        self.child: subprocess.Popen[bytes] | None = None

    # -- the share inbox ------------------------------------------------------------------
    def app(self) -> FastAPI:
        """Return the engine's share inbox: datastations post their signed shares here (mutual TLS)."""
        app = FastAPI(title=f"werkplaats engine {self.cfg.party}", version="1")

        @app.get("/health")
        def health() -> dict[str, Any]:
            """Answer that the engine is up, with its name and party."""
            return {"ok": True, "engine": self.cfg.name, "party": self.cfg.party}

        @app.get("/inbox")
        def inbox() -> dict[str, Any]:
            """Which jobs' shares this engine holds right now (dataset names only, never shares)."""
            with self.lock:
                held = {str(j): sorted(d) for j, d in self.inbox.items()}
            return {"jobs": held, "running": self.child is not None}

        @app.post("/jobs/{jid}/shares")
        def shares(jid: int, data: Annotated[bytes, Depends(raw_body)]) -> dict[str, Any]:
            """Keep one dataset's share of a job until the job runs (its signature is checked then)."""
            try:
                header, blobs = unpack(ShareHeader, data)
            except MessageError as e:
                raise HTTPException(400, f"not a share message ({e})") from None
            if header.job != jid:
                raise HTTPException(400, "share message for another job")
            if hashlib.sha256(b"".join(blobs)).hexdigest() != header.digest:
                raise HTTPException(400, "share message damaged (digest)")
            with self.lock:
                self.inbox.setdefault(jid, {})[header.dataset] = (header, blobs)
            return {"ok": True}

        return app

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

    def handle(self, job: JobPayload) -> None:
        """Verify a job, wait for its shares, run this engine's party and send the output share to the hub."""
        jid = job.job
        try:
            self.ledger.check()  # NB: a ledger that is not intact takes part in no job (LogError says why)
            self.anchor(job.audit_head)
            self.progress(jid, PartState.VERIFYING)
            recheck_hash(job.plan, job.plan_hash)
            ids = verify_job(job, organisations=job.organisations(), runs_used=self.runs_used())
            inputs = self.wait_for_shares(job)
            if inputs is None:
                return
            self.count_runs(ids, jid)
            self.progress(jid, PartState.RUNNING)

            def deliver(reply: dict[str, Any], blobs: list[bytes]) -> None:
                self.hub.post(
                    f"/node/jobs/{jid}/result-share", content=pack(ResultShare(share_blobs=reply["share_blobs"]), blobs)
                )
                stats = {k: round(float(v), 3) for k, v in reply.get("stats", {}).items()}
                self.progress(jid, PartState.DONE, "", **stats)

            self.run_party(job, inputs, deliver)
        except WerkplaatsError as e:
            self.progress(jid, PartState.FAILED, str(e))
        finally:
            with self.lock:
                self.inbox.pop(jid, None)  # NB: every share of the job is dropped, whatever happened
            self.anchor(self.last_head)

    def wait_for_shares(self, job: JobPayload) -> dict[str, tuple[ShareHeader, list[bytes]]] | None:
        """Wait until every dataset's share has arrived and verifies; None if the job ended meanwhile."""
        jid = job.job
        deadline = time.monotonic() + SHARE_WAIT_S
        while True:
            with self.lock:
                got = dict(self.inbox.get(jid, {}))
            if all(d in got for d in job.datasets):
                break
            if time.monotonic() > deadline:
                missing = sorted(set(job.datasets) - set(got))
                msg = f"shares of {missing} did not arrive within {SHARE_WAIT_S:.0f} s"
                raise WerkplaatsError(msg)
            if self.job_ended(jid):
                return None
            time.sleep(0.3)
        for d, (h, _) in got.items():
            org = d.split("/")[0]
            key = job.organisation_keys.get(org, "")
            if h.organisation != org or not pki.verify(key, canonical(h.signed_part()), h.signature):
                msg = f"the share of {d} is not signed by {org}"
                raise WerkplaatsError(msg)
            if h.plan_hash != job.plan_hash:
                msg = f"the share of {d} was made for another plan"
                raise WerkplaatsError(msg)
        return {d: got[d] for d in job.datasets}

    def run_party(self, job: JobPayload, inputs: dict[str, tuple[ShareHeader, list[bytes]]],
                  deliver: Any) -> None:  # fmt: skip
        """Run the SPU program in a fresh child process; watch the hub for the job failing elsewhere.

        The party's output goes to deliver while its link is still open; the link closes only
        when all three engines are done (or the job has ended), so no peer sees it close early.
        """
        jid = job.job
        plan = plan_from_dict(job.plan)
        catalog = catalog_of(job.schemas)
        analyze(plan, catalog)
        order = list(dict.fromkeys(s.dataset for s in n.sources(plan.root)))
        counts: list[int] = []
        blobs: list[bytes] = []
        for d in order:
            h, b = inputs[d]
            counts += h.share_blobs
            blobs += b
        engines = sorted(job.engines, key=lambda e: e.party)
        names = [e.name for e in engines]
        _check_port(self.cfg.mpc)
        tls = self.cfg.tls
        header = PartyHeader(
            job=f"werkplaats-job-{jid}",
            plan=canonical_json(plan),
            catalog=catalog_to_dict(catalog),
            rows={d: inputs[d][0].rows for d in order},
            addrs=tuple(e.mpc for e in engines),
            share_blobs=tuple(counts),
            recv_timeout_ms=120_000,
            barrier=True,
            tls=TlsFiles(ca=str(tls.ca), cert=str(tls.cert), key=str(tls.key)),
        ).to_dict()
        # NB: compiled programs are kept in the engine's own state directory (public metadata only).
        log_file, programs = self.cfg.state_dir / f"job{jid}.log", self.cfg.state_dir / "programs"
        party = spawn_party(self.cfg.party, log_file, cache_dir=programs)
        child = party.proc
        self.child = child
        q: queue.Queue[Any] = queue.Queue()

        go = threading.Event()
        cancel = threading.Event()

        def talk() -> None:
            try:
                party.recv()  # ready
                party.send(header, blobs)
                msg = party.recv()
                if msg[0].get("cmd") == Command.COMPILED:
                    q.put(("compiled", []))
                    while not go.wait(0.2):
                        if cancel.is_set():
                            party.send({"cmd": Command.CANCEL.value})
                            return
                    party.send({"cmd": Command.LINK.value})
                    msg = party.recv()
                q.put(msg)
            except Exception as e:  # NB: a dead child shows up as a closed pipe
                q.put(e)

        threading.Thread(target=talk, daemon=True).start()
        try:
            while True:
                try:
                    item = q.get(timeout=0.5)
                    if item == ("compiled", []):
                        # NB: the three parties link together, so that no party dials a peer that is still
                        # compiling (brpc over TLS can abort on such early connection failures).
                        self.progress(jid, PartState.COMPILED)
                        continue
                    break
                except queue.Empty:
                    status = self.job_status(jid)
                    if status is not None and status.state == JobState.FAILED:
                        return  # NB: another node failed the job; the finally stops our party
                    if status is not None and all(status.progress.get(n) in LINKABLE for n in names):
                        go.set()
                    if child.poll() is not None and q.empty():
                        time.sleep(0.5)
                        if q.empty():
                            msg = f"the MPC party process exited with code {child.returncode}"
                            raise WerkplaatsError(msg) from None
            if isinstance(item, Exception):
                msg = f"the MPC party process failed ({type(item).__name__})"
                raise WerkplaatsError(msg)
            reply, out = item
            if not reply.get("ok"):
                msg = f"MPC run failed: {reply.get('error', 'unknown error')}"
                raise WerkplaatsError(msg)
            deliver(reply, out)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # NB: the closing barrier
                status = self.job_status(jid)
                if status is None or status.state.ended:
                    break
                if all(status.progress.get(n) == PartState.DONE for n in names):
                    break
                time.sleep(0.3)
        finally:
            cancel.set()
            if child.poll() is None:
                party.ask_to_stop()
                party.wait(3)  # NB: every engine is done; a link that will not close is killed
            party.kill()
            self.child = None

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
        try:
            while not self.stop.is_set():
                jobs = next_jobs(self.hub, log)
                if jobs is None:
                    continue
                with self.lock:
                    held = list(self.inbox)
                for jid in held:  # NB: shares of jobs that ended before this engine took them
                    if self.job_ended(jid):
                        with self.lock:
                            self.inbox.pop(jid, None)
                for job in jobs:
                    try:
                        self.handle(job)
                    except Exception as e:
                        log.exception("job %s failed", job.job)
                        self.progress(job.job, PartState.FAILED, f"{type(e).__name__}: {e}")
                time.sleep(poll_s)
        finally:
            if self.server is not None:
                self.server.should_exit = True


def _check_port(address: str) -> None:
    """Fail with a clear message when the MPC port is taken (brpc would abort the party process)."""
    import socket

    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            msg = f"the MPC address {address} is in use ({e.strerror}); configure a free port as 'mpc'"
            raise WerkplaatsError(msg) from None
