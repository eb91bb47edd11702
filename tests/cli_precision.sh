#!/usr/bin/env bash
# cli_precision.sh - `--precision fp32|bf16` through the real binary (issue #14):
#   - bf16 embeddings (text and image, BLIP fixture) within cosine 0.999 of fp32, and different
#     from them where the CPU has AVX512-BF16 (the bf16 path ran);
#   - without AVX512-BF16 (GAZE_NO_BF16=1 pretends so) a note says fp32 runs instead, and the
#     output is byte for byte the fp32 output;
#   - a word other than fp32|bf16 is a usage error (exit 2) naming it, before anything is done;
#   - index and search take the flag (the engine's model is loaded with it);
#   - the fallback of every command with --precision (match, index, search, add-texts, eval):
#     the note and the fp32 results. (`gaze serve` has no --precision.)
# Usage: bash tests/cli_precision.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"

PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    bad "no python3 with numpy (apt-get install python3-numpy)"
    cli_finish cli_precision
    exit 1
fi
MODEL="$DATA/fixtures/blip_itm"
PHOTOS=("$DATA/photos/animal_dog_corgi.jpg" "$DATA/photos/food_coffee.png")
ARGS=(--model "$MODEL" --threads 2 --text "a dog on a beach" --text "coffee"
      --image "${PHOTOS[0]}" --image "${PHOTOS[1]}")
HAS_BF16=0
if grep -qw avx512_bf16 /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo &&
   grep -qw avx512vl /proc/cpuinfo; then HAS_BF16=1; fi
echo "cli_precision: AVX512-BF16 on this CPU: $HAS_BF16"

timeout 120 "$GAZE" embed "${ARGS[@]}" >"$TMP/fp32.jsonl" 2>"$TMP/fp32.err"
check "embed fp32 exits 0" test $? -eq 0
timeout 120 "$GAZE" embed "${ARGS[@]}" --precision bf16 >"$TMP/bf16.jsonl" 2>"$TMP/bf16.err"
check "embed --precision bf16 exits 0" test $? -eq 0
check "bf16: 4 rows, each within cosine 0.999 of fp32" "$PY" - "$TMP/fp32.jsonl" \
    "$TMP/bf16.jsonl" <<'PY'
import json, sys
import numpy as np
a = [np.array(json.loads(l)['embedding'], np.float64) for l in open(sys.argv[1])]
b = [np.array(json.loads(l)['embedding'], np.float64) for l in open(sys.argv[2])]
cs = [float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in zip(a, b)]
print('  bf16 cosines to fp32:', ' '.join(f'{c:.6f}' for c in cs), file=sys.stderr)
sys.exit(0 if len(a) == len(b) == 4 and min(cs) >= 0.999 else 1)
PY
if [ "$HAS_BF16" = 1 ]; then
    check "bf16 ran: its output differs from fp32" bash -c '! cmp -s "$1" "$2"' _ \
        "$TMP/fp32.jsonl" "$TMP/bf16.jsonl"
    check "bf16 on a bf16 CPU: no fallback note" bash -c '! grep -q "computing in fp32" "$1"' _ \
        "$TMP/bf16.err"
else
    check "bf16 without AVX512-BF16: the note" grep -q "computing in fp32" "$TMP/bf16.err"
fi

# The fallback, forced.
GAZE_NO_BF16=1 timeout 120 "$GAZE" embed "${ARGS[@]}" --precision bf16 >"$TMP/nobf16.jsonl" \
    2>"$TMP/nobf16.err"
check "GAZE_NO_BF16=1 --precision bf16 exits 0" test $? -eq 0
check "GAZE_NO_BF16=1: the note names the fallback" \
    grep -q "note: --precision bf16: .*computing in fp32" "$TMP/nobf16.err"
check "GAZE_NO_BF16=1: the output is the fp32 output, byte for byte" \
    cmp -s "$TMP/fp32.jsonl" "$TMP/nobf16.jsonl"

# A typo is a usage error, before the model or any database is touched.
timeout 60 "$GAZE" embed "${ARGS[@]}" --precision fp16 >"$TMP/typo.out" 2>"$TMP/typo.err"
check "--precision fp16 exits 2" test $? -eq 2
check "--precision fp16: the message names the word" grep -q "'fp16' is not fp32 or bf16" \
    "$TMP/typo.err"
