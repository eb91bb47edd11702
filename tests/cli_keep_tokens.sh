#!/usr/bin/env bash
# cli_keep_tokens.sh - `gaze index --keep-tokens[=int8|bf16]` and the re-rank from stored
# vision token states, end to end with the BLIP fixture: the re-rank from int8 and bf16 tokens
# gives the ITM of the image path within a stated tolerance, without reading the photos; a
# re-rank without tokens announces the re-encoding; an indexed library run again with
# --keep-tokens encodes only what lacks them; `gaze rm` drops them; `gaze info` counts them;
# a CLIP model refuses the flag (exit 2, nothing stored); kills during an index run leave every
# committed vector with its tokens and no tokens without a vector.
# Usage: bash tests/cli_keep_tokens.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"

M=$DATA/fixtures/blip_itm
P=$TMP/photos
mkdir -p "$P"
for f in animal_cat_chelsea.png animal_dog_corgi.jpg animal_kitten.webp animal_toucan.webp \
    food_coffee.png exif_orient_6.jpg gray_cameraman.png landmark_eiffel_tower.webp \
    product_kettle.jpg scene_rocket_launchpad.jpg; do
    cp "$DATA/photos/$f" "$P/"
done
N=$(ls "$P" | wc -l)
Q="a cat on a table"
K=$N # re-rank every photo: each one is compared

# sql DB QUERY: the single value a query returns (python's sqlite3, read-only)
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True); print(c.execute(sys.argv[2]).fetchone()[0])' "$1" "$2"; }
# read-write, as gaze opens it: after a kill SQLite recovers the WAL's index before reading
sqlrw() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(sys.argv[2]).fetchone()[0])' "$1" "$2"; }
jfield() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }

# ---- the reference: no tokens, every candidate decoded and encoded again (today's path)
timeout 120 "$GAZE" index "$P" --db "$TMP/ref.db" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index without tokens exits 0" test $? -eq 0
timeout 120 "$GAZE" search "$Q" --db "$TMP/ref.db" -k "$K" --rerank "$K" --json >"$TMP/ref.jsonl" 2>"$TMP/ref.err"
check "re-rank without tokens exits 0" test $? -eq 0
check "re-rank without tokens announces the re-encoding and its cost" \
    grep -q "re-rank: $K candidates without stored tokens, re-encoding them (about .* s: .* s an image" "$TMP/ref.err"
check "the announcement names --keep-tokens" grep -q -- "--keep-tokens" "$TMP/ref.err"
"$GAZE" search "$Q" --db "$TMP/ref.db" -k 3 --rerank 4 --quiet --json >/dev/null 2>"$TMP/q.err"
check "--quiet silences the announcement" test ! -s "$TMP/q.err"
"$GAZE" info --db "$TMP/ref.db" --json >"$TMP/info0.json" 2>/dev/null
check "info: no tokens stored without --keep-tokens" test "$(jfield "$TMP/info0.json" tokens)" = 0

# ---- an indexed library run again with --keep-tokens: only the photos lacking tokens are
# encoded again (all of them here), then nothing
cp "$TMP/ref.db" "$TMP/int8.db"
for f in "$TMP/ref.db".m*.faiss; do cp "$f" "$TMP/int8.db${f#"$TMP/ref.db"}"; done
timeout 120 "$GAZE" index "$P" --db "$TMP/int8.db" --keep-tokens --quiet --json >"$TMP/fill.json" 2>"$TMP/e.txt"
check "re-index with --keep-tokens exits 0" test $? -eq 0
check "re-index with --keep-tokens encodes the $N photos without tokens" test "$(jfield "$TMP/fill.json" encoded)" = "$N"
timeout 120 "$GAZE" index "$P" --db "$TMP/int8.db" --keep-tokens --quiet --json >"$TMP/fill2.json" 2>"$TMP/e.txt"
check "a second --keep-tokens run encodes nothing" test "$(jfield "$TMP/fill2.json" encoded)" = 0
check "... and skips all $N" test "$(jfield "$TMP/fill2.json" skipped)" = "$N"
"$GAZE" info --db "$TMP/int8.db" --json >"$TMP/info1.json" 2>/dev/null
check "info: $N images with tokens" test "$(jfield "$TMP/info1.json" tokens)" = "$N"
# fixture: 64 px images, 16 px patches: 17 tokens of 64, int8 = 64 + 4 bytes a token
check "info: int8 bytes = N * 17 * (64 + 4)" test "$(jfield "$TMP/info1.json" token_bytes)" = $((N * 17 * 68))
"$GAZE" info --db "$TMP/int8.db" >"$TMP/info1.txt" 2>/dev/null
check "info (text) shows the tokens line" grep -q "^tokens  *$N images with stored token states" "$TMP/info1.txt"

