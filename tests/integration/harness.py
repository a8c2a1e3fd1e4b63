"""harness.py: what the integration tests share — ports, temp dirs, the test upstream, configs,
a running `mailferry serve`, SMTP sending, bounded waits, and teardown that leaves no process.

Standard library only (unittest, smtplib, subprocess), run with /usr/bin/python3. Every wait is
bounded in time; every process started here is killed in teardown, at interpreter exit, on
SIGTERM (meson's timeout), and by the kernel if this interpreter dies (PR_SET_PDEATHSIG).

A test file is run as:
    /usr/bin/python3 tests/integration/test_x.py <path-to-mailferry> [unittest options]
or with the binary in $MAILFERRY_BIN. MAILFERRY_KEEP_TMP=1 keeps the temp dirs for a post-mortem.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import datetime
import email.utils
import contextlib
import json
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
UPSTREAM_PY = HERE / "upstream.py"
HOSTNAME = "relay.test"

MAILFERRY_BIN: str | None = os.environ.get("MAILFERRY_BIN")

_processes: list[subprocess.Popen] = []
_tempdirs: list[str] = []


# ---------------------------------------------------------------- processes and cleanup

def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if this interpreter dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def spawn(argv: list[str], **kw) -> subprocess.Popen:
    """Start a tracked child process. Call only from the main thread (preexec_fn)."""
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)   # keep mailferry's log lines free of syslog prefixes
    env.pop("MAILFERRY_CONFIG", None)
    env.update(kw.pop("env", {}) or {})
    p = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent, **kw)
    _processes.append(p)
    return p


def stop_process(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
    """Send sig, wait up to grace seconds, then SIGKILL. Returns the exit status seen after sig
    (None if it had to be killed)."""
    if p.poll() is not None:
        return p.returncode
    try:
        p.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=10)
        return None


def _kill_all() -> None:
    for p in _processes:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(timeout=5)
            except Exception:
                pass
    if os.environ.get("MAILFERRY_KEEP_TMP") != "1":
        for d in _tempdirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_kill_all)


def _on_sigterm(signum, frame):
    print(f"harness: got signal {signum}, killing children", file=sys.stderr, flush=True)
    _kill_all()
    os._exit(128 + signum)


def make_tempdir(prefix: str = "mailferry-it-") -> str:
    d = tempfile.mkdtemp(prefix=prefix)
    _tempdirs.append(d)
    return d


def remove_tempdir(d: str) -> None:
    if os.environ.get("MAILFERRY_KEEP_TMP") == "1":
        print(f"harness: kept {d}", file=sys.stderr)
        return
    shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def environment(**variables: str):
    """os.environ with `variables` set for the duration (children spawned then inherit them)."""
    old = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll predicate() until it returns something truthy; at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- the test upstream

class Upstream:
    """tests/integration/upstream.py as a child process; messages land as JSON in maildir."""

    def __init__(self, workdir: str, port: int = 0, args: list[str] | None = None,
                 name: str = "upstream"):
        self.workdir = workdir
        self.maildir = os.path.join(workdir, name + "-maildir")
        self.log_path = os.path.join(workdir, name + ".log")
        self.transcript_path = os.path.join(workdir, name + ".transcript")
        self.requested_port = port
        self.port = port
        self.args = list(args or [])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> "Upstream":
        os.makedirs(self.maildir, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = spawn([PYTHON, str(UPSTREAM_PY), "--port", str(self.requested_port),
                           "--maildir", self.maildir, "--transcript", self.transcript_path,
                           *self.args],
                          stdout=subprocess.PIPE, stderr=self._log)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"test upstream did not get ready: {self.log()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    raise AssertionError(f"test upstream exited: {self.log()}")
                line += chunk
        m = re.match(rb"ready port=(\d+)", line)
        if not m:
            raise AssertionError(f"test upstream said {line!r}")
        self.port = int(m.group(1))
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=5)
            self.proc.stdout.close()
            self._log.close()
            self.proc = None

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def transcript(self) -> list[str]:
        """Every transcript line so far (see upstream.py: 'conn=N C: EHLO x', 'conn=N close')."""
        try:
            return Path(self.transcript_path).read_text(errors="replace").splitlines()
        except OSError:
            return []

    def connections(self) -> dict[int, list[str]]:
        """The transcript split by connection: {conn number: [event, ...]} without 'conn=N '."""
        out: dict[int, list[str]] = {}
        for line in self.transcript():
            m = re.match(r"conn=(\d+) (.*)", line)
            if m:
                out.setdefault(int(m.group(1)), []).append(m.group(2))
        return out

    def commands(self) -> list[str]:
        """The verbs of every command received on any connection, in order ('EHLO', 'AUTH', ...)."""
        return [e[3:].split()[0] for events in self.connections().values()
                for e in events if e.startswith("C: ")]

    def messages(self) -> list[dict]:
        """Every accepted message so far, oldest first; 'raw' holds the exact bytes."""
        out = []
        try:
            names = sorted(n for n in os.listdir(self.maildir) if n.endswith(".json")
                           and not n.startswith("."))
        except FileNotFoundError:
            return out
        for n in names:
            with open(os.path.join(self.maildir, n), encoding="utf-8") as f:
                rec = json.load(f)
            rec["raw"] = base64.b64decode(rec["data_b64"])
            rec["file"] = n
            out.append(rec)
        return out

    def count(self) -> int:
        try:
            return sum(1 for n in os.listdir(self.maildir)
                       if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return 0

    def wait_for_count(self, n: int, timeout: float) -> list[dict]:
        wait_until(lambda: self.count() >= n, timeout,
                   what=f"{n} message(s) at the upstream (have {self.count()})")
        return self.messages()

    def find(self, marker: bytes) -> list[dict]:
        return [m for m in self.messages() if marker in m["raw"]]

    def wait_for(self, marker: bytes, timeout: float, n: int = 1) -> list[dict]:
        return wait_until(lambda: (lambda f: f if len(f) >= n else None)(self.find(marker)),
                          timeout, what=f"{n} message(s) with {marker!r} at the upstream")


# ---------------------------------------------------------------- haproxy

def start_haproxy(workdir: str, cleanup, body: list[str], ports: list[int],
                  timeout_client: str = "30s") -> subprocess.Popen:
    """Debian's haproxy in TCP mode with `body` (frontends and backends, one line each) after the
    shared global and defaults sections; checked with `haproxy -c` first, stopped by `cleanup`,
    returned once every port in `ports` accepts. Skips the test when haproxy is missing."""
    if shutil.which("haproxy") is None:
        raise unittest.SkipTest("haproxy is not installed (Debian package haproxy)")
    cfg = write_file(os.path.join(workdir, "haproxy.cfg"), "\n".join([
        "global", "  maxconn 200", "defaults", "  mode tcp", "  timeout connect 5s",
        f"  timeout client {timeout_client}", f"  timeout server {timeout_client}", *body, ""]))
    check = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, timeout=20)
    if check.returncode != 0:
        raise AssertionError(f"haproxy -c: {check.stderr.decode(errors='replace')}")
    proc = spawn(["haproxy", "-db", "-f", cfg], stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cleanup(stop_process, proc)
    wait_until(lambda: all(port_accepts(p) for p in ports), 10.0, what="haproxy listening")
    return proc


# ---------------------------------------------------------------- test certificates

class TlsPKI:
    """Certificates made with the openssl CLI at test time (ECDSA P-256), once per directory:
        ca_cert            the test CA, to trust (ca_file, tls_trust_file, --cafile)
        server_cert/key    DNS:localhost, IP:127.0.0.1, signed by the test CA
        wrong_cert/key     DNS:wrong.example, signed by the test CA
        other_ca_cert      an unrelated CA
        other_cert/key     DNS:localhost, IP:127.0.0.1, signed by the unrelated CA
    Keys are mode 0600."""

    def __init__(self, directory: str):
        self.dir = directory
        p = lambda n: os.path.join(directory, n)
        self.ca_cert, self.ca_key = p("ca.pem"), p("ca.key")
        self.server_cert, self.server_key = p("server.pem"), p("server.key")
        self.wrong_cert, self.wrong_key = p("wrong.pem"), p("wrong.key")
        self.other_ca_cert, self.other_ca_key = p("other-ca.pem"), p("other-ca.key")
        self.other_cert, self.other_key = p("other.pem"), p("other.key")


_pki_cache: dict[str, TlsPKI] = {}


def _openssl(*args: str, cwd: str) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {r.stderr.decode(errors='replace')}")


def _make_ca(d: str, cert: str, key: str, cn: str) -> None:
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    os.chmod(key, 0o600)


def _make_leaf(d: str, cert: str, key: str, ca_cert: str, ca_key: str, san: str) -> None:
    csr = cert + ".csr"
    ext = cert + ".ext"
    cn = san.split(",")[0].split(":", 1)[1]
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={cn}", cwd=d)
    os.chmod(key, 0o600)
    write_file(ext, f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "30", "-sha256", "-extfile", ext, cwd=d)


def tls_pki(workdir: str) -> TlsPKI:
    """The test certificates in workdir/pki, made on first use and cached for the run."""
    d = os.path.join(workdir, "pki")
    if d in _pki_cache:
        return _pki_cache[d]
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("the openssl command is not installed (Debian package openssl)")
    os.makedirs(d, exist_ok=True)
    pki = TlsPKI(d)
    _make_ca(d, pki.ca_cert, pki.ca_key, "mailferry test CA")
    _make_ca(d, pki.other_ca_cert, pki.other_ca_key, "unrelated test CA")
    _make_leaf(d, pki.server_cert, pki.server_key, pki.ca_cert, pki.ca_key,
               "DNS:localhost,IP:127.0.0.1")
    _make_leaf(d, pki.wrong_cert, pki.wrong_key, pki.ca_cert, pki.ca_key, "DNS:wrong.example")
    _make_leaf(d, pki.other_cert, pki.other_key, pki.other_ca_cert, pki.other_ca_key,
               "DNS:localhost,IP:127.0.0.1")
    _pki_cache[d] = pki
    return pki


# ---------------------------------------------------------------- configs

def toml_str(s: str) -> str:
    return json.dumps(s)   # a JSON string is a valid TOML basic string for our inputs


def relay_config(*, spool_dir: str, listen_port: int, upstream_port: int,
                 trusted: tuple[str, ...] = ("127.0.0.0/8",), retry: tuple[str, ...] = ("1s",),
                 max_age: str = "1h", extra_top: str = "", extra_upstream: str = "",
                 upstream_host: str = "127.0.0.1", upstream_ports: str | None = None,
                 listen: list[str] | None = None) -> str:
    """The config every relay test uses (TOML text). upstream_ports, if given, is the TOML
    value of [upstream] ports and replaces the single tls = "none" port upstream_port; listen,
    if given, replaces the plaintext listener on listen_port (see listener_toml)."""
    if listen is None:
        listen = listener_toml(listen_port)
    if upstream_ports is None:
        upstream_ports = f'[{{ port = {upstream_port}, tls = "none" }}]'

    return "\n".join([
        f"spool_dir = {toml_str(spool_dir)}",
        f"hostname = {toml_str(HOSTNAME)}",
        "trusted_networks = [" + ", ".join(toml_str(t) for t in trusted) + "]",
        extra_top,
        "",
        *listen,
        "[upstream]",
        f"host = {toml_str(upstream_host)}",
        f"ports = {upstream_ports}",
        extra_upstream,
        "",
        "[queue]",
        "retry_schedule = [" + ", ".join(toml_str(r) for r in retry) + "]",
        f"max_age = {toml_str(max_age)}",
        "",
    ])


def listener_toml(port: int, tls: str = "none", auth: str = "none",
                  cert: str | None = None, key: str | None = None) -> list[str]:
    """A [[listen]] table on 127.0.0.1:port, and the [tls] table when cert is given (TOML lines)."""
    lines = ["[[listen]]", f'address = "127.0.0.1:{port}"', f"tls = {toml_str(tls)}",
             f"auth = {toml_str(auth)}", ""]
    if cert is not None:
        lines += ["[tls]", f"cert_file = {toml_str(cert)}", f"key_file = {toml_str(key)}", ""]
    return lines


def mailferry_hash(password: str) -> str:
    """A crypt(3) hash for [[user]] password_hash, from `mailferry passwd`."""
    r = subprocess.run([MAILFERRY_BIN, "passwd"], input=(password + "\n").encode(),
                       capture_output=True, timeout=60)
    h = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0 or not h.startswith("$"):
        raise AssertionError(f"mailferry passwd exited {r.returncode}, printed {r.stdout!r}: {r.stderr!r}")
    return h


def write_file(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- mailferry

LOG_EVENT = re.compile(r"(?:^|\s)([a-z][a-z_-]*)((?:\s+[A-Za-z_][\w.-]*=(?:\"(?:[^\"\\]|\\.)*\"|\S*))*)\s*$")
LOG_FIELD = re.compile(r"([A-Za-z_][\w.-]*)=(\"(?:[^\"\\]|\\.)*\"|\S*)")


def parse_log_line(line: str) -> tuple[str, dict] | None:
    """'... delivered id=X rcpt=<b@y> reply="250 ok"' → ('delivered', {'id': 'X', ...})."""
    m = LOG_EVENT.search(line.rstrip("\n"))
    if not m:
        return None
    fields = {}
    for k, v in LOG_FIELD.findall(m.group(2)):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        fields[k] = v
    return m.group(1), fields


class Mailferry:
    """`mailferry serve -c CONFIG` as a child process; stderr (its log) goes to a file."""

    def __init__(self, workdir: str, config_path: str, name: str = "mailferry"):
        if not MAILFERRY_BIN:
            raise AssertionError("no mailferry binary: pass its path as the first argument "
                                 "or set MAILFERRY_BIN")
        self.workdir = workdir
        self.config_path = config_path
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    def start(self, port: int, ready_timeout: float = 10.0) -> "Mailferry":
        """Start serve and wait (100 × 50 ms tries, more if ready_timeout says so) until port accepts."""
        self.port = port
        self._log = open(self.log_path, "ab")
        self.starts += 1
        if self.starts > 1:
            self._log.write(f"--- harness: restart #{self.starts - 1}\n".encode())
            self._log.flush()
        self.proc = spawn([MAILFERRY_BIN, "serve", "-c", self.config_path],
                          stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        tries = max(100, int(ready_timeout / 0.05))
        for _ in range(tries):
            if self.proc.poll() is not None:
                raise AssertionError(f"mailferry serve exited with {self.proc.returncode}:\n"
                                     f"{self.log()[-3000:]}")
            if port_accepts(port):
                return self
            time.sleep(0.05)
        raise AssertionError(f"mailferry did not accept on 127.0.0.1:{port} within "
                             f"{tries * 0.05:.0f}s:\n{self.log()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        rc = None
        if self.proc is not None:
            rc = stop_process(self.proc, sig, grace)
            self._log.close()
            self.proc = None
        return rc

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()          # SIGKILL
        self.proc.wait(timeout=10)
        self._log.close()
        self.proc = None

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def events(self, event: str | None = None, qid: str | None = None) -> list[tuple[str, dict]]:
        out = []
        for line in self.log().splitlines():
            parsed = parse_log_line(line)
            if not parsed:
                continue
            if event is not None and parsed[0] != event:
                continue
            if qid is not None and parsed[1].get("id") != qid:
                continue
            out.append(parsed)
        return out

    def wait_event(self, event: str, qid: str | None = None, timeout: float = 20.0):
        return wait_until(lambda: self.events(event, qid), timeout,
                          what=f"a '{event}' log line" + (f" for id={qid}" if qid else "")
                          + f"; log so far:\n{self.log()[-2000:]}")

    def run(self, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
        """A one-shot mailferry command (check-config, ...): output captured, bounded."""
        return run_mailferry(*args, timeout=timeout)


def run_mailferry(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    p = spawn([MAILFERRY_BIN, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        raise AssertionError(f"mailferry {' '.join(args)} still running after {timeout}s; "
                             f"stderr: {err.decode(errors='replace')}")
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


def spool_ids(spool_dir: str, area: str = "queue") -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(spool_dir, area)))
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------- SMTP

QUEUED = re.compile(r"2\.0\.0 Ok: queued as (\S+)")


class SendResult:
    def __init__(self, code: int, text: str):
        self.code = code
        self.text = text
        m = QUEUED.search(text) if code == 250 else None
        self.queue_id = m.group(1) if m else None

    def __repr__(self):
        return f"SendResult({self.code}, {self.text!r})"


def smtp_connect(port: int, timeout: float = 30.0) -> smtplib.SMTP:
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=timeout)
    code, _ = s.ehlo()
    if code != 250:
        raise AssertionError(f"EHLO answered {code}")
    return s


def smtp_send_on(s: smtplib.SMTP, sender: str, rcpts: list[str], data: bytes,
                 mail_options: tuple[str, ...] = ()) -> SendResult:
    """One transaction on an open connection; returns the reply to the final dot.
    data is sent as bytes, dot-stuffed by smtplib and otherwise unchanged."""
    code, text = s.mail(sender, list(mail_options))
    if code != 250:
        s.rset()
        return SendResult(code, text.decode(errors="replace"))
    accepted = 0
    last = (0, b"")
    for r in rcpts:
        code, text = s.rcpt(r)
        last = (code, text)
        if code in (250, 251):
            accepted += 1
    if accepted == 0:
        s.rset()
        return SendResult(last[0], last[1].decode(errors="replace"))
    code, text = s.data(data)
    return SendResult(code, text.decode(errors="replace"))


def smtp_send(port: int, sender: str, rcpts: list[str], data: bytes,
              mail_options: tuple[str, ...] = (), timeout: float = 30.0) -> SendResult:
    s = smtp_connect(port, timeout)
    try:
        return smtp_send_on(s, sender, rcpts, data, mail_options)
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            s.close()


def make_message(headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
    return head + b"\r\n" + body


# ---------------------------------------------------------------- parsing what arrived

def header_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """Split a message into its header fields (each with its folded lines and CRLFs) and the
    rest (the empty line and the body)."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(raw):
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break
        line = raw[pos:eol + 2]
        if line == b"\r\n":
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        pos = eol + 2
    return fields, raw[pos:]


