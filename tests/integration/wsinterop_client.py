"""The client side of t_ws_interop.py: a third-party WebSocket client
(the `websockets` library, Debian's python3-websockets 10.4, run by
/usr/bin/python3) exercises a wsgate echo endpoint and prints what it
observed, one JSON object per line ({"name": ..., ...}; "error" when the
step raised).  It asserts nothing: t_ws_interop.py compares.

    /usr/bin/python3 -I wsinterop_client.py --url ws://127.0.0.1:PORT/echo \
        --max-message-size 1048576 [--timeout-mult 2]

A wss:// URL is used without certificate verification (the test's
certificate is self-signed).

With --check-import it only prints the library's version (exit 1 if it
cannot be imported).
"""

import argparse
import asyncio
import json
import ssl
import sys
import time

try:
    import websockets
    from websockets.exceptions import ConnectionClosed, InvalidState, InvalidStatusCode
except ImportError as e:
    sys.stdout.write(json.dumps({"name": "import", "error": repr(e),
                                 "python": sys.executable}) + "\n")
    sys.exit(1)

# Message sizes around every payload length form (7-bit, 16-bit, 64-bit)
# up to 1 MiB.
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20]

OPTS = None


def emit(**kw):
    sys.stdout.write(json.dumps(kw, sort_keys=True) + "\n")
    sys.stdout.flush()


def T(s):
    return s * OPTS.timeout_mult


def text_of(n):
    """n bytes of ASCII text (n characters)."""
    pat = "The quick brown fox jumps over the lazy dog 0123456789. "
    return (pat * (n // len(pat) + 1))[:n]


def binary_of(n):
    """n bytes covering every byte value, including invalid UTF-8."""
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))


def describe(got, sent):
    """What came back compared to what was sent."""
    return {"type": type(got).__name__,
            "len": len(got.encode() if isinstance(got, str) else got),
            "equal": got == sent}


def connect(path=None, **kw):
    url = OPTS.url if path is None else OPTS.url.rsplit("/", 1)[0] + path
    ctx = None
    if url.startswith("wss:"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    args = dict(ssl=ctx, max_size=None, ping_interval=None,
                open_timeout=T(10), close_timeout=T(5))
    args.update(kw)
    return websockets.connect(url, **args)


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), T(10))


async def s_handshake():
    async with connect() as ws:
        sslobj = ws.transport.get_extra_info("ssl_object")
        emit(name="handshake",
             tls=sslobj.version() if sslobj is not None else None,
             # The client offers permessage-deflate; wsgate must decline.
             extensions=[type(e).__name__ for e in ws.extensions],
             subprotocol=ws.subprotocol,
             upgrade=ws.response_headers.get("Upgrade", "").lower())


async def s_wrong_path():
    try:
        async with connect("/no-such-path"):
            emit(name="wrong_path", status="connected")
    except InvalidStatusCode as e:
        emit(name="wrong_path", status=e.status_code)


async def s_echo():
    # A failed message is reported and the next one gets a new connection,
    # so one failure does not hide the results of the others.
    ws = await connect()
    try:
        for kind in ("text", "binary"):
            for n in SIZES:
                msg = text_of(n) if kind == "text" else binary_of(n)
                name = "echo %s %d" % (kind, n)
                t0 = time.monotonic()
                try:
                    await ws.send(msg)
                    got = await recv(ws)
                except Exception as e:      # noqa: BLE001
                    emit(name=name, error=repr(e))
                    await ws.close()
                    ws = await connect()
                    continue
                emit(name=name, secs=round(time.monotonic() - t0, 3),
                     **describe(got, msg))
        # Multi-byte UTF-8 (2, 3 and 4-byte sequences) across a long
        # message, so that sequences straddle every read boundary.
        msg = "h\u00e9llo \u20ac \U0001d11e \u4e16\u754c " * 9000
        await ws.send(msg)
        emit(name="echo text utf8", **describe(await recv(ws), msg))
    finally:
        await ws.close()


async def s_burst():
    """Many messages in flight at once, answers in order."""
    async with connect() as ws:
        msgs = ["burst %d" % i if i % 2 else binary_of(i) for i in range(300)]
        for m in msgs:
            await ws.send(m)
        got = [await recv(ws) for _ in msgs]
        emit(name="burst", count=len(got), equal=got == msgs)


async def s_fragmented():
    async with connect() as ws:
        cases = {
            "text 3": ["frag", "men", "ted"],
            "text empty fragments": ["", "a", "", "b", ""],
            "text utf8": ["\u00e9t\u00e9 ", "\u20ac\u20ac", " \U0001d11e"],
            "binary 3": [b"\x00\x01", b"\xff\xfe", b"\x80"],
            "binary 1000 small": [binary_of(100)] * 1000,
            "binary 4x256k": [binary_of(256 * 1024)] * 4,
            "text 2x64k": [text_of(65536), text_of(65536)],
        }
        for label, frags in cases.items():
            await ws.send(frags)
            whole = "".join(frags) if isinstance(frags[0], str) else b"".join(frags)
            emit(name="fragmented " + label, fragments=len(frags),
                 **describe(await recv(ws), whole))

        # Control frames between the fragments of one message: a ping
        # after each fragment, its pong awaited before the next one.
        pongs = []

        async def frags_with_pings():
            for i in range(3):
                yield "part%d " % i
                waiter = await ws.ping(b"mid-%d" % i)
                await asyncio.wait_for(waiter, T(5))
                pongs.append(i)
        await ws.send(frags_with_pings())
        emit(name="fragmented with pings", pongs=len(pongs),
             **describe(await recv(ws), "part0 part1 part2 "))


