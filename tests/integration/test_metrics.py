#!/usr/bin/python3
"""test_metrics.py: [metrics] — /metrics after a known history (values, labels, promtool), a real
Prometheus scraping it, /healthz and /readyz (503 while draining), hostile HTTP that leaves SMTP
serving, and a reload that moves the endpoint.

    /usr/bin/python3 tests/integration/test_metrics.py <path-to-mailferry>
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
import unittest
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import harness
from harness import RelayCase, free_port, make_message, smtp_send, toml_str

WAIT = 20.0


def http_get(port: int, path: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, dict, str]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        c.close()


def parse_exposition(text: str) -> dict[tuple[str, tuple], float]:
    """{(name, ((label, value), ...)): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        assert m, f"not a sample line: {line!r}"
        labels = tuple(sorted(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sample(samples, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def raw_http(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass   # the server answered and closed before taking everything
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


class MetricsTest(RelayCase):
    def metrics_config(self, up_port: int, metrics_port: int, extra_listen: list[str] | None = None,
                       extra_top: str = "", **kw) -> harness.Mailferry:
        mf = self.start_mailferry(up_port, start=False, retry=("1s",),
                                  extra_top=extra_top, **kw)
        text = Path(mf.config_path).read_text()
        text += "\n".join(extra_listen or []) + f'\n[metrics]\naddress = "127.0.0.1:{metrics_port}"\n'
        harness.write_file(mf.config_path, text)
        return mf

    def scrape(self, port: int) -> dict:
        status, headers, body = http_get(port, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertIn("version=0.0.4", headers.get("Content-Type", ""), headers)
        return parse_exposition(body)

    def test_known_history(self):
        """Delivered, a deferral, a bounce, a failed AUTH, refusals and an open session, each
        counted where the SPEC's table says; promtool finds nothing to complain about."""
        pki = harness.tls_pki(self.workdir)
        up = self.start_upstream(args=["--fail-rcpt", "gone@y=550", "--fail-data", "451",
                                       "--fail-data-times", "1"])
        metrics_port, auth_port = free_port(), free_port()
        user_hash = harness.mailferry_hash("right")
        mf = self.metrics_config(
            up.port, metrics_port, trusted=("127.0.0.1/32",),
            extra_listen=[*harness.listener_toml(auth_port, "starttls", "required", pki.server_cert,
                                                 pki.server_key),
                          "[[user]]", 'name = "alice"', f"password_hash = {toml_str(user_hash)}", ""])
        mf.start(mf.port)
        plain = f"127.0.0.1:{mf.port}"
        submission = f"127.0.0.1:{auth_port}"
        # The harness's readiness probe (a connect and close) may still be ending.
        before = harness.wait_until(lambda: (lambda m: m if sample(m, "mailferry_sessions_active", listener=plain) == 0
                                             else None)(self.scrape(metrics_port)), 5, what="no session open")
        # Every listener's series exist from the start, at zero.
        for listener in (plain, submission, "sendmail"):
            self.assertEqual(sample(before, "mailferry_messages_received_total", listener=listener), 0)
            self.assertEqual(sample(before, "mailferry_sessions_active", listener=listener), 0)
        self.assertEqual(sample(before, "mailferry_upstream_port"), 0)

        # 1: 451 to the first DATA, delivered on the retry.
        m1 = uuid.uuid4().hex
        r1 = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", m1)], b"one\r\n"))
        self.assertEqual(r1.code, 250, r1)
        mf.wait_event("deferred", r1.queue_id, WAIT)
        up.wait_for(m1.encode(), WAIT)
        mf.wait_event("delivered", r1.queue_id, WAIT)
        # 2: a null sender to a recipient the upstream refuses: bounced, no DSN, kept in failed/.
        r2 = smtp_send(mf.port, "", ["gone@y"], make_message([("Subject", "gone")], b"two\r\n"))
        self.assertEqual(r2.code, 250, r2)
        mf.wait_event("bounced", r2.queue_id, WAIT)
        harness.wait_until(lambda: harness.spool_ids(mf.spool_dir, "failed") == [r2.queue_id], WAIT,
                           what="the bounced message in failed/")
        # 3: a sendmail hand-off to the running daemon (listener "sendmail").
        m3 = uuid.uuid4().hex
        p = harness.spawn([harness.MAILFERRY_BIN, "sendmail", "-i", "c@y"], env={"MAILFERRY_CONFIG": mf.config_path},
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(make_message([("Subject", m3)], b"three\r\n"), timeout=20)
        self.assertEqual(p.returncode, 0, err)
        up.wait_for(m3.encode(), WAIT)
        # A client that may not relay (127.0.0.5 is outside trusted_networks): relay_denied.
        s = smtplib.SMTP("127.0.0.1", mf.port, timeout=10, source_address=("127.0.0.5", 0))
        s.ehlo("outsider")
        s.mail("a@x")
        code, _ = s.rcpt("b@y")
        self.assertEqual(code, 554)
        s.quit()
        # The submission listener: MAIL before AUTH (auth_required), then a wrong password.
        s = smtplib.SMTP("127.0.0.1", auth_port, timeout=10)
        s.starttls(context=ssl.create_default_context(cafile=pki.ca_cert))
        s.ehlo("client")
        code, _ = s.mail("a@x")
        self.assertEqual(code, 530)
        code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0wrong").decode())
        self.assertEqual(code, 535)
        s.quit()
        # A garbage command: protocol.
        with socket.create_connection(("127.0.0.1", mf.port), timeout=10) as raw:
            raw.recv(512)
            raw.sendall(b"BOGUS\r\nQUIT\r\n")
            harness.wait_until(lambda: b"221" in raw.recv(512), 5, what="221 after QUIT")
        # An open session, left open during the scrape.
        held = harness.smtp_connect(mf.port)
        self.addCleanup(held.close)

        m = self.scrape(metrics_port)
        expect = {
            ("mailferry_messages_received_total", (("listener", plain),)): 2,
            ("mailferry_messages_received_total", (("listener", submission),)): 0,
            ("mailferry_messages_received_total", (("listener", "sendmail"),)): 1,
            ("mailferry_messages_delivered_total", ()): 2,
            ("mailferry_messages_deferred_total", ()): 1,
            ("mailferry_messages_bounced_total", ()): 1,
            ("mailferry_queue_messages", (("state", "queued"),)): 0,
            ("mailferry_queue_messages", (("state", "deferred"),)): 0,
            ("mailferry_queue_messages", (("state", "failed"),)): 1,
            ("mailferry_queue_oldest_seconds", ()): 0,
            ("mailferry_upstream_port", ()): up.port,
            ("mailferry_auth_failures_total", (("listener", submission),)): 1,
            ("mailferry_auth_failures_total", (("listener", plain),)): 0,
            ("mailferry_sessions_active", (("listener", plain),)): 1,
            ("mailferry_sessions_active", (("listener", submission),)): 0,
            ("mailferry_rejected_total", (("reason", "relay_denied"),)): 1,
            ("mailferry_rejected_total", (("reason", "auth_required"),)): 1,
            ("mailferry_rejected_total", (("reason", "sender_not_allowed"),)): 0,
            ("mailferry_rejected_total", (("reason", "size"),)): 0,
            ("mailferry_rejected_total", (("reason", "recipients"),)): 0,
            ("mailferry_rejected_total", (("reason", "rate"),)): 0,
            ("mailferry_rejected_total", (("reason", "protocol"),)): 1,
            ("mailferry_build_info", (("version", mf_version()),)): 1,
        }
        for key, value in expect.items():
            self.assertEqual(m.get(key), value, f"{key}: got {m.get(key)}")
        # Every connection to the upstream worked (the 451 came after the greeting).
        attempts = {k: v for k, v in m.items() if k[0] == "mailferry_upstream_attempts_total"}
        self.assertEqual(set(attempts), {("mailferry_upstream_attempts_total",
                                          (("port", str(up.port)), ("result", "ok")))}, attempts)
        self.assertGreaterEqual(min(attempts.values()), 1)
        self.assertGreater(sample(m, "process_resident_memory_bytes"), 1_000_000)
        self.assertGreater(sample(m, "process_open_fds"), 3)
        self.assertAlmostEqual(sample(m, "process_start_time_seconds"), time.time(), delta=120)
        self.assertGreater(sample(m, "process_cpu_seconds_total"), 0)

        if shutil.which("promtool") is None:
            self.skipTest("promtool is not installed (Debian package prometheus)")
        _, _, body = http_get(metrics_port, "/metrics")
        check = subprocess.run(["promtool", "check", "metrics"], input=body.encode(), capture_output=True,
                               timeout=30)
        self.assertEqual((check.returncode, check.stdout + check.stderr), (0, b""))

    def test_deferred_queue_and_refused_upstream(self):
        dead = free_port()
        metrics_port = free_port()
        mf = self.metrics_config(dead, metrics_port)
        mf.start(mf.port)
        r = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", "down")], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        mf.wait_event("deferred", r.queue_id, WAIT)
        time.sleep(1.1)
        m = self.scrape(metrics_port)
        self.assertEqual(sample(m, "mailferry_queue_messages", state="deferred"), 1)
        self.assertEqual(sample(m, "mailferry_queue_messages", state="queued"), 0)
        self.assertGreaterEqual(sample(m, "mailferry_queue_oldest_seconds"), 1.0)
        self.assertGreaterEqual(sample(m, "mailferry_upstream_attempts_total", port=str(dead), result="refused"), 1)
        self.assertGreaterEqual(sample(m, "mailferry_messages_deferred_total"), 1)
        self.assertEqual(sample(m, "mailferry_upstream_port"), 0)

    def test_health_and_drain(self):
        up = self.start_upstream()
        metrics_port = free_port()
        mf = self.metrics_config(up.port, metrics_port)
        mf.start(mf.port)
        self.assertEqual(http_get(metrics_port, "/healthz")[0], 200)
        status, _, body = http_get(metrics_port, "/readyz")
        self.assertEqual((status, body), (200, "ready\n"))
        status, headers, body = http_get(metrics_port, "/readyz", method="HEAD")
        self.assertEqual((status, body, headers.get("Content-Length")), (200, "", "6"))
        self.assertEqual(http_get(metrics_port, "/nothing")[0], 404)
        self.assertEqual(http_get(metrics_port, "/metrics", method="POST")[0], 405)
        # A session in the middle of a transaction keeps the process draining.
        s = harness.smtp_connect(mf.port)
        self.addCleanup(s.close)
        self.assertEqual(s.mail("a@x")[0], 250)
        mf.proc.send_signal(signal.SIGTERM)
        harness.wait_until(lambda: http_get(metrics_port, "/readyz")[0] == 503, 5, what="/readyz 503")
        status, _, body = http_get(metrics_port, "/readyz")
        self.assertEqual((status, body), (503, "not ready: draining\n"))
        self.assertEqual(http_get(metrics_port, "/healthz")[0], 200)
        self.assertEqual(self.scrape(metrics_port)[("mailferry_sessions_active",
                                                     (("listener", f"127.0.0.1:{mf.port}"),))], 1)
        self.assertEqual(s.rcpt("b@y")[0], 250)
        m = uuid.uuid4().hex
        self.assertEqual(s.data(make_message([("Subject", m)], b"drain\r\n"))[0], 250)
        s.close()
        self.assertEqual(mf.proc.wait(timeout=15), 0)
        # Accepted while draining: on the spool for the next start (the scheduler stopped first).
        self.assertEqual(len(harness.spool_ids(mf.spool_dir, "queue")), 1)

    def test_hostile_http_leaves_smtp_serving(self):
        up = self.start_upstream()
        metrics_port = free_port()
        mf = self.metrics_config(up.port, metrics_port)
        mf.start(mf.port)
        # Oversized and malformed heads are answered and closed.
        self.assertTrue(raw_http(metrics_port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
                        .startswith(b"HTTP/1.1 431"))
        self.assertTrue(raw_http(metrics_port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
                        .startswith(b"HTTP/1.1 414"))
        self.assertTrue(raw_http(metrics_port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400"))
        self.assertTrue(raw_http(metrics_port, b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n")
                        .startswith(b"HTTP/1.1 400"))
        # 60 idle and half-sent connections hold every slot of the endpoint ...
        idle = []
        for i in range(60):
            c = socket.create_connection(("127.0.0.1", metrics_port), timeout=5)
            if i % 2:
                c.sendall(b"GET /metrics HTTP/1.1\r\n")   # slowloris: the head never ends
            idle.append(c)
        try:
            # ... while SMTP relays as before, promptly.
            started = time.monotonic()
            m = uuid.uuid4().hex
            r = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", m)], b"still here\r\n"))
            self.assertEqual(r.code, 250, r)
            self.assertLess(time.monotonic() - started, 2.0)
            up.wait_for(m.encode(), WAIT)
        finally:
            for c in idle:
                c.close()
        # Once they are gone the endpoint answers again.
        harness.wait_until(lambda: _scrape_ok(metrics_port), 15, what="/metrics answering again")
        self.assertIsNone(mf.proc.poll())

    def test_reload_moves_the_endpoint(self):
        up = self.start_upstream()
        old_port, new_port = free_port(), free_port()
        mf = self.metrics_config(up.port, old_port)
        mf.start(mf.port)
        self.assertEqual(http_get(old_port, "/healthz")[0], 200)
        text = Path(mf.config_path).read_text().replace(f"127.0.0.1:{old_port}", f"127.0.0.1:{new_port}")
        harness.write_file(mf.config_path, text)
        mf.proc.send_signal(signal.SIGHUP)
        mf.wait_event("reloaded", timeout=WAIT)
        harness.wait_until(lambda: _scrape_ok(new_port), 5, what="the new metrics address")
        self.assertFalse(harness.port_accepts(old_port))

    def test_prometheus_scrapes_it(self):
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            self.skipTest("prometheus is not installed (Debian package prometheus)")
        up = self.start_upstream()
        metrics_port, prom_port = free_port(), free_port()
        mf = self.metrics_config(up.port, metrics_port)
        mf.start(mf.port)
        r = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", "scraped")], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        mf.wait_event("delivered", r.queue_id, WAIT)
        cfg = harness.write_file(os.path.join(self.workdir, "prometheus.yml"), "\n".join([
            "global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
            "scrape_configs:", "  - job_name: mailferry",
            "    static_configs:", f"      - targets: ['127.0.0.1:{metrics_port}']", ""]))
        log = open(os.path.join(self.workdir, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        proc = harness.spawn([prometheus, f"--config.file={cfg}",
                              f"--storage.tsdb.path={os.path.join(self.workdir, 'tsdb')}",
                              f"--web.listen-address=127.0.0.1:{prom_port}"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.addCleanup(harness.stop_process, proc)

        def query(expr: str):
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=" + urllib.parse.quote(expr)
            try:
                with urllib.request.urlopen(url, timeout=3) as resp:
                    data = json.load(resp)
            except OSError:
                return None
            return data["data"]["result"] if data.get("status") == "success" else None

        up_result = harness.wait_until(lambda: (lambda r: r if r and r[0]["value"][1] == "1" else None)(
            query('up{job="mailferry"}')), 60, interval=0.5, what="Prometheus to scrape mailferry (up == 1)")
        self.assertEqual(up_result[0]["metric"]["instance"], f"127.0.0.1:{metrics_port}")
        delivered = query("mailferry_messages_delivered_total")
        self.assertEqual(delivered[0]["value"][1], "1", delivered)
        states = query("mailferry_queue_messages")
        self.assertEqual(sorted(s["metric"]["state"] for s in states), ["deferred", "failed", "queued"])
        # Prometheus found nothing wrong with the scrape itself.
        health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/targets", timeout=3))
        target = health["data"]["activeTargets"][0]
        self.assertEqual((target["health"], target["lastError"]), ("up", ""))


def _scrape_ok(port: int) -> bool:
    try:
        return http_get(port, "/metrics", timeout=2)[0] == 200
    except OSError:
        return False


def mf_version() -> str:
    r = harness.run_mailferry("--version")
    return r.stdout.split()[-1]


if __name__ == "__main__":
    harness.main()
