#!/usr/bin/python3
"""Writes the hand-made seed inputs of every fuzz target into a directory (default: seeds/ next
to this file), one subdirectory per target. The committed corpus/ is these seeds merged with
what fuzzing found (libFuzzer -merge=1); rerun this after changing a target's input layout.

Usage: make_seeds.py [OUTDIR]
"""
import base64
import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "seeds")


def write(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(s):
    return base64.b64encode(s.encode()).decode()


# --- server_session: flags, chunk seed, outcome seed, then the client's bytes --------------------
AUTH_REQ, TRUSTED, STARTTLS, IMPLICIT, AUTH_OFFERED, QUEUE, TIGHT, SHUTDOWN = (1 << i for i in range(8))
plain_alice = b64("\0alice\0secret")
plain_bob = b64("\0bob@example.com\0wrong")
msg = "Subject: test\r\nFrom: a@example.org\r\n\r\nHello\r\n..dot\r\n.\r\n"
transcripts = [
    (TRUSTED, "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" + msg + "QUIT\r\n"),
    (TRUSTED, "HELO client\r\nMAIL FROM:<>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n" + msg + "RSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nQUIT\r\n"),
    # pipelined group in one write, then a second transaction after the final dot
    (TRUSTED, "EHLO c\r\nMAIL FROM:<a@example.org> BODY=8BITMIME SIZE=100\r\nRCPT TO:<b@example.net>\r\nDATA\r\nbody\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<d@example.net>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"),
    # STARTTLS then AUTH PLAIN, AUTH LOGIN
    (AUTH_REQ | STARTTLS | AUTH_OFFERED, "EHLO c\r\nSTARTTLS\r\nEHLO c\r\nAUTH PLAIN " + plain_alice + "\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n" + msg + "QUIT\r\n"),
    (AUTH_REQ | IMPLICIT | AUTH_OFFERED, "EHLO c\r\nAUTH LOGIN\r\n" + b64("alice") + "\r\n" + b64("secret") + "\r\nMAIL FROM:<a@b.example> SMTPUTF8\r\nRCPT TO:<\u00fc@example.net>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"),
    (AUTH_REQ | IMPLICIT | AUTH_OFFERED, "EHLO c\r\nAUTH PLAIN\r\n" + plain_bob + "\r\nAUTH PLAIN =\r\nAUTH LOGIN " + b64("bob@example.com") + "\r\n*\r\nAUTH XOAUTH2 abc\r\nMAIL FROM:<bob@example.com>\r\nMAIL FROM:<evil@example.com>\r\nQUIT\r\n"),
    (AUTH_REQ | IMPLICIT | AUTH_OFFERED, "EHLO c\r\nAUTH PLAIN " + b64("\0bob@example.com\0secret") + "\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<y@example.net>\r\nRSET\r\nMAIL FROM:<>\r\nQUIT\r\n"),
    # STARTTLS with injected plaintext after it (CVE-2011-0411)
    (STARTTLS | TRUSTED, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<x@example.net>\r\n"),
    # SMTP smuggling attempts: LF.LF, LF.CRLF, CR.CR, CRLF.LF inside DATA
    (TRUSTED, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nA\n.\nMAIL FROM:<evil@example.org>\r\n.\r\n"),
    (TRUSTED, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nA\r\n.\nRCPT TO:<x@y.z>\r\nB\r.\rC\r\n.\r\n"),
    (TRUSTED, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nA\n.\r\nB\r\n\r\n.\r\n"),
    # errors, long lines, bad syntax, bare LF commands
    (TRUSTED | TIGHT, "EHLO c\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\nRCPT TO:<c@example.net>\nRCPT TO:<d@example.net>\nRCPT TO:<e@example.net>\nDATA\n" + "x" * 100 + "\r\n.\r\nQUIT\r\n"),
    (0, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nFOO\r\nEHLO\r\nMAIL FROM:a@b\r\nMAIL FROM:<a@b> SIZE=99999999999999\r\n" + "A" * 5000 + "\r\nRCPT TO:<\"q u\\\"x\"@[192.0.2.1]>\r\nRCPT TO:<@route,@r2:x@y.example>\r\n"),
    (TRUSTED | QUEUE, "EHLO local\r\nETRN\r\nETRN #4XbT2qZ7mN1\r\nXDEL 4XbT2qZ7mN1\r\nXSTAT\r\nQUIT\r\n"),
    (TRUSTED | SHUTDOWN, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n"),
    (TRUSTED | TIGHT, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" + "y" * 200 + "\r\n.\r\nMAIL FROM:<a@example.org>\r\n"),
]
for flags, text in transcripts:
    for chunk_seed, outcome_seed in ((0, 0), (7, 0), (3, 5), (0x81, 0x42)):
        write("server_session", bytes([flags, chunk_seed, outcome_seed]) + text.encode())

# --- client_session: policy, chunk seed, message choice, end; then the server's bytes -------------
ehlo = "250-mx.upstream.example\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n"
ok_msg = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n250 2.0.0 Ok: queued\r\n"
servers = [
    (0x00, 0x00, "220 mx ESMTP\r\n" + ehlo + ok_msg + "221 bye\r\n"),
    (0x40, 0x04, "220 mx ESMTP\r\n" + ehlo + "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"),
    (0x01, 0x00, "220 mx ESMTP\r\n" + ehlo + "220 2.0.0 go ahead\r\n" + ehlo + ok_msg + "221 bye\r\n"),
    (0x01, 0x00, "220 mx ESMTP\r\n250-mx\r\n250 PIPELINING\r\n"),                     # STARTTLS stripped
    (0x01, 0x00, "220 mx ESMTP\r\n" + ehlo + "220 go\r\n250 injected\r\n"),           # injection after 220
    (0x12, 0x00, "220 mx\r\n" + ehlo + "235 2.7.0 ok\r\n" + ok_msg + "221 bye\r\n"),   # implicit + PLAIN
    (0x1a, 0x00, "220 mx\r\n" + ehlo + "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n" + ok_msg),  # LOGIN
    (0x1e, 0x00, "220 mx\r\n" + ehlo + "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n535 5.7.8 bad " + b64("\0relay@example.com\0Tr0ub4dor&3-hunter2") + "\r\n"),  # XOAUTH2 error
    (0x32, 0x00, "220 mx\r\n250 mx\r\n535 5.7.8 Tr0ub4dor&3-hunter2 rejected\r\n"),
    (0x00, 0x00, "220 mx\r\n500 what\r\n250 mx.helo\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n"),  # HELO fallback
    (0x00, 0x03, "220 mx\r\n" + ehlo + "250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n452 full\r\n250 reset\r\n221 bye\r\n"),
    (0x00, 0x00, "421 go away\r\n"),
    (0x00, 0x00, "220 mx\r\n" + ehlo + "250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n250 extra\r\n"),
    (0x80, 0x00, "220-" + "x" * 100 + "\r\n220 mx\r\n250-a\r\n250-b\r\n250-c\r\n250-d\r\n250 e\r\n"),
    (0x00, 0x00, "220 mx\r\n" + ehlo + "25O bad\r\n"),
    (0x00, 0x00, "220 mx\r\n" + ehlo + "250-ok\r\n251 mixed\r\n"),
    (0x00, 0x00, "220 mx\r\n250-mx\r\n250 SIZE 10\r\n250 ok\r\n221 bye\r\n"),
    (0x00, 0x08, "220 mx\r\n" + ehlo + "250 ok\r\n250 ok\r\n553 no\r\n250 ok\r\n354 go\r\n250 queued\r\n"),
]
for policy, msgsel, text in servers:
    for chunk_seed, end in ((0, 0), (5, 1), (2, 2), (0x9b, 3)):
        write("client_session", bytes([policy, chunk_seed, msgsel, end]) + text.encode())

# --- queue_file -------------------------------------------------------------------------------
def envelope(recipients, sender="a@example.org", extra=""):
    recs = ["V 1", "S " + sender, "U alice", "C 192.0.2.7", "L 127.0.0.1:587", "B 1", "I 0",
            "A 1700000000000001", "Z 1234", "N 2", "T -5", "P 451%204.3.0%20try%20later"]
    recs += ["R " + r for r in recipients]
    return "\n".join(recs) + "\n" + extra + "E %d\n" % len(recs)

write("queue_file", envelope(["pending b@example.net ", "delivered c@example.net 250%202.0.0%20Ok", "failed d@x 550%205.1.1%20No%20such%20user"]))
write("queue_file", envelope([], sender=""))
write("queue_file", envelope(["pending caf\xc3\xa9@example.net %0D%0A%00%25"]))
write("queue_file", "V 1\nS \nU \nC \nL \nB 0\nI 0\nA 0\nZ 0\nN 0\nT 0\nP \nE 12\n")
write("queue_file", "V 1\nS a%20b%25@x\nU \nC \nL \nB 0\nI 0\nA 1700000000000001\nZ 12\nN 4294967295\nT 9223372036854775\nP \nR pending x@y \nE 13\n")
write("queue_file", envelope(["pending b@example.net "])[:-8])   # truncated
write("queue_file", "R pending a b\nV 1\nE 1\n")

# --- config -------------------------------------------------------------------------------------
for path in ("examples/mailferry.toml", "examples/demo/mailferry.toml"):
    with open(os.path.join(HERE, "..", "..", path), "rb") as f:
        write("config", f.read())
with open(os.path.join(HERE, "..", "..", "..", "shared", "SPEC.md"), encoding="utf-8") as f:
    spec = f.read()
blocks = spec.split("```toml")[1:]
for b in blocks:
    write("config", b.split("```")[0])
write("config", '[upstream]\nhost = "smtp.example.com"\n')
write("config", 'listen = []\ntrusted_networks = []\n[upstream]\nhost = "h.example"\n')
write("config", '[upstream]\nhost = "smtp.example.com"\nauth = "xoauth2"\nusername = "u@example.com"\n[upstream.oauth2]\ntoken_url = "https://oauth2.example.com/token"\nclient_id = "id"\nclient_secret_file = "/etc/secret"\nrefresh_token_file = "/etc/refresh"\n')
write("config", 'listne = 1\n')
write("config", '[upstream]\nhost = "smtp.example.com"\nports = [{port = 465, tls = "implicit"}, {port = 587, tls = "starttls"}]\npassword = "p\\u00e9\\"q"\n[[user]]\nname = "wp"\npassword_hash = "$6$abc$def"\nallowed_senders = ["@example.org", "a@b.example"]\n[[listen]]\naddress = "[::1]:587"\ntls = "starttls"\n[tls]\ncert_file = "/c"\nkey_file = "/k"\n')

# --- address ------------------------------------------------------------------------------------
for flags, text in [(2, "<a@example.org>"), (2, "<>"), (2, "<a@example.org> SIZE=10 BODY=8BITMIME"),
                    (3, "<\u00fc\u00f1@ex\u00e4mple.org> SMTPUTF8"), (2, "<\"quoted \\\" local\"@example.org>"),
                    (2, "<@r1.example,@r2.example:a@example.org>"), (2, "<a@[192.0.2.1]>"), (2, "<a@[IPv6:2001:db8::1]>"),
                    (2, "<a..b@example.org>"), (2, "<\"a>b\"@example.org>"), (0, "<a@" + "x" * 70 + ".example>"),
                    (2, "<a@b.>"), (2, "<a\r\n@b>"), (2, "a@b"), (2, "<a@b"), (2, "<.a@b>")]:
    write("address", bytes([flags]) + text.encode())

# --- header_scan --------------------------------------------------------------------------------
for flags, text in [
    (0, "From: A <a@example.org>\r\nTo: b@example.net, \"Doe, J\" <j@example.net>\r\nCc: team: x@y.example, z@y.example;\r\nBcc: hidden@example.net\r\nSubject: hi\r\n\r\nbody\r\n.\r\n..\r\nafter\r\n"),
    (1, "To: undisclosed-recipients:;\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <1@x>\nReceived: from a\n\tby b\n\nbody\n.\nmore\r"),
    (3, "To: a@b (comment, with comma),\r\n c@d\r\nTo: root\r\nnot a header line\r\nX: y\r\n"),
    (5, "Subject: no blank line"),
    (0, "\r\nbody only\r\n"),
    (7, ".\r\n"),
    (2, "To: <a@b>\r\r\nCc: \"x\\\"y\" <q@r>\n\r\n..\r.\r\n"),
]:
    write("header_scan", bytes([flags]) + text.encode())

# --- proxy_header -------------------------------------------------------------------------------
sig = b"\r\n\r\n\x00\r\nQUIT\n"

def v2(cmd, fam, block):
    return sig + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(block)) + block

v4block = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack(">HH", 54321, 587)
v6block = bytes.fromhex("20010db8000000000000000000000001") + bytes.fromhex("00000000000000000000ffffc0000201") + struct.pack(">HH", 1, 25)
tlvs = bytes([0x01, 0, 2]) + b"h2" + bytes([0x02, 0, 11]) + b"example.com" + bytes([0x20, 0, 5, 1, 0, 0, 0, 0])
for seed in (0, 3, 0x55):
    for data in [
        b"PROXY TCP4 192.0.2.1 198.51.100.7 54321 587\r\nEHLO c\r\n",
        b"PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 1 65535\r\n",
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        b"PROXY TCP4 192.0.2.01 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
        b"EHLO client\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00",
        v2(1, 0x11, v4block) + b"EHLO c\r\n",
        v2(1, 0x21, v6block + tlvs),
        v2(0, 0x00, b""),
        v2(0, 0x31, b"x" * 216),
        v2(1, 0x00, b""),
        v2(1, 0x12, v4block),
        v2(1, 0x11, v4block[:8]),
        v2(1, 0x11, v4block + bytes([0x01, 0, 9, 1])),
        sig + bytes([0x21, 0x11, 0xff, 0xff]),
    ]:
        write("proxy_header", bytes([seed]) + data)
print("seeds written to", OUT)
