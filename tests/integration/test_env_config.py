#!/usr/bin/python3
"""test_env_config.py: mailferry configured by MAILFERRY_* variables alone (SPEC "Running it" →
Environment): check-config shows where each value came from, a malformed variable stops it with
exit 78 and the variable's name, and `serve` relays a message with no config file at all.

    /usr/bin/python3 tests/integration/test_env_config.py <path-to-mailferry>
"""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import harness
from harness import (RelayCase, Upstream, make_message, port_accepts, smtp_send, spawn,
                     stop_process, tls_pki, write_file)

EX_CONFIG = 78
DEFAULT_CONFIG = "/etc/mailferry/mailferry.toml"


def run_with_env(env: dict, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """mailferry ARGS with `env` added (harness.spawn already drops MAILFERRY_CONFIG)."""
    p = spawn([harness.MAILFERRY_BIN, *args], env=env, stdin=subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


class EnvConfigTest(RelayCase):
    def setUp(self):
        super().setUp()
        # Without -c and MAILFERRY_CONFIG, a file at the default path would be read as well.
        if os.path.exists(DEFAULT_CONFIG):
            self.skipTest(f"{DEFAULT_CONFIG} exists on this machine; the environment would not "
                          "be the whole configuration")

    def test_check_config_from_environment_only(self):
        secret = write_file(os.path.join(self.workdir, "host"), "smtp.example.com\n")
        p = run_with_env({
            "MAILFERRY_UPSTREAM_HOST_FILE": secret,
            "MAILFERRY_UPSTREAM_PORTS": "587,2525/none,2465/implicit",
            "MAILFERRY_UPSTREAM_USERNAME": "apikey",
            "MAILFERRY_UPSTREAM_PASSWORD": "hunter2",
            "MAILFERRY_QUEUE_MAX_AGE": "2d",
            "MAILFERRY_TRUSTED_NETWORKS": "10.0.0.0/8,fd00::/8",
        }, "check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        out = p.stdout
        self.assertIn("configuration from the environment", out.splitlines()[0])
        self.assertIn('host = "smtp.example.com"   # from MAILFERRY_UPSTREAM_HOST_FILE\n', out)
        self.assertIn('ports = [587, { port = 2525, tls = "none" }, { port = 2465, tls = "implicit" }]'
                      '   # from MAILFERRY_UPSTREAM_PORTS\n', out)
        self.assertIn('password = "********"   # from MAILFERRY_UPSTREAM_PASSWORD\n', out)
        self.assertNotIn("hunter2", out)
        self.assertIn('max_age = "2d"   # from MAILFERRY_QUEUE_MAX_AGE\n', out)
        self.assertIn('trusted_networks = ["10.0.0.0/8", "fd00::/8"]   # from MAILFERRY_TRUSTED_NETWORKS\n', out)

    def test_unknown_variable_is_a_warning(self):
        p = run_with_env({"MAILFERRY_UPSTREAM_HOST": "smtp.example.com",
                          "MAILFERRY_UPSTREAM_HSOT": "typo.example.com"}, "check-config")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.strip().splitlines(), [
            'mailferry: warning: MAILFERRY_UPSTREAM_HSOT is not a mailferry setting; ignored; '
            'did you mean "MAILFERRY_UPSTREAM_HOST"?'])

    def test_malformed_variable_exits_78_naming_it(self):
        for command in ("check-config", "serve"):
            with self.subTest(command=command):
                p = run_with_env({"MAILFERRY_UPSTREAM_HOST": "smtp.example.com",
                                  "MAILFERRY_SPOOL_DIR": os.path.join(self.workdir, "spool"),
                                  "MAILFERRY_QUEUE_MAX_AGE": "soon"}, command, timeout=15)
                self.assertEqual(p.returncode, EX_CONFIG, f"exit {p.returncode}; stderr: {p.stderr!r}")
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertTrue(lines[0].startswith('mailferry: MAILFERRY_QUEUE_MAX_AGE: '), lines[0])
                self.assertIn('"soon"', lines[0])

    def test_named_config_file_must_exist(self):
        p = run_with_env({"MAILFERRY_CONFIG": os.path.join(self.workdir, "missing.toml"),
                          "MAILFERRY_UPSTREAM_HOST": "smtp.example.com"}, "check-config")
        self.assertEqual(p.returncode, EX_CONFIG, p.stderr)
        self.assertIn("missing.toml: cannot read config", p.stderr)

    def test_serve_from_environment_relays(self):
        pki = tls_pki(self.workdir)
        upstream = self.start_upstream(args=["--tls-cert", pki.server_cert, "--tls-key",
                                             pki.server_key, "--auth", "envuser:s3cret pw"])
        username = write_file(os.path.join(self.workdir, "username"), "envuser\n")
        password = write_file(os.path.join(self.workdir, "password"), "s3cret pw\n")
        os.chmod(password, 0o600)
        listen = harness.free_port()
        env = {
            "MAILFERRY_HOSTNAME": harness.HOSTNAME,
            "MAILFERRY_SPOOL_DIR": os.path.join(self.workdir, "spool"),
            "MAILFERRY_LISTEN": f"127.0.0.1:{listen} none none",
            "MAILFERRY_TRUSTED_NETWORKS": "127.0.0.0/8",
            "MAILFERRY_UPSTREAM_HOST": "localhost",
            "MAILFERRY_UPSTREAM_PORTS": str(upstream.port),
            "MAILFERRY_UPSTREAM_CA_FILE": pki.ca_cert,
            "MAILFERRY_UPSTREAM_USERNAME_FILE": username,     # NAME_FILE: the value is in the file
            "MAILFERRY_UPSTREAM_PASSWORD_FILE": password,     # the key password_file itself
            "MAILFERRY_QUEUE_RETRY_SCHEDULE": "1s",
        }
        log_path = os.path.join(self.workdir, "mailferry.log")
        with open(log_path, "ab") as log:
            proc = spawn([harness.MAILFERRY_BIN, "serve"], env=env, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
        self.addCleanup(stop_process, proc)
        deadline = time.monotonic() + 10
        while not port_accepts(listen):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.fail(f"serve did not start (exit {proc.poll()}):\n{Path(log_path).read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)

        marker = uuid.uuid4().hex
        message = make_message([("From", "app@example.com"), ("To", "rcpt@example.net"),
                                ("Subject", f"env {marker}")], b"configured by the environment\r\n")
        r = smtp_send(listen, "app@example.com", ["rcpt@example.net"], message)
        self.assertEqual(r.code, 250, r)
        delivered = upstream.wait_for(marker.encode(), timeout=30)
        self.assertEqual(len(delivered), 1)

        # sendmail reads the same variables: MAILFERRY_SPOOL_DIR names the daemon's socket.
        marker2 = uuid.uuid4().hex
        p = spawn([harness.MAILFERRY_BIN, "sendmail", "-t"], env=env, stdin=subprocess.PIPE,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(make_message([("From", "app@example.com"), ("To", "rcpt@example.net"),
                                               ("Subject", f"env {marker2}")], b"via sendmail\r\n"),
                                 timeout=30)
        self.assertEqual(p.returncode, 0, err)
        upstream.wait_for(marker2.encode(), timeout=30)
        self.assertIn("client=local:", Path(log_path).read_text(errors="replace"),
                      "sendmail did not hand over to the daemon")
        self.assertEqual(stop_process(proc, signal.SIGTERM), 0, Path(log_path).read_text(errors='replace')[-3000:])


if __name__ == "__main__":
    harness.main()
