#!/usr/bin/env bash
# cli_texts.sh - `gaze add-texts` and text/product search end to end through the binary:
# JSONL, CSV and TSV imports with malformed rows reported by line number, re-import is a
# no-op, --texts search (text and image queries), image-linked products and the documented
# --products formula, checked against cosines computed here from `gaze embed`.
# Usage: bash tests/cli_texts.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
M=$DATA/fixtures/blip_itm
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }
expect() {
    local got
    got=$(field "$2" "$3" 2>/dev/null)
    if [ "$got" = "$4" ]; then ok; else bad "$1: $3 = '$got', want '$4'"; fi
}

DB=$TMP/t.db
mkdir -p "$TMP/cat/img"
cp "$DATA/photos/animal_cat_chelsea.png" "$DATA/photos/product_kettle.jpg" \
    "$DATA/photos/product_colorful_cups_progressive.jpg" "$DATA/photos/animal_dog_corgi.jpg" "$TMP/cat/img/"
"$GAZE" index "$TMP/cat/img" --db "$DB" --model "$M" --quiet >/dev/null 2>&1
check "index the catalogue photos" test $? -eq 0

# ---- JSONL: 4 good rows, 3 bad (invalid JSON, not an object, no text), 1 missing image ----
# (#12.3: a row whose image is missing is imported without it, with a warning)
cat >"$TMP/cat/captions.jsonl" <<'EOF'
{"id": "c1", "text": "a cat sitting on a table", "image": "img/animal_cat_chelsea.png"}
{"id": "c2", "text": "a dog in the snow"}
this is not json
["an", "array"]

{"id": "c3", "title": "no text field"}
{"id": 4, "text": "Café crème, naïve 日本語 😀", "image": "img/product_kettle.jpg"}
{"id": "c5", "text": "ghost", "image": "img/does_not_exist.jpg"}
{"id": "c6", "text": "a small corgi", "image": "img/animal_dog_corgi.jpg"}
EOF
"$GAZE" add-texts "$TMP/cat/captions.jsonl" --db "$DB" --image-field image --json >"$TMP/j.json" 2>"$TMP/je.txt"
check "jsonl with bad rows exits 1" test $? -eq 1
expect "jsonl" "$TMP/j.json" rows 8
expect "jsonl" "$TMP/j.json" added 5
expect "jsonl" "$TMP/j.json" failed 3
expect "jsonl" "$TMP/j.json" linked 3
expect "jsonl" "$TMP/j.json" image_failed 1
check "jsonl missing image is a warning naming the image" grep -q "warning: .*captions.jsonl:8: image .*does_not_exist.jpg.*imported without it" "$TMP/je.txt"
for l in 3 4 6 8; do
    check "jsonl bad line $l reported" grep -q "captions.jsonl:$l:" "$TMP/je.txt"
done
check "jsonl good lines not reported" bash -c "! grep -qE 'captions.jsonl:(1|2|7|9):' '$TMP/je.txt'"

# ---- CSV (RFC 4180): quoted comma, escaped quotes, newline in a field; bad rows ----
printf 'sku,title,description,photo\n' >"$TMP/cat/products.csv"
printf 'p1,"Kettle, steel","A shiny ""chrome"" kettle",img/product_kettle.jpg\n' >>"$TMP/cat/products.csv"
printf 'p2,Cups,"Colourful cups\nstacked on a table",img/product_colorful_cups_progressive.jpg\n' >>"$TMP/cat/products.csv"
printf 'p3,too,many,fields,here\n' >>"$TMP/cat/products.csv"
printf 'p4,Cat poster,A poster of a cat,img/animal_cat_chelsea.png\n' >>"$TMP/cat/products.csv"
printf 'p5,"unterminated,x,y\n' >>"$TMP/cat/products.csv"
"$GAZE" add-texts "$TMP/cat/products.csv" --db "$DB" --id-field sku --text-field title,description \
    --image-field photo --json >"$TMP/c.json" 2>"$TMP/ce.txt"
check "csv with bad rows exits 1" test $? -eq 1
expect "csv" "$TMP/c.json" added 3
expect "csv" "$TMP/c.json" failed 2
expect "csv" "$TMP/c.json" linked 3
check "csv bad row (field count) reported at line 5" grep -q "products.csv:5:" "$TMP/ce.txt"
check "csv unterminated quote reported at line 7" grep -q "products.csv:7:" "$TMP/ce.txt"

# ---- TSV: a short row and an invalid UTF-8 row ----
printf 'id\ttext\nt1\ta sandy beach at sunset\nt2\n\nt3\ta storm over the sea\nt4\tbad \xff\xfe bytes\n' >"$TMP/cat/more.tsv"
"$GAZE" add-texts "$TMP/cat/more.tsv" --db "$DB" --json >"$TMP/t.json" 2>"$TMP/te.txt"
check "tsv with bad rows exits 1" test $? -eq 1
expect "tsv" "$TMP/t.json" added 2
expect "tsv" "$TMP/t.json" failed 2
check "tsv short row reported at line 3" grep -q "more.tsv:3:" "$TMP/te.txt"
check "tsv invalid UTF-8 reported at line 6" grep -q "more.tsv:6:.*UTF-8" "$TMP/te.txt"

# ---- re-import: nothing re-encoded ----
"$GAZE" add-texts "$TMP/cat/captions.jsonl" --db "$DB" --image-field image --json >"$TMP/j2.json" 2>/dev/null
expect "re-import" "$TMP/j2.json" added 0
expect "re-import" "$TMP/j2.json" unchanged 5
# a changed text is re-encoded and counted as updated, the rest unchanged
sed -i 's/a dog in the snow/a dog in deep snow/' "$TMP/cat/captions.jsonl"
"$GAZE" add-texts "$TMP/cat/captions.jsonl" --db "$DB" --image-field image --json >"$TMP/j3.json" 2>/dev/null
expect "changed text" "$TMP/j3.json" added 0
expect "changed text" "$TMP/j3.json" updated 1
expect "changed text" "$TMP/j3.json" unchanged 4

