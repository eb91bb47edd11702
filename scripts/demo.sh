#!/usr/bin/env bash
# demo.sh - the main job: build gaze, index the sample photos in data/photos, run a few
# searches (text, image, composed, re-ranked) and write an HTML gallery.
# Usage: scripts/demo.sh   (on a fresh Debian 12 machine: it installs what it needs through
#                           scripts/setup.sh, then builds)
# Model: $GAZE_MODEL if set (a Hugging Face model directory, e.g. Salesforce/blip-itm-base-coco
# downloaded with its config.json, model.safetensors, vocab and preprocessor files); otherwise
# the tiny BLIP fixture model shipped in tests/data, whose weights are RANDOM.
# Environment: GAZE_BUILD_DIR (default build), GAZE_DEMO_DIR (default $GAZE_BUILD_DIR/demo).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${GAZE_BUILD_DIR:-build}
out=${GAZE_DEMO_DIR:-$build/demo}

bash scripts/setup.sh
echo "== building gaze ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target gaze >/dev/null
gaze=$build/gaze
"$gaze" --version

model=${GAZE_MODEL:-}
if [ -z "$model" ]; then
    model=tests/data/fixtures/blip_itm
    cat <<'EOF'

 ###########################################################################
 #  NOTE: no $GAZE_MODEL set, so this demo uses the TINY BLIP TEST MODEL   #
 #  from tests/data/fixtures/blip_itm. ITS WEIGHTS ARE RANDOM: the         #
 #  commands below all run for real, but the rankings are MEANINGLESS.     #
 #  For real results:  GAZE_MODEL=/path/to/blip-itm-base-coco scripts/demo.sh
 ###########################################################################

EOF
fi

mkdir -p "$out"
db=$out/demo.db
rm -f "$db" "$db"-* "$db".*

echo "== gaze info $model"
"$gaze" info "$model"

echo
echo "== gaze index data/photos"
"$gaze" index data/photos --db "$db" --model "$model"
echo
echo "== indexing again: nothing changed, nothing re-encoded"
"$gaze" index data/photos --db "$db" --quiet

for q in "a cat" "a rocket on the launch pad" "two dogs looking out of a window" "a cup of coffee"; do
    echo
    echo "== gaze search \"$q\" -k 3"
    "$gaze" search "$q" --db "$db" -k 3
done

echo
echo "== image -> image: gaze search --image data/photos/animal_kitten.webp -k 3"
"$gaze" search --image data/photos/animal_kitten.webp --db "$db" -k 3

echo
echo "== composed: \"an animal\" + toucan photo - \"a cat\""
"$gaze" search "an animal" --add data/photos/animal_toucan.webp --sub "a cat" --db "$db" -k 3

if "$gaze" info "$model" --json | grep -q '"has_itm":true'; then
    echo
    echo "== re-ranked with BLIP ITM: gaze search \"a cat\" --rerank 8 -k 3"
    "$gaze" search "a cat" --db "$db" --rerank 8 -k 3
fi

echo
echo "== JSON lines: gaze search \"a tower\" -k 2 --json"
"$gaze" search "a tower" --db "$db" -k 2 --json

"$gaze" search "a cat" --db "$db" -k 8 --html "$out/gallery.html" --quiet
echo
echo "== gallery written to $out/gallery.html (open it in a browser)"
echo "== database: $db"
"$gaze" info --db "$db"
