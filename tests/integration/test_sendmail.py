#!/usr/bin/python3
"""test_sendmail.py: `mailferry sendmail` (and the binary called as `sendmail`) with its real
callers (issue 5): PHP mail() via php-cli, mail(1) from bsd-mailx, git send-email, and a -bs
session driven the way Symfony Mailer drives it; -t with a folded Bcc; the dot rules with and
without -i; usage errors; running as `nobody`; the daemon path (hand-over on the local socket,
exit 0 once spooled) and the direct path (no daemon: exit 0 only once the upstream accepted,
75 and nothing kept when it is down, 69 on a 5xx).

Every message is checked where it lands, in the test upstream's maildir: envelope, headers, body.

    /usr/bin/python3 tests/integration/test_sendmail.py <path-to-mailferry>
"""

import json
import os
import re
import select
import shlex
import shutil
import subprocess
import time
import unittest
import uuid

import harness
from harness import (HOSTNAME, RelayCase, body_of, field_name, field_value, has_bare_cr_or_lf,
                     header_fields, new_mailferry, new_upstream, relay_config, write_file)

EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_TEMPFAIL = 64, 65, 69, 75
DELIVERY_TIMEOUT = 20.0
TOOL_TIMEOUT = 60.0
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def marker() -> str:
    return uuid.uuid4().hex


def headers_of(raw: bytes) -> dict[str, list[str]]:
    """{lower-case name: [unfolded value, ...]} of a delivered message."""
    out: dict[str, list[str]] = {}
    fields, _ = header_fields(raw)
    for f in fields:
        out.setdefault(field_name(f), []).append(field_value(f))
    return out


def run(argv: list[str], input: bytes | None = b"", env: dict | None = None,
        timeout: float = TOOL_TIMEOUT, cwd: str | None = None) -> subprocess.CompletedProcess:
    """A bounded, tracked child; output captured (bytes)."""
    p = harness.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, env=env or {}, cwd=cwd)
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise AssertionError(f"{argv} still running after {timeout}s; stderr: {err!r}")
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def stderr_lines(r: subprocess.CompletedProcess) -> list[str]:
    return r.stderr.decode(errors="replace").splitlines()


