#!/usr/bin/env python3
"""A child killed with SIGKILL is logged with its pid, role, slot and
signal, and replaced in the same slot within 2 s; the gateway keeps
answering."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402


def started_slot(w, pid, role):
    m = w.grep_log(r"started pid=%d role=%s slot=(\d+) generation=(\d+)" % (pid, role))
    return (int(m[-1].group(1)), int(m[-1].group(2))) if m else (None, None)


def kill_and_replace(t, w, role, n):
    before = w.pids(role)
    victim = before[0]
    slot, gen = started_slot(w, victim, role)
    t.ok(slot is not None, "%s %d: its start was logged with a slot" % (role, victim))
    w.mark_log()
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    m = w.wait_log(r"master\[%d\] \w+: child exited pid=%d role=%s slot=%s generation=%s\b.*"
                   r"\bsignal=KILL\b" % (w.pid, victim, role, slot, gen), T(5))
    t.ok(m, "%s killed: log 'child exited pid=%d role=%s slot=%s generation=%s ... signal=KILL'"
         % (role, victim, role, slot, gen), diag=lambda: w.describe())
    new = w.wait_children(role, n, T(2), exclude=[victim])
    dt = time.monotonic() - t0
    t.ok(new is not None and dt <= 2.0, "a new %s runs within 2 s (%.2fs)" % (role, dt),
         diag=lambda: "children: %r" % w.children())
    if new is None:
        return
    t.is_(len(set(new) - set(before)), 1, "exactly one new %s pid" % role)
    newpid = (set(new) - set(before)).pop() if set(new) - set(before) else None
    if newpid:
        nslot, ngen = started_slot(w, newpid, role)
        t.is_(nslot, slot, "the new %s %d took slot %s" % (role, newpid, slot))
        t.is_(harness.proc_stat(newpid)[0][:9], "wsgate-wo" if role == "worker" else "wsgate-db",
              "the new %s has the right comm" % role)
    t.ok(harness.wait_for(w.healthz_ok, T(2)), "/healthz answers again after the %s kill" % role)
    t.is_(harness.proc_stat(w.pid)[0], "wsgate", "master still running")


def main(t):
    t.need_binary()
    w = t.wsgate(workers=2, dbwriters=1)
    w.start()
    kill_and_replace(t, w, "worker", 2)
    kill_and_replace(t, w, "dbwriter", 1)

    # Several workers killed at once: all replaced, all requests answered.
    before = w.pids("worker")
    for p in before:
        os.kill(p, signal.SIGKILL)
    new = w.wait_children("worker", 2, T(3), exclude=before)
    t.ok(new is not None, "both workers killed at once: two new workers within 3 s",
         diag=lambda: "children: %r" % w.children())
    ok = sum(1 for _ in range(20) if w.healthz_ok())
    t.is_(ok, 20, "20 /healthz in a row answered after the double kill")

    # A crashing worker (SIGABRT: not caught by the sanitizers; the
    # harness disables core dumps) is replaced too, its signal logged.
    victim = w.pids("worker")[0]
    w.mark_log()
    os.kill(victim, signal.SIGABRT)
    m = w.wait_log(r"child exited pid=%d role=worker .*\bsignal=ABRT\b" % victim, T(5))
    t.ok(m, "worker crash: 'child exited ... signal=ABRT' logged", diag=lambda: w.describe())
    t.ok(w.wait_children("worker", 2, T(3), exclude=[victim]) is not None,
         "crashed worker replaced")


harness.run(main)
