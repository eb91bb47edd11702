#!/usr/bin/env bash
# cli_exitcodes.sh - exit codes and usage errors of the gaze command (issue #12 items 11, 12):
# usage errors exit 2 (a missing --image file, an --add/--sub term that looks like a missing
# path, unless text: says it is words, a --model or a database that does not exist,
# --rerank that the model or the query cannot honour, 0 for --threads, an empty query, a
# huge -k, a non-SQLite --db without SQL in the message), runtime errors 3, partial failure 1;
# every command's --help states the codes; "did you mean" for a mistyped command or flag.
# Usage: bash tests/cli_exitcodes.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
export HF_HUB_CACHE=$TMP/hub HF_HUB_OFFLINE=1 # no id resolves: nothing is pulled
mkdir -p "$TMP/p" "$HF_HUB_CACHE"
cp "$DATA/photos/animal_dog_corgi.jpg" "$DATA/photos/food_coffee.png" "$TMP/p/"
CLIP=$DATA/fixtures/clip
BLIP=$DATA/fixtures/blip_itm
"$GAZE" index "$TMP/p" --db "$TMP/clip.db" --model "$CLIP" --quiet >/dev/null 2>&1
check "index (clip)" test $? -eq 0
"$GAZE" index "$TMP/p" --db "$TMP/blip.db" --model "$BLIP" --quiet >/dev/null 2>&1
check "index (blip)" test $? -eq 0

# expect CODE WHAT command...: the exit code, and stderr saved in $TMP/e.txt
expect() {
    local want=$1 what=$2
    shift 2
    "$@" >"$TMP/o.txt" 2>"$TMP/e.txt"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else bad "$what: exit $rc, want $want ($(head -c 300 "$TMP/e.txt"))"; fi
}
S=("$GAZE" search)
expect 2 "search --image of a missing file" "${S[@]}" --image "$TMP/nope.jpg" --db "$TMP/clip.db"
check "... names the file" grep -q "nope.jpg: no such file" "$TMP/e.txt"
expect 2 "search --model of a missing folder" "${S[@]}" dog --db "$TMP/clip.db" --model "$TMP/nomodel"
expect 2 "search --model of an id not in the cache" "${S[@]}" dog --db "$TMP/clip.db" --model org/none
check "... says how to get it" grep -q "gaze model pull org/none" "$TMP/e.txt"
expect 2 "search --rerank with a CLIP model" "${S[@]}" dog --db "$TMP/clip.db" --rerank 2
check "... names the flag and BLIP" grep -q -- "--rerank: .*BLIP" "$TMP/e.txt"
expect 2 "search --rerank with --image over images" "${S[@]}" --image "$TMP/p/food_coffee.png" --db "$TMP/blip.db" --rerank 2
check "... names the flag" grep -q -- "--rerank" "$TMP/e.txt"
expect 2 "search of a missing database" "${S[@]}" dog --db "$TMP/none.db"
check "... no database left behind" test ! -e "$TMP/none.db"
printf 'id,text\n1,not a database\n' >"$TMP/notdb.db"
expect 2 "search of a non-SQLite --db" "${S[@]}" dog --db "$TMP/notdb.db"
check "... says so without SQL" bash -c 'grep -q "not a gaze database" "$1" && ! grep -qiE "pragma|select|insert|sqlite_" "$1"' _ "$TMP/e.txt"
expect 2 "search of an empty query" "${S[@]}" "" --db "$TMP/clip.db"
expect 2 "search of a blank query" "${S[@]}" "   " --db "$TMP/clip.db"
expect 2 "search -k 2147483647" "${S[@]}" dog --db "$TMP/clip.db" -k 2147483647
check "... a usage message, not out of memory" bash -c '! grep -qi "memory" "$1" && grep -q -- "-k must be" "$1"' _ "$TMP/e.txt"
expect 2 "search -k 0" "${S[@]}" dog --db "$TMP/clip.db" -k 0
for t in 0 -1; do
    expect 2 "search --threads $t" "${S[@]}" dog --db "$TMP/clip.db" --threads "$t"
    expect 2 "embed --threads $t" "$GAZE" embed --model "$CLIP" --text x --threads "$t"
    expect 2 "match --threads $t" "$GAZE" match --model "$CLIP" --image "$TMP/p/food_coffee.png" --text x --threads "$t"
    expect 2 "eval --batch $t" "$GAZE" eval "$DATA/evalset/captions.jsonl" --model "$CLIP" --batch "$t"
    for flag in --batch --threads; do
        expect 2 "index $flag $t" "$GAZE" index "$TMP/p" --db "$TMP/zero.db" --model "$CLIP" $flag "$t"
        expect 2 "add-texts $flag $t" "$GAZE" add-texts "$DATA/evalset/captions.jsonl" --db "$TMP/zero.db" --model "$CLIP" $flag "$t"
    done
