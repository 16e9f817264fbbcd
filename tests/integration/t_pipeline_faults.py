#!/usr/bin/env python3
"""The request pipeline when things go wrong (PROTOCOL.md section 4):
Redis paused (504 config store timeout) and stopped (503 config store
unavailable, fast) mid-test, then restarted on the same port (recovery
without a worker restart); upstream timeout, connection refused, error
statuses relayed, a 2 MiB body, a body that is not UTF-8 or holds control
characters; no head-of-line blocking behind a slow upstream; 100 requests
in flight on one connection; max_inflight_per_connection (429); clients
that leave while their requests are in flight.

Helpers (Redis RESP, the reply checks, the client) come from
t_pipeline.py."""

import json
import math
import os
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import wsclient  # noqa: E402
from wsclient import OP_TEXT, OP_CLOSE  # noqa: E402
import t_pipeline as tp  # noqa: E402
from t_pipeline import (Client, NOID, DIED, rcall, echo_body, expect_ok,  # noqa: E402
                        expect_error, upstream_stats)

INVALID_UTF8 = b'{"text": "\xff\xfe invalid \xc3\x28 utf-8 \xed\xa0\x80"}'


def batch_frames(msgs):
    return b"".join(wsclient.frame(OP_TEXT, m) for m in msgs)


def recv_all(c, n, timeout):
    """Up to n replies within timeout: {id: Reply}, plus a list of the
    replies that were not objects with an id."""
    deadline = time.monotonic() + timeout
    got, odd = {}, []
    while len(got) + len(odd) < n:
        rep = c.recv(max(0.01, deadline - time.monotonic()))
        if rep.obj is None or "id" not in rep.obj:
            odd.append(rep)
            if rep.obj is None and rep.err and rep.err.startswith("no reply"):
                break
            continue
        rep.dt = time.monotonic()
        got.setdefault(rep.obj["id"], rep)
    return got, odd


def p99(samples):
    s = sorted(samples)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)] if s else None


def wait_stats(u, want, timeout):
    """Wait until the upstream has counted at least `want` requests."""
    return harness.wait_for(lambda: (upstream_stats(u) or 0) >= want, timeout)


def worker_died(w):
    return w.grep_log(DIED)


# ---- Redis ----

