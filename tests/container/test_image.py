#!/usr/bin/python3
"""test_image.py: the FROM scratch image (examples/container) under podman, offline.

Builds the image with examples/container/build-image.sh from the static binary the build already
linked (MAILFERRY_STATIC_BIN: `mailferry-static`, or `mailferry` itself with -Dstatic=true; else
the build directory of the binary given), then runs it as a user would: --read-only,
--cap-drop ALL, no-new-privileges, configured only by MAILFERRY_* variables and podman secrets
(*_FILE), the image's default listener on 587 published with -p, and the test upstream
(tests/integration/upstream.py: STARTTLS, AUTH, a certificate from the test CA) on the host's
loopback, reached through slirp4netns (10.0.2.2) under a name from --add-host.

    /usr/bin/python3 tests/container/test_image.py build/mailferry

Needs root and podman (with runc: CONTAINERS_CONF, see containers.conf), else it skips. Every
image, container, volume and secret it makes has a unique name and is removed at the end, also
when meson's timeout sends SIGTERM. Prints the image size, idle RSS, time from `podman run` to
the 220 banner and the time `podman stop` takes.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE_ROOT = Path(os.environ.get("MAILFERRY_SOURCE_ROOT") or HERE.parent.parent)
sys.path.insert(0, str(SOURCE_ROOT / "tests" / "integration"))

import harness  # noqa: E402

BUILD_IMAGE = SOURCE_ROOT / "examples" / "container" / "build-image.sh"
CONTAINERS_CONF = os.environ.get("CONTAINERS_CONF") or str(HERE / "containers.conf")
UID = 10025
SPOOL = "/var/spool/mailferry"
UPSTREAM_NAME = "smtp.upstream.test"     # resolved in the container through /etc/hosts
UPSTREAM_USER, UPSTREAM_PASSWORD = "relay", "upstream-secret-9f2c"
SUBMIT_USER, SUBMIT_PASSWORD = "app", "submit-secret-41d7"
# slirp4netns with allow_host_loopback: 10.0.2.2 in the container is the host's 127.0.0.1, so the
# test upstream stays on loopback and the image's own listener (587) is published with -p.
NETWORK = ["--network", "slirp4netns:allow_host_loopback=true"]
HOST_LOOPBACK = "10.0.2.2"
# Podman 4 leaves ports below 1024 privileged in the container's network namespace (Docker 20.10+
# lowers this to 0); the image's user needs it to bind 587 with --cap-drop ALL.
UNPRIVILEGED_PORTS = ["--sysctl", "net.ipv4.ip_unprivileged_port_start=0"]
# Podman 4.3 cannot put a --secret under /run/secrets of a --read-only container (podman issue
# 15541: that directory is mounted read-only first); an absolute target elsewhere works.
SECRETS = "/run/mailferry"
HARDENING = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]

PREFIX = f"mailferry-it-{os.getpid()}-{secrets.token_hex(3)}"
IMAGE = f"localhost/{PREFIX}:test"

# Everything made here, for cleanup (also from the SIGTERM handler).
_made = {"container": [], "volume": [], "secret": [], "image": []}
_figures: dict[str, str] = {}


def podman(*args: str, timeout: float = 60, check: bool = True,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """One podman command, bounded; output captured as text."""
    env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)
    env.pop("MAILFERRY_CONFIG", None)
    try:
        r = subprocess.run(["podman", *args], input=input, capture_output=True, timeout=timeout,
                           env=env, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"podman {' '.join(args)} still running after {timeout}s") from e
    r.stdout = r.stdout.decode(errors="replace")
    r.stderr = r.stderr.decode(errors="replace")
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r


PODMAN_LOG_LINE = re.compile(r'^time="[^"]*" level=\w+ msg=.*$\n?', re.M)


def without_podman_log(text: str) -> str:
    """The container's own stderr from `podman run`'s: podman adds its own logrus lines (here:
    it cannot reach systemd to remove the health check timer it never made)."""
    return PODMAN_LOG_LINE.sub("", text)


def cleanup_podman() -> None:
    for name in _made["container"]:
        podman("rm", "--force", "--time", "0", "--volumes", name, timeout=60, check=False)
    for name in _made["volume"]:
        podman("volume", "rm", "--force", name, timeout=60, check=False)
    for name in _made["secret"]:
        podman("secret", "rm", name, timeout=60, check=False)
    for name in _made["image"]:
        podman("rmi", "--force", name, timeout=120, check=False)
    for kind in _made:
        _made[kind].clear()


def _on_sigterm(signum, frame):
    print(f"test_image: got signal {signum}, removing containers, volumes, secrets, image",
          file=sys.stderr, flush=True)
    try:
        cleanup_podman()
    finally:
        harness._on_sigterm(signum, frame)


def is_static(path: str) -> bool:
    """No PT_INTERP program header: an ELF executable the kernel runs without ld.so."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:      # 64-bit only, as built here
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(int.from_bytes(table[i * phentsize:i * phentsize + 4], "little") != 3
               for i in range(phnum))


