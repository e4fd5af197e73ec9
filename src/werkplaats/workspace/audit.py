"""The audit log (verwerkingsregister): hash-chained entries, each signed by the node that wrote it.

An entry is ``{seq, ts, node, actor, action, subject, details, prev, hash, signature}``:
``hash`` is the SHA-256 of the canonical JSON of the fields before it, ``prev`` the hash of
the entry before (64 zeros for the first), ``signature`` the writer's Ed25519 signature
over ``hash``. Changing an entry breaks its hash; removing or reordering one breaks the
sequence and the chain; forging one needs the writer's key. The hub keeps the
workspace's chain in its database; each datastation keeps its own chain of its
contributions in a JSON-lines file, so the two can be compared.

Actions: request, approval, rejection, job-created, job-start, contribution, job-end,
result-release, job-cancel, nothing-sent (the hub); contribution, nothing-sent, refusal,
hub-head (a datastation's log); run, hub-head (an engine's run ledger).

Anchoring: a chain proves that nothing in it changed, not that nothing was cut from its
end. So the hub signs its current head (`AuditHead`: last seq and hash) and hands it to
the nodes with every job and job status; each datastation and engine keeps the latest
head it saw in its own log (a ``hub-head`` entry). `register.cross_check` then holds the hub's
chain against those logs: a head the hub signed beyond the chain's end means entries
were cut. A node's own log is chained the same way and keeps its own head in a small
state file beside it (``<log>.head``), so that an emptied or truncated log is noticed
before the node takes part in another job (`FileLog.check`).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from ..exceptions import WerkplaatsError
from . import pki
from .messages import AuditHead, MessageError
from .signing import canonical, now, sha256

FIELDS = ("seq", "ts", "node", "actor", "action", "subject", "details", "prev")
GENESIS = "0" * 64
HEAD = "hub-head"  # NB: the action of an anchor entry in a node's own log
REANCHOR = "reanchor"  # NB: its operator accepted an older or other hub head (a hub restored from a backup)


class LogError(WerkplaatsError):
    """A node's own log is not intact (emptied, truncated, changed, or its head file is gone)."""


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
    e["signature"] = pki.sign(key, e["hash"].encode()) if key is not None else ""
    return e


def verify_chain(entries: list[dict[str, Any]], keys: dict[str, str], *, signed: bool = True) -> list[str]:
    """Return every problem found in a chain (empty when it is intact).

    keys maps node names (and organisation names, for contributions signed by a
    datastation) to their Ed25519 public keys; with signed=False only hashes, order and
    links are checked (an engine's run ledger, which has no signing key).
    """
    problems: list[str] = []
    check_signatures = signed
    rotations = _rotations(entries)
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
        if not check_signatures:
            pass
        elif key is None:
            problems.append(f"entry {seq}: written by unknown node {e.get('node')!r}")
        elif not pki.verify(key, str(e.get("hash", "")).encode(), e.get("signature", "")):
            problems.append(f"entry {seq}: signature of {e.get('node')!r} does not verify")
        record = e.get("details", {}).get("signed")
        if isinstance(record, dict):
            okey = _key_at(rotations, str(record.get("organisation", "")), seq) or keys.get(
                record.get("organisation", "")
            )
            if okey is None or not pki.verify(okey, canonical(record.get("record")), record.get("signature", "")):
                problems.append(f"entry {seq}: the contribution record's signature does not verify")
        prev_hash = str(e.get("hash"))
        expected = max(expected, seq + 1)
    return problems


def _rotations(entries: list[dict[str, Any]]) -> dict[str, list[tuple[int, str]]]:
    """Each organisation's key rotations in the chain: (seq of the key-rotated entry, the key it revoked), in order."""
    out: dict[str, list[tuple[int, str]]] = {}
    for e in entries:
        d = e.get("details") or {}
        if e.get("action") == "key-rotated" and isinstance(e.get("seq"), int) and isinstance(d.get("old"), str):
            out.setdefault(str(d.get("organisation", "")), []).append((e["seq"], d["old"]))
    return out


def _key_at(rotations: dict[str, list[tuple[int, str]]], org: str, seq: int) -> str | None:
    """The key org signed with at entry seq: the one the first later rotation revoked (None: its current key)."""
    return next((old for at, old in rotations.get(org, []) if at > seq), None)


