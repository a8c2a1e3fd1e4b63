#!/usr/bin/python3
"""test_run_as.py: `serve` started as root with run_as binds a privileged port, then runs as that
user — every thread, no capabilities left — and the spool (even one root wrote before) is that
user's. An unknown user, or root itself, stops the start with exit 67.

Needs root (skips otherwise).

    /usr/bin/python3 tests/integration/test_run_as.py <path-to-mailferry>
"""

import os
import pwd
import re
import signal
import socket
import unittest
import uuid
from pathlib import Path

import harness
from harness import RelayCase, free_port, make_message, relay_config, smtp_send

WAIT = 20.0


def free_privileged_port() -> int:
    """A port below 1024 on 127.0.0.1 that nothing uses (root can bind it)."""
    for port in range(700, 1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise unittest.SkipTest("no free port below 1024 on 127.0.0.1")


def status_fields(path: str) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


class RunAsTest(RelayCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("run_as needs serve started as root")
        super().setUp()
        self.nobody = pwd.getpwnam("nobody")
        # The service user must reach its config (reload) and spool: not in a 0700 directory.
        os.chmod(self.workdir, 0o755)

    def write_config(self, mf, port: int, up_port: int, run_as: str | None) -> None:
        listen = harness.listener_toml(port)
        text = relay_config(spool_dir=mf.spool_dir, listen_port=port, upstream_port=up_port,
                            listen=listen, retry=("1s",),
                            extra_top=f"run_as = {harness.toml_str(run_as)}" if run_as else "")
        harness.write_file(mf.config_path, text)
        os.chmod(mf.config_path, 0o644)

    def test_binds_a_privileged_port_then_runs_as_nobody(self):
        up = self.start_upstream()
        port = free_privileged_port()
        mf = self.start_mailferry(up.port, start=False)
        self.write_config(mf, port, up.port, "nobody")
        mf.start(port)
        dropped = mf.wait_event("privileges_dropped", timeout=WAIT)[0][1]
        self.assertEqual((dropped.get("user"), dropped.get("uid")), ("nobody", str(self.nobody.pw_uid)))

        # Every thread: real, effective, saved and file-system ids are nobody's; no capability.
        tasks = os.listdir(f"/proc/{mf.proc.pid}/task")
        self.assertGreater(len(tasks), 1, "expected the disk pool's threads too")
        for tid in tasks:
            st = status_fields(f"/proc/{mf.proc.pid}/task/{tid}/status")
            self.assertEqual(st["Uid"].split(), [str(self.nobody.pw_uid)] * 4, (tid, st["Uid"]))
            self.assertEqual(st["Gid"].split(), [str(self.nobody.pw_gid)] * 4, (tid, st["Gid"]))
            self.assertEqual(st["Groups"].split(), [str(self.nobody.pw_gid)], (tid, st["Groups"]))
            for cap in ("CapEff", "CapPrm"):
                self.assertEqual(int(st[cap], 16), 0, (tid, cap, st[cap]))

        m = uuid.uuid4().hex
        r = smtp_send(port, "a@x", ["b@y"], make_message([("Subject", m)], b"as nobody\r\n"))
        self.assertEqual(r.code, 250, r)
        up.wait_for(m.encode(), WAIT)
        mf.wait_event("delivered", r.queue_id, WAIT)
        # The spool is nobody's, through and through.
        for root, dirs, files in os.walk(mf.spool_dir):
            for name in [root, *(os.path.join(root, f) for f in files)]:
                self.assertEqual(os.lstat(name).st_uid, self.nobody.pw_uid, name)

        # A reload works as nobody (the config is readable), and mail still flows.
        mf.proc.send_signal(signal.SIGHUP)
        mf.wait_event("reloaded", timeout=WAIT)
        m2 = uuid.uuid4().hex
        self.assertEqual(smtp_send(port, "a@x", ["b@y"], make_message([("Subject", m2)], b"2\r\n")).code, 250)
        up.wait_for(m2.encode(), WAIT)
        self.assertEqual(mf.stop(), 0)

    def test_a_spool_root_wrote_is_handed_over(self):
        dead = free_port()
        port = free_privileged_port()
        mf = self.start_mailferry(dead, start=False)
        # First as root, with the upstream down: a message stays queued, in root's files.
        self.write_config(mf, port, dead, None)
        mf.start(port)
        m = uuid.uuid4().hex
        r = smtp_send(port, "a@x", ["b@y"], make_message([("Subject", m)], b"kept\r\n"))
        self.assertEqual(r.code, 250, r)
        mf.wait_event("deferred", r.queue_id, WAIT)
        self.assertEqual(mf.stop(), 0)
        queued = harness.spool_ids(mf.spool_dir, "queue")
        self.assertEqual(queued, [r.queue_id])
        owners = {os.lstat(os.path.join(d, f)).st_uid for d, _, fs in os.walk(mf.spool_dir) for f in fs}
        self.assertEqual(owners, {0})
        # Then as nobody, with the upstream up: nobody can read root's files and delivers them.
        up = self.start_upstream(port=dead)
        self.write_config(mf, port, dead, f"{self.nobody.pw_uid}:{self.nobody.pw_gid}")
        mf.start(port)
        mf.wait_event("privileges_dropped", timeout=WAIT)
        up.wait_for(m.encode(), WAIT)
        mf.wait_event("delivered", r.queue_id, WAIT)

    def test_unknown_user_and_root_are_refused(self):
        mf = self.start_mailferry(free_port(), start=False)
        port = free_port()
        for run_as, words in (("no-such-user-here", "no such user"), ("0", "is root")):
            self.write_config(mf, port, free_port(), run_as)
            r = harness.run_mailferry("serve", "-c", mf.config_path)
            self.assertEqual(r.returncode, 67, r.stderr)
            lines = r.stderr.strip().splitlines()
            self.assertTrue(any(words in line for line in lines), r.stderr)
            self.assertTrue(re.search(r"^mailferry: run_as \"", r.stderr, re.M), r.stderr)
            self.assertFalse(harness.port_accepts(port))


if __name__ == "__main__":
    harness.main()
