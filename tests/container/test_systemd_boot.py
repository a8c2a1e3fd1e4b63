#!/usr/bin/python3
"""test_systemd_boot.py: the hardened unit (examples/systemd/mailferry.service) under a real
systemd, booted as PID 1 in a podman container on a Debian 12 root filesystem.

mailferry is installed as an admin would: `meson install --destdir` of the build directory,
that tree copied into the container (binary, unit, man pages, examples), a config in
/etc/mailferry/mailferry.toml (spool_dir = "/var/lib/mailferry", as the unit says) and the
upstream password in /etc/mailferry/upstream-password (0600 root), which reaches the service only
through LoadCredential=. A build with a prefix other than /usr gets the drop-in the README asks
for (ExecStart= naming the installed binary). Then, against the test upstream on the host's
loopback (upstream.py with STARTTLS and AUTH, the container shares the host's network):

  - `systemctl enable --now` returns once READY=1 is sent: the listener accepts at that moment;
    the service runs as a dynamic (non-root) user;
  - a message is delivered with AUTH, with the password from the credential;
  - `systemctl reload` keeps the MainPID, the unit goes back to active, and mail still flows;
    a reload with a broken config is refused, logged as an error, and the unit stays active;
  - journald has mailferry's lines with the PRIORITY taken from the <6>/<3> prefixes, and no time
    stamp or prefix left in MESSAGE;
  - `systemd-analyze security mailferry.service` (online, against the running manager) scores
    at most 2.0;
  - `systemctl stop` with an idle SMTP session open ends within 10 s, the unit inactive, not failed.

The root filesystem comes from tests/container/debian-rootfs.sh (mmdebstrap from the Debian
mirror the first time, ~1-5 min; cached in /var/cache/mailferry-tests after that).

    /usr/bin/python3 tests/container/test_systemd_boot.py <path-to-mailferry>

Environment (set by tests/container/meson.build): CONTAINERS_CONF, MAILFERRY_SOURCE_ROOT,
MAILFERRY_BUILD_ROOT (without it, the binary given and the source tree's unit are copied in).
Needs root, podman, runc and mmdebstrap, else it skips. Prints the measured boot time, time to
active, stop time, exposure and MainPID before and after the reload. The container is removed at
the end, also when meson's timeout sends SIGTERM; the cached root filesystem and its image stay.
"""

import json
import os
import re
import secrets
import shutil
import signal
import smtplib
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_ROOT = Path(os.environ.get("MAILFERRY_SOURCE_ROOT") or HERE.parent.parent)
sys.path.insert(0, str(SOURCE_ROOT / "tests" / "integration"))

import harness  # noqa: E402
from harness import free_port, make_message, port_accepts, smtp_connect, smtp_send, toml_str  # noqa: E402

ROOTFS_SH = HERE / "debian-rootfs.sh"
UNIT = "mailferry.service"
UNIT_BINARY = "/usr/bin/mailferry"        # what the unit's ExecStart= names
CONFIG = "/etc/mailferry/mailferry.toml"
PASSWORD_FILE = "/etc/mailferry/upstream-password"
CA_FILE = "/etc/mailferry/upstream-ca.pem"
SPOOL = "/var/lib/mailferry"
UP_USER = "relayuser"
LABEL = "io.mailferry.test=systemd-boot"

MAX_EXPOSURE = 2.0
STOP_BOUND = 10.0           # seconds `systemctl stop` may take with an idle session open
BOOT_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 30.0
PODMAN_TIMEOUT = 60.0
ROOTFS_TIMEOUT = 900.0      # a cold cache: mmdebstrap's download and install, then podman import

TIME_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
PRIORITY_PREFIX = re.compile(r"^<\d>")

_container: str | None = None
measured: dict[str, str] = {}


def podman(*args: str, timeout: float = PODMAN_TIMEOUT, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess:
    """One podman command, bounded in time, output captured as text."""
    try:
        r = subprocess.run(["podman", *args], input=input, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"podman {' '.join(args)} still running after {timeout:.0f}s") from e
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {r.returncode}: "
                             f"{(r.stderr or r.stdout).strip()}")
    return r


