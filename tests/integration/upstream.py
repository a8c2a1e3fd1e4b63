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

TLS and AUTH (a provider as it really behaves):
    --tls-cert PEM --tls-key PEM   offer STARTTLS and require it before anything but EHLO/NOOP/QUIT
    --implicit-tls          TLS from the first byte (port 465 style) with that certificate
    --no-starttls           a "middlebox": never offers STARTTLS, even with a certificate
    --auth USER:PASS        AUTH PLAIN and LOGIN, only over TLS, required before MAIL
    --no-pipelining         do not advertise PIPELINING (RFC 2920; advertised by default)
    --transcript FILE       one line per event, appended and flushed at once:
                                conn=N connect tls=none|implicit
                                conn=N C: VERB [ARG]   (every command line read, also refused
                                                        ones; AUTH arguments masked, no DATA)
                                conn=N buffered-after VERB   (the client had already sent more
                                                        when VERB was read: it pipelined)
                                conn=N S: REPLY
                                conn=N tls-established version=TLSv1.2 cipher=... sni=...
                                conn=N auth mechanism=PLAIN user=U result=ok|failed
                                conn=N close

Each stored message also carries "conn", "auth" ({"mechanism", "user"} or null) and "tls"
({"version", "cipher", "sni", "mode"} or null) in its JSON.

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
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

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
        self.pipelining = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd 1.4 reads commands one line at a time, so it serves pipelined clients as it
        # is; it only does not say so.
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

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
            "conn": getattr(server, "conn_id", None),
            "auth": session.auth_data if session.authenticated else None,
            "tls": server.tls_info() if isinstance(server, RecordingSMTP) else None,
        }
        name = f"{time.time_ns()}-{os.getpid()}-{n:06d}.json"
        tmp = os.path.join(self.maildir, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.maildir, name))  # atomic: readers see all or nothing
        log(f"accepted file={name} from=<{envelope.mail_from}> nrcpt={len(envelope.rcpt_tos)} "
            f"size={len(raw)}")
        return f"250 2.0.0 Ok: stored as {name}"


class Transcript:
    """One line per event, written and flushed at once (a test reads it while we run)."""

    def __init__(self, path: str | None):
        self.f = open(path, "a", encoding="utf-8", buffering=1) if path else None

    def write(self, conn: int, text: str) -> None:
        if self.f is not None:
            self.f.write(f"conn={conn} {text}\n")
            self.f.flush()


# SNI seen per TLS object (the sni_callback runs inside the handshake, before we have a session)
_sni_by_sslobj: dict[int, str | None] = {}


