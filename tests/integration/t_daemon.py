#!/usr/bin/env python3
"""-d daemonizes properly (returns at once with status 0, pid in the
pidfile, detached from us, stdio on /dev/null), -p overrides `pidfile`, a
second instance with the same live pidfile is refused, TERM stops it and
removes the pidfile."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402


def main(t):
    t.need_binary()
    w = t.wsgate()
    conf_pidfile = w.pidfile
    pidfile = t.path("other.pid")

    t0 = time.monotonic()
    p = w.spawn("-d", "-p", pidfile)
    try:
        rc = p.wait(T(10))
    except Exception:
        rc = None
    dt = time.monotonic() - t0
    t.is_(rc, 0, "-d: the command returns with status 0")
    t.ok(rc is not None and dt < 5, "-d: returns promptly (%.2fs)" % dt)
    pid = harness.wait_for(lambda: harness.read_pidfile(pidfile), T(5))
    t.ok(pid, "-d -p FILE: pidfile FILE written", diag=lambda: w.describe())
    if not pid:
        return
    w.adopt_pidfile(pidfile)
    t.ok(not os.path.exists(conf_pidfile), "-p overrides the config's pidfile")
    t.ok(harness.pid_alive(pid), "-d: the daemon (pid %d) runs" % pid)
    t.ok(pid != p.pid, "-d: the daemon is not the process we started")
    st = harness.proc_stat(pid)
    t.is_(st and st[0], "wsgate", "-d: daemon's comm is wsgate")
    t.ok(st and st[2] in (1, os.getpid()),
         "-d: daemon's parent is init or the subreaper (ppid %s)" % (st and st[2]))
    status = harness.proc_status(pid) or {}
    sid = None
    try:
        sid = os.getsid(pid)
    except OSError:
        pass
    t.ok(sid is not None and sid != os.getsid(0), "-d: daemon left our session (setsid)")
    fds = {}
    for fd in (0, 1, 2):
        try:
            fds[fd] = os.readlink("/proc/%d/fd/%d" % (pid, fd))
        except OSError as e:
            fds[fd] = str(e)
    t.is_(fds, {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"},
          "-d: stdin, stdout and stderr are /dev/null")
    t.is_(status.get("PPid") and int(status["PPid"]), st and st[2], "-d: /proc status agrees")
    t.ok(harness.wait_for(w.healthz_ok, T(10)), "-d: /healthz answers 200")
    t.ok(w.wait_children("worker", 2, T(5)) is not None and
         w.wait_children("dbwriter", 1, T(5)) is not None,
         "-d: 2 workers and 1 dbwriter under the daemon")
    kids = [c[0] for c in w.children()]

    # A second instance with the same pidfile: refused, first one untouched.
    w2 = t.wsgate("second")
    for args in (("-p", pidfile), ("-d", "-p", pidfile)):
        label = " ".join(args).replace(pidfile, "FILE")
        rc2, out, err = w2.run("-c", w2.conf_file, *args, timeout=T(10))
        t.is_(rc2, 1, "second instance %s: exit status 1" % label)
        t.like(err, r"already running", "second instance %s: 'already running'" % label)
        t.is_(harness.read_pidfile(pidfile), pid, "second instance %s: pidfile unchanged" % label)
    t.ok(harness.pid_alive(pid) and w.healthz_ok(), "first instance still serving")
    t.ok(not w2.healthz_ok(), "second instance not serving")

    # A stale pidfile (process gone) does not block a start.
    stale = t.path("stale.pid")
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    with open(stale, "w") as f:
        f.write("%d\n" % dead)
    w3 = t.wsgate("stale")
    try:
        w3.start("-p", stale)
        t.ok(True, "a stale pidfile does not prevent a start")
        t.is_(harness.read_pidfile(stale), w3.pid, "stale pidfile rewritten with the new pid")
        w3.stop()
    except RuntimeError as e:
        t.ok(False, "a stale pidfile does not prevent a start", diag=str(e))
        t.skip("stale pidfile rewritten", "did not start")

    # TERM stops the daemon; pidfile gone, no child left.
    os.kill(pid, signal.SIGTERM)
    rc = w.wait_exit(T(w.shutdown_timeout + 5))
    t.ok(rc is not None and not harness.pid_alive(pid), "TERM: daemon exited")
    if isinstance(rc, int):
        t.is_(rc, 0, "TERM: daemon's exit status 0")
    else:
        t.skip("TERM: daemon's exit status 0", "not our child, status unknown")
    t.ok(not os.path.exists(pidfile), "TERM: pidfile removed")
    t.ok(not [k for k in kids if harness.pid_alive(k)], "TERM: no child left")
    t.like("\n".join(w.log_lines()[-1:]), r"master\[%d\] info: exiting" % pid,
           "TERM: the log ends with 'exiting'")


harness.run(main)
