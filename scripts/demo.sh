#!/usr/bin/env bash
# demo.sh - the main job: build gaze, index the sample photos in data/photos, run a few
# searches (text, image, composed, re-ranked) and write an HTML gallery.
# Usage: scripts/demo.sh   (on a fresh Debian 12 machine: it installs what it needs through
#                           scripts/setup.sh, then builds)
# Model: $GAZE_MODEL if set (a model directory or a Hub id such as Salesforce/blip-itm-base-coco);
# else a runnable model already in the Hugging Face cache; else `gaze model pull
# openai/clip-vit-base-patch32`; else (no network) the tiny BLIP fixture model shipped in
# tests/data, whose weights are RANDOM.
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

# The model: $GAZE_MODEL; else a model of a supported family already in the Hugging Face cache
# (pulled by gaze or by transformers); else the smallest real model pulled now; else the tiny
# random-weight test model, with a loud note.
hub_cache=${HF_HUB_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}/hub}
cached_model() { # prints ORG/NAME of the first runnable cached model, BLIP first
    local pref snap cfg repo
    for pref in 'models--Salesforce--blip-itm-*' 'models--*'; do
        for snap in "$hub_cache"/$pref/snapshots/*/; do
            cfg=$snap/config.json
            [ -f "$cfg" ] || continue
            grep -Eq '"model_type": *"(blip|clip|chinese_clip)"' "$cfg" || continue
            ls "$snap" | grep -Eq '^(model\.safetensors|model\.safetensors\.index\.json|pytorch_model\.bin)$' || continue
            repo=${snap#"$hub_cache"/models--}
            repo=${repo%%/*}
            echo "${repo/--//}"
            return 0
        done
    done
    return 1
}
model=${GAZE_MODEL:-}
if [ -z "$model" ] && model=$(cached_model); then
    echo "== using $model from the Hugging Face cache ($hub_cache)"
fi
if [ -z "$model" ] && "$gaze" model --help >/dev/null 2>&1; then
    echo "== no model given or cached: pulling openai/clip-vit-base-patch32 (about 600 MB,"
    echo "   the smallest real model gaze runs) into $hub_cache"
    if "$gaze" model pull openai/clip-vit-base-patch32; then
        model=openai/clip-vit-base-patch32
    else
        echo "== could not pull it (no network?): going on with the test model"
    fi
fi
if [ -z "$model" ]; then
    model=tests/data/fixtures/blip_itm
    cat <<'EOF'

 ###########################################################################
 #  NOTE: no $GAZE_MODEL set, none in the Hugging Face cache and none could #
 #  be pulled, so this demo uses the TINY BLIP TEST MODEL from             #
 #  tests/data/fixtures/blip_itm. ITS WEIGHTS ARE RANDOM: the commands     #
 #  below all run for real, but the rankings are MEANINGLESS.              #
 #  For real results:  gaze model pull Salesforce/blip-itm-base-coco       #
 #             then:   GAZE_MODEL=Salesforce/blip-itm-base-coco scripts/demo.sh
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
