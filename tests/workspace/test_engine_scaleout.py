"""Scale-out at the engine service (issue 13 §5): engine.toml's [scaleout], the pinned worker links, the Dask cluster.

In process, no MPC: the settings and their refusals; the party header an engine gives a bucketed
job (worker links from the pins only, the engine's own link certificate and pinned peer bundle
for every worker); refusals when the engines cannot agree on the workers.
Slow: the engine's own Dask cluster started once, restarted after a failed job, and gone with the
engine (also when the engine process is killed); a bucketed job through a workspace whose engines
run 2 workers each, equal to the plain executor; a worker link that refuses a peer worker presenting a
link certificate nobody pinned (real brpc, mutual TLS).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from werkplaats.mpc import wire
from werkplaats.mpc.process import PartyHeader
from werkplaats.mpc.scaleout import group_header
from werkplaats.workspace import engine_run, pki
from werkplaats.workspace.config import ConfigError, EngineConfig, ScaleoutConfig
from werkplaats.workspace.engine import Engine
from werkplaats.workspace.engine_scaleout import EngineScaleout
from werkplaats.workspace.messages import BucketPlan, JobPayload, MessageError

from .test_attack_pinning import FakeHub, Node, _engine_toml, _job, _post
from .test_bucketed_jobs import COUNT, _bucket
from .wait import wait_until

OWN = ["127.0.0.1:9300", "127.0.0.1:9301"]
PEERS = {1: ["127.0.0.1:9310", "127.0.0.1:9311"], 2: ["127.0.0.1:9320", "127.0.0.1:9321"]}


def _scaled_toml(tmp: Path, pub: str, *, scaleout: str | None = None, peers: dict[int, Any] | None = None) -> Path:
    """An engine.toml (party 0) with [scaleout] and its peers' pinned worker links (by default 2 workers each)."""
    path = _engine_toml(tmp, pub)
    text = path.read_text()
    if scaleout is None:  # NB: an operator's own scheduler (nothing listens there: no test starts Dask by accident)
        scaleout = f'workers = 2\nscheduler = "tcp://127.0.0.1:1"\nworker_mpc = {json.dumps(OWN)}\n'
    text = text.replace("[tls]\n", f"[scaleout]\n{scaleout}[tls]\n", 1)
    for j, links in (PEERS if peers is None else peers).items():
        pin = f'mpc = "127.0.0.1:{9200 + j}"\n'
        text = text.replace(pin, pin + f"worker_mpc = {json.dumps(links)}\n", 1)
    path.write_text(text)
    return path


def _node(tmp: Path, **kw: Any) -> Node:
    """An engine (in process) with a fake hub, and a job reading ggd/meldingen (not taken yet)."""
    pub = pki.new_signing_key(tmp / "ggd.key")
    cfg = EngineConfig.load(_scaled_toml(tmp, pub, **kw))
    e = Engine(cfg)
    hub = FakeHub()
    e.hub = hub  # type: ignore[assignment]
    job = _job(tmp, cfg, 7, keys={"ggd": pub}, signer=tmp / "ggd.key")
    return Node(e, None, hub, tmp / "ggd.key", job)  # type: ignore[arg-type]


def _bucketed(job: JobPayload, jid: int = 7) -> JobPayload:
    return job.model_copy(update={"job": jid, "buckets": BucketPlan(count=COUNT, key_version=1)})


def test_engine_toml_reads_scaleout_and_the_peers_worker_links(tmp_path: Path) -> None:
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    plain = EngineConfig.load(_engine_toml(tmp_path / "plain", pub))
    assert plain.scaleout == ScaleoutConfig(1, "local", ()) and all(p.worker_mpc == () for p in plain.peers)
    cfg = EngineConfig.load(_scaled_toml(tmp_path, pub))
    assert cfg.scaleout == ScaleoutConfig(2, "tcp://127.0.0.1:1", tuple(OWN))
    assert {p.party: list(p.worker_mpc) for p in cfg.peers} == PEERS


