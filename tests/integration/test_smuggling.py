#!/usr/bin/python3
"""test_smuggling.py: no byte sequence inside DATA ends a message early, at mailferry or upstream
(SMTP smuggling, CVE-2023-51764/51765/51766 style).

Each session sends, over a raw socket, one message whose body holds
    <seq>MAIL FROM:<evil@x>\\r\\nRCPT TO:<victim@y>\\r\\nDATA\\r\\nsmuggled\\r\\n.\\r\\n
where <seq> is a fake end-of-data with bare CR or LF; the final "\\r\\n.\\r\\n" after
"smuggled" is the real terminator. Exactly one message per session may reach the upstream,
for the legitimate recipient only, with no bare CR or LF left in it.

    /usr/bin/python3 tests/integration/test_smuggling.py <path-to-mailferry>
"""

import socket
import time
import uuid

import harness
from harness import has_bare_cr_or_lf

SEQUENCES = ["\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n", "\n.\r", "\r.\r\n", "\r\n.\r"]
DELIVERY_TIMEOUT = 20.0


class RawSession:
    """A byte-exact SMTP client: what is written is what goes on the wire."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""

    def reply(self) -> tuple[int, bytes]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"connection closed; got {lines!r} {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"\n".join(lines)

    def command(self, line: bytes) -> tuple[int, bytes]:
        self.sock.sendall(line)
        return self.reply()

    def close(self):
        self.sock.close()


class SmugglingTest(harness.SharedRelayCase):
    def test_fake_terminators(self):
        markers = {}
        for seq in SEQUENCES:
            with self.subTest(seq=repr(seq)):
                m = uuid.uuid4().hex
                markers[seq] = m
                s = RawSession(self.mf.port)
                try:
                    self.assertEqual(s.reply()[0], 220)
                    self.assertEqual(s.command(b"EHLO client.test\r\n")[0], 250)
                    self.assertEqual(s.command(b"MAIL FROM:<legit@x>\r\n")[0], 250)
                    self.assertEqual(s.command(b"RCPT TO:<legit@y>\r\n")[0], 250)
                    self.assertEqual(s.command(b"DATA\r\n")[0], 354)
                    payload = (f"From: legit@x\r\nTo: legit@y\r\nSubject: smuggle {m}\r\n\r\n"
                               f"legit body{seq}MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\n"
                               f"DATA\r\nsmuggled\r\n.\r\n").encode()
                    code, text = s.command(payload)
                    self.assertEqual(code, 250, f"reply to the data: {text!r}")
                    self.assertRegex(text, rb"2\.0\.0 Ok: queued as \S+")
                    # Had mailferry ended the data at <seq>, the smuggled MAIL/RCPT/DATA would
                    # have been answered first, and QUIT's reply would not be next.
                    code, text = s.command(b"QUIT\r\n")
                    self.assertEqual(code, 221, f"reply to QUIT: {text!r}")
                finally:
                    s.close()

        self.upstream.wait_for_count(len(SEQUENCES), DELIVERY_TIMEOUT)
        time.sleep(2.0)   # bounded grace: would a smuggled second message follow?
        messages = self.upstream.messages()
        victims = [x for x in messages if "victim@y" in x["rcpt_tos"]
                   or x["mail_from"] == "evil@x"]
        self.assertEqual(victims, [], "a smuggled message reached the upstream")
        self.assertEqual(len(messages), len(SEQUENCES), [x["raw"][:200] for x in messages])
        for seq, m in markers.items():
            with self.subTest(seq=repr(seq)):
                got = [x for x in messages if m.encode() in x["raw"]]
                self.assertEqual(len(got), 1, f"messages for this session: {len(got)}")
                msg = got[0]
                self.assertEqual(msg["mail_from"], "legit@x")
                self.assertEqual(msg["rcpt_tos"], ["legit@y"])
                self.assertIn(b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\n", msg["raw"],
                              "the smuggling attempt should travel inside the one message")
                self.assertFalse(has_bare_cr_or_lf(msg["raw"]),
                                 f"bare CR or LF left upstream: {msg['raw'][-160:]!r}")


if __name__ == "__main__":
    harness.main()
