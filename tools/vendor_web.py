"""Vendor the web app's browser assets: NL Design System CSS and tokens, htmx, Vega, and axe-core for the tests.

Installs the packages pinned in ``tools/web-vendor/package.json`` (exact versions, ``package-lock.json``
committed) with ``npm ci --ignore-scripts`` into a temporary directory, copies the files the app serves
into ``src/werkplaats/web/static/vendor/`` (and axe-core into ``tests/web/vendor/``), each package's
licence beside them, and writes ``static/vendor/VERSIONS.json``: package, version, licence and the
sha256 of every file copied. The vendored files are committed (they are the release); this script makes
them reproducible. Nothing is ever loaded from outside the workspace at run time.

    python tools/vendor_web.py          # re-vendor (needs node and npm, reaches the npm registry)

To update a package: change its version in package.json, ``npm install --package-lock-only
--ignore-scripts`` in tools/web-vendor, run this script, and commit all three.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tools" / "web-vendor"
STATIC = ROOT / "src" / "werkplaats" / "web" / "static" / "vendor"
TESTS = ROOT / "tests" / "web" / "vendor"

# NB: package -> {file in the package: where it goes}; "static:" under STATIC, "tests:" under TESTS
FILES: dict[str, dict[str, str]] = {
    "@utrecht/component-library-css": {"dist/index.css": "static:utrecht/component-library.css"},
    "@nl-design-system-unstable/voorbeeld-design-tokens": {"dist/theme.css": "static:voorbeeld/theme.css"},
    "htmx.org": {"dist/htmx.min.js": "static:htmx.min.js"},
    "vega": {"build/vega.min.js": "static:vega.min.js"},
    "vega-lite": {"build/vega-lite.min.js": "static:vega-lite.min.js"},
    # NB: vega-embed's UMD build bundles vega-interpreter (its expressionInterpreter), used with
    # {ast: true} so that no expression is compiled with Function() (the CSP has no 'unsafe-eval')
    "vega-embed": {"build/vega-embed.min.js": "static:vega-embed.min.js"},
    "vega-interpreter": {},  # NB: pinned for the record; its ESM build is inside vega-embed.min.js
    "axe-core": {"axe.min.js": "tests:axe.min.js"},
}
LICENCE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license")


def sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def target(spec: str) -> tuple[Path, str]:
    """The destination of a "static:..." or "tests:..." spec and its name as recorded in VERSIONS.json."""
    where, rel = spec.split(":", 1)
    if where == "static":
        return STATIC / rel, f"static/vendor/{rel}"
    return TESTS / rel, f"tests/web/vendor/{rel}"


def vendor(modules: Path) -> dict[str, object]:
    """Copy the files from an installed node_modules; return the VERSIONS.json document."""
    packages = []
    for name, files in FILES.items():
        pkg_dir = modules / name
        meta = json.loads((pkg_dir / "package.json").read_text())
        copied = {}
        for src, spec in files.items():
            dest, recorded = target(spec)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pkg_dir / src, dest)
            copied[recorded] = sha256(dest)
        lic = next((pkg_dir / n for n in LICENCE_NAMES if (pkg_dir / n).exists()), None)
        if lic is not None:
            dest = STATIC / "licenses" / (name.replace("/", "__").lstrip("@") + ".txt")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lic, dest)
            copied[f"static/vendor/licenses/{dest.name}"] = sha256(dest)
        packages.append(
            {"package": name, "version": meta["version"], "license": meta.get("license", ""), "files": copied}
        )
    return {
        "generated_by": "tools/vendor_web.py",
        "note": "Files copied from the npm packages pinned in tools/web-vendor/package-lock.json; do not edit.",
        "packages": packages,
    }


def main() -> int:
    """Install the pinned packages in a temporary directory, copy the files, write VERSIONS.json."""
    if shutil.which("npm") is None:
        print("vendor_web: npm is needed (apt-get install npm)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="werkplaats-vendor-") as tmp:
        for f in ("package.json", "package-lock.json"):
            shutil.copyfile(MANIFEST / f, Path(tmp) / f)
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp, check=True)
        for d in (STATIC, TESTS):
            shutil.rmtree(d, ignore_errors=True)
        doc = vendor(Path(tmp) / "node_modules")
    (STATIC / "VERSIONS.json").write_text(json.dumps(doc, indent=2) + "\n")
    for p in doc["packages"]:  # type: ignore[attr-defined]
        print(f"{p['package']} {p['version']} ({p['license']}): {len(p['files'])} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
