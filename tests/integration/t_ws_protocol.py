#!/usr/bin/env python3
"""RFC 6455 from the client's side: the opening handshake and its errors,
every frame length form, fragmentation with interleaved control frames,
UTF-8 validation (fail fast, also split across frames), the close
handshake and protocol errors, each checked on the wire."""

import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import wsclient  # noqa: E402
from wsclient import (WS, OP_TEXT, OP_BINARY, OP_CONT, OP_PING, OP_PONG,  # noqa: E402
                      OP_CLOSE)


def upgrade_status(port, **kw):
    """Send one upgrade request; (status, headers)."""
    s = wsclient.raw_connect(port, timeout=T(5))
    req, _ = wsclient.upgrade_request(**kw)
    s.sendall(req)
    try:
        status, headers, _ = wsclient.read_head(s)
    finally:
        s.close()
    return status, headers


def expect_close(t, ws, code, desc):
    """The server must send Close with `code` and then close TCP."""
    try:
        got, _ = ws.recv_close(T(5))
    except (wsclient.Closed, socket.timeout) as e:
        got = "no close frame (%s)" % e
    t.is_(got, code, "%s: Close %s" % (desc, code))
    t.ok(ws.wait_eof(T(6)), "%s: TCP closed after the Close" % desc)
    ws.close()


def handshake_tests(t, w):
    port = w.port
    s = wsclient.raw_connect(port)
    req, key = wsclient.upgrade_request("/ws")
    s.sendall(req)
    status, h, _ = wsclient.read_head(s)
    t.is_(status, 101, "upgrade: 101")
    t.is_(h.get("sec-websocket-accept"), wsclient.accept_key(key), "upgrade: Accept key")
    t.is_(h.get("upgrade", "").lower(), "websocket", "upgrade: Upgrade header")
    t.is_(h.get("connection", "").lower(), "upgrade", "upgrade: Connection header")
    s.close()

    # The request one byte at a time, then a frame pipelined in the
    # same write as the last bytes.
    s = wsclient.raw_connect(port)
    req, key = wsclient.upgrade_request("/echo")
    for b in req[:-1]:
        s.send(bytes([b]))
    s.send(req[-1:] + wsclient.frame(OP_TEXT, "pipelined"))
    status, h, rest = wsclient.read_head(s)
    t.is_(status, 101, "byte-at-a-time upgrade: 101")
    ws = WS(s, rest)
    t.is_(ws.recv_message(T(5)), (OP_TEXT, b"pipelined"),
          "frame pipelined behind the head is echoed")
    ws.close()

    t.is_(upgrade_status(port, path="/nope")[0], 404, "wrong path: 404")
    t.is_(upgrade_status(port, method="POST")[0], 405, "POST: 405")
    st, h = upgrade_status(port, version="8")
    t.is_(st, 426, "version 8: 426")
    t.is_(h.get("sec-websocket-version"), "13", "426 names Sec-WebSocket-Version: 13")
    t.is_(upgrade_status(port, version=None)[0], 426, "no version: 426")
    t.is_(upgrade_status(port, key="c2hvcnQ=")[0], 400, "key not 16 bytes: 400")
    t.is_(upgrade_status(port, key="")[0], 400, "no key: 400")
    t.is_(upgrade_status(port, connection="keep-alive")[0], 400, "no Connection: upgrade: 400")
    t.is_(upgrade_status(port, upgrade=None, connection=None)[0], 426, "plain GET: 426")
    t.is_(upgrade_status(port, connection="keep-alive, UPGRADE", upgrade="WebSocket")[0], 101,
          "token lists are case-insensitive")
    t.is_(upgrade_status(port, http="HTTP/1.0")[0], 400, "HTTP/1.0 upgrade: 400")
    t.is_(upgrade_status(port, extra=["X-Big: " + "a" * 9000])[0], 431, "oversized head: 431")
    t.is_(upgrade_status(port, path="/ws?token=1")[0], 101, "query string ignored for routing")


