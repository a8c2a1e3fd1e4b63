#!/usr/bin/python3
"""test_tls_auth.py: TLS and AUTH on both sides, with real peers (issue 3).

Submission: msmtp (STARTTLS + AUTH PLAIN, verifying the listener against a test CA), swaks
--tlsc and `openssl s_client` on the implicit-TLS listener, `openssl s_client -starttls smtp`;
AUTH only after TLS, 538 before it, 535 for a wrong password, allowed_senders (553), failed
AUTH slowed then locked out (421), no password in the log.

Delivery: the aiosmtpd upstream (upstream.py) requires STARTTLS + AUTH and mailferry verifies
it through ca_file; a certificate for the wrong host name or from an unknown CA, and a server
that does not offer STARTTLS, get no AUTH and no MAIL (upstream.py's transcript shows what
crossed each connection); implicit-TLS ports; every credential source; a rejected password
keeps the message queued. check-config warns about secrets readable by others; a bad
certificate stops serve with exit 78.

The certificates (ECDSA P-256) are made at test time with the openssl CLI (harness.tls_pki).

    /usr/bin/python3 tests/integration/test_tls_auth.py <path-to-mailferry>
"""

import base64
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest
import uuid

import harness
from harness import (RelayCase, check_added_headers, make_message, new_upstream, run_mailferry,
                     smtp_send, spool_ids, toml_str, tls_pki, write_file)

EX_CONFIG = 78
DELIVERY_TIMEOUT = 20.0
TOOL_TIMEOUT = 30.0

ALICE, ALICE_PW = "alice", "Alice-pw-7Qx!"          # yescrypt hash from `mailferry passwd`
BOB, BOB_PW = "bob", "Bob-pw-Z3k#"                  # sha512-crypt hash from `openssl passwd -6`
BOB_SENDERS = ["bob@example.com", "@example.org"]
UP_USER, UP_PW = "relayuser", "Upstream-pw-K9v"     # what the test upstream accepts

# ECDHE key exchange and an AEAD cipher, in OpenSSL's names.
ECDHE_AEAD = re.compile(r"^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305|"
                        r"AES(128|256)-CCM(8)?)$")


def marker() -> str:
    return uuid.uuid4().hex


