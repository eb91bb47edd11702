#!/usr/bin/env bash
# check_layout.sh - the include rules of the layout (issue #10), checked in CI.
#
#   cli/   is a client of the library: it includes only "gaze.h" (the public API) and its own
#          "cli/cli.h", never a layer's internal header; cmd_serve.c also the service's one
#          header "serve/serve.h" (serve/ is a program on gaze.h, like cli/).
#   serve/ includes only "gaze.h" and its own headers (serve/serve.h, serve/serve_internal.h).
#   core/  is the bottom layer: it never includes "gaze.h" (the API is built on core, not the
#          other way round; core/status.h holds what both share).
#
# Usage: scripts/check_layout.sh [ROOT]   (ROOT: the source tree, default this repository)
# Prints one line per violation, "FILE:LINE: includes X (rule)", and exits 1 if there is any.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# Folders whose headers are the project's (an #include <core/x.h> counts as well as "core/x.h").
project_dirs='core|text_encoder|vision_encoder|fusion|model|store|engine|eval|cli|serve|include'

bad=0
# Print "LINE<TAB>HEADER" for every #include of a quoted header or an angled project header.
includes() {
  awk -v dirs="$project_dirs" '
    match($0, /^[ \t]*#[ \t]*include[ \t]*"[^"]+"/) {
      s = substr($0, RSTART, RLENGTH); sub(/^[^"]*"/, "", s); sub(/"$/, "", s)
      print FNR "\t" s; next
    }
    match($0, /^[ \t]*#[ \t]*include[ \t]*<[^>]+>/) {
      s = substr($0, RSTART, RLENGTH); sub(/^[^<]*</, "", s); sub(/>$/, "", s)
      if (s == "gaze.h" || s ~ ("^(" dirs ")/")) print FNR "\t" s
    }' "$1"
}

shopt -s nullglob
for f in cli/*.c cli/*.h; do
  while IFS=$'\t' read -r line hdr; do
    case "$hdr" in
      gaze.h | cli/cli.h) ;;
      serve/serve.h) [ "$f" = cli/cmd_serve.c ] || {
        echo "$f:$line: includes \"$hdr\" (only cli/cmd_serve.c runs the service)"
        bad=1
      } ;;
      *)
        echo "$f:$line: includes \"$hdr\" (cli/ may include only \"gaze.h\" and \"cli/cli.h\")"
        bad=1
        ;;
    esac
  done < <(includes "$f")
done

for f in serve/*.c serve/*.h; do
  while IFS=$'\t' read -r line hdr; do
    case "$hdr" in
      gaze.h | serve/serve.h | serve/serve_internal.h) ;;
      *)
        echo "$f:$line: includes \"$hdr\" (serve/ may include only \"gaze.h\" and its own headers)"
        bad=1
        ;;
    esac
  done < <(includes "$f")
done

while IFS= read -r f; do
  while IFS=$'\t' read -r line hdr; do
    if [ "$hdr" = gaze.h ] || [ "$hdr" = include/gaze.h ]; then
      echo "$f:$line: includes \"$hdr\" (core/ is below the public API: use core/status.h)"
      bad=1
    fi
  done < <(includes "$f")
done < <(find core -type f \( -name '*.c' -o -name '*.h' \) | sort)

if [ "$bad" -ne 0 ]; then
  echo "check_layout: FAILED" >&2
  exit 1
fi
echo "check_layout: ok"
