#!/bin/bash
# run.sh - gaze vs PyTorch vs ONNX Runtime encoder benchmark, side by side in one run, with ratios.
#
# Usage: bench/encoders/run.sh [--quick] [--mode native|asis|both]
#   THREADS (default 2), BUILD (default build-bench), MODELS (default $BUILD/bench-models),
#   ONNX (default $MODELS/onnx).
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
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick ;;
    --mode) MODE=$2; shift ;;
    *) echo "usage: $0 [--quick] [--mode native|asis|both]" >&2; exit 2 ;;
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
cmake --build "$BUILD" -j2 --target bench_encoders >/tmp/bench_encoders_build.log 2>&1 ||
  { cat /tmp/bench_encoders_build.log >&2; exit 1; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "$(nproc) CPUs, threads=$THREADS, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# gaze $(git -C "$ROOT" rev-parse --short HEAD), torch $($PY -c 'import torch; print(torch.__version__)')," \
     "onnxruntime-node $(node -p "require('$HERE/node_modules/onnxruntime-node/package.json').version")," \
     "node $(node --version)"

run_mode() { # $1 = label; rest = env(1) arguments that set up the OpenBLAS environment
  local label=$1; shift
  local out; out=$(mktemp -d /tmp/bench_encoders.XXXXXX)
  local common=(OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" OPENBLAS_VERBOSE=2)
  echo
  echo "## mode: $label  (OPENBLAS_CORETYPE=$(env "$@" sh -c 'echo ${OPENBLAS_CORETYPE:-unset}')," \
       "OPENBLAS_L2_SIZE=$(env "$@" sh -c 'echo ${OPENBLAS_L2_SIZE:-unset}'))"
  env "$@" "${common[@]}" "$BIN" --models "$MODELS" --threads "$THREADS" --out "$out" $QUICK \
    >"$out/gaze.txt" 2>"$out/gaze.err" || { cat "$out/gaze.err" >&2; exit 1; }
  # the bf16 fast path (--precision bf16; fp32 where the CPU lacks AVX512-BF16), rows *_bf16
  env "$@" "${common[@]}" "$BIN" --models "$MODELS" --threads "$THREADS" --precision bf16 $QUICK \
    >"$out/gaze_bf16.txt" 2>"$out/gaze_bf16.err" || { cat "$out/gaze_bf16.err" >&2; exit 1; }
  env "$@" "${common[@]}" $PY "$HERE/torch_ref.py" --models "$MODELS" --threads "$THREADS" \
    --gaze-out "$out" $QUICK >"$out/torch.txt" 2>"$out/torch.err" || { cat "$out/torch.err" >&2; exit 1; }
  env "$@" "${common[@]}" node "$HERE/ort_ref.js" --models "$MODELS" --onnx "$ONNX" \
    --threads "$THREADS" --gaze-out "$out" $QUICK >"$out/ort.txt" 2>"$out/ort.err" ||
    { cat "$out/ort.err" >&2; exit 1; }
  echo "gaze : $(grep -m1 '^INFO' "$out/gaze.txt" | cut -d' ' -f2-7); OPENBLAS_VERBOSE: $(grep -m1 -i 'core' "$out/gaze.err" || echo '-')"
  echo "torch: $(grep -m1 '^INFO' "$out/torch.txt" | cut -d' ' -f2-); OPENBLAS_VERBOSE: $(grep -m1 -i 'core' "$out/torch.err" || echo '-')"
  echo "ort  : $(grep -m1 '^INFO' "$out/ort.txt" | cut -d' ' -f2-); session load ms: $(awk '$1 == "LOAD" { printf "%s %s  ", $2, $3 }' "$out/ort.txt")"
  awk '
    FNR == 1 { f++ }
    f == 1 && $1 == "RESULT" { g[$2] = $3; gb[$2] = $6; order[++n] = $2; items[$2] = $5 }
    f == 2 && $1 == "RESULT" { t[$2] = $3; tb[$2] = $6 }
    f == 3 && $1 == "RESULT" { o[$2] = $3; ob[$2] = $6 }
    f == 1 && $1 == "RSS" { grss[$2] = $4 }
    f == 2 && $1 == "RSS" { trss[$2] = $4 }
    f == 3 && $1 == "RSS" { orss[$2] = $4 }
    f == 2 && $1 == "AGREE" { agree = agree sprintf("  %s max|gaze-torch| = %s\n", $2, $3) }
    f == 3 && $1 == "AGREE" { agree = agree sprintf("  %s max|gaze-ort| = %s\n", $2, $3) }
    f == 4 && $1 == "RESULT" { g[$2 "_bf16"] = $3; gb[$2 "_bf16"] = $6; items[$2 "_bf16"] = $5 }
    f == 4 && $1 == "RSS" { grss[$2 "_bf16"] = $4 }
    f == 3 && $1 == "AGREE_TORCH" { agree = agree sprintf("  %s max|torch-ort| = %s (torch outputs from export time)\n", $2, $3) }
    function row(name, k, tk) {
      printf "| %-11s | %5d | %8.1f | %8.1f | %8.1f | %5.2fx | %5.2fx | %8.1f | %8.1f | %8.1f | %5.2fx | %5.2fx |\n",
        name, items[k], g[k], t[tk], o[tk], t[tk] / g[k], o[tk] / g[k],
        gb[k], tb[tk], ob[tk], tb[tk] / gb[k], ob[tk] / gb[k]
    }
    END {
      print "ms per item (image, text or pair); ratios = peer ms / gaze ms (> 1: gaze faster)"
      print "|             |       |  median  |  median  |  median  | median | median |   best   |   best   |   best   |  best  |  best  |"
      print "| benchmark   | items |  gaze ms | torch ms |  ORT ms  | torch/g| ORT/g  |  gaze ms | torch ms |  ORT ms  | torch/g| ORT/g  |"
      print "|-------------|-------|----------|----------|----------|--------|--------|----------|----------|----------|--------|--------|"
      for (i = 1; i <= n; i++) {
        row(order[i], order[i], order[i])
        if ((order[i] "_hf") in t) row(order[i] "_hf", order[i], order[i] "_hf")
        if ((order[i] "_bf16") in g) row(order[i] "_bf16", order[i] "_bf16", order[i])
      }
      printf "gaze bf16 peak RSS MB: vit224 %s, blip384 %s\n", grss["vit224_bf16"], grss["blip384_bf16"]
      printf "peak RSS MB: gaze vit224 %s, blip384 %s; torch vit224 %s, blip384 %s; ORT vit224 %s, blip384 %s\n", grss["vit224"], grss["blip384"], trss["vit224"], trss["blip384"], orss["vit224"], orss["blip384"]
      printf "agreement (same inputs, same weights):\n%s", agree
    }' "$out/gaze.txt" "$out/torch.txt" "$out/ort.txt" "$out/gaze_bf16.txt"
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
