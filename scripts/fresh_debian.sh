#!/usr/bin/env bash
# fresh_debian.sh - run the README's two commands (scripts/demo.sh, scripts/test.sh) in a
# freshly debootstrap'ed Debian 12 root, as a new user's machine would be.
#
# Usage (as root): scripts/fresh_debian.sh [one-line|deb822|both] [demo|test|both]
# Needs debootstrap (installed here if missing) and Debian's archive. The chroot is made once
# per source style under ${GAZE_CHROOT_DIR:-/var/tmp/gaze-chroot}/<style> (minbase + git) and
# reset from a tarball for every run, so each run starts from the same bare system.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
styles=${1:-both}
cmds=${2:-both}
base=${GAZE_CHROOT_DIR:-/var/tmp/gaze-chroot}
mirror=${GAZE_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" != 0 ]; then
  echo "fresh_debian: run as root (debootstrap and chroot need it)" >&2
  exit 2
fi
command -v debootstrap >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

make_root() { # make_root STYLE: a pristine tarball of minbase + git with that sources style
  local style=$1 tar="$base/$1.tar"
  [ -f "$tar" ] && return 0
  local root="$base/$style.build"
  rm -rf "$root"; mkdir -p "$root"
  echo "fresh_debian: debootstrap bookworm ($style sources) into $root"
  debootstrap --variant=minbase --include=git,ca-certificates bookworm "$root" "$mirror" >/dev/null
  if [ "$style" = deb822 ]; then
    rm -f "$root/etc/apt/sources.list"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" > "$root/etc/apt/sources.list.d/debian.sources"
  else
    echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"
    rm -f "$root"/etc/apt/sources.list.d/*
  fi
  tar -C "$root" -cf "$tar" .
  rm -rf "$root"
}

run_in() { # run_in STYLE COMMAND: fresh root, clone of this checkout, run as root
  local style=$1 cmd=$2 root="$base/$1.run"
  cleanup() { umount -l "$root/proc" "$root/dev" "$root/sys" 2>/dev/null || true; }
  cleanup; rm -rf "$root"; mkdir -p "$root"
  tar -C "$root" -xf "$base/$style.tar"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"; mount --rbind /dev "$root/dev"; mount -t sysfs sys "$root/sys"
  git clone -q "$here" "$root/root/gaze"
  local t0=$SECONDS rc=0
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    bash -c "cd /root/gaze && bash scripts/$cmd.sh" > "$base/$style-$cmd.log" 2>&1 || rc=$?
  echo "fresh_debian: $style sources, scripts/$cmd.sh: exit $rc in $((SECONDS - t0)) s (log $base/$style-$cmd.log)"
  cleanup; rm -rf "$root"
  return $rc
}

mkdir -p "$base"
fail=0
for style in one-line deb822; do
  [ "$styles" = both ] || [ "$styles" = "$style" ] || continue
  make_root "$style"
  for cmd in demo test; do
    [ "$cmds" = both ] || [ "$cmds" = "$cmd" ] || continue
    run_in "$style" "$cmd" || fail=1
  done
done
exit $fail
