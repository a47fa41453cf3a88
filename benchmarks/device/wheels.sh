#!/usr/bin/env bash
# Download, here (with PyPI), the wheels a lent GPU host lacks into benchmarks/device/wheels/ (git-ignored),
# for benchmarks/device/gpu.sh to install there with `pip install --no-index`. Not torch: the host has its own
# (2.11, CUDA). The host's image already holds numpy, pandas, scipy, scikit-learn, matplotlib, onnx,
# onnxruntime, onnxscript, pillow, pyyaml, tqdm, pytest (+timeout, xdist), portalocker and tabulate
# (/work/.library/device/KINDS.md); what is left is Optuna, Hydra and fvcore with their own needs, ~5 MB,
# well inside the 64 MiB a device call carries.
#
#   benchmarks/device/wheels.sh            # versions as installed in this venv, for the host's Python 3.12
#   PY_VERSION=3.11 benchmarks/device/wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY_VERSION=${PY_VERSION:-3.12}
DIR=benchmarks/device/wheels
PY=${PYTHON:-python}
# Pure Python (some published only as sdists: built here into py3-none-any wheels, which install anywhere).
PURE="optuna alembic colorlog Mako hydra-core omegaconf antlr4-python3-runtime fvcore iopath yacs termcolor"
# Compiled: the host's Python and platform.
BINARY="SQLAlchemy"

pin() {  # NAME -> NAME==<the version installed here> (the one the test suite ran with), else NAME
  local v
  v=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null) && echo "$1==$v" || echo "$1"
}
mkdir -p "$DIR"
pure=(); for p in $PURE; do pure+=("$(pin "$p")"); done
binary=(); for p in $BINARY; do binary+=("$(pin "$p")"); done
echo "wheels: ${pure[*]} ${binary[*]} (Python $PY_VERSION) -> $DIR"
"$PY" -m pip wheel -q --no-deps -w "$DIR" "${pure[@]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DIR" "${binary[@]}"
ls "$DIR"
du -sh "$DIR"
echo "carry benchmarks/device/wheels with the device call (run's carry list); gpu.sh installs them"
