#!/usr/bin/python3
"""test_proxy.py: a listener with proxy_protocol = true takes the client's address from a PROXY
header (v1 text or v2 binary) sent by an address in proxy_from; that address then decides
trusted_networks and appears in the logs and in Received:. A connection from anywhere else, or
without a valid header, is closed before the greeting.

    /usr/bin/python3 tests/integration/test_proxy.py <path-to-mailferry>
"""

import socket
import ssl
import struct
import uuid

import harness
from harness import RelayCase, free_port, make_message, relay_config, toml_str

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(client: str, port: int = 40000) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 {port} 25\r\n".encode()


def v2(client: str, local: bool = False) -> bytes:
    if local:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    addresses = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, 25)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def read_reply(s: socket.socket) -> bytes:
    """One complete SMTP reply (bounded by the socket's timeout); b"" when the server closed."""
    buf = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return buf
        buf += chunk
        lines = buf.split(b"\r\n")
        if len(lines) >= 2 and len(lines[-2]) >= 4 and lines[-2][3:4] == b" ":
            return buf


def converse(s: socket.socket, command: bytes) -> bytes:
    s.sendall(command)
    return read_reply(s)


class ProxyTest(RelayCase):
    def setUp(self):
        super().setUp()
        self.up = self.start_upstream()
        self.port = free_port()
        listen = ["[[listen]]", f'address = "127.0.0.1:{self.port}"', 'tls = "none"', 'auth = "none"',
                  "proxy_protocol = true", 'proxy_from = ["127.0.0.1/32"]', ""]
        self.mf = self.start_mailferry(self.up.port, start=False, trusted=("10.1.2.0/24",))
        harness.write_file(self.mf.config_path, relay_config(
            spool_dir=self.mf.spool_dir, listen_port=self.port, upstream_port=self.up.port,
            trusted=("10.1.2.0/24",), listen=listen))
        self.mf.start(self.port)

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10, source_address=(source, 0))
        self.addCleanup(s.close)
        return s

    def relay(self, header: bytes) -> tuple[bytes, str]:
        """Header and EHLO in one write (the rest after a header must reach the session), then a
        transaction. Returns the reply to RCPT (or DATA's final reply) and the marker."""
        s = self.connect()
        s.sendall(header + b"EHLO client.test\r\n")
        greeting = read_reply(s)
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        ehlo = greeting[greeting.index(b"\r\n") + 2:] or read_reply(s)
        self.assertTrue(ehlo.startswith(b"250"), ehlo)
        self.assertTrue(converse(s, b"MAIL FROM:<a@x>\r\n").startswith(b"250"))
        rcpt = converse(s, b"RCPT TO:<b@y>\r\n")
        marker = uuid.uuid4().hex
        if not rcpt.startswith(b"250"):
            return rcpt, marker
        self.assertTrue(converse(s, b"DATA\r\n").startswith(b"354"))
        body = make_message([("Subject", marker)], b"via a proxy\r\n")
        return converse(s, body + b".\r\n"), marker

    def test_v1_header_gives_the_client_address(self):
        reply, marker = self.relay(v1("10.1.2.3"))
        self.assertTrue(reply.startswith(b"250 "), reply)
        got = self.up.wait_for(marker.encode(), 20.0)
        self.assertIn(b"[10.1.2.3]", got[0]["raw"].split(b"\r\n\r\n")[0], "Received: lacks the client")
        received = self.mf.events("received")
        self.assertEqual(received[-1][1].get("client"), "10.1.2.3", received)

    def test_v2_header_gives_the_client_address(self):
        reply, marker = self.relay(v2("10.1.2.4"))
        self.assertTrue(reply.startswith(b"250 "), reply)
        self.up.wait_for(marker.encode(), 20.0)
        self.assertEqual(self.mf.events("received")[-1][1].get("client"), "10.1.2.4")

    def test_untrusted_real_client_cannot_relay(self):
        reply, _ = self.relay(v1("10.9.9.9"))
        self.assertTrue(reply.startswith(b"554 5.7.1"), reply)

    def test_v2_local_is_the_proxy_itself(self):
        # LOCAL (a health check): the connection's own address, 127.0.0.1, not trusted here.
        reply, _ = self.relay(v2("", local=True))
        self.assertTrue(reply.startswith(b"554 5.7.1"), reply)

    def test_no_header_is_closed_before_the_greeting(self):
        s = self.connect()
        s.sendall(b"EHLO client.test\r\n")
        self.assertEqual(read_reply(s), b"")
        rejected = self.mf.events("rejected")[-1][1]
        self.assertEqual(rejected.get("reason"), "proxy_header")
        self.assertTrue(rejected.get("error"), rejected)   # the parser's reason, for the operator

    def test_header_from_outside_proxy_from_is_refused(self):
        s = self.connect(source="127.0.0.2")
        try:
            s.sendall(v1("10.1.2.3") + b"EHLO client.test\r\n")
        except OSError:
            pass   # already closed
        self.assertEqual(read_reply(s), b"")
        mine = lambda: [f for e, f in self.mf.events("rejected") if f.get("client") == "127.0.0.2"]
        harness.wait_until(mine, 5.0, what="a rejected line for 127.0.0.2")
        self.assertEqual([f.get("reason") for f in mine()], ["not_in_proxy_from"])
        self.assertEqual(self.mf.events("received"), [])


class ProxyImplicitTlsTest(RelayCase):
    def test_implicit_tls_after_the_header_in_the_same_write(self):
        pki = harness.tls_pki(self.workdir)
        up = self.start_upstream()
        port = free_port()
        listen = ["[[listen]]", f'address = "127.0.0.1:{port}"', 'tls = "implicit"', 'auth = "none"',
                  "proxy_protocol = true", 'proxy_from = ["127.0.0.1/32"]', "",
                  "[tls]", f"cert_file = {toml_str(pki.server_cert)}", f"key_file = {toml_str(pki.server_key)}", ""]
        mf = self.start_mailferry(up.port, start=False)
        harness.write_file(mf.config_path, relay_config(
            spool_dir=mf.spool_dir, listen_port=port, upstream_port=up.port, listen=listen))
        mf.start(port)
        # The ClientHello goes out in the same write as the header: the daemon must hand the
        # bytes after the header to the TLS handshake.
        ctx = ssl.create_default_context(cafile=pki.ca_cert)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(v1("127.0.0.1") + outgoing.read())
        for _ in range(50):   # bounded: a TLS 1.2 handshake is two round trips
            data = s.recv(65536)
            self.assertNotEqual(data, b"", "closed during the handshake")
            incoming.write(data)
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            finally:
                pending = outgoing.read()
                if pending:
                    s.sendall(pending)
        s.sendall(outgoing.read())
        greeting = b""
        for _ in range(50):
            try:
                greeting += tls.read(4096)
                if greeting.endswith(b"\r\n"):
                    break
            except ssl.SSLWantReadError:
                incoming.write(s.recv(65536))
        self.assertTrue(greeting.startswith(b"220 "), greeting)


if __name__ == "__main__":
    harness.main()
