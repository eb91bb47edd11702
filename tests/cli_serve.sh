#!/usr/bin/env bash
# cli_serve.sh - `gaze serve` end to end through the real binary with curl: every endpoint and
# its answers against the CLI's own (search = gaze search --json, embed = gaze embed), every
# error case (malformed JSON, unknown field, k out of range, body over the limit, undecodable
# image, image over the pixel limit, unknown endpoint, wrong method), thumbnails only for
# indexed ids, auth on and off, the index changed by another process seen without a restart,
# concurrent readers while another process writes, the warning for a public address without
# a key, and SIGTERM finishing the request in flight.
# Usage: bash tests/cli_serve.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"

M=$DATA/fixtures/blip_itm
P=$TMP/photos
mkdir -p "$P" "$TMP/later"
for f in animal_cat_chelsea.png animal_dog_corgi.jpg animal_kitten.webp food_coffee.png \
    product_kettle.jpg scene_rocket_launchpad.jpg; do
    cp "$DATA/photos/$f" "$P/"
done
cp "$DATA/photos/landmark_eiffel_tower.webp" "$TMP/later/"
DB=$TMP/shop.db
"$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index the photos" test $? -eq 0
cat >"$TMP/products.jsonl" <<'J'
{"id": "kettle-1", "title": "steel kettle", "description": "a kettle for tea", "photo": "photos/product_kettle.jpg"}
{"id": "coffee-1", "title": "coffee cup", "description": "hot coffee", "photo": "photos/food_coffee.png"}
{"id": "plain-1", "title": "gift card", "description": "no photo"}
J
"$GAZE" add-texts "$TMP/products.jsonl" --db "$DB" --text-field title,description \
    --image-field photo --quiet >/dev/null 2>"$TMP/e.txt"
check "add products" test $? -eq 0
echo "s3cret-key" >"$TMP/key"

serve_start A --db "$DB" --api-key-file "$TMP/key" --threads 2 --max-body 1
check "server starts" test -n "${A_PORT:-}"
U=http://127.0.0.1:${A_PORT:-1}

# ---- healthz, info, openapi, page ----
out=$(http GET "$U/healthz")
check "healthz 200 ok" test "$out" = $'ok\n\n200'
http GET "$U/v1/info" >"$TMP/info.txt"
check "info: version, model, items, index generation" python3 - "$TMP/info.txt" <<'PY'
import json, sys
body, code = open(sys.argv[1]).read().rsplit('\n', 1)
o = json.loads(body)
ok = code == '200' and o['model']['family'] == 'blip' and o['model']['dim'] == 32
ok &= o['store']['items']['images'] == 6 and o['store']['items']['texts'] == 3
ok &= any(i['kind'] == 'image' and i['generation'] >= 1 and i['vectors'] == 6 for i in o['store']['indexes'])
ok &= o['auth'] is True and o['read_only'] is False
sys.exit(0 if ok else 1)
PY
http GET "$U/v1/openapi.json" >"$TMP/oa.txt"
check "openapi.json is OpenAPI 3 and lists every endpoint" python3 - "$TMP/oa.txt" <<'PY'
import json, sys
body, code = open(sys.argv[1]).read().rsplit('\n', 1)
o = json.loads(body)
want = ['/v1/search', '/v1/embed', '/v1/match', '/v1/info', '/v1/items/{id}/thumbnail', '/healthz', '/metrics']
sys.exit(0 if code == '200' and o['openapi'].startswith('3.') and all(p in o['paths'] for p in want) else 1)
PY
page=$(http GET "$U/")
check "page at / is HTML loading its module" bash -c '[[ "$1" == *"<html"* && "$1" == *"type=\"module\""* && "$1" == *200 ]]' _ "$page"
check "page script served" bash -c '[[ "$(curl -s -o /dev/null -w "%{http_code} %{content_type}" "$1/app.js")" == "200 text/javascript"* ]]' _ "$U"
check "page has no external URL (no CDN)" bash -c '! curl -s "$1/" "$1/app.js" | grep -Eq "(src|href)=\"https?://|import .* from \"https?://"' _ "$U"

# ---- search: the same answers as gaze search --json ----
# compare_cli BODY_JSON CLI_ARGS... : the API's results equal the CLI's JSON lines
compare_cli() {
    local body=$1
    shift
    http POST "$U/v1/search" -H 'Content-Type: application/json' -d "$body" >"$TMP/api.txt"
    "$GAZE" search --db "$DB" --json "$@" >"$TMP/cli.jsonl" 2>/dev/null
    python3 - "$TMP/api.txt" "$TMP/cli.jsonl" <<'PY'
import json, sys
body, code = open(sys.argv[1]).read().rsplit('\n', 1)
api = json.loads(body)
cli = [json.loads(l) for l in open(sys.argv[2])]
res = api['results']
ok = code == '200' and len(res) == len(cli) and len(cli) > 0
ok &= 'search_ms' in api['timing'] and api['timing']['total_ms'] >= api['timing']['search_ms']
for a, c in zip(res, cli):
    ok &= set(a) == set(c) and a['item_id'] == c['item_id'] and a['rank'] == c['rank']
    for k in c:
        if isinstance(c[k], float): ok &= abs(a[k] - c[k]) < 1e-6
        else: ok &= a[k] == c[k]
if not ok: print(code, body[:400], cli[:2], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}
check "text search = gaze search --json" compare_cli '{"text": "a cat on a table", "k": 5}' "a cat on a table" -k 5
# a threshold just under the 3rd score keeps exactly 3
thr=$("$GAZE" search "a dog" --db "$DB" -k 6 --json 2>/dev/null | python3 -c 'import json,sys; r=[json.loads(l) for l in sys.stdin]; print("%.9g" % (r[2]["score"] - 1e-6))')
check "min_score = --min-score" compare_cli "{\"text\": \"a dog\", \"k\": 6, \"min_score\": $thr}" "a dog" -k 6 --min-score "$thr"
check "min_score keeps 3" bash -c 'grep -c "\"rank\"" "$1" | grep -qx 3' _ "$TMP/cli.jsonl"
check "rerank = --rerank" compare_cli '{"text": "a dog", "k": 3, "rerank": 5}' "a dog" -k 3 --rerank 5
check "texts mode = --texts" compare_cli '{"text": "kettle", "mode": "texts", "k": 3}' kettle --texts -k 3
check "products mode = --products" compare_cli '{"text": "tea kettle", "mode": "products", "k": 3, "text_weight": 0.3}' "tea kettle" --products -k 3 --text-weight 0.3
check "filters = --format/--min-width/--in (#12)" compare_cli "{\"text\": \"a dog\", \"k\": 2, \"format\": \"jpeg,webp\", \"min_width\": 100, \"in\": \"$P\", \"taken_after\": \"1990-01-01\"}" "a dog" -k 2 --format jpeg,webp --min-width 100 --in "$P" --taken-after 1990-01-01
B64_KETTLE=$(base64 -w0 "$P/product_kettle.jpg")
check "composed terms = --add/--sub" compare_cli "{\"text\": \"a dog\", \"terms\": [{\"text\": \"snow\", \"weight\": 0.5}, {\"image\": \"$B64_KETTLE\", \"weight\": -1}], \"k\": 4}" "a dog" --add 0.5:snow --sub "$P/product_kettle.jpg" -k 4

# image search, base64 JSON and multipart: the photo itself first
echo "{\"image\": \"$B64_KETTLE\", \"k\": 3}" >"$TMP/img.json"
http POST "$U/v1/search" -d @"$TMP/img.json" >"$TMP/a.txt"
http POST "$U/v1/search" -F image=@"$P/product_kettle.jpg" -F k=3 >"$TMP/b.txt"
echo "{\"image\": \"data:image/jpeg;base64,$B64_KETTLE\", \"k\": 3}" >"$TMP/img2.json"
http POST "$U/v1/search" -d @"$TMP/img2.json" >"$TMP/c.txt"
check "image search (base64, multipart, data URL) finds the photo itself first" python3 - "$TMP/a.txt" "$TMP/b.txt" "$TMP/c.txt" <<'PY'
import json, sys
ok = True
for f in sys.argv[1:]:
    body, code = open(f).read().rsplit('\n', 1)
    r = json.loads(body)['results']
    ok &= code == '200' and len(r) == 3 and r[0]['path'].endswith('product_kettle.jpg') and r[0]['score'] > 0.999
sys.exit(0 if ok else 1)
PY
# "similar": an indexed item as the query term
KID=$(python3 -c 'import json,sys; b=open(sys.argv[1]).read().rsplit("\n",1)[0]; print(json.loads(b)["results"][0]["item_id"])' "$TMP/a.txt")
out=$(http POST "$U/v1/search" -d "{\"terms\": [{\"item_id\": $KID}], \"k\": 1}")
check "similar by item_id finds the item itself" bash -c '[[ "$1" == *"\"item_id\":$2,"* && "$1" == *200 ]]' _ "$out" "$KID"

# ---- errors: JSON with a status and a message naming the problem ----
# expect_error STATUS WORDS METHOD PATH [curl args] : status and a message containing WORDS
expect_error() {
    local want=$1 words=$2 method=$3 path=$4
    shift 4
    http "$method" "$U$path" "$@" >"$TMP/err.txt"
    python3 - "$TMP/err.txt" "$want" "$words" <<'PY'
import json, sys
body, code = open(sys.argv[1]).read().rsplit('\n', 1)
try:
    e = json.loads(body)['error']
except Exception:
    print('not a JSON error:', code, body[:200], file=sys.stderr); sys.exit(1)
ok = code == sys.argv[2] and e['status'] == int(code) and sys.argv[3] in e['message']
if not ok: print(code, body[:300], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}
check "malformed JSON: 400" expect_error 400 "malformed JSON" POST /v1/search -d '{"text": '
check "not an object: 400" expect_error 400 "JSON object" POST /v1/search -d '[1, 2]'
check "malformed filter date: 400 naming it" expect_error 400 "taken_before: '2024-02-30' is not a date" POST /v1/search -d '{"text": "a cat", "taken_before": "2024-02-30"}'
check "unknown filter format: 400" expect_error 400 "format: unknown image format 'xyz'" POST /v1/search -d '{"text": "a cat", "format": "xyz"}'
check "negative min_width: 400" expect_error 400 "min_width must be" POST /v1/search -d '{"text": "a cat", "min_width": -3}'
check "unknown field: 400" expect_error 400 "unknown field 'txt'" POST /v1/search -d '{"txt": "a cat"}'
check "unknown term field: 400" expect_error 400 "terms[0]: unknown field 'img'" POST /v1/search -d '{"terms": [{"img": "x"}]}'
check "k = 0: 400" expect_error 400 "k must be" POST /v1/search -d '{"text": "a cat", "k": 0}'
check "k too large: 400" expect_error 400 "k must be" POST /v1/search -d '{"text": "a cat", "k": 1001}'
check "k not an integer: 400" expect_error 400 "k must be" POST /v1/search -d '{"text": "a cat", "k": "5"}'
check "rerank too large: 400" expect_error 400 "rerank must be" POST /v1/search -d '{"text": "a cat", "rerank": 257}'
check "bad mode: 400" expect_error 400 "mode must be" POST /v1/search -d '{"text": "a cat", "mode": "videos"}'
check "no query: 400" expect_error 400 "give a text" POST /v1/search -d '{"k": 3}'
check "not base64: 400" expect_error 400 "not base64" POST /v1/search -d '{"image": "@@@"}'
check "undecodable image: 422" expect_error 422 "image: unsupported format" POST /v1/search -d '{"image": "aGVsbG8gd29ybGQ="}'
# a PNG whose header says 20000 x 20000 (400 MP, over the 100 MP limit): refused from the header
python3 - "$TMP/huge.png" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
ihdr = struct.pack('>IIBBBBB', 20000, 20000, 8, 2, 0, 0, 0)
open(sys.argv[1], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))
PY
echo "{\"image\": \"$(base64 -w0 "$TMP/huge.png")\"}" >"$TMP/huge.json"
check "image over the pixel limit: 413" expect_error 413 "image" POST /v1/search -d @"$TMP/huge.json"
check "multipart undecodable image: 422" expect_error 422 "image" POST /v1/search -F "image=@$TMP/products.jsonl"
# a body over --max-body 1 (MB): 413, and the server goes on
head -c 1200000 /dev/zero | tr '\0' 'a' | sed 's/^/{"text": "/; s/$/"}/' >"$TMP/big.json"
check "body over --max-body: 413" expect_error 413 "over the limit" POST /v1/search -H 'Content-Type: application/json' --data-binary @"$TMP/big.json"
check "multipart body over --max-body: 413" expect_error 413 "over the limit" POST /v1/search -H 'Transfer-Encoding: chunked' -F "image=@$TMP/big.json"
check "chunked body over --max-body: 413" expect_error 413 "over the limit" POST /v1/search -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.json"
check "unknown endpoint: 404" expect_error 404 "no such endpoint" GET /v2/search
check "wrong method: 405" expect_error 405 "takes POST" GET /v1/search
check "embed: unknown field 400" expect_error 400 "unknown field" POST /v1/embed -d '{"text": ["a"]}'
check "match: undecodable image 422" expect_error 422 "image" POST /v1/match -d '{"image": "aGVsbG8=", "texts": ["a"]}'

# ---- embed and match: the model's own numbers ----
echo "{\"texts\": [\"a cat on a table\"], \"images\": [\"$B64_KETTLE\"]}" >"$TMP/emb.json"
http POST "$U/v1/embed" -d @"$TMP/emb.json" >"$TMP/emb.txt"
"$GAZE" embed --model "$M" --text "a cat on a table" --image "$P/product_kettle.jpg" >"$TMP/emb_cli.jsonl" 2>/dev/null
check "embed = gaze embed" python3 - "$TMP/emb.txt" "$TMP/emb_cli.jsonl" <<'PY'
import json, sys
body, code = open(sys.argv[1]).read().rsplit('\n', 1)
o = json.loads(body)
cli = [json.loads(l)['embedding'] for l in open(sys.argv[2])]
got = o['texts'] + o['images']
ok = code == '200' and o['dim'] == 32 and len(got) == 2
ok &= all(abs(a - b) < 1e-6 for g, c in zip(got, cli) for a, b in zip(g, c))
sys.exit(0 if ok else 1)
PY
echo "{\"image\": \"$B64_KETTLE\", \"texts\": [\"a kettle\", \"a cat\"]}" >"$TMP/match.json"
http POST "$U/v1/match" -d @"$TMP/match.json" >"$TMP/match.txt"
"$GAZE" match --model "$M" --image "$P/product_kettle.jpg" --text "a kettle" --text "a cat" --json >"$TMP/match_cli.jsonl" 2>/dev/null
check "match = gaze match (itc, itm)" python3 - "$TMP/match.txt" "$TMP/match_cli.jsonl" <<'PY'
import json, sys
body, code = open(sys.argv[1]).read().rsplit('\n', 1)
r = json.loads(body)['results']
cli = [json.loads(l) for l in open(sys.argv[2])]
ok = code == '200' and len(r) == 2 == len(cli)
for a, c in zip(r, cli):
    ok &= abs(a['itc'] - c['itc']) < 1e-6 and abs(a['itm_prob'] - c['itm_prob']) < 1e-6
sys.exit(0 if ok else 1)
PY

# ---- thumbnails: indexed ids only ----
check "thumbnail of an indexed image: JPEG" bash -c '[ "$(curl -s -o "$2" -w "%{http_code} %{content_type}" "$1/v1/items/$3/thumbnail")" = "200 image/jpeg" ] && [ "$(head -c 2 "$2" | od -An -tx1 | tr -d " ")" = ffd8 ]' _ "$U" "$TMP/t.jpg" "$KID"
TID=$("$GAZE" search --db "$DB" --texts "tea kettle" -k 3 --json 2>/dev/null | python3 -c 'import json,sys; print([r["item_id"] for r in map(json.loads, sys.stdin) if r["id"] == "kettle-1"][0])')
check "thumbnail of a product: its linked image" bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" "$1/v1/items/$2/thumbnail")" = 200 ]' _ "$U" "$TID"
for bad in 999999 0 -1 +1 1x 0x1 ..%2F..%2Fetc%2Fpasswd %2Fetc%2Fpasswd "$(printf %s "$P/product_kettle.jpg" | sed 's,/,%2F,g')"; do
    check "thumbnail refuses '$bad'" expect_error 404 "" GET "/v1/items/$bad/thumbnail"
done
GIFT=$("$GAZE" search --db "$DB" --texts "gift card" -k 3 --json 2>/dev/null | python3 -c 'import json,sys; print([r["item_id"] for r in map(json.loads, sys.stdin) if r["id"] == "plain-1"][0])')
check "thumbnail of a text without image: 404" expect_error 404 "no indexed image" GET "/v1/items/$GIFT/thumbnail"

# ---- auth: writes need the key; reads do not (unless --auth-reads) ----
check "write without key: 401" expect_error 401 "API key" DELETE /v1/items/shop/x
check "write with a wrong key: 401" expect_error 401 "API key" DELETE /v1/items/shop/x -H 'Authorization: Bearer s3cret-kez'
check "read without key: 200" bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" "$1/v1/info")" = 200 ]' _ "$U"

# ---- metrics ----
http GET "$U/metrics" >"$TMP/metrics.txt"
check "metrics: requests, errors, histograms, items, generation" python3 - "$TMP/metrics.txt" <<'PY'
import re, sys
body, code = open(sys.argv[1]).read().rsplit('\n', 1)
v = {}
for l in body.splitlines():
    if l and not l.startswith('#'):
        k, x = l.rsplit(' ', 1); v[k] = float(x)
ok = code == '200'
ok &= v['gaze_http_requests_total{endpoint="search"}'] >= 10
ok &= v['gaze_http_errors_total{endpoint="search"}'] >= 10
ok &= v['gaze_http_request_duration_seconds_bucket{endpoint="search",le="+Inf"}'] == v['gaze_http_requests_total{endpoint="search"}']
ok &= v['gaze_items{kind="image"}'] == 6 and v['gaze_items{kind="text"}'] == 3
ok &= any(k.startswith('gaze_index_generation{model_id="1"') and x >= 1 for k, x in v.items())
sys.exit(0 if ok else 1)
PY

# ---- another process writes: readers keep answering, then see the new generation ----
q='{"text": "the eiffel tower", "k": 10}'
: >"$TMP/codes.txt"
(for i in $(seq 20); do curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 "$U/v1/search" -d "$q" >>"$TMP/codes.txt"; done) &
r1=$!
(for i in $(seq 20); do curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 "$U/v1/search" -d "$q" >>"$TMP/codes.txt"; done) &
r2=$!
"$GAZE" index "$TMP/later" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index from another process while the server runs" test $? -eq 0
wait $r1 $r2
check "40 concurrent searches during the write: all 200" bash -c '[ "$(grep -c "^200$" "$1")" = 40 ]' _ "$TMP/codes.txt"
out=$(http POST "$U/v1/search" -d "$q")
check "the new photo is found without a restart" bash -c '[[ "$1" == *landmark_eiffel_tower.webp* && "$1" == *200 ]]' _ "$out"

# ---- SIGTERM: the request in flight (a body still arriving) is answered, then exit 0 ----
python3 -c 'import json; print(json.dumps({"text": "a cat" + " " * 200000, "k": 2}))' >"$TMP/slow.json"
curl -s --max-time 60 --limit-rate 50k -o "$TMP/slow.out" -w '%{http_code}' "$U/v1/search" \
    -H 'Content-Type: application/json' --data-binary @"$TMP/slow.json" >"$TMP/slow.code" &
c=$!
sleep 1
serve_stop "$A_PID"
check "SIGTERM: the server exits 0" test $? -eq 0
wait $c
check "SIGTERM: the request in flight got its answer" bash -c '[ "$(cat "$1")" = 200 ] && grep -q "\"results\"" "$2"' _ "$TMP/slow.code" "$TMP/slow.out"
check "SIGTERM: nothing is listening any more" bash -c '! curl -s --max-time 5 "$1/healthz"' _ "$U"

# ---- --auth-reads and --read-only ----
serve_start R --db "$DB" --api-key-file "$TMP/key" --auth-reads --read-only --threads 1
U=http://127.0.0.1:${R_PORT:-1}
check "auth-reads: search without key 401" expect_error 401 "API key" POST /v1/search -d '{"text": "a cat"}'
check "auth-reads: healthz stays open" bash -c '[ "$(curl -s "$1/healthz")" = ok ]' _ "$U"
out=$(http POST "$U/v1/search" -H 'Authorization: Bearer s3cret-key' -d '{"text": "a cat", "k": 1}')
check "auth-reads: search with the key 200" bash -c '[[ "$1" == *"\"results\""* && "$1" == *200 ]]' _ "$out"
check "read-only: writes refused 403" expect_error 403 "read-only" DELETE /v1/items/shop/x -H 'Authorization: Bearer s3cret-key'
serve_stop "$R_PID"

# ---- usage errors and the public-address warning ----
"$GAZE" serve --db "$DB" --listen nowhere:80 >/dev/null 2>"$TMP/e.txt"
check "bad --listen: exit 2 with a message" bash -c '[ "$1" -eq 2 ] && grep -q "not a numeric" "$2"' _ $? "$TMP/e.txt"
"$GAZE" serve --db "$TMP/none.db" >/dev/null 2>"$TMP/e.txt"
check "missing db: exit 3 naming it" bash -c '[ "$1" -eq 3 ] && grep -q "none.db" "$2"' _ $? "$TMP/e.txt"
serve_start W --db "$DB" --listen 0.0.0.0:0 --threads 1 --no-warmup
check "public address without a key: warning" grep -q "without --api-key-file" "$TMP/W.log"
serve_stop "$W_PID"

cli_finish cli_serve
