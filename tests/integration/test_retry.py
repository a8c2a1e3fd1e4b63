#!/usr/bin/python3
"""test_retry.py: mailferry accepts while the upstream is down and delivers once it is up;
a temporary reply is retried, a permanent one is not.

    /usr/bin/python3 tests/integration/test_retry.py <path-to-mailferry>
"""

import time
import unittest
import uuid

import harness
from harness import RelayCase, free_port, make_message, smtp_send

RETRY_TIMEOUT = 20.0


class RetryTest(RelayCase):
    def test_upstream_down_then_up(self):
        port = free_port()                       # nothing listens there yet
        self.assertFalse(harness.port_accepts(port))
        mf = self.start_mailferry(port, retry=("1s",))
        m = uuid.uuid4().hex
        r = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", f"retry {m}")],
                                                            b"retry me\r\n"))
        self.assertEqual(r.code, 250, f"submission while the upstream is down: {r}")
        qid = r.queue_id
        self.assertIsNotNone(qid, r)
        deferred = mf.wait_event("deferred", qid, timeout=RETRY_TIMEOUT)
        self.assertEqual(deferred[0][1].get("rcpt"), "<b@y>", deferred)
        self.assertIn("next", deferred[0][1], deferred)
        self.assertEqual(mf.events("delivered", qid), [])

        up = self.start_upstream(port=port)
        msg = up.wait_for(m.encode(), RETRY_TIMEOUT)
        self.assertEqual(len(msg), 1)
        self.assertEqual(msg[0]["rcpt_tos"], ["b@y"])
        mf.wait_event("delivered", qid, timeout=RETRY_TIMEOUT)
        order = [e for e, f in mf.events(qid=qid) if e in ("deferred", "delivered")]
        self.assertEqual(order[0], "deferred", order)
        self.assertEqual(order[-1], "delivered", order)
        harness.wait_until(lambda: harness.spool_ids(mf.spool_dir, "queue") == [], 10.0,
                           what="the spool's queue/ to be empty after delivery")

    def test_temporary_data_reply_is_retried(self):
        up = self.start_upstream(args=["--fail-data", "451", "--fail-data-times", "1"])
        mf = self.start_mailferry(up.port, retry=("1s",))
        m = uuid.uuid4().hex
        r = smtp_send(mf.port, "a@x", ["b@y"], make_message([("Subject", f"451 {m}")], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        up.wait_for(m.encode(), RETRY_TIMEOUT)
        deferred = mf.wait_event("deferred", r.queue_id, timeout=RETRY_TIMEOUT)
        self.assertIn("451", deferred[0][1].get("reply", ""), deferred)
        mf.wait_event("delivered", r.queue_id, timeout=RETRY_TIMEOUT)

    def test_permanent_rcpt_reply_is_not_retried(self):
        up = self.start_upstream(args=["--fail-rcpt", "gone@y=550"])
        mf = self.start_mailferry(up.port, retry=("1s",))
        m = uuid.uuid4().hex
        r = smtp_send(mf.port, "sender@x", ["b@y", "gone@y"],
                      make_message([("Subject", f"550 {m}")], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        msgs = up.wait_for(m.encode(), RETRY_TIMEOUT)
        self.assertEqual(msgs[0]["rcpt_tos"], ["b@y"])
        mf.wait_event("delivered", r.queue_id, timeout=RETRY_TIMEOUT)
        bounced = mf.wait_event("bounced", r.queue_id, timeout=RETRY_TIMEOUT)
        self.assertEqual(bounced[0][1].get("rcpt"), "<gone@y>", bounced)
        self.assertIn("550", bounced[0][1].get("reply", ""), bounced)
        time.sleep(3.0)   # three retry intervals: a retried recipient would be asked again
        refused = up.log().count("rcpt-refused rcpt=<gone@y>")
        self.assertEqual(refused, 1, f"gone@y was offered {refused} times after a 550")
        self.assertEqual(len([x for x in up.messages() if x["rcpt_tos"] == ["b@y"]]), 1,
                         "b@y got the message again")
        self.assertEqual(mf.events("deferred", r.queue_id), [], "a 550 was treated as temporary")

    def test_permanent_failure_keeps_message_in_failed(self):
        up = self.start_upstream(args=["--fail-rcpt", "gone@y=550"])
        mf = self.start_mailferry(up.port, retry=("1s",))
        m = uuid.uuid4().hex
        r = smtp_send(mf.port, "sender@x", ["gone@y"],
                      make_message([("Subject", f"failed {m}")], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        mf.wait_event("bounced", r.queue_id, timeout=RETRY_TIMEOUT)
        harness.wait_until(lambda: r.queue_id in harness.spool_ids(mf.spool_dir, "failed"),
                           RETRY_TIMEOUT, what="the failed message in failed/")
        self.assertNotIn(r.queue_id, harness.spool_ids(mf.spool_dir, "queue"))
        # A permanent failure is not retried: no further attempt after the bounce.
        time.sleep(2.5)
        self.assertEqual(len(mf.events("attempt", r.queue_id)), 1)

    def test_permanent_failure_sends_dsn(self):
        up = self.start_upstream(args=["--fail-rcpt", "gone@y=550"])
        mf = self.start_mailferry(up.port, retry=("1s",))
        m = uuid.uuid4().hex
        r = smtp_send(mf.port, "sender@x", ["b@y", "gone@y", "c@y"],
                      make_message([("Subject", f"dsn {m}")], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        mf.wait_event("bounced", r.queue_id, timeout=RETRY_TIMEOUT)
        # The others are delivered, once.
        delivered = harness.wait_until(   # the DSN quotes the marker too: leave it out
            lambda: [x for x in up.find(m.encode()) if x["rcpt_tos"] != ["sender@x"]],
            RETRY_TIMEOUT, what="the message at the upstream")
        self.assertEqual([x["rcpt_tos"] for x in delivered], [["b@y", "c@y"]])
        # The DSN (RFC 3464) goes to the envelope sender through the same upstream.
        dsn = harness.wait_until(
            lambda: [x for x in up.messages() if x["rcpt_tos"] == ["sender@x"]],
            RETRY_TIMEOUT, what="the DSN to sender@x")
        self.assertEqual(len(dsn), 1, "more than one DSN")
        self.assertIn(dsn[0]["mail_from"], ("", "<>"), "a DSN must have a null envelope sender")
        self.assertIn(b"multipart/report", dsn[0]["raw"])
        self.assertIn(b"gone@y", dsn[0]["raw"])
        self.assertIn(b"message/delivery-status", dsn[0]["raw"])
        self.assertIn(f"dsn {m}".encode(), dsn[0]["raw"], "the original headers are not in the bounce")
        # queue list shows the message as failed, with the upstream's answer for that recipient.
        harness.wait_until(lambda: r.queue_id in harness.spool_ids(mf.spool_dir, "failed"),
                           RETRY_TIMEOUT, what="the failed message in failed/")
        listed = mf.run("queue", "list", "-c", mf.config_path)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        entry = listed.stdout[listed.stdout.index(r.queue_id):]
        self.assertRegex(entry.splitlines()[0], r"\bfailed\b", listed.stdout)
        self.assertRegex(entry, r"<gone@y> failed: 550", listed.stdout)
        time.sleep(1.5)   # a second DSN would come within a retry interval
        self.assertEqual(len([x for x in up.messages() if x["rcpt_tos"] == ["sender@x"]]), 1, "more than one DSN")

    def test_no_bounce_to_a_null_sender(self):
        up = self.start_upstream(args=["--fail-rcpt", "gone@y=550"])
        mf = self.start_mailferry(up.port, retry=("1s",))
        r = smtp_send(mf.port, "", ["gone@y"], make_message([("Subject", "null sender")], b"x\r\n"))
        self.assertEqual(r.code, 250, r)
        mf.wait_event("bounced", r.queue_id, timeout=RETRY_TIMEOUT)
        harness.wait_until(lambda: r.queue_id in harness.spool_ids(mf.spool_dir, "failed"),
                           RETRY_TIMEOUT, what="the failed message in failed/")
        time.sleep(1.5)
        self.assertEqual(mf.events("bounce_queued"), [], "a bounce was made for a null sender")

if __name__ == "__main__":
    harness.main()