def field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().decode("latin-1").lower()


def field_value(field: bytes) -> str:
    return field.split(b":", 1)[1].decode("latin-1").replace("\r\n", "").strip()


def body_of(raw: bytes) -> bytes:
    i = raw.find(b"\r\n\r\n")
    return raw[i + 4:] if i >= 0 else b""


def has_bare_cr_or_lf(raw: bytes) -> bool:
    return re.search(rb"\r(?!\n)|(?<!\r)\n", raw) is not None


def rfc5322_time(text: str) -> float:
    """Seconds since the epoch of an RFC 5322 date-time; raises ValueError if malformed.
    A "-0000" zone (Python: naive) means UTC with unknown local offset."""
    d = email.utils.parsedate_to_datetime(text)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")


def check_added_headers(tc: unittest.TestCase, original: bytes, delivered: bytes) -> dict:
    """Assert delivered == original plus mailferry's Received: on top, plus Date: and Message-ID:
    only where the original had none; each added field well-formed. Returns the added values."""
    fields, rest = header_fields(delivered)
    tc.assertTrue(fields and field_name(fields[0]) == "received",
                  f"first header upstream is not Received:: {delivered[:200]!r}")
    received = field_value(fields[0])
    added = {"received": received}
    tc.assertIn(HOSTNAME, received, f"Received: does not name {HOSTNAME}: {received!r}")
    tc.assertIn(";", received, f"Received: has no '; date': {received!r}")
    tc.assertLess(abs(time.time() - rfc5322_time(received.rsplit(";", 1)[1].strip())), 3600,
                  f"Received: date is off: {received!r}")
    fields = fields[1:]
    orig_fields, _ = header_fields(original)
    orig_names = {field_name(f) for f in orig_fields}
    for name in ("date", "message-id"):
        got = [f for f in fields if field_name(f) == name]
        if name in orig_names:
            orig = [f for f in orig_fields if field_name(f) == name]
            tc.assertEqual(got, orig, f"{name} changed or duplicated")
            continue
        tc.assertEqual(len(got), 1, f"expected exactly one added {name}:, got {got!r}")
        value = field_value(got[0])
        added[name] = value
        if name == "date":
            tc.assertLess(abs(time.time() - rfc5322_time(value)), 3600,
                          f"added Date: is off: {value!r}")
        else:
            tc.assertRegex(value, MESSAGE_ID, "added Message-ID: malformed")
        fields = [f for f in fields if f is not got[0]]
    rebuilt = b"".join(fields) + rest
    tc.assertEqual(rebuilt, original, "message changed beyond the added trace headers")
    return added


