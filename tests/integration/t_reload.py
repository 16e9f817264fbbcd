#!/usr/bin/env python3
"""SIGHUP reload: a new generation with the new worker count while a
client opens and closes connections in a tight loop (not one refused,
reset or unanswered), and a broken config that is logged and ignored."""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402


class Hammer(threading.Thread):
    """Connect, send one request, read the whole answer, close; on the
    admin port (/healthz, expects 200) and the client port (expects 404),
    as fast as possible until stopped."""

    def __init__(self, w):
        super().__init__(daemon=True)
        self.w = w
        self.stop_ev = threading.Event()
        self.ok = 0
        self.failures = []

    def one(self, port, path, want):
        try:
            st, body = harness.http_get(port, path, timeout=T(3))
        except (OSError, ValueError) as e:
            self.failures.append("%s %s: %s: %s" % (port, path, type(e).__name__, e))
            return
        if st != want:
            self.failures.append("%s %s: status %s (want %s)" % (port, path, st, want))
        else:
            self.ok += 1

    def run(self):
        while not self.stop_ev.is_set():
            self.one(self.w.admin_port, "/healthz", 200)
            self.one(self.w.port, "/", 404)

    def finish(self):
        self.stop_ev.set()
        self.join(T(10))


def main(t):
    t.need_binary()
    w = t.wsgate(workers=2, dbwriters=1, shutdown_timeout="3s")
    w.start()
    old_workers = w.pids("worker")
    old_dbw = w.pids("dbwriter")

    # -- (a) reload to 3 workers under a connection loop --
    h = Hammer(w)
    h.start()
    time.sleep(0.5)
    ok_before = h.ok
    w.write_config(workers=3)
    w.mark_log()
    t0 = time.monotonic()
    w.signal(signal.SIGHUP)
    new = w.wait_children("worker", 3, T(2), exclude=old_workers)
    dt_new = time.monotonic() - t0
    if new is None:
        # Old ones may still be draining: wait for 3 new ones among them.
        cur = [p for p in w.pids("worker") if p not in old_workers]
        new3 = harness.wait_for(lambda: len([p for p in w.pids("worker")
                                             if p not in old_workers]) >= 3, T(2))
        dt_new = time.monotonic() - t0
        t.ok(False, "3 new-generation workers within 2 s",
             diag="workers at 2 s: %r, at 4 s ok=%r" % (cur, new3))
    else:
        t.ok(True, "3 new-generation workers, old ones gone, within 2 s (%.2fs)" % dt_new)
    gone = harness.wait_for(lambda: not any(harness.pid_alive(p) for p in old_workers + old_dbw),
                            T(w.shutdown_timeout + 1))
    t.ok(gone, "old workers and dbwriter exited within shutdown_timeout (%.2fs)"
         % (time.monotonic() - t0), diag=lambda: "children: %r" % w.children())
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


harness.run(main)
