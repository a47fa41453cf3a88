"""The settings reference (``reference/settings.md``), generated from the commands' own ``--help`` at build time.

A MkDocs hook (``hooks:`` in mkdocs.yml): every command that declares a ``CLI = Command(...)`` is found, its
``--help`` is composed once with its defaults and once per option of each config group, and every key it
lists becomes a row. A key added to ``conf/`` or to a structured config appears here without hand-editing;
``tests/test_docs.py`` checks the page against the commands' ``--help``.

    python docs/gen_settings.py        # print the page
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "netadapt", "measure", "train", "space", "plots", "core")  # the order of the page
PAGE = "reference/settings.md"


def commands() -> list[str]:
    """The modules that declare a command line (``CLI = Command(``), e.g. ``search.run``."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).glob("*.py")):
            if re.search(r"^CLI = Command\(", path.read_text(), re.M):
                found.append(f"{pkg}.{path.stem}")
    return found


def help_keys(text: str) -> dict[str, tuple[str, str]]:
    """``{key: (default, comment)}`` from the ``Keys`` section of a ``--help`` text."""
    out, inside = {}, False
    for line in text.splitlines():
        if line.startswith("Keys ("):
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            kv, _, comment = line.strip().partition("  # ")
            key, _, default = kv.strip().partition("=")
            out[key] = (default.strip(), comment.strip())
    return out


def help_groups(text: str) -> list[tuple[str, str]]:
    """``[(group, options), ...]`` from the ``Config groups`` section of a ``--help`` text."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("Config groups"):
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            group, _, options = line.strip().partition(" ")
            out.append((group, options.strip()))
    return out


def group_options(cli) -> list[str]:
    """One override per option of each config group (``accuracy=supernet``, ``+space=v3_small``)."""
    return [f"{'+' if g in cli.plus else ''}{g}={p.stem}"
            for g in cli.groups for p in sorted((REPO / "conf" / g).glob("*.yaml"))]


def reference(module: str) -> tuple[object, str, list[tuple[str, str, str, str]]]:
    """(its Command, its default ``--help``, rows ``(key, default, comment, where)``) for one command;
    ``where`` is empty for a key every composition has, else the options that bring it."""
    from core.cli import help_text

    cli = importlib.import_module(module).CLI
    base_text = help_text(cli)
    base = help_keys(base_text)
    extra: dict[str, tuple[str, str, list[str]]] = {}
    for option in group_options(cli):
        for key, (default, comment) in help_keys(help_text(cli, [option])).items():
            if key not in base:
                extra.setdefault(key, (default, comment, []))[2].append(option.lstrip("+"))
    rows = [(k, d, c, "") for k, (d, c) in base.items()]
    rows += [(k, d, c, ", ".join(w)) for k, (d, c, w) in extra.items()]
    return cli, base_text, rows


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    lines = ["# Settings reference", "",
             "Generated at build time from each command's `--help` (`docs/gen_settings.py`): every key, its default "
             "and its comment, as `python -m <command> --help` prints them. Set a key with `key=value` on the "
             "command line; choose a config group's option with `group=option`. Keys listed with an option exist "
             "only when that option is chosen (their default shown is that option's). Every key has a type and "
             "bounds, checked before anything runs (`core/settings.py` and each package's `settings.py`).", ""]
    for module in commands():
        cli, text, rows = reference(module)
        lines += [f"## `{cli.name}`", "", cli.about, "", f"    {cli.name} {cli.usage}", ""]
        groups = help_groups(text)
        if groups:
            lines += ["| config group | options |", "| --- | --- |"]
            lines += [f"| `{g}` | {cell(o)} |" for g, o in groups] + [""]
        lines += ["| key | default | what it does | with |", "| --- | --- | --- | --- |"]
        lines += [f"| `{k}` | `{cell(d)}` | {cell(c)} | {f'`{w}`' if w else ''} |" for k, d, c, w in rows]
        lines.append("")
    return "\n".join(lines)


def on_files(files, config):
    """MkDocs hook: add the generated page to the site (nothing is written into docs/)."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render()))
    return files


if __name__ == "__main__":
    print(render())