class SendmailCase(RelayCase):
    """One upstream; a daemon config (mailferry serve runs on it) and a direct config (same
    upstream, a spool no daemon serves). The class dir and both configs are readable by
    nobody; the daemon's spool stays root's."""

    @classmethod
    def setUpClass(cls):
        cls.dir = cls.class_workdir()
        os.chmod(cls.dir, 0o755)
        cls.upstream = new_upstream(cls.dir, cls.addClassCleanup)
        cls.mf = new_mailferry(cls.dir, cls.addClassCleanup, cls.upstream.port)
        os.chmod(cls.mf.config_path, 0o644)
        cls.direct_cfg = write_file(
            os.path.join(cls.dir, "direct.toml"),
            relay_config(spool_dir=os.path.join(cls.dir, "direct-spool"),
                         listen_port=harness.free_port(), upstream_port=cls.upstream.port))
        os.chmod(cls.direct_cfg, 0o644)
        # A directory with a `sendmail` symlink to the binary, as a user would install it.
        cls.bindir = os.path.join(cls.dir, "bin")
        os.makedirs(cls.bindir)
        os.chmod(cls.bindir, 0o755)
        cls.sendmail_link = os.path.join(cls.bindir, "sendmail")
        os.symlink(harness.MAILFERRY_BIN, cls.sendmail_link)

    def setUp(self):
        super().setUp()
        self.dump_log_on_failure(self.mf)

    # ------------------------------------------------------------ helpers

    def sendmail(self, args: list[str], message: bytes, *, daemon: bool, prefix=(),
                 argv0: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        cfg = self.mf.config_path if daemon else self.direct_cfg
        cmd = [argv0] if argv0 else [harness.MAILFERRY_BIN, "sendmail"]
        return run([*prefix, *cmd, *args], message,
                   env={"MAILFERRY_CONFIG": cfg, **(env or {})})

    def assert_ok(self, r: subprocess.CompletedProcess, what: str = "sendmail"):
        self.assertEqual(r.returncode, 0,
                         f"{what} exited {r.returncode}; stderr: {r.stderr!r} stdout: {r.stdout[-500:]!r}")

    def delivered_direct(self, m: str) -> dict:
        """Direct path: the upstream had accepted before sendmail exited; exactly one copy."""
        got = self.upstream.find(m.encode())
        self.assertEqual(len(got), 1, f"direct delivery: {len(got)} copies at the upstream "
                                      "right after exit 0 (expected 1)")
        return got[0]

    def delivered_via_daemon(self, m: str) -> dict:
        """Daemon path: it arrives at the upstream, once."""
        msg = self.upstream.wait_for(m.encode(), DELIVERY_TIMEOUT)[0]
        time.sleep(0.2)
        self.assertEqual(len(self.upstream.find(m.encode())), 1, "delivered more than once")
        return msg

    def received_events_from(self, user: str) -> list[dict]:
        return [f for _, f in self.mf.events("received") if f.get("client") == f"local:{user}"]

    def assert_lines_crlf(self, raw: bytes):
        self.assertFalse(has_bare_cr_or_lf(raw), f"bare CR or LF upstream: {raw[:300]!r}")


# ================================================================ real callers

class CallersTest(SendmailCase):

    def php_mail(self, cfg: str, to: str, subject: str, body: str, headers: str = ""):
        if not shutil.which("php"):
            self.skipTest("php is not installed (Debian package php-cli)")
        q = json.dumps   # a JSON string is a PHP double-quoted string for these values (no $)
        code = (f"$ok = mail({q(to)}, {q(subject)}, {q(body)}, {q(headers)}); "
                "fwrite(STDOUT, $ok ? 'MAIL-OK' : 'MAIL-FAILED'); exit($ok ? 0 : 1);")
        sendmail_path = f"{shlex.quote(harness.MAILFERRY_BIN)} sendmail -t -i"
        return run(["php", "-d", f"sendmail_path={sendmail_path}", "-r", code], None,
                   env={"MAILFERRY_CONFIG": cfg})

    def test_php_mail_with_daemon(self):
        m = marker()
        before = len(self.received_events_from("root"))
        r = self.php_mail(self.mf.config_path, "b@example.net", f"php daemon {m}",
                          f"php body {m}\nsecond line",
                          "From: Alice <alice@example.org>\r\nCc: c@example.net")
        self.assert_ok(r, "php")
        self.assertEqual(r.stdout, b"MAIL-OK", r)
        msg = self.delivered_via_daemon(m)
        self.assertEqual(msg["mail_from"], "alice@example.org")
        self.assertEqual(sorted(msg["rcpt_tos"]), ["b@example.net", "c@example.net"])
        h = headers_of(msg["raw"])
        self.assertEqual(h.get("subject"), [f"php daemon {m}"])
        self.assertEqual(h.get("to"), ["b@example.net"])
        self.assertEqual(h.get("from"), ["Alice <alice@example.org>"])
        self.assertEqual(len(h.get("date", [])), 1, h)
        self.assertEqual(len(h.get("message-id", [])), 1, h)
        self.assertEqual(body_of(msg["raw"]), f"php body {m}\r\nsecond line\r\n".encode())
        self.assert_lines_crlf(msg["raw"])
        self.assertGreater(len(self.received_events_from("root")), before,
                           "no 'received ... client=local:root' line in the daemon log")

    def test_php_mail_direct(self):
        m = marker()
        r = self.php_mail(self.direct_cfg, "b@example.net", f"php direct {m}", f"php body {m}")
        self.assert_ok(r, "php")
        self.assertEqual(r.stdout, b"MAIL-OK", r)
        msg = self.delivered_direct(m)
        # No From: and no -f: the envelope sender is the invoking user at hostname, and a From:
        # is added.
        self.assertEqual(msg["mail_from"], f"root@{HOSTNAME}")
        self.assertEqual(msg["rcpt_tos"], ["b@example.net"])
        h = headers_of(msg["raw"])
        self.assertEqual(h.get("subject"), [f"php direct {m}"])
        self.assertEqual(len(h.get("from", [])), 1, f"no From: added: {h}")
        self.assertIn(f"root@{HOSTNAME}", h["from"][0])
        self.assertEqual(len(h.get("date", [])), 1, h)
        self.assertEqual(len(h.get("message-id", [])), 1, h)
        self.assertEqual(body_of(msg["raw"]), f"php body {m}\r\n".encode())

    def test_bsd_mailx(self):
        """mail(1) from bsd-mailx, its `sendmail` variable pointing at a `sendmail` symlink
        (set in the file $MAILRC names), `sendwait` so that mail reports the exit status."""
        mail = shutil.which("bsd-mailx") or shutil.which("mail")
        if not mail:
            self.skipTest("mail is not installed (Debian package bsd-mailx)")
        home = os.path.join(self.workdir, "home")
        os.makedirs(home)
        mailrc = write_file(os.path.join(self.workdir, "mailrc"),
                            f"set sendmail={self.sendmail_link}\nset sendwait\n")
        m = marker()
        before = len(self.received_events_from("root"))
        r = run([mail, "-s", f"mailx {m}", "-r", "alice@example.org", "-c", "c@example.net",
                 "b@example.net"], f"mailx body {m}\n.leading dot\n".encode(),
                env={"MAILFERRY_CONFIG": self.mf.config_path, "MAILRC": mailrc, "HOME": home})
        self.assert_ok(r, "mail")
        self.assertFalse(os.path.exists(os.path.join(home, "dead.letter")), "mail saved dead.letter")
        msg = self.delivered_via_daemon(m)
        self.assertEqual(msg["mail_from"], "alice@example.org")
        self.assertEqual(sorted(msg["rcpt_tos"]), ["b@example.net", "c@example.net"])
        h = headers_of(msg["raw"])
        self.assertEqual(h.get("subject"), [f"mailx {m}"])
        self.assertEqual(h.get("cc"), ["c@example.net"])
        self.assertEqual(body_of(msg["raw"]), f"mailx body {m}\r\n.leading dot\r\n".encode())
        self.assertGreater(len(self.received_events_from("root")), before)

    def test_git_send_email(self):
        exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                                   timeout=30).stdout.strip() if shutil.which("git") else ""
        if not exec_path or not os.path.exists(os.path.join(exec_path, "git-send-email")):
            self.skipTest("git send-email is not installed (Debian package git-email)")
        repo = os.path.join(self.workdir, "repo")
        m = marker()
        genv = {"HOME": self.workdir, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
                "GIT_AUTHOR_NAME": "Tess Ter", "GIT_AUTHOR_EMAIL": "tess@example.org",
                "GIT_COMMITTER_NAME": "Tess Ter", "GIT_COMMITTER_EMAIL": "tess@example.org"}
        for argv in (["git", "init", "-q", repo],
                     ["git", "-C", repo, "commit", "-q", "--allow-empty", "-m", "init"]):
            self.assertEqual(run(argv, env=genv).returncode, 0, argv)
        write_file(os.path.join(repo, "hello.txt"), f"hello {m}\n.dot line\n")
        self.assertEqual(run(["git", "-C", repo, "add", "hello.txt"], env=genv).returncode, 0)
        self.assertEqual(run(["git", "-C", repo, "commit", "-q", "-m", f"add hello {m}"],
                             env=genv).returncode, 0)
        patches = os.path.join(self.workdir, "patches")
        fp = run(["git", "-C", repo, "format-patch", "-q", "-1", "-o", patches], env=genv)
        self.assertEqual(fp.returncode, 0, fp)
        patch = os.path.join(patches, sorted(os.listdir(patches))[0])
        r = run(["git", "-C", repo, "send-email", "--confirm=never", "--suppress-cc=all",
                 f"--sendmail-cmd={shlex.quote(harness.MAILFERRY_BIN)} sendmail",
                 "--from=Tess Ter <tess@example.org>", "--to=b@example.net",
                 "--cc=c@example.net", "--bcc=d@example.net", patch], None,
                env={**genv, "MAILFERRY_CONFIG": self.direct_cfg})
        self.assert_ok(r, "git send-email")
        msg = self.delivered_direct(m)
        self.assertEqual(msg["mail_from"], "tess@example.org")
        self.assertEqual(sorted(msg["rcpt_tos"]), ["b@example.net", "c@example.net", "d@example.net"])
        h = headers_of(msg["raw"])
        self.assertEqual(h.get("subject"), [f"[PATCH] add hello {m}"])
        self.assertEqual(h.get("to"), ["b@example.net"])
        self.assertEqual(h.get("cc"), ["c@example.net"])
        self.assertNotIn("bcc", h)
        self.assertEqual(len(h.get("message-id", [])), 1, h)
        self.assertIn(b"\r\n+hello " + m.encode() + b"\r\n+.dot line\r\n", msg["raw"])
        self.assert_lines_crlf(msg["raw"])


