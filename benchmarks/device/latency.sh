#!/usr/bin/env bash
# Issue 27's quiet-host run of the latency table, for a machine with dedicated cores (the GPU host: 16 cores,
# no network, its own torch): host_noise.py first, then for each backend (onnxruntime, torch, and executorch
# when it imports) benchmarks/latency_lut/latency_lut.py -- build a table, validate it twice, build a second table from
# scratch and compare -- each backend pinned with taskset to its own idle core, the backends side by side.
# Writes host_noise.{jsonl,md}, latency_lut.{jsonl,md} and one log per backend to $OUT; stops the backends at
# --budget seconds so the whole run ends within 8 minutes. Tables and finished pieces stay in $WORK (default
# /tmp/bneck-latency): run it again with the same options on the same machine and it resumes where the budget
# stopped it (the acceptance's --n 50 takes more than one run). Tables are built on the calibration set and fill the
# validated networks' entries as they predict them (latency_lut.py --calibration-only): building every entry
# of both spaces first would take most of the budget. Beside them, on two more idle cores, benchmarks/latency_lut/
# block_pairing.py for onnxruntime and torch (--pairing seconds, 0: skip): whether timing blocks paired with a
# reference block, shown steadier on this project's busy VM, holds on a quiet host too; block_pairing.{jsonl,md}.
#
#   OUT=/tmp/out benchmarks/device/latency.sh [--n 20] [--noise-seconds 30] [--tables 2] [--budget 400] [--pairing 300]
#   OUT=/tmp/out benchmarks/device/latency.sh --n 2 --noise-seconds 5 --tables 1 --per-start 1 --repeat 1 \
#       --passes 1 --spaces v3_small   # tiny, anywhere (BNECK_CALIBRATION_SET=quick makes it tinier)
#
# Missing Python packages are installed from wheels in $WHEELS (default benchmarks/device/wheels/, git-ignored,
# filled on a networked machine by benchmarks/device/wheels.sh) with pip --no-index; torch is never installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=20 NOISE=30 TABLES=2 PER_START=5 REPEAT=5 BUDGET=400 BACKENDS="" PASSES=2 SPACES="" PAIRING=300
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N=$2; shift 2 ;;
    --noise-seconds) NOISE=$2; shift 2 ;;
    --tables) TABLES=$2; shift 2 ;;
    --per-start) PER_START=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --backends) BACKENDS=$2; shift 2 ;;
    --passes) PASSES=$2; shift 2 ;;
    --spaces) SPACES=$2; shift 2 ;;
    --pairing) PAIRING=$2; shift 2 ;;
    *) echo "error: unknown option $1: use --n, --noise-seconds, --tables, --per-start, --repeat, --budget, --backends, --passes, --spaces, --pairing" >&2
       exit 2 ;;
  esac
done
: "${OUT:?error: set OUT to the folder the jsonl and md go to}"
mkdir -p "$OUT"
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-benchmarks/device/wheels}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONWARNINGS=ignore

# -- packages: the host's own torch, everything else from the wheel folder when missing ----------------------
IMPORTS="torch onnx onnxruntime onnxscript hydra omegaconf fvcore optuna scipy tqdm yaml matplotlib pandas sklearn"
if ! $PY -c "import $(echo $IMPORTS | tr ' ' ',')" 2>/dev/null; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "error: missing Python packages ($($PY -c "
import importlib.util as u; print(', '.join(m for m in '$IMPORTS'.split() if not u.find_spec(m)))")) and no wheels in" \
         "$WHEELS: fill it on a networked machine with benchmarks/device/wheels.sh, or set WHEELS" >&2
    exit 2
  fi
  deps=$($PY -c "
import re, tomllib
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']
print(' '.join(d for d in deps if re.split(r'[<>=!~ \[]', d)[0] != 'torch'))")
  echo "installing from $WHEELS: $deps"
  $PY -m pip install --quiet --no-index --find-links "$WHEELS" $deps \
    || $PY -m pip install --quiet --no-index --find-links "$WHEELS" --break-system-packages $deps
fi
if [ -z "$BACKENDS" ]; then
  BACKENDS="onnxruntime torch"
  $PY -c "import executorch.exir" 2>/dev/null && BACKENDS="$BACKENDS executorch"  # imports, not just a folder
fi

# -- cores: the idlest ones over one second, cpu0 (interrupts) last --------------------------------------------
read -r -a CORES <<<"$($PY - <<'EOF'
import os, time
def idle():
    with open("/proc/stat") as f:
        rows = [l.split() for l in f if l.startswith("cpu") and l[3].isdigit()]
    return {int(r[0][3:]): (int(r[4]) + int(r[5]), sum(map(int, r[1:]))) for r in rows}
allowed = os.sched_getaffinity(0)
a = idle(); time.sleep(1); b = idle()
share = {c: (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]) for c in a if c in allowed}
print(" ".join(str(c) for c in sorted(share, key=lambda c: (c == 0, -share[c]))))
EOF
)"
echo "cores, idlest first: ${CORES[*]}; backends: $BACKENDS; n=$N per space; $(getconf _NPROCESSORS_ONLN) cores; load $(cut -d' ' -f1 /proc/loadavg)"

