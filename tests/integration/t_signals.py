#!/usr/bin/env python3
"""Stop signals (TERM, INT, QUIT): exit status 0 within shutdown_timeout,
no child left behind, pidfile removed, listeners closed, `exiting` last in
the log.  USR1 after moving the log file: a new file appears and gets the
new lines."""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=T(2)).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def stop_with(t, sig, hold_connections):
    name = signal.Signals(sig).name[3:]
    w = t.wsgate("w-" + name.lower(), shutdown_timeout="3s")
    w.start()
    pidfile = w.pidfile
    t.is_(harness.read_pidfile(pidfile), w.pid, "%s: pidfile holds the master's pid" % name)
    kids = [p for p, _c, _r in w.children()]
    held = []
    if hold_connections:
        # Idle connections, one on each listener: the stop must not wait on
        # them beyond shutdown_timeout.
        for port in (w.port, w.admin_port):
            s = socket.create_connection(("127.0.0.1", port), timeout=T(2))
            held.append(s)
        time.sleep(0.2)
    t0 = time.monotonic()
    w.signal(sig)
    rc = w.wait_exit(T(w.shutdown_timeout + 5))
    dt = time.monotonic() - t0
    limit = w.shutdown_timeout + 1
    t.is_(rc, 0, "%s: exit status 0" % name, diag=lambda: w.describe())
    t.ok(rc is not None and dt <= limit,
         "%s: exited within shutdown_timeout + 1 s (%.2fs, limit %.1fs)%s"
         % (name, dt, limit, " with idle connections open" if held else ""))
    left = [p for p in kids if harness.pid_alive(p)]
    left_any = [p for p in harness.descendants([w.pid, os.getpid()])
                if harness.pid_alive(p) and (harness.proc_stat(p) or ("",))[0].startswith("wsgate")]
    t.ok(not left and not left_any, "%s: no child left behind" % name,
         diag=lambda: "still alive: %r %r" % (left, left_any))
    t.ok(not os.path.exists(pidfile), "%s: pidfile removed" % name)
    t.ok(refused(w.port) and refused(w.admin_port), "%s: listeners closed" % name)
    lines = [l for l in w.log_lines() if l.strip()]
    t.like(lines[-1] if lines else "", r"master\[%d\] info: exiting" % w.pid,
           "%s: the log ends with 'exiting'" % name)
    exits = dict((int(m.group(1)), m.group(2)) for m in
                 w.grep_log(r"child exited pid=(\d+) role=\w+ slot=\d+ generation=\d+ (\S+)"))
    t.is_(dict((p, exits.get(p)) for p in kids), dict((p, "status=0") for p in kids),
          "%s: every child's exit logged with status=0" % name)
    if sig in (signal.SIGTERM, signal.SIGINT):
        t.ok(w.grep_log(r"master\[%d\] \w+: shutting down signal=%s\b" % (w.pid, name)),
             "%s: log 'shutting down signal=%s'" % (name, name))
    for s in held:
        s.close()


def usr1(t):
    w = t.wsgate("w-usr1")
    w.start()
    kids = w.children()
    log, old = w.log_file, w.log_file + ".1"
    os.rename(log, old)
    w.mark_log()
    w.signal(signal.SIGUSR1)
    t.ok(harness.wait_for(lambda: os.path.exists(log), T(3)),
         "USR1: a new log file appears at log_file")
    t.ok(w.wait_log(r"master\[%d\] \w+: reopening log files" % w.pid, T(3))
         or w.grep_log(r"reopening log files", old),
         "USR1: 'reopening log files' logged")
    # Something for the master to log: a worker killed and replaced.
    victim = w.pids("worker")[0]
    os.kill(victim, signal.SIGKILL)
    m = w.wait_log(r"child exited pid=%d role=worker" % victim, T(5))
    t.ok(m, "USR1: lines written after the reopen go to the new file",
         diag=lambda: "new file:\n%s" % w.log_text())
    t.ok(not w.grep_log(r"child exited pid=%d" % victim, old),
         "USR1: the renamed file gets no new lines")
    t.ok(w.wait_children("worker", 2, T(3), exclude=[victim]) is not None,
         "USR1: killed worker replaced")
    t.is_([c for c in w.children() if c[0] != victim and c[2] != "worker"],
          [c for c in kids if c[2] != "worker"], "USR1 is not a reload: same dbwriter")
    w.mark_log()
    rc = w.stop()
    t.is_(rc, 0, "USR1: TERM afterwards exits 0")
    t.ok(w.grep_log(r"master\[%d\] info: exiting" % w.pid), "USR1: 'exiting' is in the new file")


def main(t):
    t.need_binary()
    stop_with(t, signal.SIGTERM, hold_connections=True)
    stop_with(t, signal.SIGINT, hold_connections=False)
    stop_with(t, signal.SIGQUIT, hold_connections=True)
    usr1(t)


harness.run(main)
