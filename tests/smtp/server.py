#!/usr/bin/python3
"""A recording SMTP server for tests/notify.rs and tests/followup.rs (aiosmtpd,
Debian python3-aiosmtpd; started through tests/common/smtp.rs).

    server.py --log LOG.jsonl [--port N] [--tls none|starttls|implicit]
              [--cert CERT.pem --key KEY.pem] [--auth USER:PASSWORD]
              [--control CONTROL.json]

Listens on 127.0.0.1 (port 0: any free port) and prints "READY <port>" on
stdout once it accepts connections. Every cleartext line a client sends
outside DATA (commands, AUTH continuations) is logged as
{"type": "line", "conn": n, "line": "..."}; every message as
{"type": "message", "n": n, "conn": c, "mail_from", "rcpt_tos", "raw",
"headers", "subject", "parts"}, decoded with Python's email package (an
independent MIME decoder; a text part's "text" is decoded, any other part
has its decoded "size" and "sha256"), logged as soon as its data has
arrived, before any reply. The reply to DATA is logged too, as
{"type": "reply", "n": n, "conn": c, "code": 250|451, "client_gone": bool}
("client_gone": the connection was already closed, so the client never heard
it); a message that gets no reply at all (drop, hang) has no "reply" entry.
--auth requires AUTH (PLAIN or LOGIN) with those credentials; with STARTTLS,
AUTH is refused before TLS (auth_require_tls).

Fault modes come from the control file, re-read for every message (absent:
no faults), e.g. {"fail_first": 2, "reject": ["x@example.org"],
"drop_after_data": 1, "hang_after_data": 1}:
  fail_first N        the first N messages get 451 (counted across the run)
  reject [addr]       RCPT TO these gets 550
  drop_after_data N   the first N messages are logged, then the connection
                      is closed without a reply (the client cannot know)
  hang_after_data N   the first N messages are logged, then no reply, ever
  delay_after_data_ms T  every message is logged, then the reply waits T ms
                      (a slow relay: a client killed in that window never
                      hears the 250 it was about to get)
"""

import argparse
import asyncio
import email
import email.policy
import hashlib
import json
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

ARGS = None
LOG = None
STATE = {"messages": 0, "conns": 0}


def log(obj):
    LOG.write(json.dumps(obj, ensure_ascii=False) + "\n")
    LOG.flush()


def control():
    if not ARGS.control:
        return {}
    try:
        with open(ARGS.control, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def decode(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = []
    for p in msg.walk():
        if p.is_multipart():
            parts.append({"type": p.get_content_type(), "multipart": True})
            continue
        item = {"type": p.get_content_type(), "filename": p.get_filename(), "multipart": False}
        if p.get_content_maintype() == "text":
            item["text"] = p.get_content()
        else:
            data = p.get_payload(decode=True) or b""
            item["size"] = len(data)
            item["sha256"] = hashlib.sha256(data).hexdigest()
        parts.append(item)
    return {
        "headers": [[k, str(v)] for k, v in msg.raw_items()],
        "subject": str(msg["subject"]) if msg["subject"] is not None else None,
        "parts": parts,
    }


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in control().get("reject", []):
            return "550 5.1.1 <%s>: no such mailbox here" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        STATE["messages"] += 1
        n = STATE["messages"]
        entry = {
            "type": "message",
            "n": n,
            "conn": server.conn_no,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "raw": envelope.original_content.decode("utf-8", "replace"),
            "auth": bool(session.authenticated),
            "tls": session.ssl is not None or ARGS.tls == "implicit",
        }
        entry.update(decode(envelope.original_content))
        log(entry)
        c = control()
        if n <= c.get("hang_after_data", 0):
            await asyncio.sleep(3600)
        if n <= c.get("drop_after_data", 0):
            server.transport.close()
            await asyncio.sleep(3600)
        if c.get("delay_after_data_ms", 0) > 0:
            await asyncio.sleep(c["delay_after_data_ms"] / 1000)
        code = 451 if n <= c.get("fail_first", 0) else 250
        gone = server.transport is None or server.transport.is_closing()
        log({"type": "reply", "n": n, "conn": server.conn_no, "code": code, "client_gone": gone})
        if code == 451:
            return "451 4.3.0 try again later (test fault %d)" % n
        return "250 2.0.0 queued as test-%d" % n


def authenticator(server, session, envelope, mechanism, auth_data):
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    user, password = ARGS.auth.split(":", 1)
    ok = auth_data.login == user.encode() and auth_data.password == password.encode()
    return AuthResult(success=ok)


class RecordingSMTP(SMTP):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        STATE["conns"] += 1
        self.conn_no = STATE["conns"]
        self._buf = b""
        self._in_data = False

    def data_received(self, data):
        # Cleartext: before STARTTLS directly, after it through the TLS layer.
        self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("utf-8", "replace")
            if self._in_data:
                if text == ".":
                    self._in_data = False
                continue
            log({"type": "line", "conn": self.conn_no, "line": text})
            if text.upper() == "DATA":
                self._in_data = True
        super().data_received(data)


async def main():
    global ARGS, LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", default="none", choices=["none", "starttls", "implicit"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth")
    ap.add_argument("--control")
    ARGS = ap.parse_args()
    LOG = open(ARGS.log, "a", encoding="utf-8")
    ctx = None
    if ARGS.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
    kw = {}
    if ARGS.auth:
        kw.update(
            authenticator=authenticator,
            auth_required=True,
            # Implicit TLS is TLS from the start; aiosmtpd only knows STARTTLS.
            auth_require_tls=(ARGS.tls == "starttls"),
        )
    loop = asyncio.get_running_loop()

    def factory():
        return RecordingSMTP(
            Handler(),
            tls_context=ctx if ARGS.tls == "starttls" else None,
            require_starttls=(ARGS.tls == "starttls"),
            hostname="smtp.test",
            **kw,
        )

    server = await loop.create_server(
        factory, "127.0.0.1", ARGS.port, ssl=ctx if ARGS.tls == "implicit" else None
    )
    port = server.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
