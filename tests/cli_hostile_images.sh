#!/usr/bin/env bash
# cli_hostile_images.sh - hostile image files through the real binary (issue #15): elongated
# pictures, decompression bombs, a sparse 2 GiB .jpg and a FIFO each fail their own file with
# a one-line reason naming it and the limit, in bounded memory; the run goes on (exit 1, the
# good photos indexed) and a second run does not stop at them either. FIFOs named as a query
# image, catalogue, eval set or weights file are refused at once. --rerank decodes one
# candidate at a time. A model whose vectors come out non-finite fails the files, not the run.
# Every hostile file is generated here (tests/hostile_images.py); all are tiny on disk.
# Usage: bash tests/cli_hostile_images.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
GEN=$(dirname "${BASH_SOURCE[0]}")/hostile_images.py
CLIP=$DATA/fixtures/clip
BLIP=$DATA/fixtures/blip_itm
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
expect() { # expect "what" FILE NAME VALUE
    local got
    got=$(field "$2" "$3" 2>/dev/null)
    if [ "$got" = "$4" ]; then ok; else bad "$1: $3 = '$got', want '$4'"; fi
}
# peak_mb FILE: "Maximum resident set size" of /usr/bin/time -v output, in MB
peak_mb() { sed -n 's/.*Maximum resident set size (kbytes): *//p' "$1" | awk '{print int($1 / 1024)}'; }
# Bounds on peak memory, generous (a run of the tiny fixture models peaks near 30 MB): each
# hostile file below would take 400 MB to 7 GB when decoded or resized as declared.
INDEX_MAX_MB=250
RERANK_MAX_MB=200
# Under AddressSanitizer freed blocks are held in a quarantine (256 MB by default), which
# would count as peak memory here: keep it small (no effect on a build without ASan).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"

P=$TMP/photos
mkdir -p "$P"
cp "$DATA/photos/animal_dog_corgi.jpg" "$DATA/photos/animal_cat_chelsea.png" "$P/"
python3 "$GEN" png 1 1000000 "$P/strip_1x1000000.png"   # 1:1,000,000, 3 KB
python3 "$GEN" jpeg 1 65500 "$P/strip_1x65500.jpg"      # 1:65,500, 2 KB
python3 "$GEN" gif 10000 10000 "$P/bomb_screen.gif"     # 100 MP screen, 1x1 frame, 35 bytes
truncate -s 2G "$P/sparse.jpg" && printf '\xff\xd8\xff\xe0' | dd of="$P/sparse.jpg" conv=notrunc status=none
mkfifo "$P/pipe.jpg"                                      # skipped by the scan, never opened
check "generated files are small on disk" test "$(du -sk "$P" | cut -f1)" -lt 2000

# 1. one run: the two photos encoded, each hostile file failed with its reason, exit 1
DB=$TMP/g.db
timeout 300 /usr/bin/time -v "$GAZE" index "$P" --db "$DB" --model "$CLIP" --json \
    >"$TMP/r1.json" 2>"$TMP/e1.txt"
rc=$?
check "index with hostile files exits 1 (partial), not 3 (fatal) or 124 (hang)" test $rc -eq 1
[ $rc -eq 1 ] || cat "$TMP/e1.txt" >&2
expect "hostile index" "$TMP/r1.json" encoded 2
expect "hostile index" "$TMP/r1.json" failed 4
check "1x1,000,000 PNG refused by the aspect limit, named" \
    grep -q "strip_1x1000000.png: image too elongated: 1x1000000, aspect ratio limit 1:100" "$TMP/e1.txt"
check "1x65500 JPEG refused by the aspect limit, named" \
    grep -q "strip_1x65500.jpg: image too elongated: 1x65500, aspect ratio limit 1:100" "$TMP/e1.txt"
check "35-byte GIF of 100 MP refused as a bomb" \
    grep -q "bomb_screen.gif: image too large: 10000x10000.*35-byte file.*decompression bomb" "$TMP/e1.txt"
check "sparse 2 GiB .jpg refused from its size, limit named" \
    grep -q "sparse.jpg: file too large for JPEG: 2147483648 bytes, limit 268435456" "$TMP/e1.txt"
check "the FIFO is not indexed" bash -c "! grep -q pipe.jpg '$TMP/e1.txt'"
mb=$(peak_mb "$TMP/e1.txt")
echo "index of the hostile folder: peak ${mb} MB"
check "index peak memory ${mb} MB <= $INDEX_MAX_MB MB" test "${mb:-99999}" -le $INDEX_MAX_MB

