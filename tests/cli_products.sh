#!/usr/bin/env bash
# cli_products.sh - `gaze search --products` calibrates the two modalities before mixing them:
# a product without an image no longer wins by construction (issue #12 item 6). Text-to-text
# cosines run higher than text-to-image ones, so with raw cosines "score = text cosine" for an
# image-less product beat any product whose text is as good. Here a gift card and a "twin"
# product have the very text of the query; the twin's image is the linked image closest to the
# query (found here from `gaze embed`), so with standardised scores the twin must rank first.
# Also: the documented formula, and --products --rerank refused as a usage error.
# Usage: bash tests/cli_products.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
M=$DATA/fixtures/blip_itm
DB=$TMP/p.db
C=$TMP/shop
mkdir -p "$C/img"
for f in animal_cat_chelsea.png product_kettle.jpg product_colorful_cups_progressive.jpg \
    animal_dog_corgi.jpg food_coffee.png; do
    cp "$DATA/photos/$f" "$C/img/"
done
Q="red leather jacket"
"$GAZE" embed --model "$M" --text "$Q" >"$TMP/q.jsonl" 2>/dev/null
args=()
for f in "$C"/img/*; do args+=(--image "$f"); done
"$GAZE" embed --model "$M" "${args[@]}" >"$TMP/i.jsonl" 2>/dev/null
best=$(python3 - "$TMP/q.jsonl" "$TMP/i.jsonl" <<'PY'
import json, os, sys
q = json.loads(open(sys.argv[1]).readline())['embedding']
imgs = [json.loads(l) for l in open(sys.argv[2])]
cos = {os.path.basename(i['path']): sum(a * b for a, b in zip(q, i['embedding'])) for i in imgs}
print(max(cos, key=cos.get))
PY
)
check "found the linked image closest to the query" test -n "$best"

{
    echo '{"id": "p1", "text": "a steel kettle", "image": "img/product_kettle.jpg"}'
    echo '{"id": "p2", "text": "colourful cups", "image": "img/product_colorful_cups_progressive.jpg"}'
    echo '{"id": "p3", "text": "cat poster", "image": "img/animal_cat_chelsea.png"}'
    echo '{"id": "p4", "text": "dog toy", "image": "img/animal_dog_corgi.jpg"}'
    echo '{"id": "p5", "text": "coffee beans", "image": "img/food_coffee.png"}'
    echo "{\"id\": \"twin\", \"text\": \"$Q\", \"image\": \"img/$best\"}"
    echo "{\"id\": \"gift\", \"text\": \"$Q\"}"
} >"$C/products.jsonl"
"$GAZE" index "$C/img" --db "$DB" --model "$M" --quiet >/dev/null 2>&1
check "index the shop's photos" test $? -eq 0
"$GAZE" add-texts "$C/products.jsonl" --db "$DB" --image-field image --quiet >/dev/null 2>"$TMP/e.txt"
check "add-texts imports the catalogue" test $? -eq 0

"$GAZE" search --products "$Q" --db "$DB" -k 100 --json >"$TMP/r.jsonl" 2>"$TMP/e.txt"
check "--products exits 0" test $? -eq 0
check "the image-less product does not win by construction: the twin ranks first" python3 - "$TMP/r.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = [r['id'] for r in rows]
ok = len(rows) == 7 and ids[0] == 'twin' and ids.index('gift') > ids.index('twin')
if not ok: print('  order:', ids, [round(r['score'], 4) for r in rows], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
check "scores follow w * z(text) + (1 - w) * z(image), z = 0 without an image" python3 - "$TMP/r.jsonl" 0.5 <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
w = float(sys.argv[2])
def calib(xs):
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
mt, st = calib([r['text_score'] for r in rows])
mi, si = calib([r['image_score'] for r in rows if r['image_score'] is not None])
ok = True
for r in rows:
    zi = 0.0 if r['image_score'] is None else (r['image_score'] - mi) / si
    want = w * (r['text_score'] - mt) / st + (1 - w) * zi
    if abs(r['score'] - want) > 1e-4:
        print('  %s: score %.6f want %.6f' % (r['id'], r['score'], want), file=sys.stderr)
        ok = False
ok &= all(rows[i]['score'] >= rows[i + 1]['score'] for i in range(len(rows) - 1))
sys.exit(0 if ok else 1)
PY
# --text-weight 1: text alone decides; twin and gift tie on text (same words), both on top
"$GAZE" search --products "$Q" --db "$DB" -k 2 --text-weight 1 --json >"$TMP/w1.jsonl" 2>/dev/null
check "--text-weight 1 ranks by text alone (the two identical texts first)" python3 -c '
import json, sys; r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if sorted(x["id"] for x in r) == ["gift", "twin"] and abs(r[0]["score"] - r[1]["score"]) < 1e-5 else 1)' "$TMP/w1.jsonl"

"$GAZE" search --products "$Q" --db "$DB" --rerank 5 >/dev/null 2>"$TMP/e.txt"
check "--products --rerank is a usage error (exit 2)" test $? -eq 2
check "--products --rerank says why" grep -q -- "--rerank" "$TMP/e.txt"
cli_finish cli_products
