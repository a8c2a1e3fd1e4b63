#!/usr/bin/python3
"""test_concurrency.py: 200 messages from 10 concurrent clients all arrive exactly once, intact.

    /usr/bin/python3 tests/integration/test_concurrency.py <path-to-mailferry>
"""

import base64
import hashlib
import os
import random
import re
import threading
import time

import harness
from harness import RelayCase, body_of, smtp_connect, smtp_send_on

THREADS = 10
PER_THREAD = 20
RECONNECT_EVERY = 5          # each client reuses a connection for 5 messages, then reconnects
DELIVERY_TIMEOUT = 60.0
TEST_ID = re.compile(rb"^X-Test-Id: (\S+)\r$", re.M)


def random_body(rng: random.Random) -> bytes:
    """Base64 lines of random bytes (1 KiB .. 40 KiB), sometimes with a dot-led line."""
    raw = rng.randbytes(rng.randint(1024, 40 * 1024))
    text = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    if rng.random() < 0.3:
        text = b".dot-led line\r\n" + text
    return text


class ConcurrencyTest(RelayCase):
    def test_200_messages_from_10_clients(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        sent: dict[str, str] = {}          # test id → sha256 of the body
        failures: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(n: int):
            rng = random.Random(1000 + n)
            s = None
            try:
                for i in range(PER_THREAD):
                    if stop.is_set():
                        return
                    if s is None:
                        s = smtp_connect(mf.port)
                    tid = f"c{n:02d}-m{i:03d}-{rng.getrandbits(32):08x}"
                    body = random_body(rng)
                    msg = (f"From: client{n}@x\r\nTo: sink@y\r\nSubject: load {tid}\r\n"
                           f"X-Test-Id: {tid}\r\n\r\n").encode() + body
                    r = smtp_send_on(s, f"client{n}@x", ["sink@y"], msg)
                    with lock:
                        if r.code == 250 and r.queue_id:
                            sent[tid] = hashlib.sha256(body).hexdigest()
                        else:
                            failures.append(f"{tid}: {r}")
                    if (i + 1) % RECONNECT_EVERY == 0:
                        s.quit()
                        s = None
            except Exception as e:   # recorded, asserted below
                with lock:
                    failures.append(f"client {n}: {type(e).__name__}: {e}")
            finally:
                if s is not None:
                    try:
                        s.quit()
                    except Exception:
                        s.close()

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(THREADS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, 120 - (time.monotonic() - t0)))
        stop.set()
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running after 120s")
        self.assertEqual(failures, [], "submissions failed")
        self.assertEqual(len(sent), THREADS * PER_THREAD)
        submit_s = time.monotonic() - t0

        up.wait_for_count(len(sent), DELIVERY_TIMEOUT)
        time.sleep(1.0)   # a short grace to catch duplicates arriving late
        arrived: dict[str, list[str]] = {}
        for msg in up.messages():
            m = TEST_ID.search(msg["raw"])
            self.assertIsNotNone(m, f"a message without X-Test-Id arrived: {msg['raw'][:300]!r}")
            arrived.setdefault(m.group(1).decode(), []).append(
                hashlib.sha256(body_of(msg["raw"])).hexdigest())
            self.assertEqual(msg["rcpt_tos"], ["sink@y"])
        missing = sorted(set(sent) - set(arrived))
        extra = sorted(set(arrived) - set(sent))
        dups = sorted(t for t, sums in arrived.items() if len(sums) > 1)
        corrupt = sorted(t for t, sums in arrived.items() if t in sent and sums[0] != sent[t])
        print(f"concurrency-figures sent={len(sent)} arrived={sum(map(len, arrived.values()))} "
              f"missing={len(missing)} duplicated={len(dups)} corrupt={len(corrupt)} "
              f"submit_seconds={submit_s:.1f}", flush=True)
        self.assertEqual(missing, [], "messages never arrived")
        self.assertEqual(extra, [], "unknown messages arrived")
        self.assertEqual(dups, [], "messages arrived more than once")
        self.assertEqual(corrupt, [], "bodies changed on the way")


if __name__ == "__main__":
    harness.main()
