"""The verifier's side of the audit log: the hub's chain against the pinned hub key and the nodes' own logs,
and the processing register (verwerkingsregister) a privacy officer exports.

Everything here reads public records (entries, heads, signatures); nothing here holds a key.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import HEAD, head_node, head_verifies, key_fingerprint, read_log, standing_contributions, verify_chain
from .messages import AuditHead, MessageError

# -- the verifier: the hub's chain against the pinned hub key and the nodes' own logs -----------


@dataclass
class NodeLog:
    """A node's own log as the verifier reads it: whose it is, its entries, and what is wrong with it."""

    name: str  # a datastation's organisation, or an engine's name
    kind: str  # datastation | engine
    path: Path
    entries: list[dict[str, Any]]
    problems: list[str]

    @classmethod
    def read(cls, path: str | Path, *, public_key: str | None = None, name: str = "") -> NodeLog:
        """Read contributions.jsonl (a datastation) or runs.jsonl (an engine); public_key checks signatures."""
        p = Path(path)
        entries, problems = read_log(p, public_key)
        kind = "datastation" if p.name.startswith("contributions") else "engine"
        who = name or (str(entries[0].get("node", "")) if entries else "") or head_node(p) or p.parent.name
        return cls(who, kind, p, entries, problems)


def verify_hub_chain(entries: list[dict[str, Any]], hub_key: str, org_keys: dict[str, str]) -> list[str]:
    """Verify the hub's chain with the pinned hub key (never a key the hub ships); org_keys check contributions."""
    keys = {**org_keys, **{str(e.get("node", "")): hub_key for e in entries}}
    problems = verify_chain(entries, keys)
    unsigned = [p for p in problems if p.startswith("entry ") and "signature of" in p and p.endswith("does not verify")]
    if entries and len(unsigned) == len(entries):
        refused = f"refused: no entry is signed by the pinned hub key ({key_fingerprint(hub_key)})"
        problems = [refused, *(p for p in problems if p not in unsigned)]
    return problems


def cross_check(entries: list[dict[str, Any]], hub_key: str, logs: list[NodeLog]) -> list[str]:
    """Hold the hub's chain against the nodes' own logs: anchored heads, contributions and runs.

    Reports entries cut from the end ("entries after seq N are missing (engine1 saw head
    N+5)"), a chain rewritten below a head a node saw, each node log that is not intact,
    contributions one side has and the other lacks, and runs the hub's chain does not show.
    """
    problems: list[str] = []
    end = max((int(e["seq"]) for e in entries), default=0)
    by_seq = {e.get("seq"): e for e in entries}
    jobs = {e.get("details", {}).get("job") for e in entries}
    hub_contribs: dict[tuple[str, int], int] = {}
    for e in entries:
        record = (e.get("details", {}).get("signed") or {}).get("record") or {}
        if e.get("action") == "contribution" and record:
            hub_contribs[(str(record.get("organisation")), int(record.get("job", 0)))] = int(e["seq"])
    for lg in logs:
        problems += [f"{lg.name} ({lg.path.name}): {p}" for p in lg.problems]
        heads = []
        for e in lg.entries:
            if e.get("action") != HEAD:
                continue
            try:
                h = AuditHead.from_dict(e.get("details"))
            except MessageError:
                problems.append(f"{lg.name} ({lg.path.name}): entry {e.get('seq')} is not a hub head")
                continue
            if not head_verifies(h, hub_key):
                problems.append(f"{lg.name}: the hub head at entry {h.seq} it kept is not signed by the pinned hub key")
                continue
            heads.append(h)
            got = by_seq.get(h.seq)
            if got is not None and got.get("hash") != h.hash:
                problems.append(
                    f"entry {h.seq} is not the entry {lg.name} saw as the hub's head (the chain was rewritten)"
                )
        top = max(heads, key=lambda h: h.seq, default=None)
        if top is not None and top.seq > end:
            problems.append(f"entries after seq {end} are missing ({lg.name} saw head {top.seq})")
        if lg.kind == "datastation":
            mine = {
                (str(e["details"].get("organisation")), int(e["details"].get("job", 0)))
                for e in lg.entries
                if e.get("action") == "contribution" and isinstance(e.get("details"), dict)
            }
            standing = {  # NB: withdrawn ones sent nothing (the hub refused them)
                (str(e["details"].get("organisation")), int(e["details"].get("job", 0)))
                for e in standing_contributions(lg.entries)
            }
            for org, job in sorted(standing - set(hub_contribs)):
                problems.append(f"{org} logged a contribution to job {job} that the hub's chain lacks")
            for (org, job), seq in sorted(hub_contribs.items()):
                if org == lg.name and (org, job) not in mine:
                    lacks = f"that {org}'s own log lacks"
                    problems.append(f"the hub's chain has a contribution of {org} to job {job} (entry {seq}) {lacks}")
        else:
            for e in lg.entries:
                ran = e.get("details", {}).get("job") if e.get("action") == "run" else None
                if ran is not None and ran not in jobs:
                    problems.append(f"{lg.name} ran job {ran}, which the hub's chain does not show")
    return problems


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