# ---------------------------------------------------------------- test cases

def new_upstream(workdir: str, cleanup, port: int = 0, args: list[str] | None = None,
                 name: str = "upstream", start: bool = True) -> Upstream:
    up = Upstream(workdir, port, args, name)
    cleanup(up.stop)
    return up.start() if start else up


def new_mailferry(workdir: str, cleanup, upstream_port: int, name: str = "mailferry",
                  start: bool = True, **config_kw) -> Mailferry:
    """Write the relay config (relay_config's keywords) and start serve on a free port."""
    listen = free_port()
    spool = os.path.join(workdir, name + "-spool")
    cfg = write_file(os.path.join(workdir, name + ".toml"),
                     relay_config(spool_dir=spool, listen_port=listen,
                                  upstream_port=upstream_port, **config_kw))
    mf = Mailferry(workdir, cfg, name)
    mf.spool_dir = spool
    mf.port = listen
    cleanup(mf.stop)
    return mf.start(listen) if start else mf


class RelayCase(unittest.TestCase):
    """Base class: per-test temp dir and helpers that start an upstream + mailferry pair whose
    teardown is registered before anything can fail. For a pair shared by a class, use
    new_upstream / new_mailferry with cls.addClassCleanup in setUpClass."""

    @classmethod
    def class_workdir(cls) -> str:
        d = make_tempdir()
        cls.addClassCleanup(remove_tempdir, d)
        return d

    def setUp(self):
        self.workdir = make_tempdir()
        self.addCleanup(remove_tempdir, self.workdir)

    def start_upstream(self, port: int = 0, args: list[str] | None = None,
                       name: str = "upstream", start: bool = True) -> Upstream:
        return new_upstream(self.workdir, self.addCleanup, port, args, name, start)

    def start_mailferry(self, upstream_port: int, name: str = "mailferry", start: bool = True,
                        **config_kw) -> Mailferry:
        mf = new_mailferry(self.workdir, self.addCleanup, upstream_port, name, start=False,
                           **config_kw)
        self.addCleanup(self._dump_log_on_failure, mf)   # runs after mf.stop (LIFO)
        return mf.start(mf.port) if start else mf

    def _failed(self) -> bool:
        # A cleanup runs inside its own _Outcome part (Python 3.11), so outcome.success says
        # nothing about the test: look for this test (or one of its subtests) in the result.
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return any(getattr(t, "test_case", t) is self for t, _ in result.errors + result.failures)

    def _dump_log_on_failure(self, mf: Mailferry):
        # Only a failed test prints mailferry's state and log tail; a passing one stays quiet.
        if not self._failed():
            return
        state = "stopped by the harness"
        if mf.proc is not None:
            rc = mf.proc.poll()
            state = "running" if rc is None else (
                f"DIED with signal {-rc}" if rc < 0 else f"EXITED with status {rc}")
        print(f"\n--- mailferry: {state}; {mf.log_path} (tail):\n{mf.log()[-4000:]}",
              file=sys.stderr, flush=True)

    def dump_log_on_failure(self, mf: Mailferry):
        """For a shared (setUpClass) mailferry: call in setUp."""
        self.addCleanup(self._dump_log_on_failure, mf)


