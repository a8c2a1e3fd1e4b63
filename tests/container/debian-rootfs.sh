#!/usr/bin/env bash
# debian-rootfs.sh: a Debian 12 root filesystem that boots systemd in podman and runs mailferry,
# made with mmdebstrap from the Debian mirror, cached, and imported as a podman image.
#
#   tests/container/debian-rootfs.sh [PACKAGE...]
#
# Prints the image name (localhost/mailferry-test-debian:KEY) on stdout and nothing else there.
# The base set is systemd as PID 1 (systemd, systemd-sysv), procps (/bin/kill, which the unit's
# ExecReload= runs), dbus (systemd-analyze security asks systemd over the bus) and the shared
# libraries a dynamically linked mailferry needs; each PACKAGE is added to it.
#
# KEY is a hash of the recipe: the suite, the package list and every mmdebstrap option below, so a
# change to any of them builds a new root file system (the old tarball is simply no longer used),
# while an edit to the comments or the rest of this script costs nothing. The tarball is cached in
# $MAILFERRY_TEST_CACHE (default /var/cache/mailferry-tests): the first run costs ~1 min and the
# network to the Debian mirror, later runs cost nothing (or one `podman import` of the cached
# tarball when podman's storage no longer has the image). The tarball is written to a temporary
# name and renamed into place, so an interrupted build never leaves a cache entry behind, and a
# lock keeps two builds of the same key from running at once.
#
# Needs root, mmdebstrap and podman (Debian packages mmdebstrap, podman, runc); podman reads
# $CONTAINERS_CONF as usual (tests/container/containers.conf on this kind of machine).
# Exit status: 0 with the image name printed; 2 when mmdebstrap failed (most often: the Debian
# mirror cannot be reached), 1 for anything else; either with one line on stderr saying what.
set -euo pipefail

SUITE=bookworm
BASE_PACKAGES=(
  systemd systemd-sysv dbus procps
  libmbedtls14 libmbedx509-1 libmbedcrypto7 libcrypt1 libstdc++6 libtomlplusplus3
)
CACHE_DIR=${MAILFERRY_TEST_CACHE:-/var/cache/mailferry-tests}
# mmdebstrap's own download takes ~50 s; a slow mirror gets ten times that, then we give up.
BUILD_TIMEOUT=${MAILFERRY_ROOTFS_TIMEOUT:-600}

die() { echo "debian-rootfs: $*" >&2; exit 1; }
die_mirror() { echo "debian-rootfs: $*" >&2; exit 2; }

[[ $(id -u) == 0 ]] || die "needs root (mmdebstrap and podman import as root)"
command -v mmdebstrap >/dev/null || die "mmdebstrap not found: apt-get install mmdebstrap"
command -v podman >/dev/null || die "podman not found: apt-get install podman runc"

mapfile -t packages < <(printf '%s\n' "${BASE_PACKAGES[@]}" "$@" | sort -u)
for p in "${packages[@]}"; do
  [[ $p =~ ^[a-z0-9][a-z0-9+.-]*$ ]] || die "not a Debian package name: '$p'"
done
include=$(IFS=,; echo "${packages[*]}")

# minbase: Essential packages and apt only; documentation and translations are left out, as
# nothing here reads them. The root password stays locked: the container is reached with
# `podman exec`. An empty machine-id gets a fresh one at each boot.
mmdebstrap_args=(
  --variant=minbase --include="$include"
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --customize-hook='echo mailferry-test > "$1/etc/hostname"'
  --customize-hook='rm -f "$1/etc/machine-id"; touch "$1/etc/machine-id"'
  --format=tar
)

# podman runs /sbin/init unless told otherwise, and stops systemd the way it asks to be stopped.
import_changes=(--change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3')

key=$(printf '%s\n' "$SUITE" "${mmdebstrap_args[@]}" "${import_changes[@]}" | sha256sum | cut -c1-16)
image=localhost/mailferry-test-debian:$key
tarball=$CACHE_DIR/debian-$SUITE-$key.tar

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock-$key"
flock -w "$((BUILD_TIMEOUT + 60))" 9 || die "another build of $tarball holds its lock for too long"

if [[ ! -s $tarball ]]; then
  # What a killed build left behind (we hold the lock, so no build is running).
  rm -f "$CACHE_DIR/.debian-$SUITE-$key."*.tar
  tmp=$(mktemp "$CACHE_DIR/.debian-$SUITE-$key.XXXXXX.tar")
  trap 'rm -f "$tmp"' EXIT
  echo "debian-rootfs: building $tarball (${packages[*]})" >&2
  start=$(date +%s)
  if ! timeout "$BUILD_TIMEOUT" mmdebstrap "${mmdebstrap_args[@]}" "$SUITE" "$tmp" >&2; then
    die_mirror "mmdebstrap $SUITE failed or took more than ${BUILD_TIMEOUT}s (is the Debian mirror reachable?)"
  fi
  # On disk before the rename, so that a crash never leaves a cache entry with missing blocks.
  sync -f "$tmp" 2>/dev/null || sync
  mv -f "$tmp" "$tarball"
  trap - EXIT
  echo "debian-rootfs: built in $(( $(date +%s) - start )) s, $(du -h "$tarball" | cut -f1)" >&2
fi

if ! podman image exists "$image"; then
  podman import --quiet "${import_changes[@]}" "$tarball" "$image" >/dev/null || die "podman import $tarball failed"
fi
echo "$image"
