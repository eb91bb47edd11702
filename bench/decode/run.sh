#!/usr/bin/env bash
# run.sh - fast (JPEG DCT-scaled) against exact (full-size, PIL) decode for `gaze index`:
# indexing rate of each, decode cost alone, and how far apart the two embeddings of each photo
# are. Results and the decision they led to: bench/RESULTS.md, "Fast or exact decode".
#
# Usage: bench/decode/run.sh [MODEL_DIR] [GAZE] [OUT_DIR]
#   MODEL_DIR  a full-size model (default /work/bench-models/blip-base-384: random-weight BLIP
#              ViT-B/16@384 made by bench/encoders/make_weights.py, 0.9 GB)
#   GAZE       the binary (default build/gaze)
#   OUT_DIR    where the databases, logs and results go (default a temporary folder)
# Photos: every distinct image file of data/photos, tests/data/photos and
# tests/data/fixtures/images (duplicates by content dropped, so none is "reused").
# Each indexing run starts from a fresh database; exact and fast runs are interleaved
# (RUNS rounds, default 2) and the median is reported, as the machine is shared and noisy.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
model=${1:-/work/bench-models/blip-base-384}
gaze=${2:-$root/build/gaze}
out=${3:-$(mktemp -d)}
runs=${RUNS:-2}
threads=${THREADS:-2}
tiny=$root/tests/data/fixtures/blip_itm # 64 px input: its forward pass is nearly free
mkdir -p "$out/photos"

# Distinct photos, copied flat (index does not follow symlinks by default).
python3 - "$root" "$out/photos" <<'PY'
import hashlib, os, shutil, sys
root, dst = sys.argv[1], sys.argv[2]
seen = set()
exts = ('.jpg', '.jpeg', '.png', '.webp', '.gif', '.heic', '.avif')
for d in ('data/photos', 'tests/data/photos', 'tests/data/fixtures/images'):
    for name in sorted(os.listdir(os.path.join(root, d))):
        p = os.path.join(root, d, name)
        if not name.lower().endswith(exts) or not os.path.isfile(p):
            continue
        h = hashlib.sha256(open(p, 'rb').read()).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        shutil.copyfile(p, os.path.join(dst, name))
PY
n=$(ls "$out/photos" | wc -l)
echo "photos: $n distinct files, $(du -sh "$out/photos" | cut -f1); model $model; $threads threads"

# index_once MODEL MODE TAG: index into a fresh db, print the wall seconds of the command.
index_once() {
  local m=$1 mode=$2 tag=$3 db="$out/$3.db"
  rm -f "$db" "$db"-* "$db".*
  local t0 t1
  t0=$(date +%s.%N)
  "$gaze" index "$out/photos" --db "$db" --model "$m" --threads "$threads" --quiet --json \
    "--$mode-decode" >"$out/$tag.json"
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}'
}

: >"$out/times.txt"
for r in $(seq 1 "$runs"); do
  for mode in exact fast; do
    s=$(index_once "$model" "$mode" "full_${mode}_$r")
    echo "full $mode $r $s" | tee -a "$out/times.txt"
  done
done
# Decode (plus hashing and the db) without the model's cost: the tiny fixture model, one thread
# for it and decoding on the main thread, so the two decodes do not overlap anything.
for r in $(seq 1 "$runs"); do
  for mode in exact fast; do
    s=$(THREADS=1 index_once "$tiny" "$mode" "tiny_${mode}_$r")
    echo "tiny $mode $r $s" | tee -a "$out/times.txt"
  done
done

# The two embeddings of each photo (EXIF orientation on, as index does).
args=()
for f in "$out"/photos/*; do args+=(--image "$f"); done
"$gaze" embed --model "$model" --threads "$threads" "${args[@]}" >"$out/exact.jsonl"
"$gaze" embed --model "$model" --threads "$threads" --fast-decode "${args[@]}" >"$out/fast.jsonl"

python3 - "$out" "$n" <<'PY'
import json, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
t = {}
for line in open(f'{out}/times.txt'):
    model, mode, _, s = line.split()
    t.setdefault((model, mode), []).append(float(s))
print('\nindexing (wall seconds per run, fresh db; median):')
for (model, mode), v in sorted(t.items()):
    med = statistics.median(v)
    print(f'  {model:4s} {mode:5s} runs {" ".join(f"{x:.2f}" for x in v)}  median {med:.2f} s'
          f'  = {n / med:.2f} img/s')
ex = [json.loads(l) for l in open(f'{out}/exact.jsonl')]
fa = [json.loads(l) for l in open(f'{out}/fast.jsonl')]
cos = []
for a, b in zip(ex, fa):
    c = sum(x * y for x, y in zip(a['embedding'], b['embedding']))
    cos.append((c, a['path'].rsplit('/', 1)[1], a['width'], a['height']))
print('\ncosine(exact, fast) per photo, lowest first:')
for c, name, w, h in sorted(cos):
    print(f'  {c:.6f}  {name} ({w}x{h})')
v = [c for c, *_ in cos]
print(f'\ncosine over {len(v)} photos: min {min(v):.6f}, mean {statistics.mean(v):.6f}, '
      f'{sum(c == 1.0 or c > 0.9999995 for c in v)} identical (not DCT-scaled)')
PY
