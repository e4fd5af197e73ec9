"""A compute party: one SPU runtime in its own OS process.

Run as ``python -m werkplaats.mpc.party --rank R --in-fd A --out-fd B [--cache-dir D]``
(`werkplaats.mpc.process.spawn_party` does). It takes jobs (a `PartyHeader`: the plan
and public metadata, the peers' addresses; then its shares) over a framed pipe from its
parent, compiles the plan itself (or takes the identical program from its cache,
`werkplaats.mpc.programs`), runs it with its two peers over brpc, returns its shares
of the outputs, and drops every share of the job afterwards.

Security model: the party holds only its replicated shares of the inputs and outputs,
which alone reveal nothing; the plan, schemas, row counts and addresses in the header
are public. It runs only the program it compiled from the plan, and checks that it got
one share per program input. Approvals and the owners' signatures are not its business:
in a workspace its parent, the engine service, verifies both before it hands the
shares over; in the local cluster the parent is the data owners' own coordinator. With
TLS files in the header, the links to the peers are mutual TLS that trusts only the CA file
named there (an engine passes its two peers' pinned, self-signed link certificates).
Its log holds timings, program keys (hashes of public metadata) and tracebacks, never
data or shares.

A bucketed job (``PartyHeader.buckets`` > 0, `werkplaats.compile.staged`) compiles every
stage's programs before the barrier, then reads its shares bucket by bucket ("bucket"
messages) after it. With one stage each bucket is run and dropped on arrival; with more, each
bucket is also written to a private spool directory (mode 0700, in the temp directory or
``WERKPLAATS_SPOOL_DIR``) and read back for the later stages; the directory is removed when
the job ends, also when it fails. Partials, accumulators and the state between stages stay
shares in this party (nothing is revealed before the last step's outputs).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import wire
from .process import Command, PartyHeader
from .programs import Program, ProgramCache, Staged, load_program, load_staged
from .runtime import enable_x64, runtime_config


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _proc_field(path: str, key: str) -> int | None:
    """Return the first number after `key:` in a /proc file, or None."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def _io_written() -> int:
    return _proc_field("/proc/self/io", "wchar") or 0


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    kib = _proc_field("/proc/self/status", "VmHWM")
    return (kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _key_part(blob: bytes) -> int:
    """Return a party's part of the perturbation key from its 8-byte blob (signed 64-bit, little-endian)."""
    if len(blob) != 8:
        msg = "a part of the perturbation key is 8 bytes"
        raise ValueError(msg)
    return int.from_bytes(blob, "little", signed=True)


def key_part_blob(part: int) -> bytes:
    """Return a part of the perturbation key (any int; taken mod 2^64) as the blob a party reads."""
    v = part % 2**64
    return (v - 2**64 if v >= 2**63 else v).to_bytes(8, "little", signed=True)


def exchange_key_parts(link: Any, rank: int, part: int, precision: str = "standard") -> list[Any]:
    """Return this party's shares of the three parties' key parts, in rank order (rule 6).

    Each party secret-shares its own part (as a data owner shares a table) and sends each peer
    that peer's share over the job's link (mutual TLS in a workspace); it receives its share of
    each peer's part the same way. The program adds the three parts: K, which no party knows.
    """
    import io

    import numpy as np
    import spu
    from spu import libspu

    mine = spu.Io(link.world_size, runtime_config(precision)).make_shares(np.array([part], dtype=np.int64),
                                                                  libspu.Visibility.VIS_SECRET)  # fmt: skip
    for peer in range(link.world_size):
        if peer != rank:
            buf = io.BytesIO()
            wire.send(buf, {"key_part_of": rank}, wire.pack_share(mine[peer]))
            link.send_async(peer, buf.getvalue())
    out: list[Any] = []
    for peer in range(link.world_size):
        if peer == rank:
            out.append(mine[rank])
            continue
        head, got = wire.recv(io.BytesIO(link.recv(peer)))
        if head.get("key_part_of") != peer:
            msg = f"party {peer} sent something else than its share of its key part"
            raise ValueError(msg)
        out.append(wire.unpack_share(got))
    return out


Message = tuple[dict[str, Any], list[bytes]]


def run_job(rank: int, header: PartyHeader, blobs: list[bytes], cache: ProgramCache, barrier: Any = None,
            deliver: Any = None, recv: Callable[[], Message] | None = None) -> Message | None:  # fmt: skip
    """Run one job and return the reply header and blobs.

    barrier, when given, is called after compiling and before linking to the peers; deliver,
    when given, receives the reply while the link is still open and returns once every party
    is done (then None is returned). The engine service uses both, so that the three parties
    open their links together and close them only when none of them is still talking: brpc
    over TLS aborts a process that reads an unexpected end of a connection (apache/brpc#3307).
    recv reads the next message from the parent: a bucketed job's "bucket" messages.
    """
    if header.buckets:
        if recv is None:
            msg = "a bucketed job needs its bucket messages"
            raise ValueError(msg)
        return _run_bucketed(rank, header, blobs, cache, barrier, deliver, recv)
    prog = load_program(header, cache)
    exe = prog.exe
    key_part = _key_part(blobs.pop()) if header.key_part else None
    nkey = len(exe.input_names) - prog.inputs
    if nkey and key_part is None:
        msg = "the program perturbs counts but this party was given no part of the perturbation key"
        raise ValueError(msg)
    shares = wire.unpack_shares(list(header.share_blobs), blobs)
    blobs.clear()  # NB: the packed copies are not needed any more
    if len(shares) != prog.inputs:
        msg = f"expected {prog.inputs} input shares, got {len(shares)}"
        raise ValueError(msg)
    if barrier is not None:
        barrier()
    with _linked(rank, header) as link:
        return _run_single(rank, header, prog, shares, key_part, link, deliver)


@contextlib.contextmanager
def _linked(rank: int, header: PartyHeader) -> Iterator[Any]:
    """Open the job's links to the two peers (mutual TLS with the header's files); stop them at the end."""
    from spu import libspu

    desc = libspu.link.Desc()
    desc.id = header.job
    for i, addr in enumerate(header.addrs):
        desc.add_party(f"party{i}", addr)
    desc.recv_timeout_ms = header.recv_timeout_ms
    desc.connect_retry_times = 120
    desc.connect_retry_interval_ms = 250
    desc.http_max_payload_size = 256 * 1024 * 1024
    tls = header.tls
    if tls:  # NB: mutual TLS between the parties, trusting only the header's CA file (the peers' link certificates)
        desc.enable_ssl = True
        # NB: brpc's pooled connections can abort the process on an SSL EOF (apache/brpc#3307); one
        # connection per peer avoids that path.
        desc.brpc_channel_connection_type = "single"
        for opts in (desc.server_ssl_opts, desc.client_ssl_opts):
            opts.cert.certificate_path = tls.cert
            opts.cert.private_key_path = tls.key
            opts.verify.ca_file_path = tls.ca
            opts.verify.verify_depth = 1
    _reset_peak_rss()
    link = libspu.link.create_brpc(desc, rank)
    try:
        yield link
    finally:
        link.stop_link()


def _run_single(rank: int, header: PartyHeader, prog: Program, shares: list[Any], key_part: int | None, link: Any,
                deliver: Any) -> Message | None:  # fmt: skip
    import spu

    exe = prog.exe
    nkey = len(exe.input_names) - prog.inputs
    w0 = _io_written()
    t1 = time.perf_counter()
    rt = spu.Runtime(link, runtime_config(prog.precision))
    vals = list(shares)
    shares.clear()  # NB: the caller's list too: the runtime holds the only copy of the inputs
    if nkey:
        assert key_part is not None
        vals += exchange_key_parts(link, rank, key_part, prog.precision)
    for name, s in zip(exe.input_names, vals, strict=True):
        rt.set_var(name, s)
    del vals
    rt.run(exe)
    outs = [rt.get_var(name) for name in exe.output_names]
    t_run = time.perf_counter() - t1
    written = _io_written() - w0
    del rt  # NB: releases every share of this job
    out_counts, out_blobs = wire.pack_shares(outs)
    stats = {
        "compile_s": prog.compile_s, "program_cached": prog.cached,
        "compile_saved_s": prog.compiled_in_s if prog.cached else 0.0,
        "run_s": t_run, "bytes_sent": written, "peak_rss": _peak_rss(),
    }  # fmt: skip
    reply = {"ok": True, "share_blobs": out_counts, "stats": stats}
    if deliver is not None:
        deliver(reply, out_blobs)
        return None
    return reply, out_blobs


def spool_root() -> Path:
    """Return where a party makes its private spool directories (``WERKPLAATS_SPOOL_DIR`` or the temp dir)."""
    return Path(os.environ.get("WERKPLAATS_SPOOL_DIR") or tempfile.gettempdir())


def _check_bucket(head: dict[str, Any], blobs: list[bytes], index: int, inputs: int) -> list[Any]:
    """Return a bucket message's shares; raise ValueError when it is not bucket `index` with `inputs` shares."""
    if head.get("cmd") != Command.BUCKET or head.get("index") != index:
        msg = f"expected bucket {index}, got another message"
        raise ValueError(msg)
    counts = head.get("share_blobs")
    if not isinstance(counts, list) or len(counts) != inputs or sum(int(c) for c in counts) != len(blobs):
        msg = f"bucket {index}: expected {inputs} input shares in the message's blobs"
        raise ValueError(msg)
    return wire.unpack_shares([int(c) for c in counts], blobs)


def _run_bucketed(rank: int, header: PartyHeader, blobs: list[bytes], cache: ProgramCache, barrier: Any,
                  deliver: Any, recv: Callable[[], Message]) -> Message | None:  # fmt: skip
    """Run a bucketed job: every stage over every bucket, combined inside the MPC (compile/staged.py)."""
    import spu

    staged = load_staged(header, cache)  # NB: every stage's programs, before the barrier
    key_part = _key_part(blobs.pop()) if header.key_part else None
    if blobs:
        msg = "a bucketed job's run message carries no input shares"
        raise ValueError(msg)
    if staged.key_inputs and key_part is None:
        msg = "the program perturbs counts but this party was given no part of the perturbation key"
        raise ValueError(msg)
    if barrier is not None:
        barrier()
    scaled = header.workers > 1  # NB: scale-out (mpc/scaleout.py): the workers read the buckets from the spool
    spooled = len(staged.stages) > 1 or scaled
    spool = Path(tempfile.mkdtemp(prefix="werkplaats-buckets-", dir=spool_root())) if spooled else None
    if spool is not None:  # NB: mkdtemp makes it 0700: this party's user only
        log.info("job %s: %d buckets, %d stages; spooling to %s", header.job, header.buckets, len(staged.stages), spool)
    try:
        with _linked(rank, header) as link:
            w0 = _io_written()
            t1 = time.perf_counter()
            rt = spu.Runtime(link, runtime_config(staged.precision))
            state: list[Any] = []
            if staged.key_inputs:
                assert key_part is not None
                state = exchange_key_parts(link, rank, key_part, staged.precision)
            if scaled:
                from .scaleout import job_stats, run_stages

                stage_s = run_stages(rank, rt, header, staged, state, recv, spool)
            else:
                stage_s = _run_stages(rt, header, staged, state, recv, spool)
            outs = state
            t_run = time.perf_counter() - t1
            written = _io_written() - w0
            del rt
            out_counts, out_blobs = wire.pack_shares(outs)
            stats = {
                "compile_s": staged.compile_s, "program_cached": staged.cached,
                "compile_saved_s": staged.compiled_in_s if staged.cached else 0.0,
                "run_s": t_run, "bytes_sent": written, "peak_rss": _peak_rss(),
                "buckets": header.buckets, "stages": len(staged.stages), "stage_s": stage_s,
            }  # fmt: skip
            if scaled:
                stats.update(job_stats.pop(header.job, {}))
            reply = {"ok": True, "share_blobs": out_counts, "stats": stats}
            if deliver is not None:
                deliver(reply, out_blobs)
                return None
            return reply, out_blobs
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


def _run_stages(rt: Any, header: PartyHeader, staged: Staged, state: list[Any], recv: Callable[[], Message],
                spool: Path | None) -> list[float]:  # fmt: skip
    """Run every stage over every bucket; leave the outputs in `state` (replaced in place); return seconds per stage."""

    def run(p: Program, args: list[Any]) -> list[Any]:
        for name, v in zip(p.exe.input_names, args, strict=True):
            rt.set_var(name, v)
        rt.run(p.exe)
        out = [rt.get_var(name) for name in p.exe.output_names]
        for name in (*p.exe.input_names, *p.exe.output_names):
            rt.del_var(name)  # NB: a bucket's shares go as soon as its partial is taken
        return out

    times = []
    for si, st in enumerate(staged.stages):
        t0 = time.perf_counter()
        acc: list[Any] | None = None
        for b in range(header.buckets):
            if si == 0:
                head, blobs = recv()
                shares = _check_bucket(head, blobs, b, staged.inputs)
                if spool is not None:
                    with open(spool / f"{b}.bucket", "wb", opener=_private) as out:
                        wire.send(out, head, blobs)
                del blobs
            else:
                assert spool is not None
                with open(spool / f"{b}.bucket", "rb") as f:
                    head, blobs = wire.recv(f)
                shares = _check_bucket(head, blobs, b, staged.inputs)
                del blobs
            part = run(st.partial, [*shares, *state])
            del shares
            acc = part if acc is None else run(st.combine, [*acc, *part])
        assert acc is not None
        state[:] = run(st.step, [*acc, *state])
        times.append(time.perf_counter() - t0)
        log.info("job %s: stage %s over %d buckets in %.1f s", header.job, st.name, header.buckets, times[-1])
    return times


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def main(argv: list[str] | None = None) -> int:
    """Serve jobs until told to stop or the channel closes."""
    p = argparse.ArgumentParser(prog="werkplaats-party")
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--in-fd", type=int, required=True)
    p.add_argument("--out-fd", type=int, required=True)
    p.add_argument("--cache-dir", type=Path, default=None, help="keep compiled programs here too")
    args = p.parse_args(argv)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # NB: the parent decides when we stop
    _log_to_stderr(args.rank)
    enable_x64()
    import spu  # noqa: F401  (fail early, before announcing readiness)

    cache = ProgramCache(args.cache_dir)
    fin = os.fdopen(args.in_fd, "rb", buffering=1 << 20)
    fout = os.fdopen(args.out_fd, "wb", buffering=1 << 20)
    wire.send(fout, {"cmd": Command.READY.value, "rank": args.rank, "pid": os.getpid()})
    while True:
        try:
            head, blobs = wire.recv(fin)
        except wire.WireClosed:
            return 0
        cmd = head.get("cmd")
        if cmd == Command.STOP:
            return 0
        if cmd != Command.RUN:
            wire.send(fout, {"ok": False, "error": f"unknown command {cmd!r}"})
            continue
        try:
            header = PartyHeader.from_dict(head)
        except ValueError as e:
            wire.send(fout, {"ok": False, "error": str(e), "job": head.get("job")})
            continue

        def barrier(h: PartyHeader = header) -> None:
            if not h.barrier:
                return
            wire.send(fout, {"cmd": Command.COMPILED.value})
            go, _ = wire.recv(fin)
            if go.get("cmd") != Command.LINK:
                msg = "job cancelled before linking"
                raise RuntimeError(msg)

        def deliver(reply: dict[str, Any], out: list[bytes], h: PartyHeader = header) -> None:
            wire.send(fout, {**reply, "job": h.job}, out)
            wire.recv(fin)  # NB: the engine says when every party is done; only then the link closes

        def next_message() -> Message:
            return wire.recv(fin)

        try:
            res = run_job(args.rank, header, blobs, cache, barrier, deliver if header.barrier else None, next_message)
        except Exception as e:  # NB: report, never crash the loop; messages carry no data
            traceback.print_exc(file=sys.stderr)
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}, []
        if res is None:
            return 0  # NB: a service job: one job per process
        reply, out = res
        wire.send(fout, {**reply, "job": header.job}, out)


log = logging.getLogger("werkplaats.party")


def _log_to_stderr(rank: int) -> None:
    """Send werkplaats' party log (job timings, program keys; never data) to stderr, the party's log file."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s party{rank} %(levelname)s %(message)s"))
    log = logging.getLogger("werkplaats.party")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


if __name__ == "__main__":
    sys.exit(main())
