#!/usr/bin/env bash
# cli_maintain.sh - keeping a photo library and a shop catalogue right over time, through the
# binary (#12): index types validated before anything is stored (and a database holding a bad
# one recovers), catalogues with a name of their own, add-texts --sync and its row rules,
# gaze rm (path, vanished folder, glob, catalogue, item, id) with SQLite and FAISS agreeing
# afterwards, a touched file not re-encoded, duplicates encoded once.
# Usage: bash tests/cli_maintain.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
M=$(cd "$DATA/fixtures/blip_itm" && pwd) # absolute: some commands run in other folders
GAZE_ABS=$(cd "$(dirname "$GAZE")" && pwd)/$(basename "$GAZE") # for commands run elsewhere
jget() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }
expect() { # expect WHAT FILE FIELD WANT
    local got
    got=$(jget "$2" "$3" 2>/dev/null)
    if [ "$got" = "$4" ]; then ok; else bad "$1: $3 = '$got', want '$4'"; fi
}
# number of results of a search (JSON lines), and the items table / FAISS agreement
nhits() { "$GAZE" search "$@" -k 1000 --json 2>/dev/null | grep -c '^{'; }
consistent() { # live vectors of every index == OK items with a vector, per kind
    "$GAZE" info --db "$1" --json 2>/dev/null >"$TMP/info.json"
    python3 - "$1" "$TMP/info.json" <<'EOF'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
want = {k: n for k, n in db.execute(
    "SELECT i.kind, count(*) FROM embeddings e JOIN items i ON i.id = e.item_id"
    " WHERE i.status = 0 GROUP BY i.kind")}
info = json.load(open(sys.argv[2]))
got = {}
for m in info.get('models', []):
    for ix in m.get('indexes', []):
        got[1 if ix['kind'] == 'image' else 2] = ix['vectors']
ok = all(got.get(k, 0) == n for k, n in want.items()) and all(want.get(k, 0) == n for k, n in got.items())
if not ok: print('indexes', got, 'database', want, file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

mkdir -p "$TMP/lib/a" "$TMP/lib/b/deep" "$TMP/shop/img"
cp "$DATA/photos/animal_cat_chelsea.png" "$DATA/photos/animal_dog_corgi.jpg" "$TMP/lib/a/"
cp "$DATA/photos/food_coffee.png" "$DATA/photos/product_kettle.jpg" "$TMP/lib/b/"
cp "$DATA/photos/scene_rocket_launchpad.jpg" "$TMP/lib/b/deep/"
cp "$DATA/photos/product_kettle.jpg" "$DATA/photos/product_colorful_cups_progressive.jpg" "$TMP/shop/img/"

# ---- #12.1: index types are checked before anything is stored ----
"$GAZE" index "$TMP/lib" --db "$TMP/bogus/x.db" --model "$M" --index-type Bogus -q >/dev/null 2>"$TMP/e.txt"
check "--index-type Bogus is a usage error (exit 2)" test $? -eq 2
check "the message lists the valid forms" grep -q "valid forms: Flat, HNSW<M>" "$TMP/e.txt"
check "nothing created for a bad --index-type" test ! -e "$TMP/bogus"
"$GAZE" index "$TMP/lib" --db "$TMP/h.db" --model "$M" --index-type HNSW100000000 -q >/dev/null 2>"$TMP/e.txt"
check "--index-type HNSW100000000 is refused (exit 2)" test $? -eq 2
check "HNSW bound named" grep -q "M from 2 to 256" "$TMP/e.txt"
check "no database for a refused HNSW100000000" test ! -e "$TMP/h.db"
DB=$TMP/lib.db
"$GAZE" index "$TMP/lib" --db "$DB" --model "$M" --index-type PQ8 >/dev/null 2>"$TMP/e.txt"
check "PQ8 on 5 vectors indexes (built as Flat until it can train)" test $? -eq 0
check "PQ8 fallback is a notice" grep -q "needs 9984 vectors to train" "$TMP/e.txt"
check "PQ8 index searchable" test "$(nhits "a cat" --db "$DB")" -eq 5
# a database written by an older gaze with an invalid factory string recovers by itself
python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("UPDATE index_state SET factory=?", ("Bogus",)); c.commit()' "$DB"
"$GAZE" search "a cat" --db "$DB" -k 1000 --json >"$TMP/s.json" 2>"$TMP/e.txt"
check "search on a db holding 'Bogus' works (exit 0)" test $? -eq 0
check "it falls back to Flat with a notice" grep -q "index type 'Bogus' stored in .* is not valid.*using Flat" "$TMP/e.txt"
check "all 5 images found with the recovered index" test "$(grep -c '^{' "$TMP/s.json")" -eq 5
"$GAZE" index "$TMP/lib" --db "$DB" -q >/dev/null 2>&1
check "index on that db exits 0" test $? -eq 0
check "the stored string is repaired to Flat" test "$(python3 -c 'import sqlite3,sys; print(",".join(sorted({r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT factory FROM index_state")})))' "$DB")" = Flat