# ---- bf16, indexed fresh
timeout 120 "$GAZE" index "$P" --db "$TMP/bf16.db" --model "$M" --keep-tokens=bf16 --quiet >/dev/null 2>"$TMP/e.txt"
check "index --keep-tokens=bf16 exits 0" test $? -eq 0
check "bf16: every vector has tokens, format 2" test "$(sql "$TMP/bf16.db" 'SELECT count(*) FROM tokens WHERE format = 2')" = "$N"
check "bf16: 2 bytes a value" test "$(sql "$TMP/bf16.db" 'SELECT sum(length(data)) FROM tokens')" = $((N * 17 * 64 * 2))

# ---- the re-rank from tokens: no photo is read, the scores equal the image path's
mv "$P" "$TMP/photos.away" # the files are gone: only stored tokens can re-rank now
for fmt in int8 bf16; do
    timeout 120 "$GAZE" search "$Q" --db "$TMP/$fmt.db" -k "$K" --rerank "$K" --json >"$TMP/$fmt.jsonl" 2>"$TMP/$fmt.err"
    check "$fmt: re-rank from tokens exits 0" test $? -eq 0
    check "$fmt: no re-encoding announced" bash -c '! grep -q "without stored tokens" "$1"' _ "$TMP/$fmt.err"
    # Tolerances: int8 (one scale per token) moves an ITM logit by at most 0.02 on this
    # fixture, bf16 by at most 0.005; the probability by less. Every photo must be compared.
    check "$fmt: ITM from tokens equals ITM from the photos (|d logit| <= tol, |d prob| <= tol/4)" \
        python3 - "$TMP/ref.jsonl" "$TMP/$fmt.jsonl" "$fmt" "$N" <<'EOF'
import json, os, sys
ref = {os.path.basename(r['path']): r for r in map(json.loads, open(sys.argv[1]))}
got = {os.path.basename(r['path']): r for r in map(json.loads, open(sys.argv[2]))}
tol = {'int8': 0.02, 'bf16': 0.005}[sys.argv[3]]
ok = len(ref) == len(got) == int(sys.argv[4])
worst = 0.0
for p, r in ref.items():
    g = got.get(p)
    if g is None or 'itm_logit' not in g:
        print('missing or not re-ranked:', p); ok = False; continue
    d = abs(g['itm_logit'] - r['itm_logit'])
    worst = max(worst, d)
    ok &= d <= tol and abs(g['itm_prob'] - r['itm_prob']) <= tol / 4
    ok &= abs(g['itc'] - r['itc']) < 1e-6
    ok &= abs(g['score'] - (g['itm_logit'] + g['itc'])) < 1e-5
print(sys.argv[3], 'max |d itm_logit| =', worst)
sys.exit(0 if ok else 1)
EOF
done
# without tokens and without the photos, nothing can be re-ranked: the test above is not vacuous
timeout 120 "$GAZE" search "$Q" --db "$TMP/ref.db" -k "$K" --rerank "$K" --json >"$TMP/gone.jsonl" 2>/dev/null
check "without tokens, the moved photos cannot be re-ranked (no itm_logit)" \
    bash -c '! grep -q itm_logit "$1"' _ "$TMP/gone.jsonl"
mv "$TMP/photos.away" "$P"

# ---- a mixed library: candidates with tokens run the fusion, the rest are announced
cp "$P/product_kettle.jpg" "$TMP/kettle_copy.jpg"
printf 'x' >>"$TMP/kettle_copy.jpg" # new content (bytes after the JPEG's end): no reuse
timeout 60 "$GAZE" index "$TMP/kettle_copy.jpg" --db "$TMP/int8.db" --quiet >/dev/null 2>&1
timeout 120 "$GAZE" search "$Q" --db "$TMP/int8.db" -k $((N + 1)) --rerank $((N + 1)) --json >"$TMP/mix.jsonl" 2>"$TMP/mix.err"
check "mixed: exits 0, all $((N + 1)) re-ranked" bash -c '[ "$(grep -c itm_logit "$1")" = "$2" ]' _ "$TMP/mix.jsonl" $((N + 1))
check "mixed: the one photo without tokens is announced" grep -q "re-rank: 1 candidate without stored tokens, re-encoding it" "$TMP/mix.err"

# ---- a format change encodes again; a copy (same content) reuses vector and tokens
timeout 120 "$GAZE" index "$P" --db "$TMP/bf16.db" --keep-tokens=int8 --quiet --json >"$TMP/f.json" 2>/dev/null
check "--keep-tokens=int8 over bf16 tokens encodes again" test "$(jfield "$TMP/f.json" encoded)" = "$N"
check "... and stores int8" test "$(sql "$TMP/bf16.db" 'SELECT count(*) FROM tokens WHERE format = 1')" = "$N"
cp "$P/animal_dog_corgi.jpg" "$P/corgi_again.jpg"
timeout 120 "$GAZE" index "$P" --db "$TMP/bf16.db" --keep-tokens --quiet --json >"$TMP/f2.json" 2>/dev/null
check "a duplicate file reuses (not encoded)" test "$(jfield "$TMP/f2.json" reused)" = 1
check "the duplicate has the tokens of its twin" test "$(sql "$TMP/bf16.db" "SELECT count(*) FROM tokens t JOIN items i ON i.id = t.item_id WHERE CAST(i.path AS TEXT) LIKE '%corgi_again.jpg'")" = 1
rm "$P/corgi_again.jpg"

