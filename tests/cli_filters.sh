#!/usr/bin/env bash
# cli_filters.sh - search filters through the binary (#12): --taken-after/--taken-before (EXIF
# capture time, else the file's mtime), --in FOLDER, --format, --min-width/--min-height. Each
# filtered -k answer is checked against brute force: every image's score from an unfiltered
# search of the whole library, filtered here, must give the same items and scores in order.
# Usage: bash tests/cli_filters.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
M=$(cd "$DATA/fixtures/blip_itm" && pwd)
P=$DATA/photos
GAZE_ABS=$(cd "$(dirname "$GAZE")" && pwd)/$(basename "$GAZE") # for commands run elsewhere
export TZ=UTC # mtimes are compared as local time: make local time UTC for this run

L=$TMP/lib
mkdir -p "$L/a/deep" "$L/b" "$L/ab"
# EXIF capture dates: cups 2014-04-29, storm 2008-04-20; the others fall back to their mtime
cp "$P/product_colorful_cups_progressive.jpg" "$P/animal_cat_chelsea.png" "$L/a/"
cp "$P/scene_storm_canon_exif.jpg" "$P/animal_kitten.webp" "$L/a/deep/"
cp "$P/cmyk_pil_sample.jpg" "$P/food_coffee.png" "$P/people_hopper.gif" "$L/b/"
cp "$P/animal_dog_corgi.jpg" "$P/landmark_merlion.png" "$P/product_kettle.jpg" "$L/ab/"
cp "$P/scene_rocket_launchpad.jpg" "$P/animal_toucan.webp" "$L/"
touch -d "2005-01-01 10:00:00" "$L/a/animal_cat_chelsea.png" "$L/b/food_coffee.png"
touch -d "2012-03-03 12:00:00" "$L/a/deep/animal_kitten.webp" "$L/ab/animal_dog_corgi.jpg" \
    "$L/b/cmyk_pil_sample.jpg"
touch -d "2020-05-01 08:30:00" "$L/b/people_hopper.gif" "$L/ab/landmark_merlion.png" \
    "$L/ab/product_kettle.jpg" "$L/scene_rocket_launchpad.jpg" "$L/animal_toucan.webp"
# EXIF wins over mtime: the dated files get an mtime that would say otherwise
touch -d "2021-01-01 00:00:00" "$L/a/product_colorful_cups_progressive.jpg" \
    "$L/a/deep/scene_storm_canon_exif.jpg"
DB=$TMP/f.db
"$GAZE" index "$L" --db "$DB" --model "$M" -q >/dev/null 2>&1
check "index the library" test "$("$GAZE" search "a photo" --db "$DB" -k 1000 --json 2>/dev/null | grep -c '^{')" -eq 12
"$GAZE" search "a red cup" --db "$DB" -k 1000 --json >"$TMP/all.jsonl" 2>/dev/null

# brute NAME K FILTER-SPEC -- gaze flags: the filtered -k answer equals the brute-force one
brute() {
    local name=$1 k=$2 spec=$3
    shift 3
    "$GAZE" search "a red cup" --db "$DB" -k "$k" --json "$@" >"$TMP/got.jsonl" 2>"$TMP/err.txt"
    local rc=$?
    if [ $rc -ne 0 ]; then
        bad "$name: exit $rc: $(cat "$TMP/err.txt")"
        return
    fi
    check "$name" python3 - "$TMP/all.jsonl" "$TMP/got.jsonl" "$k" "$spec" <<'EOF'
import json, os, sys, time
allr = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
k, spec = int(sys.argv[3]), json.loads(sys.argv[4])
def taken(r):
    t = r.get('taken_at')
    if t: return t
    return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.stat(r['path']).st_mtime))
def ext(r): return r['path'].rsplit('.', 1)[1].lower()
def passes(r):
    if 'after' in spec and taken(r) < spec['after']: return False
    if 'before' in spec and taken(r) >= spec['before']: return False
    if 'in' in spec and not (r['path'] + '/').startswith(spec['in'].rstrip('/') + '/'): return False
    if 'exts' in spec and ext(r) not in spec['exts']: return False
    if r['width'] < spec.get('min_width', 0) or r['height'] < spec.get('min_height', 0): return False
    return True
want = [(r['path'], r['score']) for r in allr if passes(r)][:k]
have = [(r['path'], r['score']) for r in got]
# the filter must drop something from the unfiltered top k, else the check proves little
unfiltered = [r['path'] for r in allr[:k]]
if want != have or not want or [p for p, _ in want] == unfiltered:
    print('want', want, '\nhave', have, '\nunfiltered top', unfiltered, file=sys.stderr)
    sys.exit(1)
EOF
}
brute "--taken-after (EXIF, else mtime)" 3 '{"after": "2010-01-01 00:00:00"}' --taken-after 2010-01-01
brute "--taken-before (EXIF, else mtime)" 3 '{"before": "2008-04-20 19:12:06"}' --taken-before 2008-04-20T19:12:06
brute "--taken-after with a time" 2 '{"after": "2012-03-03 12:00:01"}' --taken-after 2012-03-03T12:00:01
brute "a date range" 4 '{"after": "2008-01-01 00:00:00", "before": "2016-01-01 00:00:00"}' \
    --taken-after 2008-01-01 --taken-before "2016-01-01 00:00:00"