async def s_ping():
    async with connect() as ws:
        # The library resolves a waiter only for a pong carrying its ping's
        # exact payload: a resolved waiter proves the payload came back.
        for label, data in (("empty", b""), ("text", "hello"),
                            ("binary", bytes(range(0, 250, 2))),
                            ("125 bytes", b"\xff" * 125)):
            try:
                waiter = await ws.ping(data)
                latency = await asyncio.wait_for(waiter, T(5))
                emit(name="ping " + label, pong=True, latency=round(latency, 4))
            except asyncio.TimeoutError:
                emit(name="ping " + label, pong=False)
        # Pings between messages do not disturb the echo.
        await ws.send("before")
        waiter = await ws.ping(b"between")
        await ws.send("after")
        got = [await recv(ws), await recv(ws)]
        await asyncio.wait_for(waiter, T(5))
        emit(name="ping between messages", pong=True, messages=got)


async def s_close():
    for code, reason in ((1000, ""), (1001, "going away"), (3000, "x"),
                         (4000, "bye"), (4999, "r" * 120)):
        async with connect() as ws:
            await ws.send("x")
            await recv(ws)
            t0 = time.monotonic()
            await ws.close(code, reason)
            emit(name="close %d" % code, close_code=ws.close_code,
                 close_reason=ws.close_reason,
                 secs=round(time.monotonic() - t0, 3))


async def close_seen(ws, send):
    """Send, then read until the server closes; (code, reason, error)."""
    err = None
    try:
        await send()
        while True:
            await recv(ws)
    except (ConnectionClosed, InvalidState):
        # InvalidState: a write raced with the end of the connection.
        pass
    except Exception as e:      # noqa: BLE001
        err = repr(e)
    await asyncio.wait_for(ws.wait_closed(), T(10))
    return ws.close_code, ws.close_reason, err


async def s_too_big():
    limit = OPTS.max_message_size
    async with connect() as ws:
        code, reason, err = await close_seen(ws, lambda: ws.send("y" * (limit + 1)))
        emit(name="too big text", close_code=code, close_reason=reason, error=err)
    async with connect() as ws:
        code, reason, err = await close_seen(ws, lambda: ws.send(b"\x01" * (limit + 1)))
        emit(name="too big binary", close_code=code, close_reason=reason, error=err)
    async with connect() as ws:
        half = b"z" * (limit // 2 + 1)
        code, reason, err = await close_seen(ws, lambda: ws.send([half, half]))
        emit(name="too big fragmented", close_code=code, close_reason=reason, error=err)
    # A client that keeps sending long after the limit: the Close must
    # still reach it (the server lingers instead of resetting).
    async with connect() as ws:
        code, reason, err = await close_seen(ws, lambda: ws.send(b"w" * (8 * limit)))
        emit(name="too big 8x", close_code=code, close_reason=reason, error=err)
    async with connect() as ws:
        sent = [0]

        async def stream():
            # 64 KiB fragments until the server's Close stops the library
            # (at most 64 x the limit).
            while sent[0] < 64 * limit and ws.open:
                sent[0] += 65536
                yield b"v" * 65536
        code, reason, err = await close_seen(ws, lambda: ws.send(stream()))
        emit(name="too big stream", close_code=code, close_reason=reason, error=err,
             sent=sent[0])


async def s_concurrent():
    async def one(i):
        async with connect() as ws:
            ok = True
            for j in range(20):
                m = "c%d-%d" % (i, j)
                await ws.send(m)
                ok = ok and await recv(ws) == m
            return ok
    res = await asyncio.gather(*(one(i) for i in range(20)))
    emit(name="concurrent", connections=len(res), all_equal=all(res))


SCENARIOS = [s_handshake, s_wrong_path, s_echo, s_burst, s_fragmented,
             s_ping, s_close, s_too_big, s_concurrent]


async def main():
    for s in SCENARIOS:
        name = s.__name__[2:]
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(s(), T(30))
        except Exception as e:      # noqa: BLE001
            emit(name="scenario " + name, error=repr(e))
        emit(name="done " + name, secs=round(time.monotonic() - t0, 3))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--max-message-size", type=int, default=1 << 20)
    ap.add_argument("--timeout-mult", type=float, default=1.0)
    ap.add_argument("--check-import", action="store_true")
    OPTS = ap.parse_args()
    if OPTS.check_import:
        emit(name="import", version=websockets.__version__, python=sys.executable)
        sys.exit(0)
    asyncio.run(main())