class SharedRelayCase(RelayCase):
    """One upstream + mailferry pair shared by every test of the class (cheaper than one each);
    a failing test still prints mailferry's log."""

    @classmethod
    def setUpClass(cls):
        cls.dir = cls.class_workdir()
        cls.upstream = new_upstream(cls.dir, cls.addClassCleanup)
        cls.mf = new_mailferry(cls.dir, cls.addClassCleanup, cls.upstream.port)

    def setUp(self):
        super().setUp()
        self.dump_log_on_failure(self.mf)


def main() -> None:
    """Entry point of every test file: argv[1] (if it is not an option) is the mailferry binary."""
    global MAILFERRY_BIN
    argv = list(sys.argv)
    if len(argv) > 1 and not argv[1].startswith("-"):
        MAILFERRY_BIN = argv.pop(1)
    if not MAILFERRY_BIN:
        print("usage: test_x.py PATH-TO-MAILFERRY [unittest options] (or set MAILFERRY_BIN)",
              file=sys.stderr)
        sys.exit(2)
    MAILFERRY_BIN = os.path.abspath(MAILFERRY_BIN)
    if not os.access(MAILFERRY_BIN, os.X_OK):
        print(f"not an executable: {MAILFERRY_BIN}", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, _on_sigterm)
    unittest.main(module="__main__", argv=argv, verbosity=2)