brute "--in a folder (not its sibling 'ab')" 2 "{\"in\": \"$L/a\"}" --in "$L/a"
brute "--in with a trailing slash" 3 "{\"in\": \"$L/b\"}" --in "$L/b/"
brute "--format png" 2 '{"exts": ["png"]}' --format png
brute "--format jpeg,webp (jpg is jpeg)" 5 '{"exts": ["jpg", "webp"]}' --format jpeg,webp
brute "--format JPG (case, alias)" 3 '{"exts": ["jpg"]}' --format JPG
brute "--min-width/--min-height" 3 '{"min_width": 500, "min_height": 400}' --min-width 500 --min-height 400
brute "-k 1 over-fetches until one passes" 1 '{"exts": ["gif"]}' --format gif
brute "all filters together" 3 "{\"in\": \"$L\", \"after\": \"2004-01-01 00:00:00\", \"exts\": [\"jpg\", \"png\"], \"min_width\": 500}" \
    --in "$L" --taken-after 2004-01-01 --format jpeg,png --min-width 500

# a relative --in resolves against the working folder, as index roots do
(cd "$L" && "$GAZE_ABS" search "a red cup" --db "$DB" -k 100 --json --in ab) >"$TMP/rel.jsonl" 2>/dev/null
check "relative --in" python3 -c '
import json, sys
p = [json.loads(l)["path"] for l in open(sys.argv[1])]
sys.exit(0 if len(p) == 3 and all(x.startswith(sys.argv[2] + "/") for x in p) else 1)' "$TMP/rel.jsonl" "$L/ab"
# the mtime fallback and EXIF precedence, named
"$GAZE" search "a red cup" --db "$DB" -k 100 --paths --taken-before 2006-01-01 >"$TMP/old.txt" 2>/dev/null
check "mtime fallback: the two 2005 files, and no EXIF-dated file" \
    test "$(sed 's|.*/||' "$TMP/old.txt" | sort | tr '\n' ' ')" = "animal_cat_chelsea.png food_coffee.png "
"$GAZE" search "a red cup" --db "$DB" -k 100 --paths --taken-after 2020-12-31 >"$TMP/new.txt" 2>/dev/null
check "EXIF beats a later mtime" test ! -s "$TMP/new.txt"
# nothing passes: no results, not an error
"$GAZE" search "a red cup" --db "$DB" --min-width 100000 >/dev/null 2>"$TMP/e.txt"
check "a filter nothing passes exits 0" test $? -eq 0
check "... and says no results" grep -q "no results" "$TMP/e.txt"

# bad input: usage errors (exit 2) naming the flag and the accepted forms; nothing changes
cp "$DB" "$TMP/before.db"
for d in 2024-13-01 2024-02-30 24-01-01 2024-01-01T25:00:00 "2024-01-01 10:00" yesterday ""; do
    "$GAZE" search "a red cup" --db "$DB" --taken-after "$d" >/dev/null 2>"$TMP/e.txt"
    check "malformed date '$d' is a usage error" test $? -eq 2
    check "... naming the flag and the forms" grep -q -- "--taken-after: .*YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS" "$TMP/e.txt"
done
"$GAZE" search "a red cup" --db "$DB" --taken-before 2023-02-29 >/dev/null 2>"$TMP/e.txt"
check "2023-02-29 (not a leap year) refused" test $? -eq 2
check "... naming --taken-before" grep -q -- "--taken-before:" "$TMP/e.txt"
"$GAZE" search "a red cup" --db "$DB" --taken-before 2024-02-29 >/dev/null 2>&1
check "2024-02-29 (a leap year) accepted" test $? -eq 0
"$GAZE" search "a red cup" --db "$DB" --taken-after 2024-05-01 --taken-before 2024-05-01 >/dev/null 2>"$TMP/e.txt"
check "an empty date range is a usage error" test $? -eq 2
check "... saying why" grep -q "no image can pass both" "$TMP/e.txt"
"$GAZE" search "a red cup" --db "$DB" --in "" >/dev/null 2>&1
check "--in '' refused" test $? -eq 2
"$GAZE" search "a red cup" --db "$DB" --format jpeg,bmpx >/dev/null 2>"$TMP/e.txt"
check "unknown --format is a usage error" test $? -eq 2
check "... naming it and the known ones" grep -q -- "--format: unknown image format 'bmpx' (known: jpeg" "$TMP/e.txt"
"$GAZE" search "a red cup" --db "$DB" --min-width -1 >/dev/null 2>&1
check "negative --min-width refused" test $? -eq 2
"$GAZE" search "a red cup" --db "$DB" --texts --in "$L" >/dev/null 2>"$TMP/e.txt"
check "image filters with --texts refused" test $? -eq 2
"$GAZE" search "a red cup" --db "$DB" --in "$TMP/nowhere" >/dev/null 2>"$TMP/e.txt"
check "--in a missing folder: exit 0 with a warning" test $? -eq 0
check "... the warning names it" grep -q "nowhere does not exist" "$TMP/e.txt"
check "bad flags left the database as it was" cmp -s "$DB" "$TMP/before.db"

cli_finish cli_filters
