#!/usr/bin/env bash
# run.sh: the demo. Installs what is missing, builds, starts a demo upstream on 127.0.0.1:2526
# (it prints what it receives) and runs mailferry on 127.0.0.1:2525 in the foreground.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/install-deps.sh
if [[ ! -f build/meson-private/coredata.dat ]]; then
  meson setup build --wrap-mode=nofallback
fi
ninja -C build

mkdir -p /tmp/mailferry-demo/spool

/usr/bin/python3 examples/demo/demo-upstream.py --port 2526 &
upstream_pid=$!
trap 'kill "$upstream_pid" 2>/dev/null || true; wait "$upstream_pid" 2>/dev/null || true' EXIT

# Wait (at most 5 s) for the demo upstream to listen.
for _ in $(seq 50); do
  if ! kill -0 "$upstream_pid" 2>/dev/null; then
    echo "run.sh: the demo upstream did not start (is port 2526 taken?)" >&2
    exit 69
  fi
  if (exec 3<>/dev/tcp/127.0.0.1/2526) 2>/dev/null; then break; fi
  sleep 0.1
done

cat <<'MSG'

mailferry is starting on 127.0.0.1:2525; the demo upstream prints every message it relays.
In another terminal:
  send a test message: swaks --server 127.0.0.1:2525 --from me@example.com --to you@example.com
  or with Python:      /usr/bin/python3 -c 'import smtplib; smtplib.SMTP("127.0.0.1", 2525).sendmail("me@example.com", ["you@example.com"], "Subject: hello\r\n\r\nHello from mailferry.\r\n")'
Ctrl-C stops both.

MSG

build/mailferry serve -c examples/demo/mailferry.toml
