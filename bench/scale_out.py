#!/usr/bin/python3
"""scale_out.py: throughput of one mailferry instance against two behind haproxy, on this machine.

A benchmark, not a test (meson never runs it). The same load, from Postfix's smtp-source, one
connection per message, through three set-ups in turn, all on 127.0.0.1 and all forwarding to
one smtp-sink:

    direct     smtp-source → mailferry                                        → smtp-sink
    haproxy-1  smtp-source → haproxy (PROXY v2) → mailferry                   → smtp-sink
    haproxy-2  smtp-source → haproxy (PROXY v2, round robin) → 2 × mailferry  → smtp-sink

msg/s is messages divided by the time from starting smtp-source until smtp-sink had counted every
one of them. Each set-up runs --repeat times, interleaved with the others; the report gives the
median (min–max), where the CPU went in the median run (% of one core), and the ratios
haproxy-2 / haproxy-1 (what a second instance adds behind the same proxy) and haproxy-2 /
direct. A run counts only if the sink got exactly what was sent and every spool is empty after.

Every instance has its own spool, as in production (two never share one). On a machine whose
cores are already busy with one instance, the load generator, haproxy and the sink, a second
instance has no idle core to run on: the ratio then shows the machine's limit, not mailferry's.

Needs root (smtp-sink drops to nobody, as in postfix_compare.py), Debian's postfix (smtp-source,
smtp-sink) and haproxy:

    meson setup build-bench --buildtype=release --wrap-mode=nofallback && ninja -C build-bench mailferry
    sudo /usr/bin/python3 bench/scale_out.py --build build-bench [--messages 2000]
        [--concurrency 20] [--size 2048] [--repeat 3] [--modes direct,haproxy-1,haproxy-2]

A run with the defaults takes about 2 to 4 minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import postfix_compare as pc  # noqa: E402  (smtp-source, smtp-sink, waits, /proc readers)

MODES = ("direct", "haproxy-1", "haproxy-2")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a live process; 0 once it is gone."""
    st = pc.read_stat(f"/proc/{pid}/stat")
    return (int(st[1][11]) + int(st[1][12])) / pc.CLK_TCK if st else 0.0


