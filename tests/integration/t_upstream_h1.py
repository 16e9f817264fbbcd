#!/usr/bin/env python3
"""The built-in HTTP/1.1 upstream client (worker/upstream_h1.c,
wsgate.conf(5) upstream_client), against a real HTTP server on a loopback
port written here so that each behaviour can be produced on purpose:

- keep-alive: many requests, few connections; upstream_max_connections is
  a hard bound and requests beyond it wait their turn, none refused;
- the request on the wire: POST, Host, Content-Type, X-Request-Id,
  Content-Length, the exact body, also one far larger than a socket buffer;
- responses framed by Content-Length, chunked (with trailers) and by the
  close of the connection, relayed byte for byte;
- a kept-alive connection the server drops as the next request arrives:
  that request is sent again on a new connection and answered 200;
- ambiguous framing (Content-Length with Transfer-Encoding), a response
  that never comes (504, the connection is not reused), a server that
  closes before answering a first request (502);
- a host name (localhost, resolved in the background) and
  upstream_client curl on the same server;
- an answer sent before a 4 MiB request body is read, the upload then
  stalled: both clients deliver it at once and open a new connection for
  the next request.
"""

import contextlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
from t_pipeline import Client, rcall, expect_ok, expect_error, no_worker_died  # noqa: E402

CONFIG = '{"k":"v"}'


class RawUpstream:
    """A threaded HTTP/1.1 server on 127.0.0.1.  The path picks the answer.
    Records every request (connection number, method, target, headers,
    body) and the connections' life."""

    def __init__(self, t):
        self.lock = threading.Lock()
        self.requests = []
        self.conns = 0
        self.open = 0
        self.max_open = 0
        self.dropped = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def url(self, path, host="127.0.0.1"):
        return "http://%s:%d%s" % (host, self.port, path)

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
                self.open += 1
                self.max_open = max(self.max_open, self.open)
            threading.Thread(target=self.serve, args=(c, n), daemon=True).start()

    def read_request(self, c, buf):
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None, b""
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        if target.startswith("/early"):
            return (method, target, headers, b""), b""   # body left unread
        while len(rest) < n:
            d = c.recv(1 << 20)
            if not d:
                return None, b""
            rest += d
        return (method, target, headers, rest[:n]), rest[n:]

    def serve(self, c, n):
        buf = b""
        served = 0
        try:
            while True:
                req, buf = self.read_request(c, buf)
                if req is None:
                    return
                method, target, headers, body = req
                with self.lock:
                    self.requests.append({"conn": n, "method": method,
                                          "target": target,
                                          "headers": headers, "body": body})
                served += 1
                if target.startswith("/dropsecond") and served == 2:
                    # Keep-alive race: close as the next request arrives.
                    with self.lock:
                        self.dropped += 1
                    return
                if not self.answer(c, target, body):
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self.open -= 1
            c.close()

    def answer(self, c, target, body):
        """Send the answer; False to close the connection afterwards."""
        if target.startswith("/slow"):
            time.sleep(0.3)
        if target.startswith("/chunked"):
            half = len(body) // 2
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                      b"%x;ext=1\r\n%s\r\n" % (half, body[:half]) +
                      b"%X\r\n%s\r\n" % (len(body) - half, body[half:]) +
                      b"0\r\nX-Trailer: t\r\n\r\n")
            return True
        if target.startswith("/close"):
            c.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n\r\n" +
                      body)
            return False
        if target.startswith("/ambiguous"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
            return True
        if target.startswith("/hang"):
            time.sleep(T(4))
            return False
        if target.startswith("/nothing"):
            return False
        if target.startswith("/early"):
            # Answer without reading the body, then stop reading: the
            # client must keep the answer (RFC 9112 9.3.2, RFC 9113 8.1).
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n"
                      b"Content-Type: application/json\r\n\r\n{\"ok\":true}")
            time.sleep(EARLY_HOLD)
            return False
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                  b"Content-Type: application/json\r\n\r\n%s" % (len(body), body))
        return True

    def snapshot(self):
        with self.lock:
            return (list(self.requests), self.conns, self.max_open, self.dropped)

    def reset(self):
        with self.lock:
            self.requests = []
            self.conns = 0
            self.max_open = self.open
            self.dropped = 0


EARLY_HOLD = T(4)      # how long /early keeps a connection, unread


def early(t, r, up):
    """An answer sent before the request body is read, the upload then
    stalled: each client delivers it at once, not when the server gives
    up the connection, and the next request gets a new one."""
    big = '"%s"' % ("x" * (4 << 20))
    for client in ("auto", "curl"):
        with session(t, r, up, "/early", "early-" + client, upstream_client=client,
                     max_message_size="8m") as (w, c):
            t0 = time.monotonic()
            rep = c.call(msg("e1", big), timeout=T(10))
            dt = time.monotonic() - t0
            t.is_(rep.obj and (rep.obj.get("status"), rep.obj.get("body")),
                  (200, '{"ok":true}'),
                  "upstream_client %s: answer before a 4 MiB body was read: kept" % client,
                  lambda: repr(rep))
            t.ok(dt < EARLY_HOLD - 1, "... at once (%.2fs), not when the server "
                 "closed (%.0fs)" % (dt, EARLY_HOLD))
            rep = c.call(msg("e2", "2"), timeout=T(10))
            t.is_(rep.obj and rep.obj.get("status"), 200,
                  "upstream_client %s: the next request answered" % client,
                  lambda: repr(rep))


