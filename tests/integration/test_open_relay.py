#!/usr/bin/python3
"""test_open_relay.py: an outside open-relay check — nmap's NSE script smtp-open-relay (Debian's
nmap) against every kind of listener a realistic config has, scanning from 127.0.0.2 while only
127.0.0.1 is in trusted_networks:

- tls = "none", auth = "none" (the 127.0.0.1:25 style listener);
- tls = "starttls", auth = "required" (587 style);
- tls = "implicit", auth = "required" (465 style): the script tries plain TCP first (10 s with
  no greeting), then TLS, so it does speak SMTP over TLS to it;
- proxy_protocol = true behind haproxy (send-proxy-v2): haproxy itself connects from
  127.0.0.1, which IS trusted; the header says 127.0.0.2, which must decide (skipped without
  haproxy) — and from 127.0.0.1 through the same haproxy the verdict flips to "open relay",
  so the header's address is what decided; and the same listener scanned directly from outside
  proxy_from.

Each must get nmap's "not an open relay" verdict ("all tests failed" or "authentication
needed"), and the upstream must receive nothing. A control proves the check can fail: a
listener where the scanning address is trusted (auth = "none") is reported as an open relay.

The script's 16 tests are MAIL FROM / RCPT TO pairs (source routes, %-hacks, quoted local
parts, bang paths, [ip] literals); it never sends DATA.

    /usr/bin/python3 tests/integration/test_open_relay.py <path-to-mailferry>
"""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import harness
from harness import RelayCase, listener_toml, tls_pki, toml_str

SCANNER = "127.0.0.2"           # the "internet": not in trusted_networks
TRUSTED = "127.0.0.1/32"        # loopback's own address, as a 127.0.0.1:25 listener trusts
NMAP_TIMEOUT = 120.0
NOT_OPEN = ("Server doesn't seem to be an open relay, all tests failed",
            "Server isn't an open relay, authentication needed")
OPEN = "Server is an open relay"


def nmap_relay_check(workdir: str, ports: list[int], source: str | None) -> dict[int, str]:
    """Runs smtp-open-relay against 127.0.0.1 on ports (one nmap run, scripts in parallel);
    returns {port: the script's output} ('' where the script gave none). The '+' forces the
    script on ports that are not 25/465/587; -sT and -Pn need no raw sockets."""
    xml_path = os.path.join(workdir, f"nmap-{'-'.join(map(str, ports))}.xml")
    argv = ["nmap", "-n", "-Pn", "-sT", "-vv", "-p", ",".join(map(str, ports)),
            "--script", "+smtp-open-relay",
            "--script-args", "smtp-open-relay.domain=example.net,smtp-open-relay.ip=127.0.0.1",
            "-oX", xml_path]
    if source:
        argv += ["-S", source, "-e", "lo"]
    argv.append("127.0.0.1")
    p = harness.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=NMAP_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate(timeout=10)
        raise AssertionError(f"nmap still running after {NMAP_TIMEOUT:.0f}s")
    if p.returncode != 0:
        raise AssertionError(f"nmap exited {p.returncode}: {err.decode(errors='replace')}")
    verdicts = {port: "" for port in ports}
    for port in ET.parse(xml_path).getroot().iter("port"):
        for script in port.iter("script"):
            if script.get("id") == "smtp-open-relay":
                verdicts[int(port.get("portid"))] = script.get("output", "").strip()
    return verdicts


