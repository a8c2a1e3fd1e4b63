"""netns.py: a private network namespace per test, with nftables rules that play an ISP.

Standard library only; needs root, iproute2 (`ip netns`) and nftables (`nft`).

    ns = NetNS.create()            # ip netns add mf-<random>; lo up; IPv6 off: only 127.0.0.1
    ns.enter()                     # this thread (and every child it starts) now lives inside
    ns.block_syn([587, 2525])      # table inet mf: tcp dport N tcp flags syn -> drop, counted
    ns.syn_packets(587)            # SYNs dropped so far (retransmissions included)
    ns.connect_attempts(587)       # distinct connect() calls so far (distinct source ports)
    ns.leave(); ns.delete()        # also at interpreter exit and on SIGTERM

Why enter() and not only `ip netns exec NS cmd`: the harness starts the upstream and mailferry
itself and checks ports and sends mail with smtplib from this process. setns(2) on this (single)
thread puts this process's new sockets and every child it forks into the namespace, which is
what `ip netns exec` does for one command, without rewriting the harness. exec_argv() gives the
`ip netns exec` form for commands that want it (nft, swaks). inode() lets a test check that a
process really is inside.

How a connection attempt is counted exactly: every SYN to a blocked port goes through the output
hook (locally generated packets to 127.0.0.1 do) and is dropped there; the rule adds its TCP
source port to a dynamic set first. A connect() keeps one source port for its SYN and all its
retransmissions, so the set's size is the number of connect() attempts, and the rule's counter
the number of SYN packets. "No attempt" is "neither grew": no SYN left the socket layer.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import signal
import subprocess
import sys
import uuid

CLONE_NEWNET = 0x40000000
TABLE = "mf"

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_live: list["NetNS"] = []
_sigterm_chained = False


class NetNSUnavailable(Exception):
    """Raised when a namespace cannot be made here (not root, no iproute2, no CAP_SYS_ADMIN)."""


def _run(argv: list[str], input: str | None = None, timeout: float = 15.0,
         check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.strip()}")
    return r


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({path}): {os.strerror(e)}")
    finally:
        os.close(fd)


def netns_inode(pid: int | str = "thread-self") -> int:
    """The inode of a process's network namespace (equal inodes: same namespace)."""
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _cleanup_all() -> None:
    for ns in list(_live):
        try:
            ns.leave()
        except Exception:
            pass
        try:
            ns.delete()
        except Exception as e:   # never mask the test's own outcome
            print(f"netns: could not delete {ns.name}: {e}", file=sys.stderr, flush=True)


def _chain_sigterm() -> None:
    """Delete our namespaces on SIGTERM (meson's timeout) before the harness's handler exits."""
    global _sigterm_chained
    if _sigterm_chained:
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        _cleanup_all()
        if callable(previous):
            previous(signum, frame)
        else:
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    _sigterm_chained = True


atexit.register(_cleanup_all)