# ================================================================ options and message rules

class OptionsTest(SendmailCase):

    def test_t_with_to_cc_and_folded_bcc(self):
        for daemon in (True, False):
            with self.subTest(daemon=daemon):
                m = marker()
                body = f"bcc body {m}\n".encode()
                msg_in = (b"From: Alice <alice@example.org>\n"
                          b"To: Bob <b@example.net>\n"
                          b"Cc: c@example.net\n"
                          b"Bcc: d@example.net,\n"
                          b"\tEve Hidden <e@example.net>\n"
                          b"Subject: bcc " + m.encode() + b"\n\n" + body)
                r = self.sendmail(["-t", "-i"], msg_in, daemon=daemon)
                self.assert_ok(r)
                msg = self.delivered_via_daemon(m) if daemon else self.delivered_direct(m)
                self.assertEqual(msg["mail_from"], "alice@example.org")
                self.assertEqual(sorted(msg["rcpt_tos"]),
                                 ["b@example.net", "c@example.net", "d@example.net", "e@example.net"])
                h = headers_of(msg["raw"])
                self.assertNotIn("bcc", h, f"Bcc: went upstream: {msg['raw'][:600]!r}")
                fields, _ = header_fields(msg["raw"])
                for f in fields:
                    if field_name(f) != "received":
                        self.assertNotIn(b"e@example.net", f, "the folded Bcc line went upstream")
                        self.assertNotIn(b"d@example.net", f, "the Bcc line went upstream")
                self.assertNotIn(b"Eve Hidden", msg["raw"])
                self.assertEqual(h.get("to"), ["Bob <b@example.net>"])
                self.assertEqual(h.get("cc"), ["c@example.net"])
                self.assertEqual(body_of(msg["raw"]), body.replace(b"\n", b"\r\n"))

    def test_bcc_removed_without_t(self):
        m = marker()
        r = self.sendmail(["-i", "b@example.net"],
                          f"From: a@example.org\nTo: b@example.net\nBcc: z@example.net\n"
                          f"Subject: {m}\n\nx\n".encode(), daemon=False)
        self.assert_ok(r)
        msg = self.delivered_direct(m)
        self.assertEqual(msg["rcpt_tos"], ["b@example.net"], "Bcc: counted without -t")
        self.assertNotIn("bcc", headers_of(msg["raw"]))

    def test_sendmail_symlink_name(self):
        m = marker()
        msg_in = f"To: b@example.net\nSubject: link {m}\n\nlink body {m}\n".encode()
        # -f attached, -F, ignored options real callers pass, grouped -ti, -v.
        r = self.sendmail(["-oi", "-odi", "-oem", "-B", "8BITMIME", "-fsender@example.org",
                           "-F", "Cron Daemon", "-ti", "-v"], msg_in, daemon=True,
                          argv0=self.sendmail_link)
        self.assert_ok(r, "sendmail (symlink)")
        self.assertRegex(r.stderr.decode(), r"^mailferry sendmail: queued as \S+\n$")
        qid = r.stderr.decode().split()[-1]
        msg = self.delivered_via_daemon(m)
        self.assertEqual(msg["mail_from"], "sender@example.org")
        self.assertEqual(msg["rcpt_tos"], ["b@example.net"])
        h = headers_of(msg["raw"])
        self.assertEqual(len(h.get("from", [])), 1, h)
        self.assertIn("Cron Daemon", h["from"][0])
        self.assertIn("sender@example.org", h["from"][0])
        self.assertTrue(self.mf.events("received", qid), f"no received line for id={qid}")
        # The same through PATH, argv[0] = "sendmail", direct, -f separate, recipient after --.
        m2 = marker()
        r = run(["sendmail", "-i", "-v", "-f", "other@example.org", "--", "c@example.net"],
                f"Subject: link2 {m2}\n\nx\n".encode(),
                env={"MAILFERRY_CONFIG": self.direct_cfg,
                     "PATH": self.bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")})
        self.assert_ok(r, "sendmail via PATH")
        self.assertEqual(r.stderr.decode(), "mailferry sendmail: delivered to 127.0.0.1\n")
        msg = self.delivered_direct(m2)
        self.assertEqual((msg["mail_from"], msg["rcpt_tos"]), ("other@example.org", ["c@example.net"]))

    def test_dots_without_i(self):
        m = marker()
        msg_in = (f"To: b@example.net\nSubject: dots {m}\n\n"
                  "first\n..two dots become one\n...three\n.\nAFTER-THE-DOT\n").encode()
        r = self.sendmail(["-t"], msg_in, daemon=False)
        self.assert_ok(r)
        msg = self.delivered_direct(m)
        self.assertEqual(body_of(msg["raw"]), b"first\r\n.two dots become one\r\n..three\r\n")
        self.assertNotIn(b"AFTER-THE-DOT", msg["raw"])

    def test_dots_with_i(self):
        for flag in ("-i", "-oi"):
            with self.subTest(flag=flag):
                m = marker()
                msg_in = (f"To: b@example.net\nSubject: dots {m}\n\n"
                          "first\n..two dots stay\n.\nAFTER-THE-DOT\n").encode()
                r = self.sendmail(["-t", flag], msg_in, daemon=False)
                self.assert_ok(r)
                msg = self.delivered_direct(m)
                self.assertEqual(body_of(msg["raw"]),
                                 b"first\r\n..two dots stay\r\n.\r\nAFTER-THE-DOT\r\n")

    def test_usage_errors(self):
        msg_in = b"To: b@example.net\nSubject: usage\n\nx\n"
        cases = [
            ("unknown option", ["-Q", "b@example.net"], EX_USAGE, r"-Q"),
            ("unknown long option", ["--bogus", "b@example.net"], EX_USAGE, r"--bogus"),
            ("no recipients", ["-i"], EX_USAGE, r"(?i)recipient"),
            ("-t but no To/Cc/Bcc", ["-t", "-i"], EX_USAGE, r"(?i)recipient"),
            ("-bd", ["-bd"], EX_USAGE, r"-bd.*mailferry serve"),
            ("-f without a value", ["-i", "b@example.net", "-f"], EX_USAGE, r"-f"),
            ("bad address", ["-i", "b@"], EX_DATAERR, r"b@"),
        ]
        before = self.upstream.count()
        for what, args, code, pattern in cases:
            with self.subTest(what):
                data = b"Subject: usage\n\nx\n" if "-t" in args else msg_in
                r = self.sendmail(args, data, daemon=False)
                self.assertEqual(r.returncode, code, f"{args}: stderr {r.stderr!r}")
                lines = stderr_lines(r)
                self.assertEqual(len(lines), 1, f"{args}: expected one stderr line: {lines}")
                self.assertRegex(lines[0], r"^mailferry sendmail: ")
                self.assertRegex(lines[0], pattern)
                self.assertEqual(r.stdout, b"")
        time.sleep(0.3)
        self.assertEqual(self.upstream.count(), before, "a refused invocation sent something")


# ================================================================ as nobody

class NobodyTest(SendmailCase):

    def test_nobody_with_daemon(self):
        m = marker()
        before = len(self.received_events_from("nobody"))
        r = self.sendmail(["-t", "-i"], f"To: b@example.net\nSubject: nobody {m}\n\nx\n".encode(),
                          daemon=True, prefix=AS_NOBODY)
        self.assert_ok(r, "sendmail as nobody")
        msg = self.delivered_via_daemon(m)
        self.assertEqual(msg["mail_from"], f"nobody@{HOSTNAME}")
        self.assertEqual(msg["rcpt_tos"], ["b@example.net"])
        self.assertIn(f"nobody@{HOSTNAME}", headers_of(msg["raw"]).get("from", [""])[0])
        harness.wait_until(lambda: len(self.received_events_from("nobody")) > before, 10,
                           what="a 'received ... client=local:nobody' log line")
        st = os.stat(self.mf.spool_dir)
        self.assertEqual(st.st_uid, 0, "the spool is not root's")

    def test_nobody_direct(self):
        m = marker()
        r = self.sendmail(["-i", "b@example.net"],
                          f"From: n@example.org\nSubject: nobody direct {m}\n\nx\n".encode(),
                          daemon=False, prefix=AS_NOBODY)
        self.assert_ok(r, "sendmail as nobody, direct")
        msg = self.delivered_direct(m)
        self.assertEqual((msg["mail_from"], msg["rcpt_tos"]), ("n@example.org", ["b@example.net"]))


# ================================================================ failures on the direct path

class DirectFailureTest(RelayCase):

    def config(self, upstream_port: int) -> str:
        return write_file(os.path.join(self.workdir, "direct.toml"),
                          relay_config(spool_dir=os.path.join(self.workdir, "spool"),
                                       listen_port=harness.free_port(),
                                       upstream_port=upstream_port))

    def test_daemon_down_upstream_down(self):
        port = harness.free_port()
        cfg = self.config(port)
        m = marker()
        r = run([harness.MAILFERRY_BIN, "sendmail", "-t", "-i"],
                f"From: a@example.org\nTo: b@example.net\nSubject: down {m}\n\nx\n".encode(),
                env={"MAILFERRY_CONFIG": cfg})
        self.assertEqual(r.returncode, EX_TEMPFAIL, f"stderr: {r.stderr!r}")
        lines = stderr_lines(r)
        self.assertEqual(len(lines), 1, f"expected one stderr line: {lines}")
        self.assertRegex(lines[0], r"^mailferry sendmail: .*\S")
        # PHP mail() sees the failure too (it returns false), so the application still knows.
        if shutil.which("php"):
            p = run(["php", "-d", f"sendmail_path={shlex.quote(harness.MAILFERRY_BIN)} sendmail -t -i",
                     "-r", f'var_export(mail("b@example.net", "down {m}", "x"));'], None,
                    env={"MAILFERRY_CONFIG": cfg})
            self.assertEqual(p.stdout, b"false", f"php mail() with the upstream down: {p}")
        # The caller owns the message: nothing may reach the upstream once it is up.
        up = self.start_upstream(port=port)
        time.sleep(4)
        self.assertEqual(up.count(), 0, "a message the caller was told to retry was sent anyway")
        self.assertEqual(up.transcript(), [], "something connected to the upstream afterwards")

    def test_upstream_5xx_is_69(self):
        up = self.start_upstream(args=["--fail-data", "554"])
        cfg = self.config(up.port)
        r = run([harness.MAILFERRY_BIN, "sendmail", "-i", "b@example.net"],
                b"From: a@example.org\nSubject: refused\n\nx\n", env={"MAILFERRY_CONFIG": cfg})
        self.assertEqual(r.returncode, EX_UNAVAILABLE, f"stderr: {r.stderr!r}")
        lines = stderr_lines(r)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("554", lines[0])
        self.assertEqual(up.count(), 0)


class MailqTest(RelayCase):

    def test_mailq_lists_a_queued_message(self):
        # The upstream is down: the daemon keeps the message queued (deferred).
        port = harness.free_port()
        mf = self.start_mailferry(port, retry=("30s",))
        m = marker()
        r = run([harness.MAILFERRY_BIN, "sendmail", "-t", "-i", "-v"],
                f"From: a@example.org\nTo: b@example.net\nSubject: mailq {m}\n\nx\n".encode(),
                env={"MAILFERRY_CONFIG": mf.config_path})
        self.assertEqual(r.returncode, 0, r.stderr)
        qid = re.search(r"queued as (\S+)", r.stderr.decode()).group(1)
        mf.wait_event("deferred", qid, timeout=DELIVERY_TIMEOUT)
        link = os.path.join(self.workdir, "mailq")
        os.symlink(harness.MAILFERRY_BIN, link)
        for argv in ([link], [harness.MAILFERRY_BIN, "sendmail", "-bp"],
                     [harness.MAILFERRY_BIN, "queue", "list", "-c", mf.config_path]):
            q = run(argv, None, env={"MAILFERRY_CONFIG": mf.config_path})
            self.assertEqual(q.returncode, 0, q)
            out = q.stdout.decode()
            self.assertIn(qid, out, f"{argv[0]} does not list the queued message:\n{out}")
            self.assertIn("deferred", out)
            self.assertIn("<b@example.net>", out)
            self.assertIn("refused", out, "the last upstream reply is not shown")
        show = run([harness.MAILFERRY_BIN, "queue", "show", "-c", mf.config_path, qid], None)
        self.assertEqual(show.returncode, 0, show)
        self.assertIn(f"Subject: mailq {m}".encode(), show.stdout)
        # retry: one more attempt now, not in 30 s.
        attempts = len(mf.events("connect"))
        rr = run([harness.MAILFERRY_BIN, "queue", "retry", "-c", mf.config_path, qid], None)
        self.assertEqual(rr.returncode, 0, rr)
        harness.wait_until(lambda: len(mf.events("connect")) > attempts, 10, what="a new attempt after retry")
        # delete: gone from the queue and the spool; a second delete finds nothing (67).
        harness.wait_until(lambda: mf.events("deferred", qid) and len(mf.events("deferred", qid)) >= 2, 10,
                           what="the retried message deferred again")
        d = run([harness.MAILFERRY_BIN, "queue", "delete", "-c", mf.config_path, qid], None)
        self.assertEqual(d.returncode, 0, d)
        self.assertNotIn(qid, harness.spool_ids(mf.spool_dir, "queue"))
        listed = run([harness.MAILFERRY_BIN, "queue", "list", "-c", mf.config_path], None)
        self.assertNotIn(qid, listed.stdout.decode())
        again = run([harness.MAILFERRY_BIN, "queue", "delete", "-c", mf.config_path, qid], None)
        self.assertEqual(again.returncode, 67, again)


# ================================================================ -bs

class SmtpPipe:
    """A `sendmail -bs` child driven over its stdin/stdout like an SMTP client (Symfony Mailer's
    SendmailTransport with -bs): write a command, read the whole reply; bounded waits."""

    def __init__(self, argv: list[str], env: dict):
        self.p = harness.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
        self.buf = b""

    def reply(self, timeout: float = 30.0) -> tuple[int, list[str]]:
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no complete reply within {timeout}s: {self.buf!r}")
                ready, _, _ = select.select([self.p.stdout], [], [], left)
                if ready:
                    chunk = os.read(self.p.stdout.fileno(), 65536)
                    if not chunk:
                        raise AssertionError(f"-bs closed stdout mid-reply: {self.buf!r}; "
                                             f"lines so far {lines}")
                    self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode(errors="replace")
            lines.append(text)
            if not re.match(r"^\d{3}[ -]", text):
                raise AssertionError(f"not an SMTP reply line: {text!r}")
            if text[3] == " ":
                return int(text[:3]), lines

    def cmd(self, line: str) -> tuple[int, list[str]]:
        self.p.stdin.write(line.encode() + b"\r\n")
        self.p.stdin.flush()
        return self.reply()

    def data(self, payload: bytes) -> tuple[int, list[str]]:
        self.p.stdin.write(payload + b".\r\n")
        self.p.stdin.flush()
        return self.reply()

    def finish(self, timeout: float = 15.0) -> tuple[int, bytes, bytes]:
        self.p.stdin.close()
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=10)
            raise AssertionError("-bs did not exit after QUIT")
        rest = self.buf + self.p.stdout.read()
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        return rc, rest, err


def dot_stuff(text: str) -> bytes:
    """CRLF line ends, a leading '.' doubled: what an SMTP client writes after DATA."""
    out = b""
    for line in text.split("\n"):
        b = line.encode()
        out += (b"." + b if b.startswith(b".") else b) + b"\r\n"
    return out


class SmtpSessionTest(SendmailCase):

    def session(self, daemon: bool):
        cfg = self.mf.config_path if daemon else self.direct_cfg
        s = SmtpPipe([harness.MAILFERRY_BIN, "sendmail", "-bs"], {"MAILFERRY_CONFIG": cfg})
        self.addCleanup(lambda: s.p.poll() is None and harness.stop_process(s.p, grace=2))
        m1, m2, m3 = marker(), marker(), marker()
        code, lines = s.reply()
        self.assertEqual(code, 220, lines)
        code, lines = s.cmd("EHLO [127.0.0.1]")
        self.assertEqual(code, 250, lines)
        self.assertIn("PIPELINING", " ".join(lines))
        # First message; its body has lines starting with dots, stuffed as a client does.
        body1 = f"one {m1}\n.leading dot\n..two dots\n.\nend"
        self.assertEqual(s.cmd("MAIL FROM:<alice@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<b@example.net>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<c@example.net>")[0], 250)
        self.assertEqual(s.cmd("DATA")[0], 354)
        hdr1 = f"From: Alice <alice@example.org>\nTo: b@example.net\nSubject: bs1 {m1}\n\n"
        code, lines = s.data(dot_stuff(hdr1 + body1))
        self.assertEqual(code, 250, lines)
        # An aborted transaction: nothing may go out for it.
        self.assertEqual(s.cmd("MAIL FROM:<mallory@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<x@example.net>")[0], 250)
        self.assertEqual(s.cmd("RSET")[0], 250)
        self.assertEqual(s.cmd("NOOP")[0], 250)
        # A DATA after RSET without MAIL is refused.
        self.assertEqual(s.cmd("DATA")[0] // 100, 5)
        # Second message in the same run.
        self.assertEqual(s.cmd("MAIL FROM:<carol@example.org>")[0], 250)
        self.assertEqual(s.cmd("RCPT TO:<d@example.net>")[0], 250)
        self.assertEqual(s.cmd("DATA")[0], 354)
        code, lines = s.data(dot_stuff(f"From: carol@example.org\nSubject: bs2 {m2}\n\ntwo {m2}"))
        self.assertEqual(code, 250, lines)
        code, lines = s.cmd("QUIT")
        self.assertEqual(code, 221, lines)
        rc, rest, err = s.finish()
        self.assertEqual(rc, 0, f"-bs exited {rc}; stderr {err!r}")
        self.assertEqual(err, b"", "-bs wrote to stderr (Symfony Mailer treats that as an error)")
        self.assertEqual(rest, b"", "output after 221")

        get = self.delivered_via_daemon if daemon else self.delivered_direct
        msg1, msg2 = get(m1), get(m2)
        self.assertEqual((msg1["mail_from"], sorted(msg1["rcpt_tos"])),
                         ("alice@example.org", ["b@example.net", "c@example.net"]))
        self.assertEqual(body_of(msg1["raw"]),
                         f"one {m1}\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n".encode())
        self.assertEqual((msg2["mail_from"], msg2["rcpt_tos"]), ("carol@example.org", ["d@example.net"]))
        self.assertEqual(headers_of(msg2["raw"]).get("subject"), [f"bs2 {m2}"])
        self.assertEqual(body_of(msg2["raw"]), f"two {m2}\r\n".encode())
        time.sleep(0.5)
        self.assertFalse([x for x in self.upstream.messages()
                          if x["mail_from"] == "mallory@example.org"], "the RSET transaction went out")
        return msg1, msg2

    def test_bs_session_with_daemon(self):
        before = len(self.received_events_from("root"))
        self.session(daemon=True)
        harness.wait_until(lambda: len(self.received_events_from("root")) >= before + 2, 10,
                           what="two 'received ... client=local:root' log lines")

    def test_bs_session_direct(self):
        self.session(daemon=False)

    def test_bs_helo_quit(self):
        """HELO as well as EHLO; a session without a message ends 221, exit 0, stderr empty."""
        s = SmtpPipe([harness.MAILFERRY_BIN, "sendmail", "-bs"],
                     {"MAILFERRY_CONFIG": self.direct_cfg})
        self.addCleanup(lambda: s.p.poll() is None and harness.stop_process(s.p, grace=2))
        self.assertEqual(s.reply()[0], 220)
        self.assertEqual(s.cmd("HELO client.test")[0], 250)
        self.assertEqual(s.cmd("NOOP")[0], 250)
        self.assertEqual(s.cmd("QUIT")[0], 221)
        rc, rest, err = s.finish()
        self.assertEqual((rc, rest, err), (0, b"", b""))


if __name__ == "__main__":
    harness.main()
