"""Engines and datastations in their own network namespaces: nothing assumes a single host."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import werkplaats as wp
from werkplaats.demo.workspace import COLLABORATION, LocalWorkspace
from werkplaats.synth.write import load_region

from .live import PURPOSE, analysis, approve_all, assert_like_truth, truth

NODES = ("engine0", "engine1", "engine2", "ds-ggd", "ds-huisartsen")
SUBNET = "10.213.7"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def network() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:5]
    bridge = f"wpbr{tag}"
    spaces = {nd: f"wp-{tag}-{nd}" for nd in NODES}
    try:
        _ip("netns", "add", f"wp-{tag}-probe")
        _ip("netns", "del", f"wp-{tag}-probe")
    except (OSError, subprocess.CalledProcessError) as e:
        detail = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
        pytest.skip(f"network namespaces are not permitted here (`ip netns add` failed: {detail})")
    made: list[tuple[str, ...]] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(("link", "del", bridge))
        _ip("addr", "add", f"{SUBNET}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        hosts = {"hub": f"{SUBNET}.1"}
        for i, (nd, ns) in enumerate(spaces.items()):
            host_if, peer = f"wpv{tag}{i}", f"wpp{tag}{i}"
            _ip("netns", "add", ns)
            made.append(("netns", "del", ns))
            _ip("link", "add", host_if, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", ns)
            _ip("link", "set", host_if, "master", bridge)
            _ip("link", "set", host_if, "up")
            addr = f"{SUBNET}.{10 + i}"
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", peer)
            _ip("-n", ns, "link", "set", peer, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts[nd] = addr
        yield {"hosts": hosts, "netns": spaces}  # type: ignore[misc]
    finally:
        for cmd in reversed(made):
            subprocess.run(["ip", *cmd], capture_output=True)


def test_engines_and_datastations_in_separate_namespaces(network: dict, tmp_path: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws", persons=6000, organisations=("ggd", "huisartsen"),
                        hosts=network["hosts"], netns=network["netns"])  # fmt: skip
    try:
        ws.start()
        c = wp.connect(ws.hub_url, token=ws.tokens["analist"], ca=ws.pki / "ca.crt", cert=ws.pki / "client.crt",
                       key=ws.pki / "client.key")  # fmt: skip
        req = c.submit(analysis(), collaboration=COLLABORATION, purpose=PURPOSE)
        approve_all(ws, req.id)
        got = req.run(timeout=600)
        region = load_region(ws.region)
        assert_like_truth(got, truth(region.tables, region.catalog))
        job = c.client.get(f"/jobs/{req.refresh()['jobs'][-1]['id']}")
        assert {f"engine{i}" for i in range(3)} <= set(job["progress"])
        assert ws.hub_url.startswith(f"https://{SUBNET}.1:")
    finally:
        ws.stop()
