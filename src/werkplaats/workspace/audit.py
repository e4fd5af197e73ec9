"""The audit log (verwerkingsregister): hash-chained entries, each signed by the node that wrote it.

An entry is ``{seq, ts, node, actor, action, subject, details, prev, hash, signature}``:
``hash`` is the SHA-256 of the canonical JSON of the fields before it, ``prev`` the hash of
the entry before (64 zeros for the first), ``signature`` the writer's Ed25519 signature
over ``hash``. Changing an entry breaks its hash; removing or reordering one breaks the
sequence and the chain; forging one needs the writer's key. The hub keeps the
workspace's chain in its database; each datastation keeps its own chain of its
contributions in a JSON-lines file, so the two can be compared.

Actions: request, approval, rejection, job-created, job-start, contribution, job-end,
result-release.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import pki
from .signing import canonical, now, sha256

FIELDS = ("seq", "ts", "node", "actor", "action", "subject", "details", "prev")
GENESIS = "0" * 64


def entry_hash(e: dict[str, Any]) -> str:
    """Return the hash of an entry: SHA-256 of the canonical JSON of its chained fields."""
    return sha256(canonical({k: e[k] for k in FIELDS}))


def make_entry(
    prev: dict[str, Any] | None, *, node: str, actor: str, action: str, subject: str, details: dict[str, Any], key: Any
) -> dict[str, Any]:
    """Return the next entry of a chain, hashed and signed."""
    e: dict[str, Any] = {
        "seq": (prev["seq"] + 1) if prev else 1,
        "ts": now().isoformat(),
        "node": node,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev["hash"] if prev else GENESIS,
    }
    e["hash"] = entry_hash(e)
    e["signature"] = pki.sign(key, e["hash"].encode())
    return e


def verify_chain(entries: list[dict[str, Any]], keys: dict[str, str]) -> list[str]:
    """Return every problem found in a chain (empty when it is intact).

    keys maps node names (and organisation names, for contributions signed by a
    datastation) to their Ed25519 public keys.
    """
    problems: list[str] = []
    prev_hash = GENESIS
    expected = 1
    seen: set[int] = set()
    for pos, e in enumerate(entries, 1):
        seq = e.get("seq")
        if not isinstance(seq, int):
            problems.append(f"position {pos}: entry without a sequence number")
            continue
        if seq in seen or seq < expected:
            problems.append(f"entry {seq}: out of order (found at position {pos}, after entry {expected - 1})")
        elif seq > expected:
            missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected}-{seq - 1}"
            problems.append(f"{missing} removed (entry {seq} follows entry {expected - 1})")
        seen.add(seq)
        if entry_hash(e) != e.get("hash"):
            problems.append(f"entry {seq}: changed (its content does not match its hash)")
        elif e.get("prev") != prev_hash and seq == expected:
            problems.append(f"entry {seq}: does not link to the entry before it")
        key = keys.get(e.get("node", ""))
        if key is None:
            problems.append(f"entry {seq}: written by unknown node {e.get('node')!r}")
        elif not pki.verify(key, str(e.get("hash", "")).encode(), e.get("signature", "")):
            problems.append(f"entry {seq}: signature of {e.get('node')!r} does not verify")
        signed = e.get("details", {}).get("signed")
        if isinstance(signed, dict):
            okey = keys.get(signed.get("organisation", ""))
            if okey is None or not pki.verify(okey, canonical(signed.get("record")), signed.get("signature", "")):
                problems.append(f"entry {seq}: the contribution record's signature does not verify")
        prev_hash = str(e.get("hash"))
        expected = max(expected, seq + 1)
    return problems


class FileLog:
    """An append-only, hash-chained JSON-lines log (a datastation's own contribution log)."""

    def __init__(self, path: str | Path, node: str, key: Any) -> None:
        self.path = Path(path)
        self.node = node
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def entries(self) -> list[dict[str, Any]]:
        """Return the log's entries, in order."""
        return read_jsonl(self.path)

    def append(self, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> dict[str, Any]:
        """Chain, sign and append an entry (under a file lock); return it."""
        with self.path.open("a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
            prev = json.loads(lines[-1]) if lines else None
            e = make_entry(
                prev, node=self.node, actor=actor, action=action, subject=subject, details=details, key=self.key
            )
            f.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
        return e


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Return the entries of a JSON-lines log file."""
    return [json.loads(ln) for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]


REGISTER_COLUMNS = (
    "seq",
    "ts",
    "action",
    "actor",
    "node",
    "subject",
    "request",
    "job",
    "collaboration",
    "purpose",
    "datasets",
    "columns",
    "approved_by",
    "detail",
)


def register_rows(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten audit entries into processing-register rows for a privacy officer."""
    rows = []
    for e in entries:
        d = e.get("details", {})
        cols = d.get("columns") or {}
        rows.append(
            {
                "seq": e["seq"],
                "ts": e["ts"],
                "action": e["action"],
                "actor": e["actor"],
                "node": e["node"],
                "subject": e["subject"],
                "request": d.get("request", ""),
                "job": d.get("job", ""),
                "collaboration": d.get("collaboration", ""),
                "purpose": d.get("purpose", ""),
                "datasets": ";".join(d.get("datasets", [])),
                "columns": ";".join(f"{k}:{','.join(v)}" for k, v in sorted(cols.items())),
                "approved_by": ";".join(d.get("approved_by", [])),
                "detail": d.get("detail", ""),
            }
        )
    return rows


def export(entries: list[dict[str, Any]], fmt: str) -> str:
    """The processing register as CSV or JSON text."""
    rows = register_rows(entries)
    if fmt == "json":
        return json.dumps(rows, indent=1, ensure_ascii=False) + "\n"
    if fmt != "csv":
        msg = f"format must be csv or json, got {fmt!r}"
        raise ValueError(msg)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(REGISTER_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
