"""What every bneck command shares: Hydra composition and the error contract.

Entry points compose their config with Hydra's compose API rather than ``@hydra.main`` so that bad
input ends as one line on stderr with exit status 2 (``@hydra.main`` prints its own report and exits
1), and so no ``outputs/`` folders appear in the user's working directory: runs write under
``results_dir`` only. What ``@hydra.main`` would give a Hydra user is answered here, once, for every
entry point that declares a :class:`Command` (``CLI`` in its module): ``--help`` (config groups with
their options, every key with its default and its YAML comment), ``--cfg job [--resolve]`` (the
composed config, nothing run) and ``--multirun``/``-m``, refused in one line: several workers are the
same command started several times on one storage. Every value is checked against the structured
configs (``core/settings.py``) when composed, so bad input never reaches torch.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError, UserError
from .redact import guard_process, redact, remember

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
EXIT_USAGE = 2


# The structured config of each primary config: its module registers it in Hydra's ConfigStore.
SCHEMAS = {"search": ("search.settings", "SearchConfig"), "netadapt": ("netadapt.settings", "NetAdaptConfig"),
           "lut": ("measure.settings", "LutConfig"), "fidelity": ("search.fidelity_settings", "FidelityConfig")}
# Groups typed Any in those (their options differ in shape), checked after composition.
NODE_SCHEMAS = {"space": ("space.settings", "SpaceSettings")}


def schema(config_name: str):
    """The dataclass of ``conf/<config_name>.yaml`` (imported, so it is in the ConfigStore), or None."""
    import importlib

    if config_name not in SCHEMAS:
        return None
    module, name = SCHEMAS[config_name]
    return getattr(importlib.import_module(module), name)


def compose(config_name: str, overrides: Sequence[str] = ()):
    """The composed config ``conf/<config_name>.yaml`` with command-line ``overrides``, every setting
    checked against its structured config (``core/settings.py``): bad input raises UsageError."""
    import importlib

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from .settings import conversion_message

    root = schema(config_name)
    remember_urls(overrides)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
        if root is not None:
            OmegaConf.to_object(cfg)  # runs every __post_init__: the range checks
            for node, (module, name) in NODE_SCHEMAS.items():
                if cfg.get(node) is not None:
                    cls = getattr(importlib.import_module(module), name)
                    typed = OmegaConf.merge({node: OmegaConf.structured(cls)}, {node: cfg[node]})
                    OmegaConf.to_object(typed)
    except (HydraException, OmegaConfBaseException) as e:
        msg = conversion_message(e, root)
        if msg:
            raise UsageError(msg) from None
        if added := _unlisted_group(str(e), overrides):
            raise UsageError(f"bad override: conf/{config_name}.yaml presets no {added.split('=')[0]}: pass +{added} "
                             "(a leading +)") from None
        hint = ("; quote a URL holding '=', ',' or braces (storage='...'), or export it and pass "
                "storage='${oc.env:VAR}'" if any("://" in o for o in overrides) else "")
        raise UsageError(f"bad override: {_first_line(e)} (see conf/{config_name}.yaml for the keys{hint})") from None
    try:  # values read from the environment (storage=${oc.env:BNECK_STORAGE}) are hidden too
        remember_urls(v for _, v in _flatten(OmegaConf.to_container(cfg, resolve=True)))
    except Exception:  # noqa: BLE001 -- an unresolvable value fails later, with its own message
        pass
    return cfg


def remember_urls(values) -> None:
    """Hide the password of every URL among ``values`` (overrides or config values) in all later output."""
    for v in values:
        m = re.search(r"[A-Za-z][A-Za-z0-9+.-]*://.*", str(v), re.S)  # after key= and an opening quote, if any
        if m:
            remember(m.group(0).rstrip("'\""))


def _unlisted_group(error: str, overrides: Sequence[str]) -> str | None:
    """The override ``group=name`` that chose a config group absent from the defaults list (Hydra wants
    ``+group=name`` there, e.g. ``+space=v3_small``), if that is what ``error`` reports."""
    m = re.search(r"Could not override '([\w.]+)'\. No match in the defaults list", error)
    if m and (CONF_DIR / m[1]).is_dir():
        return next((o for o in overrides if o.split("=", 1)[0] == m[1]), None)
    return None


def _first_line(e: BaseException) -> str:
    return redact(str(e).strip().splitlines()[0]) if str(e).strip() else type(e).__name__


def require_group(cfg, group: str, choices: Sequence[str], command: str) -> None:
    """Fail clearly when a config group that must be added with ``+group=...`` is missing."""
    if group not in cfg or cfg[group] is None:
        raise UsageError(f"no {group} given: add +{group}=<name>, one of {', '.join(choices)} "
                         f"(e.g. {command} +{group}={choices[0] if choices else 'NAME'})")


def check_group_choices(overrides: Sequence[str], groups: Sequence[str], plus: Sequence[str] = ()) -> None:
    """Name the options of a config group when an override picks one that does not exist.

    Hydra's own message for this is several lines about search paths; ours lists the choices.
    ``plus`` names groups that are added with ``+group=`` (absent from the defaults list).
    """
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key in groups and value and not value.endswith((".yaml", ".yml")):
            options = sorted(p.stem for p in (CONF_DIR / key).glob("*.yaml"))
            if value not in options:
                raise UsageError(f"unknown {key} {value!r}: use {'+' if key in plus else ''}{key}=one of "
                                 f"{', '.join(options)}")


def is_user_error(e: BaseException) -> bool:
    """Whether ``e`` is reported in one line with exit 2 rather than as a crash."""
    return isinstance(e, (UserError, FileNotFoundError, PermissionError))


def accuracy_text(r: dict) -> str:
    """A result's holdout top-1 (what selection used) beside its report-only test top-1."""
    test = r.get("test_top1")
    return f"top1 {r['top1']:.1%} (test {'-' if test is None else f'{test:.1%}'})"


