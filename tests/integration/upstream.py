#!/usr/bin/python3
"""upstream.py: a test upstream SMTP server that writes every accepted message to a maildir.

Built on Debian's python3-aiosmtpd (1.4). Run it with /usr/bin/python3.

Each accepted message becomes one JSON file in --maildir, written to a dot-named temp file
and renamed into place, so a reader that lists "*.json" never sees half a file:

    {"mail_from": "a@x", "rcpt_tos": ["b@y"], "mail_options": [...], "rcpt_options": [...],
     "data_b64": "<base64 of the raw bytes>", "data": "<the same bytes as a latin-1 string>",
     "peer": "127.0.0.1", "received_at": 1700000000.123}

"data" is exactly what the client sent between DATA and the final CRLF.CRLF, after
dot-unstuffing and nothing else: aiosmtpd 1.4 splits DATA only at CRLF (a bare CR or LF
stays inside a line), ends it only at a line that is exactly ".\\r\\n", removes one leading
dot per line, and with decode_data=False hands over those bytes unchanged
(Envelope.original_content).

Misbehaviour for tests:
    --fail-rcpt ADDR=CODE   answer RCPT TO:<ADDR> with CODE (4xx or 5xx); may repeat
    --fail-data CODE        answer the final dot with CODE
    --fail-data-times N     ... but only for the first N messages (default: always)

Prints "ready port=N" on stdout once it listens; SIGTERM or SIGINT stop it.
"""

import argparse
import asyncio
import base64
import itertools
import json
import os
import signal
import sys
import time

from aiosmtpd.smtp import SMTP

REPLY_TEXT = {
    4: "Temporary failure (test upstream)",
    5: "Rejected (test upstream)",
}


def enhanced(code: int) -> str:
    """A plausible enhanced status code for a reply code."""
    return {4: "4.0.0", 5: "5.0.0"}.get(code // 100, "2.0.0")


def reply(code: int, what: str) -> str:
    return f"{code} {enhanced(code)} {REPLY_TEXT.get(code // 100, 'Ok')}: {what}"


class MaildirHandler:
    def __init__(self, maildir: str, fail_rcpt: dict, fail_data: int | None,
                 fail_data_times: int | None):
        self.maildir = maildir
        self.fail_rcpt = {k.lower(): v for k, v in fail_rcpt.items()}
        self.fail_data = fail_data
        self.fail_data_left = fail_data_times
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.fail_rcpt.get(address.lower())
        if code is not None:
            log(f"rcpt-refused rcpt=<{address}> code={code}")
            return reply(code, f"<{address}>")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_data is not None and (self.fail_data_left is None or self.fail_data_left > 0):
            if self.fail_data_left is not None:
                self.fail_data_left -= 1
            log(f"data-refused from=<{envelope.mail_from}> code={self.fail_data}")
            return reply(self.fail_data, "message refused")
        raw = envelope.original_content
        if isinstance(raw, str):  # only with decode_data=True, which we never set
            raw = raw.encode("utf-8", "surrogateescape")
        raw = bytes(raw)
        n = next(self.counter)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "data_b64": base64.b64encode(raw).decode("ascii"),
            "data": raw.decode("latin-1"),
            "peer": session.peer[0] if session.peer else "",
            "received_at": time.time(),
        }
        name = f"{time.time_ns()}-{os.getpid()}-{n:06d}.json"
        tmp = os.path.join(self.maildir, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.maildir, name))  # atomic: readers see all or nothing
        log(f"accepted file={name} from=<{envelope.mail_from}> nrcpt={len(envelope.rcpt_tos)} "
            f"size={len(raw)}")
        return f"250 2.0.0 Ok: stored as {name}"


def log(line: str) -> None:
    print(f"upstream: {line}", file=sys.stderr, flush=True)


def parse_fail_rcpt(items: list[str]) -> dict:
    out = {}
    for item in items:
        addr, sep, code = item.rpartition("=")
        if not sep or not addr or not code.isdigit() or not 400 <= int(code) <= 599:
            raise SystemExit(f"upstream.py: --fail-rcpt wants ADDR=CODE (4xx/5xx), got {item!r}")
        out[addr] = int(code)
    return out


async def serve(args) -> None:
    handler = MaildirHandler(args.maildir, parse_fail_rcpt(args.fail_rcpt), args.fail_data,
                             args.fail_data_times)
    loop = asyncio.get_running_loop()

    def factory():
        # hostname given so aiosmtpd does not call socket.getfqdn() (a DNS lookup) per session.
        return SMTP(handler, hostname="upstream.test", ident="mailferry-test-upstream",
                    decode_data=False, enable_SMTPUTF8=True,
                    data_size_limit=args.max_size, loop=loop)

    server = await loop.create_server(factory, host=args.host, port=args.port,
                                      reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"ready port={port}", flush=True)
    try:
        await stop
    finally:
        server.close()
        await server.wait_closed()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port (printed)")
    p.add_argument("--maildir", required=True)
    p.add_argument("--fail-rcpt", action="append", default=[], metavar="ADDR=CODE")
    p.add_argument("--fail-data", type=int, metavar="CODE")
    p.add_argument("--fail-data-times", type=int, metavar="N")
    p.add_argument("--max-size", type=int, default=64 * 1024 * 1024)
    args = p.parse_args()
    if args.fail_data is not None and not 400 <= args.fail_data <= 599:
        raise SystemExit("upstream.py: --fail-data wants a 4xx or 5xx code")
    os.makedirs(args.maildir, exist_ok=True)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