# ---- #12.2: gaze rm ----
"$GAZE" rm --db "$DB" "$TMP/lib/a/animal_cat_chelsea.png" --json >"$TMP/r.json" 2>"$TMP/e.txt"
check "rm a file exits 0" test $? -eq 0
expect "rm a file" "$TMP/r.json" images 1
check "removed file no longer found" test "$(nhits "a cat" --db "$DB")" -eq 4
check "FAISS and SQLite agree after rm of a file" consistent "$DB"
mv "$TMP/lib/b/deep" "$TMP/gone_deep" # the folder vanishes (moved away)
"$GAZE" rm --db "$DB" "$TMP/lib/b/deep" --json >"$TMP/r.json" 2>"$TMP/e.txt"
check "rm a vanished folder exits 0" test $? -eq 0
expect "rm a vanished folder" "$TMP/r.json" images 1
(cd "$TMP/lib" && "$GAZE_ABS" rm --db "$DB" "b/*.png" --json) >"$TMP/r.json" 2>"$TMP/e.txt"
check "rm a relative glob exits 0" test $? -eq 0
expect "rm a relative glob" "$TMP/r.json" images 1
"$GAZE" rm --db "$DB" '*.jpg' --dry-run --json >"$TMP/r.json" 2>/dev/null
expect "rm --dry-run counts" "$TMP/r.json" images 2
check "dry run removed nothing" test "$(nhits "a cat" --db "$DB")" -eq 2
"$GAZE" rm --db "$DB" "$TMP/no/such/folder" >/dev/null 2>"$TMP/e.txt"
check "rm of a path with nothing indexed exits 1" test $? -eq 1
check "and says so, naming it" grep -q "no/such/folder: no item indexed under that path" "$TMP/e.txt"
"$GAZE" rm --db "$TMP/none.db" x >/dev/null 2>&1
check "rm on a missing database fails" test $? -ne 0
check "and creates none" test ! -e "$TMP/none.db"
"$GAZE" rm --db "$DB" >/dev/null 2>&1
check "rm with nothing to remove is a usage error" test $? -eq 2
check "FAISS and SQLite agree after the removals" consistent "$DB"

# ---- #12.2/#12.3: catalogues, --catalog, --sync, row rules ----
cat >"$TMP/shop/products.jsonl" <<'EOF'
{"sku": "k1", "title": "Steel kettle", "photo": "img/product_kettle.jpg"}
{"sku": "c1", "title": "Colourful cups", "photo": "img/product_colorful_cups_progressive.jpg"}
{"sku": "g1", "title": "Gift card", "photo": "img/gift.jpg"}
{"sku": "k1", "title": "Kettle again (duplicate id)"}
{"name": "no sku here", "title": "Teapot"}
{"sku": "t2", "title": "Tea towel"}
EOF
SDB=$TMP/shop.db
"$GAZE" index "$TMP/shop/img" --db "$SDB" --model "$M" -q >/dev/null 2>&1
"$GAZE" add-texts "$TMP/shop/products.jsonl" --db "$SDB" --catalog shop --id-field sku \
    --text-field title --image-field photo --json >"$TMP/a.json" 2>"$TMP/e.txt"