class NetNS:
    def __init__(self, name: str):
        self.name = name
        self.path = f"/run/netns/{name}"
        self._home_fd: int | None = None
        self._blocked: list[int] = []

    # ------------------------------------------------------------ lifetime

    @classmethod
    def create(cls, prefix: str = "mf-", ipv6: bool = False) -> "NetNS":
        """ipv6=True keeps IPv6 on: lo then has ::1 as well as 127.0.0.1."""
        if os.geteuid() != 0:
            raise NetNSUnavailable("network namespaces need root (run the test as root)")
        ns = cls(prefix + uuid.uuid4().hex[:10])
        try:
            r = subprocess.run(["ip", "netns", "add", ns.name], capture_output=True, text=True,
                               timeout=15)
        except FileNotFoundError:
            raise NetNSUnavailable("the ip command is missing (Debian package iproute2)")
        if r.returncode != 0:
            raise NetNSUnavailable(f"ip netns add {ns.name} failed: {r.stderr.strip()}")
        _live.append(ns)
        _chain_sigterm()
        _run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
        # Loopback only, IPv4 only: 127.0.0.1 is the one address in here ("localhost" is only
        # 127.0.0.1 in /etc/hosts, and no ::1 means no second address to try per port).
        if not ipv6:
            ns.run(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1"],
                   check=False)
        return ns

    def enter(self) -> None:
        """Move this thread into the namespace (children started from now on are inside)."""
        if self._home_fd is None:
            self._home_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        _setns(self.path)

    def leave(self) -> None:
        if self._home_fd is None:
            return
        try:
            if _libc.setns(self._home_fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns(back): {os.strerror(e)}")
        finally:
            os.close(self._home_fd)
            self._home_fd = None

    def pids(self) -> list[int]:
        r = _run(["ip", "netns", "pids", self.name], check=False)
        return [int(x) for x in r.stdout.split() if x.isdigit()]

    def delete(self) -> None:
        """Kill what we left inside (by pid; all of it was started by this test), then delete."""
        if self not in _live:
            return
        self.leave()
        me = os.getpid()
        for pid in self.pids():
            if pid != me:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _run(["ip", "netns", "del", self.name], check=False)
        _live.remove(self)

    def inode(self) -> int:
        return os.stat(self.path).st_ino

    # ------------------------------------------------------------ commands inside

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], input: str | None = None, timeout: float = 15.0,
            check: bool = True) -> subprocess.CompletedProcess:
        return _run(self.exec_argv(argv), input=input, timeout=timeout, check=check)

    # ------------------------------------------------------------ the ISP (nftables)

    def block_syn(self, ports: list[int], daddr: str | None = None) -> None:
        """Drop (and count) every SYN to 127.0.0.1:port, as an ISP that blocks the port does.
        daddr ("::1", "127.0.0.1") limits the drop to SYNs to that one address.
        Replaces any earlier block: the table holds exactly these ports afterwards."""
        match = ""
        if daddr is not None:
            match = f"{'ip6' if ':' in daddr else 'ip'} daddr {daddr} "
        lines = [f"table inet {TABLE} {{"]
        for p in ports:
            lines.append(f"  set attempts_{p} {{ type inet_service; flags dynamic; size 65535; }}")
        lines.append("  chain output {")
        lines.append("    type filter hook output priority 0; policy accept;")
        for p in ports:
            lines.append(f"    {match}tcp dport {p} tcp flags syn add @attempts_{p} {{ tcp sport }} "
                         f"counter drop")
        lines += ["  }", "}"]
        script = "\n".join(lines) + "\n"
        if self._blocked:
            script = f"delete table inet {TABLE}\n" + script
        self.run(["nft", "-f", "-"], input=script)
        self._blocked = list(ports)

    def ruleset(self) -> list[dict]:
        r = self.run(["nft", "-j", "list", "table", "inet", TABLE])
        return json.loads(r.stdout).get("nftables", [])

    def syn_packets(self, port: int) -> int:
        """SYN packets to port dropped so far (each connect() sends one, plus retransmissions)."""
        for item in self.ruleset():
            rule = item.get("rule")
            if not rule:
                continue
            exprs = rule.get("expr", [])
            if not any(e.get("match", {}).get("left", {}).get("payload", {}).get("field") == "dport"
                       and e["match"].get("right") == port for e in exprs):
                continue
            for e in exprs:
                if "counter" in e:
                    return int(e["counter"]["packets"])
        raise AssertionError(f"no nft rule blocks port {port} in {self.name}")

    def connect_attempts(self, port: int) -> int:
        """Distinct connect() attempts to port so far (distinct TCP source ports of its SYNs)."""
        for item in self.ruleset():
            s = item.get("set")
            if s and s.get("name") == f"attempts_{port}":
                elem = s.get("elem", [])
                return len(elem) if isinstance(elem, list) else 1
        raise AssertionError(f"no attempts set for port {port} in {self.name}")
