#!/usr/bin/env bash
# cli_hostile_text.sh - hostile text-side inputs through the binary (issue #15): a CLIP text of
# one 1 MB word and a 10 MB field must finish (bounded by a timeout, not timed);
# hostile files are made here at test time.
# Usage: bash tests/cli_hostile_text.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
CLIP=$DATA/fixtures/clip

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

cli_finish cli_hostile_text