# 2. the next run is not blocked either: the failures are known, nothing is fatal
timeout 300 "$GAZE" index "$P" --db "$DB" --model "$CLIP" --json >"$TMP/r2.json" 2>"$TMP/e2.txt"
rc=$?
check "second run exits 0 or 1, not fatal" test $rc -le 1
expect "second run" "$TMP/r2.json" encoded 0

# 3. a photo within the aspect limit but far from square (1:90) is indexed: only the crop is resized
python3 "$GEN" png 90 8100 "$P/tall_ok.png"
timeout 300 "$GAZE" index "$P" --db "$DB" --model "$CLIP" --json >"$TMP/r3.json" 2>"$TMP/e3.txt"
expect "1:90 picture" "$TMP/r3.json" encoded 1

# 3b. HEIF grids: the grid's own output size is checked, not the 64x64 its 'ispe' declares
G=$TMP/heif
mkdir "$G"
python3 "$GEN" heif_grid 32000 32000 "$G/grid_huge.heic" # 1 G pixels, 3 GB if decoded
python3 "$GEN" heif_grid 15000 1000 "$G/grid_15mp.heic"   # over the 10 MP asked below
timeout 120 /usr/bin/time -v "$GAZE" index "$G" --db "$TMP/heif.db" --model "$CLIP" --max-megapixels 10 \
    --json >"$TMP/rh.json" 2>"$TMP/eh.txt"
rc=$?
check "HEIF grids: exit 1 (rc $rc)" test $rc -eq 1
check "HEIF grid of 32000x32000 refused from the grid's size" \
    grep -q "grid_huge.heic: image too large: 32000x32000" "$TMP/eh.txt"
check "HEIF grid of 15000x1000 refused by --max-megapixels 10" \
    grep -q "grid_15mp.heic: image too large: 15000x1000 = 15000000 pixels, limit 10000000" "$TMP/eh.txt"
mb=$(peak_mb "$TMP/eh.txt")
echo "index of the HEIF grids: peak ${mb} MB"
check "HEIF grids peak memory ${mb} MB <= $INDEX_MAX_MB MB" test "${mb:-99999}" -le $INDEX_MAX_MB

# 3c. TIFF, BMP and camera RAW (#12) are found by the scan and indexed; the same picture in
# TIFF and BMP gets the same vector
F=$TMP/formats
mkdir "$F"
python3 "$GEN" tiff 40 30 "$F/pic.tif"
python3 "$GEN" bmp 40 30 "$F/pic.bmp"
cp "$F/pic.tif" "$F/copy.TIFF"
python3 "$GEN" dng 64 48 "$F/sensor.dng" # camera RAW without a preview: half-size demosaic
head -c 300 "$F/sensor.dng" >"$F/cut.nef" # a RAW cut short: a clear error, nothing printed by LibRaw
timeout 120 "$GAZE" index "$F" --db "$TMP/formats.db" --model "$CLIP" --json >"$TMP/rf.json" 2>"$TMP/ef.txt"
rc=$?
check "TIFF, BMP, RAW index: exit 1 for the cut RAW (rc $rc)" test $rc -eq 1
expect "TIFF, BMP, RAW" "$TMP/rf.json" total 5
# copy.TIFF has the bytes of pic.tif: encoded once, its twin reuses the vector (#12.4)
expect "TIFF, BMP, RAW" "$TMP/rf.json" encoded 3
expect "TIFF, BMP, RAW" "$TMP/rf.json" reused 1
expect "TIFF, BMP, RAW" "$TMP/rf.json" failed 1
check "cut RAW named with the reason" grep -q "cut.nef: cannot decode RAW sensor data: truncated or corrupt file" "$TMP/ef.txt"
check "LibRaw prints nothing itself" bash -c "! grep -q 'Unexpected end of file' '$TMP/ef.txt'"
"$GAZE" search "x" --db "$TMP/formats.db" -k 10 --json >"$TMP/sf.jsonl" 2>/dev/null
check "the DNG is stored at its demosaiced size" grep -q '"path":"[^"]*sensor.dng".*"width":32,"height":24' "$TMP/sf.jsonl"
timeout 60 "$GAZE" embed --model "$CLIP" --image "$F/pic.tif" --image "$F/pic.bmp" >"$TMP/emb.jsonl" 2>/dev/null
check "TIFF and BMP of the same picture embed the same" python3 - "$TMP/emb.jsonl" <<'EOF2'
import json, sys
a, b = [json.loads(l)["embedding"] for l in open(sys.argv[1])]
sys.exit(0 if max(abs(x - y) for x, y in zip(a, b)) < 1e-6 else 1)
EOF2

