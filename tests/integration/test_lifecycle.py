#!/usr/bin/python3
"""test_lifecycle.py: a queue built up while the upstream is down goes out over few connections,
and SIGTERM stops mailferry cleanly: idle sessions get 421, a transaction under way finishes and
its message is delivered once (after a restart), a stalled one cannot hold the stop past the
drain bound and leaves nothing behind.

    /usr/bin/python3 tests/integration/test_lifecycle.py <path-to-mailferry>
"""

import os
import signal
import smtplib
import socket
import subprocess
import time
import uuid

import harness
from harness import RelayCase, make_message, smtp_connect, smtp_send_on, spool_ids

DELIVERY_TIMEOUT = 30.0
DRAIN_BOUND = 10.0           # serve.cpp: drain_bound
STOP_MARGIN = 5.0            # process exit, disk pool join, a loaded machine
IDLE_STOP_LIMIT = 5.0        # nothing to wait for: the stop must not wait for the bound
LATE_GRACE = 1.5             # after the last expected arrival, so a duplicate has time to show


def marker() -> str:
    return uuid.uuid4().hex


def sigterm(mf: harness.Mailferry) -> float:
    """Sends SIGTERM and waits for the 'stopping' log line (so the listeners are closed and
    sessions have been told); returns when the signal was sent (time.monotonic())."""
    sent_at = time.monotonic()
    mf.proc.send_signal(signal.SIGTERM)
    mf.wait_event("stopping", timeout=5.0)
    return sent_at


