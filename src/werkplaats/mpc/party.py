"""A compute party: one SPU runtime in its own OS process.

Run as ``python -m werkplaats.mpc.party --rank R --in-fd A --out-fd B``. It takes
jobs (a plan, public metadata, its shares and the peers' addresses) over a framed
channel, compiles the plan itself, runs it with its two peers over brpc, returns
its shares of the outputs, and drops all job state afterwards.

Security model: the party sees only its replicated shares; it verifies nothing
about data owners yet (approvals come with the workspace services).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any

from . import wire
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


def _compile(fn: Any, args: list[Any]) -> Any:
    from spu import libspu
    from spu.utils import frontend

    names = [f"in{i}" for i in range(len(args))]
    exe, _ = frontend.compile(
        frontend.Kind.JAX, fn, args, {}, names, [libspu.Visibility.VIS_SECRET] * len(args),
        lambda outs: [f"out{i}" for i in range(len(outs))],
    )  # fmt: skip
    return exe


def sort_yardstick(size: int) -> Any:
    """Return the built-in benchmark program: a secret sort of `size` distinct keys."""
    import jax

    def fn(keys: Any, payload: Any) -> tuple[Any, Any]:
        k, p = jax.lax.sort([keys, payload], num_keys=1)
        return k[:1], p[:1]

    shape = jax.ShapeDtypeStruct((size,), "int64")
    return _compile(fn, [shape, shape])


def compile_plan(header: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Compile a job's plan to an SPU executable; return it and the input slots."""
    import jax

    from ..catalog.serde import catalog_from_dict
    from ..compile.analyze import analyze
    from ..compile.spu import build_program
    from ..plan.serde import plan_from_json
    from .encode import layout

    a = analyze(plan_from_json(header["plan"]), catalog_from_dict(header["catalog"]))
    slots = layout(a, header["rows"])
    fn = build_program(a, slots, header["rows"])
    return _compile(fn, [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in slots]), slots


def run_job(rank: int, header: dict[str, Any], blobs: list[bytes], barrier: Any = None,
            deliver: Any = None) -> tuple[dict[str, Any], list[bytes]] | None:  # fmt: skip
    """Run one job and return the reply header and blobs.

    barrier, when given, is called after compiling and before linking to the peers; deliver,
    when given, receives the reply while the link is still open and returns once every party
    is done (then None is returned). The engine service uses both, so that the three parties
    open their links together and close them only when none of them is still talking: brpc
    over TLS aborts a process that reads an unexpected end of a connection (apache/brpc#3307).
    """
    import spu
    from spu import libspu

    t0 = time.perf_counter()
    if header.get("program") == "sort_yardstick":
        exe, slots = sort_yardstick(int(header["size"])), [None, None]
    else:
        exe, slots = compile_plan(header)
    t_compile = time.perf_counter() - t0
    counts = header["share_blobs"]
    shares, pos = [], 0
    for c in counts:
        shares.append(wire.unpack_share(blobs[pos : pos + c]))
        pos += c
    if len(shares) != len(slots):
        msg = f"expected {len(slots)} input shares, got {len(shares)}"
        raise ValueError(msg)
    if barrier is not None:
        barrier()
    desc = libspu.link.Desc()
    desc.id = header["job"]
    for i, addr in enumerate(header["addrs"]):
        desc.add_party(f"party{i}", addr)
    desc.recv_timeout_ms = int(header.get("recv_timeout_ms", 600_000))
    desc.connect_retry_times = 120
    desc.connect_retry_interval_ms = 250
    desc.http_max_payload_size = 256 * 1024 * 1024
    tls = header.get("tls")
    if tls:  # NB: mutual TLS between the parties, with the workspace CA only
        desc.enable_ssl = True
        # NB: brpc's pooled connections can abort the process on an SSL EOF (apache/brpc#3307); one
        # connection per peer avoids that path.
        desc.brpc_channel_connection_type = "single"
        for opts in (desc.server_ssl_opts, desc.client_ssl_opts):
            opts.cert.certificate_path = tls["cert"]
            opts.cert.private_key_path = tls["key"]
            opts.verify.ca_file_path = tls["ca"]
            opts.verify.verify_depth = 1
    _reset_peak_rss()
    w0 = _io_written()
    t1 = time.perf_counter()
    link = libspu.link.create_brpc(desc, rank)
    try:
        rt = spu.Runtime(link, runtime_config())
        for name, s in zip(exe.input_names, shares, strict=True):
            rt.set_var(name, s)
        del shares, blobs
        rt.run(exe)
        outs = [rt.get_var(name) for name in exe.output_names]
        t_run = time.perf_counter() - t1
        written = _io_written() - w0
        del rt  # NB: releases every share of this job
        out_blobs: list[bytes] = []
        out_counts = []
        for s in outs:
            b = wire.pack_share(s)
            out_counts.append(len(b))
            out_blobs.extend(b)
        stats = {"compile_s": t_compile, "run_s": t_run, "bytes_sent": written, "peak_rss": _peak_rss()}
        reply = {"ok": True, "share_blobs": out_counts, "stats": stats}
        if deliver is not None:
            deliver(reply, out_blobs)
            return None
        return reply, out_blobs
    finally:
        link.stop_link()


def main(argv: list[str] | None = None) -> int:
    """Serve jobs until told to stop or the channel closes."""
    p = argparse.ArgumentParser(prog="werkplaats-party")
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--in-fd", type=int, required=True)
    p.add_argument("--out-fd", type=int, required=True)
    args = p.parse_args(argv)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # NB: the coordinator decides when we stop
    enable_x64()
    import spu  # noqa: F401  (fail early, before announcing readiness)

    fin = os.fdopen(args.in_fd, "rb", buffering=1 << 20)
    fout = os.fdopen(args.out_fd, "wb", buffering=1 << 20)
    wire.send(fout, {"ready": True, "rank": args.rank, "pid": os.getpid()})
    while True:
        try:
            header, blobs = wire.recv(fin)
        except wire.WireClosed:
            return 0
        cmd = header.get("cmd")
        if cmd == "stop":
            return 0
        if cmd != "run":
            wire.send(fout, {"ok": False, "error": f"unknown command {cmd!r}"})
            continue

        def barrier(h: dict[str, Any] = header) -> None:
            if not h.get("barrier"):
                return
            wire.send(fout, {"compiled": True})
            go, _ = wire.recv(fin)
            if go.get("cmd") != "link":
                msg = "job cancelled before linking"
                raise RuntimeError(msg)

        def deliver(reply: dict[str, Any], out: list[bytes], h: dict[str, Any] = header) -> None:
            wire.send(fout, {**reply, "job": h.get("job")}, out)
            wire.recv(fin)  # NB: the engine says when every party is done; only then the link closes

        try:
            res = run_job(args.rank, header, blobs, barrier, deliver if header.get("barrier") else None)
        except Exception as e:  # NB: report, never crash the loop; messages carry no data
            traceback.print_exc(file=sys.stderr)
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}, []
        if res is None:
            return 0  # NB: a service job: one job per process
        reply, out = res
        wire.send(fout, {**reply, "job": header.get("job")}, out)


if __name__ == "__main__":
    sys.exit(main())
