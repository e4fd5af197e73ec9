"""`werkplaats datastation bucket-key ...`: messages, exit codes and closing, on a stand-in for the key store.

The real store and hub are tests/workspace/test_bucketkey.py's (the command end to end is its last test,
on a whole workspace); here every command's output, its error exit and the store's close are pinned down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from werkplaats.cli.app import app
from werkplaats.exceptions import WerkplaatsError

runner = CliRunner()
LISTED = [{"version": 2, "creator": "ggd", "created": "2026-11-30T10:00:00.123456", "recipients": ["ggd", "ha"]}]


class Keys:
    """A stand-in for workspace.bucketkey.BucketKeys that records its calls and fails where told."""

    def __init__(self, fail: str = "", error: type[Exception] = WerkplaatsError, listed: Any = LISTED) -> None:
        self.fail, self.error, self.closed = fail, error, 0
        self.calls: list[str] = []
        self.station = self
        self.hub = self
        self.listed = listed

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail:
            raise self.error(f"{name} went wrong")

    def publish_encryption_key(self) -> str:
        self._call("publish")
        return "x25519:abcd"

    def create(self, collaboration: str) -> int:
        self._call(f"create {collaboration}")
        return 3

    def fetch(self, collaboration: str, version: int | None) -> int:
        self._call(f"fetch {collaboration} {version}")
        return version or 4

    def get(self, path: str) -> Any:
        self._call(f"get {path}")
        return self.listed

    def versions(self, collaboration: str) -> list[int]:
        self._call(f"versions {collaboration}")
        return [2]

    def close(self) -> None:
        self.closed += 1
        self._call("close")


def invoke(monkeypatch: pytest.MonkeyPatch, keys: Keys | Exception, *args: str) -> Any:
    from werkplaats.workspace import bucketkey, config

    def opened(cfg: Any) -> Keys:
        assert cfg == ("loaded", Path("ds.toml"))
        if isinstance(keys, Exception):
            raise keys
        return keys

    monkeypatch.setattr(config.DatastationConfig, "load", staticmethod(lambda path: ("loaded", path)))
    monkeypatch.setattr(bucketkey.BucketKeys, "from_config", staticmethod(opened))
    return runner.invoke(app, ["datastation", "bucket-key", *args, "--config", "ds.toml"])


COMMANDS = {
    "publish": ([], "published encryption key x25519:abcd\n", ["publish"]),
    "create": (["--collaboration", "pp/1"], "created version 3 of pp/1's bucket key; sealed to each member with data\n",
               ["create pp/1"]),
    "rotate": (["--collaboration", "pp"], "rotated to version 3 of pp's bucket key; sealed to each member with data\n",
               ["create pp"]),
    "fetch": (["--collaboration", "pp", "--version", "2"], "version 2 of pp's bucket key checked and kept\n",
              ["fetch pp 2"]),
    "list": (["--collaboration", "pp/1"],
             "v2    by ggd            2026-11-30T10:00:00  held here  to: ggd, ha\n",
             ["get /collaborations/pp%2F1/bucket-keys", "versions pp/1"]),
}  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_says_what_it_did_and_closes_the_store_once(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    args, said, calls = COMMANDS[command]
    keys = Keys()
    out = invoke(monkeypatch, keys, command, *args)
    assert (out.exit_code, out.stdout, out.stderr) == (0, said, "")
    assert keys.calls == [*calls, "close"] and keys.closed == 1


def test_list_without_versions_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    out = invoke(monkeypatch, Keys(listed=[]), "list", "--collaboration", "pp")
    assert (out.exit_code, out.stdout) == (0, "pp has no bucket key yet\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_failed_step_exits_1_with_its_error_says_nothing_done_and_still_closes(
    monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    args, _, calls = COMMANDS[command]
    keys = Keys(fail=calls[-1])
    out = invoke(monkeypatch, keys, command, *args)
    assert (out.exit_code, out.stdout, out.stderr) == (1, "", f"error: {calls[-1]} went wrong\n")
    assert keys.calls == [*calls, "close"] and keys.closed == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_a_failed_close_is_an_error_too(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    args, said, _ = COMMANDS[command]
    out = invoke(monkeypatch, Keys(fail="close"), command, *args)
    said = said if command == "publish" else ""  # NB: publish says the key's id before closing; the others after
    assert (out.exit_code, out.stdout, out.stderr) == (1, said, "error: close went wrong\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_that_does_not_open_exits_1_naming_why(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    args, _, _ = COMMANDS[command]
    out = invoke(monkeypatch, WerkplaatsError("datastation.toml: no state_dir"), command, *args)
    assert (out.exit_code, out.stdout, out.stderr) == (1, "", "error: datastation.toml: no state_dir\n")


def test_an_unexpected_error_is_not_turned_into_a_clean_exit_and_the_store_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = Keys(fail="fetch pp None", error=RuntimeError)
    out = invoke(monkeypatch, keys, "fetch", "--collaboration", "pp")
    assert isinstance(out.exception, RuntimeError) and out.exit_code == 1 and "error:" not in out.stderr
    assert keys.closed == 1


def test_the_config_option_is_required() -> None:
    out = runner.invoke(app, ["datastation", "bucket-key", "publish"])
    assert out.exit_code == 2 and "--config" in out.stderr
