"""The benchmarks' latency relay (bench/relay.py) and size option: what the WAN numbers rest on."""

from __future__ import annotations

import socket
import threading

import pytest
import typer
from bench.relay import LinkRelay, measure_rtt

from werkplaats.cli.bench import _rtts, _sizes


def _echo_server() -> tuple[socket.socket, str]:
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while b := conn.recv(65536):
                conn.sendall(b)

    threading.Thread(target=serve, daemon=True).start()
    return srv, "{}:{}".format(*srv.getsockname()[:2])


def test_relay_forwards_every_byte_in_order() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, in many writes
    srv, target = _echo_server()
    with LinkRelay(0.002) as relay:
        host, port = relay.forward(0, 1, target).rsplit(":", 1)
        got = bytearray()
        with socket.create_connection((host, int(port))) as c:
            for i in range(0, len(payload), 10_000):
                c.sendall(payload[i : i + 10_000])
            c.shutdown(socket.SHUT_WR)
            while b := c.recv(65536):
                got += b
    srv.close()
    assert bytes(got) == payload
    assert relay.bytes == 2 * len(payload)  # NB: both directions pass the relay


def test_relay_adds_the_delay_each_way() -> None:
    with LinkRelay(0.005) as relay:
        rtt = measure_rtt(relay, rounds=10)
    with LinkRelay(0.0) as direct:
        base = measure_rtt(direct, rounds=10)
    assert rtt >= 0.010 > base


def test_relay_gives_each_rank_its_own_listening_address_and_relays_for_its_peers() -> None:
    listen = ("127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003")
    with LinkRelay(0.0) as relay:
        views = relay.addrs(listen)
    assert [v[i] for i, v in enumerate(views)] == list(listen)
    peers = [v[j] for i, v in enumerate(views) for j in range(3) if j != i]
    assert len(set(peers)) == 6 and not set(peers) & set(listen)


def test_bench_sizes_and_rtts_read_suffixes() -> None:
    assert _sizes("10K, 100K,1M,10M,2_500") == [10_000, 100_000, 1_000_000, 10_000_000, 2500]
    assert _rtts("direct,10") == (None, 10.0)
    with pytest.raises(typer.BadParameter):
        _sizes("ten")
