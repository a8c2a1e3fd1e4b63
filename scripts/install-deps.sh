#!/usr/bin/env bash
# install-deps.sh: install the Debian 12 packages that building and testing mailferry need.
# Default: only when one is missing (apt-get update + install of the missing ones).
# --always: apt-get update and install the whole list regardless (CI).
# Uses sudo only when not root. On a system without dpkg it warns and does nothing.
set -euo pipefail

PACKAGES=(
  meson ninja-build g++ pkg-config          # build
  libasio-dev libmbedtls-dev libcli11-dev libtomlplusplus-dev libcrypt-dev   # libraries
  catch2                                     # unit tests
  python3 python3-aiosmtpd swaks             # integration tests and the demo
  nftables iproute2                          # port-fallback tests (netns, SYN drops)
  haproxy                                    # PROXY protocol tests (send-proxy, send-proxy-v2)
  systemd                                    # systemd-analyze verify/security on the unit (install test)
  openssl msmtp testssl.sh libnet-ssleay-perl   # TLS tests: test CA, clients (swaks TLS needs Net::SSLeay), scan
  php-cli bsd-mailx git-email libmailtools-perl   # sendmail tests: PHP mail(), mail(1), git send-email (needs Mail::Address)
  scdoc mandoc                               # man pages: build, and the install test's lint
  podman runc slirp4netns mmdebstrap         # container image and systemd-in-a-container tests
  clang libclang-rt-14-dev                   # fuzz targets (libFuzzer); the replay tests use g++
  nmap                                       # smtp-open-relay check
  prometheus                                 # promtool check metrics, a real scrape
)

always=false
if [[ "${1:-}" == "--always" ]]; then always=true; fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: not a Debian system; install these yourself: ${PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ! $always && ((${#missing[@]} == 0)); then
  exit 0
fi

to_install=("${missing[@]}")
if $always; then to_install=("${PACKAGES[@]}"); fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: missing ${missing[*]}, and not root and no sudo: install them as root" >&2
    exit 1
  fi
  sudo=(sudo)
fi

echo "install-deps: installing ${to_install[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${to_install[@]}"
