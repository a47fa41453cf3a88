"""What every bneck command shares: Hydra composition and the error contract.

Entry points compose their config with Hydra's compose API rather than ``@hydra.main`` so that bad
input ends as one line on stderr with exit status 2 (``@hydra.main`` prints its own report and exits
1), and so no ``outputs/`` folders appear in the user's working directory: runs write under
``results_dir`` only.
"""
from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import UsageError, UserError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
EXIT_USAGE = 2


def compose(config_name: str, overrides: Sequence[str] = ()):
    """The composed config ``conf/<config_name>.yaml`` with command-line ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"bad override: {first} (see conf/{config_name}.yaml for the keys)") from None


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


def run(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)`` and turn bad input into ``error: <message>`` and exit status 2."""
    quiet_warnings()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = main(argv)
    except Exception as e:
        if not is_user_error(e):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, (FileNotFoundError, PermissionError)) and e.filename:
            msg = f"{e.strerror or type(e).__name__}: {e.filename}"
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
