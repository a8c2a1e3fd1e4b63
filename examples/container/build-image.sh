#!/bin/sh
# build-image.sh: build the FROM scratch mailferry image from this checkout, offline.
#
#   examples/container/build-image.sh [--binary FILE | --build-dir DIR] [TAG]
#
# TAG defaults to mailferry:latest. Without --binary or --build-dir it configures and builds a
# static mailferry itself (meson -Dstatic=true) in build-image-static/ at the top of the checkout,
# reused on the next run. --build-dir DIR reuses an existing meson build: its `mailferry` if that is
# static (-Dstatic=true), else its `mailferry-static` target (a link of the objects already built).
# --binary FILE takes a static binary as it is. No registry and no network are used: the image is
# FROM scratch, with the host's CA bundle copied in.
#
# Environment: CONTAINER_ENGINE (podman, else docker), CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt), MAILFERRY_STATIC_BUILD_DIR (the build dir used without
# --build-dir), JOBS (parallel compile jobs; default: meson's). Podman needs `--format docker` for
# the HEALTHCHECK; this script passes it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

die() { echo "build-image.sh: $*" >&2; exit 1; }
usage() {
  echo "usage: build-image.sh [--binary FILE | --build-dir DIR] [TAG]   (TAG default: mailferry:latest)"
}

binary=""
build_dir=""
tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a FILE"; binary=$2; shift 2 ;;
    --binary=*) binary=${1#--binary=}; shift ;;
    --build-dir) [ $# -ge 2 ] || die "--build-dir needs a DIR"; build_dir=$2; shift 2 ;;
    --build-dir=*) build_dir=${1#--build-dir=}; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 64 ;;
    *) [ -z "$tag" ] || { usage >&2; exit 64; }; tag=$1; shift ;;
  esac
done
tag=${tag:-mailferry:latest}
[ -z "$binary" ] || [ -z "$build_dir" ] || die "give --binary or --build-dir, not both"

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null 2>&1; then engine=podman
  elif command -v docker >/dev/null 2>&1; then engine=docker
  else die "neither podman nor docker is installed (apt-get install podman, or set CONTAINER_ENGINE)"
  fi
fi
command -v "$engine" >/dev/null 2>&1 || die "$engine is not installed (set CONTAINER_ENGINE to podman or docker)"

ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle (apt-get install ca-certificates, or set CA_BUNDLE=FILE)"

# Static means no program interpreter: ldd says "not a dynamic executable" (or "statically linked").
is_static() {
  [ -f "$1" ] && [ -x "$1" ] || return 1
  LC_ALL=C ldd "$1" 2>&1 | grep -Eq 'not a dynamic executable|statically linked'
}

meson_build_dir() {
  command -v meson >/dev/null 2>&1 || die "meson is not installed (apt-get install meson ninja-build)"
  [ -f "$1/build.ninja" ] || die "$1 is not a meson build directory (run meson setup first)"
  if is_static "$1/mailferry"; then
    binary="$1/mailferry"
  else
    # Only a link: the objects of `mailferry` are reused.
    meson compile -C "$1" mailferry-static >&2 ||
      die "cannot link mailferry-static in $1 (the static libraries: apt-get install libmbedtls-dev libcrypt-dev)"
    binary="$1/mailferry-static"
  fi
}

if [ -n "$build_dir" ]; then
  meson_build_dir "$build_dir"
elif [ -z "$binary" ]; then
  dir=${MAILFERRY_STATIC_BUILD_DIR:-$root/build-image-static}
  if [ ! -f "$dir/build.ninja" ]; then
    command -v meson >/dev/null 2>&1 || die "meson is not installed (apt-get install meson ninja-build)"
    # Small rather than fast: a relay waits on the network and the disk, not on the CPU.
    # Separate sections let the static link (-Wl,--gc-sections) drop the code nothing calls.
    meson setup "$dir" "$root" --wrap-mode=nofallback --buildtype=minsize -Db_lto=true \
      -Dcpp_args='-ffunction-sections -fdata-sections' -Dstatic=true -Dtests=disabled >&2 ||
      die "meson setup failed in $dir (see above)"
  fi
  # shellcheck disable=SC2086  # JOBS is a number or nothing
  meson compile -C "$dir" ${JOBS:+-j $JOBS} mailferry >&2 || die "the static build failed in $dir (see above)"
  binary="$dir/mailferry"
fi
is_static "$binary" || die "$binary is not a statically linked executable (build with -Dstatic=true, or use the mailferry-static target)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mailferry-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# The image is one layer, rootfs.tar: ADD unpacks it keeping each entry's owner and mode (COPY
# would make the spool's parent directories the non-root user's, and drop its mode 0700).
rootfs="$work/rootfs"
context="$work/context"
mkdir -p "$context" "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/var/spool/mailferry"
# Debug symbols stay in the build; the image gets a stripped copy.
if command -v strip >/dev/null 2>&1; then
  strip --strip-all -o "$rootfs/usr/local/bin/mailferry" "$binary"
else
  cp "$binary" "$rootfs/usr/local/bin/mailferry"
fi
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
# Names for uid/gid 10025, so that logs say local:mailferry rather than local:uid10025.
printf 'root:x:0:0:root:/:/sbin/nologin\nmailferry:x:10025:10025:mailferry:/var/spool/mailferry:/sbin/nologin\n' \
  > "$rootfs/etc/passwd"
printf 'root:x:0:\nmailferry:x:10025:\n' > "$rootfs/etc/group"
find "$rootfs" -type d -exec chmod 0755 {} +
find "$rootfs" -type f -exec chmod 0644 {} +
chmod 0755 "$rootfs/usr/local/bin/mailferry"
chmod 0700 "$rootfs/var/spool/mailferry"

tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is needed (apt-get install tar)"
# Everything root's, except the spool: appended with the image user as its owner.
(cd "$rootfs" &&
  find . -path ./var/spool/mailferry -prune -o -print | LC_ALL=C sort |
    tar -cf "$context/rootfs.tar" --no-recursion --numeric-owner --owner=0 --group=0 -T - &&
  tar -rf "$context/rootfs.tar" --no-recursion --numeric-owner --owner=10025 --group=10025 \
    ./var/spool/mailferry) || die "cannot make the image's rootfs.tar"
cp "$here/Containerfile" "$context/Containerfile"

version=$("$rootfs/usr/local/bin/mailferry" --version 2>/dev/null | awk '{print $NF; exit}') || version=unknown

format=""
[ "$(basename "$engine")" = docker ] || format="--format docker"
# shellcheck disable=SC2086  # $format is one option or nothing
"$engine" build $format --network none --build-arg "VERSION=${version:-unknown}" \
  -f "$context/Containerfile" -t "$tag" "$context" >&2 || die "$engine build failed (see above)"

echo "$tag"
