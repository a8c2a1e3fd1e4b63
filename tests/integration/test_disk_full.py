#!/usr/bin/python3
"""test_disk_full.py: a full spool disk gives clients 452 4.3.1, never a 250, and loses nothing.

mailferry runs in a private mount namespace (unshare -m) whose spool is a 512 KiB tmpfs, so the
disk really fills (ENOSPC) without touching the machine's mounts. Needs root for the mount; skipped
otherwise.
"""

import os
import shutil
import subprocess
import time
import unittest
import uuid

import harness
from harness import RelayCase, make_message, smtp_connect, smtp_send_on

SPOOL_BYTES = 512 * 1024
MESSAGE_BODY = (b"y" * 76 + b"\r\n") * 600      # ~47 KiB: about ten fit


def can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=10)
    return probe.returncode == 0


class SmallDiskMailferry(harness.Mailferry):
    """mailferry serve with its spool on a tmpfs of SPOOL_BYTES in its own mount namespace."""

    def __init__(self, workdir, config_path, spool_dir):
        super().__init__(workdir, config_path)
        self.spool_dir = spool_dir

    def start(self, port, ready_timeout=10.0):
        script = os.path.join(self.workdir, "small-disk.sh")
        harness.write_file(script, "#!/bin/sh\nset -e\nmkdir -p '%s'\n"
                           "mount -t tmpfs -o size=%d,mode=0700 tmpfs '%s'\nexec '%s' \"$@\"\n"
                           % (self.spool_dir, SPOOL_BYTES, self.spool_dir, harness.MAILFERRY_BIN))
        os.chmod(script, 0o755)
        self._argv_prefix = ["unshare", "-m", script]
        return self._start_with_prefix(port, ready_timeout)

    def _start_with_prefix(self, port, ready_timeout):
        self.port = port
        self._log = open(self.log_path, "ab")
        self.proc = harness.spawn(self._argv_prefix + ["serve", "-c", self.config_path],
                                  stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        for _ in range(max(100, int(ready_timeout / 0.05))):
            if self.proc.poll() is not None:
                raise AssertionError(f"mailferry exited with {self.proc.returncode}:\n{self.log()}")
            if harness.port_accepts(port):
                return self
            time.sleep(0.05)
        raise AssertionError(f"mailferry did not accept on {port}:\n{self.log()}")


@unittest.skipUnless(can_mount_tmpfs(), "needs root and unshare -m to mount a small tmpfs")
class DiskFull(RelayCase):
    def test_full_disk_gives_452_and_loses_nothing(self):
        upstream_port = harness.free_port()      # nothing listens yet: messages stay spooled
        listen = harness.free_port()
        spool = os.path.join(self.workdir, "spool")
        cfg = harness.write_file(os.path.join(self.workdir, "mailferry.toml"), harness.relay_config(
            spool_dir=spool, listen_port=listen, upstream_port=upstream_port, retry=("1s",)))
        mf = SmallDiskMailferry(self.workdir, cfg, spool)
        self.addCleanup(mf.stop)
        mf.start(listen)

        acked, refused = {}, []
        s = smtp_connect(listen)
        try:
            for i in range(40):                   # bounded: ~40 × 47 KiB is far past 512 KiB
                marker = uuid.uuid4().hex
                r = smtp_send_on(s, "a@example.com", ["b@example.net"],
                                 make_message([("Subject", f"fill {marker}")], MESSAGE_BODY))
                if r.code == 250:
                    acked[marker] = r.queue_id
                else:
                    refused.append(r)
                    if len(refused) >= 3:
                        break
        finally:
            s.close()
        self.assertTrue(acked, "no message fitted at all")
        self.assertTrue(refused, "the disk never filled")
        for r in refused:
            self.assertEqual(r.code, 452, r)
            self.assertIn("4.3.1", r.text)
        # Every acknowledged message is still delivered once the upstream comes up.
        up = self.start_upstream(port=upstream_port)
        got = up.wait_for_count(len(acked), timeout=30)
        delivered = {m for m in acked if any(m.encode() in x["raw"] for x in got)}
        self.assertEqual(delivered, set(acked), "an acknowledged message was lost")
        # Space freed by delivery: new mail is accepted again.
        harness.wait_until(lambda: not harness.spool_ids(spool, "queue"), 30, what="an empty queue")
        r = harness.smtp_send(listen, "a@example.com", ["b@example.net"],
                              make_message([("Subject", "after")], b"small\r\n"))
        self.assertEqual(r.code, 250, r)
        print(f"disk-full acknowledged={len(acked)} refused_452={len(refused)} lost=0")


if __name__ == "__main__":
    harness.main()
