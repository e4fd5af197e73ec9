"""One job's party process at an engine: spawn it, hand it the shares, hold the link barriers, deliver its output.

The party (werkplaats.mpc.party) compiles the plan (or takes the program from the engine's own cache),
reports ``compiled``, and links to its two peers only once all three engines have compiled; the
link closes only when all three are done, so that no peer reads an early close (brpc over TLS can
abort a party on that). Security model: the party gets this engine's share of each input and the
public plan, catalog and row counts; its output is this engine's share of the disclosure-controlled
result, which goes to the hub. The MPC links use the engine's own link certificate and trust exactly
its two pinned peers.

The shares wait on disk (`werkplaats.workspace.inbox.Spool`) and go to the party straight from
there: an unbucketed job's with its "run" message, a bucketed job's (`JobPayload.buckets`) as
one "bucket" message per bucket after the link barrier (`werkplaats.mpc.process`), so the engine
never holds a job's shares in memory. Before it starts the party, the engine refuses a job whose
party would need more memory per bucket than its own ``memory_budget_gb`` (the memory model of
`werkplaats.mpc.buckets`, with the padded sizes the owners sent).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog.serde import catalog_to_dict
from ..compile.kernels.cellkey import key_inputs
from ..compile.register import entries_to_json
from ..exceptions import WerkplaatsError
from ..mpc.party import key_part_blob
from ..mpc.process import Command, PartyHeader, TlsFiles, spawn_party
from ..plan import nodes as n
from ..plan.serde import canonical_json, plan_from_dict
from .catalog_io import rounded
from .engine_scaleout import check_free
from .inbox import send_from_files
from .jobs import catalog_of, job_analysis
from .memory import check_memory as check_memory  # NB: the late check (the early one: memory.check_take)
from .messages import JobPayload, JobState, PartState, ShareHeader

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("werkplaats.engine")

LINKABLE = (PartState.COMPILED, PartState.DONE)  # NB: an engine whose party compiled (or finished) may be linked to
STARTED = (PartState.RUNNING, PartState.COMPILED, PartState.DONE)  # NB: an engine whose party runs this job
BACKOFF_S = 15.0  # NB: compiled, but a peer has not started the job this long: step back if another job is ready
BARRIER_POLL_S = 0.1  # NB: how often the barriers (open the links; close them) ask the hub for the peers' states
RUN_POLL_S = 0.5  # NB: how often a running job asks the hub whether it failed elsewhere


KEY_PART_FILE = "perturbation-key-part"


def perturbation_key_part(state_dir: Path) -> int:
    """Return this engine's part of the perturbation key (rule 6), made once at random and kept in its state directory.

    The file is readable by the engine's user only (0600), like its other secrets. The part never
    leaves the engine in the clear: its party secret-shares it among the three parties at each job
    (`werkplaats.mpc.party.exchange_key_parts`); the key is the sum of the three engines' parts, so
    no single node knows it. The same part across jobs gives the same noise to the same cell.
    Rotation: delete the file; from then on every cell gets new noise, so an analyst who saw a cell
    before and after can average the two noises (rotate rarely, e.g. with a new collaboration).
    """
    path = state_dir / KEY_PART_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return int.from_bytes(path.read_bytes()[:8], "little", signed=True)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(8))
    return int.from_bytes(path.read_bytes()[:8], "little", signed=True)


def run_party(engine: Engine, job: JobPayload, inputs: dict[str, dict[int, ShareHeader]],
              deliver: Any) -> bool:  # fmt: skip
    """Run the SPU program in a party process of its own (the engine's spare, when one runs); watch the hub.

    The hub is watched for the job failing elsewhere and for the peers' barrier states.

    The party's output goes to deliver while its link is still open; the link closes only
    when all three engines are done (or the job has ended), so no peer sees it close early.
    Return True when it stepped back before linking because a peer is busy with another
    job while another job is ready here (so that no two engines wait for each other).
    """
    jid = job.job
    plan = plan_from_dict(job.plan)
    catalog = catalog_of(job.schemas)
    count = job.buckets.count if job.buckets is not None else 0
    rows = {d: next(iter(hs.values())).rows for d, hs in inputs.items()}  # NB: bucketed: the padded sizes (public)
    # NB: rule 8 with the public (rounded) row counts, as the hub checked it: never an exact count in a refusal
    public = {d: rounded(r * max(count, 1)) for d, r in rows.items()}
    a = job_analysis(job.plan, catalog, job.rules, public, job.registered)  # NB: refuses a k below the datasets' own
    check_memory(a, rows, count > 0, engine.cfg.memory_budget_gb)
    order = list(dict.fromkeys(s.dataset for s in n.sources(plan.root)))
    counts = [c for d in order for c in inputs[d][0].share_blobs]
    index = {d: job.datasets.index(d) for d in order}

    def files(b: int) -> list[Path]:
        return [engine.spool.path(job.job, index[d], b) for d in order]

    engines = sorted(job.engines, key=lambda e: e.party)
    names = [e.name for e in engines]
    peers = [e.name for e in engines if e.party != engine.cfg.party]
    check_free(engine.cfg.mpc, "the MPC address", "as 'mpc'")
    scale = engine.scaleout.header_fields(job)  # NB: [scaleout] (engine_scaleout.py): W workers, the pinned links
    header = PartyHeader(
        job=f"werkplaats-job-{jid}",
        plan=canonical_json(plan),
        catalog=catalog_to_dict(catalog),
        rows={d: rows[d] for d in order},
        rules=a.rules.to_settings(),
        register=entries_to_json(a),  # NB: rule 9: the registered cells are compiled into the same program
        addrs=tuple(e.mpc for e in engines),
        share_blobs=() if count else tuple(counts),  # NB: bucketed: each "bucket" message says its own
        recv_timeout_ms=120_000,
        barrier=True,
        # NB: its own self-signed link certificate; the trust anchors are its two peers' pinned certificates
        tls=TlsFiles(ca=str(engine.link_bundle), cert=str(engine.cfg.link_cert), key=str(engine.cfg.link_key)),
        key_part=bool(key_inputs(a)),
        buckets=count,
        **scale,
    ).to_dict()
    extra: list[bytes] = []
    if key_inputs(a):  # NB: rule 6: this engine's own part of the perturbation key; it leaves the party only as shares
        extra.append(key_part_blob(perturbation_key_part(engine.cfg.state_dir)))
    # NB: compiled programs are kept in the engine's own state directory (public metadata only).
    log_file, programs = engine.cfg.state_dir / f"job{jid}.log", engine.cfg.state_dir / "programs"
    t_party = time.monotonic()
    party = engine.spare.take(log_file)  # NB: a party started ahead of the job has SPU imported already
    spare = party is not None
    if party is None:
        party = spawn_party(engine.cfg.party, log_file, cache_dir=programs)
    child = party.proc
    engine.child = child
    q: queue.Queue[Any] = queue.Queue()

    go = threading.Event()
    cancel = threading.Event()

    ready: list[float] = []

    def talk() -> None:
        try:
            party.recv()  # ready
            ready.append(time.monotonic() - t_party)
            send_from_files(party.to, header, [] if count else files(0), extra)  # NB: the shares, from disk
            msg = party.recv()
            if msg[0].get("cmd") == Command.COMPILED:
                q.put(("compiled", []))
                while not go.wait(0.2):
                    if cancel.is_set():
                        party.send({"cmd": Command.CANCEL.value})
                        return
                party.send({"cmd": Command.LINK.value})
                try:
                    for b in range(count):  # NB: a bucketed job's shares, bucket by bucket, from disk
                        bucket_counts = [c for d in order for c in inputs[d][b].share_blobs]
                        send_from_files(party.to, {"cmd": Command.BUCKET.value, "index": b,
                                                   "share_blobs": bucket_counts}, files(b))  # fmt: skip
                except OSError:
                    pass  # NB: the party stopped reading (it failed): its answer says why
                msg = party.recv()
            q.put(msg)
        except Exception as e:  # NB: a dead child shows up as a closed pipe
            q.put(e)

    threading.Thread(target=talk, daemon=True).start()
    compiled_at = 0.0
    ok = False  # NB: the party delivered its output (its workers, if any, closed their links and dropped the shares)
    try:
        while True:
            try:
                # NB: at the barrier (compiled, its peers not yet) the hub is asked often: a peer's report ends it
                item = q.get(timeout=BARRIER_POLL_S if compiled_at and not go.is_set() else RUN_POLL_S)
                if item == ("compiled", []):
                    # NB: the three parties link together, so that no party dials a peer that is still
                    # compiling (brpc over TLS can abort on such early connection failures).
                    engine.progress(jid, PartState.COMPILED)
                    compiled_at = time.monotonic()
                    continue
                break
            except queue.Empty:
                status = engine.job_status(jid)
                if status is not None and status.state == JobState.FAILED:
                    return False  # NB: another node failed the job; the finally stops our party
                if compiled_at and status is not None and status.progress.get(engine.cfg.name) not in LINKABLE:
                    engine.progress(jid, PartState.COMPILED)  # NB: the hub lost the report: say it again
                if status is not None and all(status.progress.get(n) in LINKABLE for n in names):
                    go.set()
                elif (
                    compiled_at
                    and status is not None
                    and time.monotonic() - compiled_at > BACKOFF_S
                    and any(status.progress.get(n) not in STARTED for n in peers)
                    and engine.other_ready(jid)
                ):
                    log.info("job %s: a peer has not started it; stepping back for another job", jid)
                    engine.progress(jid, PartState.VERIFYING, "waiting for its peers")  # NB: no longer linkable
                    return True
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
        # NB: public timings: how long this job waited for its party process (a spare: only for its "ready")
        reply["stats"] = {**reply.get("stats", {}), "party_start_s": ready[0] if ready else 0.0, "party_spare": spare}
        deliver(reply, out)
        ok = True
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # NB: the closing barrier
            status = engine.job_status(jid)
            if status is None or status.state.ended:
                break
            if all(status.progress.get(n) == PartState.DONE for n in names):
                break
            time.sleep(BARRIER_POLL_S)
        return False
    finally:
        cancel.set()
        if child.poll() is None:
            party.ask_to_stop()
            party.wait(3)  # NB: every engine is done; a link that will not close is killed
        party.kill()
        engine.child = None
        engine.scaleout.job_ended(bool(scale), ok)  # NB: a failed scaled job: its workers are restarted
