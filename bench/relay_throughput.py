#!/usr/bin/python3
"""relay_throughput.py: end-to-end messages per second through mailferry on loopback.

A benchmark, not a test: N small messages from C concurrent smtplib clients (one SMTP session
each, many messages per session) → mailferry (spool fsynced before every 250) → the aiosmtpd test
upstream. Prints the rate at which 250s came back and the rate at which the upstream had them all.

    /usr/bin/python3 bench/relay_throughput.py build/mailferry [--messages 1000] [--concurrency 10]
"""

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import harness  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mailferry")
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--size", type=int, default=2048, help="body bytes per message")
    args = ap.parse_args()
    harness.MAILFERRY_BIN = os.path.abspath(args.mailferry)

    work = harness.make_tempdir("mailferry-bench-")
    upstream = harness.Upstream(work).start()
    port = harness.free_port()
    cfg = harness.write_file(os.path.join(work, "mailferry.toml"), harness.relay_config(
        spool_dir=os.path.join(work, "spool"), listen_port=port, upstream_port=upstream.port))
    relay = harness.Mailferry(work, cfg).start(port)
    body = (b"x" * 76 + b"\r\n") * max(1, args.size // 78)
    per_client = args.messages // args.concurrency
    total = per_client * args.concurrency
    errors: list[str] = []

    def client(k: int) -> None:
        try:
            s = harness.smtp_connect(port)
            for i in range(per_client):
                msg = b"Subject: bench %d-%d\r\n\r\n" % (k, i) + body
                s.sendmail("bench@example.com", ["sink@example.net"], msg)
            s.quit()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    try:
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        t_acked = time.monotonic() - t0
        upstream.wait_for_count(total, timeout=600)
        t_done = time.monotonic() - t0
        if errors:
            print(f"errors: {errors[:3]}")
        print(f"relay_throughput messages={total} concurrency={args.concurrency} body={len(body)}B "
              f"accepted_per_s={total / t_acked:.0f} end_to_end_per_s={total / t_done:.0f} "
              f"seconds={t_done:.2f}")
    finally:
        relay.stop()
        upstream.stop()
        harness.remove_tempdir(work)


if __name__ == "__main__":
    main()
