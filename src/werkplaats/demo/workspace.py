"""A whole workspace on one machine: hub, three engines and datastations as separate processes.

Used by ``werkplaats demo`` and the tests. Every node is its own OS process with its own
configuration file, certificate and token, talking mutual TLS over loopback (or over
the addresses given), exactly as on separate machines.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..mpc.process import free_port
from ..plan.nodes import DEFAULT_MIN_GROUP_SIZE
from ..synth.generate import generate
from ..synth.schemas import Dataset, datasets
from ..synth.write import write_region
from ..workspace import pki
from ..workspace.config import ConfigError
from ..workspace.http import Client, HubError

ORGANISATIONS = {
    "ggd": ("GGD Referentieregio", "GGD"),
    "ziekenhuis": ("Ziekenhuis Referentieregio", "ziekenhuis"),
    "huisartsen": ("Huisartsencoöperatie Referentieregio", "huisartsen"),
    "vvt": ("VVT-organisatie Referentieregio", "VVT"),
    "ggz": ("GGZ-instelling Referentieregio", "GGZ"),
    "gemeente": ("Gemeenten Referentieregio", "gemeente"),
}
COLLABORATION = "pandemische-paraatheid"
PURPOSE = (
    "Vroegtijdig signaleren van infectiehaarden per gemeente en wijk, en welke risicogroepen "
    "(VVT-cliënten, 70-plussers, chronisch zieken) worden getroffen."
)


@dataclass
class Proc:
    name: str
    cmd: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    prefix: list[str] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log, "ab") as f:
            self.popen = subprocess.Popen(
                [*self.prefix, *self.cmd],
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)  # NB: its MPC child too
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self.kill(signal.SIGKILL)


class LocalWorkspace:
    """Set up and run a complete workspace below root."""

    def __init__(
        self,
        root: str | Path,
        *,
        persons: int = 20_000,
        seed: int = 1,
        database: str | None = None,
        organisations: tuple[str, ...] = ("ggd", "ziekenhuis", "huisartsen", "vvt"),
        heartbeat_timeout_s: float = 15.0,
        hosts: dict[str, str] | None = None,
        netns: dict[str, str] | None = None,
        jobs: dict[str, Any] | None = None,
        workers: int = 1,
    ) -> None:
        self.root = Path(root).resolve()
        self.persons, self.seed = persons, seed
        self.database = database or f"sqlite:///{self.root / 'hub' / 'hub.db'}"
        self.organisations = organisations
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.hosts = hosts or {}  # node name -> address it listens on (default 127.0.0.1)
        self.netns = netns or {}  # node name -> network namespace it runs in
        self.jobs = jobs or {}  # NB: hub.toml's [jobs] (memory_budget_gb, buckets; a table per collaboration)
        # NB: engine.toml's [scaleout]: each engine runs bucketed jobs on its own loopback Dask cluster of this many
        # workers (1: the party runs the buckets itself), its peers' worker links pinned
        self.workers = workers
        self.worker_ports: dict[int, list[int]] = {}
        self.procs: dict[str, Proc] = {}
        self.tokens: dict[str, str] = {}
        self.hub_url = ""
        self.region = self.root / "region"
        self.pki = self.root / "pki"
        self.web_ports: dict[str, int] = {}  # NB: node name -> port of its web listener (browsers, server TLS only)
        self.logins: dict[str, Any] = {}  # NB: the demo users' web logins, also in root/logins.json (0600)

    def host(self, node: str) -> str:
        return self.hosts.get(node, "127.0.0.1")

    # -- setup -----------------------------------------------------------------------------
    def setup(self) -> None:
        """Region, PKI, signing keys, hub configuration and database, admin token."""
        for d in ("hub", "logs", "keys", "nodes"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        if not (self.region / "datapackage.json").exists():
            write_region(generate(self.seed, self.persons), self.region)
        if not (self.pki / "ca.crt").exists():
            pki.init_ca(self.pki)
        nodes = ["hub", "engine0", "engine1", "engine2", "client", *(f"ds-{o}" for o in self.organisations)]
        for nd in nodes:
            if not (self.pki / f"{nd}.crt").exists():
                pki.issue(self.pki, nd, hosts=tuple(dict.fromkeys([self.host(nd), "127.0.0.1", "localhost"])))
        for i in range(3):  # NB: each engine's own self-signed certificate for its MPC links (its peers pin it)
            nd = f"engine{i}"
            if not self.link_cert(i).exists():
                pki.link_certificate(self.link_cert(i).parent, f"{nd}-link", hosts=(self.host(nd), "127.0.0.1"))
        self.public_keys = {}
        for o in ("hub", *self.organisations):
            p = self.root / "keys" / f"{o}.key"
            self.public_keys[o] = (
                pki.new_signing_key(p) if not p.exists() else pki.public_key_b64(pki.load_signing_key(p))
            )
        (self.root / "keys" / "hub.pub").write_text(self.public_keys["hub"] + "\n")  # NB: nodes pin the audit key
        port = free_port(self.host("hub"))
        self.hub_url = f"https://{self.host('hub')}:{port}"
        self.web_ports["hub"] = free_port(self.host("hub"))
        (self.root / "hub" / "hub.toml").write_text(
            f'[hub]\nname = "hub"\nlisten = "{self.host("hub")}:{port}"\ndatabase = "{self.database}"\n'
            f'signing_key = "../keys/hub.key"\nheartbeat_timeout_s = {self.heartbeat_timeout_s}\n'
            # NB: the weekly hotspot analysis has more region-week cells than a small region has notifications / k;
            # the demo's collaboration accepts that sparse table (rule 8's cells_per_source; docs/disclosure.md)
            + f"[disclosure.{COLLABORATION}]\ncells_per_source = false\n"
            + _jobs_toml(self.jobs)
            + self._tls_toml("hub", "..")
            + self._web_toml("hub", geo_dir="../region/kaart")
        )
        from ..workspace.hub import Hub

        hub = Hub(self.database, name="hub", signing_key=pki.load_signing_key(self.root / "keys" / "hub.key"))
        self.tokens["admin"] = hub.create_admin("beheerder")
        hub.engine.dispose()

    def link_cert(self, i: int) -> Path:
        """The link certificate of engine i (its key beside it)."""
        return self.root / "nodes" / f"engine{i}" / f"engine{i}-link.crt"

    def engine_url(self, i: int) -> str:
        """The share inbox of engine i, as registered at the hub and pinned by the datastations."""
        return f"https://{self.host(f'engine{i}')}:{self.engine_ports[i][0]}"

    def _engine_pins_toml(self) -> str:
        """The [[engines]] a datastation pins: party, inbox URL, fingerprint of the engine's TLS key."""
        return "".join(
            f'\n[[engines]]\nparty = {i}\nurl = "{self.engine_url(i)}"\n'
            f'spki_sha256 = "{pki.fingerprint(self.pki / f"engine{i}.crt")}"\n'
            for i in range(3)
        )

    def _engine_trust_toml(self, i: int) -> str:
        """An engine's [link], its [[peers]] (pinned link certificates) and [organisations] (pinned keys)."""
        text = f'\n[link]\ncert = "engine{i}-link.crt"\nkey = "engine{i}-link.key"\n'
        for j in (j for j in range(3) if j != i):
            text += (
                f'\n[[peers]]\nparty = {j}\nmpc = "{self.host(f"engine{j}")}:{self.engine_ports[j][1]}"\n'
                f'cert = "../engine{j}/engine{j}-link.crt"\nspki_sha256 = "{pki.fingerprint(self.link_cert(j))}"\n'
            )
            if self.workers > 1:  # NB: its workers link with the same certificate; pinned like its mpc address
                text += f"worker_mpc = {json.dumps(self.worker_mpc(j))}\n"
        text += "\n[organisations]\n" + "".join(f'{o} = "{self.public_keys[o]}"\n' for o in self.organisations)
        return text

    def _worker_ports(self, node: str) -> list[int]:
        """Pick the link ports of an engine's workers, none of them another engine's or worker's."""
        taken = {p for ports in self.engine_ports.values() for p in ports}
        taken |= {p for ports in self.worker_ports.values() for p in ports}
        got: list[int] = []
        while len(got) < self.workers:
            p = random.randint(20_000, 31_999) if node in self.netns else free_port(self.host(node))
            if p not in taken and p not in got:
                got.append(p)
        return got

    def worker_mpc(self, i: int) -> list[str]:
        """The MPC link addresses of engine i's workers (scale-out), as its peers pin them."""
        return [f"{self.host(f'engine{i}')}:{p}" for p in self.worker_ports.get(i, [])]

    def _scaleout_toml(self, i: int) -> str:
        """Engine i's [scaleout]: its own loopback Dask cluster of `workers` workers and their link addresses."""
        if self.workers <= 1:
            return ""
        links = json.dumps(self.worker_mpc(i))
        return f'\n[scaleout]\nworkers = {self.workers}\nscheduler = "local"\nworker_mpc = {links}\n'

    def web_url(self, node: str = "hub") -> str:
        """The address browsers use for a node's web pages (the hub's, or a datastation's stewards')."""
        return f"https://{self.host(node)}:{self.web_ports[node]}"

    def _web_toml(self, node: str, **paths: str) -> str:
        """A node's [web] table: its own HTTPS listener for browsers (server certificate only)."""
        return (
            f'\n[web]\nlisten = "{self.host(node)}:{self.web_ports[node]}"\npublic_url = "{self.web_url(node)}"\n'
            + ("".join(f'{k} = "{v}"\n' for k, v in paths.items()))
        )

    def _tls_toml(self, node: str, rel: str) -> str:
        return f'\n[tls]\nca = "{rel}/pki/ca.crt"\ncert = "{rel}/pki/{node}.crt"\nkey = "{rel}/pki/{node}.key"\n'

    def datasets(self) -> list[Dataset]:
        """The catalog entries of the written region (its code lists fix the gemeente and wijk domains)."""
        import pandas as pd

        codes = [tuple(pd.read_csv(self.region / "codelists" / f"{c}.csv")["code"]) for c in ("gemeenten", "wijken")]
        return datasets(*codes)

    def tls(self, node: str = "client") -> pki.TLSFiles:
        return pki.TLSFiles(self.pki / "ca.crt", self.pki / f"{node}.crt", self.pki / f"{node}.key")

    def client(self, who: str) -> Client:
        return Client(self.hub_url, token=self.tokens[who], tls=self.tls())

    def _proc(self, name: str, *args: str) -> Proc:
        prefix = ["ip", "netns", "exec", self.netns[name]] if name in self.netns else []
        p = Proc(name, [sys.executable, "-m", "werkplaats", *args], self.root / "logs" / f"{name}.log", prefix=prefix)
        self.procs[name] = p
        return p

    # -- processes -----------------------------------------------------------------------------
    def start_hub(self, timeout: float = 60.0) -> None:
        self._proc("hub", "hub", "serve", "--config", str(self.root / "hub" / "hub.toml")).start()
        self._wait(lambda: self._health(), "hub", timeout)

    def _health(self) -> bool:
        import httpx

        try:
            r = httpx.get(self.hub_url + "/health", verify=self.tls().client_context(), timeout=2)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, ok: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            p = self.procs.get(what)
            if p is not None and not p.alive():
                msg = f"{what} exited; see {p.log}:\n{p.log.read_text()[-2000:]}"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = f"{what} not ready after {timeout:.0f} s"
                raise RuntimeError(msg)
            time.sleep(0.2)

    def register(self) -> None:
        """Organisations, users, nodes and the collaboration, as the admin does it."""
        adm = self.client("admin")
        try:
            for o in self.organisations:
                title, kind = ORGANISATIONS[o]
                adm.post(
                    "/organisations", {"name": o, "title": title, "kind": kind, "signing_key": self.public_keys[o]}
                )
                self.tokens[f"steward-{o}"] = adm.post(
                    "/users", {"name": f"steward-{o}", "role": "steward", "organisation": o}
                )["token"]
                nd = f"ds-{o}"  # NB: a fresh network namespace has every port free (and its address is not ours)
                self.web_ports[nd] = random.randint(20_000, 31_999) if nd in self.netns else free_port(self.host(nd))
                self.tokens[f"ds-{o}"] = adm.post(
                    "/nodes",
                    {"name": f"ds-{o}", "kind": "datastation", "organisation": o, "web_url": self.web_url(f"ds-{o}")},
                )["token"]
            self.tokens["analist"] = adm.post(
                "/users", {"name": "analist", "role": "scientist", "organisation": self.organisations[0]}
            )["token"]
            self.tokens["fg"] = adm.post("/users", {"name": "fg", "role": "privacy-officer"})["token"]
            self.tokens["inzichtvrager"] = adm.post(
                "/users", {"name": "inzichtvrager", "role": "requester", "organisation": self.organisations[0]}
            )["token"]
            self.engine_ports = {}
            for i in range(3):
                nm = f"engine{i}"
                if nm in self.netns:  # NB: a fresh network namespace has every port free
                    inbox, mpc = random.sample(range(20_000, 32_000), 2)
                else:
                    inbox, mpc = free_port(self.host(nm)), free_port(self.host(nm))
                self.engine_ports[i] = (inbox, mpc)
                self.worker_ports[i] = self._worker_ports(nm) if self.workers > 1 else []
                self.tokens[nm] = adm.post(
                    "/nodes",
                    {
                        "name": nm,
                        "kind": "engine",
                        "party": i,
                        "url": self.engine_url(i),
                        "mpc_address": f"{self.host(nm)}:{mpc}",
                    },
                )["token"]
            adm.post(
                "/collaborations",
                {
                    "name": COLLABORATION,
                    "title": "Pandemische paraatheid",
                    "purpose": PURPOSE,
                    "dpia_annex": "DPIA-bijlage (demo): doel, datasets, bewaartermijnen, minimale celgrootte 10.",
                    "members": list(self.organisations),
                },
            )
        finally:
            adm.close()
        (self.root / "tokens.json").write_text(json.dumps(self.tokens, indent=1) + "\n")
        (self.root / "tokens.json").chmod(0o600)

    def datastation_config(self, org: str) -> Path:
        nd = f"ds-{org}"
        d = self.root / "nodes" / nd
        d.mkdir(parents=True, exist_ok=True)
        sets = [ds for ds in self.datasets() if ds.organisation == org]
        text = (
            f'[datastation]\nname = "{nd}"\norganisation = "{org}"\nhub = "{self.hub_url}"\n'
            f'token = "{self.tokens[nd]}"\nsteward_token = "{self.tokens[f"steward-{org}"]}"\n'
            f'signing_key = "../../keys/{org}.key"\nstate_dir = "state"\nhub_key_file = "../../keys/hub.pub"\n'
            + self._tls_toml(nd, "../..")
            + self._engine_pins_toml()  # NB: set when the organisation joins; changed only by its own operator
            + "\n[organisations]\n"  # NB: the others' signing keys, pinned: they check the bucket key's signatures
            + "".join(f'{o} = "{self.public_keys[o]}"\n' for o in self.organisations)
            + self._web_toml(nd, accounts="state/web-accounts.db")
        )
        for ds in sets:
            table = ds.name.split("/")[1]
            text += (
                f'\n[[datasets]]\nname = "{ds.name}"\nsource = "../../region/{org}/{table}.csv"\n'
                f'schema = "../../region/{org}/{table}.schema.json"\ntitle = "{ds.title}"\n'
                f'description = "{ds.description}"\nupdate_frequency = "{ds.update_frequency}"\n'
                f'person_key = "bsn"\nmin_group_size = {DEFAULT_MIN_GROUP_SIZE}\n'
            )
        (d / "datastation.toml").write_text(text)
        return d / "datastation.toml"

    def engine_config(self, i: int) -> Path:
        nd = f"engine{i}"
        d = self.root / "nodes" / nd
        d.mkdir(parents=True, exist_ok=True)
        inbox, mpc = self.engine_ports[i]
        (d / "engine.toml").write_text(
            f'[engine]\nname = "{nd}"\nparty = {i}\nhub = "{self.hub_url}"\ntoken = "{self.tokens[nd]}"\n'
            f'listen = "{self.host(nd)}:{inbox}"\nmpc = "{self.host(nd)}:{mpc}"\nstate_dir = "state"\n'
            'hub_key_file = "../../keys/hub.pub"\n'
            + self._scaleout_toml(i)
            + self._tls_toml(nd, "../..")
            + self._engine_trust_toml(i)
        )
        return d / "engine.toml"

    def start_engine(self, i: int) -> None:
        self._proc(f"engine{i}", "engine", "serve", "--config", str(self.engine_config(i)), "--party", str(i)).start()

    def start_datastation(self, org: str) -> None:
        self._proc(f"ds-{org}", "datastation", "serve", "--config", str(self.datastation_config(org))).start()

    def start_nodes(self, timeout: float = 120.0) -> None:
        for i in range(3):
            self.start_engine(i)
        for o in self.organisations:
            self.start_datastation(o)
        want = {ds.name for ds in self.datasets() if ds.organisation in self.organisations}
        adm = self.client("admin")
        try:

            def published() -> bool:
                for name, p in self.procs.items():
                    if not p.alive():
                        msg = f"{name} exited; see {p.log}:\n{p.log.read_text()[-2000:]}"
                        raise RuntimeError(msg)
                return want <= {d["name"] for d in adm.get("/datasets")}

            self._wait(published, "datastations", timeout)
        finally:
            adm.close()
        for o in self.organisations:
            st = self.client(f"steward-{o}")
            try:
                for name in sorted(want):
                    if name.startswith(o + "/"):
                        st.post(f"/collaborations/{COLLABORATION}/datasets/{name}")
            except HubError as e:
                if e.status != 500:
                    raise
            finally:
                st.close()
        self.create_bucket_key()  # NB: bucketed jobs split rows by it; only the datastations hold it

    def create_bucket_key(self, org: str | None = None, *, collaboration: str = COLLABORATION,
                          timeout: float = 60.0) -> int:  # fmt: skip
        """Create the next version of a collaboration's bucket key at org's datastation (default: the first).

        Sealed to each member datastation's published encryption key; the others fetch it when a
        job needs it. Return the version.
        """
        from ..workspace.bucketkey import BucketKeyError, BucketKeys
        from ..workspace.config import DatastationConfig

        org = org or self.organisations[0]
        keys = BucketKeys.from_config(DatastationConfig.load(self.datastation_config(org)))
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    return keys.create(collaboration)
                except BucketKeyError as e:  # NB: a datastation publishes its encryption key just after its datasets
                    if "published no encryption key yet" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        finally:
            keys.close()

    def _web_up(self, node: str) -> bool:
        import httpx

        try:
            return httpx.get(self.web_url(node) + "/login", verify=self.tls().client_context(), timeout=2).is_success
        except httpx.HTTPError:
            return False

    def _cli(self, *args: str) -> str:
        """Run a werkplaats command as an operator would; return its output."""
        r = subprocess.run(
            [sys.executable, "-m", "werkplaats", *args], capture_output=True, text=True, check=False, timeout=120
        )
        if r.returncode:
            msg = f"werkplaats {' '.join(args[:3])} failed: {r.stdout[-1000:]}{r.stderr[-1000:]}"
            raise RuntimeError(msg)
        return r.stdout

    def _web_account(self, app: str, name: str, config: Path) -> dict[str, str]:
        """Create a web account with a fresh password through the operator's command; return the login."""
        password = secrets.token_urlsafe(12)
        while name.casefold() in password.casefold():  # NB: refused by the account rules
            password = secrets.token_urlsafe(12)
        pw = self.root / "keys" / f".pw-{name}"
        pw.touch(0o600)
        pw.write_text(password + "\n")
        try:
            out = self._cli(app, "web-user", "add", name, "--config", str(config), "--password-file", str(pw))
        finally:
            pw.unlink()
        m = re.search(r"TOTP secret.*?: ([A-Z2-7]{16,})$", out, re.M)  # NB: printed once, when the role needs one
        return {"name": name, "password": password, "totp": m.group(1) if m else ""}

    def start_web(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the web listeners, create the demo users' web accounts, write root/logins.json (0600).

        The hub's pages: the analyst, the inzichtvrager, the privacy officer and the admin; each
        datastation's pages: its steward (accounts kept at the datastation). TOTP secrets are the
        demo's only: a real user enrols their own on first login.
        """
        for node in ("hub", *(f"ds-{o}" for o in self.organisations)):
            self._wait(lambda node=node: self._web_up(node), node, timeout)
        from concurrent.futures import ThreadPoolExecutor

        hub_toml = self.root / "hub" / "hub.toml"
        todo = [("hub", name, hub_toml, {"role": role, "url": self.web_url("hub")})
                for name, role in (("analist", "scientist"), ("inzichtvrager", "requester"),
                                   ("fg", "privacy-officer"), ("beheerder", "admin"))]  # fmt: skip
        todo += [
            ("datastation", f"steward-{o}", self.root / "nodes" / f"ds-{o}" / "datastation.toml",
             {"role": "steward", "organisation": o, "url": self.web_url(f"ds-{o}")})
            for o in self.organisations
        ]  # fmt: skip
        with ThreadPoolExecutor(4) as pool:  # NB: each command is a Python start-up; together they take seconds
            done = pool.map(lambda a: {**self._web_account(a[0], a[1], a[2]), **a[3]}, todo)
            users = list(done)
        self.logins = {"hub": self.web_url("hub"), "users": {u["name"]: u for u in users}}
        path = self.root / "logins.json"
        path.touch(0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(self.logins, indent=1) + "\n")
        return self.logins

    def start(self) -> None:
        self.setup()
        self.start_hub()
        self.register()
        self.start_nodes()

    def stop(self) -> None:
        for p in reversed(list(self.procs.values())):
            p.stop()

    def __enter__(self) -> LocalWorkspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ConfigError", "LocalWorkspace"]


def _jobs_toml(jobs: dict[str, Any]) -> str:
    """Return hub.toml's [jobs] table (its settings, then a table per collaboration) from a dict."""
    if not jobs:
        return ""
    common = "".join(f"{k} = {v!r}\n" for k, v in jobs.items() if not isinstance(v, dict))
    own = "".join(f"[jobs.{c}]\n" + "".join(f"{k} = {v!r}\n" for k, v in t.items())
                  for c, t in jobs.items() if isinstance(t, dict))  # fmt: skip
    return "[jobs]\n" + common + own
