# lib_cli.sh - the common preamble of the tests/cli_*.sh end-to-end scripts. Sourced, not run
# (and not named cli_*.sh, so ctest does not pick it up as a test):
#     source "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh" "$@"
# From the script's arguments <gaze binary> <tests/data dir> it sets GAZE and DATA; TMP is a
# fresh temporary folder removed on exit; ok/bad/check count passes and failures, and
# `cli_finish NAME`, the script's last command, prints "NAME: N passed, M failed" and returns
# non-zero when anything failed or when no check ran at all (so the script exits non-zero).
# A script that would exit 0 without reaching cli_finish (a stray `exit 0`, a forgotten
# cli_finish) is made to fail on exit too: a suite passes only by saying so.
set -u
GAZE=$1
DATA=$2
TMP=$(mktemp -d)
# gaze caches the weights' content hashes in $XDG_CACHE_HOME/gaze: this run's, not the user's
export XDG_CACHE_HOME=$TMP/xdg-cache
pass=0
fail=0
cli_finished=0
cli_on_exit() {
    local rc=$?
    rm -rf "$TMP"
    if [ "$rc" -eq 0 ] && [ "$cli_finished" -eq 0 ]; then
        echo "FAIL: ${BASH_SOURCE[-1]##*/} ended without cli_finish ($pass passed, $fail failed)" >&2
        exit 1
    fi
}
trap cli_on_exit EXIT
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # check "what" command...
    local what=$1
    shift
    if "$@"; then ok; else bad "$what"; fi
}
cli_finish() {
    cli_finished=1
    echo "$1: $pass passed, $fail failed"
    if [ $((pass + fail)) -eq 0 ]; then
        echo "FAIL: $1: no check ran" >&2
        return 1
    fi
    [ "$fail" -eq 0 ]
}
