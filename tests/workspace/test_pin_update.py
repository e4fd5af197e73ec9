"""An engine's key replaced: the datastation's operator updates the pin in datastation.toml (in process, TLS).

With the updated pin the datastation reaches the engine's new key and refuses the old one (which an
attacker may hold); with the old pin it is the other way round.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from werkplaats.mpc.process import free_port
from werkplaats.workspace import pki
from werkplaats.workspace.config import DatastationConfig
from werkplaats.workspace.http import Client, serve
from werkplaats.workspace.pki import TLSFiles


def _engine_key(root: Path, where: str) -> tuple[Path, Path]:
    """An "engine0" certificate with a key of its own, issued by the workspace CA in root/pki."""
    d = root / where
    d.mkdir()
    for f in ("ca.crt", "ca.key"):
        shutil.copy(root / "pki" / f, d / f)
    return pki.issue(d, "engine0")


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two servers answering as engine0: one with the old key, one with the new; their URLs and certificates."""
    pki.init_ca(tmp_path / "pki")
    pki.issue(tmp_path / "pki", "ds-ggd")
    out: dict[str, Any] = {}
    servers = []
    for which in ("old", "new"):
        cert, key = _engine_key(tmp_path, which)
        app = FastAPI()
        app.get("/health")(lambda which=which: {"party": 0, "key": which})
        port = free_port()
        servers.append(serve(app, "127.0.0.1", port, TLSFiles(tmp_path / "pki" / "ca.crt", cert, key), background=True))
        out[which] = {"url": f"https://127.0.0.1:{port}", "cert": cert}
    for s in servers:
        deadline = time.monotonic() + 30
        while not s.started and time.monotonic() < deadline:
            time.sleep(0.05)
    yield out
    for s in servers:
        s.should_exit = True


def _toml(root: Path, url: str, pin: str) -> Path:
    if not (root / "ggd.key").exists():
        pki.new_signing_key(root / "ggd.key")
    others = "".join(
        f'[[engines]]\nparty = {p}\nurl = "https://127.0.0.1:9"\nspki_sha256 = "{"0" * 64}"\n' for p in (1, 2)
    )
    text = ('[datastation]\nname = "ds-ggd"\norganisation = "ggd"\nhub = "https://127.0.0.1:9"\ntoken = "t"\n'
            'signing_key = "ggd.key"\nstate_dir = "state"\n'
            '[tls]\nca = "pki/ca.crt"\ncert = "pki/ds-ggd.crt"\nkey = "pki/ds-ggd.key"\n'
            f'[[engines]]\nparty = 0\nurl = "{url}"\nspki_sha256 = "{pin}"\n' + others)  # fmt: skip
    (root / "datastation.toml").write_text(text)
    return root / "datastation.toml"


def _reach(cfg: DatastationConfig, url: str) -> str:
    """Ask the engine at url for its health over the datastation's pinned connection for party 0."""
    c = Client(url, token="", tls=cfg.tls, pin=cfg.engines[0].spki_sha256)
    try:
        return str(c.http.get("/health").json()["key"])
    finally:
        c.close()


def test_an_updated_engine_pin_accepts_the_new_key_and_refuses_the_old(engines: dict[str, Any], tmp_path: Path) -> None:
    old_fp, new_fp = pki.fingerprint(engines["old"]["cert"]), pki.fingerprint(engines["new"]["cert"])
    assert old_fp != new_fp
    before = DatastationConfig.load(_toml(tmp_path, engines["old"]["url"], old_fp))
    assert _reach(before, engines["old"]["url"]) == "old"
    with pytest.raises(pki.PinError, match="not its pinned key"):
        _reach(before, engines["new"]["url"])  # NB: the engine's new key is not accepted until the operator pins it
    # the operator's procedure: `werkplaats pki fingerprint engine0.crt` of the new certificate, the pin edited
    # in datastation.toml (here also the URL, as when the engine moves), the datastation restarted
    path = tmp_path / "datastation.toml"
    path.write_text(path.read_text().replace(old_fp, new_fp).replace(engines["old"]["url"], engines["new"]["url"]))
    after = DatastationConfig.load(path)
    assert after.engines[0].spki_sha256 == new_fp
    assert _reach(after, engines["new"]["url"]) == "new"
    # the attacker holding the old engine key (and a workspace certificate for "engine0") is refused
    with pytest.raises(pki.PinError, match="not its pinned key"):
        _reach(after, engines["old"]["url"])
