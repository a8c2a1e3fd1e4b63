#!/usr/bin/python3
"""postfix_compare.py: mailferry against Postfix on this machine, in the same run.

A benchmark, not a test (meson never runs it). Each system relays the same load, one after the
other for every (message size, concurrency) point, all on 127.0.0.1:

    smtp-source (client) → relay: mailferry, or a private Postfix instance → smtp-sink (upstream)

and the report gives, per system, size and concurrency:

- msg/s: messages divided by the time from starting smtp-source until smtp-sink had counted every
  one of them (a relay that acknowledges fast but forwards slowly is not rewarded);
- p50/p99 latency from the end of DATA to the 250, measured by a Python client of this file's
  (smtp-source cannot report it): CONCURRENCY threads, one connection each, TCP_NODELAY, each
  timing from just before it writes the final ".\r\n" to the last line of the reply;
- peak RSS: the relay's processes (mailferry: its one process; Postfix: the sum over master and
  every child of it) sampled every 50 ms from /proc during the throughput phase; peak PSS, which
  does not count the libraries that Postfix's processes share once per process, beside it;
- CPU ms/msg: the CPU time of the relay's control group (cgroup v2 cpu.stat, else cgroup v1
  cpuacct, else /proc utime+stime+cutime+cstime of the process tree), which includes processes
  that exited during the phase, divided by the messages.

A point counts only if smtp-sink got exactly the number of messages sent, the relay's queue is
empty afterwards and its log shows no error; otherwise the row says why it failed.

Both systems keep their durability defaults: before its 250 mailferry fsyncs a message's two
files, its directory and then queue/ (that last fsync shared by the commits under way at the
time); Postfix's cleanup fsyncs the one queue file before smtpd answers 250. Postfix keeps
its defaults elsewhere too (in_flow_delay = 1s, 20 connections to one destination, connection
cache on demand); its services run unchrooted (Postfix's own default since 3.0, where Debian's
master.cf chroots them), so that no copy of /etc is needed inside the private queue directory.

Needs root (Postfix's master runs as root; smtp-sink then drops to nobody) and Debian's postfix
package, which brings smtp-source and smtp-sink:

    DEBIAN_FRONTEND=noninteractive apt-get install -y postfix
    meson setup build-bench --buildtype=release --wrap-mode=nofallback
    ninja -C build-bench mailferry
    sudo /usr/bin/python3 bench/postfix_compare.py --build build-bench [--messages 2000]
        [--messages-large 500] [--concurrency 1,10,50] [--sizes 2048,102400] [--repeat 3]
        [--systems mailferry,postfix] [--latency-messages 400] [--max-other 50] [--retries 2]
        [--reuse] [--json FILE]

A full run (the defaults) takes about 8 to 10 minutes. Every point runs --repeat times,
interleaved with the other system's; the table gives the median rate and its range. The machine
may be shared: before each run the script waits (10 s at most) for it to calm down, and a run
during which more than --max-other % of a core went to anything outside the pipeline is redone,
up to --retries times; a row that kept such a run is marked.

The Postfix instance is private: its own config_directory, queue_directory and data_directory
under /var/tmp/mailferry-bench/ (the file system mailferry's spool is on), started with
`postfix -c DIR start`, stopped and removed at the end, also on failure, Ctrl-C or SIGTERM. The
system's default instance and its main.cf are not touched: run as root, `postfix -c` needs no
alternate_config_directories entry.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
import harness  # noqa: E402

BASE_DIR = Path("/var/tmp/mailferry-bench")
SENDER = "bench@example.com"
RECIPIENT = "sink@example.net"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_INTERVAL = 0.05
PSS_EVERY = 5                 # smaps_rollup walks page tables: read it every 5th sample only


class PointFailed(Exception):
    """A measurement that must be reported as a failure, not as a number."""


class Interrupted(BaseException):
    """SIGTERM or SIGHUP: unwind like Ctrl-C so that every finally block cleans up."""


def _on_signal(signum, frame):
    raise Interrupted(f"signal {signum}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

# A direct child must not outlive this script, whatever kills it (PR_SET_PDEATHSIG).
_die_with_parent = harness._die_with_parent
free_port = harness.free_port
port_accepts = harness.port_accepts


def wait_until(pred, timeout: float, what: str, interval: float = 0.02):
    """harness.wait_until, whose timeout makes the point fail rather than the run."""
    try:
        return harness.wait_until(pred, timeout, interval=interval, what=what)
    except AssertionError as e:
        raise PointFailed(str(e)) from None


def read_stat(path: str) -> tuple[str, list[str]] | None:
    """(comm, fields after comm) of a /proc .../stat file; None if the task is gone."""
    try:
        with open(path, "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    lp, rp = raw.find("("), raw.rfind(")")
    return raw[lp + 1:rp], raw[rp + 2:].split()


def all_parents() -> dict[int, int]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(f"/proc/{name}/stat")
            if st:
                out[int(name)] = int(st[1][1])
    return out


def tree(root: int) -> list[int]:
    parents = all_parents()
    if root not in parents:
        return []
    found, frontier = [root], [root]
    while frontier:
        nxt = [p for p, pp in parents.items() if pp in frontier]
        found += nxt
        frontier = nxt
    return found


def task_ticks(pids: list[int]) -> dict[tuple[int, int], tuple[str, int]]:
    """Per thread of the given processes: (comm, utime+stime ticks)."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            st = read_stat(f"/proc/{pid}/task/{tid}/stat")
            if st:
                out[(pid, int(tid))] = (st[0], int(st[1][11]) + int(st[1][12]))
    return out


