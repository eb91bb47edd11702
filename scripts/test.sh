#!/usr/bin/env bash
# test.sh - the whole test suite from a fresh clone: dependencies, build, ctest.
# Usage: scripts/test.sh [--sanitize]
#   --sanitize: ASan+UBSan build in build-asan/; then every libFuzzer target of tests/fuzz is
#   built with clang in build-fuzz/ and run for a few seconds on its seed corpus
#   (scripts/fuzz.sh), so a target that no longer compiles or crashes at once fails here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh

build=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DGAZE_WERROR=ON)
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  flags=(-DCMAKE_BUILD_TYPE=Debug -DGAZE_SANITIZE=ON -DGAZE_WERROR=ON)
  # OpenBLAS/OpenMP keep thread-local allocations alive at exit; those are not our leaks.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
(cd "$build" && ctest --output-on-failure -j"$(nproc)")
if [ "$build" = build-asan ]; then
  # every target of tests/fuzz/targets.cmake (fuzz_image_<format> shares fuzz_image.c)
  for target in $(sed -n 's/^  \(fuzz_[a-z_]*\):.*/\1/p' tests/fuzz/targets.cmake) \
    fuzz_image_{jpeg,png,webp,gif,heif,tiff,bmp}; do
    bash scripts/fuzz.sh "$target" "${GAZE_FUZZ_SECONDS:-5}"
  done
fi
