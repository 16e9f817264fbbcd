#!/usr/bin/env python3
"""SIGHUP reload: a new generation with the new worker count while a
client opens and closes connections in a tight loop (not one refused,
reset or unanswered), and a broken config that is logged and ignored."""

import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402


class Hammer:
    """Client threads that connect, send one request, read the whole
    answer and close, on the admin port (/healthz, expects 200) and the
    client port (expects 404), as fast as they can until stopped."""

    def __init__(self, w, threads=4):
        self.w = w
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def start(self):
        for th in self.threads:
            th.start()

    def one(self, port, path, want):
        try:
            st, body = harness.http_get(port, path, timeout=T(3))
        except (OSError, ValueError) as e:
            with self.lock:
                self.failures.append("%.3f %s %s: %s: %s" % (time.monotonic(), port, path,
                                                             type(e).__name__, e))
            return
        with self.lock:
            if st != want:
                self.failures.append("%.3f %s %s: status %s (want %s)"
                                     % (time.monotonic(), port, path, st, want))
            else:
                self.ok += 1

    def run(self):
        while not self.stop_ev.is_set():
            self.one(self.w.admin_port, "/healthz", 200)
            self.one(self.w.port, "/", 404)

    def finish(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(T(10))


def main(t):
    t.need_binary()
    w = t.wsgate(workers=2, dbwriters=1, shutdown_timeout="3s")
    w.start()
    old_workers = w.pids("worker")
    old_dbw = w.pids("dbwriter")

    # -- (a) reload to 3 workers under a connection loop, with idle
    # connections open on both listeners (the old generation must still be
    # gone within shutdown_timeout) --
    held = [socket.create_connection(("127.0.0.1", port), timeout=T(2))
            for port in (w.port, w.admin_port, w.port, w.admin_port)]
    h = Hammer(w)
    h.start()
    time.sleep(0.5)
    ok_before = h.ok
    w.write_config(workers=3)
    w.mark_log()
    t0 = time.monotonic()
    w.signal(signal.SIGHUP)

    def new_workers():
        p = [x for x in w.pids("worker") if x not in old_workers]
        return p if len(p) >= 3 else None
    new = harness.wait_for(new_workers, T(2))
    dt_new = time.monotonic() - t0
    t.ok(new is not None and len(new) == 3 and dt_new <= 2.0,
         "3 new-generation workers running within 2 s (%.2fs)" % dt_new,
         diag=lambda: "children: %r, old workers: %r" % (w.children(), old_workers))
    gone = harness.wait_for(lambda: not any(harness.pid_alive(p) for p in old_workers + old_dbw),
                            T(w.shutdown_timeout + 1))
    dt_gone = time.monotonic() - t0
    t.ok(gone and dt_gone <= w.shutdown_timeout + 1,
         "old workers and dbwriter exited within shutdown_timeout + 1 s (%.2fs)" % dt_gone,
         diag=lambda: "children: %r" % w.children())
    newdb = w.wait_children("dbwriter", 1, T(2), exclude=old_dbw)
    t.ok(newdb is not None, "a new-generation dbwriter runs",
         diag=lambda: "children: %r" % w.children())
    m = w.wait_log(r"master\[%d\] info: reloading config=%s" % (w.pid, w.conf_file), T(2))
    t.ok(m, "log: reloading config=FILE")
    m = w.wait_log(r"master\[%d\] info: reload complete generation=2 workers=3 dbwriters=1\b"
                   % w.pid, T(2))
    t.ok(m, "log: reload complete generation=2 workers=3 dbwriters=1", diag=lambda: w.describe())
    for p in (new or []):
        t.ok(w.grep_log(r"started pid=%d role=worker slot=\d+ generation=2\b" % p),
             "log: new worker %d started with generation=2" % p)
    time.sleep(0.5)
    h.finish()
    for s in held:
        s.close()
    t.is_(len(h.failures), 0, "no connection refused, reset or failed during the reload",
          diag=lambda: "\n".join(h.failures[:20]))
    t.ok(h.ok > 50 and h.ok > ok_before, "the client loop kept getting answers (%d)" % h.ok)
    t.is_(len(w.pids("worker")), 3, "3 workers after the reload")
    t.ok(w.healthz_ok(), "/healthz 200 after the reload")

    # -- (b) broken config: logged, ignored, old generation keeps serving --
    before = w.children()
    nlines = w.write_config(extra="bogus_directive 1\n")
    w.mark_log()
    h = Hammer(w)
    h.start()
    w.signal(signal.SIGHUP)
    m = w.wait_log(r"master\[%d\] error: reload failed: %s:%d: unknown directive \"bogus_directive\""
                   % (w.pid, w.conf_file, nlines), T(3))
    t.ok(m, "broken config: log 'reload failed: FILE:%d: unknown directive \"bogus_directive\"'"
         % nlines, diag=lambda: w.describe())
    time.sleep(1)
    h.finish()
    t.is_(w.children(), before, "broken config: same children, same pids")
    t.is_(len(h.failures), 0, "broken config: no failed connection",
          diag=lambda: "\n".join(h.failures[:20]))
    t.ok(h.ok > 10, "broken config: requests answered meanwhile (%d)" % h.ok)
    t.ok(w.healthz_ok(), "broken config: /healthz still 200")
    t.ok(not w.grep_log(r"reload complete generation=3"), "broken config: no new generation")

    # -- fixed again: the next reload works (generation 3, 2 workers) --
    w.write_config(workers=2)
    w.mark_log()
    cur = w.pids("worker")
    w.signal(signal.SIGHUP)
    t.ok(w.wait_children("worker", 2, T(2) + T(w.shutdown_timeout), exclude=cur) is not None,
         "config fixed: reload to 2 workers works", diag=lambda: "children: %r" % w.children())
    t.ok(w.wait_log(r"reload complete generation=3 workers=2\b", T(3)),
         "log: reload complete generation=3 workers=2")
    t.ok(w.healthz_ok(), "/healthz 200 after the third reload")

    # -- (c) reloads in a row under the connection loop, one of them a
    # double SIGHUP: no failure, the last config's worker count wins.
    h = Hammer(w)
    h.start()
    for n in (3, 1, 4):
        cur = w.pids("worker")
        w.write_config(workers=n)
        w.signal(signal.SIGHUP)
        got = w.wait_children("worker", n, T(w.shutdown_timeout + 3), exclude=cur)
        t.ok(got is not None, "reload to workers=%d under load" % n,
             diag=lambda: "children: %r" % w.children())
    w.write_config(workers=2)
    w.signal(signal.SIGHUP)
    time.sleep(0.01)
    w.signal(signal.SIGHUP)
    got = harness.wait_for(lambda: len(w.pids("worker")) == 2 and w.healthz_ok(),
                           T(2 * w.shutdown_timeout + 4))
    t.ok(got, "double SIGHUP: settles on 2 workers", diag=lambda: "children: %r" % w.children())
    time.sleep(0.3)
    h.finish()
    t.is_(len(h.failures), 0, "reloads in a row: no connection refused, reset or failed",
          diag=lambda: "\n".join(h.failures[:20]))
    t.ok(h.ok > 50, "reloads in a row: requests answered (%d)" % h.ok)
    t.is_(len(w.pids("dbwriter")), 1, "one dbwriter after all reloads")


harness.run(main)
