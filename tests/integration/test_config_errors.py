#!/usr/bin/python3
"""test_config_errors.py: a broken config stops mailferry with exit 78 and one line naming
FILE:LINE:COL; check-config prints the effective config with secrets masked.

    /usr/bin/python3 tests/integration/test_config_errors.py <path-to-mailferry>
"""

import os
import re
import tomllib

import harness
from harness import RelayCase, run_mailferry, write_file

EX_CONFIG = 78

VALID = """\
spool_dir = "{spool}"
hostname = "relay.test"
trusted_networks = ["127.0.0.0/8"]

[[listen]]
address = "127.0.0.1:{port}"
tls = "none"
auth = "none"

[upstream]
host = "smtp.example.com"
ports = [587]
username = "apikey"
password = "hunter2"

[queue]
retry_schedule = ["1s", "30s"]
max_age = "1h"
"""


class ConfigErrorTest(RelayCase):
    def config(self, name: str, text: str) -> str:
        return write_file(os.path.join(self.workdir, name), text.format(
            spool=os.path.join(self.workdir, "spool"), port=harness.free_port()))

    def assert_config_error(self, path: str, line: int | None, mention: str):
        for command in ("check-config", "serve"):
            with self.subTest(command=command):
                # serve must refuse before it binds anything; the bound stops a serve that starts.
                p = run_mailferry(command, "-c", path, timeout=15)
                self.assertEqual(p.returncode, EX_CONFIG,
                                 f"exit {p.returncode}; stderr: {p.stderr!r}")
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, f"expected one line on stderr: {p.stderr!r}")
                m = re.match(r"^mailferry: (.+?):(\d+):(\d+): (.+)$", lines[0])
                if line is None:    # a missing key has no place of its own: FILE[:L:C]: is enough
                    self.assertTrue(lines[0].startswith(f"mailferry: {path}"), lines[0])
                else:
                    self.assertIsNotNone(m, f"not 'mailferry: FILE:LINE:COL: message': {lines[0]!r}")
                    self.assertEqual(m.group(1), path)
                    self.assertEqual(int(m.group(2)), line, lines[0])
                self.assertIn(mention, lines[0])

    def test_unknown_key(self):
        text = VALID.replace('hostname = "relay.test"\n',
                             'hostname = "relay.test"\nlistne_backlog = 5\n')
        self.assert_config_error(self.config("unknown.toml", text), 3, "listne_backlog")

    def test_unknown_key_in_table(self):
        text = VALID.replace('host = "smtp.example.com"\n', 'host = "smtp.example.com"\nprot = 1\n')
        line = text.splitlines().index("prot = 1") + 1
        self.assert_config_error(self.config("unknown-table.toml", text), line, "prot")

    def test_bad_duration(self):
        text = VALID.replace('max_age = "1h"', 'max_age = "1 fortnight"')
        line = text.splitlines().index('max_age = "1 fortnight"') + 1
        self.assert_config_error(self.config("duration.toml", text), line, "max_age")

    def test_missing_upstream_host(self):
        text = VALID.replace('host = "smtp.example.com"\n', "")
        self.assert_config_error(self.config("nohost.toml", text), None, "host")

    def test_toml_syntax_error(self):
        text = VALID.replace('tls = "none"', 'tls = "none')
        line = text.splitlines().index('tls = "none') + 1
        self.assert_config_error(self.config("syntax.toml", text), line, "")

    def test_check_config_masks_secrets(self):
        path = self.config("valid.toml", VALID)
        p = run_mailferry("check-config", "-c", path, timeout=15)
        self.assertEqual(p.returncode, 0, f"stderr: {p.stderr!r}")
        self.assertNotIn("hunter2", p.stdout + p.stderr)
        effective = tomllib.loads(p.stdout)          # the effective config is TOML
        self.assertEqual(effective["upstream"]["host"], "smtp.example.com")
        self.assertEqual(effective["hostname"], "relay.test")
        self.assertIn("password", effective["upstream"], "the masked password should be shown")

    def test_missing_file(self):
        p = run_mailferry("check-config", "-c", os.path.join(self.workdir, "nope.toml"))
        self.assertEqual(p.returncode, EX_CONFIG, p.stderr)
        self.assertIn("nope.toml", p.stderr)


if __name__ == "__main__":
    harness.main()
