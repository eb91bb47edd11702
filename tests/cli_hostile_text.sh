#!/usr/bin/env bash
# cli_hostile_text.sh - hostile text-side inputs through the binary (issue #15): a CLIP text of
# one 1 MB word and a 10 MB field must finish (bounded by a timeout, not timed);
# hostile files are made here at test time.
# Usage: bash tests/cli_hostile_text.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
CLIP=$DATA/fixtures/clip
jfield() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# ---- 15.5: BPE work per word is O(n log n), tokenising stops at the model's max length ----
# Before the fix one 200 KB word took 10 s and 1 MB well over a minute (the merge loop rescanned
# the whole word once per distinct merge).
python3 - "$TMP/long.csv" <<'PY'
import random, sys
random.seed(15)  # random letters: many distinct merges, each one a pass over the word before
word = "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1024 * 1024))
field = "a dog runs on the beach, " * (10 * 1024 * 1024 // 25)
with open(sys.argv[1], "w") as f:
    f.write("id,text\nword," + word + '\nfield,"' + field + '"\n')
PY
timeout 60 "$GAZE" add-texts "$TMP/long.csv" --db "$TMP/long.db" --model "$CLIP" --json \
    >"$TMP/long.json" 2>"$TMP/long.err"
rc=$?
check "a 1 MB word and a 10 MB field are added within the timeout (rc $rc)" test "$rc" -eq 0
check "both long rows added" grep -q '"added": *2' "$TMP/long.json"

# ---- 15.9: sharded index de-duplication is O(n log n) ----
# 300k distinct shard names (none exists): the shard list was de-duplicated by a linear search
# per entry (80k entries took 8 s, 300k over a minute) before the first missing shard was noticed.
mkdir -p "$TMP/sharded"
for f in config.json tokenizer_config.json special_tokens_map.json vocab.json merges.txt \
    preprocessor_config.json; do cp "$CLIP/$f" "$TMP/sharded/"; done
python3 -c 'import json, sys; json.dump({"weight_map": {"t%d" % i: "s%d.safetensors" % i
    for i in range(300000)}}, open(sys.argv[1], "w"))' "$TMP/sharded/model.safetensors.index.json"
timeout 30 "$GAZE" embed --model "$TMP/sharded" --text "a cat" >/dev/null 2>"$TMP/sharded.err"
rc=$?
check "300k-entry weight_map: a clean error within the timeout (rc $rc)" test "$rc" -eq 3
check "the error names the missing shard" grep -q "s0.safetensors.*No such file" "$TMP/sharded.err"

# ---- 15.8: the model identity covers the weights ----
# M2 is M1 with one weight value changed (same shapes, same size): before the fix both had one
# fingerprint, so indexing with M2 kept M1's vectors and search mixed the two spaces.
mkdir -p "$TMP/m1" "$TMP/photos"
for f in config.json preprocessor_config.json tokenizer_config.json special_tokens_map.json \
    vocab.json merges.txt model.safetensors; do cp "$CLIP/$f" "$TMP/m1/"; done
cp -r "$TMP/m1" "$TMP/m2"
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(-1, 2); b = f.read(1); f.seek(-1, 2)
f.write(bytes([b[0] ^ 0x80]))' "$TMP/m2/model.safetensors"
cp "$DATA/photos/animal_cat_chelsea.png" "$DATA/photos/animal_dog_corgi.jpg" "$TMP/photos/"
"$GAZE" index "$TMP/photos" --db "$TMP/id.db" --model "$TMP/m1" --json >"$TMP/i1.json" 2>/dev/null
check "index with M1 encodes 2" test "$(jfield "$TMP/i1.json" encoded)" = 2
"$GAZE" index "$TMP/photos" --db "$TMP/id.db" --model "$TMP/m2" --json >"$TMP/i2.json" 2>/dev/null
check "index with M2 (other weights, same shapes) re-encodes 2" \
    test "$(jfield "$TMP/i2.json" encoded)" = 2
n_models=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from models").fetchone()[0])' "$TMP/id.db")
check "two models registered (got $n_models)" test "$n_models" = 2

# Migration: a database made before the fix holds M1 under its legacy (header-only) fingerprint,
# pinned in tests/test_model_load.c for the clip fixture. A reader finds it; the first writer
# adopts the row (no re-encoding) and stores the new fingerprint.
"$GAZE" index "$TMP/photos" --db "$TMP/old.db" --model "$TMP/m1" --quiet >/dev/null 2>&1
legacy=88f6d99c53dc9daa1b05876c631f5464
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); fp = c.execute("select fingerprint from models").fetchone()[0]
c.execute("update models set fingerprint = ?", (sys.argv[2],))
c.execute("update meta set key = ? where key = ?", ("preprocess." + sys.argv[2], "preprocess." + fp))
c.commit()' "$TMP/old.db" "$legacy"
"$GAZE" search "a cat" --db "$TMP/old.db" --model "$TMP/m1" --json >"$TMP/old_s.jsonl" 2>"$TMP/old_s.err"
check "search finds the legacy row's vectors" test "$(wc -l <"$TMP/old_s.jsonl")" = 2
"$GAZE" index "$TMP/photos" --db "$TMP/old.db" --model "$TMP/m1" --json >"$TMP/old_i.json" 2>/dev/null
check "index adopts the legacy row: nothing re-encoded" test "$(jfield "$TMP/old_i.json" encoded)" = 0
fp_now=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select group_concat(fingerprint) from models").fetchone()[0])' "$TMP/old.db")
check "the row now has the new fingerprint ($fp_now)" test "$fp_now" != "$legacy" -a "${#fp_now}" = 32

