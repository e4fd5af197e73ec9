"""A TCP relay that delays the parties' link traffic, to simulate a WAN between them.

The kernel here has no `netem`, so latency is added in user space: every byte a party
sends to a peer goes through a relay that holds each chunk for ``delay_s`` before
forwarding it, in both directions of the connection (so a round trip costs ``2 * delay_s``
more). Order is kept (one queue per direction) and bandwidth is not limited on purpose:
the relay reads in chunks of up to 1 MiB and forwards them as fast as the loop can, which
on this machine is well above what the parties send (it costs some CPU on the shared
cores; run it with ``delay_s=0`` to measure that overhead alone).

One relay per ordered pair of parties: party j dials peer i at relay (j, i), which forwards
to i's listening address. `LinkRelay.addrs` is the `LocalCluster` ``link_addrs`` hook::

    with LinkRelay(delay_s=0.005) as relay, LocalCluster(link_addrs=relay.addrs) as cluster:
        run_mpc(a, tables, cluster=cluster)

The relay sees only what crosses the parties' links (shares and protocol messages, no
clear data); it keeps nothing and logs no payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from types import TracebackType

CHUNK = 1 << 20


class LinkRelay:
    """Forward each party's link connections to its peers with an added one-way delay."""

    def __init__(self, delay_s: float = 0.005, *, host: str = "127.0.0.1") -> None:
        self.delay_s = float(delay_s)
        self.host = host
        self.bytes = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link-relay", daemon=True)
        self._servers: dict[tuple[int, int], tuple[asyncio.Server, str]] = {}
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------

    def __enter__(self) -> LinkRelay:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Start the relay's event loop in a background thread."""
        if not self._thread.is_alive():
            self._thread.start()

    def close(self) -> None:
        """Stop every forwarder and the loop."""
        if not self._thread.is_alive():
            return

        async def stop() -> None:
            for server, _ in self._servers.values():
                server.close()
            self._servers.clear()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # --- the LocalCluster hook ---------------------------------------------------

    def addrs(self, listen: tuple[str, ...]) -> list[tuple[str, ...]]:
        """Return, for each rank, its address list: its own listening address, and a relay for each peer."""
        self.start()
        for (src, dst), (server, _) in list(self._servers.items()):  # NB: a new job: new listening ports
            asyncio.run_coroutine_threadsafe(self._drop(src, dst, server), self._loop).result(10)
        views = []
        for me in range(len(listen)):
            view = list(listen)
            for peer in range(len(listen)):
                if peer != me:
                    view[peer] = self.forward(me, peer, listen[peer])
            views.append(tuple(view))
        return views

    def forward(self, src: int, dst: int, target: str) -> str:
        """Listen on a fresh port; forward each connection to target with the delay; return host:port."""
        fut = asyncio.run_coroutine_threadsafe(self._serve(target), self._loop)
        server, addr = fut.result(10)
        with self._lock:
            self._servers[(src, dst)] = (server, addr)
        return addr

    async def _drop(self, src: int, dst: int, server: asyncio.Server) -> None:
        server.close()
        with self._lock:
            self._servers.pop((src, dst), None)

    async def _serve(self, target: str) -> tuple[asyncio.Server, str]:
        host, port = target.rsplit(":", 1)

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                ur, uw = await _connect(host, int(port))
            except OSError:
                w.close()
                return
            with contextlib.suppress(asyncio.CancelledError):  # NB: close() cancels open connections
                await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w), return_exceptions=True)
            for writer in (w, uw):
                writer.close()

        server = await asyncio.start_server(handle, self.host, 0)
        sock = server.sockets[0].getsockname()
        return server, f"{sock[0]}:{sock[1]}"

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        """Copy r to w, each chunk due delay_s after it was read; in order; then half-close w."""
        q: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def out() -> None:
            while True:
                due, data = await q.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                w.write(data)
                await w.drain()
                self.bytes += len(data)

        sender = asyncio.create_task(out())
        try:
            while data := await r.read(CHUNK):
                q.put_nowait((loop.time() + self.delay_s, data))
        except (ConnectionError, OSError):
            pass
        finally:
            q.put_nowait((0.0, b""))
            with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
                await sender
                if w.can_write_eof():  # NB: a half-close; the other direction may still be talking
                    w.write_eof()


async def _connect(host: str, port: int, tries: int = 200) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a party that may not listen yet (it is still compiling), as the party itself would retry."""
    for i in range(tries):
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            if i == tries - 1:
                raise
            await asyncio.sleep(0.25)
    raise OSError  # pragma: no cover


def measure_rtt(relay: LinkRelay, rounds: int = 50) -> float:
    """Return the median round trip of a 1-byte ping-pong through the relay, in seconds."""
    import socket

    srv = socket.create_server((relay.host, 0))
    target = "{}:{}".format(*srv.getsockname()[:2])

    def echo() -> None:
        conn, _ = srv.accept()
        with conn:
            while b := conn.recv(1):
                conn.sendall(b)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    addr = relay.forward(-1, -1, target)
    h, p = addr.rsplit(":", 1)
    times: list[float] = []
    with socket.create_connection((h, int(p))) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            t0 = time.perf_counter()
            c.sendall(b"x")
            c.recv(1)
            times.append(time.perf_counter() - t0)
    srv.close()
    return sorted(times)[len(times) // 2]
