#!/usr/bin/env bash
# cli_dups.sh - gaze dups through the binary (#12): copies of a photo are one exact group; a
# re-encoded copy (8-bit and 16-bit PNG of one photo) and a resized copy (a generated gradient
# at two sizes) are near groups at a threshold; chains join (union-find); sizes and order are
# right; index says "skipped (unchanged)" as its JSON says "skipped"; a database's removed or missing files leave the groups; bad --threshold is exit 2;
# an empty database has no groups.
# Usage: bash tests/cli_dups.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
M=$DATA/fixtures/blip_itm
P=$DATA/photos
HERE=$(dirname "${BASH_SOURCE[0]}")
# groups of a --json run as sorted base names, one group per line: "exact|a.jpg b.jpg"
groups() {
    timeout 60 "$GAZE" dups --db "$TMP/d.db" "$@" --json 2>"$TMP/dups.err" | python3 -c '
import json, os, sys
for line in sys.stdin:
    g = json.loads(line)
    names = sorted(os.path.relpath(i["path"], sys.argv[1]) for i in g["items"])
    print(("exact" if g["exact"] else "near") + "|" + " ".join(names))' "$(cd "$TMP/lib" && pwd -P)"
}
has_group() { # has_group WANT FILE: the line WANT is in FILE
    if grep -qxF "$1" "$2"; then ok; else
        bad "group '$1' not found in: $(tr '\n' ';' <"$2")"
    fi
}

mkdir -p "$TMP/lib/sub" "$TMP/empty"
cp "$P/animal_dog_corgi.jpg" "$P/food_coffee.png" "$P/animal_cat_chelsea.png" "$P/png16_chelsea.png" \
    "$P/product_kettle.jpg" "$P/scene_rocket_launchpad.jpg" "$TMP/lib/"
cp "$P/animal_dog_corgi.jpg" "$TMP/lib/sub/corgi_copy.jpg"
cp "$P/animal_dog_corgi.jpg" "$TMP/lib/sub/corgi_copy2.jpg"
cp "$P/food_coffee.png" "$TMP/lib/sub/food_coffee.png"
python3 "$HERE/hostile_images.py" png 64 64 "$TMP/lib/grad.png"          # a gradient
python3 "$HERE/hostile_images.py" png 56 56 "$TMP/lib/grad_small.png"    # the same, resized
python3 "$HERE/hostile_images.py" png 64 64 "$TMP/lib/grad_shift.png" 4  # its right edge wrapped
python3 "$HERE/hostile_images.py" png 64 64 "$TMP/lib/grad_far.png" 128  # shifted by half a turn
timeout 120 "$GAZE" index "$TMP/lib" --db "$TMP/d.db" --model "$M" -q >/dev/null 2>"$TMP/e.txt"
check "index the library" test $? -eq 0

# #12.12: index's text summary and its JSON name the unchanged files with one word
timeout 120 "$GAZE" index "$TMP/lib" --db "$TMP/d.db" --model "$M" -q >"$TMP/t.txt" 2>/dev/null
check "index again: the text says 'skipped (unchanged)'" grep -q ", 13 skipped (unchanged), " "$TMP/t.txt"
timeout 120 "$GAZE" index "$TMP/lib" --db "$TMP/d.db" --model "$M" -q --json >"$TMP/t.json" 2>/dev/null
check "index again: the JSON says skipped" grep -q '"skipped":13,' "$TMP/t.json"

# ---- exact duplicates only ----
groups --exact >"$TMP/g.txt"
check "dups --exact exits 0" test "${PIPESTATUS[0]}" -eq 0
check "--exact: two groups" test "$(wc -l <"$TMP/g.txt")" -eq 2
has_group "exact|animal_dog_corgi.jpg sub/corgi_copy.jpg sub/corgi_copy2.jpg" "$TMP/g.txt"
has_group "exact|food_coffee.png sub/food_coffee.png" "$TMP/g.txt"

# sizes, reclaimable bytes and order (largest reclaimable first) against the files themselves
timeout 60 "$GAZE" dups --db "$TMP/d.db" --exact --json >"$TMP/g.json"
python3 - "$TMP/g.json" <<'PY'
import json, os, sys
gs = [json.loads(l) for l in open(sys.argv[1])]
problems = []
for g in gs:
    sizes = [i["size"] for i in g["items"]]
    real = [os.path.getsize(i["path"]) for i in g["items"]]
    if sizes != real: problems.append("sizes %s, files %s" % (sizes, real))
    if sizes != sorted(sizes, reverse=True): problems.append("not largest first: %s" % sizes)
    if g["total_bytes"] != sum(real): problems.append("total_bytes %d" % g["total_bytes"])
    if g["reclaimable_bytes"] != sum(real) - max(real): problems.append("reclaimable %d" % g["reclaimable_bytes"])
    if g["min_score"] != 1: problems.append("exact min_score %r" % g["min_score"])