class FileLog:
    """A node's own append-only, hash-chained JSON-lines log, with its head in a small file beside it.

    A datastation's contribution log (signed with its organisation's key) and an engine's
    run ledger (key None: chained, not signed). The head file (``<log>.head``: the last
    entry's seq and hash) is rewritten with every append, so `check` notices a log that was
    emptied, cut short or rewritten, and `append` refuses to chain onto one.
    """

    def __init__(self, path: str | Path, node: str, key: Any = None) -> None:
        self.path = Path(path)
        self.node = node
        self.key = key
        self.public_key = pki.public_key_b64(key) if key is not None else None
        self.head_path = head_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def entries(self) -> list[dict[str, Any]]:
        """Return the log's entries, in order."""
        return read_jsonl(self.path)

    def check(self) -> list[dict[str, Any]]:
        """Return the log's entries when it is intact; raise LogError naming the file and what is wrong."""
        entries, problems = read_log(self.path, self.public_key)
        if problems:
            raise LogError(_log_error(self.path, problems))
        return entries

    def append(self, *, actor: str, action: str, subject: str, details: dict[str, Any]) -> dict[str, Any]:
        """Chain, sign and append an entry and move the head file on (under a file lock); return it.

        NB: refuses (LogError) to chain onto a log that is not intact, which would hide the damage.
        """
        with self.path.open("a+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                entries, problems = read_log(self.path, self.public_key)
                if problems:
                    raise LogError(_log_error(self.path, problems))
                e = make_entry(
                    entries[-1] if entries else None,
                    node=self.node,
                    actor=actor,
                    action=action,
                    subject=subject,
                    details=details,
                    key=self.key,
                )
                f.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
                tmp = self.head_path.with_name(self.head_path.name + ".tmp")
                tmp.write_text(
                    json.dumps({"seq": e["seq"], "hash": e["hash"], "node": self.node}) + "\n", encoding="utf-8"
                )
                tmp.replace(self.head_path)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return e

    def last_anchor(self) -> AuditHead | None:
        """Return the latest hub head this log keeps, or None."""
        for e in reversed(self.entries()):
            if e.get("action") in (HEAD, REANCHOR):
                d = e.get("details") or {}
                try:
                    return AuditHead.from_dict(d.get("head") if e.get("action") == REANCHOR else d)
                except MessageError:
                    return None
        return None

    def gap(self, head: AuditHead | None, hub_key: str) -> str:
        """Why this node must not go on with a hub whose signed head is older than (or differs from) the one it kept.

        '' when there is none. A hub restored from a backup shows an older head than its nodes
        anchored: they refuse jobs (saying this) until their operator re-anchors (`reanchor`).
        """
        if head is None or not hub_key or not head_verifies(head, hub_key):
            return ""
        last = self.last_anchor()
        if last is None:
            return ""
        if head.seq < last.seq:
            return f"the hub's audit chain went back from entry {last.seq} to entry {head.seq} (cut, or restored)"
        if head.seq == last.seq and head.hash != last.hash:
            return f"entry {head.seq} of the hub's audit chain changed since it was seen"
        return ""

    def reanchor(self, head: AuditHead, hub_key: str, *, operator: str, reason: str) -> dict[str, Any]:
        """Accept the hub's current head after a gap, explicitly: an entry in this log naming both heads and why."""
        if not reason.strip():
            msg = "a re-anchoring needs a reason (what was checked: the hub restored from which backup)"
            raise LogError(msg)
        if not hub_key or not head_verifies(head, hub_key):
            msg = f"the hub's audit head (entry {head.seq}) is not signed by the pinned hub key; not re-anchored"
            raise LogError(msg)
        last = self.last_anchor()
        details = {"head": head.to_dict(), "previous": last.to_dict() if last else None, "detail": reason.strip()}
        return self.append(actor=operator, action=REANCHOR, subject=f"audit/{head.seq}", details=details)

    def anchor(self, head: AuditHead | None, hub_key: str) -> str:
        """Keep the hub's head when it verifies with the pinned hub key and is newer; return a warning or ''."""
        if head is None or not hub_key:
            return ""
        if not head_verifies(head, hub_key):
            return f"the hub's audit head (entry {head.seq}) is not signed by the pinned hub key; not kept"
        last = self.last_anchor()
        if last is not None and head.seq < last.seq:
            return f"the hub's audit chain went back from entry {last.seq} to entry {head.seq}: entries were cut"
        if last is not None and head.seq == last.seq:
            return (
                "" if head.hash == last.hash else f"entry {head.seq} of the hub's audit chain changed since it was seen"
            )
        self.append(actor=self.node, action=HEAD, subject=f"audit/{head.seq}", details=head.to_dict())
        return ""


def standing_contributions(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return a datastation's contribution entries that no later nothing-sent entry withdrew.

    A nothing-sent entry withdraws only the latest contribution to the same job logged before it, so
    a job number the hub hands out again cannot hide a later contribution (its run still counts).
    """
    open_: dict[Any, list[dict[str, Any]]] = {}
    for e in entries:
        d = e.get("details")
        if not isinstance(d, dict):
            continue
        if e.get("action") == "contribution":
            open_.setdefault(d.get("job"), []).append(e)
        elif e.get("action") == "nothing-sent" and open_.get(d.get("job")):
            open_[d.get("job")].pop()
    return sorted((e for es in open_.values() for e in es), key=lambda e: int(e.get("seq", 0)))


def gap_refusal(gap: str, kind: str) -> str:
    """The reason a node gives for taking part in no job while the hub's chain is behind what it anchored."""
    return (f"audit: {gap}; this {kind} takes part in no job until its operator has checked the hub (restored from "
            f"a backup?) and re-anchors with `werkplaats {kind} reanchor --config FILE --reason TEXT`")  # fmt: skip


def head_path(log: Path) -> Path:
    """Return the file beside a node's log that holds the log's own head."""
    return log.with_name(log.name + ".head")


def head_node(log: Path) -> str:
    """Return the node a log's head file names ('' when it names none): an emptied log still says whose it was."""
    try:
        return str(json.loads(head_path(log).read_text(encoding="utf-8")).get("node", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _log_error(path: Path, problems: list[str]) -> str:
    """The message a node gives when its own log is not intact."""
    return (
        f"{path} is not intact: {'; '.join(problems)}. This node takes part in no job until its operator "
        "restores the log from a backup (see 'Audit log' in docs/workspace.md)"
    )


def read_log(path: Path, public_key: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Read a node's own log and return its entries and every problem: its chain, and its head file."""
    try:
        entries = read_jsonl(path) if path.exists() else []
    except (ValueError, UnicodeDecodeError):
        return [], ["a line is not JSON"]
    node = str(entries[0].get("node", "")) if entries else ""
    problems = verify_chain(entries, {node: public_key} if public_key else {}, signed=public_key is not None)
    hp = head_path(path)
    if not hp.exists():
        if entries:
            problems.append(f"its head file {hp.name} is missing while the log has {len(entries)} entries")
        return entries, problems
    try:
        head = json.loads(hp.read_text(encoding="utf-8"))
        seq, digest = int(head["seq"]), str(head["hash"])
    except (ValueError, KeyError, TypeError):
        return entries, [*problems, f"its head file {hp.name} is unreadable"]
    last = int(entries[-1].get("seq", 0)) if entries else 0
    by_seq = {e.get("seq"): e for e in entries}
    if not entries and seq > 0:
        problems.append(f"it is empty, but its head file says entry {seq}")
    elif last < seq:
        problems.append(f"it is truncated: it ends at entry {last}, but its head file says entry {seq}")
    elif seq > 0 and by_seq.get(seq, {}).get("hash") != digest:
        problems.append(f"entry {seq} is not the one its head file names (the log was rewritten)")
    return entries, problems


def sign_head(last: dict[str, Any] | None, *, hub: str, key: Any) -> AuditHead:
    """Return the hub's signed head of its chain, given the chain's last entry (None: empty chain)."""
    h = AuditHead(
        hub=hub, seq=int(last["seq"]) if last else 0, hash=str(last["hash"]) if last else GENESIS, at=now().isoformat()
    )
    return h.model_copy(update={"signature": pki.sign(key, canonical(h.signed_part()))})


def head_verifies(head: AuditHead, hub_key: str) -> bool:
    """Whether a head is signed by the (pinned) hub key."""
    return pki.verify(hub_key, canonical(head.signed_part()), head.signature)


def key_fingerprint(public_b64: str) -> str:
    """A short, printable name of a public key (never a secret)."""
    return "sha256:" + sha256(public_b64.encode())[:16]


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Return the entries of a JSON-lines log file."""
    return [json.loads(ln) for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
