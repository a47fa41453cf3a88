#!/usr/bin/env bash
# One lent GPU host (one H100/H200, 16 CPU cores, no network, its own torch 2.11; nothing outlives the call).
# Each piece runs alone and ends within 8 minutes, writing its jsonl and md to $OUT:
#
#   benchmarks/device/gpu.sh tests        # the cuda-marked tests (tests/test_gpu_cuda.py)
#   benchmarks/device/gpu.sh throughput   # images/s table and trials/hour for 1, 4, 8 workers (benchmarks/gpu/gpu_throughput.py)
#   benchmarks/device/gpu.sh fidelity     # search.fidelity at 600 and 2000 steps, 40 archs x 2 seeds, N workers,
#                                         # then the default supernet's fidelity against it (resumable, see below)
#
# Before the call, here: benchmarks/device/wheels.sh (Optuna, Hydra, fvcore: what the host lacks); name
# benchmarks/device/wheels in the device call's carry list. The fidelity piece is longer than one call: it
# stops itself after BNECK_PIECE_S seconds and leaves $OUT/fidelity.tar.gz; copy that file to
# benchmarks/device/state/fidelity.tar.gz, carry benchmarks/device/state, and run the piece again to go on.
#
# BNECK_DEVICE_TINY=1 BNECK_DEVICE=cpu OUT=/tmp/x benchmarks/device/gpu.sh <piece>: the same on a CPU, tiny (tests
# this script, measures nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."
piece=${1:-}
OUT=${OUT:?"set OUT to the folder for the results"}
TINY=${BNECK_DEVICE_TINY:-0}
DEVICE=${BNECK_DEVICE:-cuda}
PIECE_S=${BNECK_PIECE_S:-450}          # a piece's own work stops by then (8-minute call, with install and wrap-up)
FID_WORKERS=${BNECK_FIDELITY_WORKERS:-8}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore

if ! "$PY" -c "import optuna, hydra, fvcore" 2>/dev/null; then
  ls benchmarks/device/wheels/*.whl >/dev/null 2>&1 || { echo "error: optuna/hydra/fvcore missing and no wheels in benchmarks/device/wheels: run benchmarks/device/wheels.sh here and carry that folder" >&2; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/bneck-site benchmarks/device/wheels/*.whl
  export PYTHONPATH=/tmp/bneck-site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
note() { echo "{\"piece\": \"$piece\", \"device\": \"$DEVICE\", \"tiny\": $TINY, $1}" >> "$OUT/gpu_sh.jsonl"; }
"$PY" -c "import torch; print('gpu.sh:', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"

case "$piece" in
tests)
  set +e
  timeout "$PIECE_S" "$PY" -m pytest -q -rs -m cuda tests/test_gpu_cuda.py -p no:cacheprovider \
    --junitxml="$OUT/gpu_tests.xml" 2>&1 | tee "$OUT/gpu_tests.log"
  rc=${PIPESTATUS[0]}
  set -e
  summary=$(tail -n 1 "$OUT/gpu_tests.log")
  note "\"rc\": $rc, \"summary\": \"${summary//\"/}\""
  { echo "# cuda tests (benchmarks/device/gpu.sh tests)"; echo; echo "exit $rc: $summary"; } > "$OUT/gpu_tests.md"
  echo "results: $OUT"
  exit "$rc"
  ;;
throughput)
  tiny=(); workers=(1 4 8); prec=(--precision bf16 --channels-last)
  if [ "$TINY" = 1 ]; then tiny=(--tiny); workers=(1 2); prec=(--precision fp32); fi
  start=$(date +%s)
  timeout "$PIECE_S" "$PY" -m benchmarks.gpu.gpu_throughput images --out "$OUT" --device "$DEVICE" "${tiny[@]}"
  for n in "${workers[@]}"; do  # one call per N: what finished stays in the jsonl if time runs out
    left=$(( PIECE_S - ($(date +%s) - start) ))
    [ "$left" -gt 30 ] || { echo "gpu.sh throughput: no time left for $n workers"; note "\"skipped_workers\": $n"; continue; }
    timeout "$left" "$PY" -m benchmarks.gpu.gpu_throughput trials --out "$OUT" --device "$DEVICE" --workers "$n" \
      "${prec[@]}" "${tiny[@]}" || note "\"failed_workers\": $n"
  done
  ;;
fidelity)
  if [ ! -f search/fidelity.py ] || ! "$PY" -c "import search.fidelity" 2>/dev/null; then
    echo "error: search.fidelity is not importable on this branch (issue 34 builds it): merge it first" >&2
    exit 2
  fi
  res=/tmp/bneck-fidelity
  mkdir -p "$res"
  [ -f benchmarks/device/state/fidelity.tar.gz ] && tar -xzf benchmarks/device/state/fidelity.tar.gz -C "$res"
  trap 'tar -czf "$OUT/fidelity.tar.gz" -C "$res" . && cp -f $(find "$res" -name "fidelity.md" -o -name "fidelity.jsonl" | head -n 4) "$OUT/" 2>/dev/null || true' EXIT
  args=(+space=v3_small data=cluttered fidelity.archs=40 fidelity.seeds=2 'fidelity.steps=[600,2000]'
        train.device="$DEVICE" train.precision=bf16 train.channels_last=true progress=false results_dir="$res")
  [ "$TINY" = 1 ] && args=(+space=v3_small data=cluttered data.n_train=200 data.n_holdout=60 data.n_test=60
        data.input_size=16 data.canvas=32 data.digit_min=8 data.digit_max=16 fidelity.archs=8 fidelity.seeds=2
        'fidelity.steps=[2,4]' train.device="$DEVICE" progress=false results_dir="$res") && FID_WORKERS=2
  start=$(date +%s)
  pids=()
  for i in $(seq "$FID_WORKERS"); do  # workers on one folder share the trainings
    timeout "$PIECE_S" "$PY" -m search.fidelity "${args[@]}" >> "$OUT/fidelity_workers.log" 2>&1 & pids+=($!)
  done
  rc=0; for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  note "\"standalone_rc\": $rc, \"seconds\": $(( $(date +%s) - start ))"
  if [ "$rc" = 0 ]; then  # the default supernet ranked against the same trainings' seed means
    left=$(( PIECE_S - ($(date +%s) - start) ))
    if [ "$left" -gt 30 ]; then
      set +e; timeout "$left" "$PY" -m search.fidelity "${args[@]}" accuracy=supernet > "$OUT/fidelity_supernet.log" 2>&1
      src=$?; set -e
      note "\"supernet_rc\": $src"
    else
      note "\"supernet\": \"no time left: run the piece again\""
    fi
  else
    echo "gpu.sh fidelity: stopped after ${PIECE_S}s or failed (rc $rc); copy \$OUT/fidelity.tar.gz to benchmarks/device/state/ and rerun to go on"
  fi
  ;;
*)
  echo "error: unknown piece '$piece': pass tests, throughput or fidelity" >&2
  exit 2
  ;;
esac
echo "results: $OUT"
