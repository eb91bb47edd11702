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

cli_finish cli_hostile_text