def frame_tests(t, w):
    ws = WS.connect(w.port, "/echo")
    for n in (0, 1, 125, 126, 65535, 65536, 200000):
        data = os.urandom(n)
        ws.send_frame(OP_BINARY, data)
        t.is_(ws.recv_message(T(10)), (OP_BINARY, data), "binary echo, %d bytes" % n)
    ws.send_text("héllo wörld ✓ 𝄞")
    t.is_(ws.recv_message(), (OP_TEXT, "héllo wörld ✓ 𝄞".encode()), "UTF-8 text echo")
    # A 16-bit and a 64-bit length for a short payload (non-minimal forms).
    ws.send(bytes([0x81, 0x80 | 126]) + struct.pack("!H", 3) + b"\0\0\0\0abc")
    t.is_(ws.recv_message(), (OP_TEXT, b"abc"), "non-minimal 16-bit length accepted")

    # Fragmented with a ping in the middle; the pong carries the payload.
    ws.send_frame(OP_TEXT, "frag-", fin=False)
    ws.send_frame(OP_PING, b"ping-payload")
    ws.send_frame(OP_CONT, "men", fin=False)
    ws.send_frame(OP_CONT, "ted", fin=True)
    fin, op, payload = ws.recv_frame()
    t.is_((op, payload), (OP_PONG, b"ping-payload"), "ping inside a fragmented message: pong")
    t.is_(ws.recv_message(), (OP_TEXT, b"frag-mented"), "fragmented message reassembled")
    # A header split over writes.
    f = wsclient.frame(OP_TEXT, "split" * 40)
    for i in range(len(f)):
        ws.send(f[i:i + 1])
    t.is_(ws.recv_message(), (OP_TEXT, b"split" * 40), "frame sent one byte per write")
    # Many frames in one write: answers coalesced, all in order.
    batch = b"".join(wsclient.frame(OP_TEXT, "m%d" % i) for i in range(200))
    ws.send(batch)
    got = [ws.recv_message()[1] for _ in range(200)]
    t.is_(got, [b"m%d" % i for i in range(200)], "200 pipelined frames echoed in order")
    ws.send_frame(OP_PONG, b"unsolicited")
    ws.send_text("after-pong")
    t.is_(ws.recv_message(), (OP_TEXT, b"after-pong"), "unsolicited pong ignored")
    ws.close()

    bad = [
        ("unmasked frame", wsclient.frame(OP_TEXT, "x", mask=False)),
        ("RSV1 without extension", wsclient.frame(OP_TEXT, "x", rsv=4)),
        ("reserved opcode 3", wsclient.frame(3, "x")),
        ("reserved opcode 0xB", wsclient.frame(0xB, "x")),
        ("ping > 125 bytes", wsclient.frame(OP_PING, b"p" * 126)),
        ("fragmented ping", wsclient.frame(OP_PING, b"p", fin=False)),
        ("continuation without a message", wsclient.frame(OP_CONT, "x")),
        ("text inside a fragmented message",
         wsclient.frame(OP_TEXT, "a", fin=False) + wsclient.frame(OP_TEXT, "b")),
        ("64-bit length with MSB set",
         bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"\0\0\0\0"),
    ]
    for desc, data in bad:
        ws = WS.connect(w.port, "/echo")
        ws.send(data)
        expect_close(t, ws, 1002, desc)


