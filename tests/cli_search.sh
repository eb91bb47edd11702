#!/usr/bin/env bash
# cli_search.sh - `gaze search` end to end through the real binary, for every fixture
# family: JSON lines parse, k respected, scores sorted, --min-score, --paths, --html gallery
# with embedded JPEG thumbnails, image queries, --add/--sub composition, and the CLI's
# ranking equal to a brute-force cosine ranking computed here from `gaze embed` output.
# BLIP: --rerank shows itc/itm/combined; CLIP: --rerank is a clear error.
# Usage: bash tests/cli_search.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"

P=$TMP/photos
mkdir -p "$P"
# A dozen varied photos keeps the three families' runs short.
for f in animal_cat_chelsea.png animal_dog_corgi.jpg animal_kitten.webp animal_toucan.webp \
    food_coffee.png exif_orient_6.jpg gray_cameraman.png landmark_eiffel_tower.webp \
    product_kettle.jpg scene_rocket_launchpad.jpg people_hopper.gif png_rgba_cutout_anemone.png; do
    cp "$DATA/photos/$f" "$P/"
done
N=$(ls "$P" | wc -l)

for fam in blip_itm clip chinese_clip; do
    M=$DATA/fixtures/$fam
    DB=$TMP/$fam.db
    "$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
    check "$fam: index exits 0" test $? -eq 0

    # JSON lines: parse, k respected, sorted, fields present
    "$GAZE" search "a cat on a table" --db "$DB" -k 5 --json >"$TMP/s.jsonl" 2>"$TMP/e.txt"
    check "$fam: search exits 0" test $? -eq 0
    check "$fam: --json parses, k=5 respected, scores sorted, paths exist" python3 - "$TMP/s.jsonl" <<'EOF'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ok = len(rows) == 5
ok &= all(r['kind'] == 'image' and os.path.isfile(r['path']) and r['rank'] == i + 1 for i, r in enumerate(rows))
ok &= all(rows[i]['score'] >= rows[i + 1]['score'] for i in range(len(rows) - 1))
ok &= all(-1.0001 <= r['score'] <= 1.0001 and r['score'] == r['itc'] for r in rows)
ok &= all(r['width'] > 0 and r['height'] > 0 for r in rows)
sys.exit(0 if ok else 1)
EOF
    # --min-score: threshold at the 3rd score keeps exactly the top 3 (scores are distinct)
    thr=$(python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print("%.9g" % (r[2]["score"] - 1e-6))' "$TMP/s.jsonl")
    "$GAZE" search "a cat on a table" --db "$DB" -k 5 --json --min-score "$thr" >"$TMP/m.jsonl" 2>/dev/null
    check "$fam: --min-score filters" python3 - "$TMP/m.jsonl" "$thr" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if len(rows) == 3 and all(r['score'] >= float(sys.argv[2]) for r in rows) else 1)
