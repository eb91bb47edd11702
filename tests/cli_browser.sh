#!/usr/bin/env bash
# cli_browser.sh - the search page in a real browser (tests/browser/page.mjs: playwright-core
# driving Debian's chromium headless) against a `gaze serve` started here on loopback. The
# screenshot is kept as a test artifact: <build dir>/test-artifacts/serve-page.png.
# Needs node, chromium and tests/browser/node_modules (scripts/setup.sh installs them); a
# machine without them fails this test with that message rather than skipping it.
# Usage: bash tests/cli_browser.sh <gaze binary> <tests/data dir>
source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for need in node chromium; do
    command -v "$need" >/dev/null || { echo "FAIL: $need is not installed (run scripts/setup.sh)" >&2; exit 1; }
done
[ -d "$here/browser/node_modules/playwright-core" ] ||
    { echo "FAIL: tests/browser/node_modules is missing (run scripts/setup.sh, or npm ci in tests/browser)" >&2; exit 1; }

M=$DATA/fixtures/blip_itm
P=$TMP/photos
mkdir -p "$P"
for f in animal_cat_chelsea.png animal_dog_corgi.jpg animal_kitten.webp food_coffee.png \
    product_kettle.jpg scene_rocket_launchpad.jpg landmark_eiffel_tower.webp; do
    cp "$DATA/photos/$f" "$P/"
done
DB=$TMP/shop.db
"$GAZE" index "$P" --db "$DB" --model "$M" --quiet >/dev/null 2>"$TMP/e.txt"
check "index the photos" test $? -eq 0
echo "browser-key" >"$TMP/key"
serve_start A --db "$DB" --api-key-file "$TMP/key"
check "server starts" test -n "${A_PORT:-}"

artifacts=$(cd "$(dirname "$GAZE")" && pwd)/test-artifacts
mkdir -p "$artifacts"
rm -f "$artifacts/serve-page.png"
timeout 180 node "$here/browser/page.mjs" "http://127.0.0.1:${A_PORT:-1}" browser-key \
    "$P/product_kettle.jpg" "$artifacts/serve-page.png"
check "page checks in chromium" test $? -eq 0
check "screenshot kept: $artifacts/serve-page.png" bash -c '[ "$(head -c 4 "$1" | od -An -tx1 | tr -d " ")" = 89504e47 ]' _ "$artifacts/serve-page.png"
serve_stop "${A_PID:-0}"
check "server exits 0" test $? -eq 0
cli_finish cli_browser