@pytest.mark.parametrize(
    ("scaleout", "peers", "why"),
    [
        ("workers = 0\n", {}, "workers must be a positive whole number"),
        ("workers = true\n", {}, "workers must be a positive whole number"),
        (f"workers = 3\nworker_mpc = {json.dumps(OWN)}\n", PEERS, r"one link address per worker \(3\), not 2"),
        ('workers = 2\nworker_mpc = ["127.0.0.1:9300", "nohost"]\n', PEERS, "'nohost' is not a host:port address"),
        (f"workers = 1\nworker_mpc = {json.dumps(OWN[:1])}\n", {}, "worker_mpc is set but workers = 1"),
        (f"workers = 2\nthreads = 2\nworker_mpc = {json.dumps(OWN)}\n", PEERS, "unknown setting 'threads'"),
        ('workers = 2\nscheduler = ""\n' + f"worker_mpc = {json.dumps(OWN)}\n", PEERS, "scheduler must be"),
        (f"workers = 2\nworker_mpc = {json.dumps(OWN)}\n", {1: "127.0.0.1:9310"}, "worker_mpc: must be a list"),
        # NB: a worker link on a peer's worker address, or on a peer's own MPC address: two links on one address
        (f"workers = 2\nworker_mpc = {json.dumps(OWN)}\n", {1: PEERS[1], 2: [OWN[0], PEERS[2][1]]}, "given twice"),
        ('workers = 2\nworker_mpc = ["127.0.0.1:9300", "127.0.0.1:9201"]\n', PEERS, "127.0.0.1:9201 is given twice"),
    ],
    ids=[
        "zero",
        "bool",
        "count",
        "address",
        "off-with-links",
        "unknown",
        "scheduler",
        "peer-not-list",
        "peer-dup",
        "peer-mpc",
    ],
)
def test_engine_toml_refuses_bad_scaleout_settings(tmp_path: Path, scaleout: str, peers: dict[int, Any],
                                                   why: str) -> None:  # fmt: skip
    pub = pki.new_signing_key(tmp_path / "ggd.key")
    with pytest.raises(ConfigError, match=why):
        EngineConfig.load(_scaled_toml(tmp_path, pub, scaleout=scaleout, peers=peers))


def test_a_bucketed_jobs_party_gets_the_pinned_worker_links_and_the_engines_own_link_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = _node(tmp_path)
    e, n.job = n.engine, _bucketed(n.job)  # NB: the bucket shares are made for n.job (its bucket key version)
    e.take(n.job)
    assert 7 in e.jobs, n.hub.reasons()
    sent = io.BytesIO()
    ended: list[tuple[bool, bool]] = []

    class Party:  # NB: stands in for the party process: takes the run message, then fails the job
        def __init__(self) -> None:
            self.to, self.proc, self.said = sent, self, 0

        def recv(self) -> tuple[dict[str, Any], list[bytes]]:
            self.said += 1
            return ({"cmd": "ready"} if self.said == 1 else {"ok": False, "error": "stopped by the test"}), []

        def poll(self) -> None:
            return None

        def ask_to_stop(self) -> None:
            pass

        def wait(self, timeout: float) -> bool:
            return True

        def kill(self) -> None:
            pass

    monkeypatch.setattr(engine_run, "spawn_party", lambda *a, **kw: Party())
    monkeypatch.setattr(EngineScaleout, "job_ended", lambda self, scaled, ok: ended.append((scaled, ok)))
    with TestClient(e.app()) as client:
        n.inbox = client
        for b in range(COUNT):
            assert _post(n, _bucket(n, b)).status_code == 200
    assert e.next_ready() == 7
    e.run(7)
    assert any("stopped by the test" in r for r in n.hub.reasons()), n.hub.reasons()
    assert ended == [(True, False)]  # NB: a failed scaled job restarts the workers
    sent.seek(0)
    h = PartyHeader.from_dict(wire.recv(sent)[0])
    want = ((OWN[0], PEERS[1][0], PEERS[2][0]), (OWN[1], PEERS[1][1], PEERS[2][1]))
    assert (h.workers, h.scheduler, h.worker_addrs, h.buckets) == (2, "tcp://127.0.0.1:1", want, COUNT)
    assert h.tls is not None and h.tls.ca == str(e.link_bundle) and h.tls.cert == str(e.cfg.link_cert)
    # NB: the trust every worker links with: exactly the two peers' pinned link certificates
    pinned = "".join(p.cert.read_text().strip() + "\n" for p in e.cfg.peers)
    assert Path(h.tls.ca).read_text() == pinned
    for w in range(2):
        g = group_header(h, w)
        assert (g.job, g.addrs, g.tls) == (f"{h.job}-w{w}", want[w], h.tls)


