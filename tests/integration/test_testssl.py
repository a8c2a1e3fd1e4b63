#!/usr/bin/python3
"""test_testssl.py: testssl.sh (Debian package testssl.sh, command `testssl`) against the
implicit-TLS listener (465 style) and the STARTTLS listener (587 style, `--starttls smtp`):
no SSLv2/SSLv3/TLS 1.0/TLS 1.1, TLS 1.2 offered, no NULL/anonymous/export/LOW/RC4/3DES/
obsolete-CBC cipher, only ECDHE AEAD suites (so forward secrecy), and no vulnerability that
testssl rates LOW or worse. Prints one line `testssl-summary ...` for the issue's closing note.

Skipped (with the reason) when testssl is not installed. Slow: about a minute per listener,
each run bounded by RUN_TIMEOUT.

    /usr/bin/python3 tests/integration/test_testssl.py <path-to-mailferry>
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

import harness
from harness import RelayCase, tls_pki
from test_tls_auth import ECDHE_AEAD, start_submission_mailferry

RUN_TIMEOUT = 200.0   # ~45 s on an idle 2-core machine; room for a loaded one
TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")

# What the scan must find, by testssl's JSON ids (3.0).
NOT_OFFERED = ["SSLv2", "SSLv3", "TLS1", "TLS1_1",
               "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
               "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"]   # AVERAGE: obsolete CBC ciphers
OFFERED = ["TLS1_2", "cipherlist_STRONG"]   # forward secrecy: every suite listed (-E) is ECDHE
BAD_SEVERITIES = {"LOW", "MEDIUM", "HIGH", "CRITICAL", "FATAL"}


class TestsslTest(RelayCase):
    results: dict[str, str] = {}

    @classmethod
    def setUpClass(cls):
        if TESTSSL is None:
            raise unittest.SkipTest(
                "testssl is not installed (Debian package testssl.sh): no TLS scan")
        cls.dir = cls.class_workdir()
        cls.pki = tls_pki(cls.dir)
        cls.mf = start_submission_mailferry(cls.dir, cls.addClassCleanup, cls.pki,
                                            harness.free_port())   # nothing is delivered

    @classmethod
    def tearDownClass(cls):
        if cls.results:
            print("\ntestssl-summary " + " | ".join(f"{k}: {v}" for k, v in
                                                    sorted(cls.results.items())), flush=True)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.dump_log_on_failure(self.mf)

    def scan(self, name: str, port: int, starttls: bool) -> list[dict]:
        json_path = os.path.join(self.workdir, f"testssl-{name}.json")
        out_path = os.path.join(self.workdir, f"testssl-{name}.out")
        argv = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off",
                "--connect-timeout", "10", "--openssl-timeout", "10",
                "--jsonfile", json_path, "-p", "-s", "-E", "-U"]
        if starttls:
            argv += ["--starttls", "smtp"]
        argv.append(f"127.0.0.1:{port}")
        started = time.monotonic()
        with open(out_path, "wb") as out:
            p = harness.spawn(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            try:
                rc = p.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                harness.stop_process(p, grace=5)
                self.fail(f"testssl against {name} ran longer than {RUN_TIMEOUT:.0f}s")
        took = time.monotonic() - started
        print(f"\ntestssl {name}: exit {rc}, {took:.0f}s", file=sys.stderr, flush=True)
        if rc >= 240:    # testssl's own errors (ERR_CONNECT 246, ...); below: a sum of findings
            with open(out_path, errors="replace") as f:
                self.fail(f"testssl failed to run (exit {rc}):\n{f.read()[-3000:]}")
        with open(json_path, encoding="utf-8") as f:
            findings = json.load(f)
        self.check(name, findings, took, rc)
        return findings

    def check(self, name: str, findings: list[dict], took: float, rc: int) -> None:
        by_id = {e["id"]: e for e in findings}
        ciphers = [e["finding"].split()[3] for e in findings if e["id"].startswith("cipher-")
                   and len(e["finding"].split()) > 3]
        protos = [re.sub(r"^cipher-(.+)_x[0-9a-fA-F]+$", r"\1", e["id"]) for e in findings
                  if e["id"].startswith("cipher-")]
        bad = [f"{e['id']}={e['severity']}" for e in findings
               if e.get("severity") in BAD_SEVERITIES]
        warn = [e["id"] for e in findings if e.get("severity") == "WARN"]
        self.results[name] = (
            f"protocols offered: {' '.join(p for p in ('SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3') if by_id.get(p, {}).get('finding', '').startswith('offered')) or 'none'}; "
            f"TLS1_3: {by_id.get('TLS1_3', {}).get('finding', '?')}; "
            f"ciphers: {' '.join(ciphers) or 'none'}; "
            f"findings rated LOW or worse: {', '.join(bad) or 'none'}; "
            f"testssl warnings: {', '.join(warn) or 'none'}; {took:.0f}s")
        self.assertIn("scanTime", by_id, "the scan did not complete")
        self.assertNotIn("scanProblem", by_id, by_id.get("scanProblem"))
        for i in NOT_OFFERED:
            with self.subTest(f"{name}: {i} not offered"):
                self.assertIn(i, by_id, f"testssl reported nothing for {i}")
                self.assertTrue(by_id[i]["finding"].startswith("not offered"),
                                f"{i}: {by_id[i]['finding']}")
        for i in OFFERED:
            with self.subTest(f"{name}: {i} offered"):
                self.assertIn(i, by_id, f"testssl reported nothing for {i}")
                self.assertTrue(by_id[i]["finding"].startswith("offered"),
                                f"{i}: {by_id[i]['finding']}")
        with self.subTest(f"{name}: ECDHE AEAD suites on TLS 1.2 only"):
            self.assertTrue(ciphers, "no cipher listed per protocol (-E)")
            self.assertEqual(set(protos), {"tls1_2"}, protos)
            for c in ciphers:
                self.assertRegex(c, ECDHE_AEAD)
        with self.subTest(f"{name}: nothing rated LOW or worse"):
            self.assertEqual(bad, [])

    def test_implicit_tls_listener(self):
        self.scan("implicit", self.mf.implicit_port, starttls=False)

    def test_starttls_listener(self):
        self.scan("starttls", self.mf.starttls_port, starttls=True)


if __name__ == "__main__":
    harness.main()
