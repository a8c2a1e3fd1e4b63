#!/usr/bin/python3
"""demo-upstream.py: a stand-in for your mail provider, for the demo only.

An SMTP server on 127.0.0.1:2526 (no TLS, no AUTH) that accepts every message and prints it
to stdout instead of delivering it. Needs Debian's python3-aiosmtpd; run with /usr/bin/python3.
Ctrl-C or SIGTERM stops it.
"""

import argparse
import asyncio
import signal
import sys
import time

from aiosmtpd.smtp import SMTP


class PrintHandler:
    async def handle_DATA(self, server, session, envelope):
        data = bytes(envelope.original_content)
        rule = "=" * 72
        print(f"{rule}\n{time.strftime('%H:%M:%S')} demo upstream received a message\n"
              f"  MAIL FROM: <{envelope.mail_from}>\n"
              f"  RCPT TO:   {', '.join('<' + r + '>' for r in envelope.rcpt_tos)}\n"
              f"  size:      {len(data)} bytes\n{rule}")
        print(data.decode("utf-8", errors="replace").replace("\r\n", "\n"), end="")
        print(f"{rule}\n", flush=True)
        return "250 2.0.0 Ok: printed by the demo upstream"


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    handler = PrintHandler()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="demo-upstream.local", decode_data=False,
                     enable_SMTPUTF8=True, loop=loop),
        host=host, port=port, reuse_address=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"demo upstream: listening on {host}:{port}, printing every message it gets", flush=True)
    await stop
    server.close()
    await server.wait_closed()


def main() -> int:
    p = argparse.ArgumentParser(description="Print every message received over SMTP.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2526)
    args = p.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except OSError as e:
        print(f"demo upstream: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        return 69
    return 0


if __name__ == "__main__":
    sys.exit(main())
