#!/usr/bin/env python3
"""The worker loop's read budget (wsgate(8) "Event loop", worker/budget.c),
against real Redis and the upstream: a worker that wakes up to far more
input than one iteration may start puts the rest off to the next
iteration, and nothing is lost, reordered or left waiting.

The backlog is made deterministic by stopping the only worker (SIGSTOP)
while the input piles up in its sockets, then letting it go on; the
gateway runs with loop_budget 4, so that an iteration with more than 4
messages or answers to handle puts some off however the kernel and the
upstream's threads spread them.

- Client reads: 40 connections to the echo endpoint each send 50
  messages in one write while the worker is stopped: each gets its 50
  echoes, in order, and wsgate_reads_deferred_total{source="client"}
  grew.  An admin request sent meanwhile is answered 200.
- loop_budget 0: the same client backlog is served without putting
  anything off (the counter stays 0), every echo in order.
- Upstream answers: 200 requests on 40 connections to an upstream that
  answers each after 1 s; once the upstream has them all the worker is
  stopped until every answer waits in its sockets, then let go: 200
  replies, each 200 with its own id and the upstream's echo of its own
  request (the upstream body as a string), and
  wsgate_reads_deferred_total{source="upstream"} grew.
"""

import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import wsclient  # noqa: E402
from wsclient import WS, OP_TEXT  # noqa: E402
from t_pipeline import Client, rcall, no_worker_died  # noqa: E402

CONNS = 40
ECHOES = 50
PER = 5             # upstream requests per connection


def deferred(w, source):
    return w.metric('wsgate_reads_deferred_total{source="%s"}' % source)


class Stopped:
    """The worker stopped for the with-block, continued after it."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)
        return False


def client_reads(t, w, worker, expect_deferred=True):
    before = deferred(w, "client")
    t.ok(before is not None, "wsgate_reads_deferred_total{source=\"client\"} exported")
    conns = [WS.connect(w.port, "/echo", timeout=T(5)) for _ in range(CONNS)]
    with Stopped(worker):
        for k, ws in enumerate(conns):
            ws.send(b"".join(wsclient.frame(OP_TEXT, ("c%d-m%d" % (k, j)).encode())
                             for j in range(ECHOES)))
        admin = socket.create_connection(("127.0.0.1", w.admin_port), timeout=T(10))
        admin.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
    bad = []
    for k, ws in enumerate(conns):
        for j in range(ECHOES):
            try:
                op, data = ws.recv_message(T(10))
            except (socket.timeout, wsclient.Closed, OSError, ValueError) as e:
                bad.append("conn %d: no echo %d (%s)" % (k, j, e))
                break
            if op != OP_TEXT or data != ("c%d-m%d" % (k, j)).encode():
                bad.append("conn %d: echo %d is %r" % (k, j, data[:40]))
                break
        ws.close()
    t.is_(bad, [], "%d connections x %d messages: every echo, in order" % (CONNS, ECHOES))
    resp = harness.read_http_response(admin)
    admin.close()
    t.is_(resp.status, 200, "the admin request sent meanwhile answered 200")
    after = deferred(w, "client")
    if expect_deferred:
        t.ok(after is not None and before is not None and after > before,
             "client reads were put off: deferred %s -> %s" % (before, after))
    else:
        t.is_(after, 0, "loop_budget 0: no read put off")


def upstream_answers(t, w, worker, u):
    before = deferred(w, "upstream")
    t.ok(before is not None, "wsgate_reads_deferred_total{source=\"upstream\"} exported")
    stats0 = json.loads(harness.http_get(u.port, "/stats")[1])["requests"]
    cs = [Client(w.port) for _ in range(CONNS)]
    for k, cl in enumerate(cs):
        for j in range(PER):
            cl.send('{"id":"u%d-%d","user-id":"u1","payload":{"n":%d}}' % (k, j, j))
    n = CONNS * PER

    def all_in():
        st = json.loads(harness.http_get(u.port, "/stats")[1])
        return st["requests"] - stats0 >= n
    t.ok(harness.wait_for(all_in, T(20)), "the upstream received all %d requests" % n)
    with Stopped(worker):
        time.sleep(2)       # each answer comes 1 s after its request
    bad = []
    for k, cl in enumerate(cs):
        got = {}
        for _ in range(PER):
            rep = cl.recv(T(10))
            if rep.obj is None:
                bad.append("conn %d: %s" % (k, rep.err))
                break
            got[rep.obj.get("id")] = rep.obj
        for j in range(PER):
            o = got.get("u%d-%d" % (k, j))
            want = '{"payload":{"n":%d},"config":{"k":"v"}}' % j
            if o is None or o.get("status") != 200 or o.get("body") != want:
                bad.append("conn %d: reply %d is %r" % (k, j, o))
        cl.close()
    t.is_(bad[:5], [], "%d requests: every reply 200 with its own id and answer" % n)
    after = deferred(w, "upstream")
    t.ok(after is not None and before is not None and after > before,
         "upstream answers were put off: deferred %s -> %s" % (before, after))


def main(t):
    t.need_binary()
    r = t.start_redis()
    rcall(r, "SET", "cfg:u1", '{"k":"v"}')
    u = t.start_upstream()
    w = t.wsgate("budget", workers=1, redis_port=r.port, echo_path="/echo",
                 upstream_url="http://127.0.0.1:%d/slow/1" % u.port,
                 max_output_buffer="16m", loop_budget="4")
    w.start()
    workers = w.pids("worker")
    t.is_(len(workers), 1, "one worker")
    client_reads(t, w, workers[0])
    upstream_answers(t, w, workers[0], u)
    t.is_(w.pids("worker"), workers, "the same worker throughout")
    w.stop()

    w0 = t.wsgate("nobudget", workers=1, redis_port=r.port, echo_path="/echo",
                  upstream_url=u.url, loop_budget="0", max_output_buffer="16m")
    w0.start()
    client_reads(t, w0, w0.pids("worker")[0], expect_deferred=False)
    w0.stop()
    no_worker_died(t)


harness.run(main, watchdog=120)