def machine_ticks() -> tuple[int, int, int]:
    """(busy, iowait, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle, iowait = v[3], v[4]
    total = sum(v[:8])
    return total - idle - iowait, iowait, total


def kernel_thread_seconds() -> float:
    """CPU of the kernel's own threads (kthreadd and its children): ksoftirqd, writeback, the
    journal. Interrupts and softirqs served in a process's context count as that process's."""
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(f"/proc/{name}/stat")
            if st and (name == "2" or st[1][1] == "2"):
                total += int(st[1][11]) + int(st[1][12])
    return total / CLK_TCK


def wait_for_quiet(limit_pct: float, max_wait: float) -> float:
    """Wait (at most max_wait s) until the machine, measured over half a second, keeps less than
    limit_pct % of one core busy; return the last figure."""
    deadline = time.monotonic() + max_wait
    while True:
        a = machine_ticks()
        time.sleep(0.5)
        b = machine_ticks()
        busy = 100 * (os.cpu_count() or 1) * (b[0] - a[0]) / max(1, b[2] - a[2])
        if busy < limit_pct or time.monotonic() >= deadline:
            return busy


def own_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def pressure_us(resource: str) -> int | None:
    """Total µs during which some task stalled on resource (PSI), if the kernel has it."""
    try:
        with open(f"/proc/pressure/{resource}") as f:
            return int(re.search(r"total=(\d+)", f.readline()).group(1))
    except (OSError, AttributeError):
        return None


# ---------------------------------------------------------------- accounting group

class Group:
    """The relay's processes, for CPU time (including exited ones) and the memory sampler.

    A control group when one can be made (every process a relay starts stays in it); else the
    /proc process tree under a root pid, whose cutime/cstime hold the children already reaped."""

    def __init__(self, name: str):
        self.path: Path | None = None
        self.kind = "/proc tree"
        self.root: int | None = None
        for kind, base in self._candidates():
            try:
                p = base / name
                p.mkdir()
                self.path, self.kind = p, kind
                break
            except OSError:
                continue

    @staticmethod
    def _candidates():
        mounts = {}
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                if fstype == "cgroup2":
                    mounts.setdefault("v2", mnt)
                elif fstype == "cgroup" and "cpuacct" in opts.split(","):
                    mounts.setdefault("v1", mnt)
        if "v2" in mounts:
            own = "/"
            with open("/proc/self/cgroup") as f:
                for line in f:
                    if line.startswith("0::"):
                        own = line[3:].strip()
            yield "cgroup v2 cpu.stat", Path(mounts["v2"] + own.rstrip("/"))
        if "v1" in mounts:
            yield "cgroup v1 cpuacct", Path(mounts["v1"])

    def enter(self) -> None:
        """preexec_fn: put the child about to exec into the group."""
        _die_with_parent()
        if self.path is not None:
            with open(self.path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def enter_daemon(self) -> None:
        """preexec_fn for a command that daemonizes (postfix start): no parent-death signal."""
        if self.path is not None:
            with open(self.path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def pids(self) -> list[int]:
        if self.path is not None:
            try:
                return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return []
        return tree(self.root) if self.root else []

    def cpu_seconds(self) -> float:
        if self.kind.startswith("cgroup v2"):
            m = re.search(r"usage_usec (\d+)", (self.path / "cpu.stat").read_text())
            return int(m.group(1)) / 1e6
        if self.kind.startswith("cgroup v1"):
            return int((self.path / "cpuacct.usage").read_text()) / 1e9
        total = 0
        for pid in self.pids():
            st = read_stat(f"/proc/{pid}/stat")
            if st:
                total += sum(int(x) for x in st[1][11:15])
        return total / CLK_TCK

    def remove(self) -> None:
        if self.path is None:
            return
        try:
            wait_until(lambda: not self.pids(), 10, "the relay's processes to exit")
            self.path.rmdir()
        except (PointFailed, OSError) as e:
            log(f"warning: could not remove {self.path}: {e}")


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


def pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Peak of the summed RSS (and PSS) of a group's processes while it runs."""

    def __init__(self, group: Group):
        super().__init__(daemon=True)
        self.group = group
        self.halt = threading.Event()
        self.peak_rss = self.peak_pss = self.peak_procs = 0

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            pids = self.group.pids()
            self.peak_procs = max(self.peak_procs, len(pids))
            self.peak_rss = max(self.peak_rss, sum(rss_bytes(p) for p in pids))
            if n % PSS_EVERY == 0:
                self.peak_pss = max(self.peak_pss, sum(pss_bytes(p) for p in pids))
            n += 1
            self.halt.wait(SAMPLE_INTERVAL)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)


# ---------------------------------------------------------------- smtp-sink, smtp-source

