#!/usr/bin/python3
"""test_proxy.py: a listener with proxy_protocol = true takes the client's address from a PROXY
header (v1 text or v2 binary) sent by an address in proxy_from; that address then decides
trusted_networks and appears in the logs and in Received:. A connection from anywhere else, or
without a valid header, is closed before the greeting.

    /usr/bin/python3 tests/integration/test_proxy.py <path-to-mailferry>
"""

import os
import shutil
import smtplib
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


class DualStackTest(RelayCase):
    """A listener on [::] sees IPv4 clients as ::ffff:a.b.c.d: they still match IPv4
    trusted_networks, and logs name the IPv4 address."""

    def test_ipv4_client_of_a_dual_stack_listener(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6 in this kernel")
        up = self.start_upstream()
        port = free_port()
        listen = ["[[listen]]", f'address = "[::]:{port}"', 'tls = "none"', 'auth = "none"', ""]
        mf = self.start_mailferry(up.port, start=False, trusted=("127.0.0.2/32",))
        harness.write_file(mf.config_path, relay_config(
            spool_dir=mf.spool_dir, listen_port=port, upstream_port=up.port,
            trusted=("127.0.0.2/32",), listen=listen))
        mf.start(port)
        for source, expected in (("127.0.0.2", 250), ("127.0.0.3", 554)):
            with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0)) as s:
                s.ehlo("client.test")
                s.mail("a@x")
                code, _ = s.rcpt("b@y")
                self.assertEqual(code, expected, source)
                if code == 250:
                    marker = uuid.uuid4().hex
                    self.assertEqual(s.data(make_message([("Subject", marker)], b"dual\r\n"))[0], 250)
        up.wait_for(marker.encode(), 20.0)
        self.assertEqual(mf.events("received")[-1][1].get("client"), "127.0.0.2")


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

    def test_v4_mapped_v6_source_is_the_v4_client(self):
        # TCP6 with ::ffff:10.1.2.5 (a dual-stack proxy's view of an IPv4 client): 10.1.2.0/24.
        addresses = (socket.inet_pton(socket.AF_INET6, "::ffff:10.1.2.5") +
                     socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("!HH", 40000, 25))
        header = V2_SIGNATURE + bytes([0x21, 0x21]) + struct.pack("!H", len(addresses)) + addresses
        reply, marker = self.relay(header)
        self.assertTrue(reply.startswith(b"250 "), reply)
        self.up.wait_for(marker.encode(), 20.0)
        self.assertEqual(self.mf.events("received")[-1][1].get("client"), "10.1.2.5")

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


class HaproxyTest(RelayCase):
    """Debian's haproxy in front, send-proxy (v1) and send-proxy-v2, IPv4 and IPv6 clients: the
    relay decision follows the client's own address, which only haproxy knew."""

    def setUp(self):
        super().setUp()
        if shutil.which("haproxy") is None:
            self.skipTest("haproxy is not installed (Debian package haproxy)")
        if not ipv6_loopback():
            self.skipTest("no IPv6 loopback here")
        self.up = self.start_upstream()
        self.port = free_port()
        listen = ["[[listen]]", f'address = "127.0.0.1:{self.port}"', 'tls = "none"', 'auth = "none"',
                  "proxy_protocol = true", 'proxy_from = ["127.0.0.1/32"]', ""]
        # Clients 127.0.0.3 and ::1 may relay; 127.0.0.4 may not. haproxy itself (127.0.0.1) may not.
        self.mf = self.start_mailferry(self.up.port, start=False)
        harness.write_file(self.mf.config_path, relay_config(
            spool_dir=self.mf.spool_dir, listen_port=self.port, upstream_port=self.up.port,
            trusted=("127.0.0.3/32", "::1/128"), listen=listen))
        self.mf.start(self.port)
        self.v1_port, self.v2_port = free_port(), free_port()
        harness.start_haproxy(self.workdir, self.addCleanup, [
            "frontend v1", f"  bind 127.0.0.1:{self.v1_port}", f"  bind [::1]:{self.v1_port}",
            "  default_backend relay_v1",
            "frontend v2", f"  bind 127.0.0.1:{self.v2_port}", f"  bind [::1]:{self.v2_port}",
            "  default_backend relay_v2",
            "backend relay_v1", f"  server mf 127.0.0.1:{self.port} send-proxy",
            "backend relay_v2", f"  server mf 127.0.0.1:{self.port} send-proxy-v2"],
            [self.v1_port, self.v2_port])

    def send(self, port: int, source: str) -> tuple[harness.SendResult, str]:
        family = socket.AF_INET6 if ":" in source else socket.AF_INET
        s = smtplib.SMTP(timeout=20, local_hostname="client.test")
        s.sock = socket.socket(family, socket.SOCK_STREAM)
        s.sock.settimeout(20)
        s.sock.bind((source, 0))
        s.sock.connect(("::1" if family == socket.AF_INET6 else "127.0.0.1", port))
        s.file = None
        code, _ = s.getreply()
        self.assertEqual(code, 220)
        s.ehlo()
        marker = uuid.uuid4().hex
        try:
            r = harness.smtp_send_on(s, "a@x", ["b@y"], make_message([("Subject", marker)], b"via haproxy\r\n"))
        finally:
            s.close()
        return r, marker

    def test_clients_behind_haproxy(self):
        for port, version in ((self.v1_port, "send-proxy"), (self.v2_port, "send-proxy-v2")):
            for source, allowed in (("127.0.0.3", True), ("::1", True), ("127.0.0.4", False)):
                with self.subTest(version=version, client=source):
                    r, marker = self.send(port, source)
                    if allowed:
                        self.assertEqual(r.code, 250, r)
                        self.up.wait_for(marker.encode(), 20.0)
                        clients = [f.get("client") for e, f in self.mf.events("received")]
                        self.assertEqual(clients[-1], source, clients)
                    else:
                        self.assertEqual(r.code, 554, r)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


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
