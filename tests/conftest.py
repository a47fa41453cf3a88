"""Shared fixtures: the reference state-dict shapes and a clean environment for CLI runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(os.environ.get("BNECK_FIXTURES", REPO.parent / "shared" / "fixtures"))
_BUNDLED = REPO / "tests" / "fixtures"


@pytest.fixture(scope="session")
def torchvision_shapes() -> dict:
    """Keys and shapes of torchvision's mobilenet_v3_large/small state dicts, in order."""
    name = "torchvision_mobilenet_v3_state_dict_shapes.json"
    path = FIXTURES / name if (FIXTURES / name).is_file() else _BUNDLED / name
    return json.loads(path.read_text())


def run_cli(module: str, *args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m module args...`` as a user would; returns the completed process."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli
