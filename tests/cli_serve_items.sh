#!/usr/bin/env bash
# cli_serve_items.sh - catalogue writes through `gaze serve`: PUT (added / unchanged / updated,
# uploaded image or image_path under --image-root only), DELETE, bulk JSON lines, their errors
# and auth; readers never see part of a bulk request; SIGTERM during a stream of bulk writes
# loses nothing that was acknowledged and leaves no bulk half-written.
# Usage: bash tests/cli_serve_items.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"

M=$DATA/fixtures/blip_itm
P=$TMP/photos
mkdir -p "$P"
for f in animal_cat_chelsea.png animal_dog_corgi.jpg food_coffee.png product_kettle.jpg; do
    cp "$DATA/photos/$f" "$P/"
done
DB=$TMP/shop.db
"$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index the photos" test $? -eq 0
echo "k3y" >"$TMP/key"
AUTH=(-H 'Authorization: Bearer k3y')

serve_start A --db "$DB" --api-key-file "$TMP/key" --image-root "$P"
U=http://127.0.0.1:${A_PORT:-1}

# status_is WANT METHOD PATH [curl args] : the HTTP status only
status_is() {
    local want=$1 method=$2 path=$3
    shift 3
    [ "$(curl -s -o "$TMP/last.json" -w '%{http_code}' --max-time 60 -X "$method" "$@" "$U$path")" = "$want" ] ||
        { echo "got $(cat "$TMP/last.json")" >&2; return 1; }
}
# texts CATALOG_FILTER: the ext ids of every indexed text, one per line, sorted (through the CLI)
texts() {
    "$GAZE" search --db "$DB" --texts "anything" -k 100000 --json 2>/dev/null |
        python3 -c 'import json,sys; print("\n".join(sorted(json.loads(l)["id"] for l in sys.stdin)))'
}

B64_KITTEN=$(base64 -w0 "$DATA/photos/animal_kitten.webp")
echo "{\"title\": \"kitten poster\", \"description\": \"a small cat\", \"image\": \"$B64_KITTEN\", \"meta\": {\"price\": 3}}" >"$TMP/put.json"
check "PUT without key: 401" status_is 401 PUT /v1/items/shop/p1 -d @"$TMP/put.json"
check "PUT with a wrong key: 401" status_is 401 PUT /v1/items/shop/p1 -H 'Authorization: Bearer k3z' -d @"$TMP/put.json"
check "PUT a new item: 201 added" status_is 201 PUT /v1/items/shop/p1 "${AUTH[@]}" -d @"$TMP/put.json"
check "  answer says added, with the image linked" python3 -c '
import json,sys; o=json.load(open(sys.argv[1])); sys.exit(0 if o["outcome"]=="added" and o["item_id"]>0 and o["image_item_id"]>0 else 1)' "$TMP/last.json"
PID1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["item_id"])' "$TMP/last.json")
check "PUT the same: 200 unchanged" status_is 200 PUT /v1/items/shop/p1 "${AUTH[@]}" -d @"$TMP/put.json"
check "  answer says unchanged" grep -q '"outcome":"unchanged"' "$TMP/last.json"
check "PUT other text: 200 updated" status_is 200 PUT /v1/items/shop/p1 "${AUTH[@]}" -d "{\"title\": \"kitten poster XL\", \"image\": \"$B64_KITTEN\"}"
check "  answer says updated" grep -q '"outcome":"updated"' "$TMP/last.json"
check "PUT with image_path under the root: 201" status_is 201 PUT /v1/items/shop/p2 "${AUTH[@]}" -d '{"text": "steel kettle", "image_path": "product_kettle.jpg"}'
out=$(curl -s "$U/v1/search" -d '{"text": "kitten poster XL", "mode": "products", "k": 2}')
check "the new products are searchable at once, with their images" python3 -c '
import json,sys; r=json.loads(sys.argv[1])["results"]
ok = r[0]["id"]=="p1" and r[0]["text"]=="kitten poster XL" and r[0]["image"].endswith(".img") and r[0]["image_score"] is not None
ok &= any(x["id"]=="p2" and x["image"].endswith("product_kettle.jpg") for x in r)
sys.exit(0 if ok else 1)' "$out"
check "thumbnail of the new product (its uploaded image)" status_is 200 GET "/v1/items/$PID1/thumbnail"

# errors, each with nothing written
before=$(texts | tr '\n' ,)
check "image_path outside the root: 403" status_is 403 PUT /v1/items/shop/bad "${AUTH[@]}" -d '{"text": "x", "image_path": "/etc/passwd"}'
check "image_path climbing out: 403" status_is 403 PUT /v1/items/shop/bad "${AUTH[@]}" -d '{"text": "x", "image_path": "../../../../etc/hostname"}'
ln -s /etc/hostname "$P/link.jpg"
check "image_path through a link out of the root: 403" status_is 403 PUT /v1/items/shop/bad "${AUTH[@]}" -d '{"text": "x", "image_path": "link.jpg"}'
check "unknown field: 400" status_is 400 PUT /v1/items/shop/bad "${AUTH[@]}" -d '{"text": "x", "colour": "red"}'
check "  message names it" grep -q "unknown field 'colour'" "$TMP/last.json"
check "malformed JSON: 400" status_is 400 PUT /v1/items/shop/bad "${AUTH[@]}" -d '{"text": '
check "no text: 400" status_is 400 PUT /v1/items/shop/bad "${AUTH[@]}" -d '{"meta": {}}'
check "undecodable image: 422" status_is 422 PUT /v1/items/shop/bad "${AUTH[@]}" -d '{"text": "x", "image": "aGVsbG8gd29ybGQ="}'
python3 - "$TMP/huge.png" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
ihdr = struct.pack('>IIBBBBB', 20000, 20000, 8, 2, 0, 0, 0)
open(sys.argv[1], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))
PY
echo "{\"text\": \"x\", \"image\": \"$(base64 -w0 "$TMP/huge.png")\"}" >"$TMP/huge.json"
check "image over the pixel limit: 413" status_is 413 PUT /v1/items/shop/bad "${AUTH[@]}" -d @"$TMP/huge.json"
check "GET on an item: 405" status_is 405 GET /v1/items/shop/p1 "${AUTH[@]}"
check "PUT without an id: 405" status_is 405 PUT /v1/items/shop "${AUTH[@]}" -d '{"text": "x"}'
check "errors wrote nothing" test "$(texts | tr '\n' ,)" = "$before"

check "DELETE without key: 401" status_is 401 DELETE /v1/items/shop/p2
check "DELETE: 200" status_is 200 DELETE /v1/items/shop/p2 "${AUTH[@]}"
check "  answer says deleted" grep -q '"outcome":"deleted"' "$TMP/last.json"
check "DELETE again: 404" status_is 404 DELETE /v1/items/shop/p2 "${AUTH[@]}"
check "the deleted item is gone from searches" bash -c '! curl -s "$1/v1/search" -d "{\"text\": \"steel kettle\", \"mode\": \"texts\", \"k\": 50}" | grep -q "\"id\":\"p2\""' _ "$U"

# bulk JSON lines: good lines stored, bad lines reported by line number
{
    for i in $(seq 1 20); do echo "{\"id\": \"b$i\", \"title\": \"bulk item $i\", \"description\": \"number $i\"}"; done
    echo 'not json'
    echo '{"title": "no id"}'
    echo ''
    echo '{"id": "p1", "delete": true}'
    echo '{"id": "b3", "colour": "red"}'
    echo '{"id": "never-there", "delete": true}'
} >"$TMP/bulk.jsonl"
check "bulk without key: 401" status_is 401 POST /v1/items/shop --data-binary @"$TMP/bulk.jsonl"
check "bulk: 200" status_is 200 POST /v1/items/shop "${AUTH[@]}" -H 'Content-Type: application/x-ndjson' --data-binary @"$TMP/bulk.jsonl"
check "bulk answer: 20 added, 1 deleted, 1 not found, 3 failed with their line numbers" python3 - "$TMP/last.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
failed = [r for r in o['results'] if r['outcome'] == 'failed']
ok = o['added'] == 20 and o['deleted'] == 1 and o['failed'] == 3 and o['not_found'] == 1
ok &= [r['line'] for r in failed] == [21, 22, 25] and 'line 25: unknown field' in failed[2]['error']
sys.exit(0 if ok else 1)
PY
texts >"$TMP/stored.txt"
check "bulk: the store holds b1..b20 and not p1" bash -c '[ "$(grep -c "^b" "$1")" = 20 ] && ! grep -qx p1 "$1"' _ "$TMP/stored.txt"

# readers never see part of a bulk request: each reader answer holds all of a bulk or none
: >"$TMP/seen.txt"
(for i in $(seq 40); do curl -s --max-time 60 "$U/v1/search" -d '{"text": "x", "mode": "texts", "k": 1000}' >>"$TMP/seen.txt"; echo >>"$TMP/seen.txt"; done) &
reader=$!
for n in $(seq 1 8); do
    for i in $(seq 1 25); do echo "{\"id\": \"g$n-$i\", \"text\": \"group $n item $i\"}"; done >"$TMP/g.jsonl"
    curl -s -o /dev/null --max-time 60 "${AUTH[@]}" "$U/v1/items/shop" --data-binary @"$TMP/g.jsonl"
done
wait $reader
check "40 reader answers during 8 bulk writes: every group whole or absent" python3 - "$TMP/seen.txt" <<'PY'
import collections, json, sys
ok = True; n = 0
for l in open(sys.argv[1]):
    if not l.strip(): continue
    n += 1
    c = collections.Counter(r['id'].split('-')[0] for r in json.loads(l)['results'] if r['id'].startswith('g'))
    ok &= all(v == 25 for v in c.values())
sys.exit(0 if ok and n == 40 else 1)
PY

# SIGTERM during a stream of bulk writes: every acknowledged bulk is stored whole; any other
# bulk is stored whole or not at all
: >"$TMP/acked.txt"
(
    for n in $(seq 1 400); do
        for i in $(seq 1 10); do echo "{\"id\": \"s$n-$i\", \"text\": \"stream $n item $i\"}"; done >"$TMP/s$n.jsonl"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 60 "${AUTH[@]}" "$U/v1/items/shop" --data-binary @"$TMP/s$n.jsonl")
        [ "$code" = 200 ] && echo "s$n" >>"$TMP/acked.txt"
        [ "$code" = 000 ] && break
    done
) &
writer=$!
for _ in $(seq 100); do [ "$(wc -l <"$TMP/acked.txt")" -ge 5 ] && break; sleep 0.1; done
serve_stop "$A_PID"
check "SIGTERM during writes: exit 0" test $? -eq 0
wait $writer
texts >"$TMP/stored.txt"
check "SIGTERM: acknowledged bulks all stored, none half-written" python3 - "$TMP/acked.txt" "$TMP/stored.txt" <<'PY'
import collections, sys
acked = set(open(sys.argv[1]).read().split())
c = collections.Counter(l.split('-')[0] for l in open(sys.argv[2]).read().split() if l.startswith('s'))
ok = len(acked) >= 5 and all(c[a] == 10 for a in acked) and all(v == 10 for v in c.values())
print('  acknowledged %d bulks, stored %d' % (len(acked), len(c)), file=sys.stderr)
sys.exit(0 if ok else 1)
PY
check "SIGTERM: database integrity ok" python3 -c '
import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); sys.exit(0 if c.execute("PRAGMA integrity_check").fetchone()[0]=="ok" else 1)' "$DB"

cli_finish cli_serve_items
