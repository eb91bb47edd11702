#!/usr/bin/env bash
# install_check.sh - "cmake --install" into a temporary prefix gives a working gaze command, and
# a C program using include/gaze.h builds against libgaze.a through pkg-config and runs.
# Usage: install_check.sh BUILD_DIR [EXTRA_CFLAGS]   (the sanitizer build passes -fsanitize=...)
set -euo pipefail
build=$1
extra=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { if "$@"; then pass=$((pass + 1)); else echo "FAIL: $*" >&2; fail=$((fail + 1)); fi; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
check test -x "$tmp/prefix/bin/gaze"
check test -f "$tmp/prefix/lib/libgaze.a"
check test -f "$tmp/prefix/include/gaze/gaze.h"
check grep -q "^gaze " <("$tmp/prefix/bin/gaze" --version)
cat >"$tmp/use.c" <<'C'
#include <gaze.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    gz_model *m = NULL;
    gz_model_params p = gz_model_default_params();
    /* A missing folder must fail with a message naming it, through the installed library. */
    if (gz_model_load("/nonexistent-gaze-model", &p, &m) == GZ_OK) return 1;
    if (!strstr(gz_last_error(), "/nonexistent-gaze-model")) return 2;
    printf("%s\n", gz_version());
    return 0;
}
C
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
check cc -std=c11 $extra "$tmp/use.c" -o "$tmp/use" $(pkg-config --cflags --libs gaze)
check test "$("$tmp/use")" = "$("$tmp/prefix/bin/gaze" --version | awk '{print $2}')"
echo "install_check: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