def redis_faults(t, u):
    r = t.start_redis()
    w = t.wsgate("redisfault", workers=2, redis_port=r.port, upstream_url=u.url,
                 redis_timeout="1s")
    w.start()
    workers0 = sorted(w.pids("worker"))
    cfgs = {"r1": '{"r":1}', "r2": '{"r":2}', "r3": '{"r":3}'}

    def load(rr):
        for k, v in cfgs.items():
            rcall(rr, "SET", "cfg:" + k, v)
    load(r)
    clients = [Client(w.port) for _ in range(4)]
    for n, c in enumerate(clients):
        rep = c.call('{"id":%d,"user-id":"r1"}' % n)
        expect_ok(t, rep, echo_body("null", cfgs["r1"]), "Redis up: connection %d served" % n,
                  rid=n)

    def all_right(tag):
        """Every connection, 3 users interleaved in one write: each reply
        carries its own user's config (no reply matched to the wrong GET)."""
        good = True
        for n, c in enumerate(clients):
            users = ["r1", "r2", "r3"] * 3
            c.ws.send(batch_frames('{"id":"%s-%d","user-id":"%s","payload":%d}' % (tag, i, uid, i)
                                   for i, uid in enumerate(users)))
            got, odd = recv_all(c, len(users), T(10))
            for i, uid in enumerate(users):
                rep = got.get("%s-%d" % (tag, i))
                body = rep.obj.get("body") if rep else None
                if body != echo_body(str(i), cfgs[uid]):
                    good = False
                    t.diag("%s conn %d request %d (%s): %r" % (tag, n, i, uid, rep))
            if odd:
                good = False
                t.diag("%s conn %d: odd replies %r" % (tag, n, odd))
        return good

    # -- Redis not answering: SIGSTOP --
    os.kill(r.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        clients[0].send('{"id":"stop-0","user-id":"r1"}')
        clients[1].send('{"id":"stop-1","user-id":"r2"}')
        clients[3].ws.send(batch_frames('{"id":"co-%d","user-id":"r3"}' % i for i in range(5)))
        # A client leaving while its GET is pending.
        gone = Client(w.port)
        gone.send('{"id":"gone","user-id":"r1"}')
        gone.close()
        for n, rid in ((0, "stop-0"), (1, "stop-1")):
            rep = clients[n].recv(T(5))
            dt = time.monotonic() - t0
            expect_error(t, rep, 504, "config store timeout",
                         "Redis stopped (SIGSTOP), connection %d" % n, rid=rid)
            t.ok(0.85 <= dt <= 1.0 + T(0.8),
                 "504 after about redis_timeout 1s (%.2fs)" % dt)
        got, odd = recv_all(clients[3], 5, T(5))
        t.ok(len(got) == 5 and not odd and all(
            rp.obj.get("status") == 504 and str(rp.obj.get("error", "")).startswith(
                "config store timeout") for rp in got.values()),
            "5 coalesced requests for one user: all 504 config store timeout",
            lambda: repr((got, odd)))
        # Still paused: a new request times out again (not stuck forever).
        rep = clients[2].call('{"id":"again","user-id":"r2"}', T(5))
        expect_error(t, rep, 504, "config store timeout", "second timeout while still paused",
                     rid="again")
    finally:
        os.kill(r.proc.pid, signal.SIGCONT)
    time.sleep(0.3)
    t.ok(all_right("cont1"), "after SIGCONT: every connection gets the right configs")
    t.ok(all_right("cont2"), "after SIGCONT: again, right configs")

    # -- Redis down: stopped --
    r.stop()
    time.sleep(0.3)
    t_down = time.monotonic()
    worst = 0.0
    for k in range(3):
        for n, c in enumerate(clients):
            rep = c.call('{"id":"down-%d-%d","user-id":"r1"}' % (k, n), T(5))
            worst = max(worst, rep.dt)
            expect_error(t, rep, 503, "config store unavailable",
                         "Redis down, round %d, connection %d" % (k, n),
                         rid="down-%d-%d" % (k, n))
        time.sleep(0.3)
    t.ok(worst < 0.5, "Redis down: 503 fast, well under redis_timeout (worst %.3fs)" % worst)
    clients[0].ws.send(batch_frames('{"id":"dn-%d","user-id":"r%d"}' % (i, 1 + i % 3)
                                    for i in range(10)))
    t0 = time.monotonic()
    got, odd = recv_all(clients[0], 10, T(5))
    dt = time.monotonic() - t0
    t.ok(len(got) == 10 and not odd and all(rp.obj.get("status") == 503 for rp in got.values()),
         "Redis down: 10 requests in one write, 10 x 503", lambda: repr((got, odd)))
    t.ok(dt < 0.5, "... within %.3fs" % dt)
    while time.monotonic() - t_down < 2.0:
        time.sleep(0.1)

    # -- Redis back on the same port --
    r = t.start_redis(port=r.port)
    load(r)
    t_up = time.monotonic()
    recovered = {}
    deadline = t_up + T(10)
    while len(recovered) < len(clients) and time.monotonic() < deadline:
        for n, c in enumerate(clients):
            if n in recovered:
                continue
            rep = c.call('{"id":"up","user-id":"r2"}', T(5))
            if rep.obj is not None and rep.obj.get("status") == 200:
                recovered[n] = time.monotonic() - t_up
                expect_ok(t, rep, echo_body("null", cfgs["r2"]),
                          "after the restart: connection %d served again" % n, rid="up")
            elif rep.obj is None or rep.obj.get("status") != 503:
                t.diag("during recovery, connection %d: %r" % (n, rep))
        time.sleep(0.1)
    t.is_(sorted(recovered), list(range(len(clients))),
          "every connection recovers without a wsgate restart")
    slowest = max(recovered.values()) if recovered else None
    t.ok(slowest is not None and slowest <= 6.0,
         "recovered within 6 s of Redis restarting (backoff up to 5 s): %s"
         % (None if slowest is None else "%.2fs" % slowest))
    t.note("recovery times after Redis restarted: %s" %
           ", ".join("%.2fs" % v for _, v in sorted(recovered.items())))
    t.ok(all_right("back"), "after the restart: every connection gets the right configs")

    # -- an error reply to every GET of a user (a key that is not a string) --
    rcall(r, "RPUSH", "cfg:wt", "x")
    c = clients[0]
    for i in range(20):
        rep = c.call('{"id":"wt-%d","user-id":"wt"}' % i, T(5))
        if (rep.obj or {}).get("status") != 503:
            break
    expect_error(t, rep, 503, "config store unavailable",
                 "WRONGTYPE for each of 20 GETs: 503 each", rid="wt-19")
    lines = w.grep_log(r"worker\[\d+\] warn: Redis GET failed: WRONGTYPE .* unlogged=0$")
    t.is_(len(lines), 1, "... logged once, not per request (a line every 10 s at most)",
          lambda: "\n".join(m.string for m in w.grep_log(r"GET failed")))
    t.is_(sorted(w.pids("worker")), workers0, "same worker processes throughout")
    t.ok(not worker_died(w), "no worker died", lambda: repr(worker_died(w)))
    for c in clients:
        c.close()
    w.stop()


# ---- upstream ----

def upstream_faults(t, r, u):
    rcall(r, "SET", "cfg:up", '{"up":1}')

    def instance(name, url, **kw):
        w = t.wsgate(name, workers=1, redis_port=r.port, upstream_url=url, **kw)
        w.start()
        return w

    # Timeout.
    w = instance("uptimeout", "http://127.0.0.1:%d/slow/3" % u.port, upstream_timeout="1s")
    c = Client(w.port)
    t0 = time.monotonic()
    c.ws.send(batch_frames(['{"id":"to-1","user-id":"up"}', '{"id":"to-2","user-id":"up"}']))
    got, odd = recv_all(c, 2, T(5))
    dt = time.monotonic() - t0
    for rid in ("to-1", "to-2"):
        rep = got.get(rid) or tp.Reply(err="no reply %r" % odd)
        expect_error(t, rep, 504, "upstream timeout", "upstream slower than upstream_timeout",
                     rid=rid)
    t.ok(0.9 <= dt <= 1.0 + T(1.0), "504 after about upstream_timeout 1s (%.2fs)" % dt)
    rep = c.call('{"id":"to-3","user-id":"up"}', T(5))
    expect_error(t, rep, 504, "upstream timeout", "and again", rid="to-3")
    c.close()
    w.stop()

    # Connection refused.
    w = instance("uprefused", "http://127.0.0.1:%d/echo" % harness.free_port())
    c = Client(w.port)
    for i in range(3):
        rep = c.call('{"id":%d,"user-id":"up"}' % i, T(5))
        expect_error(t, rep, 502, "upstream error", "upstream refuses connections (%d)" % i, rid=i)
        t.ok(rep.dt is not None and rep.dt < T(1), "502 at once (%.3fs)" % (rep.dt or -1))
    if rep.obj:
        t.note("refused error text: %r" % rep.obj.get("error"))
    rep = c.call('{"user-id":"up"}', T(5))
    expect_error(t, rep, 502, "upstream error", "no id: 502 without an id", rid=NOID)
    c.close()
    w.stop()

    # Statuses relayed with their bodies.
    for st in (500, 404, 302, 503):
        w = instance("status%d" % st, "http://127.0.0.1:%d/status/%d" % (u.port, st))
        c = Client(w.port)
        rep = c.call('{"id":"st","user-id":"up","payload":1}', T(5))
        expect_ok(t, rep, json.dumps({"status": st}), "upstream status %d relayed with its body"
                  % st, rid="st", status=st)
        c.close()
        w.stop()

    # 2 MiB body, twice at once (max_message_size limits what clients
    # send, not replies); then a client that leaves without reading.
    n = 2 * 1024 * 1024
    pattern = (b"abcdefghijklmnopqrstuvwxyz" * (n // 26 + 1))[:n].decode()
    w = instance("upbig", "http://127.0.0.1:%d/bytes/%d" % (u.port, n), max_output_buffer="16m",
                 max_message_size="64k")
    c = Client(w.port)
    t0 = time.monotonic()
    c.ws.send(batch_frames(['{"id":"big-1","user-id":"up"}', '{"id":"big-2","user-id":"up"}']))
    got, odd = recv_all(c, 2, T(20))
    for rid in ("big-1", "big-2"):
        rep = got.get(rid) or tp.Reply(err="no reply %r" % odd)
        expect_ok(t, rep, lambda b: b == pattern, "2 MiB upstream body relayed intact", rid=rid)
    t.note("two 2 MiB replies in %.2fs" % (time.monotonic() - t0))
    c.close()
    before = upstream_stats(u)
    lazy = Client(w.port)
    lazy.ws.send(batch_frames('{"id":%d,"user-id":"up"}' % i for i in range(3)))
    wait_stats(u, before + 3, T(5))
    time.sleep(0.2)
    lazy.close()
    time.sleep(0.5)
    c = Client(w.port)
    rep = c.call('{"id":"after","user-id":"up"}', T(20))
    expect_ok(t, rep, lambda b: b == pattern, "served after a client left three 2 MiB replies "
              "unread", rid="after")
    t.ok(not worker_died(w), "no worker died", lambda: repr(worker_died(w)))
    c.close()
    w.stop()

    # Not UTF-8: the reply is still valid UTF-8 JSON, bad bytes -> U+FFFD.
    w = instance("upinvalid", "http://127.0.0.1:%d/invalid-utf8" % u.port)
    c = Client(w.port)
    rep = c.call('{"id":"iu","user-id":"up"}', T(5))
    t.ok(rep.obj is not None, "invalid UTF-8 upstream body: the reply is a valid UTF-8 text "
         "message holding JSON", lambda: repr(rep))
    want = INVALID_UTF8.decode("utf-8", "replace")
    expect_ok(t, rep, want, "invalid UTF-8 replaced by U+FFFD, one per bad byte", rid="iu")
    c.close()
    w.stop()

    # Every control character, quote, backslash, DEL, multi-byte UTF-8.
    raw = bytes(range(0x20)) + b'"\\/\x7f' + "\u00e9\U0001F600\u2028".encode() + b"end"
    w = instance("upcontrol", "http://127.0.0.1:%d/hex/%s" % (u.port, raw.hex()))
    c = Client(w.port)
    rep = c.call('{"id":"cc","user-id":"up"}', T(5))
    expect_ok(t, rep, raw.decode(), "control characters, quote, backslash escaped in the body",
              rid="cc")
    c.close()
    w.stop()


# ---- head-of-line, in flight, 429, clients leaving ----

def head_of_line(t, r, u):
    rcall(r, "SET", "cfg:A", '{"user":"A"}')
    rcall(r, "SET", "cfg:B", '{"user":"B"}')
    w = t.wsgate("hol", workers=1, redis_port=r.port, upstream_url=u.url)
    w.start()
    ca, cb1, cb2 = Client(w.port), Client(w.port), Client(w.port)
    before = upstream_stats(u)
    t0 = time.monotonic()
    ca.ws.send(batch_frames('{"id":"A-%d","user-id":"A","payload":{"sleep":3,"i":%d}}' % (i, i)
                            for i in range(5)))
    # B starts once A's first request is at the upstream, being slow.
    t.ok(wait_stats(u, before + 1, T(3)), "user A: a slow request reached the upstream")
    time.sleep(0.2)
    t_b = time.monotonic()
    n_a = upstream_stats(u) - before
    t.note("user A's requests at the upstream after %.3fs: %d" % (t_b - t0, n_a))
    t.is_(n_a, 5, "user A: all 5 slow requests are at the upstream at once (%.2fs after "
          "sending)" % (t_b - t0))
    lat = {"same connection": [], "other connection 1": [], "other connection 2": []}
    stash = {}
    bad = []

    def run(name, c, n=60):
        for i in range(n):
            rid = "%s-%d" % (name[0] + name[-1], i)
            payload = '{"b":%d}' % i
            t1 = time.monotonic()
            c.send('{"id":"%s","user-id":"B","payload":%s}' % (rid, payload))
            while True:
                rep = c.recv(T(5))
                if rep.obj is None:
                    bad.append((name, rid, rep))
                    return
                if rep.obj.get("id") == rid:
                    break
                stash[rep.obj.get("id")] = (rep, time.monotonic())
            lat[name].append(time.monotonic() - t1)
            if rep.obj.get("body") != echo_body(payload, '{"user":"B"}'):
                bad.append((name, rid, rep))
    threads = [threading.Thread(target=run, args=(name, c)) for name, c in
               (("same connection", ca), ("other connection 1", cb1),
                ("other connection 2", cb2))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(T(30))
    b_done = time.monotonic() - t0
    t.note("user B's requests took %.3fs" % (time.monotonic() - t_b))
    t.ok(not bad, "user B: every reply right", lambda: repr(bad[:5]))
    allb = []
    for name, v in lat.items():
        allb += v
        t.is_(len(v), 60, "user B on the %s: 60 replies" % name)
        q = p99(v)
        t.ok(q is not None and q < 0.050, "user B on the %s: p99 %.1f ms < 50 ms (max %.1f ms)"
             % (name, 1000 * (q or 0), 1000 * max(v or [0])))
    t.ok(b_done < 2.9, "user B's 180 requests all done while A's were pending (%.2fs)" % b_done)
    t.note("user B latency over %d requests: p50 %.2f ms, p99 %.2f ms, max %.2f ms" % (
        len(allb), 1000 * sorted(allb)[len(allb) // 2], 1000 * p99(allb), 1000 * max(allb)))
    got = {k: v for k, v in stash.items() if str(k).startswith("A-")}
    more, odd = recv_all(ca, 5 - len(got), T(13))
    got.update({k: (v, v.dt) for k, v in more.items()})
    good = len(got) == 5 and not odd
    for i in range(5):
        rep, when = got.get("A-%d" % i, (tp.Reply(err="missing"), 0))
        good &= (rep.obj or {}).get("body") == echo_body('{"sleep":3,"i":%d}' % i,
                                                         '{"user":"A"}')
        good &= 2.9 <= when - t0 <= 3.0 + T(1)
    t.ok(good, "user A: 5 replies, all after the 3 s the upstream took, not one after the other",
         lambda: repr(sorted((k, round(v[1] - t0, 3)) for k, v in got.items())) + repr(odd))
    for c in (ca, cb1, cb2):
        c.close()
    return w


def disconnects(t, r, u, w):
    """Clients leaving with requests in flight: no crash, the requests
    still reach the upstream."""
    worker = w.pids("worker")
    before = upstream_stats(u)
    c = Client(w.port)
    c.send('{"id":"gone","user-id":"B","payload":{"sleep":1}}')
    c.close()
    t.ok(wait_stats(u, before + 1, T(3)),
         "a client that left at once: its request still reached the upstream")
    c = Client(w.port)
    c.ws.send(batch_frames('{"id":%d,"user-id":"B","payload":{"sleep":1}}' % i
                           for i in range(20)))
    c.ws.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    code = None
    try:
        code, _ = c.ws.recv_close(T(3))
    except (socket.timeout, wsclient.Closed) as e:
        code = "%s" % e
    c.close()
    t.ok(wait_stats(u, before + 21, T(3)),
         "a client that closed with 20 in flight: all 20 reached the upstream")
    t.note("Close 1000 with 20 requests in flight answered with: %r" % (code,))
    # Reset (RST) instead of a close.
    c = Client(w.port)
    c.ws.send(batch_frames('{"id":%d,"user-id":"B","payload":{"sleep":1}}' % i
                           for i in range(5)))
    time.sleep(0.05)
    c.ws.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    t.ok(wait_stats(u, before + 26, T(3)), "a client that reset the connection: its 5 requests "
         "reached the upstream")
    time.sleep(1.5)     # every upstream reply is back, with nobody to send it to
    t.is_(w.pids("worker"), worker, "same worker after clients left with requests in flight")
    t.ok(not worker_died(w), "no worker died", lambda: repr(worker_died(w)))
    c = Client(w.port)
    rep = c.call('{"id":"still","user-id":"B"}', T(5))
    expect_ok(t, rep, echo_body("null", '{"user":"B"}'), "the worker still serves", rid="still")
    c.close()
    w.stop()


def inflight(t, r, u):
    rcall(r, "SET", "cfg:F", '{"user":"F"}')
    w = t.wsgate("inflight", workers=1, redis_port=r.port, upstream_url=u.url,
                 max_inflight_per_connection=128)
    w.start()
    c = Client(w.port)
    for label, extra in (("slow upstream (1 s each)", '"sleep":1,'), ("fast upstream", "")):
        ids = [("s-%d" % i) if i % 2 else i for i in range(100)]
        msgs = ['{"id":%s,"user-id":"F","payload":{%s"i":%d}}' % (json.dumps(rid), extra, i)
                for i, rid in enumerate(ids)]
        t0 = time.monotonic()
        c.ws.send(batch_frames(msgs))
        got, odd = recv_all(c, 100, T(20))
        dt = time.monotonic() - t0
        wrong = [rid for i, rid in enumerate(ids)
                 if rid not in got or type(got[rid].obj["id"]) is not type(rid) or
                 got[rid].obj.get("body") != echo_body('{%s"i":%d}' % (extra, i),
                                                       '{"user":"F"}')]
        t.ok(len(got) == 100 and not odd and not wrong,
             "100 in flight on one connection, %s: all answered, ids matched" % label,
             lambda: "missing/wrong: %r, odd: %r" % (wrong[:10], odd[:3]))
        t.note("100 in flight, %s: %.2fs" % (label, dt))
        if extra:
            t.ok(dt < T(5), "... concurrently, not one after the other (%.2fs)" % dt)
    c.close()
    w.stop()

    w = t.wsgate("inflight4", workers=1, redis_port=r.port, upstream_url=u.url,
                 max_inflight_per_connection=4)
    w.start()
    c, other = Client(w.port), Client(w.port)
    before = upstream_stats(u)
    t0 = time.monotonic()
    c.ws.send(batch_frames(['{"id":%d,"user-id":"F","payload":{"sleep":1}}' % i
                            for i in range(4)] + ['{"id":"fifth","user-id":"F"}']))
    rep = c.recv(T(5))
    dt = time.monotonic() - t0
    expect_error(t, rep, 429, "too many requests", "5th request with 4 in flight", rid="fifth")
    t.ok(dt < T(0.5), "429 at once (%.3fs)" % dt)
    rep = other.call('{"id":"other","user-id":"F"}', T(5))
    expect_ok(t, rep, echo_body("null", '{"user":"F"}'),
              "another connection is not limited by this one's in-flight requests", rid="other")
    got, odd = recv_all(c, 4, T(5))
    t.ok(len(got) == 4 and not odd and all(got.get(i) and got[i].obj.get("status") == 200
                                           for i in range(4)),
         "the 4 earlier requests are answered 200", lambda: repr((got, odd)))
    time.sleep(0.2)
    t.is_(upstream_stats(u) - before, 5, "the 429 request never reached the upstream")
    rep = c.call('{"id":"later","user-id":"F"}', T(5))
    expect_ok(t, rep, echo_body("null", '{"user":"F"}'), "after they finished: served again",
              rid="later")
    # 4 slow + 3 more: the 3 get 429, then room again.
    c.ws.send(batch_frames(['{"id":%d,"user-id":"F","payload":{"sleep":1}}' % i
                            for i in range(4)] + ['{"id":"x%d","user-id":"F"}' % i
                                                  for i in range(3)]))
    got, odd = recv_all(c, 7, T(5))
    st = {k: v.obj.get("status") for k, v in got.items()}
    t.is_(st, {0: 200, 1: 200, 2: 200, 3: 200, "x0": 429, "x1": 429, "x2": 429},
          "4 in flight + 3 more: three 429s, four 200s")
    c.close()
    other.close()
    w.stop()


def main(t):
    t.need_binary()
    u = t.start_upstream()
    t0 = time.monotonic()
    redis_faults(t, u)
    t.note("phase redis faults: %.1fs" % (time.monotonic() - t0))
    r = t.start_redis()
    phases = [
        ("upstream faults", lambda: upstream_faults(t, r, u)),
        ("head-of-line + disconnects", lambda: disconnects(t, r, u, head_of_line(t, r, u))),
        ("in flight", lambda: inflight(t, r, u)),
    ]
    for name, fn in phases:
        t0 = time.monotonic()
        fn()
        t.note("phase %s: %.1fs" % (name, time.monotonic() - t0))


if __name__ == "__main__":
    harness.run(main, watchdog=300)
