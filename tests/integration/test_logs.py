#!/usr/bin/python3
"""test_logs.py: log_format = "json" (one object per line, the same events and fields as text),
syslog priority prefixes under journald (JOURNAL_STREAM), and the spool lock (a second serve on a
spool in use refuses to start, the first keeps serving).

    /usr/bin/python3 tests/integration/test_logs.py <path-to-mailferry>
"""

import json
import os
import re
import subprocess
import time
import uuid

import harness
from harness import RelayCase, free_port, make_message, smtp_send

WAIT = 20.0


class LogFormatTest(RelayCase):
    def serve(self, mf: harness.Mailferry, env: dict[str, str]) -> subprocess.Popen:
        log = open(mf.log_path, "wb")
        self.addCleanup(log.close)
        p = harness.spawn([harness.MAILFERRY_BIN, "serve", "-c", mf.config_path], stdin=subprocess.DEVNULL,
                          stdout=log, stderr=log, env=env)
        self.addCleanup(harness.stop_process, p)
        harness.wait_until(lambda: p.poll() is not None or harness.port_accepts(mf.port), 10,
                           what="serve to listen")
        self.assertIsNone(p.poll(), mf.log())
        return p

    def relay_one(self, up, mf) -> str:
        m = uuid.uuid4().hex
        r = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", m)], b"logged\r\n"))
        self.assertEqual(r.code, 250, r)
        up.wait_for(m.encode(), WAIT)
        harness.wait_until(lambda: "delivered" in mf.log(), WAIT, what="the delivered line")
        return r.queue_id

    def test_json_lines(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port, start=False, extra_top='log_format = "json"')
        p = self.serve(mf, {})
        qid = self.relay_one(up, mf)
        self.assertEqual(harness.stop_process(p), 0)
        records = []
        for line in mf.log().splitlines():
            rec = json.loads(line)   # every line is one JSON object
            self.assertIsInstance(rec, dict, line)
            records.append(rec)
        for rec in records:
            self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(rec["level"], ("info", "warning", "error"))
            self.assertRegex(rec["event"], r"^[a-z_]+$")
        events = [r["event"] for r in records]
        for e in ("listening", "started", "received", "attempt", "delivered", "stopping", "stopped"):
            self.assertIn(e, events)
        received = next(r for r in records if r["event"] == "received")
        self.assertEqual(received["queue_id"], qid)
        self.assertEqual((received["client"], received["from"], received["nrcpt"]), ("127.0.0.1", "<a@x>", "1"))
        delivered = next(r for r in records if r["event"] == "delivered")
        self.assertEqual((delivered["queue_id"], delivered["rcpt"]), (qid, "<b@y>"))

    def test_journal_priority_prefixes(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port, start=False)
        # Any value will do: mailferry only checks that the journal is its stderr's reader.
        p = self.serve(mf, {"JOURNAL_STREAM": "8:12345"})
        self.relay_one(up, mf)
        self.assertEqual(harness.stop_process(p), 0)
        lines = mf.log().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[346]>[a-z_]+( |$)", line)   # priority, then the event: no time stamp
            self.assertNotRegex(line, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")   # ... anywhere but in values
        self.assertTrue(any(line.startswith("<6>delivered ") for line in lines), lines)
        # running as root without run_as: the warning carries <4>.
        if os.geteuid() == 0:
            self.assertTrue(any(line.startswith("<4>running_as_root") for line in lines), lines)


class SpoolLockTest(RelayCase):
    def test_second_instance_on_the_same_spool_refuses(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        other_port = free_port()
        cfg2 = harness.write_file(os.path.join(self.workdir, "second.toml"),
                                  harness.relay_config(spool_dir=mf.spool_dir, listen_port=other_port,
                                                       upstream_port=up.port))
        started = time.monotonic()
        r = harness.run_mailferry("serve", "-c", cfg2, timeout=20)
        self.assertLess(time.monotonic() - started, 10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(r.returncode, (69, 73, 75), r.stderr)
        # One line that says what is wrong (log lines before it, such as running_as_root, aside).
        lines = [line for line in r.stderr.splitlines() if line.startswith("mailferry:")]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(re.search(r"mailferry: .*(in use|another|lock)", lines[0]), lines[0])
        self.assertFalse(harness.port_accepts(other_port))
        # The first one was not disturbed.
        m = uuid.uuid4().hex
        self.assertEqual(smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", m)], b"x\r\n")).code, 250)
        up.wait_for(m.encode(), WAIT)


if __name__ == "__main__":
    harness.main()
