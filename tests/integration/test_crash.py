#!/usr/bin/python3
"""test_crash.py: kill -9 during a 300-message load loses no acknowledged message.

Four clients send 300 messages; once about 100 have their 250, mailferry gets SIGKILL and is
restarted on the same spool and config; the clients reconnect and send the rest (a message
whose 250 never came is sent again). Every message that got a 250 must reach the upstream at
least once. Prints one line for the record:

    crash-figures acknowledged=N delivered=N lost=N duplicated=N

(delivered: distinct messages that reached the upstream, acknowledged or not; lost: acknowledged
but never delivered, must be 0; duplicated: deliveries beyond the first of a message.)

    /usr/bin/python3 tests/integration/test_crash.py <path-to-mailferry>
"""

import re
import smtplib
import threading
import time

import harness
from harness import RelayCase, smtp_connect, smtp_send_on

TOTAL = 300
THREADS = 4
KILL_AFTER = 100
DELIVERY_TIMEOUT = 60.0
RECONNECT_S = 30.0
TEST_ID = re.compile(rb"^X-Test-Id: (\S+)\r$", re.M)


class CrashTest(RelayCase):
    def test_sigkill_under_load_loses_nothing_acknowledged(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port, retry=("1s",))
        acked: dict[str, str] = {}       # test id → queue id
        attempted: set[str] = set()
        errors: list[str] = []
        lock = threading.Lock()
        enough = threading.Event()

        def client(n: int):
            # Sends its share of the 300; when the connection breaks (the kill), reconnects for
            # up to RECONNECT_S and sends the unacknowledged message again, as a real client would.
            s = None
            for i in range(n, TOTAL, THREADS):
                tid = f"crash-{i:03d}"
                msg = (f"From: a@x\r\nTo: b@y\r\nSubject: crash {tid}\r\n"
                       f"X-Test-Id: {tid}\r\n\r\n").encode() + (f"body of {tid}\r\n" * 200).encode()
                deadline = time.monotonic() + RECONNECT_S
                last_error = ""
                while True:
                    try:
                        if s is None:
                            s = smtp_connect(mf.port, timeout=10)
                        with lock:
                            attempted.add(tid)
                        r = smtp_send_on(s, "a@x", ["b@y"], msg)
                        if r.code == 250 and r.queue_id:
                            with lock:
                                acked[tid] = r.queue_id
                                if len(acked) >= KILL_AFTER:
                                    enough.set()
                        else:
                            with lock:
                                errors.append(f"{tid}: {r}")
                        break
                    except (OSError, smtplib.SMTPException, AssertionError) as e:
                        last_error = f"{type(e).__name__}: {e}"
                        if s is not None:
                            s.close()
                            s = None
                        if time.monotonic() > deadline:
                            with lock:
                                errors.append(f"{tid}: no session for {RECONNECT_S:.0f}s; last: {last_error}")
                            return
                        time.sleep(0.1)
            if s is not None:
                try:
                    s.quit()
                except (OSError, smtplib.SMTPException):
                    s.close()

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(THREADS)]
        for t in threads:
            t.start()
        self.assertTrue(enough.wait(timeout=120), f"only {len(acked)} acknowledged in 120s")
        mf.kill9()
        with lock:
            killed_at = len(acked)
        queued_at_kill = len(harness.spool_ids(mf.spool_dir, "queue"))
        time.sleep(0.5)
        mf.start(mf.port)   # same config, same spool; the clients reconnect
        join_deadline = time.monotonic() + 120
        for t in threads:
            t.join(timeout=max(0.1, join_deadline - time.monotonic()))
        self.assertFalse(any(t.is_alive() for t in threads), "clients still running after 120s")
        with lock:
            acknowledged = dict(acked)
        print(f"crash: SIGKILL after {killed_at} acknowledged (queue/ held {queued_at_kill}); "
              f"{len(attempted)} attempted and {len(acknowledged)} acknowledged in all", flush=True)
        self.assertEqual(errors, [], "submissions failed after the restart")

        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            if set(acknowledged) <= set(self.arrived_ids(up)):
                break
            time.sleep(0.2)
        # Wait for the spool to drain (bounded), so late duplicates are counted too.
        harness.wait_until(lambda: harness.spool_ids(mf.spool_dir, "queue") == [], 30.0,
                           what="queue/ to drain after the restart")
        time.sleep(1.0)
        ids = self.arrived_ids(up)
        distinct = set(ids)
        lost = sorted(set(acknowledged) - distinct)
        duplicated = len(ids) - len(distinct)
        print(f"crash-figures acknowledged={len(acknowledged)} delivered={len(distinct)} "
              f"lost={len(lost)} duplicated={duplicated}", flush=True)
        self.assertEqual(lost, [], "acknowledged messages were lost: "
                         + ", ".join(f"{t} (queue id {acknowledged[t]})" for t in lost[:20]))
        self.assertEqual(len(acknowledged), TOTAL, "not every message was acknowledged in the end")
        self.assertLessEqual(distinct, attempted, "messages nobody sent arrived")
        self.assertEqual(harness.spool_ids(mf.spool_dir, "incoming"), [],
                         "incoming/ is not empty after the restart and the load")

    @staticmethod
    def arrived_ids(up) -> list[str]:
        out = []
        for msg in up.messages():
            m = TEST_ID.search(msg["raw"])
            if m:
                out.append(m.group(1).decode())
        return out


if __name__ == "__main__":
    harness.main()