def gateway(t, r, up, path, name, host="127.0.0.1", **conf):
    conf.setdefault("workers", 1)
    w = t.wsgate(name, redis_port=r.port, upstream_url=up.url(path, host),
                 **conf)
    w.start()
    return w


@contextlib.contextmanager
def session(t, r, up, path, name, **conf):
    """A fresh count at the server, a gateway for `path` and a client on
    it; both closed afterwards."""
    up.reset()
    w = gateway(t, r, up, path, name, **conf)
    c = Client(w.port)
    try:
        yield w, c
    finally:
        c.close()
        w.stop()


def body_of(payload):
    return '{"payload":%s,"config":%s}' % (payload, CONFIG)


def msg(i, payload):
    return '{"id":"%s","user-id":"u1","payload":%s}' % (i, payload)


def burst(w, nconns, per, tag):
    """`per` requests on each of `nconns` new connections, all sent before
    any reply is read: (replies with status 200, seconds taken, the other
    replies)."""
    cs = [Client(w.port) for _ in range(nconns)]
    t0 = time.monotonic()
    for k, cl in enumerate(cs):
        for j in range(per):
            cl.send(msg("%s%d-%d" % (tag, k, j), "%d" % j))
    got, bad = 0, []
    for cl in cs:
        for _ in range(per):
            rep = cl.recv(T(10))
            if rep.obj is not None and rep.obj.get("status") == 200:
                got += 1
            else:
                bad.append(rep)
    dt = time.monotonic() - t0
    for cl in cs:
        cl.close()
    return got, dt, bad


def keepalive(t, r, up):
    w = gateway(t, r, up, "/ka?x=1", "keepalive", upstream_max_connections=4)
    c = Client(w.port)
    ok = 0
    for i in range(50):
        rep = c.call(msg("s%d" % i, '{"n":%d}' % i))
        ok += rep.obj is not None and rep.obj.get("status") == 200 and \
            rep.obj.get("body") == body_of('{"n":%d}' % i)
    t.is_(ok, 50, "50 requests one after the other: all answered with their body")
    reqs, conns, _, _ = up.snapshot()
    t.is_(conns, 1, "... over one kept-alive connection")
    first = reqs[0]
    t.is_(first["method"], "POST", "request method POST")
    t.is_(first["target"], "/ka?x=1", "request-target: path and query of upstream_url")
    h = first["headers"]
    t.is_(h.get("host"), "127.0.0.1:%d" % up.port, "Host header with the port")
    t.is_(h.get("content-type"), "application/json", "Content-Type: application/json")
    t.ok(len(h.get("x-request-id", "")) > 0, "X-Request-Id sent", lambda: repr(h))
    t.is_(len({q["headers"].get("x-request-id") for q in reqs}), 50,
          "X-Request-Id differs for each request")
    t.is_(int(h.get("content-length", -1)), len(first["body"]),
          "Content-Length is the body's length")
    t.is_(first["body"].decode(), body_of('{"n":0}'), "body exactly {payload, config}")

    # A body larger than any socket buffer: partial writes.
    up.reset()
    big = '"' + "x" * (900 * 1024) + '"'
    rep = c.call(msg("big", big), timeout=T(10))
    expect_ok(t, rep, body_of(big), "900 KiB payload through the upstream", rid="big")
    c.close()

    # upstream_max_connections 4 is a bound: 16 slow requests at once.
    up.reset()
    got, _, bad = burst(w, 4, 4, "m")
    _, conns, max_open, _ = up.snapshot()
    t.is_(got, 16, "16 requests over upstream_max_connections 4: all 200",
          lambda: repr(bad[:5]))
    t.ok(max_open <= 4, "at most 4 connections open at once (%d)" % max_open)
    w.stop()


def slow_bound(t, r, up):
    w = gateway(t, r, up, "/slow", "bound", upstream_max_connections=2)
    up.reset()
    got, dt, bad = burst(w, 3, 2, "b")
    _, conns, max_open, _ = up.snapshot()
    t.is_(got, 6, "6 slow (0.3 s) requests, upstream_max_connections 2: all 200",
          lambda: repr(bad[:5]))
    t.ok(max_open <= 2, "never more than 2 connections open at once (%d)" % max_open)
    t.ok(dt >= 0.85, "they waited their turn: 3 rounds of 0.3 s (%.2fs)" % dt)
    t.ok(conns <= 2, "connections reused, not reopened (%d opened)" % conns)
    w.stop()


