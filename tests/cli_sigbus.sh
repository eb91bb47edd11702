#!/usr/bin/env bash
# cli_sigbus.sh - a weights file truncated while gaze uses it (#15.9): the memory-mapped tensors
# vanish and the next read raises SIGBUS. gaze must stop with a clear message and exit 3 (a
# runtime error), not die by the signal, and the database must keep its last commit. The
# sequence is made deterministic with `gaze serve`: load the model with one request, truncate
# the weights, send a second request.
# Usage: bash tests/cli_sigbus.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"

M=$TMP/model
cp -r "$DATA/fixtures/blip_itm" "$M"
mkdir -p "$TMP/p"
cp "$DATA/photos/animal_cat_chelsea.png" "$DATA/photos/food_coffee.png" "$TMP/p/"
DB=$TMP/s.db
"$GAZE" index "$TMP/p" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index with the copied model" test $? -eq 0

serve_start S --db "$DB" --model "$M" --threads 1
check "server starts" test -n "${S_PORT:-}"
U=http://127.0.0.1:${S_PORT:-1}
out=$(http POST "$U/v1/embed" -d '{"texts": ["a cat"]}')
check "first embed answers 200" test "${out##*$'\n'}" = 200

truncate -s 0 "$M/model.safetensors"
http POST "$U/v1/embed" -d '{"texts": ["a dog on a beach"]}' >"$TMP/second.txt"
for _ in $(seq 100); do
    kill -0 "$S_PID" 2>/dev/null || break
    sleep 0.1
done
wait "$S_PID"
rc=$?
check "the server stops with exit 3, not by the signal (rc $rc)" test "$rc" -eq 3
check "... saying the weights were truncated" grep -q "was truncated or became unreadable" "$TMP/S.log"
check "the database passes its integrity check" python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
sys.exit(0 if c.execute("PRAGMA integrity_check").fetchone()[0] == "ok" else 1)' "$DB"
cli_finish cli_sigbus