def mib(n: int) -> str:
    return f"{n / (1024 * 1024):.2f} MiB"


def read_banner(port: int, timeout: float) -> bytes | None:
    """The first line on 127.0.0.1:port, or None (refused, closed, or nothing within timeout).
    The port forwarder may accept before mailferry listens, then close: that is a None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while not data.endswith(b"\n") and len(data) < 512:
                chunk = s.recv(512)
                if not chunk:
                    return None
                data += chunk
            return data
    except OSError:
        return None


class ImageTest(unittest.TestCase):
    """One image for the class; each test starts the containers it needs."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (rootful podman with a port below 1024 in the image)")
        for tool in ("podman", "runc", "slirp4netns", "openssl"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed (apt-get install podman runc "
                                        "slirp4netns openssl)")
        signal.signal(signal.SIGTERM, _on_sigterm)
        cls.addClassCleanup(cleanup_podman)
        cls.dir = harness.make_tempdir("mailferry-image-")
        cls.addClassCleanup(harness.remove_tempdir, cls.dir)

        cls.build_image()
        cls.make_pki_and_secrets()
        cls.upstream = harness.new_upstream(cls.dir, cls.addClassCleanup, args=cls.upstream_args())

    @classmethod
    def tearDownClass(cls):
        if _figures:
            print("\ncontainer image figures:", file=sys.stderr)
            for k, v in _figures.items():
                print(f"  {k}: {v}", file=sys.stderr)
            sys.stderr.flush()

    # ------------------------------------------------------------ setup

    @classmethod
    def static_binary(cls) -> tuple[list[str], str]:
        """build-image.sh's arguments for the binary under test, and a description."""
        given = os.environ.get("MAILFERRY_STATIC_BIN")
        if given:
            if not os.path.exists(given):
                raise AssertionError(f"MAILFERRY_STATIC_BIN={given} does not exist (ninja mailferry-static)")
            return ["--binary", given], given
        if is_static(harness.MAILFERRY_BIN):
            return ["--binary", harness.MAILFERRY_BIN], harness.MAILFERRY_BIN
        build_dir = os.environ.get("MAILFERRY_BUILD_ROOT") or os.path.dirname(harness.MAILFERRY_BIN)
        if not os.path.exists(os.path.join(build_dir, "build.ninja")):
            raise unittest.SkipTest(f"{harness.MAILFERRY_BIN} is not static and {build_dir} is not a "
                                    "meson build dir: pass a static binary or set MAILFERRY_STATIC_BIN")
        return ["--build-dir", build_dir], os.path.join(build_dir, "mailferry-static")

    @classmethod
    def build_image(cls):
        args, binary = cls.static_binary()
        env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF, CONTAINER_ENGINE="podman")
        t0 = time.monotonic()
        _made["image"].append(IMAGE)
        r = subprocess.run([str(BUILD_IMAGE), *args, IMAGE], capture_output=True, timeout=300,
                           env=env, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError(f"build-image.sh exited {r.returncode}:\n"
                                 f"{r.stderr.decode(errors='replace')[-3000:]}")
        _figures["image build (build-image.sh, binary already linked)"] = f"{time.monotonic() - t0:.1f} s"
        _figures["static binary (unstripped, as linked)"] = mib(os.path.getsize(binary))
        cls.image_info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
        _figures["image size"] = mib(int(cls.image_info["Size"]))

    @classmethod
    def make_pki_and_secrets(cls):
        pki = harness.tls_pki(cls.dir)
        cls.pki = pki
        # The upstream's certificate names UPSTREAM_NAME, so the relay's host name check passes
        # only if the name resolved in the container is the one it verified.
        d = pki.dir
        cls.upstream_cert, cls.upstream_key = os.path.join(d, "upstream.pem"), os.path.join(d, "upstream.key")
        harness._make_leaf(d, cls.upstream_cert, cls.upstream_key, pki.ca_cert, pki.ca_key,
                           f"DNS:{UPSTREAM_NAME}")
        pw = harness.write_file(os.path.join(cls.dir, "upstream-password"), UPSTREAM_PASSWORD + "\n")
        cls.secret = {}
        for key, path in (("password", pw), ("ca", pki.ca_cert), ("cert", pki.server_cert),
                          ("key", pki.server_key)):
            name = f"{PREFIX}-{key}"
            _made["secret"].append(name)
            podman("secret", "create", name, path)
            cls.secret[key] = name
        cls.user_hash = harness.mailferry_hash(SUBMIT_PASSWORD)

    @classmethod
    def upstream_args(cls) -> list[str]:
        return ["--tls-cert", cls.upstream_cert, "--tls-key", cls.upstream_key,
                "--auth", f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}"]

    # ------------------------------------------------------------ running the image

    def environment(self, upstream_port: int, ca: bool = True) -> dict[str, str]:
        """The whole configuration: variables, and secrets mounted under SECRETS."""
        env = {
            "MAILFERRY_HOSTNAME": "relay.test",
            "MAILFERRY_UPSTREAM_HOST": UPSTREAM_NAME,
            "MAILFERRY_UPSTREAM_PORTS": str(upstream_port),
            "MAILFERRY_UPSTREAM_USERNAME": UPSTREAM_USER,
            "MAILFERRY_UPSTREAM_PASSWORD_FILE": f"{SECRETS}/password",
            "MAILFERRY_TLS_CERT_FILE": f"{SECRETS}/cert",
            "MAILFERRY_TLS_KEY_FILE": f"{SECRETS}/key",
            "MAILFERRY_USERS": f"{SUBMIT_USER}:{self.user_hash}",
            "MAILFERRY_QUEUE_RETRY_SCHEDULE": "1s",
        }
        if ca:
            env["MAILFERRY_UPSTREAM_CA_FILE"] = f"{SECRETS}/ca"
        return env

    def run_args(self, upstream_port: int, ca: bool = True, sysctl: bool = True) -> list[str]:
        args = [*HARDENING, *NETWORK, "--add-host", f"{UPSTREAM_NAME}:{HOST_LOOPBACK}",
                # No systemd here to run podman's health check timer; `healthcheck run` still works.
                "--health-interval", "disable"]
        if sysctl:
            args += UNPRIVILEGED_PORTS
        for key, name in self.secret.items():
            args += ["--secret", f"{name},uid={UID},gid={UID},mode=0400,target={SECRETS}/{key}"]
        for k, v in self.environment(upstream_port, ca).items():
            args += ["--env", f"{k}={v}"]
        return args

    def new_volume(self) -> str:
        name = f"{PREFIX}-spool-{len(_made['volume'])}"
        _made["volume"].append(name)
        podman("volume", "create", name)
        return name

    def start(self, volume: str, upstream_port: int, measure: bool = False) -> tuple[str, int]:
        """`podman run -d` with the default command (serve) and the default listener published on
        a free loopback port; returns (container, host port) once the 220 banner arrives there."""
        name = f"{PREFIX}-c{len(_made['container'])}"
        host_port = harness.free_port()
        _made["container"].append(name)
        self.addCleanup(self.dump_logs_on_failure, name)
        t0 = time.monotonic()
        podman("run", "--detach", "--name", name, *self.run_args(upstream_port),
               "--publish", f"127.0.0.1:{host_port}:587", "--volume", f"{volume}:{SPOOL}", IMAGE)
        banner = harness.wait_until(lambda: self.banner_or_exit(name, host_port), 30, interval=0.02,
                                    what=f"the 220 banner on 127.0.0.1:{host_port}")
        elapsed = time.monotonic() - t0
        banner_at = time.time()
        self.assertTrue(banner.startswith(b"220 "), f"first line: {banner!r}\n{self.logs(name)}")
        if measure:
            _figures["podman run → 220 banner"] = f"{elapsed * 1000:.0f} ms"
            # The part that is mailferry's: from the container's start (podman's own time stamp,
            # ns precision) to the banner; the rest is podman, runc and slirp4netns.
            started = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)",
                               self.inspect(name)["State"]["StartedAt"])
            if started:
                stamp = datetime.datetime.fromisoformat(
                    started.group(1) + "." + (started.group(2) or "0")[:6].ljust(6, "0")
                    + started.group(3).replace("Z", "+00:00"))
                _figures["container start → 220 banner (mailferry's share)"] = \
                    f"{(banner_at - stamp.timestamp()) * 1000:.0f} ms"
        return name, host_port

    def banner_or_exit(self, name: str, port: int):
        line = read_banner(port, 1.0)
        if line:
            return line
        state = self.inspect(name)["State"]
        if not state["Running"]:
            raise AssertionError(f"container {name} exited with {state['ExitCode']}:\n{self.logs(name)}")
        return None

    def inspect(self, name: str) -> dict:
        return json.loads(podman("container", "inspect", name).stdout)[0]

    def logs(self, name: str) -> str:
        r = podman("logs", name, check=False)
        return r.stdout + r.stderr

    def log_lines(self, name: str) -> list[str]:
        return [line for line in self.logs(name).splitlines() if line.strip()]

    def events(self, name: str, event: str) -> list[dict]:
        out = []
        for line in self.log_lines(name):
            parsed = harness.parse_log_line(line)
            if parsed and parsed[0] == event:
                out.append(parsed[1])
        return out

    def wait_event(self, name: str, event: str, timeout: float = 20) -> list[dict]:
        return harness.wait_until(lambda: self.events(name, event), timeout,
                                  what=f"a '{event}' log line from {name}")

    def dump_logs_on_failure(self, name: str):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None or not any(getattr(t, "test_case", t) is self
                                     for t, _ in result.errors + result.failures):
            return
        print(f"\n--- podman logs {name}:\n{self.logs(name)[-4000:]}", file=sys.stderr, flush=True)

    def stop(self, name: str) -> float:
        """podman stop (SIGTERM, then SIGKILL after 10 s); asserts exit status 0; returns seconds."""
        t0 = time.monotonic()
        podman("stop", "--time", "10", name, timeout=60)
        elapsed = time.monotonic() - t0
        state = self.inspect(name)["State"]
        self.assertEqual(state["ExitCode"], 0, f"exit status after SIGTERM\n{self.logs(name)}")
        self.assertTrue(self.events(name, "stopped"), f"no 'stopped' log line\n{self.logs(name)}")
        return elapsed

    def one_shot(self, upstream_port: int, *command: str, ca: bool = True, stdin: bytes | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess:
        """`podman run --rm IMAGE COMMAND` with the same environment and secrets, no daemon."""
        name = f"{PREFIX}-c{len(_made['container'])}"
        _made["container"].append(name)
        args = ["run", "--rm", "--name", name, *self.run_args(upstream_port, ca)]
        if stdin is not None:
            args.append("--interactive")
        return podman(*args, IMAGE, *command, input=stdin, timeout=timeout, check=False)

    def submit(self, port: int, marker: str) -> harness.SendResult:
        """STARTTLS (verifying the listener's test certificate) + AUTH PLAIN + one message."""
        context = ssl.create_default_context(cafile=self.pki.ca_cert)
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30)
        try:
            s.ehlo()
            s.starttls(context=context)
            s.ehlo()
            s.login(SUBMIT_USER, SUBMIT_PASSWORD)
            msg = harness.make_message([("From", "app@example.com"), ("To", "you@example.net"),
                                        ("Subject", marker)], f"{marker}\r\n".encode())
            return harness.smtp_send_on(s, "app@example.com", ["you@example.net"], msg)
        finally:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                s.close()

    def rss_kib(self, name: str) -> int:
        pid = self.inspect(name)["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))

    # ------------------------------------------------------------ tests

    def test_image_contents(self):
        """Only the binary, the CA bundle, passwd/group and the spool; non-root; volume; health."""
        cfg = self.image_info["Config"]
        self.assertEqual(cfg.get("User"), f"{UID}:{UID}")
        self.assertIn(SPOOL, cfg.get("Volumes") or {})
        self.assertEqual(cfg.get("Entrypoint"), ["/usr/local/bin/mailferry"])
        self.assertEqual(cfg.get("Cmd"), ["serve"])
        self.assertEqual(cfg.get("StopSignal"), "SIGTERM")
        self.assertIn("587/tcp", cfg.get("ExposedPorts") or {})
        self.assertIn("MAILFERRY_LISTEN=0.0.0.0:587 starttls required", cfg.get("Env") or [])
        self.assertFalse([e for e in cfg.get("Env") or [] if e.startswith("MAILFERRY_CONFIG=")])
        health = self.image_info.get("Healthcheck")
        self.assertIsNotNone(health, "no HEALTHCHECK (podman build needs --format docker)")
        self.assertEqual(health["Test"], ["CMD", "/usr/local/bin/mailferry", "status"])

        root = podman("image", "mount", IMAGE).stdout.strip()
        try:
            files = {}
            for dirpath, dirnames, filenames in os.walk(root):
                for n in dirnames + filenames:
                    p = os.path.join(dirpath, n)
                    st = os.lstat(p)
                    files["/" + os.path.relpath(p, root)] = st
            kept = {p for p in files if not os.path.isdir(os.path.join(root, p[1:]))}
            self.assertEqual(kept, {"/usr/local/bin/mailferry", "/etc/ssl/certs/ca-certificates.crt",
                                    "/etc/passwd", "/etc/group"})
            self.assertFalse([p for p in files if p.startswith("/etc/mailferry")], "a config in the image")
            spool = files[SPOOL]
            self.assertEqual((spool.st_uid, spool.st_gid, spool.st_mode & 0o777), (UID, UID, 0o700))
            binary = os.path.join(root, "usr/local/bin/mailferry")
            self.assertTrue(is_static(binary), "the image's mailferry is not statically linked")
            _figures["static binary (stripped, in the image)"] = mib(os.path.getsize(binary))
            with open("/etc/ssl/certs/ca-certificates.crt", "rb") as host_bundle, \
                 open(os.path.join(root, "etc/ssl/certs/ca-certificates.crt"), "rb") as image_bundle:
                self.assertEqual(image_bundle.read(), host_bundle.read(), "CA bundle differs from the host's")
            passwd = Path(root, "etc/passwd").read_text()
            self.assertIn(f"mailferry:x:{UID}:{UID}:", passwd)
        finally:
            podman("image", "unmount", IMAGE, check=False)

    def test_relay_health_stop(self):
        """Env + secrets only: submit with STARTTLS + AUTH on the published 587, relayed over TLS +
        AUTH upstream; sendmail and status via exec; health check silent; stop drains, exits 0."""
        up = self.upstream
        volume = self.new_volume()
        name, port = self.start(volume, up.port, measure=True)

        marker = f"relay-{secrets.token_hex(4)}"
        res = self.submit(port, marker)
        self.assertEqual(res.code, 250, res)
        self.assertIsNotNone(res.queue_id, res)
        got = up.wait_for(marker.encode(), 20)
        self.assertEqual(len(got), 1)
        self.assertEqual((got[0]["auth"] or {}).get("user"), UPSTREAM_USER, "not AUTHed upstream")
        self.assertEqual((got[0]["tls"] or {}).get("sni"), UPSTREAM_NAME, "not TLS with SNI upstream")
        self.wait_event(name, "delivered")
        received = [f for f in self.events(name, "received") if f.get("id") == res.queue_id]
        self.assertEqual(len(received), 1, self.logs(name))
        self.assertEqual(received[0].get("user"), SUBMIT_USER)

        # sendmail inside the container hands the message to the daemon, as the image's user.
        marker2 = f"sendmail-{secrets.token_hex(4)}"
        msg = f"From: app@example.com\nTo: you@example.net\nSubject: {marker2}\n\n{marker2}\n".encode()
        r = podman("exec", "--interactive", name, "/usr/local/bin/mailferry", "sendmail", "-i",
                   "you@example.net", input=msg, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        up.wait_for(marker2.encode(), 20)
        clients = [f.get("client") for f in self.events(name, "received")]
        self.assertIn("local:mailferry", clients, "the hand-off did not come from the image's user")

        # Idle: every delivery done, nothing queued.
        harness.wait_until(lambda: len(self.events(name, "delivered")) >= 2, 20, what="2 deliveries")
        time.sleep(1)
        _figures["idle RSS in the container (after 2 messages)"] = f"{self.rss_kib(name) / 1024:.1f} MiB"

        # Health: the image's HEALTHCHECK and `status` answer ready, and neither adds a log line.
        before = self.log_lines(name)
        r = podman("healthcheck", "run", name, check=False)
        self.assertEqual(r.returncode, 0, f"healthcheck: {r.stdout}{r.stderr}")
        r = podman("exec", name, "/usr/local/bin/mailferry", "status", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ready=yes", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^queued=0$")
        self.assertEqual(self.inspect(name)["State"]["Health"]["Status"], "healthy")
        time.sleep(0.3)
        self.assertEqual(self.log_lines(name), before, "status or the health check wrote to the log")

        # An idle client at SIGTERM is told 421 (the drain), not cut off.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            idle.settimeout(10)
            f = idle.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 "))
            idle.sendall(b"EHLO idle.test\r\n")
            for _ in range(50):
                if f.readline()[:4] != b"250-":
                    break
            elapsed = self.stop(name)
            rest = f.read()
        _figures["podman stop (SIGTERM → exit 0)"] = f"{elapsed * 1000:.0f} ms"
        self.assertLess(elapsed, 5.0, "stop took too long")
        self.assertTrue(rest.startswith(b"421 "), f"idle session at stop got {rest!r}")
        self.assertEqual(len(up.find(marker.encode())), 1)

    def test_spool_volume_outlives_container(self):
        """A message accepted while the upstream is down is delivered, exactly once, by a new
        container on the same volume."""
        down_port = harness.free_port()
        volume = self.new_volume()
        first, port = self.start(volume, down_port)
        marker = f"spooled-{secrets.token_hex(4)}"
        res = self.submit(port, marker)
        self.assertEqual(res.code, 250, res)
        deferred = self.wait_event(first, "deferred")
        self.assertEqual(deferred[0].get("id"), res.queue_id)
        self.stop(first)

        later = harness.new_upstream(self.dir, self.addCleanup, port=down_port, args=self.upstream_args(),
                                     name="later")
        second, _ = self.start(volume, down_port)
        got = later.wait_for(marker.encode(), 30)
        self.assertEqual(len(got), 1)
        delivered = harness.wait_until(
            lambda: [f for f in self.events(second, "delivered") if f.get("id") == res.queue_id], 20,
            what=f"delivered id={res.queue_id}")
        self.assertEqual(len(delivered), 1)
        r = podman("exec", second, "/usr/local/bin/mailferry", "queue", "list", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(res.queue_id, r.stdout)
        time.sleep(2.5)   # past the 1 s retry schedule: a second copy would be on its way by now
        self.assertEqual(len(later.find(marker.encode())), 1, "delivered more than once")
        self.assertEqual(len(self.upstream.find(marker.encode())), 0)
        self.stop(second)

    def test_one_shot_commands_from_environment(self):
        """check-config, probe and sendmail (no daemon: straight to the upstream) with no file."""
        up = self.upstream
        r = self.one_shot(up.port, "check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# from MAILFERRY_UPSTREAM_HOST", r.stdout)
        self.assertNotIn(UPSTREAM_PASSWORD, r.stdout + r.stderr)

        # The image's own trust store (the host's bundle) is loaded, and does not know the test CA.
        r = self.one_shot(up.port, "probe", ca=False)
        self.assertEqual(r.returncode, 69, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"certificate", r.stdout)
        r = self.one_shot(up.port, "probe")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        marker = f"direct-{secrets.token_hex(4)}"
        msg = f"From: app@example.com\nTo: you@example.net\nSubject: {marker}\n\n{marker}\n".encode()
        r = self.one_shot(up.port, "sendmail", "-i", "you@example.net", stdin=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(without_podman_log(r.stderr).strip(), "")
        got = up.wait_for(marker.encode(), 10)
        self.assertEqual((got[0]["auth"] or {}).get("user"), UPSTREAM_USER)

    def test_port_587_without_the_sysctl(self):
        """Podman 4 keeps ports below 1024 privileged: without the sysctl the image's user cannot
        bind 587 (with --cap-drop ALL nothing else would let it), and says so in one line."""
        name = f"{PREFIX}-c{len(_made['container'])}"
        _made["container"].append(name)
        r = podman("run", "--name", name, *self.run_args(self.upstream.port, sysctl=False), IMAGE,
                   timeout=30, check=False)
        self.assertNotEqual(r.returncode, 0, "bound 587 without the sysctl: podman sets it now?")
        out = without_podman_log(r.stdout + r.stderr).strip()
        print(f"\nwithout the sysctl: {out}", file=sys.stderr)
        self.assertEqual(len(out.splitlines()), 1, out)
        self.assertIn("587", out)
        self.assertRegex(out.lower(), r"permission denied|not permitted")


if __name__ == "__main__":
    harness.main()