def run_tool(argv: list[str], input: bytes | None = None, timeout: float = TOOL_TIMEOUT,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run an external client (msmtp, swaks, openssl) bounded in time; output captured."""
    p = harness.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, env=env or {})
    try:
        out, err = p.communicate(input=input or b"", timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise AssertionError(f"{argv[0]} still running after {timeout}s:\n"
                             f"{out.decode(errors='replace')}\n{err.decode(errors='replace')}")
    return subprocess.CompletedProcess(argv, p.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


def sha512_crypt(password: str) -> str:
    r = run_tool(["openssl", "passwd", "-6", "-stdin"], input=(password + "\n").encode())
    if r.returncode != 0 or not r.stdout.startswith("$6$"):
        raise AssertionError(f"openssl passwd -6 failed: {r.stdout} {r.stderr}")
    return r.stdout.strip()


def plain_b64(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def secret_forms(*passwords: str) -> list[str]:
    """What a leaked password could look like in a log: itself and its SASL encodings."""
    out = []
    for pw in passwords:
        out.append(pw)
        out.append(base64.b64encode(pw.encode()).decode())
        for user in (ALICE, BOB, UP_USER):
            out.append(plain_b64(user, pw))
    return out


def client_context(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


def starttls_session(port: int, ca_file: str, timeout: float = 20.0) -> smtplib.SMTP:
    """EHLO, STARTTLS (verifying the certificate for 127.0.0.1), EHLO again. A reply other
    than the expected one raises smtplib.SMTPResponseException with it."""
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=timeout)
    try:
        for step in ("EHLO", "STARTTLS", "EHLO"):
            if step == "EHLO":
                code, text = s.ehlo()
                if code != 250:
                    raise smtplib.SMTPResponseException(code, text)
            else:
                code, text = s.starttls(context=client_context(ca_file))
                if code != 220:
                    raise smtplib.SMTPResponseException(code, text)
        return s
    except BaseException:
        s.close()
        raise


def close_quietly(s: smtplib.SMTP | None) -> None:
    if s is None:
        return
    try:
        s.quit()
    except (smtplib.SMTPException, OSError):
        s.close()


def auth_plain(s: smtplib.SMTP, user: str, password: str) -> tuple[int, str]:
    code, text = s.docmd("AUTH", "PLAIN " + plain_b64(user, password))
    return code, text.decode(errors="replace")


def auth_login(s: smtplib.SMTP, user: str, password: str) -> tuple[int, str]:
    code, text = s.docmd("AUTH", "LOGIN")
    if code != 334:
        return code, text.decode(errors="replace")
    code, text = s.docmd(base64.b64encode(user.encode()).decode())
    if code != 334:
        return code, text.decode(errors="replace")
    code, text = s.docmd(base64.b64encode(password.encode()).decode())
    return code, text.decode(errors="replace")


def submission_config(*, spool: str, starttls_port: int, implicit_port: int, pki,
                      users: list[tuple[str, str, list[str] | None]],
                      upstream_port: int, upstream_extra: str = "") -> str:
    lines = [
        f"spool_dir = {toml_str(spool)}",
        f"hostname = {toml_str(harness.HOSTNAME)}",
        'trusted_networks = ["127.0.0.0/8"]',   # trusted, yet auth = "required" still applies
        "",
        "[[listen]]",
        f'address = "127.0.0.1:{starttls_port}"',
        'tls = "starttls"',
        'auth = "required"',
        "",
        "[[listen]]",
        f'address = "127.0.0.1:{implicit_port}"',
        'tls = "implicit"',
        'auth = "required"',
        "",
        "[tls]",
        f"cert_file = {toml_str(pki.server_cert)}",
        f"key_file = {toml_str(pki.server_key)}",
        "",
    ]
    for name, hash_, senders in users:
        lines += ["[[user]]", f"name = {toml_str(name)}", f"password_hash = {toml_str(hash_)}"]
        if senders is not None:
            lines.append("allowed_senders = [" + ", ".join(toml_str(x) for x in senders) + "]")
        lines.append("")
    lines += [
        "[upstream]",
        'host = "localhost"',
        f'ports = [{{ port = {upstream_port}, tls = "starttls" }}]',
        f"username = {toml_str(UP_USER)}",
        f"password = {toml_str(UP_PW)}",
        f"ca_file = {toml_str(pki.ca_cert)}",
        upstream_extra,
        "",
        "[queue]",
        'retry_schedule = ["1s"]',
        'max_age = "1h"',
        "",
    ]
    return "\n".join(lines)


def start_submission_mailferry(workdir: str, cleanup, pki, upstream_port: int,
                               name: str = "mailferry") -> harness.Mailferry:
    starttls_port, implicit_port = harness.free_port(), harness.free_port()
    while implicit_port == starttls_port:
        implicit_port = harness.free_port()
    spool = os.path.join(workdir, name + "-spool")
    users = [(ALICE, harness.mailferry_hash(ALICE_PW), None),
             (BOB, sha512_crypt(BOB_PW), BOB_SENDERS)]
    cfg = write_file(os.path.join(workdir, name + ".toml"),
                     submission_config(spool=spool, starttls_port=starttls_port,
                                       implicit_port=implicit_port, pki=pki, users=users,
                                       upstream_port=upstream_port))
    mf = harness.Mailferry(workdir, cfg, name)
    mf.spool_dir = spool
    mf.starttls_port = starttls_port
    mf.implicit_port = implicit_port
    cleanup(mf.stop)
    mf.start(starttls_port)
    harness.wait_until(lambda: harness.port_accepts(implicit_port), 10.0,
                       what=f"the implicit-TLS listener on {implicit_port}")
    return mf


def upstream_tls_args(cert: str, key: str, *extra: str) -> list[str]:
    return ["--tls-cert", cert, "--tls-key", key, "--auth", f"{UP_USER}:{UP_PW}", *extra]


def s_client(args: list[str], stdin: bytes) -> subprocess.CompletedProcess:
    return run_tool(["openssl", "s_client", *args], input=stdin, timeout=TOOL_TIMEOUT)


def brief_field(stderr: str, name: str) -> str | None:
    m = re.search(rf"^{re.escape(name)}:\s*(.+)$", stderr, re.M)
    return m.group(1).strip() if m else None


# ======================================================================== submission side

class SubmissionTest(RelayCase):
    """One mailferry with a STARTTLS and an implicit-TLS listener (both auth = "required"),
    relaying to an upstream that requires STARTTLS + AUTH, verified through ca_file."""

    @classmethod
    def setUpClass(cls):
        cls.dir = cls.class_workdir()
        cls.pki = tls_pki(cls.dir)
        cls.upstream = new_upstream(cls.dir, cls.addClassCleanup,
                                    args=upstream_tls_args(cls.pki.server_cert,
                                                           cls.pki.server_key))
        cls.mf = start_submission_mailferry(cls.dir, cls.addClassCleanup, cls.pki,
                                            cls.upstream.port)

    def setUp(self):
        super().setUp()
        self.dump_log_on_failure(self.mf)

    def assert_upstream_got_auth_over_tls(self, msg: dict):
        self.assertEqual((msg.get("auth") or {}).get("user"), UP_USER,
                         f"upstream did not record AUTH by {UP_USER}: {msg.get('auth')}")
        tls = msg.get("tls") or {}
        self.assertEqual(tls.get("mode"), "starttls", f"not delivered over STARTTLS: {tls}")
        self.assertEqual(tls.get("version"), "TLSv1.2", tls)
        self.assertEqual(tls.get("sni"), "localhost", f"SNI not sent (or not the host): {tls}")
        events = self.upstream.connections().get(msg["conn"], [])
        cmds = [e[3:].split()[0] for e in events if e.startswith("C: ")]
        self.assertLess(cmds.index("STARTTLS"), cmds.index("AUTH"), cmds)

    def assert_no_secret_in_log(self, *extra: str):
        log = self.mf.log()
        for s in secret_forms(ALICE_PW, BOB_PW, UP_PW, *extra):
            self.assertNotIn(s, log, "a password (or its base64) appears in mailferry's log")

    # ---- real clients

    def test_msmtp_starttls_auth_through_verified_upstream(self):
        if shutil.which("msmtp") is None:
            self.skipTest("msmtp is not installed (Debian package msmtp)")
        m = marker()
        cfg = write_file(os.path.join(self.workdir, "msmtprc"), "\n".join([
            "account default",
            "host localhost",
            f"port {self.mf.starttls_port}",
            "tls on",
            "tls_starttls on",
            f"tls_trust_file {self.pki.ca_cert}",
            "auth plain",
            f"user {ALICE}",
            f"password {ALICE_PW}",
            "domain client.test",
            f"logfile {os.path.join(self.workdir, 'msmtp.log')}",
            "",
        ]))
        os.chmod(cfg, 0o600)   # msmtp refuses a config holding a password readable by others
        lf_message = (f"From: Sender <from@x>\nTo: rcpt@y\nSubject: msmtp {m}\n"
                      f"Date: Tue, 14 Nov 2023 10:00:00 +0100\nMessage-ID: <{m}@client.test>\n"
                      f"X-Test-Id: {m}\n\nHello over STARTTLS.\n.leading dot\n\nbye\n").encode()
        r = run_tool(["msmtp", "-C", cfg, "-f", "from@x", "rcpt@y"], input=lf_message)
        self.assertEqual(r.returncode, 0, f"msmtp exited {r.returncode}: {r.stderr}")
        msg = self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)[0]
        self.assertEqual(msg["mail_from"], "from@x")
        self.assertEqual(msg["rcpt_tos"], ["rcpt@y"])
        added = check_added_headers(self, lf_message.replace(b"\n", b"\r\n"), msg["raw"])
        self.assertEqual(set(added), {"received"})
        self.assert_upstream_got_auth_over_tls(msg)
        auths = [f for e, f in self.mf.events("auth") if f.get("user") == ALICE
                 and f.get("result") == "ok" and f.get("mechanism") == "PLAIN"]
        self.assertTrue(auths, "no 'auth ... user=alice mechanism=PLAIN result=ok' log line")
        self.assert_no_secret_in_log()

    def test_swaks_implicit_tls_auth_plain(self):
        swaks = os.environ.get("SWAKS") or shutil.which("swaks")
        if not swaks:
            self.skipTest("swaks is not installed")
        m = marker()
        r = run_tool([swaks, "--server", "127.0.0.1", "--port", str(self.mf.implicit_port),
                      "--tlsc", "--tls-verify", "--tls-ca-path", self.pki.ca_cert,
                      "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", ALICE_PW,
                      "--ehlo", "client.test", "--from", "alice@example.com", "--to", "b@y",
                      "--header", f"Subject: swaks {m}", "--body", f"implicit TLS {m}"])
        self.assertEqual(r.returncode, 0, f"swaks exited {r.returncode}:\n{r.stdout[-2000:]}")
        self.assertRegex(r.stdout, r"<~ +250 2\.0\.0 Ok: queued as \S+")
        self.assertRegex(r.stdout, r"<~ +235 ", "AUTH PLAIN not accepted over implicit TLS")
        msg = self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)[0]
        self.assert_upstream_got_auth_over_tls(msg)

    def check_tls_parameters(self, r: subprocess.CompletedProcess):
        self.assertEqual(brief_field(r.stderr, "Verification"), "OK", r.stderr)
        proto = brief_field(r.stderr, "Protocol version")
        cipher = brief_field(r.stderr, "Ciphersuite")
        self.assertEqual(proto, "TLSv1.2", r.stderr)
        self.assertRegex(cipher or "", ECDHE_AEAD, f"not an ECDHE AEAD suite: {cipher}")

    def test_openssl_s_client_implicit(self):
        common = ["-connect", f"127.0.0.1:{self.mf.implicit_port}", "-crlf",
                  "-CAfile", self.pki.ca_cert, "-verify_return_error",
                  "-verify_hostname", "localhost", "-servername", "localhost"]
        r = s_client([*common, "-quiet"], b"QUIT\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^220 ", "no 220 greeting over implicit TLS")
        self.assertIn("221", r.stdout)
        r = s_client([*common, "-brief", "-ign_eof"], b"EHLO client.test\nQUIT\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_tls_parameters(r)
        self.assertRegex(r.stdout, r"(?m)^250[- ]AUTH PLAIN LOGIN\s*$",
                         "AUTH PLAIN LOGIN not advertised on the implicit-TLS listener")
        self.assertNotIn("STARTTLS", r.stdout, "STARTTLS offered inside implicit TLS")

    def test_openssl_s_client_starttls(self):
        r = s_client(["-connect", f"127.0.0.1:{self.mf.starttls_port}", "-starttls", "smtp",
                      "-crlf", "-CAfile", self.pki.ca_cert, "-verify_return_error",
                      "-verify_hostname", "localhost", "-servername", "localhost",
                      "-brief", "-ign_eof"], b"EHLO client.test\nQUIT\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_tls_parameters(r)
        self.assertRegex(r.stdout, r"(?m)^250[- ]AUTH PLAIN LOGIN\s*$",
                         "AUTH PLAIN LOGIN not advertised after STARTTLS")
        self.assertIn("221", r.stdout)

    def test_old_protocols_refused(self):
        for flag in ("-tls1", "-tls1_1"):
            with self.subTest(protocol=flag):
                r = s_client(["-connect", f"127.0.0.1:{self.mf.implicit_port}", flag,
                              "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"], b"QUIT\n")
                self.assertNotEqual(brief_field(r.stderr, "Protocol version"),
                                    {"-tls1": "TLSv1", "-tls1_1": "TLSv1.1"}[flag],
                                    f"handshake with {flag} succeeded: {r.stderr}")
                self.assertNotEqual(r.returncode, 0, r.stderr)

    # ---- the rules, with a plain SMTP client

    def test_auth_only_after_starttls(self):
        s = smtplib.SMTP("127.0.0.1", self.mf.starttls_port, local_hostname="client.test",
                         timeout=20)
        try:
            code, text = s.ehlo()
            self.assertEqual(code, 250)
            self.assertTrue(s.has_extn("starttls"), f"STARTTLS not offered: {text!r}")
            self.assertFalse(s.has_extn("auth"), f"AUTH advertised before STARTTLS: {text!r}")
            self.assertNotIn(b"AUTH", text.upper())
            code, text = auth_plain(s, ALICE, ALICE_PW)
            self.assertEqual(code, 538, f"AUTH before STARTTLS: {code} {text}")
            self.assertTrue(text.startswith("5.7.11"), text)
            code, text = s.docmd("AUTH", "LOGIN")
            self.assertEqual(code, 538, f"AUTH LOGIN before STARTTLS: {code} {text!r}")
            code, text = s.mail("alice@example.com")
            self.assertEqual(code, 530, f"MAIL before STARTTLS/AUTH: {code} {text!r}")
        finally:
            close_quietly(s)

    def test_auth_mechanisms_after_starttls_and_mail_needs_auth(self):
        s = starttls_session(self.mf.starttls_port, self.pki.ca_cert)
        try:
            self.assertTrue(s.has_extn("auth"), "AUTH not advertised after STARTTLS")
            self.assertEqual(sorted(s.esmtp_features["auth"].upper().split()), ["LOGIN", "PLAIN"])
            self.assertFalse(s.has_extn("starttls"), "STARTTLS offered again after STARTTLS")
            code, text = s.mail("alice@example.com")
            self.assertEqual(code, 530, f"MAIL without AUTH from a trusted address: {text!r}")
            self.assertTrue(text.startswith(b"5.7.0"), text)
        finally:
            close_quietly(s)

    def test_auth_login_works(self):
        s = starttls_session(self.mf.starttls_port, self.pki.ca_cert)
        try:
            code, text = auth_login(s, ALICE, ALICE_PW)
            self.assertEqual(code, 235, f"AUTH LOGIN: {code} {text}")
        finally:
            close_quietly(s)
        self.assertTrue([f for e, f in self.mf.events("auth") if f.get("mechanism") == "LOGIN"
                         and f.get("result") == "ok"], "no auth ... mechanism=LOGIN result=ok")

    def test_wrong_password_535(self):
        wrong = "Wrong-pw-" + marker()[:8]
        s = starttls_session(self.mf.starttls_port, self.pki.ca_cert)
        try:
            code, text = auth_plain(s, ALICE, wrong)
            self.assertEqual(code, 535, f"wrong password: {code} {text}")
            self.assertTrue(text.startswith("5.7.8"), text)
            code, text = s.mail("alice@example.com")
            self.assertEqual(code, 530, "MAIL accepted after a failed AUTH")
        finally:
            close_quietly(s)
        self.assertTrue(harness.wait_until(
            lambda: [f for e, f in self.mf.events("auth") if f.get("user") == ALICE
                     and f.get("result") == "failed"], 5.0, what="auth ... result=failed"))
        self.assert_no_secret_in_log(wrong)

    def test_allowed_senders(self):
        # bob's hash is sha512-crypt from `openssl passwd -6`.
        s = starttls_session(self.mf.starttls_port, self.pki.ca_cert)
        try:
            code, text = auth_plain(s, BOB, BOB_PW)
            self.assertEqual(code, 235, f"bob (sha512-crypt hash) AUTH: {code} {text}")
            code, text = s.mail("someone@else.example")
            self.assertEqual(code, 553, f"a sender bob may not use: {code} {text!r}")
            self.assertTrue(text.startswith(b"5.7.1"), text)
            code, text = s.mail("alice@example.com")
            self.assertEqual(code, 553, f"another user's address: {code} {text!r}")
            m = marker()
            r = harness.smtp_send_on(s, "bob@example.com", ["r@y"],
                                     make_message([("Subject", f"bob {m}")], b"x\r\n"))
            self.assertEqual(r.code, 250, f"bob@example.com (listed): {r}")
            r = harness.smtp_send_on(s, "anyone@example.org", ["r@y"],
                                     make_message([("Subject", f"bob domain {m}")], b"x\r\n"))
            self.assertEqual(r.code, 250, f"anyone@example.org (@example.org listed): {r}")
            code, text = s.mail("anyone@sub.example.org")
            self.assertEqual(code, 553, f"a subdomain of a listed @domain: {code} {text!r}")
        finally:
            close_quietly(s)
        self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT, n=2)

    def test_secrets_not_in_log(self):
        """Successful and failed AUTH PLAIN and LOGIN, a delivery upstream: no password, and
        no base64 form of one, anywhere in the log."""
        wrong = "Wrong-pw-" + marker()[:8]
        s = starttls_session(self.mf.starttls_port, self.pki.ca_cert)
        try:
            auth_login(s, BOB, wrong)
            self.assertEqual(auth_plain(s, ALICE, ALICE_PW)[0], 235)
            m = marker()
            r = harness.smtp_send_on(s, "alice@example.com", ["r@y"],
                                     make_message([("Subject", f"log {m}")], b"x\r\n"))
            self.assertEqual(r.code, 250, r)
        finally:
            close_quietly(s)
        self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)
        harness.wait_until(lambda: self.mf.events("delivered", r.queue_id), 10.0,
                           what="the delivered log line")
        self.assert_no_secret_in_log(wrong)


# ======================================================================== AUTH throttling

class AuthThrottleTest(RelayCase):
    """Its own mailferry: the lockout of 127.0.0.1 lasts 15 minutes."""

    MAX_SECONDS = 60.0   # the whole test; slower than that is a failure, not a wait

    def test_failed_auth_slowed_then_locked_out(self):
        pki = tls_pki(self.workdir)
        dead_port = harness.free_port()     # nothing is delivered in this test
        mf = start_submission_mailferry(self.workdir, self.addCleanup, pki, dead_port)
        self.dump_log_on_failure(mf)
        started = time.monotonic()
        timings: list[tuple[int, float]] = []   # (reply code, seconds) per failed AUTH
        s = None
        locked_at = None
        try:
            # 10 failures over 5 connections, 2 each; stop at the first 421.
            for i in range(10):
                if time.monotonic() - started > self.MAX_SECONDS:
                    self.fail(f"10 failed AUTHs take more than {self.MAX_SECONDS:.0f}s: "
                              f"{timings}")
                if s is None or i % 2 == 0:
                    close_quietly(s)
                    s = None
                    try:
                        s = starttls_session(mf.starttls_port, pki.ca_cert, timeout=20)
                    except smtplib.SMTPResponseException as e:
                        if e.smtp_code == 421:
                            locked_at = i
                            break
                        raise
                    except smtplib.SMTPServerDisconnected:
                        locked_at = i
                        break
                t0 = time.monotonic()
                try:
                    code, text = auth_plain(s, ALICE, f"wrong-{i}")
                except smtplib.SMTPServerDisconnected:
                    self.fail(f"connection closed without a reply at failed AUTH #{i + 1}; "
                              f"so far {timings}")
                timings.append((code, time.monotonic() - t0))
                if code == 421:
                    self.assertTrue(text.startswith("4.7.0"), text)
                    locked_at = i
                    s = None     # closed by the server
                    break
                self.assertEqual(code, 535, f"failed AUTH #{i + 1}: {code} {text}")
        finally:
            close_quietly(s)
        # Locked out now (or never): even the right password on a new connection gets 421.
        code, text, where = (421, text, "failed AUTH") if locked_at is not None \
            else self.try_correct_password(mf, pki)
        print(f"\nauth-throttle: failed AUTH replies (code/seconds): "
              + ", ".join(f"{c}/{t:.2f}" for c, t in timings)
              + f"; then the right password: {code} {text!r} at {where}", flush=True)
        with self.subTest("failures 1-3 answered at once"):
            self.assertGreaterEqual(len(timings), 3, timings)
            for n, (c, t) in enumerate(timings[:3], 1):
                self.assertLess(t, 1.0, f"failure #{n} already slowed: {timings}")
        with self.subTest("failure 4 and later slowed by >= 1 s"):
            self.assertGreaterEqual(len(timings), 4, f"fewer than 4 AUTH replies: {timings}")
            for n, (c, t) in enumerate(timings[3:], 4):
                self.assertGreaterEqual(t, 1.0, f"failure #{n} not slowed >= 1s: {timings}")
        with self.subTest("locked out after 10 failures"):
            self.assertEqual(code, 421, f"after {len(timings)} failures the right password got "
                                        f"{code} {text!r} at {where}")
            self.assertIn("4.7.0", text)
            harness.wait_until(lambda: [f for e, f in mf.events("auth")
                                        if f.get("result") == "locked_out"], 5.0,
                               what="an 'auth ... result=locked_out' log line")
        self.assertNotIn(ALICE_PW, mf.log())

    def try_correct_password(self, mf, pki) -> tuple[int, str, str]:
        """(code, text, step) of the first non-success reply on a fresh connection that tries
        the right password; (235, ...) if it got in."""
        try:
            s = smtplib.SMTP("127.0.0.1", mf.starttls_port, local_hostname="client.test",
                             timeout=20)
        except smtplib.SMTPConnectError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace"), "greeting"
        except smtplib.SMTPServerDisconnected as e:
            return 0, str(e), "greeting (closed)"
        try:
            code, text = s.ehlo()
            if code != 250:
                return code, text.decode(errors="replace"), "EHLO"
            code, text = s.starttls(context=client_context(pki.ca_cert))
            if code != 220:
                return code, text.decode(errors="replace"), "STARTTLS"
            code, text = s.ehlo()
            if code != 250:
                return code, text.decode(errors="replace"), "EHLO after STARTTLS"
            code, text = auth_plain(s, ALICE, ALICE_PW)
            return code, text, "AUTH"
        except smtplib.SMTPServerDisconnected as e:
            return 0, f"closed: {e}", "connection closed without 421"
        finally:
            close_quietly(s)


# ======================================================================== delivery side

class UpstreamTlsTest(RelayCase):
    """Per test: one or two upstreams and a mailferry whose clients (127.0.0.1, trusted,
    tls = "none" listener) submit without AUTH; the upstream side is what is tested."""

    def setUp(self):
        super().setUp()
        self.pki = tls_pki(self.workdir)

    def tls_upstream(self, *extra: str, cert: str | None = None, key: str | None = None,
                     name: str = "upstream") -> harness.Upstream:
        return self.start_upstream(args=upstream_tls_args(cert or self.pki.server_cert,
                                                          key or self.pki.server_key, *extra),
                                   name=name)

    def relay(self, ports: str, credentials: str | None = None, extra: str = "",
              name: str = "mailferry") -> harness.Mailferry:
        if credentials is None:
            credentials = f"password = {toml_str(UP_PW)}"
        upstream = "\n".join([f"username = {toml_str(UP_USER)}", credentials,
                              f"ca_file = {toml_str(self.pki.ca_cert)}", extra])
        return self.start_mailferry(0, name=name, upstream_host="localhost",
                                    upstream_ports=ports, extra_upstream=upstream)

    def submit(self, mf) -> tuple[str, str]:
        m = marker()
        r = smtp_send(mf.port, "a@x", ["b@y"], make_message(
            [("From", "a@x"), ("To", "b@y"), ("Subject", f"upstream {m}")], f"{m}\r\n".encode()))
        self.assertEqual(r.code, 250, r)
        return m, r.queue_id

    def delivered(self, up, mf, m: str, qid: str, mode: str = "starttls",
                  mechanism: str | None = None) -> dict:
        msg = up.wait_for(m.encode(), DELIVERY_TIMEOUT)[0]
        self.assertEqual((msg.get("auth") or {}).get("user"), UP_USER, msg.get("auth"))
        if mechanism:
            self.assertEqual(msg["auth"]["mechanism"], mechanism, msg["auth"])
        tls = msg.get("tls") or {}
        self.assertEqual(tls.get("mode"), mode, tls)
        self.assertEqual(tls.get("version"), "TLSv1.2", tls)
        self.assertEqual(tls.get("sni"), "localhost", f"SNI: {tls}")
        mf.wait_event("delivered", qid, timeout=10)
        return msg

    def assert_nothing_after_ehlo_or_starttls(self, up):
        conns = up.connections()
        self.assertTrue(conns, "mailferry never connected to the upstream")
        for n, events in conns.items():
            cmds = [e[3:].split()[0] for e in events if e.startswith("C: ")]
            for forbidden in ("AUTH", "MAIL", "RCPT", "DATA", "BDAT"):
                self.assertNotIn(forbidden, cmds, f"{forbidden} sent on connection {n}: {events}")
            self.assertLessEqual(cmds.count("EHLO") + cmds.count("HELO"), 1,
                                 f"a command after the failed TLS step on connection {n}: {cmds}")
            self.assertFalse(set(cmds) - {"EHLO", "STARTTLS", "QUIT"},
                             f"connection {n}: {cmds}")

    def assert_kept_queued(self, mf, qid: str, up):
        # At least two attempts, each deferred: kept in the queue, not bounced, not delivered.
        harness.wait_until(lambda: len(mf.events("deferred", qid)) >= 2, 15.0,
                           what=f"two 'deferred' lines for {qid}; log:\n{mf.log()[-2000:]}")
        self.assertIn(qid, spool_ids(mf.spool_dir, "queue"))
        self.assertNotIn(qid, spool_ids(mf.spool_dir, "failed"))
        self.assertEqual(mf.events("bounced", qid), [])
        self.assertEqual(mf.events("delivered", qid), [])
        self.assertEqual(up.count(), 0)

    def connect_results(self, mf, port: int | None = None) -> list[str]:
        return [f.get("result", "") for e, f in mf.events("connect")
                if port is None or f.get("port") == str(port)]

    # ---- verification

    def test_verified_starttls_upstream(self):
        up = self.tls_upstream()
        mf = self.relay(f'[{{ port = {up.port}, tls = "starttls" }}]')
        m, qid = self.submit(mf)
        self.delivered(up, mf, m, qid)
        self.assertIn("ok", self.connect_results(mf, up.port))
        self.assertNotIn(UP_PW, mf.log())

    def check_refused_certificate(self, cert: str, key: str):
        up = self.tls_upstream(cert=cert, key=key)
        mf = self.relay(f'[{{ port = {up.port}, tls = "starttls" }}]')
        m, qid = self.submit(mf)
        harness.wait_until(lambda: "certificate" in self.connect_results(mf, up.port), 15.0,
                           what=f"connect ... result=certificate; log:\n{mf.log()[-2000:]}")
        self.assert_kept_queued(mf, qid, up)
        self.assert_nothing_after_ehlo_or_starttls(up)
        self.assertNotIn(UP_PW, mf.log())

    def test_certificate_for_wrong_host_name(self):
        self.check_refused_certificate(self.pki.wrong_cert, self.pki.wrong_key)

    def test_certificate_from_unknown_ca(self):
        self.check_refused_certificate(self.pki.other_cert, self.pki.other_key)

    def test_implicit_tls_certificate_from_unknown_ca(self):
        up = self.tls_upstream("--implicit-tls", cert=self.pki.other_cert,
                               key=self.pki.other_key)
        mf = self.relay(f'[{{ port = {up.port}, tls = "implicit" }}]')
        m, qid = self.submit(mf)
        harness.wait_until(lambda: "certificate" in self.connect_results(mf, up.port), 15.0,
                           what=f"connect ... result=certificate; log:\n{mf.log()[-2000:]}")
        self.assert_kept_queued(mf, qid, up)
        self.assertEqual(up.commands(), [], "a command crossed a connection whose TLS failed")

    def test_starttls_missing_falls_through_to_next_port(self):
        strip = self.tls_upstream("--no-starttls", name="middlebox")
        good = self.tls_upstream(name="good")
        mf = self.relay(f'[{{ port = {strip.port}, tls = "starttls" }}, '
                        f'{{ port = {good.port}, tls = "starttls" }}]')
        m, qid = self.submit(mf)
        self.delivered(good, mf, m, qid)
        self.assertIn("starttls_missing", self.connect_results(mf, strip.port),
                      mf.events("connect"))
        conns = strip.connections()
        self.assertTrue(conns, "the first port was not tried")
        for n, events in conns.items():
            cmds = [e[3:].split()[0] for e in events if e.startswith("C: ")]
            self.assertEqual([c for c in cmds if c != "QUIT"], ["EHLO"],
                             f"more than EHLO crossed a connection without STARTTLS: {events}")
        self.assertEqual(strip.count(), 0)

    def test_implicit_tls_upstream(self):
        up = self.tls_upstream("--implicit-tls")
        mf = self.relay(f'[{{ port = {up.port}, tls = "implicit" }}]')
        m, qid = self.submit(mf)
        self.delivered(up, mf, m, qid, mode="implicit")

    # ---- credentials

    def test_credentials_password(self):
        up = self.tls_upstream()
        mf = self.relay(f'[{{ port = {up.port}, tls = "starttls" }}]')
        m, qid = self.submit(mf)
        self.delivered(up, mf, m, qid)
        self.assertNotIn(UP_PW, mf.log())

    def test_credentials_password_file(self):
        path = write_file(os.path.join(self.workdir, "upstream.secret"), UP_PW + "\n")
        os.chmod(path, 0o600)
        up = self.tls_upstream()
        mf = self.relay(f'[{{ port = {up.port}, tls = "starttls" }}]',
                        credentials=f"password_file = {toml_str(path)}")
        m, qid = self.submit(mf)
        self.delivered(up, mf, m, qid)
        self.assertNotIn(UP_PW, mf.log())

    def test_credentials_password_command(self):
        up = self.tls_upstream()
        mf = self.relay(f'[{{ port = {up.port}, tls = "starttls" }}]',
                        credentials=f'password_command = ["/bin/echo", {toml_str(UP_PW)}]')
        m, qid = self.submit(mf)
        self.delivered(up, mf, m, qid)
        self.assertNotIn(UP_PW, mf.log())

    def test_auth_login_and_plain_chosen(self):
        for mech in ("login", "plain"):
            with self.subTest(auth=mech):
                up = self.tls_upstream(name=f"upstream-{mech}")
                mf = self.relay(f'[{{ port = {up.port}, tls = "starttls" }}]',
                                extra=f'auth = "{mech}"', name=f"mailferry-{mech}")
                m, qid = self.submit(mf)
                self.delivered(up, mf, m, qid, mechanism=mech.upper())

    def test_wrong_password_keeps_message_queued(self):
        wrong = "Wrong-upstream-pw-" + marker()[:6]
        up = self.tls_upstream(name="first")
        second = self.tls_upstream(name="second")
        mf = self.relay(f'[{{ port = {up.port}, tls = "starttls" }}, '
                        f'{{ port = {second.port}, tls = "starttls" }}]',
                        credentials=f"password = {toml_str(wrong)}")
        m, qid = self.submit(mf)
        harness.wait_until(lambda: "auth_rejected" in self.connect_results(mf, up.port), 15.0,
                           what=f"connect ... result=auth_rejected; log:\n{mf.log()[-2000:]}")
        self.assert_kept_queued(mf, qid, up)
        self.assertTrue([ev for ev in up.transcript() if "result=failed" in ev],
                        "the upstream saw no failed AUTH")
        self.assertNotIn("MAIL", up.commands())
        self.assertEqual(second.connections(), {},
                         "another port was tried after AUTH was rejected")
        self.assertNotIn(wrong, mf.log())


# ======================================================================== configuration

class TlsConfigTest(RelayCase):
    def setUp(self):
        super().setUp()
        self.pki = tls_pki(self.workdir)

    def config(self, name: str, *, cert: str, key: str, upstream: str) -> str:
        text = "\n".join([
            f"spool_dir = {toml_str(os.path.join(self.workdir, name + '-spool'))}",
            f"hostname = {toml_str(harness.HOSTNAME)}",
            "",
            *harness.listener_toml(harness.free_port(), "starttls", "required", cert, key),
            "[upstream]",
            'host = "localhost"',
            "ports = [587]",
            f"username = {toml_str(UP_USER)}",
            upstream,
            "",
        ])
        return write_file(os.path.join(self.workdir, name + ".toml"), text)

    def check_config_stderr(self, path: str, mode: int, key_mode: int = 0o600) -> str:
        os.chmod(path, mode)
        key = os.path.join(self.workdir, f"key-{key_mode:o}.pem")
        shutil.copyfile(self.pki.server_key, key)
        os.chmod(key, key_mode)
        cfg = self.config(f"mode{mode:o}-{key_mode:o}", cert=self.pki.server_cert, key=key,
                          upstream=f"password_file = {toml_str(path)}")
        r = run_mailferry("check-config", "-c", cfg)
        self.assertEqual(r.returncode, 0, f"check-config exited {r.returncode}: {r.stderr}")
        self.assertNotIn(UP_PW, r.stdout + r.stderr, "check-config shows the password")
        return r.stderr

    def test_check_config_warns_password_file_readable_by_others(self):
        path = write_file(os.path.join(self.workdir, "secret"), UP_PW + "\n")
        err = self.check_config_stderr(path, 0o644)
        lines = [l for l in err.splitlines() if path in l]
        self.assertEqual(len(lines), 1, f"expected one warning naming {path}:\n{err}")
        self.assertRegex(lines[0].lower(), r"warn|readable|mode",
                         f"not a warning: {lines[0]}")

    def test_check_config_quiet_for_private_password_file(self):
        path = write_file(os.path.join(self.workdir, "secret"), UP_PW + "\n")
        err = self.check_config_stderr(path, 0o600)
        self.assertNotIn(path, err, f"a warning for a mode 0600 file:\n{err}")
        self.assertNotIn("readable", err)

    def test_check_config_warns_tls_key_readable_by_others(self):
        path = write_file(os.path.join(self.workdir, "secret"), UP_PW + "\n")
        err = self.check_config_stderr(path, 0o600, key_mode=0o644)
        key = os.path.join(self.workdir, "key-644.pem")
        self.assertTrue([l for l in err.splitlines() if key in l],
                        f"no warning naming the key file {key} (mode 0644):\n{err}")

    def serve_exit(self, cfg: str) -> tuple[int, str]:
        log_path = os.path.join(self.workdir, "serve.log")
        with open(log_path, "wb") as log:
            p = harness.spawn([harness.MAILFERRY_BIN, "serve", "-c", cfg],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            try:
                rc = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                harness.stop_process(p)
                self.fail(f"serve started with a bad certificate:\n{open(log_path).read()}")
        with open(log_path, errors="replace") as f:
            return rc, f.read()

    def test_bad_certificate_stops_serve_with_78(self):
        garbage = write_file(os.path.join(self.workdir, "garbage.pem"),
                             "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                             "-----END CERTIFICATE-----\n")
        missing = os.path.join(self.workdir, "missing.pem")
        missing_key = os.path.join(self.workdir, "missing.key")
        cases = {
            "missing cert_file": (missing, self.pki.server_key, missing),
            "garbage cert_file": (garbage, self.pki.server_key, garbage),
            "missing key_file": (self.pki.server_cert, missing_key, missing_key),
            "key of another certificate": (self.pki.server_cert, self.pki.other_key, None),
        }
        for what, (cert, key, named) in cases.items():
            with self.subTest(what):
                cfg = self.config(what.replace(" ", "-"), cert=cert, key=key,
                                  upstream=f"password = {toml_str(UP_PW)}")
                rc, out = self.serve_exit(cfg)
                self.assertEqual(rc, EX_CONFIG, f"{what}: serve exited {rc}:\n{out}")
                if named is not None:
                    naming = [l for l in out.splitlines() if named in l]
                    self.assertEqual(len(naming), 1,
                                     f"{what}: expected one line naming {named}:\n{out}")
                else:
                    self.assertTrue(re.search(r"key|cert", out, re.I), out)


if __name__ == "__main__":
    harness.main()