# ---- 15.10: a database file is input: its triggers never run inside gaze's writes ----
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("create trigger planted after insert on items begin insert or replace into meta values (\x27planted\x27, \x27fired\x27); end")
c.commit()' "$TMP/id.db"
cp "$DATA/photos/animal_kitten.webp" "$TMP/photos/"
"$GAZE" index "$TMP/photos" --db "$TMP/id.db" --model "$TMP/m2" --quiet >/dev/null 2>"$TMP/trig.err"
check "index of a database with a planted trigger works" test $? -eq 0
fired=$(python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from meta where key = \x27planted\x27").fetchone()[0])' "$TMP/id.db")
check "the planted trigger did not fire (rows: $fired)" test "$fired" = 0

# ---- 15.9: CSV memory is bounded; a NUL byte rejects its row ----
# 20 MB of commas in one data row (and a header of 3 fields): each comma was a cell of its own
# allocation, ~56x the file (1.1 GB). Peak memory must stay far below that (generous bound).
python3 -c 'import sys
open(sys.argv[1], "w").write("id,text,x\n1,a cat,y\n2," + "," * (20 << 20) + "\n3,a dog,z\n")' "$TMP/commas.csv"
/usr/bin/time -f "%M" -o "$TMP/commas.rss" timeout 120 "$GAZE" add-texts "$TMP/commas.csv" \
    --db "$TMP/commas.db" --model "$CLIP" --json >"$TMP/commas.json" 2>"$TMP/commas.err"
rc=$?
rss_kb=$(tail -n 1 "$TMP/commas.rss")
check "20 MB of commas: exit 1 (one bad row), got $rc" test "$rc" -eq 1
check "20 MB of commas: the good rows are added" test "$(jfield "$TMP/commas.json" added)" = 2
check "20 MB of commas: the row is reported by line" grep -q "commas.csv:3: expected 3 fields" "$TMP/commas.err"
check "20 MB of commas: peak RSS ${rss_kb} KB below 400 MB" test "$rss_kb" -lt 400000
# A NUL byte inside a field used to cut the field silently; now the row is refused as in JSONL.
printf 'id,text\n1,a cat\n2,a d\000og\n3,"quoted \000 nul"\n4,a bird\n' >"$TMP/nul.csv"
"$GAZE" add-texts "$TMP/nul.csv" --db "$TMP/nul.db" --model "$CLIP" --json >"$TMP/nul.json" 2>"$TMP/nul.err"
check "CSV with NUL bytes exits 1" test $? -eq 1
check "CSV NUL rows refused" test "$(jfield "$TMP/nul.json" failed)" = 2
check "CSV NUL row 3 reported" grep -q "nul.csv:3: field 'text' contains a NUL character" "$TMP/nul.err"
check "CSV NUL row 4 reported" grep -q "nul.csv:4: field 'text' contains a NUL character" "$TMP/nul.err"

# A header name after 2 MB of spaces: the names were trimmed one space per memmove (O(n^2),
# hours for this file); found by fuzz_records.
python3 -c 'import sys
open(sys.argv[1], "w").write("id," + " " * (2 << 20) + "text\n1,a cat\n")' "$TMP/spaces.csv"
timeout 30 "$GAZE" add-texts "$TMP/spaces.csv" --db "$TMP/spaces.db" --model "$CLIP" --json \
    >"$TMP/spaces.json" 2>/dev/null
rc=$?
check "a header name after 2 MB of spaces is trimmed within the timeout (rc $rc)" test "$rc" -eq 0

# ---- 15.9: huge sizes in config.json are refused, not overflowed ----
# image_size 2147483646 / patch_size 1: `gaze info` computed patches = side * side in int.
mkdir -p "$TMP/huge"
cp "$TMP/m1/"* "$TMP/huge/"
python3 -c 'import json, sys
c = json.load(open(sys.argv[1])); c["vision_config"]["image_size"] = 2147483646
c["vision_config"]["patch_size"] = 1; json.dump(c, open(sys.argv[1], "w"))' "$TMP/huge/config.json"
"$GAZE" info "$TMP/huge" >"$TMP/huge.out" 2>"$TMP/huge.err"
rc=$?
check "info on image_size 2147483646: a clean error (rc $rc)" test "$rc" -eq 3
check "info names the config and the limit" grep -q "config.json: vision image_size 2147483646 above the limit" "$TMP/huge.err"

cli_finish cli_hostile_text
