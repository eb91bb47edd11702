#!/usr/bin/env bash
# run.sh - `gaze search --rerank K` with and without stored vision token states
# (`gaze index --keep-tokens`), and the ITM error of int8 / bf16 tokens against fp32 states.
#
#   bash bench/keep_tokens/run.sh [MODEL_DIR] [OUT_DIR]
#
# MODEL_DIR: a BLIP ITM model folder (default /work/bench-models/blip-base-384, full-size random
# weights); the photos are those of data/ and tests/data (68). Steps:
#   1. index with --keep-tokens (int8) and with --keep-tokens=bf16 (two databases);
#   2. the reference database: a copy of the int8 one with its tokens deleted, so that its
#      re-rank decodes and encodes every candidate (fp32 states, today's path);
#   3. ITM probability of every photo for a few captions from each database (--rerank over all
#      photos): max |int8 - fp32| and |bf16 - fp32|;
#   4. hyperfine: `gaze search "a photo" --rerank K -k 10` on the int8 and reference databases;
#   5. sizes: bytes per image of each format, database files;
#   6. (GROW=N, default 10000; 0 skips) the int8 library grown to N photos by
#      grow_library.py, and the re-rank timed there in fp32 and bf16.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the timed commands (DESIGN.md, Compute).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-/work/bench-models/blip-base-384}
OUT=${2:-/tmp/gz_keep_tokens}
GAZE=${GAZE:-build/gaze}
K=${K:-32}
RUNS=${RUNS:-3}
rm -rf "$OUT"
mkdir -p "$OUT"
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OMP_WAIT_POLICY=passive

echo "== index (int8 tokens, then bf16 tokens)"
/usr/bin/time -f "%e s, %M KB max RSS" "$GAZE" index data tests/data --db "$OUT/int8.db" \
    --model "$MODEL" --keep-tokens --quiet
/usr/bin/time -f "%e s, %M KB max RSS" "$GAZE" index data tests/data --db "$OUT/bf16.db" \
    --model "$MODEL" --keep-tokens=bf16 --quiet
"$GAZE" info --db "$OUT/int8.db" --json >"$OUT/int8.info.json"
"$GAZE" info --db "$OUT/bf16.db" --json >"$OUT/bf16.info.json"
# the reference: the same vectors, no tokens (a copy made after the index run closed the db)
cp "$OUT/int8.db" "$OUT/ref.db"
for f in "$OUT"/int8.db.m*.faiss; do cp "$f" "$OUT/ref.db${f#"$OUT/int8.db"}"; done
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("DELETE FROM tokens"); c.commit(); c.execute("VACUUM")' "$OUT/ref.db"
N=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["images"])' "$OUT/int8.info.json")

echo "== ITM error of stored tokens against fp32 states ($N photos)"
for cap in "a photo" "a cat sitting on a table" "a rocket on a launch pad" "a cup of coffee"; do
    for db in ref int8 bf16; do
        "$GAZE" search "$cap" --db "$OUT/$db.db" -k "$N" --rerank "$N" --json --quiet \
            >"$OUT/$db.$(echo "$cap" | tr ' ' _).jsonl"
    done
done
python3 - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
worst = {'int8': [0, 0], 'bf16': [0, 0]}  # prob, logit
pairs = 0
for ref in glob.glob(os.path.join(out, 'ref.*.jsonl')):
    cap = ref[len(os.path.join(out, 'ref.')):]
    r = {x['item_id']: x for x in map(json.loads, open(ref))}
    for fmt in worst:
        g = {x['item_id']: x for x in map(json.loads, open(os.path.join(out, fmt + '.' + cap)))}
        assert set(g) == set(r), 'candidate sets differ'
        for i, x in r.items():
            worst[fmt][0] = max(worst[fmt][0], abs(g[i]['itm_prob'] - x['itm_prob']))
            worst[fmt][1] = max(worst[fmt][1], abs(g[i]['itm_logit'] - x['itm_logit']))
    pairs += len(r)
for fmt, (p, l) in worst.items():
    print(f'{fmt}: max |itm_prob - fp32| = {p:.2e}, max |itm_logit - fp32| = {l:.2e} over {pairs} pairs')
EOF

echo "== sizes"
python3 - "$OUT" <<'EOF'
import json, os, sys
out = sys.argv[1]
for fmt in ('int8', 'bf16'):
    i = json.load(open(os.path.join(out, fmt + '.info.json')))
    print(f"{fmt}: {i['tokens']} images, {i['token_bytes'] / i['tokens']:.0f} bytes an image, "
          f"database {os.path.getsize(os.path.join(out, fmt + '.db')) / 1e6:.1f} MB")
print(f"without tokens: database {os.path.getsize(os.path.join(out, 'ref.db')) / 1e6:.1f} MB")
EOF

echo "== time: gaze search \"a photo\" --rerank $K -k 10 (stored tokens vs re-encoding)"
hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$OUT/time.md" \
    -n "tokens (int8)" "$GAZE search 'a photo' --db $OUT/int8.db --rerank $K -k 10 --quiet" \
    -n "tokens (bf16)" "$GAZE search 'a photo' --db $OUT/bf16.db --rerank $K -k 10 --quiet" \
    -n "no tokens" "$GAZE search 'a photo' --db $OUT/ref.db --rerank $K -k 10 --quiet" \
    -n "no re-rank" "$GAZE search 'a photo' --db $OUT/int8.db -k 10 --quiet"
cat "$OUT/time.md"

# The issue's library size: the int8 library grown to GROW photos (grow_library.py: copies
# with their own paths, nearby vectors and the same stored tokens; 4.5 GB at 10,000), its index
# cache written once (an index run of an empty folder), then the re-rank in fp32 and bf16.
GROW=${GROW:-10000}
if [ "$GROW" -gt 0 ]; then
    echo "== time at $GROW photos: gaze search --rerank $K, fp32 and bf16, int8 tokens"
    python3 bench/keep_tokens/grow_library.py "$OUT/int8.db" "$OUT/grown.db" "$GROW"
    mkdir -p "$OUT/empty"
    "$GAZE" index "$OUT/empty" --db "$OUT/grown.db" --quiet >/dev/null
    hyperfine --runs "$RUNS" --warmup 1 --export-markdown "$OUT/time_grown.md" \
        -n "fp32, --rerank $K" "$GAZE search 'kids on a red sled' --db $OUT/grown.db --rerank $K -k 10 --quiet" \
        -n "bf16, --rerank $K" "$GAZE search 'kids on a red sled' --db $OUT/grown.db --rerank $K -k 10 --quiet --precision bf16" \
        -n "fp32, no re-rank" "$GAZE search 'kids on a red sled' --db $OUT/grown.db -k 10 --quiet"
    cat "$OUT/time_grown.md"
    for p in fp32 bf16; do
        /usr/bin/time -f "$p --rerank $K: %e s wall, %U s user, %S s system, %M KB max RSS" \
            "$GAZE" search 'kids on a red sled' --db "$OUT/grown.db" --rerank "$K" -k 10 \
            --quiet --precision $p >/dev/null
    done
    rm -f "$OUT"/grown.db*
fi
