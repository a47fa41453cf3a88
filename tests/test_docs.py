"""The docs agree with the commands: every key ``--help`` lists is in the settings reference, and every key the
reference or a guide names is one some ``--help`` lists."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gen_settings", REPO / "docs" / "gen_settings.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


@pytest.fixture(scope="module")
def page():
    return gen.render()


def sections(page: str) -> dict[str, set[str]]:
    """``{"python -m search.run": {keys}}`` from the rendered reference."""
    out, current = {}, None
    for line in page.splitlines():
        m = re.match(r"## `(.+)`$", line)
        if m:
            current = out.setdefault(m.group(1), set())
        elif current is not None:
            k = re.match(r"\| `([\w.]+)` \| `", line)
            if k:
                current.add(k.group(1))
    return out


def test_every_command_is_in_the_reference(page):
    found = sections(page)
    assert {"python -m search.run", "python -m netadapt.run", "python -m measure.lut",
            "python -m search.supernet"} <= set(found)
    assert all(found.values())


@pytest.mark.parametrize("module", ["search.run", "netadapt.run", "measure.lut"])
def test_help_and_the_reference_list_the_same_keys(page, module):
    """The real command's --help, run as a user runs it, against the page: both directions."""
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    listed = set(gen.help_keys(done.stdout))
    documented = sections(page)[f"python -m {module}"]
    assert listed and listed <= documented, sorted(listed - documented)
    # The other direction: a documented key that the default --help lacks comes with a group option.
    cli = importlib.import_module(module).CLI
    from core.cli import help_text

    with_options = set(listed)
    for option in gen.group_options(cli):
        with_options |= set(gen.help_keys(help_text(cli, [option])))
    assert documented <= with_options, sorted(documented - with_options)


def test_every_key_a_guide_names_exists(page):
    """A guide that names `train.something` or `accuracy.something` names a key some command has."""
    known = set().union(*sections(page).values())
    pattern = r"`((?:train|latency|accuracy|data|sampler)\.(?!(?:json|py|yaml|csv)`)\w+)(?:=[^`]*)?`"  # not file names
    stale = {}
    for md in sorted((REPO / "docs").rglob("*.md")):
        if "benchmarks" in md.parts:
            continue
        for key in re.findall(pattern, md.read_text()):
            if key not in known:
                stale.setdefault(md.name, set()).add(key)
    assert not stale, stale


def test_the_results_guide_names_every_column_the_code_writes():
    from search.results import COLUMNS, REFERENCE_COLUMNS

    guide = (REPO / "docs" / "guides" / "results.md").read_text()
    named = set(re.findall(r"`(\w+)`", guide))
    written = set(COLUMNS) | set(REFERENCE_COLUMNS) | {"number", "completed", "hypervolume"}
    assert written <= named, sorted(written - named)