EOF
    # brute force: cosine of the query and every image from `gaze embed`, same order as search
    "$GAZE" embed --model "$M" --text "a cat on a table" >"$TMP/q.jsonl" 2>/dev/null
    args=()
    for f in "$P"/*; do args+=(--image "$f"); done
    "$GAZE" embed --model "$M" "${args[@]}" >"$TMP/imgs.jsonl" 2>/dev/null
    "$GAZE" search "a cat on a table" --db "$DB" -k 100 --json >"$TMP/all.jsonl" 2>/dev/null
    check "$fam: search order equals brute-force cosine order from gaze embed" python3 - "$TMP/q.jsonl" "$TMP/imgs.jsonl" "$TMP/all.jsonl" "$N" <<'EOF'
import json, os, sys
q = json.loads(open(sys.argv[1]).readline())['embedding']
imgs = [json.loads(l) for l in open(sys.argv[2])]
got = [json.loads(l) for l in open(sys.argv[3])]
cos = {os.path.realpath(i['path']): sum(a * b for a, b in zip(q, i['embedding'])) for i in imgs}
want = sorted(cos, key=lambda p: -cos[p])
order = [os.path.realpath(r['path']) for r in got]
ok = len(got) == int(sys.argv[4]) and order == want
diff = max(abs(cos[os.path.realpath(r['path'])] - r['score']) for r in got)
print('  score vs brute-force cosine: max abs diff %.2e' % diff, file=sys.stderr)
if not ok: print('order', order, 'want', want, file=sys.stderr)
sys.exit(0 if ok and diff < 1e-4 else 1)
EOF
    # --paths: bare existing paths, k of them
    "$GAZE" search "a cat on a table" --db "$DB" -k 4 --paths >"$TMP/p.txt" 2>/dev/null
    check "$fam: --paths prints k existing paths" python3 -c '
import os,sys; l=open(sys.argv[1]).read().splitlines(); sys.exit(0 if len(l)==4 and all(os.path.isfile(p) for p in l) else 1)' "$TMP/p.txt"
    # table output
    "$GAZE" search "a cat on a table" --db "$DB" -k 3 >"$TMP/t.txt" 2>/dev/null
    check "$fam: table has a header and k rows" test "$(wc -l <"$TMP/t.txt")" -eq 4

    # image query: the photo itself comes first with cosine ~1
    "$GAZE" search --image "$P/product_kettle.jpg" --db "$DB" -k 3 --json >"$TMP/i.jsonl" 2>"$TMP/e.txt"
    check "$fam: --image query finds the photo itself first" python3 - "$TMP/i.jsonl" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if len(r) == 3 and r[0]['path'].endswith('product_kettle.jpg') and r[0]['score'] > 0.999 else 1)
EOF
    # composition: --add/--sub run; adding the kettle image with a big weight pulls it first
    "$GAZE" search "a cat" --db "$DB" -k 3 --add 5:"$P/product_kettle.jpg" --sub 0.5:grass --json >"$TMP/c.jsonl" 2>"$TMP/e.txt"
    check "$fam: --add/--sub composed query runs" test $? -eq 0
    check "$fam: a heavy --add image term dominates" bash -c "head -1 '$TMP/c.jsonl' | grep -q product_kettle.jpg"
    "$GAZE" search "a cat" --db "$DB" --sub "a cat" >/dev/null 2>"$TMP/e.txt"
    check "$fam: a query that cancels out is an error" test $? -eq 3
    check "$fam: cancelling query is explained" grep -q "zero vector" "$TMP/e.txt"

    # --rerank
    if [ "$fam" = blip_itm ]; then
        "$GAZE" search "a cat on a table" --db "$DB" -k 4 --rerank 8 --json >"$TMP/r.jsonl" 2>"$TMP/e.txt"
        check "blip: --rerank exits 0" test $? -eq 0
        check "blip: --rerank gives itc/itm_logit/itm_prob, score = itm_logit + itc, sorted" python3 - "$TMP/r.jsonl" "$TMP/all.jsonl" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
first = [json.loads(l) for l in open(sys.argv[2])][:8]
top8 = {x['path'] for x in first}
ok = len(r) == 4 and all(x['path'] in top8 for x in r)
ok &= all('itm_logit' in x and 0 < x['itm_prob'] < 1 for x in r)
ok &= all(abs(x['score'] - (x['itm_logit'] + x['itc'])) < 1e-5 for x in r)
ok &= all(r[i]['score'] >= r[i + 1]['score'] for i in range(len(r) - 1))
sys.exit(0 if ok else 1)
EOF
        "$GAZE" search "a cat on a table" --db "$DB" -k 3 --rerank 6 >"$TMP/rt.txt" 2>/dev/null
        check "blip: --rerank table shows itc and itm columns" grep -q "itm_prob" "$TMP/rt.txt"
        # ITM scores through `gaze match` agree with the re-ranker's
        top=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["path"])' "$TMP/r.jsonl")
        "$GAZE" match --model "$M" --image "$top" --text "a cat on a table" --json >"$TMP/mt.json" 2>/dev/null
        check "blip: rerank's itm_logit equals gaze match's" python3 - "$TMP/r.jsonl" "$TMP/mt.json" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).readline()); m = json.loads(open(sys.argv[2]).readline())
sys.exit(0 if abs(r['itm_logit'] - m['itm_logit']) < 1e-4 else 1)
EOF
    else
        "$GAZE" search "a cat" --db "$DB" --rerank 5 >/dev/null 2>"$TMP/e.txt"
        check "$fam: --rerank is a clear error" test $? -eq 2
        check "$fam: --rerank error names BLIP" grep -q "BLIP" "$TMP/e.txt"
    fi
done

# --html gallery (BLIP db): valid HTML, one embedded JPEG thumbnail per result
DB=$TMP/blip_itm.db
"$GAZE" search "a cat" --db "$DB" -k 6 --html "$TMP/g.html" >/dev/null 2>"$TMP/e.txt"
check "--html exits 0" test $? -eq 0
check "--html page parses, has 6 <img> with base64 JPEG data" python3 - "$TMP/g.html" <<'EOF'
import base64, sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.imgs = []; self.stack = []; self.errors = 0
    def handle_starttag(self, tag, attrs):
        if tag == 'img': self.imgs.append(dict(attrs).get('src', ''))
        elif tag not in ('meta', 'br', 'link'): self.stack.append(tag)
    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag: self.errors += 1
text = open(sys.argv[1], encoding='utf-8').read()
p = P(); p.feed(text); p.close()
ok = text.startswith('<!DOCTYPE html>') and p.errors == 0 and not p.stack and len(p.imgs) == 6
for src in p.imgs:
    pre = 'data:image/jpeg;base64,'
    ok &= src.startswith(pre)
    raw = base64.b64decode(src[len(pre):], validate=True)
    ok &= raw[:2] == b'\xff\xd8' and raw[-2:] == b'\xff\xd9'
sys.exit(0 if ok else 1)
EOF

# usage errors
"$GAZE" search --db "$DB" >/dev/null 2>&1
check "search without a query exits 2" test $? -eq 2
"$GAZE" search x --db "$DB" --json --paths >/dev/null 2>&1
check "two output formats exit 2" test $? -eq 2
"$GAZE" search x --db "$DB" --model "$DATA/fixtures/clip" >/dev/null 2>"$TMP/e.txt"
check "a model the db was not indexed with is refused" test $? -eq 3
check "... with a message naming the indexed model" grep -q "blip_itm" "$TMP/e.txt"
"$GAZE" info --db "$DB" --json >"$TMP/info.json" 2>/dev/null
check "... and the db's default model is unchanged" python3 -c '
import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if "blip_itm" in d["models"][0]["name"] and len(d["models"])==1 else 1)' "$TMP/info.json"

cli_finish cli_search
