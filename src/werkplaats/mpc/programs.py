"""A party's programs: a job's plan compiled to an SPU executable, and the cache of compiled programs.

Compiling a plan (tracing its JAX function and lowering it with SPU's compiler) takes
seconds to tens of seconds, more than many jobs take to run; so every party keeps the
programs it compiled, keyed by everything a program is derived from:

- the canonical JSON of the plan, the schemas (code lists, date ranges) and each
  table's row count (which fix the input shapes);
- the SPU runtime configuration (protocol, field, fixed-point bits, sort method, ...);
- the versions of werkplaats, SPU, JAX and jaxlib, and a digest of werkplaats' own
  compiler source (so a changed kernel in a development checkout is compiled afresh).

An identical job reuses the program; any change in one of these compiles a new one.

A bucketed job (``PartyHeader.buckets`` > 0; `werkplaats.compile.staged`) is a list of
stages, each three programs: the partial over one bucket, the combination of two partials and
the step on the combined leaves. Their keys hold the padded bucket sizes, never the real
row counts, and not the bucket count: the staged program is built count-independent
(`build_staged(..., buckets=None)`: every range is checked obliviously), so a job's programs
are reused across every count with the same padded sizes, and the combination across plans
with the same leaves. `load_staged` compiles (or takes from the cache) all of them at once.
The cache lives in the party's memory (the local cluster's parties serve many jobs)
and, when the party is given a directory, on disk (an engine's party is a fresh
process per job; it keeps programs in the engine's own state directory). Disk entries
are written atomically (a temporary file, then ``os.replace``) and carry a digest; an
entry that cannot be read or does not verify is logged, ignored and compiled afresh.
Processes that share a directory compile a program once: the first takes an exclusive lock on
the key (``<key>.lock``) while it compiles, the others wait for it and read the entry (the local
cluster's three parties share their cluster's directory; each engine has its own).

Security model: a program is derived from public metadata only — plan, schemas, row
counts, configuration and software versions — never from data or shares, so caching it
keeps nothing secret and reveals nothing a party did not already know. A disk cache is
as trusted as its directory: whoever can write there can already change the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from . import wire
from .process import SORT_YARDSTICK, STAGED_SELFTEST, PartyHeader
from .runtime import precision_of, runtime_config

log = logging.getLogger("werkplaats.party")
CACHE_VERSION = 1
SUFFIX = ".spu"
# NB: the parts of werkplaats a compiled program depends on; their source is part of the key.
_SOURCE_PACKAGES = ("catalog", "compile", "mpc", "plan")


@dataclass(frozen=True, slots=True)
class Program:
    """A compiled program, ready for a job: its executable and what getting it cost."""

    exe: Any
    inputs: int  # how many input shares it takes
    key: str
    cached: bool
    compile_s: float  # time spent getting it for this job
    compiled_in_s: float  # time its compilation took when it was compiled
    precision: str = "standard"  # the runtime's (mpc/runtime.precision_of): the ring its shares live in


@cache
def software_fingerprint() -> dict[str, str]:
    """Return the versions and the compiler-source digest that are part of every cache key."""
    out = {}
    for dist in ("werkplaats", "spu", "jax", "jaxlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for pkg in _SOURCE_PACKAGES:
        for p in sorted((root / pkg).rglob("*.py")):
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    out["source"] = h.hexdigest()
    return out


def program_key(public: dict[str, Any]) -> str:
    """Return the cache key of a program built from `public` metadata, this configuration and software."""
    runtime = str(runtime_config(public.get("precision", "standard")))
    doc = {"v": CACHE_VERSION, **public, "runtime": runtime, "software": software_fingerprint()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ProgramCache:
    """Compiled programs by key: the newest few in memory, and optionally every one on disk."""

    def __init__(self, directory: Path | None = None, *, in_memory: int = 16, on_disk: int = 64) -> None:
        self.directory = directory
        self.in_memory = in_memory
        self.on_disk = on_disk
        self.memory: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> tuple[Any, float] | None:
        """Return (executable, the time it took to compile) for key, or None."""
        if key in self.memory:
            self.memory.move_to_end(key)
            return self.memory[key]
        got = self._read(key) if self.directory is not None else None
        if got is not None:
            self._remember(key, got)
        return got

    def put(self, key: str, exe: Any, compile_s: float) -> None:
        """Keep a freshly compiled program."""
        self._remember(key, (exe, compile_s))
        if self.directory is not None:
            try:
                self._write(key, exe, compile_s)
            except OSError as e:  # NB: a cache that cannot be written only costs time
                log.warning("could not store compiled program %s: %s", key[:12], e)

    def _remember(self, key: str, item: tuple[Any, float]) -> None:
        self.memory[key] = item
        self.memory.move_to_end(key)
        while len(self.memory) > self.in_memory:
            self.memory.popitem(last=False)

    @contextlib.contextmanager
    def compiling(self, key: str) -> Iterator[None]:
        """Hold the key's lock (with a directory), so that processes sharing it compile a program once."""
        if self.directory is None:
            yield
            return
        import fcntl

        with open(self.directory / f"{key}.lock", "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / (key + SUFFIX)

    def _read(self, key: str) -> tuple[Any, float] | None:
        from spu import libspu

        path = self._path(key)
        try:
            with open(path, "rb") as f:
                head, blobs = wire.recv(f)
            if head.get("v") != CACHE_VERSION or head.get("key") != key or len(blobs) != 1:
                msg = "not an entry for this key"
                raise ValueError(msg)
            if hashlib.sha256(blobs[0]).hexdigest() != head.get("digest"):
                msg = "digest does not match"
                raise ValueError(msg)
            exe = libspu.Executable(
                name=str(head["name"]), input_names=list(head["input_names"]),
                output_names=list(head["output_names"]), code=blobs[0],
            )  # fmt: skip
            compile_s = float(head["compile_s"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, wire.WireClosed) as e:
            log.warning("ignoring unreadable compiled program %s (%s: %s); compiling afresh",
                        key[:12], type(e).__name__, e)  # fmt: skip
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # NB: the least recently used entries are the ones pruned
        return exe, compile_s

    def _write(self, key: str, exe: Any, compile_s: float) -> None:
        code = bytes(exe.code)
        head = {
            "v": CACHE_VERSION, "key": key, "name": exe.name, "input_names": list(exe.input_names),
            "output_names": list(exe.output_names), "compile_s": compile_s,
            "digest": hashlib.sha256(code).hexdigest(),
        }  # fmt: skip
        buf = io.BytesIO()
        wire.send(buf, head, [code])
        path = self._path(key)
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._prune()

    def _prune(self) -> None:
        assert self.directory is not None
        entries = []
        for p in self.directory.glob("*" + SUFFIX):
            with contextlib.suppress(OSError):
                entries.append((p.stat().st_mtime, p))
        entries.sort()
        for _, p in entries[: max(0, len(entries) - self.on_disk)]:
            with contextlib.suppress(OSError):
                p.unlink()


def _compile(fn: Any, args: list[Any]) -> Any:
    from spu import libspu
    from spu.utils import frontend

    names = [f"in{i}" for i in range(len(args))]
    exe, _ = frontend.compile(
        frontend.Kind.JAX, fn, args, {}, names, [libspu.Visibility.VIS_SECRET] * len(args),
        lambda outs: [f"out{i}" for i in range(len(outs))],
    )  # fmt: skip
    return exe


def _sort_yardstick(size: int) -> Any:
    """Return the JAX function and input shapes of the built-in yardstick: a secret sort of `size` keys."""
    import jax

    def fn(keys: Any, payload: Any) -> tuple[Any, Any]:
        k, p = jax.lax.sort([keys, payload], num_keys=1)
        return k[:1], p[:1]

    shape = jax.ShapeDtypeStruct((size,), "int64")
    return fn, [shape, shape]


def _plan_program(h: PartyHeader) -> tuple[dict[str, Any], Any]:
    """Return a plan job's public key material and a thunk building its JAX function and input shapes."""
    import jax

    from ..catalog.serde import catalog_from_dict, catalog_to_dict
    from ..compile.analyze import analyze
    from ..compile.kernels.cellkey import key_inputs
    from ..compile.layout import layout
    from ..compile.register import RegisterEntry, attach
    from ..compile.rules import DisclosureRules
    from ..compile.spu import build_program
    from ..plan.serde import canonical_json, plan_from_json

    assert h.plan is not None and h.catalog is not None and h.rows is not None
    catalog = catalog_from_dict(h.catalog)
    rules = DisclosureRules.from_settings(h.rules or {}, "the run header's rules")
    rows = dict(h.rows)
    # NB: no row counts to analyze: rule 8's groups-per-rows limit was checked before any party started (run_local,
    # the engine with the public rounded counts); here the exact counts would only risk naming one in a refusal
    a = analyze(plan_from_json(h.plan), catalog, rules)
    if h.register:  # NB: rule 9: the registered cell definitions are compiled into the same program
        attach(a, [RegisterEntry.from_dict(e) for e in h.register])
    slots = layout(a, rows)
    public = {"plan": canonical_json(a.plan), "catalog": catalog_to_dict(catalog), "rows": rows,
              "rules": rules.to_settings(), "register": h.register or []}  # fmt: skip

    nkey = key_inputs(a)  # NB: the engines' parts of the perturbation key follow the slots (party.exchange_key_parts)

    def build() -> tuple[Any, list[Any]]:
        shapes = [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in slots]
        return build_program(a, slots, rows), shapes + [jax.ShapeDtypeStruct((1,), "int64")] * nkey

    return {**public, "inputs": len(slots), "key_inputs": nkey, "precision": precision_of(a.plan)}, build


def _describe(h: PartyHeader) -> tuple[dict[str, Any], Any]:
    """Return a job's public key material and a thunk building its JAX function and input shapes."""
    if h.program == SORT_YARDSTICK:

        def build() -> tuple[Any, list[Any]]:
            return _sort_yardstick(h.size)

        return {"program": SORT_YARDSTICK, "size": h.size, "inputs": 2}, build
    if h.program is None:
        return _plan_program(h)
    msg = f"unknown built-in program {h.program!r}"
    raise ValueError(msg)


def job_key(h: PartyHeader) -> str:
    """Return the cache key of a job's program (without compiling it)."""
    return program_key(_describe(h)[0])


def load_program(h: PartyHeader, cache: ProgramCache) -> Program:
    """Return the job's compiled program, from the cache when an identical one was compiled before."""
    t0 = time.perf_counter()
    public, build = _describe(h)
    key = program_key(public)
    with cache.compiling(key):
        return _get_or_compile(h, cache, key, public, build, t0)


def _get_or_compile(h: PartyHeader, cache: ProgramCache, key: str, public: dict[str, Any], build: Any,
                    t0: float) -> Program:  # fmt: skip
    got = cache.get(key)
    if got is not None:
        exe, took = got
        spent = time.perf_counter() - t0
        log.info("job %s: program %s from the cache (compiled earlier in %.1f s; %.2f s now)",
                 h.job, key[:12], took, spent)  # fmt: skip
        return Program(exe, public["inputs"], key, True, spent, took, public.get("precision", "standard"))
    fn, shapes = build()
    exe = _compile(fn, shapes)
    spent = time.perf_counter() - t0
    cache.put(key, exe, spent)
    log.info("job %s: compiled program %s in %.1f s", h.job, key[:12], spent)
    return Program(exe, public["inputs"], key, False, spent, spent, public.get("precision", "standard"))


# --- bucketed (staged) programs ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StagePrograms:
    """One stage's three compiled programs and its name (for the stats)."""

    name: str
    partial: Program
    combine: Program
    step: Program
    leaves: int


@dataclass(frozen=True, slots=True)
class Staged:
    """A bucketed job's compiled stages: per bucket ``inputs`` shares; ``key_inputs`` initial state inputs."""

    stages: list[StagePrograms]
    inputs: int
    key_inputs: int
    precision: str

    @property
    def compile_s(self) -> float:
        return sum(p.compile_s for st in self.stages for p in (st.partial, st.combine, st.step))

    @property
    def cached(self) -> bool:
        return all(p.cached for st in self.stages for p in (st.partial, st.combine, st.step))

    @property
    def compiled_in_s(self) -> float:
        return sum(p.compiled_in_s for st in self.stages for p in (st.partial, st.combine, st.step))


def _combine_fn(leaves: list[Any]) -> Any:
    """Return the combination of two partials: `compile.staged.combine`."""
    from ..compile.staged import combine

    try:
        return combine(leaves)
    except NotImplementedError:  # NB: until the compiler side lands: the same rule, add/min/max/top:N
        return _combine_local(leaves)


def _combine_local(leaves: list[Any]) -> Any:
    import jax.numpy as jnp

    def fn(*args: Any) -> tuple[Any, ...]:
        k = len(leaves)
        acc, part = args[:k], args[k:]
        out = []
        for leaf, x, y in zip(leaves, acc, part, strict=True):
            if leaf.op == "add":
                out.append(x + y)
            elif leaf.op == "min":
                out.append(jnp.minimum(x, y))
            elif leaf.op == "max":
                out.append(jnp.maximum(x, y))
            else:
                msg = f"cannot combine leaves by {leaf.op!r}"
                raise ValueError(msg)
        return tuple(out)

    return fn


def _selftest_program(h: PartyHeader) -> tuple[dict[str, Any], Any]:
    """The built-in bucketed self-test: count, sum, max and (two stages) the sum of squared deviations.

    Inputs per bucket: (ROW, v) of ``size`` rows. One stage returns (count, sum, max); two stages
    also ``Σ (v·count − sum)²`` over the real rows, which needs the first stage's totals.
    The runtime's own test and benchmark of streaming and spooling (tests/mpc/test_buckets.py).
    """
    import jax.numpy as jnp

    from ..compile.staged import Leaf, Stage, StagedProgram

    two = h.program == STAGED_SELFTEST[1]
    size = h.size

    def tree_max(x: Any) -> Any:  # NB: pairwise (SPU's own max starts from 2^63 - 1, which overflows the ring)
        while x.shape[0] > 1:
            if x.shape[0] % 2:
                x = jnp.concatenate([x, x[-1:]])
            x = jnp.maximum(x[0::2], x[1::2])
        return x

    def partial1(row: Any, v: Any) -> tuple[Any, ...]:
        return jnp.sum(row).reshape(1), jnp.sum(row * v).reshape(1), tree_max(jnp.where(row == 1, v, -1))

    def step1(c: Any, s: Any, m: Any) -> tuple[Any, ...]:
        return (jnp.zeros(1, dtype=jnp.int64), c, s, m) if not two else (c, s, m)

    leaves1 = [Leaf((1,), "int64", "add"), Leaf((1,), "int64", "add"), Leaf((1,), "int64", "max")]
    stages = [Stage(partial1, leaves1, step1, "totals")]
    if two:

        def partial2(row: Any, v: Any, c: Any, s: Any, m: Any) -> tuple[Any, ...]:
            d = v * c[0] - s[0]
            return (jnp.sum(row * d * d).reshape(1),)

        def step2(q: Any, c: Any, s: Any, m: Any) -> tuple[Any, ...]:
            return jnp.zeros(1, dtype=jnp.int64), c, s, m, q

        stages.append(Stage(partial2, [Leaf((1,), "int64", "add")], step2, "deviations"))
    public = {"program": h.program, "size": size}
    shapes = [((size,), "int64"), ((size,), "int64")]
    return public, (StagedProgram(stages), shapes, 0, "standard")


def _staged_plan(h: PartyHeader) -> tuple[dict[str, Any], Any]:
    """Return a bucketed plan job's public key material and a thunk building its staged program."""
    from ..catalog.serde import catalog_from_dict, catalog_to_dict
    from ..compile.analyze import analyze
    from ..compile.kernels.cellkey import key_inputs
    from ..compile.layout import layout
    from ..compile.register import RegisterEntry, attach
    from ..compile.rules import DisclosureRules
    from ..compile.staged import build_staged
    from ..plan.serde import canonical_json, plan_from_json

    assert h.plan is not None and h.catalog is not None and h.rows is not None
    catalog = catalog_from_dict(h.catalog)
    rules = DisclosureRules.from_settings(h.rules or {}, "the run header's rules")
    rows = dict(h.rows)  # NB: the padded bucket sizes
    a = analyze(plan_from_json(h.plan), catalog, rules)
    if h.register:
        attach(a, [RegisterEntry.from_dict(e) for e in h.register])
    slots = layout(a, rows, bucketed=True)
    public = {"plan": canonical_json(a.plan), "catalog": catalog_to_dict(catalog), "padded_rows": rows,
              "rules": rules.to_settings(), "register": h.register or [],
              "precision": precision_of(a.plan)}  # fmt: skip

    def build() -> tuple[Any, list[tuple[tuple[int, ...], str]], int, str]:
        prog = build_staged(a, slots, rows)
        return prog, [(s.shape, s.dtype) for s in slots], key_inputs(a), precision_of(a.plan)

    return {**public, "inputs": len(slots)}, build


def load_staged(h: PartyHeader, cache: ProgramCache) -> Staged:
    """Return a bucketed job's compiled stages (every program compiled or from the cache, before linking)."""
    import jax

    if h.program in STAGED_SELFTEST:
        public, built = _selftest_program(h)
        prog, shapes, nkey, precision = built
    elif h.program is None:
        public, build = _staged_plan(h)
        prog, shapes, nkey, precision = build()
    else:
        msg = f"built-in program {h.program!r} does not run bucketed"
        raise ValueError(msg)
    if nkey and not prog.state_in:  # NB: the initial state is the three parts of the perturbation key
        prog.state_in = [((1,), "int64")] * nkey
    state = [jax.ShapeDtypeStruct(s, d) for s, d in prog.state_in]
    bucket = [jax.ShapeDtypeStruct(s, d) for s, d in shapes]
    out: list[StagePrograms] = []
    for i, st in enumerate(prog.stages):
        leaves = [jax.ShapeDtypeStruct(lf.shape, lf.dtype) for lf in st.leaves]
        base = {**public, "stage": i, "stages": len(prog.stages), "precision": precision}
        partial = _get(h, cache, {**base, "part": "partial"}, st.partial, [*bucket, *state])
        desc = [[list(lf.shape), lf.dtype, lf.op] for lf in st.leaves]
        comb = _get(h, cache, {"combine": desc, "precision": precision}, _combine_fn(st.leaves), [*leaves, *leaves])
        step = _get(h, cache, {**base, "part": "step"}, st.step, [*leaves, *state])
        out.append(StagePrograms(st.name or f"stage {i}", partial, comb, step, len(st.leaves)))
        if i + 1 < len(prog.stages):
            state = list(jax.eval_shape(st.step, *leaves, *state))
    return Staged(out, len(shapes), len(prog.state_in), precision)


def _get(h: PartyHeader, cache: ProgramCache, public: dict[str, Any], fn: Any, shapes: list[Any]) -> Program:
    """Return one compiled program of a staged job, from the cache when an identical one was compiled."""
    t0 = time.perf_counter()
    key = program_key(public)
    precision = public.get("precision", "standard")
    with cache.compiling(key):
        got = cache.get(key)
        if got is not None:
            exe, took = got
            return Program(exe, len(shapes), key, True, time.perf_counter() - t0, took, precision)
        exe = _compile(fn, shapes)
        spent = time.perf_counter() - t0
        cache.put(key, exe, spent)
    log.info("job %s: compiled program %s (%s) in %.1f s", h.job, key[:12], public.get("part", "combine"), spent)
    return Program(exe, len(shapes), key, False, spent, spent, precision)