# -- host noise first, alone on the idlest core ---------------------------------------------------------------
taskset -c "${CORES[0]}" $PY -m benchmarks.host_noise.host_noise --seconds "$NOISE" --out "$OUT"

# -- one backend per idle core, side by side ------------------------------------------------------------------
WORK=${WORK:-/tmp/bneck-latency}
mkdir -p "$WORK"
note="$(getconf _NPROCESSORS_ONLN)-core host ($(hostname)), each backend pinned with taskset to its own idle core (the backends ran side by side, sharing memory bandwidth and the last-level cache); benchmarks/device/latency.sh --n $N"
i=0
pids=()
for backend in $BACKENDS; do
  core=${CORES[$((i % ${#CORES[@]}))]}
  i=$((i + 1))
  echo "$backend on core $core -> $OUT/latency_$backend.log"
  timeout --signal=INT "$BUDGET" taskset -c "$core" $PY -m benchmarks.latency_lut.latency_lut --results-dir "$WORK/$backend" \
    --backends "$backend" --n "$N" --tables "$TABLES" --netadapt-per-start "$PER_START" --repeat "$REPEAT" \
    --noise-seconds "$NOISE" --passes "$PASSES" ${SPACES:+--spaces $SPACES} --calibration-only --force --note "$note" --out-dir "$WORK" --out "latency_lut_$backend.md" \
    >"$OUT/latency_$backend.log" 2>&1 &
  pids+=($!)
done
# -- block pairing beside them, one backend per further core (each writes its own folder: lines are long) -----------
ppids=()
if [ "$PAIRING" != 0 ]; then
  for backend in onnxruntime torch; do
    core=${CORES[$((i % ${#CORES[@]}))]}
    i=$((i + 1))
    mkdir -p "$WORK/pairing_$backend"
    echo "block pairing ($backend) on core $core -> $OUT/pairing_$backend.log"
    timeout --signal=INT "$BUDGET" taskset -c "$core" $PY -m benchmarks.latency_lut.block_pairing --backend "$backend" \
      --seconds "$PAIRING" --out-dir "$WORK/pairing_$backend" >"$OUT/pairing_$backend.log" 2>&1 &
    ppids+=($!)
  done
fi
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
for pid in "${ppids[@]}"; do wait "$pid" || true; done
if [ "$PAIRING" != 0 ]; then
  cat "$WORK"/pairing_*/block_pairing.jsonl >"$OUT/block_pairing.jsonl" 2>/dev/null || true
  $PY -m benchmarks.latency_lut.block_pairing --seconds 0 --out-dir "$OUT" >/dev/null || true
fi

# -- one report from every backend's lines ------------------------------------------------------------------
cat "$WORK"/latency_lut_*.jsonl >"$OUT/latency_lut.jsonl" 2>/dev/null || true
$PY -m benchmarks.latency_lut.latency_lut --report-only --out-dir "$OUT" >/dev/null
paired=""
[ "$PAIRING" != 0 ] && paired=", $OUT/block_pairing.md"
echo "wrote $OUT/latency_lut.md, $OUT/latency_lut.jsonl, $OUT/host_noise.md$paired; exit status of the slowest backend: $status"
exit "$status"
