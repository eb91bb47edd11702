#!/bin/bash
# run.sh - gaze vs PyTorch vs ONNX Runtime encoder benchmark, side by side in one run, with ratios.
#
# Usage: bench/encoders/run.sh [--quick] [--mode native|asis|both] [--rounds N] [--no-torch]
#   THREADS (default 2), BUILD (default build-bench), MODELS (default $BUILD/bench-models),
#   ONNX (default $MODELS/onnx).
# Interleaved: each round runs gaze fp32, gaze bf16 and ONNX Runtime one after the other
# (A, B, C, A, B, C ...; 4 rounds by default), so that the machine's drift weighs on all of
# them; PyTorch runs once, in the first round (--no-torch: never). Every timed run of every
# round is pooled per workload: the table gives the median and p90 of them (at least 10 per
# workload with the default rounds), GFLOP/s at the median (bench_encoders counts the work of
# each workload: Linear layers, attention products, patch embedding) and its fraction of the
# measured peak (fma_peak: AVX-512 FMA for fp32 rows, vdpbf16ps for bf16 rows), peak RSS and
# the agreement of the outputs (first round).
# Needs: /usr/bin/python3 with numpy and torch (apt-get install -y python3-torch), node + npm
# (onnxruntime-node is installed into bench/encoders/node_modules from package-lock.json, with
# ONNXRUNTIME_NODE_INSTALL=skip: the CPU binaries ship in the package, only the optional CUDA
# ones would be downloaded), the bench_encoders target (built here). Weights are generated once
# by make_weights.py into $MODELS (git-ignored, ~1.3 GB) and exported once to ONNX by
# export_onnx.py into $ONNX (git-ignored, ~1.6 GB, ~1 min).
# Modes (DESIGN §6): "native" unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE together, in this
# command alone, so OpenBLAS auto-detects the CPU as a user's machine would; "asis" keeps the
# environment as it is. Both programs run in the same mode with the same thread count; the
# OpenBLAS kernel that ran is reported (OPENBLAS_VERBOSE=2 and openblas_get_corename()).
# Ratios = torch ms / gaze ms and ORT ms / gaze ms (> 1: gaze is faster). ORT uses its own MLAS
# GEMM, so the OpenBLAS mode does not change ORT; it runs in each mode's window anyway.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
THREADS=${THREADS:-2}
BUILD=${BUILD:-$ROOT/build-bench}
MODELS=${MODELS:-$BUILD/bench-models}
ONNX=${ONNX:-$MODELS/onnx}
QUICK=""
MODE=both
ROUNDS=4
TORCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick ;;
    --mode) MODE=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --no-torch) TORCH=0 ;;
    *) echo "usage: $0 [--quick] [--mode native|asis|both] [--rounds N] [--no-torch]" >&2; exit 2 ;;
  esac
  shift
done
PY=/usr/bin/python3
BIN=$BUILD/bench/encoders/bench_encoders

[ -f "$MODELS/blip-base-384/model.safetensors" ] || $PY "$HERE/make_weights.py" "$MODELS"
[ -f "$ONNX/itm.onnx" ] || $PY "$HERE/export_onnx.py" --models "$MODELS" --out "$ONNX" \
  >/tmp/bench_encoders_export.log 2>&1 || { tail -20 /tmp/bench_encoders_export.log >&2; exit 1; }
[ -d "$HERE/node_modules/onnxruntime-node" ] || (cd "$HERE" && ONNXRUNTIME_NODE_INSTALL=skip \
  npm ci --no-audit --no-fund >/tmp/bench_encoders_npm.log 2>&1) ||
  { cat /tmp/bench_encoders_npm.log >&2; exit 1; }
