#!/usr/bin/env bash
# cli_reference.sh - every command on the reference numbers by default, through the real
# binary (issue #11):
#   - `gaze embed --image` (with --no-exif-orient, as the HF processors do not rotate) equals
#     the fixtures' expected image embeddings within 1e-5 for every fixture image, JPEGs
#     included, for each family: the default decode is full-size, PIL-exact;
#   - `gaze match` equals the expected ITC cosines (all families) and BLIP's ITM
#     probabilities within 1e-5;
#   - a database records how its images were preprocessed (EXIF orientation, fast or exact
#     decode, max pixels) and `gaze search --image` decodes the query the same way: an indexed
#     JPEG searched by itself scores 1 within 1e-6, for fast and exact decode, EXIF on and off;
#     `gaze info` shows the record.
# Expected values are read from tests/data/fixtures/<family>/expected.safetensors (parsed here
# by hand: 8-byte header length, JSON header, raw little-endian data).
# Usage: bash tests/cli_reference.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"

FIX=$(cd "$DATA/fixtures" && pwd) # absolute: the pairs file names images by path
# A python with numpy (scripts/setup.sh installs python3-numpy; a pyenv python3 first on PATH
# may lack it).
PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    bad "no python3 with numpy (apt-get install python3-numpy)"
    cli_finish cli_reference
    exit 1
fi
cat >"$TMP/st.py" <<'PY'
import json, struct
import numpy as np

DT = {'F32': np.float32, 'F16': np.float16, 'I64': np.int64, 'U8': np.uint8, 'BF16': None}

def load(path, key):
    """The tensor `key` of a safetensors file as a numpy array."""
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        head = json.loads(f.read(n))
        t = head[key]
        a, b = t['data_offsets']
        f.seek(8 + n + a)
        raw = f.read(b - a)
    return np.frombuffer(raw, dtype=np.dtype(DT[t['dtype']]).newbyteorder('<')).reshape(t['shape'])

def images(fix):
    """The fixture image files in batch order (inputs.json)."""
    return [f"{fix}/images/{im['file']}" for im in json.load(open(f'{fix}/inputs.json'))['images']]

def captions(fix):
    return [c['text'] for c in json.load(open(f'{fix}/inputs.json'))['captions']]
PY
export PYTHONPATH=$TMP

# ---- 1. embed --image: the expected image embeddings, every fixture image, every family
for fam in clip chinese_clip blip_itm; do
    key=image_embeds
    [ $fam = blip_itm ] && key=itc_image_embeds
    args=()
    while IFS= read -r f; do args+=(--image "$f"); done < <("$PY" -c \
        'import st, sys; print("\n".join(st.images(sys.argv[1])))' "$FIX")
    if "$GAZE" embed --model "$FIX/$fam" --no-exif-orient --threads 1 "${args[@]}" \
        >"$TMP/emb.jsonl" 2>"$TMP/e.txt"; then ok; else bad "$fam: embed --image exits 0"; cat "$TMP/e.txt" >&2; fi
    check "$fam: embed --image equals $key within 1e-5 for every fixture image" \
        "$PY" - "$FIX" "$fam" "$key" "$TMP/emb.jsonl" <<'PY'
import json, sys
import numpy as np, st
fix, fam, key, out = sys.argv[1:]
want = st.load(f'{fix}/{fam}/expected.safetensors', key)
rows = [json.loads(l) for l in open(out)]
files = st.images(fix)
ok = len(rows) == len(files) == want.shape[0]
for i, (r, f) in enumerate(zip(rows, files)):
    d = float(np.abs(np.array(r['embedding'], np.float64) - want[i]).max())
    good = r['path'] == f and d <= 1e-5
    ok &= good
    if not good:
        print(f'  {fam} {f.rsplit("/", 1)[1]}: max |diff| {d:.3g}', file=sys.stderr)
sys.exit(0 if ok else 1)
PY
    # --fast-decode is opt-in: it changes a JPEG that is much larger than the 64 px input
    "$GAZE" embed --model "$FIX/$fam" --no-exif-orient --threads 1 --fast-decode \
        --image "$FIX/images/a2_rocket.jpg" >"$TMP/fast.jsonl" 2>"$TMP/e.txt"
    check "$fam: embed --fast-decode is a different (DCT-scaled) decode" "$PY" - \
        "$TMP/emb.jsonl" "$TMP/fast.jsonl" <<'PY'
import json, sys
exact = [json.loads(l) for l in open(sys.argv[1])][1]['embedding']
fast = json.loads(open(sys.argv[2]).readline())['embedding']
d = max(abs(a - b) for a, b in zip(exact, fast))
sys.exit(0 if 1e-5 < d < 0.2 else 1)
PY
done

# ---- 2. match: ITC cosines (every family) and BLIP's ITM probabilities, all 5 x 12 pairs
"$PY" - "$FIX" "$TMP/pairs.jsonl" <<'PY'
import json, sys, st
fix, out = sys.argv[1:]
with open(out, 'w') as f:
    for im in st.images(fix):
        for t in st.captions(fix):
            f.write(json.dumps({'image': im, 'text': t}) + '\n')
