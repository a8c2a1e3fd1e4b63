#!/usr/bin/python3
"""test_relay.py: a message submitted to mailferry reaches the upstream with the same envelope
and the same bytes, plus only the trace headers mailferry adds; untrusted clients cannot relay.

    /usr/bin/python3 tests/integration/test_relay.py <path-to-mailferry>
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import harness
from harness import (RelayCase, body_of, check_added_headers, field_name, header_fields,
                     make_message, smtp_connect, smtp_send,
                     spool_ids)

DELIVERY_TIMEOUT = 20.0


def marker() -> str:
    return uuid.uuid4().hex


class RelayTest(harness.SharedRelayCase):
    def test_envelope_and_bytes_identical(self):
        m = marker()
        body = (b"Hello,\r\n"
                b".a line that starts with a dot (dot-stuffed on the wire)\r\n"
                b"..two dots\r\n"
                b".\r\n"          # a line holding only a dot, inside the body
                b"\r\n"
                b"trailing spaces   \r\n"
                b"\ttab-indented line\r\n"
                + b"x" * 990 + b"\r\n"
                b"last line\r\n")
        original = make_message([("From", "Alice <a@x>"), ("To", "b@y, c@z"),
                                 ("Subject", f"relay {m}"), ("X-Test-Id", m),
                                 ("X-Folded", "first part\r\n  continued part")], body)
        r = smtp_send(self.mf.port, "a@x", ["b@y", "c@z"], original)
        self.assertEqual(r.code, 250, r)
        self.assertIsNotNone(r.queue_id, f"250 text does not match 'queued as ID': {r.text!r}")
        got = self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)
        self.assertEqual(len(got), 1, "delivered more than once")
        msg = got[0]
        self.assertEqual(msg["mail_from"], "a@x")
        self.assertEqual(msg["rcpt_tos"], ["b@y", "c@z"])
        added = check_added_headers(self, original, msg["raw"])
        self.assertIn("date", added)
        self.assertIn("message-id", added)
        self.assertEqual(body_of(msg["raw"]), body)

    def test_existing_date_and_message_id_kept(self):
        m = marker()
        original = make_message([("Date", "Tue, 14 Nov 2023 10:00:00 +0100"),
                                 ("Message-ID", f"<{m}@client.test>"),
                                 ("From", "a@x"), ("To", "b@y"), ("Subject", f"kept {m}")],
                                b"body\r\n")
        r = smtp_send(self.mf.port, "a@x", ["b@y"], original)
        self.assertEqual(r.code, 250, r)
        msg = self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)[0]
        added = check_added_headers(self, original, msg["raw"])
        self.assertEqual(set(added), {"received"}, f"added more than Received: {added}")
        fields, _ = header_fields(msg["raw"])
        names = [field_name(f) for f in fields]
        self.assertEqual(names.count("date"), 1)
        self.assertEqual(names.count("message-id"), 1)

    def test_swaks(self):
        swaks = os.environ.get("SWAKS") or shutil.which("swaks")
        if not swaks:
            self.skipTest("swaks not installed")
        m = marker()
        p = subprocess.run([swaks, "--server", f"127.0.0.1:{self.mf.port}", "--from", "a@x",
                            "--to", "b@y", "--ehlo", "client.test", "--timeout", "30",
                            "--h-Subject", f"swaks {m}", "--body", f"swaks body {m}"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, f"swaks failed:\n{out}\n{p.stderr.decode()}")
        self.assertRegex(out, r"<-\s+250 2\.0\.0 Ok: queued as \S+")
        msg = self.upstream.wait_for(f"swaks body {m}".encode(), DELIVERY_TIMEOUT)[0]
        self.assertEqual(msg["mail_from"], "a@x")
        self.assertEqual(msg["rcpt_tos"], ["b@y"])
        self.assertIn(f"Subject: swaks {m}".encode(), msg["raw"])

    def test_queue_id_in_log_lines(self):
        m = marker()
        r = smtp_send(self.mf.port, "a@x", ["b@y", "c@z"],
                      make_message([("Subject", f"log {m}")], b"log test\r\n"))
        self.assertEqual(r.code, 250, r)
        self.assertRegex(r.text, r"^2\.0\.0 Ok: queued as \S+$")
        qid = r.queue_id
        self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)
        received = self.mf.wait_event("received", qid)
        fields = received[0][1]
        self.assertEqual(fields.get("client"), "127.0.0.1", fields)
        self.assertEqual(fields.get("from"), "<a@x>", fields)
        self.assertEqual(fields.get("nrcpt"), "2", fields)
        self.assertTrue(fields.get("size", "").isdigit(), fields)
        self.mf.wait_event("attempt", qid)
        delivered = harness.wait_until(
            lambda: (lambda d: d if len(d) >= 2 else None)(self.mf.events("delivered", qid)),
            DELIVERY_TIMEOUT, what=f"two delivered lines for id={qid}")
        self.assertEqual(sorted(f.get("rcpt") for _, f in delivered), ["<b@y>", "<c@z>"])

    def test_8bitmime_body_intact(self):
        m = marker()
        body = ("Grüße aus Köln — ½ € ✓\r\n".encode("utf-8")
                + bytes(range(0x80, 0x100)) + b"\r\n"
                + b"end\r\n")
        original = make_message([("Subject", f"8bit {m}"), ("MIME-Version", "1.0"),
                                 ("Content-Type", "text/plain; charset=utf-8"),
                                 ("Content-Transfer-Encoding", "8bit")], body)
        s = smtp_connect(self.mf.port)
        try:
            self.assertTrue(s.has_extn("8bitmime"), "EHLO does not offer 8BITMIME")
            r = harness.smtp_send_on(s, "a@x", ["b@y"], original, ("BODY=8BITMIME",))
        finally:
            s.quit()
        self.assertEqual(r.code, 250, r)
        msg = self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)[0]
        check_added_headers(self, original, msg["raw"])
        self.assertEqual(body_of(msg["raw"]), body)
        self.assertIn("BODY=8BITMIME", [o.upper() for o in msg["mail_options"]],
                      "8-bit message relayed without BODY=8BITMIME (RFC 6152)")


class UntrustedTest(RelayCase):
    def test_untrusted_client_cannot_relay(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port, trusted=("10.0.0.0/8",))
        s = smtp_connect(mf.port)
        try:
            code, _ = s.mail("a@x")
            if code == 250:
                code, text = s.rcpt("b@y")
                self.assertIn(code, (550, 554), f"RCPT from an untrusted client got {code} {text!r}")
                self.assertIn(b"5.7.1", text)
                code, text = s.docmd("DATA")
                self.assertGreaterEqual(code, 500, f"DATA after refused RCPT got {code} {text!r}")
                if code == 354:   # should not happen; finish the data so the session is sane
                    s.send(b"x\r\n.\r\n")
                    s.getreply()
            else:
                self.assertGreaterEqual(code, 500, f"MAIL got {code}")
        finally:
            try:
                s.quit()
            except Exception:
                s.close()
        time.sleep(2.0)   # bounded grace: would anything be delivered anyway?
        self.assertEqual(up.count(), 0, "an untrusted client's message reached the upstream")
        self.assertEqual(spool_ids(mf.spool_dir, "queue"), [], "something was spooled")

    def test_sigterm_stops_serve(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        rc = mf.stop(signal.SIGTERM, grace=10.0)
        self.assertEqual(rc, 0, f"serve did not exit 0 within 10s of SIGTERM (status {rc})")


class PipeliningTest(RelayCase):
    """RFC 2920 towards the upstream: MAIL, every RCPT and DATA in one write when the upstream
    offers PIPELINING, one at a time when it does not; the outcome per recipient is the same."""

    def relay_three(self, up_args: list[str]) -> tuple[harness.Upstream, list[str], str]:
        up = self.start_upstream(args=["--fail-rcpt", "gone@y=550", *up_args])
        mf = self.start_mailferry(up.port)
        m = uuid.uuid4().hex
        r = smtp_send(mf.port, "sender@x", ["b@y", "gone@y", "c@y"],
                      make_message([("Subject", f"pipelining {m}")], b"pipelined\r\n"))
        self.assertEqual(r.code, 250, r)
        msgs = up.wait_for(m.encode(), 20.0)
        self.assertEqual(msgs[0]["rcpt_tos"], ["b@y", "c@y"])
        mf.wait_event("bounced", r.queue_id, timeout=20.0)
        conn = next(events for events in up.connections().values()
                    if any(e.startswith("C: MAIL FROM:<sender@x>") for e in events))
        return up, conn, r.queue_id

    def test_pipelined_when_offered(self):
        _, conn, _ = self.relay_three([])
        buffered = [e.split()[1] for e in conn if e.startswith("buffered-after ")]
        # MAIL and all three RCPTs were read with the rest of the group already there; DATA ends it.
        self.assertEqual(buffered[:4], ["MAIL", "RCPT", "RCPT", "RCPT"], conn)
        self.assertNotIn("DATA", buffered, conn)

    def test_one_at_a_time_when_not_offered(self):
        _, conn, _ = self.relay_three(["--no-pipelining"])
        self.assertEqual([e for e in conn if e.startswith("buffered-after")], [], conn)


class IdleConnectionTest(RelayCase):
    def test_trickle_reuses_one_upstream_connection_then_quits(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        for i in range(5):
            m = uuid.uuid4().hex
            r = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", f"trickle {i} {m}")], b"x\r\n"))
            self.assertEqual(r.code, 250, r)
            up.wait_for(m.encode(), 20.0)   # delivered: the upstream connection is idle again
            time.sleep(0.3)
        with_mail = [c for c in up.connections().values() if any(e.startswith("C: MAIL") for e in c)]
        self.assertEqual(len(with_mail), 1, f"expected one upstream connection: {up.connections()}")
        self.assertEqual(sum(1 for e in with_mail[0] if e.startswith("C: MAIL")), 5)
        # Idle for 2 s, it says QUIT and closes.
        harness.wait_until(lambda: up.connections()[min(up.connections())][-1] == "close", 10.0,
                           what="the idle upstream connection to close")
        conn = next(iter(up.connections().values()))
        self.assertIn("C: QUIT", conn, conn)


def greetings(port: int, n: int) -> tuple[list[socket.socket], list[bytes]]:
    """Opens n connections at once and reads each one's first reply line (bounded)."""
    socks, lines = [], []
    for _ in range(n):
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    for s in socks:
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(512)
            if not chunk:
                break
            buf += chunk
        lines.append(buf)
    return socks, lines


class ConnectionLimitTest(RelayCase):
    def close_all(self, socks):
        for s in socks:
            s.close()

    def test_51st_connection_from_one_untrusted_address_gets_421(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port, trusted=("10.0.0.0/8",))
        socks, lines = greetings(mf.port, 51)
        self.addCleanup(self.close_all, socks)
        self.assertEqual([l[:3] for l in lines[:50]], [b"220"] * 50, lines[:50])
        self.assertTrue(lines[50].startswith(b"421 4.7.0"), lines[50])

    def test_trusted_address_is_not_limited_per_address(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)   # 127.0.0.0/8 trusted
        socks, lines = greetings(mf.port, 60)
        self.addCleanup(self.close_all, socks)
        self.assertEqual([l[:3] for l in lines], [b"220"] * 60, [l for l in lines if not l.startswith(b"220")])


if __name__ == "__main__":
    harness.main()