done
check "index/add-texts with a 0 count created no database" test ! -e "$TMP/zero.db"
expect 0 "search --threads 1 works" "${S[@]}" dog --db "$TMP/clip.db" --threads 1
expect 2 "embed --image of a missing file" "$GAZE" embed --model "$CLIP" --image "$TMP/nope.jpg"
expect 2 "match --image of a missing file" "$GAZE" match --model "$CLIP" --image "$TMP/nope.jpg" --text x
expect 2 "embed --model of a missing folder" "$GAZE" embed --model "$TMP/nomodel" --text x
expect 2 "match --itm with a CLIP model" "$GAZE" match --model "$CLIP" --image "$TMP/p/food_coffee.png" --text x --itm

# --add/--sub: a term that looks like a path and does not exist is an error, not words
expect 2 "--add of a missing path with a slash" "${S[@]}" dog --db "$TMP/clip.db" --add "$TMP/p/snow_dog.jpg"
check "... names the term and the text: way out" grep -q "snow_dog.jpg: no such file (to search for these words, write text:" "$TMP/e.txt"
expect 2 "--sub of a missing file name with an image extension" "${S[@]}" dog --db "$TMP/clip.db" --sub 0.5:grass.PNG
expect 2 "--add image: of a missing file" "${S[@]}" dog --db "$TMP/clip.db" --add image:cat
expect 2 "--add text: with nothing after it" "${S[@]}" dog --db "$TMP/clip.db" --add text:
expect 0 "--add text: makes a path-looking term words" "${S[@]}" dog --db "$TMP/clip.db" --add text:AC/DC.jpg
expect 0 "--add of plain words" "${S[@]}" dog --db "$TMP/clip.db" --add snow --sub 0.5:grass
J=("${S[@]}" dog --db "$TMP/clip.db" --json)
"${J[@]}" --add "$TMP/p/food_coffee.png" >"$TMP/a1.jsonl" 2>/dev/null
"${J[@]}" --add "image:$TMP/p/food_coffee.png" >"$TMP/a2.jsonl" 2>/dev/null
check "--add image:FILE is --add FILE" bash -c 'test -s "$1" && cmp -s "$1" "$2"' _ "$TMP/a1.jsonl" "$TMP/a2.jsonl"
"${J[@]}" --add 0.5:snow >"$TMP/t1.jsonl" 2>/dev/null
"${J[@]}" --add 0.5:text:snow >"$TMP/t2.jsonl" 2>/dev/null
"${J[@]}" --add 0.5:image:"$TMP/p/food_coffee.png" >"$TMP/t3.jsonl" 2>/dev/null
check "--add W:text:Q is --add W:Q for words" bash -c 'test -s "$1" && cmp -s "$1" "$2"' _ "$TMP/t1.jsonl" "$TMP/t2.jsonl"
check "... and differs from an image term" bash -c '! cmp -s "$1" "$2"' _ "$TMP/t1.jsonl" "$TMP/t3.jsonl"

# runtime errors: 3; partial failure: 1
printf 'this is not a JPEG' >"$TMP/fake.jpg"
expect 3 "search --image of a file that does not decode" "${S[@]}" --image "$TMP/fake.jpg" --db "$TMP/clip.db"
expect 3 "search whose terms cancel out" "${S[@]}" dog --sub dog --db "$TMP/clip.db"
mkdir -p "$TMP/q"
cp "$TMP/p/food_coffee.png" "$TMP/fake.jpg" "$TMP/q/"
expect 1 "index with one broken file" "$GAZE" index "$TMP/q" --db "$TMP/q.db" --model "$CLIP" --quiet

# did you mean
expect 2 "mistyped command" "$GAZE" serach dog
check "... did you mean 'search'" grep -q "unknown command 'serach'; did you mean 'search'?" "$TMP/e.txt"
expect 2 "mistyped flag" "${S[@]}" dog --db "$TMP/clip.db" --tread 2
check "... did you mean '--threads'" grep -q "did you mean '--threads'?" "$TMP/e.txt"
expect 2 "mistyped flag with a value" "${S[@]}" dog --db="$TMP/clip.db" --jsn
check "... did you mean '--json'" grep -q "did you mean '--json'?" "$TMP/e.txt"
expect 2 "unrelated command" "$GAZE" xyzzyplugh
check "... no suggestion" bash -c '! grep -q "did you mean" "$1"' _ "$TMP/e.txt"

# every command's --help states the exit codes (the one shared text)
for c in index search add-texts match embed tokenize info eval model; do
    "$GAZE" "$c" --help >"$TMP/h.txt" 2>&1
    check "$c --help exits 0" test $? -eq 0
    check "$c --help states the exit codes" grep -q "^exit status: 0 ok, 1 partial.*2 usage error" "$TMP/h.txt"
    check "$c --help states 130" grep -q "130 interrupted" "$TMP/h.txt"
done
"$GAZE" --help >"$TMP/h.txt" 2>&1
check "gaze --help states the exit codes" grep -q "130 interrupted" "$TMP/h.txt"
cli_finish cli_exitcodes