PY
for fam in clip chinese_clip blip_itm; do
    if "$GAZE" match --model "$FIX/$fam" --no-exif-orient --threads 1 --pairs "$TMP/pairs.jsonl" \
        --json >"$TMP/match.jsonl" 2>"$TMP/e.txt"; then ok; else bad "$fam: match exits 0"; cat "$TMP/e.txt" >&2; fi
    check "$fam: match equals the expected itc (and BLIP itm_prob) within 1e-5" \
        "$PY" - "$FIX" "$fam" "$TMP/match.jsonl" <<'PY'
import json, sys
import numpy as np, st
fix, fam, out = sys.argv[1:]
e = f'{fix}/{fam}/expected.safetensors'
if fam == 'blip_itm':
    itc, prob = st.load(e, 'itc_sim'), st.load(e, 'itm_probs')
else:
    itc = st.load(e, 'image_embeds').astype(np.float64) @ st.load(e, 'text_embeds').T.astype(np.float64)
    prob = None
rows = [json.loads(l) for l in open(out)]
I, T = itc.shape
ok = len(rows) == I * T
worst = [0.0, 0.0]
for n, r in enumerate(rows[:I * T]):
    i, t = divmod(n, T)
    worst[0] = max(worst[0], abs(r['itc'] - itc[i, t]))
    if prob is not None:
        worst[1] = max(worst[1], abs(r['itm_prob'] - prob[i, t]))
ok &= worst[0] <= 1e-5 and worst[1] <= 1e-5
if not ok:
    print(f'  {fam}: {len(rows)} rows, max |diff| itc {worst[0]:.3g}, itm_prob {worst[1]:.3g}',
          file=sys.stderr)
sys.exit(0 if ok else 1)
PY
done

# ---- 3. the index's preprocessing, recorded and followed by image queries
P=$TMP/photos
mkdir -p "$P"
# exif_orient_6.jpg: 1800x1200 stored, EXIF orientation 6, so fast decode (1/8 scale) and EXIF
# both change its pixels; the others make the search a real ranking.
for f in exif_orient_6.jpg scene_storm_canon_exif.jpg animal_dog_corgi.jpg food_coffee.png \
    product_kettle.jpg; do
    cp "$DATA/photos/$f" "$P/"
done
Q=$P/exif_orient_6.jpg
for fam in blip_itm clip; do
    for decode in fast exact; do
        for exif in on off; do
            tag="$fam/$decode/exif-$exif"
            DB=$TMP/$fam-$decode-$exif.db
            flags=(--$decode-decode)
            [ $exif = off ] && flags+=(--no-exif-orient)
            if "$GAZE" index "$P" --db "$DB" --model "$FIX/$fam" --quiet "${flags[@]}" >/dev/null \
                2>"$TMP/e.txt"; then ok; else bad "$tag: index exits 0"; cat "$TMP/e.txt" >&2; fi
            # the search has its own defaults (exact decode, EXIF on): the record must win
            "$GAZE" search --image "$Q" --db "$DB" -k 1 --json >"$TMP/s.jsonl" 2>"$TMP/e.txt"
            check "$tag: the indexed photo searched by itself scores 1 (1e-6)" "$PY" - \
                "$TMP/s.jsonl" "$Q" <<'PY'
import json, os, sys
r = [json.loads(l) for l in open(sys.argv[1])]
good = len(r) == 1 and os.path.samefile(r[0]['path'], sys.argv[2]) and abs(r[0]['score'] - 1) <= 1e-6
if not good:
    print(f'  got {r[0]["path"] if r else None} score {r[0]["score"] if r else None}', file=sys.stderr)
sys.exit(0 if good else 1)
PY
            "$GAZE" info --db "$DB" >"$TMP/info.txt" 2>&1
            want="EXIF orientation $exif, $decode"
            check "$tag: gaze info shows the recorded preprocessing" \
                grep -q "preprocess .*$want.*decode, max 100 MP" "$TMP/info.txt"
            "$GAZE" info --db "$DB" --json >"$TMP/info.json" 2>&1
            check "$tag: gaze info --json has the preprocess object" "$PY" - "$TMP/info.json" \
                "$decode" "$exif" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['models'][0]['preprocess']
want_fast, want_exif = sys.argv[2] == 'fast', sys.argv[3] == 'on'
ok = m['fast_decode'] == want_fast and m['exif_orient'] == want_exif
ok &= (m['min_size'] > 0) == want_fast and m['max_pixels'] == 100000000
sys.exit(0 if ok else 1)
PY
        done
    done
done
# --max-megapixels is recorded too
DB=$TMP/mp.db
"$GAZE" index "$P" --db "$DB" --model "$FIX/clip" --quiet --max-megapixels 50 >/dev/null 2>&1
"$GAZE" info --db "$DB" >"$TMP/info.txt" 2>&1
check "--max-megapixels is recorded" grep -q "preprocess .*max 50 MP" "$TMP/info.txt"
"$GAZE" index "$P" --db "$TMP/x.db" --model "$FIX/clip" --quiet --fast-decode --exact-decode \
    >/dev/null 2>"$TMP/e.txt"
check "--fast-decode with --exact-decode is a usage error" test $? -eq 2
check "... which says so" grep -q "exclude each other" "$TMP/e.txt"

cli_finish cli_reference