class Instance:
    """One `mailferry serve` with its own spool; a PROXY listener when behind haproxy."""

    def __init__(self, binary: Path, workdir: Path, name: str, sink_port: int, proxied: bool):
        self.dir = workdir / name
        self.dir.mkdir()
        self.spool = self.dir / "spool"
        self.port = pc.free_port()
        listener = [f'address = "127.0.0.1:{self.port}"', 'tls = "none"', 'auth = "none"']
        if proxied:
            listener += ["proxy_protocol = true", 'proxy_from = ["127.0.0.1/32"]']
        cfg = self.dir / "mailferry.toml"
        cfg.write_text("\n".join([
            f'spool_dir = "{self.spool}"', 'hostname = "mailferry.bench"',
            'trusted_networks = ["127.0.0.0/8"]', "[[listen]]", *listener, "[upstream]",
            'host = "127.0.0.1"', f'ports = [{{ port = {sink_port}, tls = "none" }}]',
            "[queue]", 'retry_schedule = ["1s"]', 'max_age = "1h"', ""]))
        self.log_path = self.dir / "mailferry.log"
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if k not in ("MAILFERRY_CONFIG", "JOURNAL_STREAM")}
        self.proc = subprocess.Popen([str(binary), "serve", "-c", str(cfg)], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=env,
                                     preexec_fn=pc._die_with_parent)
        pc.wait_until(lambda: self.proc.poll() is not None or
                      " started " in self.log_path.read_text(errors="replace"), 15,
                      f"{name}'s started line")
        if self.proc.poll() is not None:
            raise pc.PointFailed(f"{name} exited with {self.proc.returncode}: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-1500:]

    def queued(self) -> int:
        q = self.spool / "queue"
        return len(os.listdir(q)) if q.is_dir() else 0

    def received(self) -> int:
        return sum(1 for line in self.log_path.read_text(errors="replace").splitlines()
                   if " received " in line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


class Haproxy:
    def __init__(self, workdir: Path, backends: list[int]):
        self.port = pc.free_port()
        cfg = workdir / "haproxy.cfg"
        cfg.write_text("\n".join([
            "global", "  maxconn 4000", "defaults", "  mode tcp", "  timeout connect 5s",
            "  timeout client 60s", "  timeout server 60s",
            "frontend smtp", f"  bind 127.0.0.1:{self.port}", "  default_backend relays",
            "backend relays", "  balance roundrobin",
            *[f"  server mf{i} 127.0.0.1:{p} send-proxy-v2" for i, p in enumerate(backends)], ""]))
        check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, timeout=20)
        if check.returncode != 0:
            raise pc.PointFailed(f"haproxy -c: {check.stderr.decode(errors='replace')}")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=pc._die_with_parent)
        pc.wait_until(lambda: self.proc.poll() is not None or pc.port_accepts(self.port), 10,
                      "haproxy to listen")
        if self.proc.poll() is not None:
            raise pc.PointFailed(f"haproxy exited with {self.proc.returncode}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def run_point(mode: str, args, run_dir: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=run_dir))
    result = {"mode": mode}
    sink = proxy = None
    instances: list[Instance] = []
    try:
        sink = pc.Sink()
        count = 2 if mode == "haproxy-2" else 1
        for i in range(count):
            instances.append(Instance(args.binary, workdir, f"mf{i}", sink.port, mode != "direct"))
        port = instances[0].port
        if mode != "direct":
            proxy = Haproxy(workdir, [m.port for m in instances])
            port = proxy.port

        warm = max(50, 2 * args.concurrency)
        pc.finish_source(*pc.start_source(port, args.concurrency, warm, args.size, False, workdir),
                         args.timeout, "the warm-up smtp-source")
        sink.wait_for(warm, args.timeout)

        pids = {f"mailferry {i}": m.proc.pid for i, m in enumerate(instances)}
        if proxy:
            pids["haproxy"] = proxy.proc.pid
        cpu0 = {k: process_cpu(p) for k, p in pids.items()}
        sink0, mach0 = sink.cpu_seconds(), pc.machine_ticks()
        t0 = time.monotonic()
        _, source_cpu = pc.finish_source(
            *pc.start_source(port, args.concurrency, args.messages, args.size, False, workdir),
            args.timeout, "smtp-source")
        t_done = sink.wait_for(warm + args.messages, args.timeout)
        wall = t_done - t0
        mach1 = pc.machine_ticks()
        cpu = {k: 100 * (process_cpu(p) - cpu0[k]) / wall for k, p in pids.items()}
        cpu["smtp-source"] = 100 * source_cpu / wall
        cpu["smtp-sink"] = 100 * (sink.cpu_seconds() - sink0) / wall
        result.update(msg_per_s=args.messages / wall, seconds=wall, cpu=cpu,
                      machine_busy_pct=100 * os.cpu_count() * (mach1[0] - mach0[0])
                      / max(1, mach1[2] - mach0[2]),
                      shares=[m.received() for m in instances])

        time.sleep(0.5)
        if sink.count != warm + args.messages:
            raise pc.PointFailed(f"smtp-sink counted {sink.count}, {warm + args.messages} were sent")
        for m in instances:
            pc.wait_until(lambda: m.queued() == 0, 10, f"{m.dir.name}'s queue to empty")
        result["ok"] = True
        pc.log(f"{mode}: {result['msg_per_s']:.0f} msg/s, shares {result['shares']}, machine "
               f"{result['machine_busy_pct']:.0f}% of one core")
    except pc.PointFailed as e:
        result.update(ok=False, error=str(e))
        pc.log(f"{mode}: FAILED: {e}")
        if instances:
            result["log_tail"] = instances[0].log_tail()
    finally:
        if proxy:
            proxy.stop()
        for m in instances:
            m.stop()
        if sink:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def report(results: list[dict], args) -> str:
    cores = os.cpu_count()
    out = [f"## One mailferry instance vs two behind haproxy, {cores} CPUs, "
           f"{time.strftime('%Y-%m-%d %H:%M')}\n",
           f"smtp-source, {args.concurrency} sessions, one connection per message, "
           f"{args.messages} messages of {args.size} B per run, {args.repeat} repeats interleaved; "
           f"msg/s until smtp-sink counted every message, median (min–max). CPU in % of one core "
           f"in the median run; the machine has {100 * cores}%, and \"other processes\" is what "
           f"the rest of the machine took meanwhile (the kernel's threads included). Messages per "
           f"instance include the warm-up.\n",
           "| set-up | msg/s | machine busy | CPU: mailferry | haproxy | smtp-source | smtp-sink "
           "| other processes | messages per instance |",
           "|---|---|---|---|---|---|---|---|---|"]
    medians: dict[str, float] = {}
    for mode in args.modes:
        runs = [r for r in results if r["mode"] == mode]
        failed = [r for r in runs if not r.get("ok")]
        if not runs:
            continue
        if failed:
            out.append(f"| {mode} | FAILED ({len(failed)}/{len(runs)}): "
                       f"{' '.join(failed[0]['error'].split())[:150]} | | | | | | |")
            continue
        rates = sorted(r["msg_per_s"] for r in runs)
        medians[mode] = statistics.median(rates)
        med = min(runs, key=lambda r: abs(r["msg_per_s"] - medians[mode]))
        mf = " + ".join(f"{v:.0f}%" for k, v in med["cpu"].items() if k.startswith("mailferry"))
        other = max(0.0, med["machine_busy_pct"] - sum(med["cpu"].values()))
        out.append(f"| {mode} | {medians[mode]:.0f} ({rates[0]:.0f}–{rates[-1]:.0f}) | "
                   f"{med['machine_busy_pct']:.0f}% | {mf} | {med['cpu'].get('haproxy', 0):.0f}% | "
                   f"{med['cpu']['smtp-source']:.0f}% | {med['cpu']['smtp-sink']:.0f}% | "
                   f"{other:.0f}% | {'/'.join(str(s) for s in med['shares'])} |")
    out.append("")
    for a, b in (("haproxy-2", "haproxy-1"), ("haproxy-2", "direct"), ("haproxy-1", "direct")):
        if a in medians and b in medians:
            out.append(f"- {a} / {b}: **{medians[a] / medians[b]:.2f}**")
    out += ["", f"With {cores} cores shared by the load generator, haproxy, the sink and the "
            "instances, a second instance mostly competes for the same CPUs: the ratio is bounded "
            "by the machine, not by mailferry; on separate machines (or more cores) each instance "
            "brings its own."]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, required=True, help="meson build dir holding mailferry")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--timeout", type=float, default=180, help="bound on every wait, seconds")
    args = ap.parse_args()
    args.modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        print(f"scale_out.py: unknown mode {unknown[0]} (expected {', '.join(MODES)})", file=sys.stderr)
        return 64
    if os.geteuid() != 0:
        print("scale_out.py: needs root (smtp-sink -u nobody)", file=sys.stderr)
        return 64
    for tool in ("smtp-source", "smtp-sink", "haproxy"):
        if shutil.which(tool) is None:
            print(f"scale_out.py: {tool} not found: apt-get install -y postfix haproxy", file=sys.stderr)
            return 69
    args.binary = (args.build / "mailferry").resolve()
    if not os.access(args.binary, os.X_OK):
        print(f"scale_out.py: no {args.binary}: ninja -C {args.build} mailferry", file=sys.stderr)
        return 66
    bt = pc.build_type(args.build)
    if bt != "release":
        pc.log(f"warning: {args.build} is a {bt or 'unknown'} build, not release")

    signal.signal(signal.SIGTERM, pc._on_signal)
    run_dir = Path(tempfile.mkdtemp(prefix="mailferry-scale-out-", dir="/var/tmp"))
    results: list[dict] = []
    code = 0
    try:
        for rep in range(args.repeat):
            for mode in args.modes:
                busy = pc.wait_for_quiet(50, 10)
                pc.log(f"repeat {rep + 1}/{args.repeat}: {mode}; machine busy {busy:.0f}% of a core")
                results.append(run_point(mode, args, run_dir))
    except (KeyboardInterrupt, pc.Interrupted) as e:
        pc.log(f"interrupted ({e or 'Ctrl-C'}); reporting what was measured")
        code = 130
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(report(results, args))
    if code == 0 and not all(r.get("ok") for r in results):
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
