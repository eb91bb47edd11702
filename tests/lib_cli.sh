# lib_cli.sh - the common preamble of the tests/cli_*.sh end-to-end scripts. Sourced, not run
# (and not named cli_*.sh, so ctest does not pick it up as a test):
#     source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
# From the script's arguments <gaze binary> <tests/data dir> it sets GAZE and DATA; TMP is a
# fresh temporary folder removed on exit; ok/bad/check count passes and failures, and
# `cli_finish NAME`, the script's last command, prints "NAME: N passed, M failed" and returns
# non-zero when anything failed (so the script exits non-zero).
set -u
GAZE=$1
DATA=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then ok; else bad "$what"; fi
}
cli_finish() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