# 4. FIFOs named directly: refused at once instead of blocking on open/read
mkfifo "$TMP/q.jpg" "$TMP/cat.jsonl" "$TMP/set.json"
timeout 20 "$GAZE" search --db "$DB" --image "$TMP/q.jpg" >/dev/null 2>"$TMP/e4.txt"
rc=$?
check "search --image FIFO does not hang (rc $rc)" test $rc -ne 124 -a $rc -ne 0
check "search --image FIFO: not a regular file" grep -q "q.jpg: not a regular file" "$TMP/e4.txt"
timeout 20 "$GAZE" add-texts "$TMP/cat.jsonl" --db "$DB" >/dev/null 2>"$TMP/e5.txt"
rc=$?
check "add-texts FIFO does not hang (rc $rc)" test $rc -ne 124 -a $rc -ne 0
timeout 20 "$GAZE" eval "$TMP/set.json" --model "$CLIP" -q >/dev/null 2>"$TMP/e6.txt"
rc=$?
check "eval FIFO does not hang (rc $rc)" test $rc -ne 124 -a $rc -ne 0
M=$TMP/fifo_model
mkdir "$M"
cp "$CLIP"/*.json "$CLIP/merges.txt" "$M/"
mkfifo "$M/model.safetensors"
timeout 20 "$GAZE" embed --model "$M" --text "a dog" >/dev/null 2>"$TMP/e7.txt"
rc=$?
check "weights FIFO does not hang (rc $rc)" test $rc -ne 124 -a $rc -ne 0

# 5. a model whose image vectors are not finite (NaN in the visual projection): every image
# fails with the reason, the run is partial (exit 1), not fatal
NM=$TMP/nan_model
mkdir "$NM"
cp "$CLIP"/*.json "$CLIP/merges.txt" "$NM/"
python3 - "$CLIP/model.safetensors" "$NM/model.safetensors" <<'EOF'
import json, struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
t = json.loads(b[8:8 + n])['visual_projection.weight']
lo, hi = t['data_offsets']
b[8 + n + lo:8 + n + hi] = struct.pack('<f', float('nan')) * ((hi - lo) // 4)
open(sys.argv[2], 'wb').write(b)
EOF
Q=$TMP/nan_photos
mkdir "$Q"
cp "$DATA/photos/animal_dog_corgi.jpg" "$Q/"
timeout 300 "$GAZE" index "$Q" --db "$TMP/nan.db" --model "$NM" --json >"$TMP/r8.json" 2>"$TMP/e8.txt"
rc=$?
check "non-finite vectors: exit 1, not fatal (rc $rc)" test $rc -eq 1
expect "non-finite vectors" "$TMP/r8.json" failed 1
check "non-finite vector named" grep -q "animal_dog_corgi.jpg:.*not finite" "$TMP/e8.txt"

# 6. --rerank 8 over eight 12 MP pictures (36 MB each decoded): one at a time, not all eight
R=$TMP/big
mkdir "$R"
for i in 1 2 3 4 5 6 7 8; do python3 "$GEN" png 3500 3500 "$R/big$i.png" "$i"; done
timeout 300 "$GAZE" index "$R" --db "$TMP/big.db" --model "$BLIP" --json >"$TMP/r9.json" 2>"$TMP/e9.txt"
expect "eight 12 MP pictures" "$TMP/r9.json" encoded 8
timeout 300 /usr/bin/time -v "$GAZE" search "a grey picture" --db "$TMP/big.db" --rerank 8 -k 8 \
    --json >"$TMP/s9.jsonl" 2>"$TMP/e10.txt"
rc=$?
check "search --rerank 8 exits 0 (rc $rc)" test $rc -eq 0
[ $rc -eq 0 ] || cat "$TMP/e10.txt" >&2
check "eight re-ranked results" test "$(grep -c itm_logit "$TMP/s9.jsonl")" -eq 8
mb=$(peak_mb "$TMP/e10.txt")
echo "search --rerank 8 over 8 x 12 MP: peak ${mb} MB"
check "rerank peak memory ${mb} MB <= $RERANK_MAX_MB MB" test "${mb:-99999}" -le $RERANK_MAX_MB

cli_finish cli_hostile_images