rec = [g["reclaimable_bytes"] for g in gs]
if rec != sorted(rec, reverse=True): problems.append("groups not largest reclaimable first: %s" % rec)
if [g["group"] for g in gs] != list(range(1, len(gs) + 1)): problems.append("group numbers")
for p in problems: print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
check "--json: sizes, totals, reclaimable bytes and order match the files" test $? -eq 0

# ---- near duplicates at a threshold ----
groups --threshold 0.99 >"$TMP/g.txt"
check "--threshold 0.99: four groups" test "$(wc -l <"$TMP/g.txt")" -eq 4
has_group "near|animal_cat_chelsea.png png16_chelsea.png" "$TMP/g.txt"
has_group "near|grad.png grad_small.png" "$TMP/g.txt"
has_group "exact|animal_dog_corgi.jpg sub/corgi_copy.jpg sub/corgi_copy2.jpg" "$TMP/g.txt"
check "--threshold 0.99: the half-turn gradient is in no group" \
    bash -c '! grep -q "grad_far" "$1"' _ "$TMP/g.txt"
check "--threshold 0.99: the kettle (no copy) is in no group" \
    bash -c '! grep -q "kettle" "$1"' _ "$TMP/g.txt"
# a lower threshold links the wrapped gradient to both: one group through the chain
groups --threshold 0.98 >"$TMP/g.txt"
has_group "near|grad.png grad_shift.png grad_small.png" "$TMP/g.txt"
# the default threshold (0.99) is the one documented
groups >"$TMP/g2.txt"
groups --threshold 0.99 >"$TMP/g3.txt"
check "the default threshold is 0.99" cmp -s "$TMP/g2.txt" "$TMP/g3.txt"

# text output: a header per group, every path with its size, a total line
timeout 60 "$GAZE" dups --db "$TMP/d.db" --threshold 0.99 >"$TMP/out.txt" 2>&1
check "text output exits 0" test $? -eq 0
check "text: near group header" grep -q "^group [0-9]: 2 images, near copies (cosine >= " "$TMP/out.txt"
check "text: exact group header" grep -q "^group [0-9]: 3 images, exact copies, " "$TMP/out.txt"
check "text: a path with its size in bytes" \
    grep -qE "^ +$(stat -c %s "$TMP/lib/sub/corgi_copy.jpg")  .*/sub/corgi_copy\.jpg$" "$TMP/out.txt"
check "text: the total line" grep -q "^4 duplicate groups among 13 images, " "$TMP/out.txt"
check "text: largest reclaimable group first (the coffee copies)" \
    bash -c 'sed -n 2p "$1" | grep -q food_coffee.png' _ "$TMP/out.txt"

# a removed copy leaves its group; a deleted file (missing after re-index) too
timeout 60 "$GAZE" rm "$TMP/lib/sub/corgi_copy2.jpg" --db "$TMP/d.db" -q >/dev/null 2>&1
check "gaze rm of a copy" test $? -eq 0
groups --exact >"$TMP/g.txt"
has_group "exact|animal_dog_corgi.jpg sub/corgi_copy.jpg" "$TMP/g.txt"
rm "$TMP/lib/sub/food_coffee.png" "$TMP/lib/sub/corgi_copy2.jpg"
timeout 120 "$GAZE" index "$TMP/lib" --db "$TMP/d.db" --model "$M" -q >/dev/null 2>&1
groups --exact >"$TMP/g.txt"
check "after a deleted file: one exact group left" test "$(wc -l <"$TMP/g.txt")" -eq 1
has_group "exact|animal_dog_corgi.jpg sub/corgi_copy.jpg" "$TMP/g.txt"

# ---- bad input ----
for t in 0 -0.5 1.5 abc nan ""; do
    timeout 60 "$GAZE" dups --db "$TMP/d.db" --threshold "$t" >"$TMP/o.txt" 2>"$TMP/e.txt"
    check "--threshold '$t' is a usage error (exit 2)" test $? -eq 2
    check "--threshold '$t': the message names the flag" grep -q -- "--threshold" "$TMP/e.txt"
    check "--threshold '$t': nothing on stdout" test ! -s "$TMP/o.txt"
done
timeout 60 "$GAZE" dups --db "$TMP/none/x.db" >/dev/null 2>"$TMP/e.txt"
check "a missing database is a usage error (exit 2)" test $? -eq 2
check "a missing database is not created" test ! -e "$TMP/none"

# ---- empty database: no groups ----
timeout 60 "$GAZE" index "$TMP/empty" --db "$TMP/empty.db" --model "$M" -q >/dev/null 2>&1
timeout 60 "$GAZE" dups --db "$TMP/empty.db" --json >"$TMP/o.txt" 2>"$TMP/e.txt"
check "empty database: exit 0" test $? -eq 0
check "empty database: no JSON groups" test ! -s "$TMP/o.txt"
timeout 60 "$GAZE" dups --db "$TMP/empty.db" >"$TMP/o.txt" 2>&1
check "empty database: says no duplicates" grep -qx "no duplicates among 0 images" "$TMP/o.txt"

cli_finish cli_dups
