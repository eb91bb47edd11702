#!/usr/bin/env bash
# cli_confine.sh - files named inside a catalogue or an eval set stay inside its folder
# (#15.10): a downloaded dataset must not make gaze read files elsewhere. add-texts does not
# link an image that resolves outside the record file's folder (".." or a symlink out: checked
# physically) and imports the text with a warning; gaze eval refuses absolute or climbing image
# paths and symlinks that lead outside (physically). --allow-outside allows both.
# Usage: bash tests/cli_confine.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
expect() { # expect "what" FILE NAME VALUE: NAME of the JSON object in FILE is VALUE
    local got
    got=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$2" "$3" 2>/dev/null)
    if [ "$got" = "$4" ]; then ok; else bad "$1: $3 = '$got', want '$4'"; fi
}

M=$DATA/fixtures/clip
mkdir -p "$TMP/cat/img" "$TMP/outside"
cp "$DATA/photos/food_coffee.png" "$TMP/cat/img/in.png"
cp "$DATA/photos/animal_cat_chelsea.png" "$TMP/outside/secret.png"
ln -s "$TMP/outside/secret.png" "$TMP/cat/img/link.png"
cat >"$TMP/cat/p.jsonl" <<J
{"id": "in", "text": "coffee", "photo": "img/in.png"}
{"id": "up", "text": "climbs out", "photo": "../outside/secret.png"}
{"id": "abs", "text": "absolute", "photo": "$TMP/outside/secret.png"}
{"id": "link", "text": "symlink out", "photo": "img/link.png"}
J
"$GAZE" add-texts "$TMP/cat/p.jsonl" --db "$TMP/a.db" --model "$M" --image-field photo --json \
    >"$TMP/a.json" 2>"$TMP/a.txt"
rc=$?
check "add-texts imports every row (rc $rc)" test $rc -eq 0
expect "confined" "$TMP/a.json" added 4
expect "confined" "$TMP/a.json" linked 1
for id in 2 3 4; do
    check "line $id: warned that the image is outside" grep -q "p.jsonl:$id: .*outside the catalogue's folder" "$TMP/a.txt"
done
"$GAZE" search "x" --db "$TMP/a.db" -k 10 --json >"$TMP/s.jsonl" 2>/dev/null
check "the outside photo was never indexed" bash -c '! grep -q secret.png "$1"' _ "$TMP/s.jsonl"

"$GAZE" add-texts "$TMP/cat/p.jsonl" --db "$TMP/b.db" --model "$M" --image-field photo --json \
    --allow-outside >"$TMP/b.json" 2>"$TMP/b.txt"
check "--allow-outside: exit 0" test $? -eq 0
expect "allowed" "$TMP/b.json" linked 4

# eval: an absolute image path in a downloaded set is refused; --allow-outside takes it
mkdir -p "$TMP/set/images"
cp "$DATA/photos/food_coffee.png" "$TMP/set/images/a.png"
printf '{"image": "images/a.png", "captions": ["coffee"]}\n{"image": "%s", "captions": ["a cat"]}\n' \
    "$TMP/outside/secret.png" >"$TMP/set/c.jsonl"
"$GAZE" eval "$TMP/set/c.jsonl" --model "$M" --quiet >"$TMP/e1.txt" 2>"$TMP/e1e.txt"
rc=$?
check "eval refuses an absolute image path (rc $rc)" test $rc -ne 0
check "... naming the entry and the rule" grep -q "absolute or leaves the dataset's folder" "$TMP/e1e.txt"
"$GAZE" eval "$TMP/set/c.jsonl" --model "$M" --quiet --allow-outside >"$TMP/e2.txt" 2>"$TMP/e2e.txt"
check "eval --allow-outside: exit 0" test $? -eq 0

# eval, physically (#15.10): a symlink inside the set's folder that leads outside, to a file or
# through a folder, is refused; one that stays inside is followed; --allow-outside takes both
ln -s "$TMP/outside/secret.png" "$TMP/set/images/link.png"
ln -s "$TMP/outside" "$TMP/set/elsewhere"
ln -s a.png "$TMP/set/images/alias.png"
printf '{"image": "images/a.png", "captions": ["coffee"]}\n{"image": "images/link.png", "captions": ["a cat"]}\n' \
    >"$TMP/set/l.jsonl"
printf '{"image": "images/a.png", "captions": ["coffee"]}\n{"image": "elsewhere/secret.png", "captions": ["a cat"]}\n' \
    >"$TMP/set/d.jsonl"
printf '{"image": "images/a.png", "captions": ["coffee"]}\n{"image": "images/alias.png", "captions": ["a cup"]}\n' \
    >"$TMP/set/i.jsonl"
for f in l d; do
    "$GAZE" eval "$TMP/set/$f.jsonl" --model "$M" --quiet >"$TMP/e$f.txt" 2>"$TMP/e${f}e.txt"
    rc=$?
    check "eval refuses a symlink out of the folder ($f.jsonl, rc $rc)" test $rc -ne 0
    check "... naming the entry and the link" grep -q "entry 2: image path .*outside the dataset's folder through a symbolic link" "$TMP/e${f}e.txt"
    "$GAZE" eval "$TMP/set/$f.jsonl" --model "$M" --quiet --allow-outside >"$TMP/e$f.txt" 2>"$TMP/e${f}e.txt"
    check "eval --allow-outside follows the link ($f.jsonl): exit 0" test $? -eq 0
done
"$GAZE" eval "$TMP/set/i.jsonl" --model "$M" --quiet >"$TMP/ei.txt" 2>"$TMP/eie.txt"
check "eval follows a symlink that stays inside: exit 0" test $? -eq 0
# the folder itself reached through "link/..": confinement is to where the kernel goes
mkdir -p "$TMP/outside/deep"
ln -s "$TMP/outside/deep" "$TMP/set/deeplink"
cp "$DATA/photos/food_coffee.png" "$TMP/outside/a.png"
printf '{"image": "a.png", "captions": ["coffee"]}\n{"image": "secret.png", "captions": ["a cat"]}\n' \
    >"$TMP/set/r.jsonl"
"$GAZE" eval "$TMP/set/r.jsonl" --model "$M" --quiet --image-root "$TMP/set/deeplink/.." \
    >"$TMP/er.txt" 2>"$TMP/ere.txt"
check "--image-root link/..: the physical folder (the link's parent) is the root: exit 0" test $? -eq 0
cli_finish cli_confine
