"""Scale-out at an engine: a bucketed job's buckets on W workers of the engine's own Dask cluster (issue 13 §5).

engine.toml's ``[scaleout]`` (`werkplaats.workspace.config.ScaleoutConfig`) gives W, this engine's
own Dask scheduler (or ``"local"``: the engine starts a loopback cluster of W workers itself, on
its first bucketed job, and stops it with the engine), and the W link addresses of its workers;
each ``[[peers]]`` pin gives that peer's ``worker_mpc``. `EngineScaleout.header_fields` turns
them into the `PartyHeader` fields of a job (``workers``, ``scheduler``, ``worker_addrs``); the
party does the rest (`werkplaats.mpc.scaleout`).

Security model: the workers' link addresses come from this engine's pins only, never from the
hub (a job cannot even carry one: `messages.EngineAddress` has no such field). Worker w links
with worker w of the peers using the engine's own link certificate and key and the same CA
file as the party: the bundle of the peers' pinned link certificates, so the pins cover every
worker. The three engines must agree on W: an engine refuses a bucketed job when a peer is
pinned with another number of worker addresses than its own W. The Dask cluster is this
engine's alone (a loopback one by default): Dask runs whatever its scheduler's clients send,
and the workers hold this engine's shares. After a scaled job that did not end well the engine
restarts its workers, so that no worker keeps a failed job's shares or a half-open link.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from ..exceptions import WerkplaatsError
from .pki import PinError

if TYPE_CHECKING:
    from .config import EngineConfig
    from .messages import JobPayload

log = logging.getLogger("werkplaats.engine")

LOCAL = "local"  # NB: [scaleout] scheduler = "local": the engine starts its own loopback Dask cluster
LOOPBACK = "127.0.0.1"


def check_workers(cfg: EngineConfig) -> None:
    """Raise PinError unless every peer is pinned with as many worker link addresses as this engine has workers."""
    w = cfg.scaleout.workers
    for p in cfg.peers:
        got = len(p.worker_mpc)
        if w > 1 and got != w:
            msg = (f"this engine runs buckets on {w} workers ([scaleout] workers), but party {p.party} is pinned with "
                   f"{got} worker link addresses ([[peers]] worker_mpc): the three engines must agree on the workers; "
                   "refused")  # fmt: skip
            raise PinError(msg)
        if w == 1 and got:
            msg = (f"party {p.party} is pinned with {got} worker link addresses ([[peers]] worker_mpc), but this "
                   "engine runs buckets itself ([scaleout] workers = 1): the three engines must agree on the workers; "
                   "refused")  # fmt: skip
            raise PinError(msg)


def check_job(cfg: EngineConfig, job: JobPayload) -> None:
    """Raise PinError when a bucketed job cannot run here because the engines' scale-out settings disagree."""
    if job.buckets is not None and job.buckets.count > 0:
        check_workers(cfg)


def worker_addrs(cfg: EngineConfig) -> tuple[tuple[str, ...], ...]:
    """Return per worker group w the three parties' link addresses (this engine's own, the peers' pins)."""
    links = {cfg.party: cfg.scaleout.worker_mpc} | {p.party: p.worker_mpc for p in cfg.peers}
    return tuple(tuple(links[rank][w] for rank in range(3)) for w in range(cfg.scaleout.workers))


def check_free(address: str, what: str = "the worker link address", where: str = "in worker_mpc") -> None:
    """Raise WerkplaatsError when a link port is taken (brpc would abort the party or worker process).

    what names the address in the message, where says which setting to change (the party's own MPC
    address: `engine_run.run_party`; a worker's: `EngineScaleout`).
    """
    host, _, port = address.rpartition(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            msg = f"{what} {address} is in use ({e.strerror}); configure a free port {where}"
            raise WerkplaatsError(msg) from None


class EngineScaleout:
    """An engine's scale-out: its Dask cluster (when "local") and the `PartyHeader` fields of its jobs.

    Examples
    --------
    >>> so = EngineScaleout(EngineConfig.load("engine.toml"))    # doctest: +SKIP
    >>> PartyHeader(..., buckets=4, **so.header_fields(job))     # doctest: +SKIP
    >>> so.stop()                                                # doctest: +SKIP
    """

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.cluster: Any = None  # NB: a distributed.LocalCluster, when [scaleout] scheduler = "local"
        self.lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.cfg.scaleout.workers > 1

    def start(self) -> str:
        """Start the engine's own loopback Dask cluster unless it runs (scheduler "local"); return the scheduler."""
        if self.cfg.scaleout.scheduler != LOCAL:
            return self.cfg.scaleout.scheduler
        with self.lock:
            if self.cluster is None:
                from ..mpc.scaleout import start_dask

                self.cluster = start_dask(self.cfg.scaleout.workers, LOOPBACK)
                log.info("scale-out: started a Dask cluster of %d workers at %s", self.cfg.scaleout.workers,
                         self.cluster.scheduler_address)  # fmt: skip
            return str(self.cluster.scheduler_address)

    def worker_pids(self) -> list[int]:
        """Return the process ids of the local cluster's workers (none when it does not run)."""
        with self.lock:
            if self.cluster is None:
                return []
            return [int(w.process.pid) for w in self.cluster.workers.values() if w.process and w.process.pid]

    def stop(self) -> None:
        """Stop the local Dask cluster (its workers with it); nothing when it does not run."""
        with self.lock:
            cluster, self.cluster = self.cluster, None
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=30)
            log.info("scale-out: stopped the Dask cluster")

    def header_fields(self, job: JobPayload) -> dict[str, Any]:
        """Return the `PartyHeader` fields that run a job's buckets on this engine's workers ({}: the party runs them).

        Only a bucketed job scales out. The addresses are this engine's pins, whatever the job
        says; a peer pinned with another number of workers refuses the job (PinError).
        """
        check_job(self.cfg, job)
        if not self.enabled or job.buckets is None or job.buckets.count == 0:
            return {}
        if self.cfg.scaleout.scheduler == LOCAL:  # NB: the workers run here: their ports must be free
            for a in self.cfg.scaleout.worker_mpc:
                check_free(a)
        try:
            scheduler = self.start()
        except Exception as e:  # NB: e.g. a port Dask cannot take; the job fails with the reason, the engine goes on
            msg = f"scale-out: the engine's Dask cluster did not start ({type(e).__name__}: {e})"
            raise WerkplaatsError(msg) from None
        return {"workers": self.cfg.scaleout.workers, "scheduler": scheduler, "worker_addrs": worker_addrs(self.cfg)}

    def job_ended(self, scaled: bool, ok: bool) -> None:
        """After a scaled job that did not end well, restart the workers: none keeps its shares or a half-open link."""
        if not scaled or ok:
            return
        if self.cfg.scaleout.scheduler == LOCAL:
            self.stop()  # NB: the next bucketed job starts a fresh cluster
            return
        try:
            from distributed import Client

            with Client(self.cfg.scaleout.scheduler, timeout=30) as client:
                client.restart(wait_for_workers=False)
        except Exception as e:  # NB: an operator's cluster without nannies cannot restart its workers from here
            log.warning("scale-out: could not restart the workers of %s after a failed job (%s)",
                        self.cfg.scaleout.scheduler, type(e).__name__)  # fmt: skip