check "import with bad rows exits 1" test $? -eq 1
expect "import" "$TMP/a.json" catalog shop
expect "import" "$TMP/a.json" rows 6
expect "import" "$TMP/a.json" added 4
expect "import" "$TMP/a.json" failed 2
expect "import" "$TMP/a.json" linked 2
expect "import" "$TMP/a.json" image_failed 1
check "duplicate id reported at its line, first kept" grep -q "products.jsonl:4: duplicate id 'k1' (first at line 1" "$TMP/e.txt"
check "missing id field names the row's fields" grep -q "products.jsonl:5: no 'sku' field: .*fields: name, title" "$TMP/e.txt"
check "missing image is a warning, text imported" grep -q "warning: .*products.jsonl:3: image .*gift.jpg" "$TMP/e.txt"
check "the first k1 is what is stored" bash -c "'$GAZE' search --texts 'kettle' --db '$SDB' -k 10 --json 2>/dev/null | grep -q 'Steel kettle'"
check "the duplicate is not stored" bash -c "! '$GAZE' search --texts 'kettle' --db '$SDB' -k 10 --json 2>/dev/null | grep -q 'Kettle again'"
# the same catalogue exported under another file name, one product gone, one changed
grep -v '"c1"' "$TMP/shop/products.jsonl" | sed 's/Tea towel/Linen tea towel/' >"$TMP/shop/export-2.jsonl"
"$GAZE" add-texts "$TMP/shop/export-2.jsonl" --db "$SDB" --catalog shop --sync --id-field sku \
    --text-field title --image-field photo --json >"$TMP/a2.json" 2>/dev/null
expect "re-export" "$TMP/a2.json" added 0
expect "re-export" "$TMP/a2.json" updated 1
expect "re-export" "$TMP/a2.json" unchanged 2
expect "re-export --sync" "$TMP/a2.json" removed 1
check "no duplicate products across file names" test "$(nhits --texts "cups" --db "$SDB")" -eq 3
check "the removed product is not searchable" bash -c "! '$GAZE' search --texts 'cups' --db '$SDB' -k 100 --json 2>/dev/null | grep -q 'Colourful cups'"
check "FAISS and SQLite agree after --sync" consistent "$SDB"
# --sync with an unreadable row removes nothing
printf '{"sku": "k1", "title": "Steel kettle", "photo": "img/product_kettle.jpg"}\nnot json\n' >"$TMP/shop/broken.jsonl"
"$GAZE" add-texts "$TMP/shop/broken.jsonl" --db "$SDB" --catalog shop --sync --id-field sku \
    --text-field title --image-field photo --json >"$TMP/a3.json" 2>"$TMP/e.txt"
expect "--sync with an unreadable row" "$TMP/a3.json" removed 0
check "and says why" grep -q "sync removed nothing" "$TMP/e.txt"
check "nothing lost" test "$(nhits --texts "cups" --db "$SDB")" -eq 3
# without --catalog the summary names the catalogue used
"$GAZE" add-texts "$TMP/shop/export-2.jsonl" --db "$SDB" --id-field sku --text-field title >"$TMP/a4.txt" 2>/dev/null
check "summary says which catalogue name was used" grep -q "catalogue '.*export-2.jsonl' (the file's path: give --catalog NAME" "$TMP/a4.txt"
# rm a catalogue item, then the catalogue
"$GAZE" rm --db "$SDB" --catalog shop --id t2 --json >"$TMP/r.json" 2>/dev/null
expect "rm --catalog --id" "$TMP/r.json" texts 1
"$GAZE" rm --db "$SDB" --catalog shop --id nope >/dev/null 2>"$TMP/e.txt"
check "rm of an unknown catalogue id exits 1" test $? -eq 1
check "and names it" grep -q "catalogue 'shop' has no item 'nope'" "$TMP/e.txt"
"$GAZE" rm --db "$SDB" --catalog shop --json >"$TMP/r.json" 2>/dev/null
expect "rm --catalog" "$TMP/r.json" texts 2
check "only the other catalogue is left" test "$(nhits --texts "kettle" --db "$SDB")" -eq 3
check "FAISS and SQLite agree after rm --catalog" consistent "$SDB"
id=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT min(id) FROM items WHERE kind=2").fetchone()[0])' "$SDB")
"$GAZE" rm --db "$SDB" --item "$id" --json >"$TMP/r.json" 2>/dev/null
expect "rm --item" "$TMP/r.json" texts 1
check "FAISS and SQLite agree after rm --item" consistent "$SDB"