def utf8_tests(t, w):
    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_TEXT, b"\xc3\x28")
    expect_close(t, ws, 1007, "invalid UTF-8 text")

    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_TEXT, b"\xed\xa0\x80")
    expect_close(t, ws, 1007, "UTF-16 surrogate in text")

    # Fail fast: the first fragment ends in F4, the second starts with 90
    # (above U+10FFFF); the message never finishes, the Close must come.
    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_TEXT, b"ok \xf4", fin=False)
    ws.send_frame(OP_CONT, b"\x90\x80", fin=False)
    expect_close(t, ws, 1007, "invalid sequence split across fragments, message unfinished")

    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_TEXT, b"\xe2\x82", fin=True)
    expect_close(t, ws, 1007, "text ending inside a character")

    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_TEXT, b"euro \xe2", fin=False)
    ws.send_frame(OP_CONT, b"\x82", fin=False)
    ws.send_frame(OP_CONT, b"\xac!", fin=True)
    t.is_(ws.recv_message(), (OP_TEXT, "euro €!".encode()),
          "valid character split across three fragments")
    ws.send_frame(OP_BINARY, b"\xff\xfe")
    t.is_(ws.recv_message(), (OP_BINARY, b"\xff\xfe"), "binary is not UTF-8 checked")
    ws.close()


def close_tests(t, w):
    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    code, _ = ws.recv_close()
    t.is_(code, 1000, "client Close 1000 echoed")
    t.ok(ws.wait_eof(T(3)), "server closes TCP after the close handshake")

    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_CLOSE, struct.pack("!H", 4001))
    t.is_(ws.recv_close()[0], 4001, "private code 4001 echoed")
    ws.close()

    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_CLOSE, b"")
    code, payload = ws.recv_close()
    t.ok(code is None and payload == b"", "empty Close answered with an empty Close")
    ws.close()

    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
        ws = WS.connect(w.port, "/echo")
        ws.send_frame(OP_CLOSE, struct.pack("!H", code))
        expect_close(t, ws, 1002, "Close with invalid code %d" % code)

    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_CLOSE, b"\x03")
    expect_close(t, ws, 1002, "1-byte Close payload")

    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff\xfe")
    expect_close(t, ws, 1002, "Close reason not UTF-8")

    # Data after the client's Close is ignored: only the Close comes back.
    ws = WS.connect(w.port, "/echo")
    ws.send(wsclient.frame(OP_CLOSE, struct.pack("!H", 1000)) +
            wsclient.frame(OP_TEXT, "ignored"))
    fin, op, payload = ws.recv_frame()
    t.is_(op, OP_CLOSE, "data after Close: the next frame is the Close answer")
    t.ok(ws.wait_eof(T(3)), "and then TCP closes")

    # ws_path is the request endpoint: a message that is not a request is
    # answered with an error reply and the connection stays open.
    ws = WS.connect(w.port, "/ws")
    ws.send_text("on ws_path")
    op, reply = ws.recv_message()
    t.is_(op, OP_TEXT, "ws_path answers a bad message with a text reply")
    t.like(reply.decode(), r'^\{"status":400,"error":"bad request', "... a 400 error reply")
    ws.send_text("again")
    t.is_(ws.recv_message()[0], OP_TEXT, "and the connection stays open")
    ws.close()


def origin_tests(t):
    w = t.wsgate("origin", workers=1, echo_path="/echo",
                 allowed_origins="https://app.example.com http://localhost:3000")
    w.start()
    t.is_(upgrade_status(w.port, extra=["Origin: https://evil.example"])[0], 403,
          "allowed_origins: other Origin 403")
    t.is_(upgrade_status(w.port)[0], 403, "allowed_origins: no Origin 403")
    t.is_(upgrade_status(w.port, extra=["Origin: http://localhost:3000"])[0], 101,
          "allowed_origins: listed Origin 101")
    w.stop()


def main(t):
    t.need_binary()
    w = t.wsgate(workers=2, echo_path="/echo")
    w.start()
    handshake_tests(t, w)
    frame_tests(t, w)
    utf8_tests(t, w)
    close_tests(t, w)
    t.ok(w.healthz_ok(), "gateway healthy after every protocol error")
    t.is_(len(w.pids("worker")), 2, "no worker died")
    w.stop()
    origin_tests(t)


harness.run(main)