def test_worker_links_come_from_the_pins_never_from_the_hub(tmp_path: Path) -> None:
    n = _node(tmp_path)
    so = n.engine.scaleout
    assert so.header_fields(n.job) == {}  # NB: an unbucketed job runs in the party itself
    got = so.header_fields(_bucketed(n.job))["worker_addrs"]
    assert got == ((OWN[0], PEERS[1][0], PEERS[2][0]), (OWN[1], PEERS[1][1], PEERS[2][1]))
    # NB: a hub cannot name worker links: a job whose engines carry some is not a job
    d = n.job.to_dict()
    d["engines"][1]["worker_mpc"] = ["10.6.6.6:1", "10.6.6.6:2"]
    with pytest.raises(MessageError):
        JobPayload.from_dict(d)
    # NB: nor move a peer (its MPC address not the pinned one): the job is refused before anything runs
    d = n.job.to_dict() | {"job": 8, "buckets": {"count": COUNT, "key_version": 1}}
    d["engines"][2]["mpc"] = "10.6.6.6:9202"
    n.engine.take(JobPayload.from_dict(d))
    assert 8 not in n.engine.jobs and "not at its pinned address" in n.hub.reasons()[-1]


@pytest.mark.parametrize(
    ("scaleout", "peers", "why"),
    [
        (None, {1: PEERS[1], 2: [*PEERS[2], "127.0.0.1:9322"]}, "party 2 is pinned with 3 worker link addresses"),
        (None, {1: PEERS[1]}, "party 2 is pinned with 0 worker link addresses"),
        ("workers = 1\n", {2: PEERS[2]}, r"party 2 is pinned with 2 .*\(\[scaleout\] workers = 1\)"),
    ],
    ids=["peer-more", "peer-none", "own-off"],
)
def test_an_engine_refuses_a_bucketed_job_when_the_engines_disagree_on_the_workers(
    tmp_path: Path, scaleout: str | None, peers: dict[int, Any], why: str
) -> None:
    n = _node(tmp_path, scaleout=scaleout, peers=peers)
    n.engine.take(_bucketed(n.job))
    assert 7 not in n.engine.jobs
    reason = n.hub.reasons()[-1]
    assert "the three engines must agree on the workers" in reason and re.search(why, reason), reason
    n.engine.take(n.job.model_copy(update={"job": 8}))  # NB: an unbucketed job needs no workers: taken
    assert 8 in n.engine.jobs, n.hub.reasons()


def test_a_scaled_jobs_done_report_counts_its_workers_and_carries_numbers_only() -> None:
    from werkplaats.workspace.engine import _stats

    groups = [{"rank": 0, "group": w, "addrs": OWN} for w in range(2)]  # NB: as mpc/scaleout.py reports them
    stats = {"workers": groups, "dask_workers": ["tcp://127.0.0.1:40001"], "stage_s": [1.23456], "buckets": 4}
    assert _stats(stats) == {"workers": 2.0, "stage_s": [1.235], "buckets": 4.0}


# -- the engine's own Dask cluster (scheduler = "local"), slow: ~10 s each ----------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # NB: a zombie has exited
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


LOCAL = f'workers = 2\nscheduler = "local"\nworker_mpc = {json.dumps(OWN)}\n'


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[EngineScaleout, JobPayload]]:
    """An engine's scale-out with its own loopback Dask cluster of two workers, and a bucketed job."""
    n = _node(tmp_path, scaleout=LOCAL)
    try:
        yield n.engine.scaleout, _bucketed(n.job)
    finally:
        n.engine.scaleout.stop()