# ---- #12.4: a touched file is not re-encoded; duplicates in one run are encoded once ----
mkdir -p "$TMP/dup"
cp "$DATA/photos/animal_dog_corgi.jpg" "$TMP/dup/a.jpg"
for i in 1 2 3 4 5; do cp "$TMP/dup/a.jpg" "$TMP/dup/d$i.jpg"; done
cp "$DATA/photos/food_coffee.png" "$TMP/dup/c.png"
DDB=$TMP/dup.db
"$GAZE" index "$TMP/dup" --db "$DDB" --model "$M" --batch 2 --json -q >"$TMP/d.json" 2>/dev/null
expect "6 copies of one photo + 1 other, batches of 2" "$TMP/d.json" encoded 2
expect "6 copies of one photo + 1 other, batches of 2" "$TMP/d.json" reused 5
touch -d '2001-01-01' "$TMP/dup/c.png"
"$GAZE" index "$TMP/dup" --db "$DDB" --json -q >"$TMP/d.json" 2>/dev/null
expect "a touched unique file" "$TMP/d.json" encoded 0
expect "a touched unique file" "$TMP/d.json" reused 1
cp "$TMP/dup/c.png" "$TMP/c.bak" && cp "$TMP/c.bak" "$TMP/dup/c.png" # a restore: new mtime
"$GAZE" index "$TMP/dup" --db "$DDB" --json -q >"$TMP/d.json" 2>/dev/null
expect "a restored file" "$TMP/d.json" encoded 0
check "FAISS and SQLite agree after touch reuse" consistent "$DDB"

# ---- #12.7: known failures are counted, not re-listed, and do not fail cron jobs ----
F=$TMP/fail
mkdir -p "$F"
cp "$DATA/photos/animal_dog_corgi.jpg" "$DATA/photos/large_dandelions_5312px_progressive.jpg" "$F/"
head -c 3000 "$DATA/photos/animal_dog_corgi.jpg" >"$F/broken.jpg"
FDB=$TMP/fail.db
"$GAZE" index "$F" --db "$FDB" --model "$M" --max-megapixels 2 --json -q >"$TMP/f.json" 2>"$TMP/e.txt"
check "new failures exit 1" test $? -eq 1
expect "first run" "$TMP/f.json" failed 2
"$GAZE" index "$F" --db "$FDB" --max-megapixels 2 --json -q >"$TMP/f.json" 2>"$TMP/e.txt"
check "nothing new failed: exit 0" test $? -eq 0
expect "second run" "$TMP/f.json" failed 0
expect "second run" "$TMP/f.json" known_failed 2
check "known failures not listed again" test ! -s "$TMP/e.txt"
"$GAZE" index "$F" --db "$FDB" --max-megapixels 2 -q --strict >"$TMP/f.txt" 2>/dev/null
check "--strict: known failures exit 1" test $? -eq 1
check "known failures reported as a count" grep -q "2 files failed in an earlier run" "$TMP/f.txt"
"$GAZE" index "$F" --db "$FDB" --json -q >"$TMP/f.json" 2>/dev/null
expect "limit raised: the big photo is retried and indexed" "$TMP/f.json" encoded 1
expect "limit raised: the broken file is retried too, and fails again" "$TMP/f.json" failed 1