class OpenRelayTest(RelayCase):

    def setUp(self):
        super().setUp()
        if shutil.which("nmap") is None:
            self.skipTest("nmap is not installed (Debian package nmap)")
        if not os.path.exists("/usr/share/nmap/scripts/smtp-open-relay.nse"):
            self.skipTest("nmap's smtp-open-relay script is missing")
        self.up = self.start_upstream()

    def assert_nothing_relayed(self, mf: harness.Mailferry) -> None:
        self.assertIsNone(mf.proc.poll(), "mailferry died during the scan")
        self.assertEqual(harness.spool_ids(mf.spool_dir, "queue"), [], "a message was queued")
        self.assertEqual(self.up.count(), 0, "the upstream received a message")
        self.assertFalse(mf.events("received"), "mailferry logged a received message")

    def test_no_listener_is_an_open_relay(self):
        pki = tls_pki(self.workdir)
        ports = {}
        while len(set(ports.values())) < 4:
            ports = {k: harness.free_port() for k in ("plain", "starttls", "implicit", "proxy")}
        listen = (listener_toml(ports["plain"])
                  + listener_toml(ports["starttls"], tls="starttls", auth="required")
                  + listener_toml(ports["implicit"], tls="implicit", auth="required")
                  + ["[[listen]]", f'address = "127.0.0.1:{ports["proxy"]}"', 'tls = "none"',
                     'auth = "none"', "proxy_protocol = true",
                     f"proxy_from = [{toml_str(TRUSTED)}]", ""]
                  + ["[tls]", f"cert_file = {toml_str(pki.server_cert)}",
                     f"key_file = {toml_str(pki.server_key)}", ""])
        # A user exists, so AUTH is offered after STARTTLS, as on a real submission port.
        users = ("\n[[user]]\nname = \"alice\"\n"
                 f"password_hash = {toml_str(harness.mailferry_hash('Alice-pw-7Qx!'))}\n")
        mf = self.start_mailferry(self.up.port, start=False)
        harness.write_file(mf.config_path, harness.relay_config(
            spool_dir=mf.spool_dir, listen_port=ports["plain"], upstream_port=self.up.port,
            trusted=(TRUSTED,), listen=listen) + users)
        mf.start(ports["plain"])
        for k in ("starttls", "implicit", "proxy"):
            harness.wait_until(lambda: harness.port_accepts(ports[k]), 10.0, what=f"{k} listener")

        targets = {ports["plain"]: 'tls = "none", auth = "none"',
                   ports["starttls"]: 'tls = "starttls", auth = "required"',
                   ports["implicit"]: 'tls = "implicit", auth = "required"',
                   ports["proxy"]: "proxy_protocol, scanned directly from outside proxy_from"}
        haproxy_port = self.start_haproxy(ports["proxy"])
        if haproxy_port:
            targets[haproxy_port] = "proxy_protocol behind haproxy send-proxy-v2 (haproxy trusted)"

        verdicts = nmap_relay_check(self.workdir, list(targets), SCANNER)
        print()
        for port, what in targets.items():
            print(f"nmap smtp-open-relay from {SCANNER}, {what}: {verdicts[port]!r}", flush=True)
        for port, what in targets.items():
            with self.subTest(listener=what):
                self.assertNotIn(OPEN, verdicts[port])
                if port == ports["proxy"]:
                    # No PROXY header from a stranger: closed before the greeting, so the script
                    # cannot even start; what counts is that it found nothing to relay through.
                    self.assertNotIn("220", verdicts[port])
                    continue
                self.assertIn(verdicts[port], NOT_OPEN)
        with self.subTest("auth = required listeners say so"):
            self.assertEqual(verdicts[ports["starttls"]], NOT_OPEN[1])
            self.assertEqual(verdicts[ports["implicit"]], NOT_OPEN[1])
        self.assert_nothing_relayed(mf)

        # From the trusted 127.0.0.1: auth = "required" still wants AUTH (trust only counts on
        # auth = "none" listeners), and through haproxy the verdict flips to "open relay" — the
        # address in the header, not haproxy's own, is what decided above.
        again = [ports["starttls"]] + ([haproxy_port] if haproxy_port else [])
        trusted = nmap_relay_check(self.workdir, again, None)
        print(f"nmap smtp-open-relay from 127.0.0.1 (trusted), starttls/required: "
              f"{trusted[ports['starttls']]!r}", flush=True)
        self.assertEqual(trusted[ports["starttls"]], NOT_OPEN[1])
        if not haproxy_port:
            self.assert_nothing_relayed(mf)
            self.skipTest("haproxy is not installed: the PROXY listener was scanned directly only")
        via = trusted[haproxy_port]
        print(f"nmap smtp-open-relay from 127.0.0.1 (trusted) through haproxy: "
              f"{via.splitlines()[0] if via else via!r}", flush=True)
        self.assertTrue(via.startswith(OPEN), via)
        self.assert_nothing_relayed(mf)

    def start_haproxy(self, backend_port: int) -> int | None:
        """haproxy on 127.0.0.1 in front of backend_port with send-proxy-v2; its port, or None
        without haproxy."""
        if shutil.which("haproxy") is None:
            return None
        port = harness.free_port()
        harness.start_haproxy(self.workdir, self.addCleanup, [
            "frontend smtp", f"  bind 127.0.0.1:{port}", "  default_backend relay",
            "backend relay", f"  server mf 127.0.0.1:{backend_port} send-proxy-v2"], [port])
        return port

    def test_control_trusted_scanner_is_reported_open(self):
        # The same check against a listener that trusts the scanner must say "open relay":
        # proof that the verdicts above come from mailferry's refusals, not from a script that
        # cannot talk to it.
        mf = self.start_mailferry(self.up.port, trusted=("127.0.0.0/8",))
        verdict = nmap_relay_check(self.workdir, [mf.port], None)[mf.port]
        print("\nnmap smtp-open-relay from 127.0.0.1, trusted, auth = \"none\" (control): "
              + verdict.replace("\n", "\n    "), flush=True)
        self.assertTrue(verdict.startswith(OPEN), verdict)
        # Relaying needs DATA, which the script never sends: still nothing upstream.
        self.assert_nothing_relayed(mf)


if __name__ == "__main__":
    harness.main()