@pytest.mark.slow  # NB: a Dask cluster of two workers starts: 9-11 s on this machine
def test_the_engines_dask_cluster_starts_once_is_restarted_after_a_failed_job_and_stops(
    local: tuple[EngineScaleout, JobPayload],
) -> None:
    so, job = local
    assert so.worker_pids() == []  # NB: started on the first bucketed job, not before
    first = so.header_fields(job)["scheduler"]
    pids = so.worker_pids()
    assert first.startswith("tcp://127.0.0.1:") and len(pids) == 2 and all(_alive(p) for p in pids)
    assert so.header_fields(job)["scheduler"] == first and so.worker_pids() == pids  # NB: one cluster
    so.job_ended(True, True)
    assert so.worker_pids() == pids  # NB: a job that ended well leaves the workers as they are
    so.job_ended(True, False)  # NB: a failed scaled job: the workers may hold shares or a half-open link
    wait_until(lambda: not any(_alive(p) for p in pids), 30, "the failed job's workers gone")
    second = so.header_fields(job)["scheduler"]
    assert second != first and set(so.worker_pids()).isdisjoint(pids)
    again = so.worker_pids()
    so.stop()
    wait_until(lambda: not any(_alive(p) for p in again), 30, "the workers gone with the engine")


@pytest.mark.slow  # NB: a Dask cluster of two workers starts: 9-11 s on this machine
def test_the_engines_dask_workers_die_with_a_killed_engine_process(tmp_path: Path) -> None:
    n = _node(tmp_path, scaleout=LOCAL)
    toml = tmp_path / "engine.toml"
    code = (
        "import json, time\n"
        "from werkplaats.workspace.config import EngineConfig\n"
        "from werkplaats.workspace.engine_scaleout import EngineScaleout\n"
        f"so = EngineScaleout(EngineConfig.load({str(toml)!r}))\n"
        "so.start()\n"
        "print(json.dumps(so.worker_pids()), flush=True)\n"
        "time.sleep(600)\n"
    )
    assert n.engine.cfg.scaleout.scheduler == "local"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        pids = json.loads(proc.stdout.readline())
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        proc.send_signal(signal.SIGKILL)  # NB: the engine alone (not its process group): no clean-up runs
        proc.wait(10)
        t0 = time.monotonic()
        wait_until(lambda: not any(_alive(p) for p in pids), 30, "the killed engine's Dask workers gone")
        assert time.monotonic() - t0 < 30
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


# -- slow: a bucketed job through a workspace whose engines run two Dask workers each ------------------------------


@pytest.mark.slow
def test_a_bucketed_job_on_two_workers_per_engine_equals_the_plain_executor(tmp_path: Path) -> None:
    from werkplaats.demo.workspace import LocalWorkspace
    from werkplaats.synth.write import load_region
    from werkplaats.workspace.bucketkey import BucketKeys
    from werkplaats.workspace.config import DatastationConfig

    from .live import PURPOSE, analysis, approve_all, assert_like_truth, connect, truth
    from .test_bucketed_jobs import BUCKETED, _bucketed_collaboration

    ws = LocalWorkspace(tmp_path / "ws", persons=6000, organisations=("ggd", "huisartsen"), heartbeat_timeout_s=6,
                        jobs={BUCKETED: {"buckets": 2}}, workers=2)  # fmt: skip
    kids: list[Any] = []
    try:
        ws.start()
        cfgs = [EngineConfig.load(ws.engine_config(i)) for i in range(3)]
        assert all(c.scaleout.workers == 2 for c in cfgs)
        _bucketed_collaboration(ws)
        keys = BucketKeys.from_config(DatastationConfig.load(ws.datastation_config("ggd")))
        try:
            keys.create(BUCKETED)
        finally:
            keys.close()
        c = connect(ws)
        req = c.submit(analysis(), collaboration=BUCKETED, purpose=PURPOSE)
        approve_all(ws, req.id)
        got = req.run(timeout=900)
        assert isinstance(got, pd.DataFrame)
        region = load_region(ws.region)
        assert_like_truth(got, truth(region.tables, region.catalog))
        j = c.client.get(f"/jobs/{int(got.attrs['job'])}")
        engines = [f"engine{i}" for i in range(3)]
        assert all(j["progress"][e].get("buckets") == 2 and j["progress"][e].get("workers") == 2 for e in engines), j[
            "progress"
        ]
        import psutil

        for e in engines:  # NB: each engine's two Dask workers (and its spare party, if any)
            kids += psutil.Process(ws.procs[e].popen.pid).children(recursive=True)  # type: ignore[union-attr]
        assert len(kids) >= 6
    finally:
        ws.stop()
    wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in kids), 30,
               "every engine's workers gone with the workspace")  # fmt: skip


