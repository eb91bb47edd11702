#!/usr/bin/env bash
# setup.sh - install gaze's build dependencies and build the FAISS C API.
#
# Idempotent. Needs root (or sudo) for apt on a fresh Debian 12 machine; needs no
# network but Debian's archive. Debian's libfaiss-dev ships the C API headers and
# libfaiss.a but not a compiled C API library, so we build faiss's own c_api/*.cpp
# from Debian's source package against the installed libfaiss.a, into
# build-deps/faiss_c (never committed). CMake finds it there.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
deps="$here/build-deps"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

packages=(
  build-essential cmake pkg-config
  libopenblas-dev libfaiss-dev libsqlite3-dev
  libjpeg62-turbo-dev libpng-dev libwebp-dev libheif-dev libexif-dev libgif-dev
  libstb-dev libutf8proc-dev libjansson-dev libxxhash-dev libcurl4-openssl-dev libssl-dev
  libtiff-dev libraw-dev libsixel-dev libmicrohttpd-dev
  python3-numpy dpkg-dev clang libclang-rt-14-dev clang-format
  # gaze serve's tests: curl, nginx (replicas), node + chromium (the page in a browser), wrk (bench)
  curl nginx-light chromium wrk
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# node and npm by command, not by package: a machine may have them from elsewhere (NodeSource's
# nodejs ships npm itself and conflicts with Debian's npm package).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the browser test's driver: playwright-core from tests/browser/package-lock.json ---
# (no browser download: the test drives Debian's chromium)
if [ ! -d "$here/tests/browser/node_modules/playwright-core" ]; then
  echo "setup: npm ci in tests/browser (playwright-core)"
  (cd "$here/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
fi

# --- FAISS C API -----------------------------------------------------------
# Bump when the build recipe changes so existing build-deps/ trees are rebuilt.
faiss_c_recipe=2
if [ -f "$deps/faiss_c/lib/libfaiss_c.a" ] && [ "$(cat "$deps/faiss_c/recipe" 2>/dev/null)" = "$faiss_c_recipe" ]; then
  echo "setup: FAISS C API already built in $deps/faiss_c"
  exit 0
fi
if [ -f /usr/lib/x86_64-linux-gnu/libfaiss_c.so ] || [ -f /usr/local/lib/libfaiss_c.so ]; then
  echo "setup: system libfaiss_c found"
  exit 0
fi

src_list=/etc/apt/sources.list.d/gaze-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  echo "setup: enabling deb-src to fetch faiss sources"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $SUDO tee "$src_list" >/dev/null
  else
    # One-line format (what the Debian installer and debootstrap write): mirror every "deb"
    # line as "deb-src". Only existing files are read: a glob that matches nothing would make
    # grep exit 2 and stop this script under pipefail.
    lists=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] && lists+=("$f")
    done
    if [ ${#lists[@]} -gt 0 ]; then
      { grep -h '^deb ' "${lists[@]}" || true; } |
        sed 's/^deb /deb-src /' | $SUDO tee /etc/apt/sources.list.d/gaze-deb-src.list >/dev/null
    fi
  fi
  $SUDO apt-get update -qq
fi

work="$deps/faiss-src"
rm -rf "$work"; mkdir -p "$work"
(cd "$work" && apt-get source -qq --download-only faiss >/dev/null 2>&1 || apt-get source -qq faiss >/dev/null)
(cd "$work" && dpkg-source -x --no-check ./faiss_*.dsc faiss >/dev/null 2>&1 || true)
srcdir=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'faiss*' | head -n1)
if [ -z "$srcdir" ] || [ ! -d "$srcdir/c_api" ]; then
  echo "setup: could not unpack Debian's faiss source package" >&2
  exit 1
fi

out="$deps/faiss_c"
mkdir -p "$out/obj" "$out/lib"
echo "setup: building FAISS C API from $srcdir/c_api"
cpps=$(find "$srcdir/c_api" -name '*.cpp' ! -path '*/gpu/*')
pids=()
for f in $cpps; do
  rel=${f#"$srcdir/c_api/"}
  obj="$out/obj/$(echo "$rel" | tr '/' '_').o"
  # -DNDEBUG: without it faiss's C API prints every exception to stderr, and gaze's
  # library must never print (errors come back through faiss_get_last_error()).
  g++ -O2 -DNDEBUG -fPIC -std=c++17 -fopenmp -I"$srcdir" -c "$f" -o "$obj" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$(nproc)" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
rm -f "$out/lib/libfaiss_c.a"
ar rcs "$out/lib/libfaiss_c.a" "$out"/obj/*.o
echo "$faiss_c_recipe" > "$out/recipe"
rm -rf "$out/obj" "$work"
echo "setup: FAISS C API ready: $out/lib/libfaiss_c.a"
