#!/usr/bin/python3
"""test_scale_out.py: two mailferry instances, each with its own spool, behind Debian's haproxy
(round robin, PROXY protocol v2), both forwarding to one upstream. 200 messages from concurrent
clients through haproxy: every one arrives exactly once, both instances take a share, the relay
decision follows the client's own address (which only haproxy knew), and both spools end empty.

    /usr/bin/python3 tests/integration/test_scale_out.py <path-to-mailferry>
"""

import os
import re
import shutil
import smtplib
import socket
import threading
import time
import uuid

import harness
from harness import RelayCase, free_port, make_message, relay_config

CLIENTS = 4
PER_CLIENT = 50
PER_CONNECTION = 5           # a new connection (so the next instance in turn) every 5 messages
CLIENT_ADDRESS = "127.0.0.5"   # the only trusted client; haproxy itself (127.0.0.1) is not
DELIVERY_TIMEOUT = 120.0
MARKER = re.compile(rb"^X-Scale-Marker: (\S+)\r$", re.M)


class ScaleOutTest(RelayCase):
    def setUp(self):
        super().setUp()
        if shutil.which("haproxy") is None:
            self.skipTest("haproxy is not installed (Debian package haproxy)")
        self.up = self.start_upstream()
        self.instances = []
        for name in ("mf-a", "mf-b"):
            port = free_port()
            listen = ["[[listen]]", f'address = "127.0.0.1:{port}"', 'tls = "none"',
                      'auth = "none"', "proxy_protocol = true", 'proxy_from = ["127.0.0.1/32"]', ""]
            mf = self.start_mailferry(self.up.port, name=name, start=False)
            harness.write_file(mf.config_path, relay_config(
                spool_dir=mf.spool_dir, listen_port=port, upstream_port=self.up.port,
                trusted=(CLIENT_ADDRESS + "/32",), listen=listen))
            mf.start(port)
            self.instances.append(mf)
        self.port = free_port()
        servers = [f"  server mf{i} 127.0.0.1:{mf.port} send-proxy-v2"
                   for i, mf in enumerate(self.instances)]
        harness.start_haproxy(self.workdir, self.addCleanup, [
            "frontend smtp", f"  bind 127.0.0.1:{self.port}", "  default_backend relays",
            # A connection refused by a stopped instance is retried once, on the other one.
            "backend relays", "  balance roundrobin", "  retries 1", "  option redispatch",
            *servers], [self.port], timeout_client="60s")

    def connect(self, source: str) -> smtplib.SMTP:
        s = smtplib.SMTP(timeout=30, local_hostname="client.test")
        s.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30,
                                          source_address=(source, 0))
        s.file = None
        code, text = s.getreply()
        if code != 220:
            s.close()
            raise AssertionError(f"greeting through haproxy: {code} {text!r}")
        s.ehlo()
        return s

    def send_all(self) -> tuple[dict[str, str], list[str]]:
        """CLIENTS threads, PER_CLIENT messages each; returns {marker: queue id} and failures."""
        queued: dict[str, str] = {}
        failures: list[str] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            s = None
            try:
                for i in range(PER_CLIENT):
                    if s is None:
                        s = self.connect(CLIENT_ADDRESS)
                    marker = f"c{n}-m{i:03d}-{uuid.uuid4().hex}"
                    msg = make_message([("From", f"app{n}@example.com"), ("To", "sink@example.net"),
                                        ("Subject", f"scale out {marker}"),
                                        ("X-Scale-Marker", marker)], b"through haproxy\r\n")
                    r = harness.smtp_send_on(s, f"app{n}@example.com", ["sink@example.net"], msg)
                    with lock:
                        if r.code == 250 and r.queue_id:
                            queued[marker] = r.queue_id
                        else:
                            failures.append(f"{marker}: {r}")
                    if (i + 1) % PER_CONNECTION == 0:
                        s.quit()
                        s = None
            except (OSError, smtplib.SMTPException, AssertionError) as e:
                with lock:
                    failures.append(f"client {n}: {e!r}")
            finally:
                if s is not None:
                    s.close()

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in threads):
            failures.append(f"clients still sending after {DELIVERY_TIMEOUT:.0f}s")
        return queued, failures

    def test_200_messages_through_haproxy_to_two_instances(self):
        started = time.monotonic()
        queued, failures = self.send_all()
        total = CLIENTS * PER_CLIENT
        self.assertEqual(failures, [], f"{len(failures)} failures")
        self.assertEqual(len(queued), total)

        self.up.wait_for_count(total, DELIVERY_TIMEOUT)
        for mf in self.instances:
            harness.wait_until(lambda: not harness.spool_ids(mf.spool_dir, "queue"), 30.0,
                               what=f"{mf.spool_dir} to empty")

        # Exactly once: every marker, no duplicate, nothing else.
        seen: dict[str, int] = {}
        for m in self.up.messages():
            found = MARKER.search(m["raw"])
            self.assertIsNotNone(found, f"a message without a marker: {m['raw'][:200]!r}")
            seen[found.group(1).decode()] = seen.get(found.group(1).decode(), 0) + 1
        self.assertEqual(set(seen), set(queued), "markers lost or unknown")
        self.assertEqual([k for k, n in seen.items() if n != 1], [], "markers delivered twice")

        # Both took a share; each queue id belongs to exactly one instance; the real client
        # (from the PROXY header) is what each instance saw and trusted.
        ids: dict[str, set[str]] = {}
        for mf in self.instances:
            received = mf.events("received")
            ids[mf.log_path] = {f.get("id") for _, f in received}
            self.assertEqual({f.get("client") for _, f in received}, {CLIENT_ADDRESS},
                             f"{mf.log_path}: clients other than {CLIENT_ADDRESS}")
            delivered = {f.get("id") for _, f in mf.events("delivered")}
            self.assertEqual(delivered, ids[mf.log_path], f"{mf.log_path}: received ≠ delivered")
        shares = [len(s) for s in ids.values()]
        self.assertEqual(sum(shares), total, shares)
        self.assertEqual(set.union(*ids.values()), set(queued.values()))
        # Round robin over 40 connections of 5 messages: 100 each; allow for nothing worse than
        # 60/140 (a connection that haproxy retried elsewhere, say).
        for share in shares:
            self.assertGreaterEqual(share, total * 3 // 10, f"unfair split {shares}")

        # Each instance's own account of its queue, over its local socket.
        for mf in self.instances:
            st = mf.run("status", "-c", mf.config_path)
            self.assertEqual(st.returncode, 0, st.stderr)
            fields = dict(line.split("=", 1) for line in st.stdout.splitlines() if "=" in line)
            self.assertEqual((fields.get("queued"), fields.get("deferred"), fields.get("failed")),
                             ("0", "0", "0"), st.stdout)
        for area in ("queue", "failed"):
            for mf in self.instances:
                self.assertEqual(harness.spool_ids(mf.spool_dir, area), [], f"{mf.spool_dir}/{area}")
        for mf in self.instances:
            self.assertEqual(mf.stop(), 0, f"{mf.log_path}: exit status after SIGTERM")
        print(f"\n{total} messages through haproxy to 2 instances (shares {shares}) in "
              f"{time.monotonic() - started:.1f} s", flush=True)

    def test_a_stopped_instance_costs_no_submission(self):
        # One replica drains (SIGTERM) and exits: what it acknowledged has been delivered, and
        # every later connection, its turns included, is served by the other one (haproxy
        # redispatches a refused connect).
        a, b = self.instances
        marker = uuid.uuid4().hex
        s = self.connect(CLIENT_ADDRESS)
        r = harness.smtp_send_on(s, "app@example.com", ["sink@example.net"],
                                 make_message([("X-Scale-Marker", marker)], b"before\r\n"))
        s.close()
        self.assertEqual(r.code, 250, r)
        self.up.wait_for(marker.encode(), 30.0)
        self.assertEqual(a.stop(), 0, "exit status after SIGTERM")
        self.assertEqual(harness.spool_ids(a.spool_dir, "queue"), [])
        before = len(b.events("received"))
        for i in range(6):
            m = uuid.uuid4().hex
            s = self.connect(CLIENT_ADDRESS)
            try:
                r = harness.smtp_send_on(s, "app@example.com", ["sink@example.net"],
                                         make_message([("X-Scale-Marker", m)], b"after\r\n"))
            finally:
                s.close()
            self.assertEqual(r.code, 250, f"submission {i + 1} after the stop: {r}")
            self.up.wait_for(m.encode(), 30.0)
        self.assertEqual(len(b.events("received")) - before, 6)


if __name__ == "__main__":
    harness.main()