def inside(*argv: str, timeout: float = 30.0, check: bool = True) -> subprocess.CompletedProcess:
    """A command in the booted container (podman exec), bounded in time."""
    assert _container is not None
    return podman("exec", _container, *argv, timeout=timeout, check=check)


def unit_props(*names: str) -> dict[str, str]:
    out = inside("systemctl", "show", UNIT, *(f"--property={n}" for n in names)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def remove_container() -> None:
    global _container
    if _container is not None:
        podman("rm", "--force", "--time", "5", _container, timeout=60, check=False)
        _container = None


def remove_stale_containers() -> None:
    """Containers of an earlier run of this test that was killed before its cleanup (label)."""
    r = podman("ps", "--all", "--filter", f"label={LABEL}", "--format", "{{.Names}}", check=False)
    for name in r.stdout.split():
        podman("rm", "--force", "--time", "5", name, timeout=60, check=False)


def journal(unit: str = UNIT) -> list[dict]:
    out = inside("journalctl", "--unit", unit, "--output", "json", "--no-pager").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def mailferry_records(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("SYSLOG_IDENTIFIER") == "mailferry"]


class SystemdBootTest(unittest.TestCase):
    """One booted container and one upstream for the whole class; the tests run in name order
    (test_1 … test_7), each proving one step an admin takes."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (rootful podman booting systemd as PID 1)")
        for tool in ("podman", "runc", "mmdebstrap", "openssl"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed "
                                        "(apt-get install podman runc mmdebstrap openssl)")
        if not os.environ.get("CONTAINERS_CONF"):
            os.environ["CONTAINERS_CONF"] = str(HERE / "containers.conf")
        remove_stale_containers()

        cls.dir = harness.make_tempdir(prefix="mailferry-sysboot-")
        cls.addClassCleanup(harness.remove_tempdir, cls.dir)
        cls.image = cls.root_filesystem()

        cls.password = "Cred-" + secrets.token_hex(12)
        pki = harness.tls_pki(cls.dir)
        cls.upstream = harness.new_upstream(
            cls.dir, cls.addClassCleanup,
            args=["--tls-cert", pki.server_cert, "--tls-key", pki.server_key,
                  "--auth", f"{UP_USER}:{cls.password}"])
        cls.port = free_port()

        tree = cls.stage(pki.ca_cert)
        cls.boot(tree)
        cls.enable_now()

    # ------------------------------------------------------------------ set-up steps

    @classmethod
    def root_filesystem(cls) -> str:
        start = time.monotonic()
        try:
            r = subprocess.run(["bash", str(ROOTFS_SH)], capture_output=True, text=True,
                               timeout=ROOTFS_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{ROOTFS_SH} took more than {ROOTFS_TIMEOUT:.0f}s") from e
        tail = r.stderr.strip().splitlines()[-1:] or [""]
        if r.returncode == 2:
            raise unittest.SkipTest(f"no Debian root filesystem: {tail[0]}")
        if r.returncode != 0:
            raise AssertionError(f"{ROOTFS_SH} exited {r.returncode}: {r.stderr[-2000:]}")
        image = r.stdout.strip()
        measured["rootfs"] = f"{time.monotonic() - start:.1f} s"
        print(f"\nrootfs: {image} ready in {measured['rootfs']}", file=sys.stderr, flush=True)
        return image

    @classmethod
    def stage(cls, ca_cert: str) -> str:
        """The files to copy into the container's /, as a tree: what `meson install` puts under
        DESTDIR, plus /etc/mailferry and, for a prefix other than /usr, a drop-in."""
        tree = os.path.join(cls.dir, "tree")
        build = os.environ.get("MAILFERRY_BUILD_ROOT")
        binary = UNIT_BINARY
        unit_path = f"/usr/lib/systemd/system/{UNIT}"
        cls.installed: list[str] = []
        if build:
            meson = shutil.which("meson")
            if meson is None:
                raise AssertionError("MAILFERRY_BUILD_ROOT is set but meson is not on PATH")
            # --no-rebuild: meson test has built everything; the install must not race it.
            r = subprocess.run([meson, "install", "-C", build, "--no-rebuild", "--destdir", tree],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise AssertionError(f"meson install --destdir failed:\n{r.stdout}{r.stderr}")
            for root, _, files in os.walk(tree):
                cls.installed += ["/" + os.path.relpath(os.path.join(root, f), tree) for f in files]
            found = {os.path.basename(p): p for p in cls.installed}
            if "mailferry" not in found or UNIT not in found:
                raise AssertionError(f"meson install put no mailferry binary or unit: {cls.installed}")
            binary, unit_path = found["mailferry"], found[UNIT]
        else:
            # No build directory: the binary under test and the source tree's unit.
            for src, dst in ((harness.MAILFERRY_BIN, UNIT_BINARY),
                             (SOURCE_ROOT / "examples" / "systemd" / UNIT, unit_path)):
                os.makedirs(os.path.dirname(tree + dst), exist_ok=True)
                shutil.copy2(src, tree + dst)
                cls.installed.append(dst)
        cls.binary, cls.unit_path = binary, unit_path

        etc = os.path.join(tree, "etc", "mailferry")
        os.makedirs(etc)
        config = "\n".join([
            f"spool_dir = {toml_str(SPOOL)}",
            f"hostname = {toml_str(harness.HOSTNAME)}",
            'trusted_networks = ["127.0.0.0/8"]',
            "",
            "[[listen]]",
            f'address = "127.0.0.1:{cls.port}"',
            'tls = "none"',
            'auth = "none"',
            "",
            "[upstream]",
            'host = "localhost"',
            f"ports = [{cls.upstream.port}]",
            f"username = {toml_str(UP_USER)}",
            "# The password comes from the unit's LoadCredential= (MAILFERRY_UPSTREAM_PASSWORD_FILE).",
            f"ca_file = {toml_str(CA_FILE)}",
            "",
            "[queue]",
            'retry_schedule = ["1s"]',
            'max_age = "1h"',
            "",
        ])
        cls.config_text = config
        for name, text, mode in (("mailferry.toml", config, 0o644),
                                 ("upstream-password", cls.password + "\n", 0o600),
                                 ("upstream-ca.pem", Path(ca_cert).read_text(), 0o644)):
            path = os.path.join(etc, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        if os.path.dirname(binary) != os.path.dirname(UNIT_BINARY):
            # Another prefix: the README's drop-in, so the unit runs the binary meson installed.
            dropin = os.path.join(tree, "etc", "systemd", "system", UNIT + ".d")
            os.makedirs(dropin)
            Path(dropin, "prefix.conf").write_text(
                f"[Service]\nExecStart=\nExecStart={binary} serve -c {CONFIG}\n")
        print(f"install: {binary}, {unit_path}"
              + (", drop-in for ExecStart=" if binary != UNIT_BINARY else ""), file=sys.stderr)
        # Directories as the image has them: copying the tree must not change their modes.
        for root, dirs, _ in os.walk(tree):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        return tree

    @classmethod
    def boot(cls, tree: str) -> None:
        global _container
        name = f"mailferry-sysboot-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # --tmpfs /run rshared: systemd mounts each service's credentials under /run/credentials
        # and the service's own mount namespace sees that mount only through shared propagation;
        # without it the service finds no readable credential (EACCES or an empty directory).
        # The host's network, so the service reaches the upstream on 127.0.0.1 and the test its
        # listener.
        podman("create", "--name", name, "--label", LABEL, "--systemd=always",
               "--cap-add", "SYS_ADMIN", "--tmpfs", "/run:rw,rshared", "--network", "host",
               cls.image, "/sbin/init")
        _container = name
        cls.addClassCleanup(remove_container)
        for top in sorted(os.listdir(tree)):
            podman("cp", os.path.join(tree, top), f"{name}:/")
        start = time.monotonic()
        podman("start", name)
        state = ""
        for _ in range(int(BOOT_TIMEOUT / 0.2)):
            state = inside("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded") or time.monotonic() - start > BOOT_TIMEOUT:
                break
            time.sleep(0.2)
        boot = time.monotonic() - start
        if state not in ("running", "degraded"):
            raise AssertionError(f"systemd in the container is '{state}' after {boot:.0f}s:\n"
                                 + inside("systemctl", "list-jobs", check=False).stdout)
        if state == "degraded":
            print("boot: degraded:\n" + inside("systemctl", "--failed", "--no-pager").stdout,
                  file=sys.stderr)
        measured["boot"] = f"{boot:.2f} s ({state})"
        print(f"boot: systemd {state} after {boot:.2f} s", file=sys.stderr, flush=True)
        pid1 = inside("cat", "/proc/1/comm").stdout.strip()
        if pid1 != "systemd":
            raise AssertionError(f"PID 1 in the container is {pid1!r}, not systemd")
        # What the admin's install steps would have left: root-owned, the secret 0600.
        inside("chown", "-R", "root:root", "/etc/mailferry")

    @classmethod
    def enable_now(cls) -> None:
        """`systemctl enable --now`, in its two halves so that the start is timed alone."""
        inside("systemctl", "enable", UNIT, timeout=60)
        start = time.monotonic()
        r = inside("systemctl", "start", UNIT, timeout=60, check=False)
        cls.time_to_active = time.monotonic() - start
        # Type=notify: start returns only after READY=1, which serve sends once it listens.
        cls.accepting_at_return = port_accepts(cls.port)
        if r.returncode != 0:
            raise AssertionError(f"systemctl start {UNIT} exited {r.returncode}: {r.stderr}\n"
                                 + inside("journalctl", "-u", UNIT, "--no-pager", check=False).stdout)
        measured["active"] = f"{cls.time_to_active:.2f} s"
        print(f"start: active after {cls.time_to_active:.2f} s", file=sys.stderr, flush=True)

    @classmethod
    def tearDownClass(cls):
        print("measured: " + ", ".join(f"{k}={v}" for k, v in measured.items()), file=sys.stderr,
              flush=True)

    # ------------------------------------------------------------------ helpers

    def setUp(self):
        self.addCleanup(self._journal_on_failure)

    def _journal_on_failure(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None or not any(t is self for t, _ in result.errors + result.failures):
            return
        r = inside("journalctl", "-u", UNIT, "--no-pager", check=False)
        print(f"\n--- journal of {UNIT}:\n{r.stdout[-4000:]}\n--- upstream log:\n"
              f"{self.upstream.log()[-2000:]}", file=sys.stderr, flush=True)

    def send(self, what: str) -> tuple[bytes, dict]:
        marker = f"{what}-{uuid.uuid4().hex}".encode()
        msg = make_message([("From", "app@example.com"), ("To", "ops@example.org"),
                            ("Subject", what)], b"body " + marker + b"\r\n")
        res = smtp_send(self.port, "app@example.com", ["ops@example.org"], msg)
        self.assertEqual(res.code, 250, res)
        self.assertIsNotNone(res.queue_id, res)
        got = self.upstream.wait_for(marker, DELIVERY_TIMEOUT)
        return marker, {"queue_id": res.queue_id, "delivered": got[0]}

    def assert_delivered_with_credential(self, delivered: dict) -> None:
        self.assertEqual(delivered["auth"], {"mechanism": delivered["auth"]["mechanism"],
                                             "user": UP_USER}, delivered["auth"])
        self.assertIsNotNone(delivered["tls"], "delivered without TLS")

    def main_pid(self) -> int:
        return int(unit_props("MainPID")["MainPID"])

    def wait_active(self, timeout: float = 15.0) -> dict:
        return harness.wait_until(
            lambda: (lambda p: p if p["ActiveState"] == "active" else None)(
                unit_props("ActiveState", "SubState")),
            timeout, interval=0.2, what=f"{UNIT} to be active again")

    # ------------------------------------------------------------------ the steps

    def test_1_installed_and_active(self):
        """The installed tree is in the container, the unit is active once start returns, and
        the service runs as a dynamic user with only CAP_NET_BIND_SERVICE."""
        missing = inside("sh", "-c", 'for p; do test -e "$p" || echo "$p"; done', "sh",
                         *self.installed).stdout.split()
        self.assertEqual(missing, [], "installed files missing in the container")
        self.assertEqual(inside("stat", "-c", "%a %U", PASSWORD_FILE).stdout.strip(), "600 root")
        props = unit_props("ActiveState", "SubState", "Type", "FragmentPath", "UnitFileState",
                           "ExecMainStartTimestampMonotonic")
        self.assertEqual((props["ActiveState"], props["SubState"]), ("active", "running"), props)
        self.assertEqual(props["Type"], "notify")
        # The installed file itself (Debian's /lib is a link to /usr/lib: compare real paths).
        real = [inside("readlink", "-f", p).stdout.strip() for p in (props["FragmentPath"], self.unit_path)]
        self.assertEqual(real[0], real[1], f"systemd loaded {props['FragmentPath']}")
        self.assertEqual(props["UnitFileState"], "enabled")
        self.assertTrue(self.accepting_at_return,
                        "systemctl start returned before the listener accepted (READY=1 too early)")
        pid = self.main_pid()
        status = inside("cat", f"/proc/{pid}/status").stdout
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        cap_eff = int(re.search(r"^CapEff:\s+([0-9a-f]+)", status, re.M).group(1), 16)
        self.assertNotEqual(uid, 0, "serve runs as root, not as the dynamic user")
        self.assertEqual(cap_eff, 1 << 10, f"CapEff {cap_eff:#x}: expected CAP_NET_BIND_SERVICE only")
        # DynamicUser= + StateDirectory=: the spool is the service user's alone, kept in
        # /var/lib/private so that a later start under another UID finds it again.
        spool = inside("sh", "-c", f"readlink -f {SPOOL}; stat -L -c '%a %u' {SPOOL}").stdout.split()
        self.assertEqual(spool, [f"/var/lib/private/{os.path.basename(SPOOL)}", "700", str(uid)])
        # (/proc/PID/exe of another user needs CAP_SYS_PTRACE, which the container lacks.)
        argv = inside("cat", f"/proc/{pid}/cmdline").stdout.split("\0")
        self.assertEqual(argv[:4], [self.binary, "serve", "-c", CONFIG])

    def test_2_delivers_with_password_from_credential(self):
        _, sent = self.send("first")
        self.assert_delivered_with_credential(sent["delivered"])
        # The password is in no file the service can read other than its credential copy.
        self.assertNotIn(self.password, self.config_text)
        env = unit_props("Environment")["Environment"]
        self.assertIn("MAILFERRY_UPSTREAM_PASSWORD_FILE=", env)
        self.assertNotIn(self.password, env)

    def test_3_reload_keeps_main_pid(self):
        before = self.main_pid()
        self.assertGreater(before, 0)
        r = inside("systemctl", "reload", UNIT, timeout=30, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        props = self.wait_active()
        after = self.main_pid()
        measured["mainpid"] = f"{before}->{after}"
        print(f"reload: MainPID {before} -> {after}, {props['SubState']}", file=sys.stderr)
        self.assertEqual(after, before, "reload restarted the process")
        harness.wait_until(lambda: any(r["MESSAGE"].startswith("reloaded ")
                                       for r in mailferry_records(journal())),
                           10, interval=0.2, what="a 'reloaded' line in the journal")
        _, sent = self.send("after-reload")
        self.assert_delivered_with_credential(sent["delivered"])

    def test_4_bad_reload_refused_and_logged_as_error(self):
        before = self.main_pid()
        inside("sh", "-c", f"cp {CONFIG} {CONFIG}.good && echo 'listne = 1' >> {CONFIG}")
        try:
            r = inside("systemctl", "reload", UNIT, timeout=30, check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.wait_active()
            refused = harness.wait_until(
                lambda: [r for r in mailferry_records(journal())
                         if r["MESSAGE"].startswith("reload_refused ")],
                10, interval=0.2, what="a 'reload_refused' line in the journal")
        finally:
            inside("mv", f"{CONFIG}.good", CONFIG)
        self.assertEqual(refused[-1]["PRIORITY"], "3", refused[-1])
        self.assertIn("listne", refused[-1]["MESSAGE"])
        self.assertEqual(self.main_pid(), before)
        self.send("after-bad-reload")

    def test_5_journal_priorities(self):
        records = mailferry_records(journal())
        self.assertTrue(records, "no line from mailferry in the journal")
        for r in records:
            self.assertEqual(r.get("_SYSTEMD_UNIT"), UNIT, r)
            self.assertIsNone(TIME_STAMP.match(r["MESSAGE"]), f"time stamp in MESSAGE: {r['MESSAGE']!r}")
            self.assertIsNone(PRIORITY_PREFIX.match(r["MESSAGE"]), f"prefix in MESSAGE: {r['MESSAGE']!r}")
        for event in ("started", "received", "delivered"):
            lines = [r for r in records if r["MESSAGE"].split(" ", 1)[0] == event]
            self.assertTrue(lines, f"no '{event}' line in the journal")
            for r in lines:
                self.assertEqual(r["PRIORITY"], "6", r)
        self.assertTrue(all(r["PRIORITY"] in ("3", "4", "6") for r in records),
                        {r["PRIORITY"] for r in records})
        text = "\n".join(r["MESSAGE"] for r in records)
        self.assertNotIn(self.password, text, "the password is in the journal")

    def test_6_security_exposure_online(self):
        r = inside("systemd-analyze", "security", "--no-pager", UNIT, timeout=60, check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        exposure = float(m.group(1))
        measured["exposure"] = f"{exposure}"
        print(f"systemd-analyze security (online): {exposure}", file=sys.stderr)
        self.assertLessEqual(exposure, MAX_EXPOSURE, r.stdout)

    def test_7_stop_within_bound(self):
        # An idle session is open: stop must not wait for it (it gets a 421).
        idle = smtp_connect(self.port)
        try:
            start = time.monotonic()
            r = inside("systemctl", "stop", UNIT, timeout=60, check=False)
            took = time.monotonic() - start
            self.assertEqual(r.returncode, 0, r.stderr)
            try:
                code, _ = idle.noop()
            except (smtplib.SMTPServerDisconnected, OSError):
                code = None
            self.assertIn(code, (421, None), "the idle session is still served after stop")
        finally:
            idle.close()
        measured["stop"] = f"{took:.2f} s"
        print(f"stop: {took:.2f} s", file=sys.stderr)
        self.assertLess(took, STOP_BOUND)
        props = unit_props("ActiveState", "SubState", "Result", "ExecMainStatus")
        self.assertEqual((props["ActiveState"], props["Result"]), ("inactive", "success"), props)
        self.assertEqual(props["ExecMainStatus"], "0", props)
        self.assertFalse(port_accepts(self.port), "the listener still accepts after stop")


def _on_sigterm(signum, frame):
    # meson's timeout: the container is not a child process, so remove it before the harness
    # kills the children (the upstream) and exits.
    try:
        remove_container()
    finally:
        harness._on_sigterm(signum, frame)


def main() -> None:
    argv = list(sys.argv)
    if len(argv) > 1 and not argv[1].startswith("-"):
        harness.MAILFERRY_BIN = os.path.abspath(argv.pop(1))
    if not harness.MAILFERRY_BIN or not os.access(harness.MAILFERRY_BIN, os.X_OK):
        print("usage: test_systemd_boot.py PATH-TO-MAILFERRY [unittest options]", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, _on_sigterm)
    unittest.main(module="__main__", argv=argv, verbosity=2)


if __name__ == "__main__":
    main()