def wait_exit(mf: harness.Mailferry, since: float, timeout: float) -> tuple[int | None, float]:
    """Waits (bounded) for mailferry to exit by itself; returns its status (None if it had to be
    killed) and the seconds since `since`. Leaves mf ready for mf.start() on the same spool."""
    try:
        mf.proc.wait(timeout=max(0.1, since + timeout - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass                     # still running: reported as None below
    elapsed = time.monotonic() - since
    rc = mf.proc.returncode
    mf.stop(grace=1.0)           # closes the log; kills only if it is still running
    return rc, elapsed


def new_session_outcome(port: int) -> str:
    """What a new client gets: 'refused', the first line it reads ('' at EOF), or
    '<ConnectionResetError>' / '<TimeoutError>'."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    except ConnectionRefusedError:
        return "refused"
    with s:
        try:
            return s.makefile("rb").readline().decode(errors="replace").rstrip("\r\n")
        except (ConnectionResetError, TimeoutError) as e:
            return f"<{type(e).__name__}>"


class LifecycleTest(RelayCase):
    def sigterm_mid_data(self):
        """An upstream, mailferry, and a session that has MAIL, RCPT, a 354 to DATA and the
        first half of a message sent; then SIGTERM. Returns (up, mf, marker, session, since)."""
        up = self.start_upstream()
        mf = self.start_mailferry(up.port, retry=("1s",))
        m = marker()
        s = smtp_connect(mf.port, timeout=DRAIN_BOUND + STOP_MARGIN + 5)
        self.addCleanup(s.close)
        self.assertEqual(s.mail("a@x")[0], 250)
        self.assertEqual(s.rcpt("b@y")[0], 250)
        s.putcmd("data")
        code, text = s.getreply()
        self.assertEqual(code, 354, text)
        s.send(f"From: a@x\r\nTo: b@y\r\nSubject: lifecycle {m}\r\nX-Test-Id: {m}\r\n\r\n"
               "first half of the body\r\n".encode())
        # The message is really half-written in the spool when the signal comes.
        harness.wait_until(lambda: spool_ids(mf.spool_dir, "incoming"), 5.0,
                           what="the message under way in incoming/")
        return up, mf, m, s, sigterm(mf)

    def test_50_messages_over_at_most_5_connections(self):
        port = harness.free_port()               # nothing listens there yet
        self.assertFalse(harness.port_accepts(port))
        # A long retry interval: only the flush below may start the delivery round.
        mf = self.start_mailferry(port, retry=("10m",))
        run = marker()
        sent: dict[str, str] = {}                # test id → queue id
        s = smtp_connect(mf.port)
        try:
            for i in range(50):
                tid = f"{run}-{i:02d}"
                r = smtp_send_on(s, "a@x", ["b@y"],
                                 make_message([("Subject", f"batch {tid}"), ("X-Test-Id", tid)],
                                              b"one of fifty\r\n"))
                self.assertEqual(r.code, 250, f"message {i}: {r}")
                self.assertIsNotNone(r.queue_id, f"message {i}: {r}")
                sent[tid] = r.queue_id
        finally:
            s.quit()
        # Every first attempt has failed before the upstream comes up, so all 50 wait in queue/.
        harness.wait_until(lambda: set(sent.values()) <= {f.get("id") for _, f in mf.events("deferred")},
                           DELIVERY_TIMEOUT, what="a 'deferred' line for each of the 50")
        self.assertEqual(mf.events("delivered"), [])
        self.assertEqual(sorted(spool_ids(mf.spool_dir, "queue")), sorted(sent.values()))

        up = self.start_upstream(port=port)
        r = harness.run_mailferry("queue", "flush", "-c", mf.config_path)
        self.assertEqual(r.returncode, 0, f"queue flush: {r.stderr}")
        up.wait_for_count(50, DELIVERY_TIMEOUT)
        harness.wait_until(lambda: spool_ids(mf.spool_dir, "queue") == [], DELIVERY_TIMEOUT,
                           what="the spool's queue/ to be empty")
        time.sleep(LATE_GRACE)

        arrived = [next((t for t in sent if t.encode() in msg["raw"]), None)
                   for msg in up.messages()]
        self.assertNotIn(None, arrived, "a message nobody sent arrived")
        self.assertEqual(sorted(arrived), sorted(sent), "not each of the 50 exactly once")
        conns = up.connections()
        with_mail = [n for n, ev in conns.items() if any(e.startswith("C: MAIL") for e in ev)]
        print(f"lifecycle-figures messages=50 connections={len(conns)} "
              f"with_mail={len(with_mail)}", flush=True)
        self.assertLessEqual(len(with_mail), 5, f"connections that carried a MAIL: {with_mail}")
        self.assertLessEqual(len(conns), 5, f"connections in all: {sorted(conns)}")

    def test_sigterm_mid_data_finishes_the_transaction(self):
        up, mf, m, s, since = self.sigterm_mid_data()

        outcome = new_session_outcome(mf.port)
        self.assertTrue(outcome == "refused" or outcome.startswith("421"),
                        f"a new connection during the stop got {outcome!r}")
        self.assertIsNone(mf.proc.poll(), "mailferry exited with a transaction under way")

        s.send(b"second half of the body\r\n.\r\n")
        code, text = s.getreply()
        text = text.decode(errors="replace")
        self.assertEqual(code, 250, f"the final dot during the stop: {code} {text}")
        qid = harness.SendResult(code, text).queue_id
        self.assertIsNotNone(qid, text)
        self.assertEqual(s.quit()[0], 221)

        rc, elapsed = wait_exit(mf, since, DRAIN_BOUND + STOP_MARGIN)
        self.assertEqual(rc, 0, f"exit status after SIGTERM (after {elapsed:.1f}s)")
        self.assertLess(elapsed, DRAIN_BOUND, "the stop waited for the bound after the last "
                                              "session had ended")

        # Acknowledged: either it went out before the exit or it waits in queue/ for the restart.
        if not up.find(m.encode()):
            self.assertIn(qid, spool_ids(mf.spool_dir, "queue"),
                          "acknowledged, not delivered, and not in queue/ either")
        mf.start(mf.port)
        up.wait_for(m.encode(), DELIVERY_TIMEOUT)
        harness.wait_until(lambda: spool_ids(mf.spool_dir, "queue") == [], DELIVERY_TIMEOUT,
                           what="the spool's queue/ to be empty after the restart")
        time.sleep(LATE_GRACE)
        got = up.find(m.encode())
        self.assertEqual(len(got), 1, "delivered more than once")
        self.assertIn(b"first half of the body\r\nsecond half of the body\r\n", got[0]["raw"])

    def test_a_second_sigterm_while_stopping_still_exits_0(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        codes = []
        for i in range(20):   # the second signal lands at different moments of the shutdown
            mf.proc.send_signal(signal.SIGTERM)
            time.sleep(i * 0.0005)
            mf.proc.send_signal(signal.SIGTERM)
            codes.append(mf.proc.wait(timeout=15))
            mf.stop()
            mf.start(mf.port)
        self.assertEqual(codes, [0] * 20)

    def test_sigterm_idle_session_gets_421(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        s = smtp_connect(mf.port, timeout=IDLE_STOP_LIMIT)
        self.addCleanup(s.close)
        since = sigterm(mf)
        code, text = s.getreply()
        self.assertEqual(code, 421, text)
        rc, elapsed = wait_exit(mf, since, IDLE_STOP_LIMIT)
        self.assertEqual(rc, 0, f"exit status after SIGTERM (after {elapsed:.1f}s)")
        self.assertLess(elapsed, IDLE_STOP_LIMIT)

    def test_sigterm_stalled_data_is_bounded(self):
        up, mf, m, s, since = self.sigterm_mid_data()
        # The client sends nothing more: only the drain bound can end the stop.
        rc, elapsed = wait_exit(mf, since, DRAIN_BOUND + STOP_MARGIN)
        self.assertIsNotNone(rc, f"still running {elapsed:.1f}s after SIGTERM")
        self.assertLess(elapsed, DRAIN_BOUND + STOP_MARGIN)
        self.assertEqual(rc, 0, f"exit status after SIGTERM (after {elapsed:.1f}s)")

        try:
            code, text = s.getreply()
            self.assertNotEqual(code, 250, f"the unfinished message got {code} {text!r}")
        except smtplib.SMTPServerDisconnected:
            pass                                 # closed without a reply: nothing acknowledged

        mf.start(mf.port)
        self.assertEqual(spool_ids(mf.spool_dir, "queue"), [], "a message was queued")
        self.assertEqual(spool_ids(mf.spool_dir, "incoming"), [], "incoming/ was not purged")
        self.assertEqual(spool_ids(mf.spool_dir, "failed"), [])
        # A message sent after the restart is a barrier: anything recovered at the start would
        # have been due before it.
        c = marker()
        s2 = smtp_connect(mf.port)
        try:
            r = smtp_send_on(s2, "a@x", ["b@y"], make_message([("Subject", f"after {c}")], b"x\r\n"))
        finally:
            s2.quit()
        self.assertEqual(r.code, 250, r)
        up.wait_for(c.encode(), DELIVERY_TIMEOUT)
        time.sleep(LATE_GRACE)
        self.assertEqual(up.find(m.encode()), [], "the unfinished message reached the upstream")
        self.assertEqual(up.count(), 1)


class StatusTest(RelayCase):
    def status(self, mf: harness.Mailferry):
        return mf.run("status", "-c", mf.config_path)

    def test_status_answers_without_logging(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port)
        m = uuid.uuid4().hex
        r = harness.smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", m)], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        up.wait_for(m.encode(), 20.0)
        mf.wait_event("delivered", r.queue_id)
        log_before = mf.log()
        st = self.status(mf)
        self.assertEqual(st.returncode, 0, st.stderr)
        fields = dict(line.split("=", 1) for line in st.stdout.splitlines())
        self.assertEqual(fields.get("ready"), "yes", st.stdout)
        self.assertEqual((fields.get("queued"), fields.get("deferred"), fields.get("failed")), ("0", "0", "0"))
        self.assertEqual(fields.get("upstream_port"), str(up.port), st.stdout)
        self.assertRegex(fields.get("last_delivery", ""), r"^\d{4}-\d\d-\d\dT", st.stdout)
        self.assertRegex(fields.get("uptime_seconds", ""), r"^\d+$", st.stdout)
        time.sleep(0.3)
        self.assertEqual(mf.log(), log_before, "status left a line in the log")

    def test_status_without_a_daemon_is_69(self):
        up = self.start_upstream()
        mf = self.start_mailferry(up.port, start=False)
        st = self.status(mf)
        self.assertEqual(st.returncode, 69, st)
        self.assertEqual(st.stdout, "")
        self.assertEqual(len(st.stderr.strip().splitlines()), 1, st.stderr)
        self.assertIn("no mailferry daemon", st.stderr)


class ServiceManagerNotifyTest(RelayCase):
    """sd_notify(3) as systemd's Type=notify expects it: READY=1 once listening, RELOADING=1 and
    READY=1 around SIGHUP, STOPPING=1 on SIGTERM — datagrams on $NOTIFY_SOCKET."""

    def receive(self, sock: socket.socket) -> str:
        try:
            return sock.recv(4096).decode()
        except socket.timeout:
            self.fail("no notification within 10 s")

    def test_ready_reloading_stopping(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        path = os.path.join(self.workdir, "notify.sock")
        sock.bind(path)
        sock.settimeout(10.0)
        up = self.start_upstream()
        with harness.environment(NOTIFY_SOCKET=path):
            mf = self.start_mailferry(up.port)
        self.assertEqual(self.receive(sock), "READY=1")
        self.assertTrue(harness.port_accepts(mf.port))
        mf.proc.send_signal(signal.SIGHUP)
        reloading = self.receive(sock).split("\n")
        self.assertEqual(reloading[0], "RELOADING=1", reloading)
        self.assertRegex(reloading[1], r"^MONOTONIC_USEC=\d+$", reloading)
        self.assertEqual(self.receive(sock), "READY=1")
        mf.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.receive(sock), "STOPPING=1")
        self.assertEqual(mf.stop(), 0)


if __name__ == "__main__":
    harness.main()