[ -d "$BUILD" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target bench_encoders fma_peak >/tmp/bench_encoders_build.log 2>&1 ||
  { cat /tmp/bench_encoders_build.log >&2; exit 1; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "$(nproc) CPUs, threads=$THREADS, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# gaze $(git -C "$ROOT" rev-parse --short HEAD), torch $([ "$TORCH" = 1 ] && $PY -c 'import torch; print(torch.__version__)' || echo 'not run')," \
     "onnxruntime-node $(node -p "require('$HERE/node_modules/onnxruntime-node/package.json').version")," \
     "node $(node --version)"

run_mode() { # $1 = label; rest = env(1) arguments that set up the OpenBLAS environment
  local label=$1; shift
  local out; out=$(mktemp -d /tmp/bench_encoders.XXXXXX)
  local common=(OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OPENBLAS_VERBOSE=2)
  echo
  echo "## mode: $label  (OPENBLAS_CORETYPE=$(env "$@" sh -c 'echo ${OPENBLAS_CORETYPE:-unset}')," \
       "OPENBLAS_L2_SIZE=$(env "$@" sh -c 'echo ${OPENBLAS_L2_SIZE:-unset}'), $ROUNDS rounds)"
  "$BUILD/bench/encoders/fma_peak" "$THREADS" >"$out/peak.txt"
  for r in $(seq 1 "$ROUNDS"); do
    local gout=""; [ "$r" = 1 ] && gout="--out $out"
    env "$@" "${common[@]}" "$BIN" --models "$MODELS" --threads "$THREADS" $gout $QUICK \
      >"$out/gaze.$r.txt" 2>"$out/gaze.$r.err" || { cat "$out/gaze.$r.err" >&2; exit 1; }
    # the bf16 fast path (--precision bf16; fp32 where the CPU lacks AVX512-BF16)
    env "$@" "${common[@]}" "$BIN" --models "$MODELS" --threads "$THREADS" --precision bf16 $QUICK \
      >"$out/gaze_bf16.$r.txt" 2>"$out/gaze_bf16.$r.err" || { cat "$out/gaze_bf16.$r.err" >&2; exit 1; }
    env "$@" "${common[@]}" node "$HERE/ort_ref.js" --models "$MODELS" --onnx "$ONNX" \
      --threads "$THREADS" --gaze-out "$out" $QUICK >"$out/ort.$r.txt" 2>"$out/ort.$r.err" ||
      { cat "$out/ort.$r.err" >&2; exit 1; }
    if [ "$TORCH" = 1 ] && [ "$r" = 1 ]; then
      env "$@" "${common[@]}" $PY "$HERE/torch_ref.py" --models "$MODELS" --threads "$THREADS" \
        --gaze-out "$out" $QUICK >"$out/torch.1.txt" 2>"$out/torch.1.err" ||
        { cat "$out/torch.1.err" >&2; exit 1; }
    fi
    echo "round $r done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  echo "gaze : $(grep -m1 '^INFO' "$out/gaze.1.txt" | cut -d' ' -f2-7); OPENBLAS_VERBOSE: $(grep -m1 -i 'core' "$out/gaze.1.err" || echo '-')"
  [ -f "$out/torch.1.txt" ] && echo "torch: $(grep -m1 '^INFO' "$out/torch.1.txt" | cut -d' ' -f2-); OPENBLAS_VERBOSE: $(grep -m1 -i 'core' "$out/torch.1.err" || echo '-')"
  echo "ort  : $(grep -m1 '^INFO' "$out/ort.1.txt" | cut -d' ' -f2-); session load ms: $(awk '$1 == "LOAD" { printf "%s %s  ", $2, $3 }' "$out/ort.1.txt")"
  echo "peak : $(tr '\n' ' ' <"$out/peak.txt")(GFLOP/s; read: GB/s; $THREADS threads, fma_peak)"
  $PY "$HERE/summarize.py" "$out" "$ROUNDS"
  echo "(raw output: $out)"
}

case "$MODE" in
  native) run_mode native -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ;;
  asis) run_mode as-is ;;
  both) run_mode native -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE; run_mode as-is ;;
  *) echo "bad --mode $MODE" >&2; exit 2 ;;
esac
echo
echo "# done, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