def quiet_warnings() -> None:
    """Silence third-party import-time noise users cannot act on (fvcore, iopath, onnx export)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*torch.jit.*")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")


@dataclass(frozen=True)
class Command:
    """What ``--help``, ``--cfg job`` and ``--multirun`` need to know about an entry point."""

    name: str  # python -m search.run
    config: str  # conf/<config>.yaml
    usage: str  # the arguments after the name
    about: str  # one line
    groups: tuple[str, ...] = ()
    plus: tuple[str, ...] = ()  # groups added with +group= (no default)
    positionals: tuple[str, ...] = ()  # leading words that are not overrides (measure.lut build|validate)


MULTIRUN = ("--multirun is not supported: to run N workers, start the same command N times on one storage "
            "(README, \"Many workers\"); to compare settings, run the command once per setting")


def flags(cli: Command, argv: Sequence[str]) -> int | None:
    """Answer ``--help``, ``--cfg job`` and ``--multirun`` as a Hydra user expects; None: no flag given."""
    args = list(argv)
    opts = [a for a in args if a.startswith("-")]
    if not opts:
        return None
    overrides = [a for a in args if not a.startswith("-") and a not in cli.positionals]
    if "--help" in opts or "-h" in opts:
        print(redact(help_text(cli, overrides)))
        return 0
    if "--multirun" in opts or "-m" in opts:
        raise UsageError(MULTIRUN)
    known = {"--cfg", "-c", "--resolve"}
    unknown = [o for o in opts if o not in known]
    if unknown:
        raise UsageError(f"unknown option {unknown[0]}: use --help, --cfg job [--resolve], or key=value overrides")
    at = next(i for i, a in enumerate(args) if a in ("--cfg", "-c"))
    what = args[at + 1] if at + 1 < len(args) else None
    if what not in ("job", "all"):
        raise UsageError(f"--cfg {what or ''}".strip() + " is not understood: use --cfg job (the composed config)")
    overrides = [a for j, a in enumerate(args) if j != at + 1 and not a.startswith("-") and a not in cli.positionals]
    check_group_choices(overrides, cli.groups, cli.plus)
    from omegaconf import OmegaConf

    cfg = compose(cli.config, overrides)
    print(redact(OmegaConf.to_yaml(cfg, resolve="--resolve" in opts)), end="")
    return 0


def help_text(cli: Command, overrides: Sequence[str] = ()) -> str:
    """Usage, the config groups with their options, and every key with its default and its comment."""
    from omegaconf import OmegaConf

    check_group_choices(overrides, cli.groups, cli.plus)
    cfg = compose(cli.config, overrides)
    chosen = _chosen(cli, overrides)
    lines = [f"usage: {cli.name} {cli.usage} [--help] [--cfg job [--resolve]]", "", cli.about, "",
             "Config groups (group=<option>; +group=<option> for a group without a default):"]
    for g in cli.groups:
        options = sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml"))
        marked = [f"{o} (default)" if o == _default_choice(cli.config, g) else o for o in options]
        lines.append(f"  {('+' if g in cli.plus else '') + g:<10} {', '.join(marked)}")
    comments = _comments(CONF_DIR / f"{cli.config}.yaml")
    for g, option in chosen.items():
        comments.update(_comments(CONF_DIR / g / f"{option}.yaml", prefix=g + "."))
    lines += ["", f"Keys (key=value; the defaults of conf/{cli.config}.yaml and the chosen options):"]
    flat = [(k, v) for k, v in _flatten(OmegaConf.to_container(cfg, resolve=False))
            if not (k in cli.groups and v == "null")]  # a +group not given: listed above
    width = min(40, max((len(f"{k}={v}") for k, v in flat), default=0))
    for k, v in flat:
        kv = f"{k}={v}"
        note = comments.get(k, "")
        lines.append(f"  {kv:<{width}}  # {note}" if note else f"  {kv}")
    lines += ["", "Flags: --help (this); --cfg job (print the composed config as YAML and exit; --resolve "
              "resolves ${...}); --multirun is not supported: start the same command N times on one storage "
              "to run N workers."]
    return "\n".join(lines)


def _default_choice(config: str, group: str) -> str | None:
    for line in (CONF_DIR / f"{config}.yaml").read_text().splitlines():
        m = re.match(rf"\s*-\s*{re.escape(group)}\s*:\s*([\w.-]+)", line)
        if m:
            return m.group(1)
    return None


def _chosen(cli: Command, overrides: Sequence[str]) -> dict[str, str]:
    chosen = {g: _default_choice(cli.config, g) for g in cli.groups}
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key in chosen:
            chosen[key] = value
    return {g: c for g, c in chosen.items() if c and (CONF_DIR / g / f"{c}.yaml").is_file()}


def _comments(path: Path, prefix: str = "") -> dict[str, str]:
    """``{"train.lr": "comment", ...}``: the comment at the end of each key's line in a YAML file,
    with the comment-only lines indented under it."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last = None
    for line in path.read_text().splitlines():
        m = re.match(r"^(\s*)([A-Za-z_]\w*):(.*)$", line)
        if m:
            indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            value, _, comment = rest.partition("#")
            full = prefix + ".".join([k for _, k in stack] + [key])
            if not value.strip():
                stack.append((indent, key))
            out[full] = comment.strip()
            last = full if comment.strip() else None
        elif last and line.startswith(" ") and line.strip().startswith("#"):
            out[last] += " " + line.strip().lstrip("#").strip()
        else:
            last = None
    return out


def _flatten(d, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        elif isinstance(v, list):
            out.append((f"{prefix}{k}", f"[{len(v)} items]" if len(str(v)) > 60 else str(v)))
        else:
            out.append((f"{prefix}{k}", "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)))
    return out


def run(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None,
        cli: Command | None = None) -> None:
    """Run ``main(argv)`` and turn bad input into ``error: <message>`` and exit status 2.

    ``cli`` (default: the ``CLI`` of ``main``'s module, if any) answers ``--help``, ``--cfg job`` and
    ``--multirun`` before ``main`` runs."""
    quiet_warnings()
    guard_process()
    argv = list(sys.argv[1:] if argv is None else argv)
    remember_urls(argv)
    cli = cli or getattr(sys.modules.get(getattr(main, "__module__", ""), None), "CLI", None)
    try:
        code = flags(cli, argv) if cli is not None else None
        if code is None:
            code = main(argv)
    except Exception as e:
        if not is_user_error(e):
            raise
        msg = _first_line(e)
        if isinstance(e, (FileNotFoundError, PermissionError)) and e.filename:
            msg = redact(f"{e.strerror or type(e).__name__}: {e.filename}")
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