mkdir -p "$TMP/p"
cp "${PHOTOS[@]}" "$TMP/p/"
timeout 60 "$GAZE" index "$TMP/p" --db "$TMP/typo.db" --model "$MODEL" --precision half \
    >/dev/null 2>"$TMP/typo2.err"
check "index --precision half exits 2" test $? -eq 2
check "index --precision half creates no database" test ! -e "$TMP/typo.db"

# index and search with bf16: the photo of a dog is found by its own path's embedding.
timeout 120 "$GAZE" index "$TMP/p" --db "$TMP/b.db" --model "$MODEL" --threads 2 \
    --precision bf16 --quiet >/dev/null 2>"$TMP/idx.err"
check "index --precision bf16 exits 0" test $? -eq 0
timeout 120 "$GAZE" search "a dog" --db "$TMP/b.db" --precision bf16 -k 2 --json \
    >"$TMP/s.json" 2>"$TMP/s.err"
check "search --precision bf16 exits 0" test $? -eq 0
check "search --precision bf16 lists both photos" "$PY" - "$TMP/s.json" <<'PY'
import json, sys
t = open(sys.argv[1]).read()
sys.exit(0 if t.count('animal_dog_corgi.jpg') == 1 and t.count('food_coffee.png') == 1 else 1)
PY

# Every other command that takes --precision falls back the same way under GAZE_NO_BF16=1:
# exit 0, the note, and what fp32 computes (its output byte for byte, or for index and
# add-texts the vectors it stored, seen through an fp32 search of the database). The note goes
# to stderr; quiet modes (-q) are not used here because they silence it.
NOTE="note: --precision bf16: .*computing in fp32"
fallback() { # fallback WHAT FP32_OUT NOBF16_OUT NOBF16_ERR: the checks of one command
    check "$1: GAZE_NO_BF16=1 --precision bf16 prints the note" grep -q "$NOTE" "$4"
    check "$1: GAZE_NO_BF16=1 --precision bf16 gives the fp32 output" cmp -s "$2" "$3"
}
# match
MATCH=(match --model "$MODEL" --threads 2 --image "${PHOTOS[0]}" --text "a dog" --text "coffee"
       --json)
timeout 120 "$GAZE" "${MATCH[@]}" >"$TMP/m32.json" 2>/dev/null
check "match fp32 exits 0" test $? -eq 0
GAZE_NO_BF16=1 timeout 120 "$GAZE" "${MATCH[@]}" --precision bf16 >"$TMP/mnb.json" 2>"$TMP/mnb.err"
check "match: GAZE_NO_BF16=1 --precision bf16 exits 0" test $? -eq 0
fallback match "$TMP/m32.json" "$TMP/mnb.json" "$TMP/mnb.err"
# index (the vectors stored) and search (the query vector)
timeout 120 "$GAZE" index "$TMP/p" --db "$TMP/f.db" --model "$MODEL" --threads 2 --quiet \
    >/dev/null 2>&1
check "index fp32 exits 0" test $? -eq 0
GAZE_NO_BF16=1 timeout 120 "$GAZE" index "$TMP/p" --db "$TMP/n.db" --model "$MODEL" \
    --threads 2 --precision bf16 >/dev/null 2>"$TMP/inb.err"
check "index: GAZE_NO_BF16=1 --precision bf16 exits 0" test $? -eq 0
SEARCH=(search "a dog" --model "$MODEL" --threads 2 -k 2 --json)
timeout 120 "$GAZE" "${SEARCH[@]}" --db "$TMP/f.db" >"$TMP/sf.json" 2>/dev/null
timeout 120 "$GAZE" "${SEARCH[@]}" --db "$TMP/n.db" >"$TMP/sn.json" 2>/dev/null
check "search fp32 of both databases gives 2 rows" \
    test "$(wc -l <"$TMP/sf.json")" -eq 2 -a "$(wc -l <"$TMP/sn.json")" -eq 2
fallback index "$TMP/sf.json" "$TMP/sn.json" "$TMP/inb.err"
GAZE_NO_BF16=1 timeout 120 "$GAZE" "${SEARCH[@]}" --db "$TMP/f.db" --precision bf16 \
    >"$TMP/snb.json" 2>"$TMP/snb.err"
