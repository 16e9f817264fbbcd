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
  answers each after 3 s; once the upstream has them all the worker is
  stopped until every answer waits in its sockets, then let go: 200
  replies, each 200 with its own id and the upstream's echo of its own
  request (the upstream body as a string), and
  wsgate_reads_deferred_total{source="upstream"} grew.
- loop_budget auto (the default), as an operator sees it: without a CPU
  quota the master logs "loop_budget auto=64 cpu_quota=none" and the
  client backlog is put off in part; started inside a CPU cgroup of our
  own limited to 0.5 CPUs (v2 cpu.max or v1 cpu.cfs_quota_us, as root)
  a 1-worker gateway logs "loop_budget auto=0 cpu_quota=0.50 workers=1
  cgroup=DIR" and puts nothing off; the quota raised to 2 CPUs and a
  SIGHUP, the new generation logs auto=64 and puts reads off again.
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
DELAY = 3           # s, the upstream's answer to each request


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
    t_sent = time.monotonic()
    for k, cl in enumerate(cs):
        for j in range(PER):
            cl.send('{"id":"u%d-%d","user-id":"u1","payload":{"n":%d}}' % (k, j, j))
    n = CONNS * PER

    def all_in():
        st = json.loads(harness.http_get(u.port, "/stats")[1])
        return st["requests"] - stats0 >= n
    t.ok(harness.wait_for(all_in, T(20), 0.05), "the upstream received all %d requests (%.1fs, "
         "answers after %d s)" % (n, time.monotonic() - t_sent, DELAY))
    # Stopped before the first answer can come, until the last is in.
    with Stopped(worker):
        time.sleep(max(1.0, t_sent + DELAY + 1.5 - time.monotonic()))
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


class CpuQuota:
    """A CPU cgroup of our own limited to some CPUs (period 100 ms)."""

    PERIOD = 100000

    def __init__(self, cpus):
        name = "wsgate-test-%d" % os.getpid()
        if os.path.isfile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
            self.v2, self.dir = False, "/sys/fs/cgroup/cpu/" + name
        else:
            self.v2, self.dir = True, "/sys/fs/cgroup/" + name
            with open("/sys/fs/cgroup/cgroup.controllers") as f:
                if "cpu" not in f.read().split():
                    raise OSError("no cpu controller in /sys/fs/cgroup")
            with open("/sys/fs/cgroup/cgroup.subtree_control") as f:
                enabled = "cpu" in f.read().split()
            if not enabled:
                with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
                    f.write("+cpu")
        os.mkdir(self.dir)
        if not self.v2:
            self._write("cpu.cfs_period_us", "%d" % self.PERIOD)
        self.set(cpus)

    def _write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def set(self, cpus):
        quota = int(cpus * self.PERIOD)
        if self.v2:
            self._write("cpu.max", "%d %d" % (quota, self.PERIOD))
        else:
            self._write("cpu.cfs_quota_us", "%d" % quota)

    def join(self):
        """In the child before the exec: wsgate and all it forks are in."""
        self._write("cgroup.procs", "%d" % os.getpid())

    def remove(self):
        harness.wait_for(lambda: not _rmdir(self.dir), T(10))


def _rmdir(path):
    """True while the cgroup still has processes."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return True
    return False


def auto_budget(t, r, u):
    conf = dict(workers=1, redis_port=r.port, echo_path="/echo",
                upstream_url=u.url, max_output_buffer="16m")
    w = t.wsgate("auto", **conf)
    w.start()
    m = w.wait_log(r"loop_budget auto=(\d+) cpu_quota=(\S+)")
    t.ok(m is not None, "the master logs what loop_budget auto came to")
    if m is not None and m.group(2) == "none":
        t.is_(m.group(1), "64", "no CPU quota: loop_budget auto=64")
        client_reads(t, w, w.pids("worker")[0])
    else:
        t.skip("no CPU quota: loop_budget auto=64",
               "this test itself runs under a CPU quota: %s" % (m and m.group(0)), 5)
    w.stop()

    if os.geteuid() != 0:
        t.skip("loop_budget auto under a CPU quota", "needs root (cgroups)", 12)
        return
    try:
        q = CpuQuota(0.5)
    except OSError as e:
        t.skip("loop_budget auto under a CPU quota", "cannot make a CPU cgroup: %s" % e, 12)
        return
    w = t.wsgate("quota", **conf)
    try:
        w.start(preexec=q.join)
        m = w.wait_log(r"loop_budget auto=(\d+) cpu_quota=(\S+) workers=(\d+) cgroup=(\S+)")
        t.is_(m and m.groups(), ("0", "0.50", "1", q.dir),
              "0.5 CPUs for 1 worker: loop_budget auto=0, the cgroup named")
        old = w.pids("worker")
        client_reads(t, w, old[0], expect_deferred=False)

        q.set(2)
        w.signal(signal.SIGHUP)
        m = w.wait_log(r"loop_budget auto=(\d+) cpu_quota=(\S+) workers=(\d+)", T(15))
        t.is_(m and m.groups(), ("64", "2.00", "1"),
              "raised to 2 CPUs, reloaded: loop_budget auto=64")
        t.ok(harness.wait_for(lambda: (len(w.pids("worker")) == 1 and
                                       w.pids("worker") != old), T(15)),
             "the new generation's worker alone")
        client_reads(t, w, w.pids("worker")[0])
    finally:
        w.stop()
        q.remove()
    t.ok(not os.path.exists(q.dir), "the test's cgroup removed")


def main(t):
    t.need_binary()
    r = t.start_redis()
    rcall(r, "SET", "cfg:u1", '{"k":"v"}')
    u = t.start_upstream()
    w = t.wsgate("budget", workers=1, redis_port=r.port, echo_path="/echo",
                 upstream_url="http://127.0.0.1:%d/slow/%d" % (u.port, DELAY),
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

    auto_budget(t, r, u)
    no_worker_died(t)


harness.run(main, watchdog=120)
