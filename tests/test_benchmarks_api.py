"""Benchmarks use the packages' public API only (names in a package's ``__all__``) and never edit ``sys.path``.

Read statically (ast), so the check needs no torch and sees imports inside functions too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "space", "plots", "measure", "train", "search", "netadapt")
SCRIPTS = sorted((REPO / "benchmarks").rglob("*.py"))


def public_names(package: str) -> set[str] | None:
    """The package's ``__all__``, or None when ``package`` is a module rather than a package."""
    init = REPO.joinpath(*package.split(".")) / "__init__.py"
    if not init.is_file():
        return None
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def violations(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module.split(".")[0] not in PACKAGES:
                if node.level:
                    out.append(f"line {node.lineno}: relative import")
                continue
            names = public_names(module)
            if names is None:
                out.append(f"line {node.lineno}: from {module} (a module, not a package's public API)")
                continue
            out += [f"line {node.lineno}: {module}.{a.name} is not in {module}.__all__"
                    for a in node.names if a.name not in names]
        elif isinstance(node, ast.Import):
            out += [f"line {node.lineno}: import {a.name}" for a in node.names
                    if a.name.split(".")[0] in PACKAGES and public_names(a.name) is None]
        elif (isinstance(node, ast.Attribute) and node.attr == "path"
              and isinstance(node.value, ast.Name) and node.value.id == "sys"):
            out.append(f"line {node.lineno}: sys.path (the project is installed; run scripts with python -m)")
    return out


def test_the_benchmarks_are_found():
    assert len(SCRIPTS) >= 13


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_benchmark_imports_only_public_names(path):
    assert violations(path) == []


def test_the_check_catches_a_private_import_and_a_path_edit(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.path.insert(0, '.')\nfrom netadapt.proposals import propose\n"
                   "from measure import LatencyTable, _private\nimport train.loop\n")
    found = violations(bad)
    assert len(found) == 4, found
    assert any("sys.path" in v for v in found) and any("_private" in v for v in found)


def test_every_file_in_benchmarks_is_reached_from_the_index_or_a_report():
    """No orphan: each tracked file is named in benchmarks/README.md or a report, or lies in a folder the index names."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files are tracked")
    tracked = subprocess.run(["git", "ls-files", "benchmarks"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    texts = {f: (REPO / f).read_text() for f in tracked if f.endswith(".md") and (REPO / f).is_file()}
    index = texts.get("benchmarks/README.md", "")
    orphans = []
    for f in tracked:
        rel = Path(f).relative_to("benchmarks")
        folders = [str(p) + "/" for p in rel.parents if str(p) != "."]
        named = any(rel.name in t or str(rel) in t for m, t in texts.items() if m != f)
        if f != "benchmarks/README.md" and not named and not any(d in index for d in folders[:-1]):
            orphans.append(f)
    assert orphans == []
