"""The datastation: an organisation's sources stay here; it shares only what an approved job needs.

For each job that reads its data it checks, itself and whatever the hub says: the plan
hashes to the hash its steward signed, its own steward's approval covers this
collaboration, purpose, date and number of runs (counted in its own log). It then
validates the source against its schema (a clear message to the steward — columns,
counts, rules, never values — and nothing is sent), extracts only the columns the plan
reads, encodes and secret-shares them, and sends share *i* straight to engine *i*. A bucketed
job (`JobPayload.buckets`) is split by the collaboration's bucket key (which only datastations
hold) into buckets padded to a public size, sent bucket by bucket. Every
contribution and refusal goes into its own append-only, hash-chained log.

Security model: the engines are this datastation's own choice, not the hub's. Its
configuration pins the three engines (party, inbox URL, SPKI fingerprint of the TLS key);
a job that names other engines is refused, and every connection to an engine is checked
against the pinned key before a byte is sent, so neither the hub nor whoever holds the
workspace CA can collect the shares. The steward's approval screen shows the plan's
text as this node computes it from the plan it signs, never the hub's stored text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pandas as pd

from ..catalog.frictionless import read_schema, to_frictionless
from ..catalog.schema import TableSchema
from ..catalog.validate import validate_table
from ..compile.analyze import Analysis
from ..compile.perturb import person_key_column
from ..exceptions import PlanError, SchemaError, WerkplaatsError
from ..mpc.buckets import padded_size, split
from ..mpc.share import share_dataset
from . import pki
from .approvals import recheck_hash, verify_job
from .audit import FileLog, LogError, gap_refusal, standing_contributions
from .catalog_io import dataset_entry, rounded
from .config import DatasetSource, DatastationConfig
from .http import Client, HubError, next_jobs, report
from .jobs import catalog_of, job_analysis
from .messages import (
    AuditHead,
    Contribution,
    ContributionRecord,
    JobPayload,
    MessageError,
    NothingSent,
    NothingSentRecord,
    PartState,
    ProgressReport,
    ShareHeader,
    pack,
)
from .pki import PinError
from .signing import canonical, sha256
from .sources import read_source
from .steward import Review as Review
from .steward import StewardDesk

log = logging.getLogger("werkplaats.datastation")
ENGINE_WAIT_S = 30.0  # NB: how long a datastation waits for the engines to take a job before it refuses
ENGINE_ASK_S = 0.05  # NB: how often it asks an engine meanwhile (the engine's own inbox, not the hub)


def own_schema(schema: TableSchema, src: DatasetSource) -> TableSchema:
    """Return a dataset's schema as this datastation publishes and signs it: its person key marked, its k in its rules.

    The schema's own ``werkplaats:rules`` (docs/disclosure.md) are checked here, so a steward's typo stops the
    datastation at start with the setting named, not a job later; ``min_group_size`` from datastation.toml joins
    them (the larger k wins), so that engines enforce it whatever the hub says.
    """
    from ..compile.rules import DisclosureRules

    rules = dict(schema.rules)
    try:
        DisclosureRules.from_settings(rules, f"the werkplaats:rules of {schema.name}")
    except PlanError as e:
        raise SchemaError(str(e)) from None
    rules["min_group_size"] = max(int(rules.get("min_group_size", 1)), src.min_group_size)
    cols = tuple(replace(c, role="person_key") if c.name == src.person_key and not c.role else c
                 for c in schema.columns)  # fmt: skip
    return replace(schema, columns=cols, rules=tuple(sorted(rules.items())))


class Datastation(StewardDesk):
    """One organisation's node."""

    def __init__(self, cfg: DatastationConfig) -> None:
        cfg.tls.check(cfg.name)  # NB: refuse to start with a missing, foreign or expired certificate
        self.cfg = cfg
        self.key = pki.load_signing_key(cfg.signing_key)
        self.public_key = pki.public_key_b64(self.key)
        self.log = FileLog(cfg.state_dir / "contributions.jsonl", cfg.organisation, self.key)
        self.hub = Client(cfg.hub, token=cfg.token, tls=cfg.tls)
        self.schemas = {d.name: own_schema(read_schema(d.schema, d.name), d) for d in cfg.datasets}
        self.sources = {d.name: d for d in cfg.datasets}
        self.stop = threading.Event()

    # -- catalog -----------------------------------------------------------------------
    def publish(self) -> list[str]:
        """Validate every source and publish its metadata: schema, rounded row count, completeness."""
        done = []
        for name, src in self.sources.items():
            schema = self.schemas[name]
            df = validate_table(read_source(src, schema), schema, tuple(schema.names), set())
            completeness = {c: round(float(df[c].notna().mean()), 3) if len(df) else 0.0 for c in schema.names}
            org, table = name.split("/")
            entry = dataset_entry(
                schema,
                title=src.title,
                description=src.description,
                update_frequency=src.update_frequency,
                person_key=src.person_key,
                min_group_size=src.min_group_size,
                row_count=rounded(len(df)),
                completeness=completeness,
            )
            self.hub.put(f"/datasets/{org}/{table}", entry)
            done.append(name)
        from .bucketkey import BucketKeys  # NB: its encryption key too: bucket keys are sealed to it

        BucketKeys.for_station(self).publish_encryption_key()
        return done

    # -- jobs --------------------------------------------------------------------------
    def runs_used(self) -> dict[str, int]:
        """Return how many contributions this datastation made under each approval (from its own log)."""
        used: dict[str, int] = {}
        entries = self.log.check()  # NB: an emptied or cut log raises LogError: no run is re-allowed
        for e in standing_contributions(entries):
            aid = e["details"].get("approval", "")
            used[aid] = used.get(aid, 0) + 1
        return used

    def handle(self, job: JobPayload) -> None:
        """Contribute to one job, or refuse it with a reason (reported to the hub and logged)."""
        mine = [d for d in job.datasets if d.split("/")[0] == self.cfg.organisation]
        if not self.log_intact(job):
            return
        gap = self.log.gap(job.audit_head, self.cfg.hub_key)
        if gap:  # NB: a hub behind what this datastation anchored (restored, cut): only its operator re-anchors
            self.refuse(job, gap_refusal(gap, "datastation"))
            return
        self.anchor(job.audit_head)
        try:
            recheck_hash(job.plan, job.plan_hash)
            (aid,) = verify_job(
                job,
                organisations=[self.cfg.organisation],
                runs_used=self.runs_used(),
                keys={self.cfg.organisation: self.public_key},  # NB: its own key file, not the hub's word
            )
            unknown = [d for d in mine if d not in self.sources]
            if unknown:
                msg = f"this datastation does not hold {unknown}"
                raise WerkplaatsError(msg)
            for d in mine:
                if job.schemas.get(d) != to_frictionless(self.schemas[d]):
                    msg = f"the hub's catalog entry of {d} differs from this datastation's schema; publish again"
                    raise WerkplaatsError(msg)
            self.progress(job.job, PartState.VERIFIED)
            # NB: as the engines will, with rule 9's registered tables (their columns are shared too)
            a = job_analysis(job.plan, catalog_of(job.schemas), job.rules, register=job.registered)
            secret = self.bucket_secret(job)  # NB: None for an unbucketed job; BucketKeyError when it is not here
            tables = {}
            for d in mine:
                schema = self.schemas[d]
                need = set(job.columns.get(d, []))
                if secret is not None:  # NB: rows are split by their person key, shared or not
                    need.add(person_key_column(a, d) or self.sources[d].person_key)
                cols = tuple(c for c in schema.names if c in need)
                uniq = {c for ds, c in a.unique_keys if ds == d}
                keys = frozenset(c for ds, c in a.key_columns if ds == d)
                tables[d] = validate_table(read_source(self.sources[d], schema), schema, cols, uniq, keys)
            parts = self.split_tables(job, a, tables, secret)  # NB: a bucket over its padded size: refused here
            engines = self.connect_engines(job)  # NB: only the pinned engines, each checked on its live connection
        except WerkplaatsError as e:
            self.refuse(job, str(e))
            return
        try:
            record = ContributionRecord(
                organisation=self.cfg.organisation,
                job=job.job,
                request=job.request,
                plan_hash=job.plan_hash,
                approval=aid,
                datasets=mine,
                columns={d: job.columns.get(d, []) for d in mine},
                rows={d: rounded(len(df)) for d, df in tables.items()},
                engines=[e.name for e in job.engines],
                at=dt.datetime.now(dt.UTC).isoformat(),
            )
            # NB: the contribution is counted in this datastation's own log and recorded at the hub
            # before any share leaves, so that no share is ever sent for a run nobody counts.
            self.log.append(
                actor=self.cfg.name,
                action="contribution",
                subject=f"job/{job.job}",
                details={**record.to_dict(), "collaboration": job.collaboration, "purpose": job.purpose},
            )
            signed = Contribution(record=record, signature=pki.sign(self.key, canonical(record.to_dict())))
            try:
                receipt = self.hub.post(f"/node/jobs/{job.job}/contribution", signed.to_dict())
            except HubError as e:  # NB: e.g. 409: the job was cancelled or failed meanwhile
                self.withdraw(job, aid, f"the hub did not take the contribution record ({e.detail})")
                return
            self.anchor(_head(receipt))
            for d, df in tables.items():
                if d in parts:
                    count = len(parts[d])
                    self.send_buckets(engines, job, a, d, parts.pop(d), padded_size(len(df), count))
                    continue
                per_party = share_dataset(a, d, df)
                self.send_all(engines, job, d, len(df), per_party)
                del per_party
        finally:
            for c in engines.values():
                c.close()
        self.progress(job.job, PartState.SENT)

    def withdraw(self, job: JobPayload, aid: str, reason: str) -> None:
        """Withdraw a contribution no share of which left: log it in its own log, tell the hub (signed), fail the job.

        Only this datastation's own entry gives the run back in its own count (`runs_used`).
        """
        log.warning("job %s: nothing sent: %s", job.job, reason)
        record = NothingSentRecord(
            organisation=self.cfg.organisation,
            job=job.job,
            request=job.request,
            approval=aid,
            reason=reason,
            at=dt.datetime.now(dt.UTC).isoformat(),
        )
        self.log.append(actor=self.cfg.name, action="nothing-sent", subject=f"job/{job.job}", details=record.to_dict())
        signed = NothingSent(record=record, signature=pki.sign(self.key, canonical(record.to_dict())))
        try:
            self.hub.post(f"/node/jobs/{job.job}/nothing-sent", signed.to_dict())
        except (HubError, OSError) as e:
            log.warning("job %s: the hub did not take the nothing-sent record: %s", job.job, e)
        self.progress(job.job, PartState.FAILED, f"nothing sent: {reason}")

    def log_intact(self, job: JobPayload) -> bool:
        """Check this datastation's own log before it takes part; report the job failed, naming the problem, if not.

        NB: nothing is appended to a damaged log (a refusal entry would chain onto the damage and hide it).
        """
        try:
            self.log.check()
        except LogError as e:
            log.error("job %s refused: %s", job.job, e)
            self.progress(job.job, PartState.FAILED, str(e))
            return False
        return True

    def anchor(self, head: AuditHead | None) -> None:
        """Keep the hub's signed audit head in this datastation's log when it is newer; a problem is logged."""
        try:
            warning = self.log.anchor(head, self.cfg.hub_key)
        except LogError as e:
            warning = str(e)
        if warning:
            log.warning("audit: %s", warning)

    def check_engines(self, job: JobPayload) -> None:
        """Refuse a job whose engines differ from this datastation's pins: count, parties or URLs."""
        pins = {p.party: p for p in self.cfg.engines}
        named = {e.party: e for e in job.engines}
        if len(job.engines) != len(pins) or set(named) != set(pins):
            msg = (
                f"the job names {len(job.engines)} engines for parties {sorted(e.party for e in job.engines)}; "
                f"this datastation pins one engine for each of parties {sorted(pins)}: refused, nothing sent"
            )
            raise PinError(msg)
        for party, pin in sorted(pins.items()):
            if named[party].url.rstrip("/") != pin.url:
                msg = (
                    f"the job sends party {party}'s share to {named[party].url}, not to the engine pinned for "
                    f"party {party} ({pin.url}): refused, nothing sent"
                )
                raise PinError(msg)

    def connect_engines(self, job: JobPayload, wait_s: float = ENGINE_WAIT_S) -> dict[int, Client]:
        """Open a pinned connection to each engine and wait until it knows the job; return the clients by party.

        Every connection is refused unless the engine's TLS key is the one pinned for its party
        (checked on the live connection, before anything is sent), so a share never reaches a
        node that merely holds a workspace certificate with the right name.
        """
        self.check_engines(job)
        clients = {p.party: Client(p.url, token="", tls=self.cfg.tls, timeout=600, pin=p.spki_sha256)
                   for p in self.cfg.engines}  # fmt: skip
        try:
            deadline = time.monotonic() + wait_s
            for party, c in clients.items():
                while True:
                    try:
                        r = c.http.get(f"/jobs/{job.job}")
                    except PinError as e:
                        msg = f"engine for party {party}: {e}: refused, nothing sent"
                        raise PinError(msg) from None
                    except httpx.HTTPError as e:
                        problem = f"unreachable ({type(e).__name__})"
                    else:
                        if r.status_code == 200:
                            break
                        if r.status_code != 404:  # NB: 404: it has not polled the job yet
                            msg = f"engine for party {party} answered {r.status_code} for job {job.job}: nothing sent"
                            raise WerkplaatsError(msg)
                        problem = "it has not taken the job"
                    if time.monotonic() > deadline:
                        msg = f"engine for party {party} ({c.url}) not ready for job {job.job}: {problem}; nothing sent"
                        raise WerkplaatsError(msg)
                    time.sleep(ENGINE_ASK_S)
        except BaseException:
            for c in clients.values():
                c.close()
            raise
        return clients

    def bucket_secret(self, job: JobPayload) -> bytes | None:
        """Return the collaboration's bucket key of the version a bucketed job names (None: the job is unbucketed).

        Raises BucketKeyError (a refusal: nothing is sent) when this datastation does not hold that version.
        """
        if job.buckets is None:
            return None
        from .bucketkey import BucketKeyError, BucketKeys

        try:
            keys = BucketKeys.for_station(self)
            newest = keys.current(job.collaboration)
            if newest is not None and job.buckets.key_version < newest[0]:  # NB: a hub keeping a rotated-out key in use
                msg = (f"the job names version {job.buckets.key_version}, older than version {newest[0]} this "
                       "datastation holds: a rotated-out key is not used again (submit the request anew)")  # fmt: skip
                raise BucketKeyError(msg)
            # NB: with this station's identity: a version it lacks is fetched from the hub, checked and kept
            return keys.get(job.collaboration, job.buckets.key_version)
        except BucketKeyError as e:
            msg = (f"the job is split into {job.buckets.count} buckets with version {job.buckets.key_version} of "
                   f"the bucket key of {job.collaboration}, which this datastation cannot use ({e})")  # fmt: skip
            raise BucketKeyError(msg) from None

    def split_tables(self, job: JobPayload, a: Analysis, tables: dict[str, pd.DataFrame],
                     secret: bytes | None) -> dict[str, list[pd.DataFrame]]:  # fmt: skip
        """Return each table's rows per bucket of a bucketed job (empty for an unbucketed one).

        Raises (a refusal: nothing has been sent yet) when a bucket holds more rows than the
        table's public padded size; the reason names the dataset, never a bucket's count.
        """
        if job.buckets is None or secret is None:
            return {}
        return {d: split(a, d, df, secret, job.buckets.count) for d, df in tables.items()}

    def send_buckets(self, engines: dict[int, Client], job: JobPayload, a: Analysis, dataset: str,
                     parts: list[pd.DataFrame], padded: int) -> None:  # fmt: skip
        """Send a table's buckets one by one: encode, share, one upload per engine.

        Only one bucket's arrays and shares are in memory at a time; every bucket is padded to the
        table's public padded size, so what leaves is that size and the shares.
        """
        from ..compile.layout import layout
        from ..mpc.encode import encode
        from ..mpc.runtime import precision_of
        from ..mpc.share import share_arrays

        slots = layout(a, {dataset: padded}, bucketed=True)
        for b in range(len(parts)):
            per_party = share_arrays(encode(a, dataset, parts[b], slots), precision_of(a.plan))
            parts[b] = parts[b].iloc[0:0]  # NB: this bucket's rows are no longer needed here
            self.send_all(engines, job, dataset, padded, per_party, bucket=b)
            del per_party

    def send_all(self, engines: dict[int, Client], job: JobPayload, dataset: str, rows: int,
                 per_party: list[list[list[bytes]]], bucket: int | None = None) -> None:  # fmt: skip
        """Send each engine its share of one dataset (of one bucket), the three uploads at once; raise the first error.

        NB: each engine has its own pinned connection; every upload is waited for before an error is raised.
        """
        with ThreadPoolExecutor(max_workers=len(engines), thread_name_prefix="upload") as pool:
            futures = [pool.submit(self.send, c, job, dataset, rows, per_party[party], bucket)
                       for party, c in engines.items()]  # fmt: skip
        for f in futures:
            f.result()

    def send(self, c: Client, job: JobPayload, dataset: str, rows: int, slots: list[list[bytes]],
             bucket: int | None = None) -> None:  # fmt: skip
        """Send this dataset's share (of one bucket) for one engine straight to it (pinned mutual TLS), signed."""
        blobs = [b for s in slots for b in s]
        header = ShareHeader(
            job=job.job,
            dataset=dataset,
            organisation=self.cfg.organisation,
            rows=rows,
            share_blobs=[len(s) for s in slots],
            digest=hashlib.sha256(b"".join(blobs)).hexdigest(),
            plan_hash=job.plan_hash,
            schema_sha256=sha256(canonical(job.schemas[dataset])),  # NB: checked equal to its own schema
            rules_sha256=sha256(canonical(job.rules)),
            bucket=bucket,
            buckets=job.buckets.count if job.buckets is not None and bucket is not None else 0,
            key_version=job.buckets.key_version if job.buckets is not None and bucket is not None else None,
        )
        header = header.model_copy(update={"signature": pki.sign(self.key, canonical(header.signed_part()))})
        r = c.http.post(
            f"/jobs/{job.job}/shares",
            content=pack(header, blobs),
            headers={"content-type": "application/octet-stream"},
        )
        if r.status_code >= 400:
            raise HubError(r.status_code, r.text)

    def refuse(self, job: JobPayload, reason: str) -> None:
        """Refuse a job: log the reason in this datastation's own log and report it to the hub."""
        log.warning("job %s refused: %s", job.job, reason)
        self.log.append(
            actor=self.cfg.name,
            action="refusal",
            subject=f"job/{job.job}",
            details={"job": job.job, "request": job.request, "detail": reason},
        )
        self.progress(job.job, PartState.FAILED, reason)

    def progress(self, jid: int, state: PartState, reason: str = "") -> None:
        """Report this datastation's part in a job to the hub."""
        report(self.hub, jid, ProgressReport(state=state, reason=reason), log)

    def serve(self, poll_s: float = 0.5) -> None:
        """Take jobs from the hub until stopped."""
        log.info("datastation %s (%s) serving %s", self.cfg.name, self.cfg.organisation, sorted(self.sources))
        while not self.stop.is_set():
            jobs = next_jobs(self.hub, log)
            if jobs is None:
                continue
            for job in jobs:
                try:
                    self.handle(job)
                except Exception as e:  # NB: one bad job never stops the station
                    log.exception("job %s failed", job.job)
                    self.progress(job.job, PartState.FAILED, f"{type(e).__name__}: {e}")
            time.sleep(poll_s)


def _head(receipt: Any) -> AuditHead | None:
    """The hub's signed audit head in its answer to a contribution, or None when it sent none it could read."""
    doc = receipt.get("audit_head") if isinstance(receipt, dict) else None
    try:
        return AuditHead.from_dict(doc) if doc else None
    except MessageError:
        return None
