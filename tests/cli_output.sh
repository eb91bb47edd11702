#!/usr/bin/env bash
# cli_output.sh - search output for people and for other tools (issue #12 items 10, 12 and
# #15.9): --paths -0 with names that break line-based pipes, gallery links URL-encoded
# ("party #1 100%.png"), files deleted since indexing marked, terminal escapes in paths
# and texts shown escaped (tables and messages), CJK / emoji / combining text aligned by
# display width, eval recalls as percentages, singular counts.
# Usage: bash tests/cli_output.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
M=$DATA/fixtures/clip
P=$TMP/photos
mkdir -p "$P"
ESC=$'\e'
BEL=$'\a'
cp "$DATA/photos/animal_dog_corgi.jpg" "$P/party #1 100%.png.jpg"
cp "$DATA/photos/food_coffee.png" "$P/two
lines.png"
cp "$DATA/photos/animal_cat_chelsea.png" "$P/evil${ESC}[31mred${ESC}]0;title${BEL}.png"
cp "$DATA/photos/product_kettle.jpg" "$P/kettle.jpg"
cp "$DATA/photos/animal_kitten.webp" "$P/gone.webp"
DB=$TMP/o.db
"$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index names with spaces, '#', '%', newline and escapes" test $? -eq 0
rm "$P/gone.webp"

# ---- --paths -0: every existing result once, NUL-terminated; the deleted one left out ----
"$GAZE" search "a photo" --db "$DB" -k 10 --paths -0 >"$TMP/p0.bin" 2>"$TMP/e.txt"
check "--paths -0 exits 0" test $? -eq 0
check "--paths -0 gives the 4 existing files, NUL-separated, names intact" python3 - "$TMP/p0.bin" "$P" <<'PY'
import os, sys
data = open(sys.argv[1], 'rb').read()
names = data.split(b'\0')
ok = data.endswith(b'\0') and names[-1] == b''
got = sorted(os.path.basename(n).decode() for n in names[:-1])
want = sorted(f for f in os.listdir(sys.argv[2]))
ok &= got == want and len(got) == 4 and all(os.path.isfile(n) for n in names[:-1])
if not ok: print('  got', got, 'want', want, file=sys.stderr)
sys.exit(0 if ok else 1)
PY
check "--paths says a deleted result was left out" grep -q "1 result left out: deleted since indexed" "$TMP/e.txt"
"$GAZE" search "a photo" --db "$DB" -0 >/dev/null 2>&1
check "-0 without --paths is a usage error" test $? -eq 2

# ---- table: deleted marked; escapes escaped; JSON exists ----
"$GAZE" search "a photo" --db "$DB" -k 10 >"$TMP/t.txt" 2>&1
check "table exits 0" test $? -eq 0
check "the deleted file is marked in the table" grep -q "gone.webp (deleted)$" "$TMP/t.txt"
check "no raw escape or BEL byte reaches the terminal" python3 -c '
import sys; d = open(sys.argv[1], "rb").read(); sys.exit(0 if b"\x1b" not in d and b"\x07" not in d else 1)' "$TMP/t.txt"
check "the escape is shown as \\x1b" grep -qF 'evil\x1b[31mred\x1b]0;title\x07.png' "$TMP/t.txt"
check "a newline in a name is shown as \\n (one row per result)" grep -qF 'two\nlines.png' "$TMP/t.txt"
check "table: a header and 5 rows" test "$(wc -l <"$TMP/t.txt")" -eq 6
"$GAZE" search "a photo" --db "$DB" -k 10 --json >"$TMP/j.jsonl" 2>/dev/null
check "JSON says which files exist" python3 - "$TMP/j.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ex = {r['path'].rsplit('/', 1)[-1]: r['exists'] for r in rows}
sys.exit(0 if len(rows) == 5 and ex.pop('gone.webp') is False and all(ex.values()) else 1)
PY
# messages escape too: a file name with an escape sequence in an error
"$GAZE" search --image "$TMP/no${ESC}[2Jsuch.jpg" --db "$DB" >/dev/null 2>"$TMP/e.txt"
check "an error naming a file with escapes: exit 2" test $? -eq 2
check "... and the message is escaped" bash -c 'grep -qF "no\x1b[2Jsuch.jpg" "$1" && ! grep -q $'"'"'\e'"'"' "$1"' _ "$TMP/e.txt"

