#!/usr/bin/python3
"""metrics_cost.py: what a Prometheus scrape every second costs mailferry's throughput.

A benchmark, not a test. The same load twice, interleaved, on 127.0.0.1:

    smtp-source → mailferry → smtp-sink

once with no [metrics] at all ("off") and once with [metrics] on and a client fetching /metrics
every second, as Prometheus would ("scraped"). msg/s is messages divided by the time from
starting smtp-source until smtp-sink had counted all of them; each mode runs --repeat times and
the medians are compared. The goal: the ratio scraped/off within noise (≥ 0.98). Since that
ratio is only as good as the machine is quiet, it also measures what one scrape costs mailferry
in CPU (2000 back-to-back requests to an idle relay, from /proc): a figure noise cannot hide.

    DEBIAN_FRONTEND=noninteractive apt-get install -y postfix   # smtp-source, smtp-sink
    meson setup build-bench --buildtype=release --wrap-mode=nofallback && ninja -C build-bench mailferry
    sudo /usr/bin/python3 bench/metrics_cost.py --build build-bench [--messages 3000]
        [--concurrency 10] [--size 2048] [--repeat 5] [--interval 1.0]

Needs root for smtp-sink (it drops to nobody). About a minute with the defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postfix_compare import (PointFailed, Sink, finish_source, free_port, log,  # noqa: E402
                             port_accepts, start_source, wait_until)


class Scraper(threading.Thread):
    """GET /metrics every `interval` seconds until stopped; counts the scrapes that worked."""

    def __init__(self, port: int, interval: float):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.done = threading.Event()
        self.ok = 0
        self.failed = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    self.bytes = len(r.read())
                    self.ok += 1
            except OSError:
                self.failed += 1


def run_once(binary: Path, mode: str, args, workdir: Path) -> tuple[float, int]:
    """One run: (msg/s, scrapes) — scrapes 0 when mode is "off"."""
    sink = Sink()
    relay = None
    scraper = None
    try:
        port, metrics_port = free_port(), free_port()
        cfg = workdir / "mailferry.toml"
        lines = [f'spool_dir = "{workdir / "spool"}"', 'hostname = "mailferry.bench"',
                 'trusted_networks = ["127.0.0.0/8"]',
                 "[[listen]]", f'address = "127.0.0.1:{port}"', 'tls = "none"', 'auth = "none"',
                 "[upstream]", 'host = "127.0.0.1"', f'ports = [{{ port = {sink.port}, tls = "none" }}]',
                 "[queue]", 'retry_schedule = ["1s"]']
        if mode == "scraped":
            lines += ["[metrics]", f'address = "127.0.0.1:{metrics_port}"']
        cfg.write_text("\n".join(lines) + "\n")
        log_file = open(workdir / f"mailferry-{mode}.log", "wb")
        relay = subprocess.Popen([str(binary), "serve", "-c", str(cfg)], stdin=subprocess.DEVNULL,
                                 stdout=log_file, stderr=log_file)
        wait_until(lambda: relay.poll() is not None or port_accepts(port), 15, "mailferry to listen")
        if relay.poll() is not None:
            raise PointFailed(f"mailferry exited with {relay.returncode}")
        if mode == "scraped":
            scraper = Scraper(metrics_port, args.interval)
            scraper.start()
        started = time.monotonic()
        source, err = start_source(port, args.concurrency, args.messages, args.size, True, workdir)
        finish_source(source, err, 300, "smtp-source")
        ended = sink.wait_for(args.messages, 300)
        scrapes = 0
        if scraper is not None:
            scraper.done.set()
            scraper.join(timeout=10)
            if scraper.failed:
                raise PointFailed(f"{scraper.failed} scrapes failed")
            scrapes = scraper.ok
        return args.messages / (ended - started), scrapes
    finally:
        if scraper is not None:
            scraper.done.set()
        if relay is not None and relay.poll() is None:
            relay.terminate()
            relay.wait(timeout=15)
        sink.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape_cost(binary: Path, scrapes: int) -> tuple[float, int]:
    """CPU milliseconds mailferry spends per /metrics request (idle relay, back-to-back requests),
    and the size of one scrape: a figure that does not depend on what else the machine runs."""
    with tempfile.TemporaryDirectory(prefix="mailferry-metrics-bench-", dir="/var/tmp") as d:
        port, metrics_port = free_port(), free_port()
        cfg = Path(d) / "mailferry.toml"
        cfg.write_text("\n".join([f'spool_dir = "{Path(d) / "spool"}"', "[[listen]]",
                                   f'address = "127.0.0.1:{port}"', 'tls = "none"', 'auth = "none"',
                                   "[upstream]", 'host = "127.0.0.1"', "[metrics]",
                                   f'address = "127.0.0.1:{metrics_port}"', ""]))
        relay = subprocess.Popen([str(binary), "serve", "-c", str(cfg)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: port_accepts(metrics_port), 15, "the metrics endpoint")
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            size = len(urllib.request.urlopen(url, timeout=5).read())
            before = cpu_seconds(relay.pid)
            for _ in range(scrapes):
                urllib.request.urlopen(url, timeout=5).read()
            return (cpu_seconds(relay.pid) - before) * 1000 / scrapes, size
        finally:
            relay.terminate()
            relay.wait(timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    ap.add_argument("--cost-scrapes", type=int, default=2000, help="back-to-back scrapes for the CPU cost")
    args = ap.parse_args()
    binary = Path(args.build).resolve() / "mailferry"
    per_scrape_ms, size = scrape_cost(binary, args.cost_scrapes)
    log(f"one scrape: {size} bytes, {per_scrape_ms:.3f} ms of mailferry's CPU "
        f"({per_scrape_ms / 10:.4f} % of a core at one scrape a second)")
    rates: dict[str, list[float]] = {"off": [], "scraped": []}
    scrapes = []
    for rep in range(args.repeat):
        # Alternate which mode goes first, so a drift over the run hurts both alike.
        for mode in (("off", "scraped") if rep % 2 == 0 else ("scraped", "off")):
            with tempfile.TemporaryDirectory(prefix="mailferry-metrics-bench-", dir="/var/tmp") as d:
                rate, n = run_once(binary, mode, args, Path(d))
            rates[mode].append(rate)
            if mode == "scraped":
                scrapes.append(n)
            log(f"run {rep + 1}/{args.repeat} {mode}: {rate:.0f} msg/s" + (f", {n} scrapes" if n else ""))
    off, scraped = statistics.median(rates["off"]), statistics.median(rates["scraped"])
    print(f"| mode | msg/s (median of {args.repeat}) | range |")
    print("| --- | --- | --- |")
    for mode, med in (("off", off), ("scraped", scraped)):
        print(f"| {mode} | {med:.0f} | {min(rates[mode]):.0f}–{max(rates[mode]):.0f} |")
    print(f"\nscraped / off: {scraped / off:.3f} ({args.size} B messages, {args.concurrency} sessions, "
          f"{args.messages} messages a run, a scrape every {args.interval:g} s, "
          f"{statistics.median(scrapes):.0f} scrapes a run)")
    print(f"one scrape: {size} bytes and {per_scrape_ms:.3f} ms of mailferry's CPU "
          f"(mean of {args.cost_scrapes} back-to-back), {per_scrape_ms / 10:.4f} % of a core at one a second")


if __name__ == "__main__":
    main()