# ---- gaze rm drops the tokens with the item
timeout 60 "$GAZE" rm "$P/animal_cat_chelsea.png" --db "$TMP/int8.db" --quiet >/dev/null 2>&1
check "rm exits 0" test $? -eq 0
check "rm: tokens count down by one" test "$(sql "$TMP/int8.db" 'SELECT count(*) FROM tokens')" = $((N - 1))
check "rm: no tokens without their vector" test "$(sql "$TMP/int8.db" 'SELECT count(*) FROM tokens t WHERE NOT EXISTS(SELECT 1 FROM embeddings e WHERE e.item_id = t.item_id AND e.model_id = t.model_id)')" = 0

# ---- usage: CLIP has no ITM head; an unknown format
timeout 60 "$GAZE" index "$P" --db "$TMP/clip.db" --model "$DATA/fixtures/clip" --keep-tokens >/dev/null 2>"$TMP/e.txt"
check "CLIP --keep-tokens: exit 2" test $? -eq 2
check "CLIP --keep-tokens: says BLIP's matching head" grep -q "BLIP" "$TMP/e.txt"
check "CLIP --keep-tokens: no database left behind" test ! -e "$TMP/clip.db"
timeout 60 "$GAZE" index "$P" --db "$TMP/x.db" --model "$M" --keep-tokens=fp8 >/dev/null 2>"$TMP/e.txt"
check "--keep-tokens=fp8: exit 2" test $? -eq 2
check "--keep-tokens=fp8: names the formats" grep -q "int8 or bf16" "$TMP/e.txt"
check "--keep-tokens=fp8: no database" test ! -e "$TMP/x.db"
# the bare flag never takes the next argument as its value
timeout 120 "$GAZE" index --keep-tokens "$P" --db "$TMP/bare.db" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "bare --keep-tokens before PATH: exit 0, int8" test "$(sql "$TMP/bare.db" 'SELECT count(DISTINCT format) || "/" || min(format) FROM tokens')" = "1/1"

# ---- kills during an index run with --keep-tokens: after each, every committed vector has
# its tokens (same transaction) and no tokens are without a vector; then a run completes.
K2=$TMP/kill
mkdir -p "$K2"
i=0
# a 5312 px photo decodes slowly enough that the kills land inside the run
for f in large_dandelions_5312px_progressive.jpg scene_storm_canon_exif.jpg animal_dog_corgi.jpg; do
    for r in 1 2 3 4 5; do # distinct contents: bytes after the JPEG's end change the hash only
        cp "$DATA/photos/$f" "$K2/$r-$f"
        printf '%d' "$r" >>"$K2/$r-$f"
        i=$((i + 1))
    done
done
landed=0
for delay in 0.3 0.8 1.4; do
    "$GAZE" index "$K2" --db "$TMP/kill.db" --model "$M" --keep-tokens --batch 2 --quiet >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null && landed=$((landed + 1))
    fi
    wait "$pid" 2>/dev/null
    [ -e "$TMP/kill.db" ] || continue
    check "kill at $delay s: integrity" test "$(sqlrw "$TMP/kill.db" 'PRAGMA integrity_check')" = ok
    # A kill before the schema's transaction commits leaves a database with no tables at all
    # (seen in CI with the kill at 0.3 s); the schema is all or nothing, never half made.
    tables=$(sqlrw "$TMP/kill.db" "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('embeddings', 'tokens')")
    check "kill at $delay s: the schema is whole or absent ($tables of 2 tables)" test "$tables" = 0 -o "$tables" = 2
    [ "$tables" = 2 ] || continue
    check "kill at $delay s: every vector has its tokens" test "$(sqlrw "$TMP/kill.db" 'SELECT count(*) FROM embeddings e WHERE NOT EXISTS(SELECT 1 FROM tokens t WHERE t.item_id = e.item_id AND t.model_id = e.model_id)')" = 0
    check "kill at $delay s: no tokens without a vector" test "$(sqlrw "$TMP/kill.db" 'SELECT count(*) FROM tokens t WHERE NOT EXISTS(SELECT 1 FROM embeddings e WHERE e.item_id = t.item_id AND e.model_id = t.model_id)')" = 0
done
check "at least one kill landed mid-run ($landed)" test "$landed" -ge 1
timeout 300 "$GAZE" index "$K2" --db "$TMP/kill.db" --model "$M" --keep-tokens --quiet >/dev/null 2>&1
check "after the kills a run completes" test $? -eq 0
check "... and all $i photos have vectors and tokens" test "$(sql "$TMP/kill.db" 'SELECT count(*) FROM tokens')/$(sql "$TMP/kill.db" 'SELECT count(*) FROM embeddings')" = "$i/$i"

cli_finish cli_keep_tokens