class Sink:
    """A fresh smtp-sink per point; -c makes it print "sess=N quit=N mesg=N" on every event."""

    COUNTS = re.compile(rb"sess=(\d+) quit=\d+ mesg=(\d+)")

    def __init__(self):
        self.port = free_port()
        self.count = 0
        self.sessions = 0
        self.changed_at = time.monotonic()
        self.proc = subprocess.Popen(
            ["smtp-sink", "-c", "-u", "nobody", "-h", "sink.bench", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_until(lambda: self.proc.poll() is not None or port_accepts(self.port), 10,
                   "smtp-sink to listen")
        if self.proc.poll() is not None:
            raise PointFailed(f"smtp-sink exited: {self.proc.stderr.read().decode(errors='replace')}")

    def _read(self) -> None:
        partial = b""
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return
            # Only whole records: a read may end in the middle of "mesg=1234".
            *records, partial = (partial + chunk).split(b"\r")
            for rec in reversed(records):
                m = self.COUNTS.search(rec)
                if m:
                    sess, mesg = int(m.group(1)), int(m.group(2))
                    if mesg != self.count:
                        self.changed_at = time.monotonic()
                    self.count, self.sessions = mesg, sess
                    break

    def wait_for(self, n: int, timeout: float) -> float:
        """Monotonic time at which the sink had counted n messages."""
        wait_until(lambda: self.count >= n, timeout, f"smtp-sink to count {n} messages "
                   f"(has {self.count})", interval=0.005)
        return self.changed_at

    def cpu_seconds(self) -> float:
        st = read_stat(f"/proc/{self.proc.pid}/stat")
        return (int(st[1][11]) + int(st[1][12])) / CLK_TCK if st else 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def start_source(port: int, sessions: int, messages: int, size: int, reuse: bool,
                 workdir: Path) -> tuple[subprocess.Popen, Path]:
    argv = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-M", "client.bench", "-f", SENDER, "-t", RECIPIENT]
    if reuse:
        argv.append("-d")
    argv.append(f"127.0.0.1:{port}")
    err = workdir / "smtp-source.err"
    with open(err, "wb") as ef:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=ef, preexec_fn=_die_with_parent)
    return p, err


def reap(p: subprocess.Popen) -> tuple[int, float] | None:
    """(exit status, CPU seconds) once p has exited, else None; never blocks."""
    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
    if pid == 0:
        return None
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_utime + ru.ru_stime


def finish_source(p: subprocess.Popen, err: Path, timeout: float, what: str) -> tuple[float, float]:
    """Wait for smtp-source: (monotonic time it ended, its CPU seconds); a failure if it failed."""
    try:
        rc, cpu = wait_until(lambda: reap(p), timeout, what)
    finally:
        if p.returncode is None:
            p.kill()
            p.wait(timeout=10)
    if rc != 0:
        raise PointFailed(f"{what}: exited {rc}: {err.read_text(errors='replace')[-500:]}")
    return time.monotonic(), cpu


# ---------------------------------------------------------------- latency client

def _reply(f) -> tuple[int, bytes]:
    lines = []
    while True:
        line = f.readline(8192)
        if not line:
            raise ConnectionError("connection closed by the relay")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


def _expect(f, code: int, what: str) -> None:
    got, text = _reply(f)
    if got != code:
        raise ConnectionError(f"{what}: expected {code}, got {text!r}")


def _message(k: int, i: int, body: bytes) -> bytes:
    # The same header fields as smtp-source's messages, so the relays do the same work.
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    return (f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nDate: {date}\r\n"
            f"Message-Id: <{os.getpid()}.{k}.{i}@latency.bench>\r\n\r\n").encode() + body


def latency_run(port: int, concurrency: int, per_client: int, size: int,
                timeout: float) -> list[float]:
    """Seconds from the final ".\\r\\n" to the 250, for concurrency × per_client messages."""
    line = b"X" * 78 + b"\r\n"
    body = line * (size // len(line)) + b"X" * (size % len(line) or 1) + b"\r\n"
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency)

    def client(k: int) -> None:
        mine = []
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                f = s.makefile("rb")
                _expect(f, 220, "greeting")
                s.sendall(b"EHLO latency.bench\r\n")
                _expect(f, 250, "EHLO")
                barrier.wait(timeout)
                for i in range(per_client):
                    s.sendall(f"MAIL FROM:<{SENDER}>\r\n".encode())
                    _expect(f, 250, "MAIL")
                    s.sendall(f"RCPT TO:<{RECIPIENT}>\r\n".encode())
                    _expect(f, 250, "RCPT")
                    s.sendall(b"DATA\r\n")
                    _expect(f, 354, "DATA")
                    s.sendall(_message(k, i, body))
                    t0 = time.perf_counter()
                    s.sendall(b".\r\n")
                    _expect(f, 250, "end of data")
                    mine.append(time.perf_counter() - t0)
                s.sendall(b"QUIT\r\n")
                _reply(f)
        except (OSError, ConnectionError, threading.BrokenBarrierError) as e:
            with lock:
                errors.append(f"client {k}: {e!r}")
            barrier.abort()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise PointFailed(f"latency clients still running after {timeout:.0f}s")
    if errors:
        raise PointFailed(f"latency client errors ({len(errors)}): {errors[:3]}")
    return samples


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# ---------------------------------------------------------------- the relays

class Mailferry:
    name = "mailferry"
    # Events of a clean run; anything else is reported.
    QUIET = {"listening", "started", "received", "attempt", "delivered", "connect", "stopping",
             "stopped", "running_as_root"}

    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.dir = workdir / "mailferry"
        self.proc: subprocess.Popen | None = None
        self.group: Group | None = None

    def start(self, sink_port: int, group: Group) -> int:
        self.group = group
        self.dir.mkdir(parents=True)
        self.port = free_port()
        cfg = self.dir / "mailferry.toml"
        cfg.write_text("\n".join([
            f'spool_dir = "{self.dir / "spool"}"',
            'hostname = "mailferry.bench"',
            'trusted_networks = ["127.0.0.0/8"]',
            "[[listen]]",
            f'address = "127.0.0.1:{self.port}"',
            'tls = "none"',
            'auth = "none"',
            "[upstream]",
            'host = "127.0.0.1"',
            f'ports = [{{ port = {sink_port}, tls = "none" }}]',
            "[queue]",
            'retry_schedule = ["1s"]',
            'max_age = "1h"',
            "",
        ]))
        self.log_path = self.dir / "mailferry.log"
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k not in ("MAILFERRY_CONFIG", "JOURNAL_STREAM")}
        self.proc = subprocess.Popen([str(self.binary), "serve", "-c", str(cfg)],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     env=env, preexec_fn=group.enter)
        group.root = self.proc.pid
        wait_until(lambda: self.proc.poll() is not None or
                   (" started " in self.log_path.read_text(errors="replace") and
                    port_accepts(self.port)), 15, "mailferry's started line")
        if self.proc.poll() is not None:
            raise PointFailed(f"mailferry exited with {self.proc.returncode}: {self.log_tail()}")
        return self.port

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except (OSError, AttributeError):
            return ""

    def loop_thread(self) -> int:
        return self.proc.pid   # the thread that runs the event loop is the main one

    def queued(self) -> int:
        q = self.dir / "spool" / "queue"
        return len(os.listdir(q)) if q.is_dir() else 0

    def check(self, expected: int) -> tuple[list[str], list[str]]:
        """(what the log says went wrong, notes) for `expected` messages in all."""
        problems, events, delivered = [], {}, []
        for line in self.log_path.read_text(errors="replace").splitlines():
            m = re.match(r"\S+ ([a-z_]+)(.*)$", line)
            if not m:
                problems.append(f"unparsed log line: {line[:160]}")
                continue
            ev, rest = m.groups()
            events[ev] = events.get(ev, 0) + 1
            if ev == "delivered":
                delivered.append(re.search(r"id=(\S+)", rest).group(1))
            if ev not in self.QUIET or (ev == "connect" and "result=ok" not in rest):
                problems.append(line[:200])
        if events.get("received", 0) != expected:
            problems.append(f"received {events.get('received', 0)} messages, sent {expected}")
        if len(delivered) != expected or len(set(delivered)) != len(delivered):
            problems.append(f"delivered lines: {len(delivered)} ({len(set(delivered))} ids), "
                            f"sent {expected}")
        return problems[:10], []

    def stop(self) -> list[str]:
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
                if rc != 0:
                    problems.append(f"mailferry exited with {rc} after SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append("mailferry did not stop within 10 s of SIGTERM; killed")
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None:
            self._log.close()
        self.proc = None
        return problems


class Postfix:
    name = "postfix"

    def __init__(self, workdir: Path):
        self.dir = workdir / "postfix"
        self.etc = self.dir / "etc"
        self.queue = self.dir / "queue"
        self.started = False
        self.group: Group | None = None

    def main_cf(self, sink_port: int, concurrency: int) -> str:
        return "\n".join([
            "compatibility_level = 3.6",
            f"queue_directory = {self.queue}",
            f"data_directory = {self.dir / 'data'}",
            "myhostname = postfix.bench",
            "mydestination =",
            "local_recipient_maps =",
            "alias_maps =",
            "alias_database =",
            f"relayhost = [127.0.0.1]:{sink_port}",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            # One smtpd per concurrent client plus the other services, with room to spare.
            f"default_process_limit = {max(100, 2 * concurrency + 20)}",
            "smtp_connection_cache_on_demand = yes",
            f"maillog_file = {self.dir / 'maillog'}",
            "",
        ])

    def master_cf(self, port: int) -> str:
        # Postfix's own services, unchrooted; smtpd on a private loopback port.
        rows = [
            (f"127.0.0.1:{port}", "inet", "n", "-", "n", "-", "-", "smtpd"),
            ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
            ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),
            ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
            ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
            ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
            ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
            ("error", "unix", "-", "-", "n", "-", "-", "error"),
            ("retry", "unix", "-", "-", "n", "-", "-", "error"),
            ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
            ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
        ]
        return "".join(" ".join(r) + "\n" for r in rows)

    def postfix(self, *cmd: str, timeout: float = 60, preexec=None) -> None:
        r = subprocess.run(["postfix", "-c", str(self.etc), *cmd], capture_output=True,
                           timeout=timeout, preexec_fn=preexec)
        if r.returncode != 0:
            raise PointFailed(f"postfix {' '.join(cmd)} failed ({r.returncode}): "
                              f"{(r.stdout + r.stderr).decode(errors='replace')[-1500:]}")

    def start(self, sink_port: int, group: Group, concurrency: int) -> int:
        self.group = group
        for d in (self.etc, self.queue, self.dir / "data"):
            d.mkdir(parents=True)
        shutil.chown(self.dir / "data", "postfix")
        self.port = free_port()
        (self.etc / "main.cf").write_text(self.main_cf(sink_port, concurrency))
        (self.etc / "master.cf").write_text(self.master_cf(self.port))
        self.postfix("check")                  # creates the queue's subdirectories, owned by postfix
        self.started = True                    # from here on, stop() has something to stop
        self.postfix("start", preexec=group.enter_daemon)
        pidfile = self.queue / "pid" / "master.pid"
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 15, "master.pid")
        self.master = int(pidfile.read_text().strip())
        group.root = self.master
        wait_until(lambda: port_accepts(self.port), 15, "Postfix's smtpd to accept")
        return self.port

    def queued(self) -> int:
        n = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(self.queue / sub):
                n += len(files)
        return n

    def log_text(self) -> str:
        try:
            return (self.dir / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        return self.log_text()[-1500:]

    def check(self, expected: int) -> tuple[list[str], list[str]]:
        """(what went wrong, warnings that did not lose or delay a message) from the maillog."""
        text = self.log_text()
        problems = [line[:200] for line in text.splitlines()
                    if re.search(r" (error|fatal|panic): |status=(deferred|bounced)|reject:", line)]
        warnings: dict[str, int] = {}
        for m in re.finditer(r" warning: (.*)", text):
            what = re.sub(r"\d+", "N", m.group(1))[:120]
            warnings[what] = warnings.get(what, 0) + 1
        sent = len(re.findall(r" status=sent ", text))
        if sent != expected:
            problems.append(f"status=sent lines: {sent}, sent {expected}")
        return problems[:10], [f"{n}× warning: {w}" for w, n in warnings.items()]

    def stop(self) -> list[str]:
        if not self.started:
            return []
        self.started = False
        problems = []
        try:
            self.postfix("stop", timeout=30)
        except (PointFailed, subprocess.TimeoutExpired) as e:
            problems.append(f"postfix stop: {e}")
            try:
                self.postfix("abort", timeout=30)
            except (PointFailed, subprocess.TimeoutExpired) as e2:
                problems.append(f"postfix abort: {e2}")
        if self.group is not None:
            # Only this instance's processes: those in its group (or under its master).
            deadline = time.monotonic() + 15
            while self.group.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
            left = self.group.pids()
            if left:
                problems.append(f"Postfix processes left after stop, killed: {left}")
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        return problems


# ---------------------------------------------------------------- one point

def run_point(system: str, size: int, concurrency: int, messages: int, args,
              run_dir: Path) -> dict:
    label = f"{system} size={size} c={concurrency}"
    workdir = run_dir / f"{system}-{size}-{concurrency}"
    workdir.mkdir()
    group = Group(f"mailferry-bench-{os.getpid()}-{system}-{size}-{concurrency}")
    relay = Mailferry(args.binary, workdir) if system == "mailferry" else Postfix(workdir)
    sink = None
    result = {"system": system, "size": size, "concurrency": concurrency, "messages": messages,
              "cpu_method": group.kind}
    try:
        sink = Sink()
        port = (relay.start(sink.port, group) if system == "mailferry"
                else relay.start(sink.port, group, concurrency))
        sent = 0

        # Warm-up: processes spawned, caches filled, connections to the sink made.
        warm = max(20, 2 * concurrency)
        finish_source(*start_source(port, concurrency, warm, size, args.reuse, workdir),
                      args.timeout, "the warm-up smtp-source")
        sent += warm
        sink.wait_for(sent, args.timeout)

        # Throughput.
        sampler = MemorySampler(group)
        cpu0, tasks0, mach0 = group.cpu_seconds(), task_ticks(group.pids()), machine_ticks()
        io0, cpup0, sink_cpu0, sess0 = pressure_us("io"), pressure_us("cpu"), sink.cpu_seconds(), sink.sessions
        own0, kern0 = own_cpu_seconds(), kernel_thread_seconds()
        sampler.start()
        t0 = time.monotonic()
        try:
            t_acked, source_cpu = finish_source(
                *start_source(port, concurrency, messages, size, args.reuse, workdir),
                args.timeout, "smtp-source")
            t_done = sink.wait_for(sent + messages, args.timeout)
        finally:
            sampler.stop()
        cpu1, tasks1, mach1 = group.cpu_seconds(), task_ticks(group.pids()), machine_ticks()
        io1, cpup1, sink_cpu1 = pressure_us("io"), pressure_us("cpu"), sink.cpu_seconds()
        own1, kern1 = own_cpu_seconds(), kernel_thread_seconds()
        sent += messages
        wall = t_done - t0
        result.update(
            msg_per_s=messages / wall, accepted_per_s=messages / (t_acked - t0), seconds=wall,
            peak_rss_mib=sampler.peak_rss / 2**20, peak_pss_mib=sampler.peak_pss / 2**20,
            peak_procs=sampler.peak_procs, cpu_ms_per_msg=1000 * (cpu1 - cpu0) / messages,
            relay_cpu_pct=100 * (cpu1 - cpu0) / wall,
            source_cpu_pct=100 * source_cpu / wall, sink_cpu_pct=100 * (sink_cpu1 - sink_cpu0) / wall,
            script_cpu_pct=100 * (own1 - own0) / wall,
            machine_busy_pct=100 * (mach1[0] - mach0[0]) / max(1, mach1[2] - mach0[2]),
            machine_iowait_pct=100 * (mach1[1] - mach0[1]) / max(1, mach1[2] - mach0[2]),
            upstream_sessions=sink.sessions - sess0)
        # The kernel's threads' work for everyone (writeback, the journal), and what is left:
        # processes outside the pipeline, short-lived ones included.
        result["kernel_cpu_pct"] = 100 * (kern1 - kern0) / wall
        result["other_cpu_pct"] = (100 * (mach1[0] - mach0[0]) / CLK_TCK / wall
                                   - result["relay_cpu_pct"] - result["source_cpu_pct"]
                                   - result["sink_cpu_pct"] - result["script_cpu_pct"]
                                   - result["kernel_cpu_pct"])
        if io0 is not None and io1 is not None:
            result["io_stall_pct"] = 100 * (io1 - io0) / 1e6 / wall
            result["cpu_stall_pct"] = 100 * (cpup1 - cpup0) / 1e6 / wall
        result["busiest"] = busiest(tasks0, tasks1, wall, system, relay)

        # Latency, with the same concurrency, after the throughput phase.
        per_client = max(1, math.ceil(min(args.latency_messages, messages) / concurrency))
        lat = latency_run(port, concurrency, per_client, size, args.timeout)
        sent += len(lat)
        sink.wait_for(sent, args.timeout)
        result.update(latencies=lat, p50_ms=1000 * statistics.median(lat),
                      p99_ms=1000 * percentile(lat, 0.99))

        # Exactly what was sent, nothing more, and nothing left behind.
        time.sleep(1.0)
        if sink.count != sent:
            raise PointFailed(f"smtp-sink counted {sink.count} messages, {sent} were sent")
        wait_until(lambda: relay.queued() == 0, 10, f"the relay's queue to empty "
                   f"({relay.queued()} left)")
        problems, result["notes"] = relay.check(sent)
        if problems:
            raise PointFailed("relay log: " + " | ".join(problems))
        result["ok"] = True
        log(f"{label}: {result['msg_per_s']:.0f} msg/s, p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms, RSS {result['peak_rss_mib']:.1f} MiB, "
            f"CPU {result['cpu_ms_per_msg']:.2f} ms/msg")
    except PointFailed as e:
        result.update(ok=False, error=str(e))
        log(f"{label}: FAILED: {e}")
    finally:
        stop_problems = relay.stop()
        if sink is not None:
            sink.stop()
        group.remove()
        if stop_problems:
            result.setdefault("stop_problems", stop_problems)
            log(f"{label}: on stop: {stop_problems}")
        if not result.get("ok"):
            result["log_tail"] = relay.log_tail()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def measure(system: str, size: int, conc: int, n: int, args, run_dir: Path, rep: int,
            discarded: list[dict]) -> dict:
    """run_point, again (up to --retries times) when something else on the machine took more than
    --max-other % of a core during the throughput phase: other sessions' builds and test suites
    share these 2 cores and halve a rate when they do. Discarded runs are kept for the JSON."""
    for attempt in range(args.retries + 1):
        busy = wait_for_quiet(args.max_other, 10)
        log(f"repeat {rep + 1}/{args.repeat}: {system} size={size} c={conc}"
            f"{f' (attempt {attempt + 1})' if attempt else ''}; machine busy {busy:.0f}% of a core")
        r = run_point(system, size, conc, n, args, run_dir)
        r["repeat"] = rep + 1
        r["disturbed"] = bool(r.get("ok")) and r["other_cpu_pct"] > args.max_other
        if r["disturbed"] and attempt < args.retries:
            log(f"disturbed: {r['other_cpu_pct']:.0f}% of a core used by processes outside the "
                f"pipeline; again")
            discarded.append(r)
            continue
        return r
    return r


def busiest(before: dict, after: dict, wall: float, system: str, relay) -> str:
    """CPU % of one core per thread (mailferry) or per process name (Postfix), live ones only."""
    by: dict[str, float] = {}
    loop = relay.loop_thread() if system == "mailferry" else None
    for key, (comm, ticks) in after.items():
        used = (ticks - before.get(key, (comm, 0))[1]) / CLK_TCK
        name = ("loop thread" if key[1] == loop else "other threads") if system == "mailferry" else comm
        by[name] = by.get(name, 0.0) + used
    top = sorted(by.items(), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{n} {100 * s / wall:.0f}%" for n, s in top)


# ---------------------------------------------------------------- report

def fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def aggregate(results: list[dict]) -> list[dict]:
    """One row per (system, size, concurrency) over the repeats: medians of the rates and CPU,
    the highest peak memory, latency percentiles over all samples pooled; a point fails if any
    repeat failed. The diagnostics are those of the repeat with the median rate."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["system"], r["size"], r["concurrency"]), []).append(r)
    rows = []
    for (system, size, conc), runs in groups.items():
        failed = [r for r in runs if not r.get("ok")]
        if failed:
            rows.append({**failed[0], "repeats": len(runs), "failed_repeats": len(failed)})
            continue
        rates = sorted(r["msg_per_s"] for r in runs)
        median_run = min(runs, key=lambda r: abs(r["msg_per_s"] - statistics.median(rates)))
        lat = [x for r in runs for x in r["latencies"]]
        rows.append({**median_run, "repeats": len(runs), "msg_per_s": statistics.median(rates),
                     "msg_per_s_min": rates[0], "msg_per_s_max": rates[-1],
                     "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * percentile(lat, 0.99),
                     "latency_messages": len(lat),
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                     "peak_pss_mib": max(r["peak_pss_mib"] for r in runs),
                     "cpu_ms_per_msg": statistics.median(r["cpu_ms_per_msg"] for r in runs),
                     "disturbed": any(r.get("disturbed") for r in runs)})
    return rows


def report(results: list[dict], args) -> str:
    rows = aggregate(results)
    cpu_method = next((r["cpu_method"] for r in results), "?")
    kib = lambda n: f"{n // 1024} KB"   # noqa: E731
    out = [f"## mailferry vs Postfix {postfix_version()}, {os.cpu_count()} CPUs, "
           f"{time.strftime('%Y-%m-%d %H:%M')}\n",
           f"smtp-source {'reusing connections (-d)' if args.reuse else 'one connection per message'}; "
           f"{args.messages} messages per point up to 16 KB, {args.messages_large} above; "
           f"{args.repeat} repeats, interleaved; msg/s is the median (min–max), latency over "
           f"every repeat's sample (up to {args.latency_messages} messages each), peak memory the "
           f"highest, CPU the median, from {cpu_method}. Load average before the run: "
           f"{args.load_before}.\n",
           "| system | size | conc | msg/s | p50 ms | p99 ms | peak RSS MiB | peak PSS MiB | CPU ms/msg |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("ok"):
            mark = " *" if r["disturbed"] else ""
            out.append(f"| {r['system']} | {kib(r['size'])} | {r['concurrency']} | {r['msg_per_s']:.0f} "
                       f"({r['msg_per_s_min']:.0f}–{r['msg_per_s_max']:.0f}){mark} | {r['p50_ms']:.2f} | "
                       f"{r['p99_ms']:.2f} | {r['peak_rss_mib']:.1f} | {r['peak_pss_mib']:.1f} | "
                       f"{r['cpu_ms_per_msg']:.2f} |")
        else:
            why = " ".join(r["error"].split())[:160].replace("|", "/")
            out.append(f"| {r['system']} | {kib(r['size'])} | {r['concurrency']} | FAILED "
                       f"({r['failed_repeats']}/{r['repeats']} repeats): {why} | | | | | |")
    if any(r.get("disturbed") for r in rows):
        out += ["", f"\\* a repeat of this point still had more than {args.max_other:.0f}% of a core "
                f"busy outside the pipeline after {args.retries} redos: load from elsewhere."]
    notes: dict[str, list[str]] = {}
    for r in results:
        for note in r.get("notes", []):
            what = note.split("× ", 1)[-1]
            notes.setdefault(f"{r['system']}: {what}", []).append(
                f"{kib(r['size'])} c={r['concurrency']} #{r.get('repeat', '?')}")
    if notes:
        out += ["", "Log warnings that lost no message:", ""]
        out += [f"- {what} ({', '.join(where)})" for what, where in notes.items()]
    out += ["", "Ratios mailferry / Postfix (msg/s: above 1 mailferry is faster; RSS, PSS and CPU: "
            "below 1 mailferry uses less).\n",
            "| size | conc | msg/s | peak RSS | peak PSS | CPU/msg |", "|---|---|---|---|---|---|"]
    by = {(r["system"], r["size"], r["concurrency"]): r for r in rows}
    for (system, size, conc), m in by.items():
        p = by.get(("postfix", size, conc))
        if system != "mailferry" or p is None:
            continue
        if not (m.get("ok") and p.get("ok")):
            out.append(f"| {kib(size)} | {conc} | — | — | — | — |")
            continue
        out.append(f"| {kib(size)} | {conc} | {m['msg_per_s'] / p['msg_per_s']:.2f} | "
                   f"{m['peak_rss_mib'] / p['peak_rss_mib']:.3f} | "
                   f"{m['peak_pss_mib'] / p['peak_pss_mib']:.3f} | "
                   f"{m['cpu_ms_per_msg'] / p['cpu_ms_per_msg']:.2f} |")
    out += ["", "Where the time went in the throughput phase of the median repeat. CPU in % of one "
            "core: the relay, its busiest threads (mailferry) or process kinds (Postfix, live ones), "
            "smtp-source, smtp-sink, this script (sampler, sink reader), the kernel's threads "
            "(ksoftirqd, writeback, the journal), and other: what is left, processes outside the "
            "pipeline. iowait in % of all cores; stall: PSI share of wall time "
            "in which some task waited for I/O or for a CPU.\n",
            "| system | size | conc | accepted msg/s | relay CPU | busiest | smtp-source | smtp-sink "
            "| script | kernel | other | iowait | I/O stall | CPU stall | upstream sessions | relay procs |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if not r.get("ok"):
            continue
        out.append(f"| {r['system']} | {kib(r['size'])} | {r['concurrency']} | {r['accepted_per_s']:.0f} | "
                   f"{r['relay_cpu_pct']:.0f}% | {r['busiest']} | {r['source_cpu_pct']:.0f}% | "
                   f"{r['sink_cpu_pct']:.0f}% | {r['script_cpu_pct']:.0f}% | {r['kernel_cpu_pct']:.0f}% | "
                   f"{max(0.0, r['other_cpu_pct']):.0f}% | "
                   f"{r['machine_iowait_pct']:.0f}% | {fmt(r.get('io_stall_pct'), '.0f')}% | "
                   f"{fmt(r.get('cpu_stall_pct'), '.0f')}% | {r['upstream_sessions']} | "
                   f"{r['peak_procs']} |")
    return "\n".join(out) + "\n"


def postfix_version() -> str:
    try:
        return subprocess.run(["postconf", "-h", "mail_version"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


# ---------------------------------------------------------------- main

def remove_stale() -> None:
    """Instances and groups left by a run of this script that was killed outright."""
    for run in BASE_DIR.glob("run-*"):
        pid = run.name.split("-")[1]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue
        for etc in run.glob("*/postfix/etc"):
            subprocess.run(["postfix", "-c", str(etc), "abort"], capture_output=True, timeout=30)
        shutil.rmtree(run, ignore_errors=True)
    for _, base in Group._candidates():
        for g in base.glob("mailferry-bench-*"):
            pid = g.name.split("-")[2]
            if not Path(f"/proc/{pid}").exists():
                try:
                    g.rmdir()
                except OSError:
                    pass


def build_type(build: Path) -> str | None:
    try:
        opts = json.loads((build / "meson-info" / "intro-buildoptions.json").read_text())
    except (OSError, ValueError):
        return None
    return next((o["value"] for o in opts if o["name"] == "buildtype"), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, required=True, help="meson build dir holding mailferry")
    ap.add_argument("--messages", type=int, default=2000, help="per point, for sizes up to 16 KB")
    ap.add_argument("--messages-large", type=int, default=500, help="per point, for larger sizes")
    ap.add_argument("--sizes", default="2048,102400", help="message payload bytes, comma-separated")
    ap.add_argument("--concurrency", default="1,10,50", help="SMTP sessions, comma-separated")
    ap.add_argument("--systems", default="mailferry,postfix")
    ap.add_argument("--latency-messages", type=int, default=400, help="latency sample per point")
    ap.add_argument("--repeat", type=int, default=3, help="passes over all points")
    ap.add_argument("--max-other", type=float, default=50,
                    help="%% of one core used outside the pipeline above which a run is redone")
    ap.add_argument("--retries", type=int, default=2, help="redos of a disturbed run, at most")
    ap.add_argument("--reuse", action="store_true",
                    help="smtp-source sends all its messages over one connection per session (-d)")
    ap.add_argument("--timeout", type=float, default=180, help="bound on every wait, seconds")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("postfix_compare.py: needs root (Postfix's master and smtp-sink -u)", file=sys.stderr)
        return 64
    for tool in ("postfix", "postconf", "smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            print(f"postfix_compare.py: {tool} not found: apt-get install -y postfix", file=sys.stderr)
            return 69
    args.binary = (args.build / "mailferry").resolve()
    if not os.access(args.binary, os.X_OK):
        print(f"postfix_compare.py: no {args.binary}: ninja -C {args.build} mailferry", file=sys.stderr)
        return 66
    bt = build_type(args.build)
    if bt != "release":
        log(f"warning: {args.build} is a {bt or 'unknown'} build, not release")
    systems = [s for s in args.systems.split(",") if s]
    sizes = [int(s) for s in args.sizes.split(",")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]

    os.umask(0o022)   # Postfix's unprivileged processes must traverse to their queue directory
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    BASE_DIR.mkdir(parents=True, exist_ok=True)
    remove_stale()
    run_dir = BASE_DIR / f"run-{os.getpid()}"
    run_dir.mkdir()
    args.load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results: list[dict] = []
    discarded: list[dict] = []
    interrupted = False
    try:
        started = time.monotonic()
        # Interleaved (systems within a point, points within a repeat), so that load from
        # elsewhere on the machine and drift hit both systems alike.
        for rep in range(args.repeat):
            for size in sizes:
                n = args.messages if size <= 16384 else args.messages_large
                for conc in concurrencies:
                    for system in systems:
                        results.append(measure(system, size, conc, n, args, run_dir, rep, discarded))
        log(f"done in {time.monotonic() - started:.0f} s")
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e or 'Ctrl-C'}); reporting what was measured")
        interrupted = True
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        try:
            BASE_DIR.rmdir()    # only when no other run is using it
        except OSError:
            pass
    text = report(results, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "discarded": discarded}, indent=1))
    for r in aggregate(results):
        if not r.get("ok") and r.get("log_tail"):
            tail = "\n".join(r["log_tail"].splitlines()[-6:])
            print(f"Relay log, last lines, {r['system']} {r['size']} B c={r['concurrency']}:\n"
                  f"```\n{tail}\n```")
    if interrupted:
        return 130
    return 0 if results and all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
