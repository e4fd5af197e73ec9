"""Imports run only downward: the layer rule of CONTRIBUTING.md, checked over the source's syntax tree.

Every import counts — at module level, inside a function body, under ``if TYPE_CHECKING:`` — because
most backward edges the project ever had were imports inside functions. The planted-edge tests show
that the check fails on each backward edge it is meant to catch.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import werkplaats

ROOT = Path(werkplaats.__file__).parent
PKG = "werkplaats"

# Lowest first. A module may import its own package and any package of a lower rank; packages that
# share a rank may not import each other. The package root (the public facade) is above everything.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exceptions",),
    ("catalog",),
    ("plan",),
    ("result",),
    ("compile",),
    ("mpc",),
    ("expr",),
    ("frame",),
    ("local", "stats"),
    ("synth", "usecases", "workspace"),
    ("demo",),
    ("web",),
    ("cli",),
)
# The package root is the public facade: it re-exports the API up to the client of the workspace, so it
# sits just above the services (demo, web and cli may use `import werkplaats as wp`; nothing lower may).
FACADE_RANK = next(i for i, layer in enumerate(LAYERS) if "workspace" in layer) + 0.5

# Edges that the ranks allow but the roles do not, each with its reason.
FORBIDDEN: tuple[tuple[str, str, str], ...] = (
    ("werkplaats.workspace", "werkplaats.local", "services do not depend on the local runner"),
    ("werkplaats.workspace", "werkplaats.mpc.cluster", "services do not depend on the local test cluster"),
    ("werkplaats.workspace.datastation", "werkplaats.workspace.hub", "a datastation never runs hub code"),
    ("werkplaats.workspace.datastation", "werkplaats.workspace.db", "a datastation never touches the hub's database"),
    ("werkplaats.workspace.sources", "werkplaats.workspace.hub", "datastation-side sources never run hub code"),
    ("werkplaats.workspace.sources", "werkplaats.workspace.db", "datastation-side sources never use the hub's db"),
    ("werkplaats.workspace.engine", "werkplaats.workspace.hub", "an engine never runs hub code"),
    ("werkplaats.workspace.engine", "werkplaats.workspace.db", "an engine never touches the hub's database"),
    ("werkplaats.workspace.bucketkey", "werkplaats.workspace.hub", "a datastation-side key never runs hub code"),
    ("werkplaats.workspace.bucketkey", "werkplaats.workspace.db", "a datastation-side key never uses the hub db"),
)
# The analyst's client may run plans locally on dummy data (preview): the one service-side user of run_local.
ALLOWED = {("werkplaats.workspace.client", "werkplaats.local")}


@dataclass(frozen=True)
class Violation:
    """One import that breaks the rule."""

    module: str
    line: int
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}: {self.why}"


def module_name(path: Path) -> str:
    """Return the dotted module name of a file below the package root."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, str]:
    """Return every module of the package, by dotted name, with its source text."""
    return {module_name(p): p.read_text() for p in sorted(ROOT.rglob("*.py")) if "migrations" not in p.parts}


def imports(module: str, text: str, known: set[str]) -> list[tuple[int, str]]:
    """Return (line, imported module) for every import in a module's source, wherever it stands."""
    is_pkg = (module in known and any(k.startswith(module + ".") for k in known)) or module == PKG
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for a in node.names:
                # `from . import pki` imports the submodule pki, not the package
                sub = f"{target}.{a.name}"
                out.append((node.lineno, sub if sub in known else target))
    return [(line, t) for line, t in out if t == PKG or t.startswith(PKG + ".")]


def rank(module: str) -> tuple[float, str]:
    """Return the layer rank and the top package of a module (``python -m werkplaats`` ranks above all)."""
    parts = module.split(".")
    if len(parts) == 1:
        return FACADE_RANK, PKG
    if parts[1] == "__main__":
        return len(LAYERS), parts[1]
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer:
            return i, parts[1]
    msg = f"{module} is in no layer: add its package to LAYERS in tests/test_layers.py"
    raise AssertionError(msg)


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def check(modules: dict[str, str]) -> list[Violation]:
    """Return every import of the given modules that runs against the layer rule."""
    known = set(modules)
    bad: list[Violation] = []
    for module, text in modules.items():
        r_from, top_from = rank(module)
        for line, target in imports(module, text, known):
            r_to, top_to = rank(target)
            why = ""
            if r_to > r_from:
                why = f"layer {top_to} is above layer {top_from}"
            elif r_to == r_from and top_to != top_from:
                why = f"{top_from} and {top_to} share a layer and may not import each other"
            elif (module, target) not in ALLOWED:
                why = next((r for src, dst, r in FORBIDDEN if _under(module, src) and _under(target, dst)), "")
            if why:
                bad.append(Violation(module, line, target, why))
    return bad


def test_imports_run_only_downward() -> None:
    bad = check(sources())
    assert not bad, "\n".join(map(str, bad))


def test_every_package_has_a_layer() -> None:
    for module in sources():
        rank(module)


# Each backward edge the project once had, planted again: at module level, inside a function body
# and under TYPE_CHECKING. The check must name every one.
PLANTED = [
    ("werkplaats.workspace.client", "from werkplaats import scan"),
    ("werkplaats.workspace.hub", "from werkplaats.local import run_local"),
    ("werkplaats.workspace.hub", "from werkplaats.mpc.cluster import LocalCluster"),
    ("werkplaats.workspace.datastation", "from werkplaats.mpc.cluster import LocalCluster"),
    ("werkplaats.compile.spu", "from werkplaats.mpc.encode import encode"),
    ("werkplaats.frame", "from werkplaats.local import run_local"),
    ("werkplaats.workspace.sources", "from werkplaats.workspace import db"),
    ("werkplaats.catalog.schema", "from werkplaats.plan import nodes"),
    ("werkplaats.compile.analyze", "from werkplaats.frame import LazyFrame"),
    ("werkplaats.mpc.runtime", "from werkplaats.workspace import pki"),
    ("werkplaats.usecases.hotspots", "from werkplaats import run_local"),
]


def _plant(text: str, statement: str, where: str) -> str:
    if where == "module":
        return text + f"\n{statement}\n"
    if where == "function":
        return text + f"\n\ndef _planted() -> None:\n    {statement}\n"
    return text + f"\n\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    {statement}\n"


@pytest.mark.parametrize("where", ["module", "function", "type_checking"])
@pytest.mark.parametrize(("module", "statement"), PLANTED)
def test_check_fails_on_a_planted_backward_edge(module: str, statement: str, where: str) -> None:
    modules = sources()
    if module not in modules:
        pytest.fail(f"{module} no longer exists: plant the edge into the module that took its place")
    modules[module] = _plant(modules[module], statement, where)
    bad = [v for v in check(modules) if v.module == module]
    assert bad, f"planting {statement!r} into {module} ({where}) went unnoticed"


def test_check_resolves_relative_imports() -> None:
    modules = sources()
    modules["werkplaats.compile.spu"] += "\n\ndef _planted() -> None:\n    from ..mpc import encode\n"
    assert any(v.target == "werkplaats.mpc.encode" for v in check(modules))
