#!/usr/bin/env bash
# cli_index.sh - `gaze index` end to end through the real binary: full index of the test
# photos, broken files reported (exit 1), incremental re-runs (no-op, touch, rename, delete
# + --prune), scan rules (hidden/junk folders, --exclude, symlink loops), progress output,
# Ctrl-C consistency, `gaze info --db`, the decode modes.
# Usage: bash tests/cli_index.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
MODEL=$DATA/fixtures/blip_itm
# field FILE NAME: a field of the JSON summary object in FILE
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
expect() { # expect "what" FILE NAME VALUE
    local got
    got=$(field "$2" "$3" 2>/dev/null)
    if [ "$got" = "$4" ]; then ok; else bad "$1: $3 = '$got', want '$4'"; fi
}

DB=$TMP/g.db
P=$TMP/photos
mkdir -p "$P/sub/deeper"
cp "$DATA"/photos/* "$P/"
mv "$P/animal_kitten.webp" "$P/sub/"
mv "$P/people_hopper.gif" "$P/sub/deeper/"
N=$(find "$P" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' -o -iname '*.gif' \) | wc -l)
check "test photos present" test "$N" -ge 30

# 1. full index: everything encoded, nothing failed, exit 0, plain progress lines on a pipe
"$GAZE" index "$P" --db "$DB" --model "$MODEL" --json >"$TMP/r1.json" 2>"$TMP/e1.txt"
rc=$?
check "full index exits 0" test $rc -eq 0
[ $rc -eq 0 ] || cat "$TMP/e1.txt" >&2
expect "full index" "$TMP/r1.json" total "$N"
expect "full index" "$TMP/r1.json" encoded "$N"
expect "full index" "$TMP/r1.json" failed 0
check "progress without a TTY is plain lines" grep -q "^indexing: $N/$N files" "$TMP/e1.txt"
check "no carriage returns without a TTY" bash -c "! grep -q $'\r' '$TMP/e1.txt'"

# stored width/height are the photos' real sizes (not the reduced decode the model uses):
# compare with the sizes in the PNG IHDR / JPEG SOF headers, read here in Python
"$GAZE" search "x" --db "$DB" -k 1000 --json >"$TMP/all.jsonl" 2>/dev/null
check "stored sizes equal the file headers' (PNG/JPEG without EXIF rotation)" python3 - "$TMP/all.jsonl" <<'EOF'
import json, struct, sys
def size(path):
    b = open(path, 'rb').read()
    if b[:8] == b'\x89PNG\r\n\x1a\n':
        return struct.unpack('>II', b[16:24])
    if b[:2] != b'\xff\xd8': return None
    i = 2
    while i < len(b):
        m = b[i + 1]; i += 2
        if m in (0xd8, 0x01) or 0xd0 <= m <= 0xd7: continue
        L = struct.unpack('>H', b[i:i + 2])[0]
        if m == 0xe1 and b[i + 2:i + 6] == b'Exif': return None  # may be rotated: skip
        if m in (0xc0, 0xc1, 0xc2):
            h, w = struct.unpack('>HH', b[i + 3:i + 7]); return (w, h)
        i += L
    return None
rows = [json.loads(l) for l in open(sys.argv[1])]
n = 0; bad = []
for r in rows:
    s = size(r['path'])
    if s is None: continue
    n += 1
    if (r['width'], r['height']) != tuple(s): bad.append((r['path'], r['width'], r['height'], s))
if bad: print(bad, file=sys.stderr)
sys.exit(0 if n >= 10 and not bad and any(r['width'] == 5312 for r in rows) else 1)
EOF

# 2. re-run: nothing re-encoded, the db remembers the model (no --model)
"$GAZE" index "$P" --db "$DB" --json --quiet >"$TMP/r2.json" 2>"$TMP/e2.txt"
check "re-run exits 0" test $? -eq 0
expect "re-run" "$TMP/r2.json" encoded 0
expect "re-run" "$TMP/r2.json" skipped "$N"
check "--quiet prints nothing on stderr" test ! -s "$TMP/e2.txt"

# 3. broken files: truncated JPEG, random bytes named .png, empty file -> reported, exit 1
head -c 2000 "$DATA/photos/animal_dog_corgi.jpg" >"$P/broken_truncated.jpg"
head -c 4096 /dev/urandom >"$P/broken_random.png"
: >"$P/broken_empty.jpg"
"$GAZE" index "$P" --db "$DB" --json --quiet >"$TMP/r3.json" 2>"$TMP/e3.txt"
check "broken files make the exit status 1" test $? -eq 1
expect "broken files" "$TMP/r3.json" failed 3
expect "broken files" "$TMP/r3.json" encoded 0
for f in broken_truncated.jpg broken_random.png broken_empty.jpg; do
    check "error reported for $f" grep -q "$f" "$TMP/e3.txt"
done
"$GAZE" info --db "$DB" --json >"$TMP/info.json" 2>/dev/null
check "info --db lists the failed files" python3 - "$TMP/info.json" "$N" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[2])
ok = d['failed'] == 3 and d['images'] == n + 3 and len(d['failed_files']) == 3
ok &= all(f['error'] for f in d['failed_files'])
ok &= d['models'][0]['embeddings'] == n and d['models'][0]['indexes'][0]['vectors'] == n
sys.exit(0 if ok else 1)
EOF
"$GAZE" info --db "$DB" >"$TMP/info.txt" 2>&1
check "info --db text output" grep -q "failed files" "$TMP/info.txt"

# 4. touch one file -> hashed, not re-encoded: its content is unchanged (#12.4)
sleep 0.01
touch "$P/food_coffee.png"
"$GAZE" index "$P" --db "$DB" --json --quiet >"$TMP/r4.json" 2>/dev/null
expect "touch" "$TMP/r4.json" encoded 0
expect "touch" "$TMP/r4.json" reused 1
expect "touch" "$TMP/r4.json" skipped $((N - 1))

# 5. rename -> vector reused, not re-encoded; old path marked missing
mv "$P/product_kettle.jpg" "$P/sub/kettle_renamed.jpg"
"$GAZE" index "$P" --db "$DB" --json --quiet >"$TMP/r5.json" 2>/dev/null
expect "rename" "$TMP/r5.json" encoded 0
expect "rename" "$TMP/r5.json" reused 1
expect "rename" "$TMP/r5.json" missing 1
"$GAZE" search "a kettle" --db "$DB" -k 100 --paths >"$TMP/paths5.txt" 2>/dev/null
check "renamed file is searchable under its new path" grep -q "kettle_renamed.jpg" "$TMP/paths5.txt"
check "old path of the renamed file is not returned" bash -c "! grep -q 'product_kettle.jpg' '$TMP/paths5.txt'"

# 6. delete + --prune -> removed from the db
rm "$P/scene_storm_canon_exif.jpg"
"$GAZE" index "$P" --db "$DB" --json --quiet --prune >"$TMP/r6.json" 2>/dev/null
expect "prune" "$TMP/r6.json" pruned 2
"$GAZE" info --db "$DB" --json >"$TMP/info6.json" 2>/dev/null
expect "after prune" "$TMP/info6.json" missing 0
expect "after prune" "$TMP/info6.json" images $((N + 3 - 1))

# 7. scan rules: hidden and junk folders skipped, --all enters them, --exclude globs
mkdir -p "$P/.hidden" "$P/node_modules" "$P/@eaDir"
cp "$DATA/photos/animal_dog_corgi.jpg" "$P/.hidden/h.jpg"
cp "$DATA/photos/animal_dog_corgi.jpg" "$P/node_modules/n.jpg"
cp "$DATA/photos/animal_dog_corgi.jpg" "$P/@eaDir/e.jpg"
echo "not an image" >"$P/notes.txt"
"$GAZE" index "$P" --db "$DB" --json --quiet >"$TMP/r7.json" 2>/dev/null
expect "hidden/junk skipped" "$TMP/r7.json" total $((N - 1 + 3))
"$GAZE" index "$P" --db "$TMP/all.db" --model "$MODEL" --all --json --quiet --exclude 'broken_*' --exclude sub >"$TMP/r8.json" 2>/dev/null
check "--all with --exclude exits 0" test $? -eq 0
NSUB=$(find "$P/sub" -type f | wc -l)
expect "--all + --exclude" "$TMP/r8.json" total $((N - 1 - NSUB + 3))
check "--all: every file encoded or reused" test $(( $(field "$TMP/r8.json" encoded) + $(field "$TMP/r8.json" reused) )) -eq $((N - 1))

# 8. symlinks: not followed by default; followed with loop protection
L=$TMP/links
mkdir -p "$L/a"
cp "$DATA/photos/animal_cat_chelsea.png" "$L/a/"
ln -s .. "$L/a/up"
ln -s "$P/sub" "$L/sublink"
"$GAZE" index "$L" --db "$TMP/l.db" --model "$MODEL" --json --quiet >"$TMP/l1.json" 2>/dev/null
expect "symlinks not followed" "$TMP/l1.json" total 1
timeout 60 "$GAZE" index "$L" --db "$TMP/l2.db" --model "$MODEL" --json --quiet --follow-symlinks >"$TMP/l2.json" 2>/dev/null
check "--follow-symlinks terminates on a loop" test $? -eq 0
expect "--follow-symlinks" "$TMP/l2.json" total $((1 + NSUB))

# 9. Ctrl-C: stops after the current batch, the db stays consistent, a re-run finishes
I=$TMP/many
mkdir -p "$I"
for k in 1 2 3 4 5 6; do for f in "$DATA"/photos/*.jpg; do
    # distinct content per copy so nothing is reused: append k bytes after the JPEG EOI
    { cat "$f"; head -c "$k" /dev/zero; } >"$I/c${k}_$(basename "$f")"
done; done
NI=$(ls "$I" | wc -l)
"$GAZE" index "$I" --db "$TMP/i.db" --model "$MODEL" --batch 2 --json --quiet >"$TMP/i1.json" 2>"$TMP/ie.txt" &
pid=$!
# wait until the first batch is committed (a concurrent reader sees it), then Ctrl-C
for _ in $(seq 1 600); do
    n=$("$GAZE" info --db "$TMP/i.db" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["embeddings"])' 2>/dev/null)
    [ "${n:-0}" -gt 0 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
if [ "$(field "$TMP/i1.json" interrupted 2>/dev/null)" = "True" ]; then
    check "interrupted run exits 130 (#12.11: as shells report Ctrl-C)" test $rc -eq 130
    check "interrupted run says so" grep -qi "interrupted" "$TMP/ie.txt"
    done1=$(field "$TMP/i1.json" encoded)
    check "interrupted after whole batches" test $((done1 % 2)) -eq 0 -o "$done1" -eq "$NI"
    "$GAZE" info --db "$TMP/i.db" --json >"$TMP/ii.json" 2>/dev/null
    expect "consistent db after Ctrl-C" "$TMP/ii.json" embeddings "$done1"
    "$GAZE" index "$I" --db "$TMP/i.db" --json --quiet >"$TMP/i2.json" 2>/dev/null
    expect "re-run after Ctrl-C encodes the rest" "$TMP/i2.json" encoded $((NI - done1))
else
    echo "note: indexing finished before Ctrl-C arrived (rc $rc); interrupt checks skipped" >&2
    check "uninterrupted run exits 0" test $rc -eq 0
fi

# 10. EXIF: orientation applied by default (width/height swap for orientation 6), not with
# --no-exif-orient; capture time stored (compared with the ASCII EXIF dates in the file)
X=$TMP/exif
mkdir -p "$X"
cp "$DATA/photos/exif_orient_6.jpg" "$DATA/photos/exif_orient_1.jpg" "$DATA/photos/scene_storm_canon_exif.jpg" "$X/"
"$GAZE" index "$X" --db "$TMP/x1.db" --model "$MODEL" --quiet >/dev/null 2>&1
"$GAZE" search x --db "$TMP/x1.db" -k 10 --json >"$TMP/x1.jsonl" 2>/dev/null
"$GAZE" index "$X" --db "$TMP/x2.db" --model "$MODEL" --quiet --no-exif-orient >/dev/null 2>&1
"$GAZE" search x --db "$TMP/x2.db" -k 10 --json >"$TMP/x2.jsonl" 2>/dev/null
check "EXIF orientation 6 swaps width/height unless --no-exif-orient; capture time stored" python3 - "$TMP/x1.jsonl" "$TMP/x2.jsonl" <<'EOF'
import json, re, sys
a = {r['path'].rsplit('/', 1)[1]: r for r in map(json.loads, open(sys.argv[1]))}
b = {r['path'].rsplit('/', 1)[1]: r for r in map(json.loads, open(sys.argv[2]))}
o6, o1 = 'exif_orient_6.jpg', 'exif_orient_1.jpg'
ok = (a[o6]['width'], a[o6]['height']) == (b[o6]['height'], b[o6]['width']) and a[o6]['width'] != a[o6]['height']
ok &= (a[o1]['width'], a[o1]['height']) == (b[o1]['width'], b[o1]['height'])
st = a['scene_storm_canon_exif.jpg']
raw = open(st['path'], 'rb').read()
dates = {d.decode().replace(':', '-', 2) for d in re.findall(rb'\d{4}:\d\d:\d\d \d\d:\d\d:\d\d', raw)}
ok &= st['taken_at'] is not None and st['taken_at'] in dates
if not ok: print(a, b, dates, file=sys.stderr)
sys.exit(0 if ok else 1)
EOF

# 11. on a terminal: a live progress bar (carriage returns) on stderr
if command -v script >/dev/null 2>&1; then
    script -qec "'$GAZE' index '$X' --db '$TMP/tty.db' --model '$MODEL'" /dev/null >"$TMP/tty.txt" 2>&1
    check "progress bar on a TTY" grep -q $'\r.*indexing \[' "$TMP/tty.txt"
fi

# 12. file names that are not UTF-8 round-trip as bytes (--paths) and stay valid JSON
U=$TMP/utf
mkdir -p "$U"
cp "$DATA/photos/animal_dog_corgi.jpg" "$U/$(printf 'caf\xe9 \xff.jpg')"
"$GAZE" index "$U" --db "$TMP/u.db" --model "$MODEL" --quiet >/dev/null 2>&1
check "non-UTF-8 name indexed" test $? -eq 0
"$GAZE" search x --db "$TMP/u.db" --paths >"$TMP/u.txt" 2>/dev/null
check "--paths gives the raw bytes of a non-UTF-8 name" bash -c "xargs -d '\n' ls <'$TMP/u.txt' >/dev/null 2>&1"
"$GAZE" search x --db "$TMP/u.db" --json >"$TMP/u.jsonl" 2>/dev/null
check "--json stays valid UTF-8 JSON for a non-UTF-8 name" python3 -c '
import json,sys; r=[json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]; sys.exit(0 if len(r)==1 and "\ufffd" in r[0]["path"] else 1)' "$TMP/u.jsonl"

# 13. --max-megapixels: a photo above the limit fails with a message, the rest is indexed
B=$TMP/big
mkdir -p "$B"
cp "$DATA/photos/large_dandelions_5312px_progressive.jpg" "$DATA/photos/animal_dog_corgi.jpg" "$B/"
"$GAZE" index "$B" --db "$TMP/b.db" --model "$MODEL" --max-megapixels 2 --json --quiet >"$TMP/b.json" 2>"$TMP/b.txt"
check "--max-megapixels: over-limit photo makes exit 1" test $? -eq 1
expect "--max-megapixels" "$TMP/b.json" failed 1
expect "--max-megapixels" "$TMP/b.json" encoded 1
check "--max-megapixels: the big photo is named" grep -q "large_dandelions" "$TMP/b.txt"

# 14. usage errors
"$GAZE" index >/dev/null 2>&1
check "index without PATH exits 2" test $? -eq 2
"$GAZE" index "$TMP/does-not-exist" --db "$TMP/x.db" --model "$MODEL" >/dev/null 2>"$TMP/ex.txt"
check "index of a missing folder exits 3" test $? -eq 3
check "missing folder is named" grep -q "does-not-exist" "$TMP/ex.txt"
XDG_DATA_HOME=$TMP/xdg "$GAZE" index "$L/a" --model "$MODEL" --quiet >/dev/null 2>&1
check "default db goes to \$XDG_DATA_HOME/gaze/gaze.db" test -f "$TMP/xdg/gaze/gaze.db"

# 15. the decode modes (--decode overlap, the default; parallel; inline = --no-decode-thread):
# the same vectors and the same broken files named, whichever threads decoded
D=$TMP/dec
mkdir -p "$D"
cp "$DATA"/photos/*.jpg "$DATA"/photos/*.png "$D/"
head -c 3000 "$DATA/photos/animal_dog_corgi.jpg" >"$D/broken_cut.jpg"
head -c 4096 /dev/urandom >"$D/broken_noise.png"
ND=$(ls "$D" | wc -l)
for mode in overlap parallel inline; do
    "$GAZE" index "$D" --db "$TMP/dec_$mode.db" --model "$MODEL" --batch 3 --decode $mode --json \
        --quiet >"$TMP/dec_$mode.json" 2>"$TMP/dec_$mode.txt"
    check "--decode $mode: broken files make exit 1" test $? -eq 1
    expect "--decode $mode" "$TMP/dec_$mode.json" encoded $((ND - 2))
    expect "--decode $mode" "$TMP/dec_$mode.json" failed 2
    for f in broken_cut.jpg broken_noise.png; do
        check "--decode $mode: $f named" grep -q "$f" "$TMP/dec_$mode.txt"
    done
    "$GAZE" search "a dog on the grass" --db "$TMP/dec_$mode.db" -k 100 --json \
        >"$TMP/dec_$mode.jsonl" 2>/dev/null
done
check "--decode parallel ranks and scores as overlap" cmp -s "$TMP/dec_overlap.jsonl" "$TMP/dec_parallel.jsonl"
check "--decode inline ranks and scores as overlap" cmp -s "$TMP/dec_overlap.jsonl" "$TMP/dec_inline.jsonl"
check "the search found the indexed photos" test "$(wc -l <"$TMP/dec_overlap.jsonl")" -eq $((ND - 2))
"$GAZE" index "$D" --db "$TMP/dec_bad.db" --model "$MODEL" --decode sideways >/dev/null 2>"$TMP/dec_bad.txt"
check "--decode with an unknown mode exits 2" test $? -eq 2
check "the unknown mode is named" grep -q "sideways" "$TMP/dec_bad.txt"
check "--decode sideways created no db" test ! -e "$TMP/dec_bad.db"
"$GAZE" index "$D" --db "$TMP/dec_bad.db" --model "$MODEL" --decode parallel --no-decode-thread >/dev/null 2>&1
check "--decode parallel with --no-decode-thread exits 2" test $? -eq 2

cli_finish cli_index
