#!/usr/bin/python3
"""test_reload.py: SIGHUP makes mailferry read its config again. Listeners, users, the
certificate and the upstream change without dropping a session that is already open; a bad
new config is refused with a log line and the old one keeps running.

    /usr/bin/python3 tests/integration/test_reload.py <path-to-mailferry>
"""

import base64
import hashlib
import os
import signal
import smtplib
import socket
import ssl
import uuid

import harness
from harness import RelayCase, free_port, make_message, relay_config, toml_str, write_file

WAIT = 15.0


def send_on(s: smtplib.SMTP, marker: str, rcpt: str = "b@y") -> harness.SendResult:
    data = make_message([("Subject", f"reload {marker}")], f"{marker}\r\n".encode())
    return harness.smtp_send_on(s, "a@x", [rcpt], data)


def der_fingerprint(pem_path: str) -> str:
    with open(pem_path, encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


class ReloadCase(RelayCase):
    def reload(self, mf: harness.Mailferry, config_text: str, expect: str) -> dict:
        """Writes the new config, sends SIGHUP and waits for the `expect` event that follows it."""
        before = len(mf.events(expect))
        write_file(mf.config_path, config_text)
        mf.proc.send_signal(signal.SIGHUP)
        events = harness.wait_until(lambda: mf.events(expect)[before:], WAIT,
                                    what=f"a '{expect}' line after SIGHUP; log:\n{mf.log()[-2000:]}")
        self.assertIsNone(mf.proc.poll(), "mailferry exited on SIGHUP")
        return events[0][1]


class BadConfigTest(ReloadCase):
    def test_bad_config_is_refused_and_the_old_one_keeps_running(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        with open(mf.config_path, encoding="utf-8") as f:
            good = f.read()
        s = harness.smtp_connect(mf.port)
        self.addCleanup(s.close)
        self.assertEqual(s.ehlo("client.test")[0], 250)

        # A syntax error: refused, with the file and line in the log.
        refused = self.reload(mf, good + "\n[upstream\n", "reload_refused")
        self.assertIn(mf.config_path, refused.get("error", ""), refused)
        self.assertEqual(mf.events("reloaded"), [])

        # A valid file whose new listener cannot bind (the port is taken): refused as a whole.
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy_port = taken.getsockname()[1]
        busy = good + f'\n[[listen]]\naddress = "127.0.0.1:{busy_port}"\ntls = "none"\nauth = "none"\n'
        refused = self.reload(mf, busy, "reload_refused")
        self.assertIn(str(busy_port), refused.get("error", ""), refused)
        self.assertEqual(mf.events("reloaded"), [])

        # The session opened before both reloads still relays, and so does a new one.
        m1, m2 = uuid.uuid4().hex, uuid.uuid4().hex
        r = send_on(s, m1)
        self.assertEqual(r.code, 250, r)
        r2 = harness.smtp_send(mf.port, "a@x", ["b@y"],
                               make_message([("Subject", m2)], f"{m2}\r\n".encode()))
        self.assertEqual(r2.code, 250, r2)
        up.wait_for(m1.encode(), WAIT)
        up.wait_for(m2.encode(), WAIT)


class ListenersAndUpstreamTest(ReloadCase):
    def test_listeners_and_upstream_change_without_dropping_a_session(self):
        up1 = self.start_upstream(name="upstream1")
        up2 = self.start_upstream(name="upstream2")
        mf = self.start_mailferry(up1.port)
        port1 = mf.port
        port2 = free_port()
        before = uuid.uuid4().hex
        r = harness.smtp_send(port1, "a@x", ["b@y"],
                              make_message([("Subject", before)], f"{before}\r\n".encode()))
        self.assertEqual(r.code, 250, r)
        up1.wait_for(before.encode(), WAIT)

        # A session in the middle of a transaction when the reload comes.
        s = harness.smtp_connect(port1)
        self.addCleanup(s.close)
        self.assertEqual(s.ehlo("client.test")[0], 250)
        self.assertEqual(s.mail("a@x")[0], 250)
        self.assertEqual(s.rcpt("b@y")[0], 250)

        new = relay_config(spool_dir=mf.spool_dir, listen_port=port2, upstream_port=up2.port)
        done = self.reload(mf, new, "reloaded")
        self.assertEqual((done.get("added"), done.get("removed")), ("1", "1"), done)
        self.assertFalse(harness.port_accepts(port1), "the removed listener still accepts")
        self.assertTrue(harness.port_accepts(port2), "the added listener does not accept")

        # The open session finishes its transaction and carries another one.
        m1 = uuid.uuid4().hex
        code, text = s.data(make_message([("Subject", m1)], f"{m1}\r\n".encode()))
        self.assertEqual(code, 250, text)
        m2 = uuid.uuid4().hex
        r = send_on(s, m2)
        self.assertEqual(r.code, 250, r)
        m3 = uuid.uuid4().hex
        r = harness.smtp_send(port2, "a@x", ["b@y"], make_message([("Subject", m3)], f"{m3}\r\n".encode()))
        self.assertEqual(r.code, 250, r)
        # Queued after the reload: every one goes to the new upstream, none to the old.
        for m in (m1, m2, m3):
            up2.wait_for(m.encode(), WAIT)
            self.assertEqual(up1.find(m.encode()), [], f"{m} went to the old upstream")
        self.assertEqual(len(up1.messages()), 1)


class EnvironmentTest(ReloadCase):
    def test_variables_still_apply_after_a_reload(self):
        up_file = self.start_upstream(name="upstream-file")
        up_env = self.start_upstream(name="upstream-env")
        with harness.environment(MAILFERRY_UPSTREAM_PORTS=f"{up_env.port}/none"):
            mf = self.start_mailferry(up_file.port)
        with open(mf.config_path, encoding="utf-8") as f:
            text = f.read()
        self.reload(mf, text.replace('hostname = ', 'hostname = "reloaded.test"\n# ', 1), "reloaded")
        m = uuid.uuid4().hex
        r = harness.smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", m)], f"{m}\r\n".encode()))
        self.assertEqual(r.code, 250, r)
        got = up_env.wait_for(m.encode(), WAIT)   # the variable still wins over the file's port
        self.assertIn(b"by reloaded.test", got[0]["raw"], "the file's change did not apply")
        self.assertEqual(up_file.messages(), [])


def tls_config(*, spool: str, port: int, upstream_port: int, cert: str, key: str,
               users: list[tuple[str, str]]) -> str:
    user_tables = "\n".join(f"[[user]]\nname = {toml_str(n)}\npassword_hash = {toml_str(h)}\n"
                            for n, h in users)
    return relay_config(spool_dir=spool, listen_port=port, upstream_port=upstream_port,
                        extra_top=user_tables,
                        listen=harness.listener_toml(port, "starttls", "required", cert, key))


class UsersAndCertificateTest(ReloadCase):
    def starttls(self, port: int) -> tuple[smtplib.SMTP, str]:
        """A STARTTLS session (certificate not verified: the test compares it instead)."""
        s = harness.smtp_connect(port)
        self.addCleanup(s.close)
        self.assertEqual(s.ehlo("client.test")[0], 250)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.assertEqual(s.starttls(context=ctx)[0], 220)
        self.assertEqual(s.ehlo("client.test")[0], 250)
        return s, hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest()

    def auth(self, s: smtplib.SMTP, user: str, password: str) -> int:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return s.docmd("AUTH", "PLAIN " + token)[0]

    def test_users_and_certificate_change_without_dropping_a_session(self):
        pki = harness.tls_pki(self.workdir)
        up = self.start_upstream()
        port = free_port()
        spool = os.path.join(self.workdir, "spool")
        alice, bob = ("alice", "Alice-pw-1"), ("bob", "Bob-pw-2")
        alice_hash, bob_hash = harness.mailferry_hash(alice[1]), harness.mailferry_hash(bob[1])
        cfg = write_file(os.path.join(self.workdir, "mailferry.toml"),
                         tls_config(spool=spool, port=port, upstream_port=up.port, cert=pki.server_cert,
                                    key=pki.server_key, users=[(alice[0], alice_hash)]))
        mf = harness.Mailferry(self.workdir, cfg)
        self.addCleanup(mf.stop)
        self.addCleanup(self._dump_log_on_failure, mf)
        mf.start(port)

        s, fingerprint = self.starttls(port)
        self.assertEqual(fingerprint, der_fingerprint(pki.server_cert))
        self.assertEqual(self.auth(s, *alice), 235)

        new = tls_config(spool=spool, port=port, upstream_port=up.port, cert=pki.other_cert,
                         key=pki.other_key, users=[(bob[0], bob_hash)])
        done = self.reload(mf, new, "reloaded")
        self.assertEqual((done.get("added"), done.get("removed"), done.get("users")), ("0", "0", "1"), done)

        # Alice's session, authenticated before the reload, goes on.
        m1 = uuid.uuid4().hex
        r = send_on(s, m1)
        self.assertEqual(r.code, 250, r)
        # A new session gets the new certificate; alice is gone, bob is in.
        s2, fingerprint2 = self.starttls(port)
        self.assertEqual(fingerprint2, der_fingerprint(pki.other_cert), "the old certificate after reload")
        self.assertEqual(self.auth(s2, *alice), 535)
        s3, _ = self.starttls(port)
        self.assertEqual(self.auth(s3, *bob), 235)
        m2 = uuid.uuid4().hex
        r = send_on(s3, m2)
        self.assertEqual(r.code, 250, r)
        up.wait_for(m1.encode(), WAIT)
        up.wait_for(m2.encode(), WAIT)


if __name__ == "__main__":
    harness.main()