def make_tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    def sni_callback(sslobj, server_name, _ctx):
        _sni_by_sslobj[id(sslobj)] = server_name
        return None

    ctx.sni_callback = sni_callback
    return ctx


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP plus a transcript, a per-connection number, and AUTH on implicit TLS.

    Every command line read is recorded, also those aiosmtpd refuses before dispatching them
    (530 before STARTTLS, 554 after a failed TLS handshake), so that "no MAIL was ever sent on
    this connection" can be asserted; message content (DATA) and AUTH continuation lines and
    arguments are not recorded. Replies are recorded as "S: ..." lines."""

    _conn_ids = itertools.count(1)

    def __init__(self, *a, transcript: Transcript, implicit_tls: bool, **kw):
        super().__init__(*a, **kw)
        self.transcript = transcript
        self.implicit_tls = implicit_tls
        self.conn_id = next(RecordingSMTP._conn_ids)
        self._ssl_obj = None
        self._quiet = False     # inside DATA or an AUTH exchange: lines read are not commands
        for verb in ("DATA", "AUTH"):
            self._smtp_methods[verb] = self._quietly(self._smtp_methods[verb])

    def _quietly(self, method):
        async def wrapped(arg):
            self._quiet = True
            try:
                return await method(arg)
            finally:
                self._quiet = False
        return wrapped

    def _client_connected_cb(self, reader, writer):
        super()._client_connected_cb(reader, writer)
        readuntil = reader.readuntil

        async def recording_readuntil(*args, **kwargs):
            line = await readuntil(*args, **kwargs)
            if not self._quiet:
                self._record_command(line)
                if len(reader._buffer) > 0:   # asyncio.StreamReader's unread bytes
                    verb = line.split(b" ", 1)[0].strip().decode("ascii", "replace").upper()
                    self.transcript.write(self.conn_id, f"buffered-after {verb}")
            return line

        reader.readuntil = recording_readuntil   # readline() goes through it too

    def _record_command(self, line: bytes) -> None:
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        verb, _, arg = text.partition(" ")
        if verb.upper() == "AUTH" and arg:
            parts = arg.split()
            arg = parts[0] + (" ***" if len(parts) > 1 else "")
        self.transcript.write(self.conn_id, f"C: {verb.upper()}" + (f" {arg}" if arg else ""))

    async def push(self, status):
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        self.transcript.write(self.conn_id, f"S: {text}")
        return await super().push(status)

    def tls_info(self) -> dict | None:
        obj = self._ssl_obj
        if obj is None:
            return None
        cipher = obj.cipher()
        return {"version": obj.version(), "cipher": cipher[0] if cipher else None,
                "sni": _sni_by_sslobj.get(id(obj)),
                "mode": "implicit" if self.implicit_tls else "starttls"}

    def connection_made(self, transport) -> None:
        first = self.transport is None
        if first:
            self.transcript.write(self.conn_id, "connect tls=" + ("implicit" if self.implicit_tls
                                                                  else "none"))
        super().connection_made(transport)
        obj = transport.get_extra_info("ssl_object")
        if obj is not None and self._ssl_obj is None:
            self._ssl_obj = obj
            # On implicit TLS aiosmtpd does not know the connection is encrypted: AUTH is
            # allowed on it as it would be after STARTTLS.
            self._auth_require_tls = False
            info = self.tls_info()
            self.transcript.write(self.conn_id, f"tls-established version={info['version']} "
                                                f"cipher={info['cipher']} sni={info['sni']}")

    def connection_lost(self, error) -> None:
        if self._ssl_obj is not None:
            _sni_by_sslobj.pop(id(self._ssl_obj), None)
        self.transcript.write(self.conn_id, "close")
        super().connection_lost(error)


def make_authenticator(user: str, password: str, transcript: Transcript):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = False
        login = None
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            ok = (auth_data.login == user.encode() and auth_data.password == password.encode())
        transcript.write(getattr(server, "conn_id", 0),
                         f"auth mechanism={mechanism} user={login} result={'ok' if ok else 'failed'}")
        log(f"auth mechanism={mechanism} user={login} result={'ok' if ok else 'failed'}")
        if ok:
            return AuthResult(success=True, auth_data={"mechanism": mechanism, "user": login})
        return AuthResult(success=False, handled=False)
    return authenticator


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
    handler.pipelining = not args.no_pipelining
    loop = asyncio.get_running_loop()

    transcript = Transcript(args.transcript)
    tls_ctx = make_tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    starttls_ctx = tls_ctx if (tls_ctx and not args.implicit_tls and not args.no_starttls) else None
    auth_kw = {}
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth_kw = dict(authenticator=make_authenticator(user, password, transcript),
                       auth_required=True, auth_require_tls=True)

    def factory():
        # hostname given so aiosmtpd does not call socket.getfqdn() (a DNS lookup) per session.
        return RecordingSMTP(handler, hostname="upstream.test", ident="mailferry-test-upstream",
                             decode_data=False, enable_SMTPUTF8=True,
                             data_size_limit=args.max_size, loop=loop,
                             tls_context=starttls_ctx, require_starttls=starttls_ctx is not None,
                             transcript=transcript, implicit_tls=args.implicit_tls, **auth_kw)

    server = await loop.create_server(factory, host=args.host, port=args.port,
                                      reuse_address=True,
                                      ssl=tls_ctx if args.implicit_tls else None)
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
    p.add_argument("--tls-cert", metavar="PEM")
    p.add_argument("--tls-key", metavar="PEM")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--no-starttls", action="store_true")
    p.add_argument("--auth", metavar="USER:PASS")
    p.add_argument("--transcript", metavar="FILE")
    p.add_argument("--no-pipelining", action="store_true")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("upstream.py: --tls-cert and --tls-key go together")
    if args.implicit_tls and not args.tls_cert:
        raise SystemExit("upstream.py: --implicit-tls needs --tls-cert and --tls-key")
    if args.auth is not None and ":" not in args.auth:
        raise SystemExit("upstream.py: --auth wants USER:PASS")
    if args.fail_data is not None and not 400 <= args.fail_data <= 599:
        raise SystemExit("upstream.py: --fail-data wants a 4xx or 5xx code")
    os.makedirs(args.maildir, exist_ok=True)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