"$GAZE" tokenize --model "$M" "red${ESC}[2Jcar" >"$TMP/tok.txt" 2>&1
check "tokenize echoes its text escaped" bash -c 'grep -qF "red\x1b[2Jcar" "$1" && ! grep -q $'"'"'\e'"'"' "$1"' _ "$TMP/tok.txt"

# ---- HTML gallery: links percent-encoded, so '#' and '%' stay in the file name ----
"$GAZE" search "a photo" --db "$DB" -k 10 --html "$TMP/g.html" --quiet 2>/dev/null
check "--html exits 0" test $? -eq 0
check "gallery links decode to the very files" python3 - "$TMP/g.html" "$P" <<'PY'
import html, os, re, sys, urllib.parse
page = open(sys.argv[1], encoding='utf-8').read()
hrefs = [html.unescape(h) for h in re.findall(r'<a href="([^"]*)"', page)]
ok = len(hrefs) == 5
for h in hrefs:
    u = urllib.parse.urlsplit(h)
    path = urllib.parse.unquote(u.path)
    ok &= u.scheme == 'file' and u.fragment == '' and u.query == ''
    ok &= os.path.isfile(path) or path.endswith('/gone.webp')
ok &= any('%231%20100%25' in h for h in hrefs)
if not ok: print('  hrefs', hrefs, file=sys.stderr)
sys.exit(0 if ok else 1)
PY

# ---- display width: CJK, emoji and combining marks in a padded column ----
cat >"$TMP/t.jsonl" <<'EOF2'
{"id": "日本語", "text": "one"}
{"id": "☕☕", "text": "two"}
{"id": "กิ้น", "text": "three"}
{"id": "plain", "text": "four"}
EOF2
"$GAZE" add-texts "$TMP/t.jsonl" --db "$DB" --quiet >/dev/null 2>&1
"$GAZE" search --texts "x" --db "$DB" -k 4 >"$TMP/w.txt" 2>/dev/null
check "texts table exits 0 with 4 rows" test "$(wc -l <"$TMP/w.txt")" -eq 5
check "the text column starts at the same display column in every row" python3 - "$TMP/w.txt" <<'PY'
import sys, unicodedata
def width(s):
    w = 0
    for ch in s:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ('Mn', 'Me', 'Cf'):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ('W', 'F') else 1
    return w
cols = set()
for line in open(sys.argv[1], encoding='utf-8').read().splitlines()[1:]:
    word = line.split()[-1]          # the text: one, two, three, four
    cols.add(width(line[:line.rindex(word)]))
if len(cols) != 1: print('  text columns start at', sorted(cols), file=sys.stderr)
sys.exit(0 if len(cols) == 1 else 1)
PY

# ---- eval: recalls as percentages ----
"$GAZE" eval "$DATA/evalset/captions.jsonl" --model "$M" -q >"$TMP/ev.txt" 2>/dev/null
check "eval recalls carry %" python3 -c '
import sys; row = [l for l in open(sys.argv[1]) if l.startswith("itc ")]
sys.exit(0 if len(row) == 1 and all(c.endswith("%") for c in row[0].split()[1:]) else 1)' "$TMP/ev.txt"

# ---- singular counts ----
"$GAZE" search "a photo" --db "$DB" -k 1 --html "$TMP/one.html" 2>"$TMP/e.txt" >/dev/null
check "\"1 result\", not \"1 results\"" grep -q "(1 result)$" "$TMP/e.txt"
cli_finish cli_output