# ---- --texts search: texts come back, in brute-force cosine order ----
"$GAZE" search --texts "a cat" --db "$DB" -k 100 --json >"$TMP/st.jsonl" 2>"$TMP/e.txt"
check "--texts search exits 0" test $? -eq 0
"$GAZE" embed --model "$M" --text "a cat" >"$TMP/q.jsonl" 2>/dev/null
python3 - "$TMP/st.jsonl" >"$TMP/texts.bin" <<'EOF'
import json, sys
for l in open(sys.argv[1]): sys.stdout.write(json.loads(l)['text'] + '\0')
EOF
mapfile -d '' texts <"$TMP/texts.bin"
args=()
for t in "${texts[@]}"; do args+=(--text "$t"); done
"$GAZE" embed --model "$M" "${args[@]}" >"$TMP/te.jsonl" 2>/dev/null
check "--texts returns all 10 texts, in brute-force cosine order" python3 - "$TMP/st.jsonl" "$TMP/q.jsonl" "$TMP/te.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
q = json.loads(open(sys.argv[2]).readline())['embedding']
emb = [json.loads(l) for l in open(sys.argv[3])]
cos = [sum(a * b for a, b in zip(q, e['embedding'])) for e in emb]
ok = len(rows) == 10 and all(r['kind'] == 'text' and r['text'] for r in rows)
ok &= all(abs(c - r['score']) < 1e-4 for c, r in zip(cos, rows))
ok &= all(cos[i] >= cos[i + 1] - 1e-6 for i in range(len(cos) - 1))
ok &= any(r['text'] == 'Café crème, naïve 日本語 😀' for r in rows)
sys.exit(0 if ok else 1)
EOF
# image -> text
"$GAZE" search --texts --image "$TMP/cat/img/animal_cat_chelsea.png" --db "$DB" -k 3 --json >"$TMP/it.jsonl" 2>/dev/null
check "image -> text search returns texts" python3 -c '
import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; sys.exit(0 if len(r)==3 and all(x["kind"]=="text" for x in r) else 1)' "$TMP/it.jsonl"
"$GAZE" search --texts --image "$TMP/cat/img/animal_cat_chelsea.png" --db "$DB" -k 3 --rerank 6 --json >"$TMP/itr.jsonl" 2>/dev/null
check "image -> text --rerank gives ITM scores" python3 -c '
import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; sys.exit(0 if len(r)==3 and all("itm_prob" in x for x in r) else 1)' "$TMP/itr.jsonl"
"$GAZE" search --texts "cups" --db "$DB" -k 10 >"$TMP/tt.txt" 2>/dev/null
check "text table keeps one line per row (newline in a CSV field)" test "$(wc -l <"$TMP/tt.txt")" -eq 11

# ---- products: score = w * z(cos(q, text)) + (1 - w) * z(cos(q, linked image)) ----
"$GAZE" search --products "a chrome kettle" --text-weight 0.3 --db "$DB" -k 100 --json >"$TMP/pr.jsonl" 2>"$TMP/e.txt"
check "--products exits 0" test $? -eq 0
"$GAZE" embed --model "$M" --text "a chrome kettle" >"$TMP/pq.jsonl" 2>/dev/null
args=()
for f in "$TMP"/cat/img/*; do args+=(--image "$f"); done
"$GAZE" embed --model "$M" "${args[@]}" >"$TMP/pi.jsonl" 2>/dev/null
check "--products follows the documented formula and order" python3 - "$TMP/pr.jsonl" "$TMP/pq.jsonl" "$TMP/pi.jsonl" <<'EOF'
import json, math, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
q = json.loads(open(sys.argv[2]).readline())['embedding']
img = {os.path.realpath(j['path']): sum(a * b for a, b in zip(q, j['embedding'])) for j in map(json.loads, open(sys.argv[3]))}
w = 0.3
ok = len(rows) == 10
def calib(xs):  # mean and population std over the candidates (README: products)
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
mt, st = calib([r['text_score'] for r in rows])
mi, si = calib([r['image_score'] for r in rows if r['image_score'] is not None])
linked = 0
for r in rows:
    zt = (r['text_score'] - mt) / st
    if r['image']:
        linked += 1
        want_i = img[os.path.realpath(r['image'])]
        ok &= abs(r['image_score'] - want_i) < 1e-4
        ok &= abs(r['score'] - (w * zt + (1 - w) * (r['image_score'] - mi) / si)) < 1e-4
    else:
        ok &= r['image_score'] is None and abs(r['score'] - w * zt) < 1e-4
ok &= linked == 6
ok &= all(rows[i]['score'] >= rows[i + 1]['score'] for i in range(len(rows) - 1))
sys.exit(0 if ok else 1)
EOF
"$GAZE" search --products "kettle" --db "$DB" -k 100 --paths >"$TMP/pp.txt" 2>/dev/null
check "--products --paths prints the 6 linked image paths" python3 -c '
import os,sys; l=open(sys.argv[1]).read().splitlines(); sys.exit(0 if len(l)==6 and all(os.path.isfile(p) for p in l) else 1)' "$TMP/pp.txt"

"$GAZE" add-texts "$TMP/nope.jsonl" --db "$DB" >/dev/null 2>"$TMP/e.txt"
check "missing file exits 3" test $? -eq 3
"$GAZE" add-texts "$TMP/cat/more.tsv" --db "$DB" --format xml >/dev/null 2>&1
check "bad --format exits 2" test $? -eq 2

cli_finish cli_texts