check "search: GAZE_NO_BF16=1 --precision bf16 exits 0" test $? -eq 0
fallback search "$TMP/sf.json" "$TMP/snb.json" "$TMP/snb.err"
# add-texts (the text vectors stored), seen through a text search
printf '{"id": "a", "text": "a dog on a beach"}\n{"id": "b", "text": "a cup of coffee"}\n' \
    >"$TMP/cat.jsonl"
timeout 120 "$GAZE" add-texts "$TMP/cat.jsonl" --db "$TMP/tf.db" --model "$MODEL" --threads 2 \
    >/dev/null 2>&1
check "add-texts fp32 exits 0" test $? -eq 0
GAZE_NO_BF16=1 timeout 120 "$GAZE" add-texts "$TMP/cat.jsonl" --db "$TMP/tn.db" \
    --model "$MODEL" --threads 2 --precision bf16 >/dev/null 2>"$TMP/tnb.err"
check "add-texts: GAZE_NO_BF16=1 --precision bf16 exits 0" test $? -eq 0
TSEARCH=(search "dog" --texts --model "$MODEL" --threads 2 -k 2 --json)
timeout 120 "$GAZE" "${TSEARCH[@]}" --db "$TMP/tf.db" >"$TMP/tsf.json" 2>/dev/null
timeout 120 "$GAZE" "${TSEARCH[@]}" --db "$TMP/tn.db" >"$TMP/tsn.json" 2>/dev/null
check "text search fp32 of both databases gives 2 rows" \
    test "$(wc -l <"$TMP/tsf.json")" -eq 2 -a "$(wc -l <"$TMP/tsn.json")" -eq 2
fallback add-texts "$TMP/tsf.json" "$TMP/tsn.json" "$TMP/tnb.err"
# eval: the recalls (the JSON less its timings, which differ from run to run)
EVAL=(eval "$DATA/evalset/captions.jsonl" --model "$MODEL" --threads 2 --json)
timeout 300 "$GAZE" "${EVAL[@]}" >"$TMP/e32.json" 2>/dev/null
check "eval fp32 exits 0" test $? -eq 0
GAZE_NO_BF16=1 timeout 300 "$GAZE" "${EVAL[@]}" --precision bf16 >"$TMP/enb.json" 2>"$TMP/enb.err"
check "eval: GAZE_NO_BF16=1 --precision bf16 exits 0" test $? -eq 0
for f in e32 enb; do
    "$PY" - "$TMP/$f.json" >"$TMP/$f.recalls" <<'PY'
import json, sys
def strip(o):  # drop every timing
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if 'time' not in k and not k.endswith('_s')
                and not k.endswith('_ms')}
    return [strip(v) for v in o] if isinstance(o, list) else o
d = strip(json.load(open(sys.argv[1])))
assert 'txt_r10' in d and 'img_r10' in d, 'no recalls in the eval output'
print(json.dumps(d, sort_keys=True, indent=1))
PY
done
check "eval: both outputs have recalls" test -s "$TMP/e32.recalls" -a -s "$TMP/enb.recalls"
fallback eval "$TMP/e32.recalls" "$TMP/enb.recalls" "$TMP/enb.err"

# serve takes --precision too: a typo is a usage error before anything else is looked at, and
# the fallback note comes before the server starts (here it then stops: there is no database).
timeout 30 "$GAZE" serve --db "$TMP/none.db" --precision half >/dev/null 2>"$TMP/sv.err"
check "serve --precision half exits 2" test $? -eq 2
check "serve --precision half: the message names the word" grep -q "'half' is not fp32 or bf16" \
    "$TMP/sv.err"
GAZE_NO_BF16=1 timeout 30 "$GAZE" serve --db "$TMP/none.db" --precision bf16 >/dev/null \
    2>"$TMP/svn.err"
check "serve: GAZE_NO_BF16=1 --precision bf16 prints the note" grep -q "$NOTE" "$TMP/svn.err"
check "serve without a database still fails as before (exit 3)" test "$(
    GAZE_NO_BF16=1 timeout 30 "$GAZE" serve --db "$TMP/none.db" --precision bf16 >/dev/null 2>&1
    echo $?
)" -eq 3

cli_finish cli_precision