def test_local_workspace_gives_each_engine_its_workers_and_pins_the_peers_workers(tmp_path: Path) -> None:
    from werkplaats.demo.workspace import LocalWorkspace

    ws = LocalWorkspace(tmp_path, organisations=("ggd",), workers=2)
    ws.hub_url, ws.public_keys = "https://127.0.0.1:9", {"ggd": "k"}
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "hub.pub").write_text("k\n")
    ws.engine_ports = {}
    for i in range(3):  # NB: what setup() and register() do for the engines, without a hub
        pki.link_certificate(ws.link_cert(i).parent, f"engine{i}-link")
        ws.tokens[f"engine{i}"] = "t"
        ws.engine_ports[i] = (20_000 + 2 * i, 20_001 + 2 * i)
        ws.worker_ports[i] = ws._worker_ports(f"engine{i}")
    cfgs = [EngineConfig.load(ws.engine_config(i)) for i in range(3)]  # NB: every link address distinct (checked)
    for i, c in enumerate(cfgs):
        assert c.scaleout == ScaleoutConfig(2, "local", tuple(ws.worker_mpc(i))) and len(set(ws.worker_mpc(i))) == 2
        assert {p.party: p.worker_mpc for p in c.peers} == {j: cfgs[j].scaleout.worker_mpc for j in range(3) if j != i}
    ws.workers, ws.worker_ports = 1, {}  # NB: the default: no [scaleout], no worker links pinned
    plain = EngineConfig.load(ws.engine_config(0))
    assert plain.scaleout.workers == 1 and all(p.worker_mpc == () for p in plain.peers)


_LINK = """
import json, sys
from werkplaats.mpc.party import _linked
from werkplaats.mpc.process import PartyHeader
from werkplaats.mpc.scaleout import group_header
rank, h = int(sys.argv[1]), PartyHeader.from_dict(json.loads(sys.argv[2]))
with _linked(rank, group_header(h, 1)) as link:
    got = link.all_gather(f"party{rank}")
print("linked", ",".join(got), flush=True)
"""


def _link_group(tmp: Path, impostor: bool) -> list[tuple[int, str]]:
    """Link worker group 1 of three engines (real brpc, mutual TLS, each engine's pinned peer bundle); party 2 may
    present a link certificate that nobody pinned. Return each party's exit code and output."""
    from werkplaats.mpc.process import STAGED_SELFTEST, TlsFiles, free_port

    certs = [pki.link_certificate(tmp / f"engine{i}", f"engine{i}-link") for i in range(3)]
    own = pki.link_certificate(tmp / "impostor", "engine2-link") if impostor else certs[2]
    groups = tuple(tuple(f"127.0.0.1:{free_port()}" for _ in range(3)) for _ in range(2))
    procs = []
    for rank in range(3):
        bundle = tmp / f"bundle{rank}.pem"  # NB: as Engine.peer_bundle writes it: the two peers' pinned certificates
        bundle.write_text("".join(certs[j][0].read_text().strip() + "\n" for j in range(3) if j != rank))
        cert, key = own if rank == 2 else certs[rank]
        h = PartyHeader(job="scaleout-tls", program=STAGED_SELFTEST[0], size=4, buckets=2, workers=2,
                        scheduler="tcp://127.0.0.1:1", worker_addrs=groups, recv_timeout_ms=20_000,
                        tls=TlsFiles(str(bundle), str(cert), str(key)))  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-c", _LINK, str(rank), json.dumps(h.to_dict())],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))  # fmt: skip
    out = []
    deadline = time.monotonic() + 60  # NB: brpc retries a refused handshake; the test gives up here
    for p in procs:
        try:
            text, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            text, _ = p.communicate()
        out.append((p.returncode, text))
    return out


@pytest.mark.slow  # NB: three SPU processes, twice; the refused link is given up on after 60 s
def test_a_worker_link_refuses_a_peer_worker_with_an_unpinned_certificate(tmp_path: Path) -> None:
    honest = _link_group(tmp_path / "honest", impostor=False)
    assert all(code == 0 and "linked party0,party1,party2" in text for code, text in honest), honest
    attacked = _link_group(tmp_path / "attacked", impostor=True)
    for rank in (0, 1):  # NB: the pinned parties never link with the impostor's worker
        code, text = attacked[rank]
        assert code != 0 and "linked" not in text and "certificate verify failed" in text, (rank, text[-2000:])