# ---- #12.8: files left out are counted by reason ----
S=$TMP/skip
mkdir -p "$S/.hidden" "$S/node_modules" "$S/tmp"
cp "$DATA/photos/animal_dog_corgi.jpg" "$S/"
cp "$DATA/photos/animal_dog_corgi.jpg" "$S/tmp/x.jpg"
printf 'II*\0' >"$S/scan.xyz"
echo notes >"$S/notes.txt"
mkfifo "$S/pipe.jpg"
ln -s "$S/animal_dog_corgi.jpg" "$S/link.jpg"
(cd "$TMP" && "$GAZE_ABS" index skip --db "$TMP/skip.db" --model "$M" --exclude skip/tmp --json -q) >"$TMP/k.json" 2>/dev/null
check "skip counts by reason (#12.8) and a relative --exclude (#12.12)" python3 - "$TMP/k.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
n = d['not_indexed']
ok = d['total'] == 1 and n == {'unsupported': 2, 'hidden': 2, 'excluded': 1, 'links': 1, 'special': 1}
if not ok: print(d, file=sys.stderr)
sys.exit(0 if ok else 1)
EOF

# ---- #12.11/#12.12: a failed first command leaves nothing; --db in a missing folder ----
"$GAZE" index "$TMP/no-such-folder" --db "$TMP/new/deeper/x.db" --model "$M" -q >/dev/null 2>&1
check "index of a missing folder fails" test $? -ne 0
check "and leaves no database or folder behind" test ! -e "$TMP/new"
"$GAZE" index "$S" --db "$TMP/new/deeper/x.db" --model "$TMP/no-model" -q >/dev/null 2>&1
check "a model that does not load leaves nothing behind" test ! -e "$TMP/new"
XDG_DATA_HOME=$TMP/xdg "$GAZE" index "$TMP/no-such-folder" --model "$M" -q >/dev/null 2>&1
check "nor an empty default data folder" test ! -e "$TMP/xdg/gaze"
"$GAZE" index "$S" --db "$TMP/new/deeper/x.db" --model "$M" -q >/dev/null 2>&1
check "--db in a missing folder is created" test -s "$TMP/new/deeper/x.db"

# ---- #12.5: a second model does not silently search part of the library ----
C=$TMP/cov
mkdir -p "$C/a" "$C/b"
cp "$DATA/photos/animal_dog_corgi.jpg" "$DATA/photos/food_coffee.png" "$C/a/"
cp "$DATA/photos/product_kettle.jpg" "$C/b/"
CDB=$TMP/cov.db
"$GAZE" index "$C/a" --db "$CDB" --model "$M" -q >/dev/null 2>&1
"$GAZE" index "$C/b" --db "$CDB" --model "$DATA/fixtures/clip" -q >/dev/null 2>&1
"$GAZE" search "a kettle" --db "$CDB" -k 5 >/dev/null 2>"$TMP/e.txt"
check "search with the partial model exits 0" test $? -eq 0
check "search says the model covers 1 of 3 images" grep -q "has vectors for 1 of the 3 images in the database" "$TMP/e.txt"
"$GAZE" search "a kettle" --db "$CDB" --model "$M" -k 5 >/dev/null 2>"$TMP/e.txt"
check "and for the other model 2 of 3" grep -q "has vectors for 2 of the 3 images" "$TMP/e.txt"
"$GAZE" info --db "$CDB" --json >"$TMP/ci.json" 2>/dev/null
check "info shows coverage per model" python3 - "$TMP/ci.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
cov = sorted((ix['covered'], ix['items']) for m in d['models'] for ix in m['indexes'] if ix['kind'] == 'image')
sys.exit(0 if cov == [(1, 3), (2, 3)] else 1)
EOF
"$GAZE" index "$C/a" --db "$TMP/ivf.db" --model "$M" --index-type IVF4,Flat -q >/dev/null 2>&1
"$GAZE" info --db "$TMP/ivf.db" >"$TMP/i.txt" 2>/dev/null
check "info says an IVF index is built as Flat for now" grep -q "IVF4,Flat (built as Flat)" "$TMP/i.txt"
check "info text has balanced parentheses (#12.12)" python3 -c 'import sys; t=open(sys.argv[1]).read(); sys.exit(0 if all(l.count("(")==l.count(")") for l in t.splitlines()) else 1)' "$TMP/i.txt"

cli_finish cli_maintain