def framings(t, r, up):
    with session(t, r, up, "/chunked", "chunked") as (w, c):
        for i in range(3):
            p = '{"chunk":%d,"pad":"%s"}' % (i, "c" * (i * 5000))
            expect_ok(t, c.call(msg("c%d" % i, p)), body_of(p),
                      "chunked response with extensions and trailers (%d)" % i,
                      rid="c%d" % i)
        _, conns, _, _ = up.snapshot()
        t.is_(conns, 1, "chunked responses keep the connection")

    with session(t, r, up, "/close", "close") as (w, c):
        for i in range(3):
            p = '{"close":%d}' % i
            expect_ok(t, c.call(msg("z%d" % i, p)), body_of(p),
                      "response delimited by the close (%d)" % i, rid="z%d" % i,
                      status=201)
        _, conns, _, _ = up.snapshot()
        t.is_(conns, 3, "a new connection for each close-delimited response")


def drops(t, r, up):
    with session(t, r, up, "/dropsecond", "drop") as (w, c):
        ok = 0
        for i in range(6):
            rep = c.call(msg("d%d" % i, "%d" % i))
            ok += rep.obj is not None and rep.obj.get("status") == 200 and \
                rep.obj.get("body") == body_of("%d" % i)
        _, conns, _, dropped = up.snapshot()
        t.is_(ok, 6, "server drops each kept-alive connection at its 2nd request: "
              "all 6 answered 200 (sent again on a new connection)")
        t.ok(dropped >= 2, "the server did drop requests (%d)" % dropped)


def failures(t, r, up):
    with session(t, r, up, "/ambiguous", "ambiguous") as (w, c):
        expect_error(t, c.call(msg("a1", "1")), 502, "upstream error: bad HTTP response",
                     "Content-Length with Transfer-Encoding: 502", rid="a1")
        expect_error(t, c.call(msg("a2", "2")), 502, "upstream error",
                     "... again (a new connection)", rid="a2")
        _, conns, _, _ = up.snapshot()
        t.is_(conns, 2, "the connection with the bad response was not reused")

    with session(t, r, up, "/nothing", "nothing") as (w, c):
        expect_error(t, c.call(msg("n1", "1")), 502,
                     "upstream error: connection closed before the response",
                     "server closes without answering a first request: 502", rid="n1")
        reqs, _, _, _ = up.snapshot()
        t.is_(len(reqs), 1, "... not sent twice (the connection was new)")

    with session(t, r, up, "/hang", "hang", upstream_timeout="1s") as (w, c):
        t0 = time.monotonic()
        expect_error(t, c.call(msg("h1", "1"), timeout=T(5)), 504, "upstream timeout",
                     "no answer within upstream_timeout 1s: 504", rid="h1")
        dt = time.monotonic() - t0
        t.ok(0.9 <= dt <= 2.0, "504 after about 1 s (%.2fs)" % dt)


def names_and_curl(t, r, up):
    with session(t, r, up, "/ka", "localhost", host="localhost") as (w, c):
        for i in range(3):
            expect_ok(t, c.call(msg("l%d" % i, "%d" % i)), body_of("%d" % i),
                      "upstream_url with host name localhost (%d)" % i, rid="l%d" % i)
        reqs, _, _, _ = up.snapshot()
        t.ok(bool(reqs) and reqs[0]["headers"].get("host") == "localhost:%d" % up.port,
             "Host header is the URL's host name and port",
             lambda: repr(reqs[0]["headers"] if reqs else None))

    # A name that cannot resolve (.invalid, RFC 6761): 502 once the
    # background lookup fails (at once with a resolver that answers, after
    # its timeouts without one), the lookup retried, the worker unharmed.
    w = t.wsgate("unresolvable", workers=1, redis_port=r.port,
                 upstream_url="http://wsgate-test.invalid:8080/x",
                 upstream_timeout="60s")
    w.start()
    c = Client(w.port)
    for i in range(2):
        expect_error(t, c.call(msg("u%d" % i, "%d" % i), timeout=T(45)), 502,
                     "upstream error: cannot resolve wsgate-test.invalid",
                     "host name that does not resolve: 502 (%d)" % i, rid="u%d" % i)
    c.close()
    w.stop()

    with session(t, r, up, "/chunked", "curl", upstream_client="curl") as (w, c):
        expect_ok(t, c.call(msg("k1", '{"via":"curl"}')), body_of('{"via":"curl"}'),
                  "upstream_client curl: same answer through libcurl", rid="k1")


def main(t):
    t.need_binary()
    r = t.start_redis()
    rcall(r, "SET", "cfg:u1", CONFIG)
    up = RawUpstream(t)
    try:
        for name, fn in [("keep-alive", keepalive), ("bound", slow_bound),
                         ("framings", framings), ("drops", drops),
                         ("failures", failures),
                         ("names and curl", names_and_curl),
                         ("early answers", early)]:
            t0 = time.monotonic()
            fn(t, r, up)
            t.note("phase %s: %.1fs" % (name, time.monotonic() - t0))
    finally:
        up.stop()
    no_worker_died(t)


if __name__ == "__main__":
    harness.run(main, watchdog=180)
