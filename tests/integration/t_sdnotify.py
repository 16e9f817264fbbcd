#!/usr/bin/env python3
"""Service manager integration: wsgate speaks the sd_notify protocol to a
datagram socket this test owns, as systemd's Type=notify expects (READY=1
once serving, RELOADING=1 + MONOTONIC_USEC then READY=1 on HUP, STOPPING=1
on TERM, WATCHDOG=1 every WATCHDOG_USEC/2), every message from the master's
pid; a service manager that goes away costs one warning and nothing else.
The unit file (contrib/wsgate.service.in) passes `systemd-analyze verify`."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402


class Manager:
    """The service manager's end: a SOCK_DGRAM socket with SO_PASSCRED, so
    each message comes with the sender's pid as the kernel saw it."""

    def __init__(self, t, addr):
        self.addr = addr
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + addr[1:] if addr.startswith("@") else addr)
        self.msgs = []      # (monotonic time, sender pid, {key: value}, raw)

    def poll(self, timeout):
        """Read what arrives within timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _flags, _addr = self.sock.recvmsg(
                4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            return None
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:struct.calcsize("3i")])[0]
        text = data.decode("utf-8", "replace")
        fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
        m = (time.monotonic(), pid, fields, text)
        self.msgs.append(m)
        return m

    def wait(self, key, timeout):
        """The next message carrying key, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.poll(max(0.01, deadline - time.monotonic()))
            if m and key in m[2]:
                return m
        return None

    def close(self):
        self.sock.close()
        if not self.addr.startswith("@"):
            os.unlink(self.addr)


def start(t, w, env):
    """Start w with env added to its environment."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        w.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=T(2)).close()
        return True
    except OSError:
        return False


def test_notify(t):
    mgr = Manager(t, t.path("notify.sock"))
    w = t.wsgate("notify", workers=2)
    # WATCHDOG_PID unset: the watchdog is ours (sd_watchdog_enabled(3)).
    start(t, w, {"NOTIFY_SOCKET": mgr.addr, "WATCHDOG_USEC": "1000000"})

    m = mgr.wait("READY", T(10))
    t.ok(m is not None, "READY=1 received", diag=lambda: "messages: %r" % mgr.msgs)
    if m is None:
        return
    t.is_(m[2].get("READY"), "1", "READY=1")
    t.is_(m[1], w.pid, "READY=1 comes from the master's pid (NotifyAccess=main)")
    t.like(m[2].get("STATUS", ""), r"^Serving: generation 1, 2 workers, 1 dbwriters$",
           "READY=1 carries STATUS=Serving: generation 1, ...")
    t.ok(connects(w.port) and connects(w.admin_port),
         "after READY=1 the listeners accept connections")

    # Watchdog: every WATCHDOG_USEC/2; a gap of WATCHDOG_USEC would make
    # systemd kill the service, so none may come near it.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.2:
        mgr.poll(0.1)
    pings = [x for x in mgr.msgs if x[0] >= t0 and x[2].get("WATCHDOG") == "1"]
    times = [t0] + [x[0] for x in pings]
    gaps = [b - a for a, b in zip(times, times[1:])]
    t.ok(5 <= len(pings) <= 8, "WATCHDOG_USEC=1s: %d WATCHDOG=1 in 3.2 s (every 0.5 s)"
         % len(pings))
    t.ok(gaps and max(gaps) < 1.0, "no watchdog gap reaches WATCHDOG_USEC (max %.3fs)"
         % (max(gaps) if gaps else -1))
    t.ok(all(x[1] == w.pid for x in mgr.msgs),
         "every message so far from the master (no child ever notifies)",
         diag=lambda: "senders: %r, master %d" % (sorted({x[1] for x in mgr.msgs}), w.pid))

    # HUP: RELOADING=1 with MONOTONIC_USEC taken when the reload started,
    # then READY=1 once the new generation runs.
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    mark = len(mgr.msgs)
    w.signal(signal.SIGHUP)
    rel = mgr.wait("RELOADING", T(5))
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    t.ok(rel is not None and rel[2].get("RELOADING") == "1", "HUP: RELOADING=1")
    usec = int((rel or (0, 0, {}))[2].get("MONOTONIC_USEC", "0") or 0)
    t.ok(before * 1e6 <= usec <= after * 1e6,
         "HUP: MONOTONIC_USEC is CLOCK_MONOTONIC at the reload (%d in [%d, %d])"
         % (usec, before * 1e6, after * 1e6))
    rdy = mgr.wait("READY", T(10))
    t.ok(rdy is not None and rdy[2].get("READY") == "1", "HUP: READY=1 after RELOADING=1")
    t.like((rdy or (0, 0, {}))[2].get("STATUS", ""), r"^Serving: generation 2,",
           "HUP: STATUS names generation 2")
    t.ok(w.wait_log(r"reload complete generation=2", T(5)) is not None,
         "HUP: the reload did complete")
    t.ok(rdy is not None and rel is not None and rel[0] <= rdy[0] and
         not any("READY" in x[2] for x in mgr.msgs[mark:] if x[0] < rel[0]),
         "HUP: no READY=1 between the HUP and RELOADING=1")

    # A reload that fails still ends the reload for the manager: READY=1,
    # with a STATUS that says so.
    w.write_config(extra="bogus_directive 1\n")
    w.signal(signal.SIGHUP)
    rel = mgr.wait("RELOADING", T(5))
    rdy = mgr.wait("READY", T(10))
    t.ok(rel is not None and rdy is not None, "failed reload: RELOADING=1 then READY=1")
    t.like((rdy or (0, 0, {}))[2].get("STATUS", ""),
           r"^Reload failed, serving: generation 2,",
           "failed reload: STATUS says it failed and generation 2 serves")
    w.write_config()

    # TERM: STOPPING=1 at once, then a clean exit.
    w.signal(signal.SIGTERM)
    stp = mgr.wait("STOPPING", T(5))
    t.ok(stp is not None and stp[2].get("STOPPING") == "1", "TERM: STOPPING=1")
    t.is_(stp and stp[1], w.pid, "TERM: STOPPING=1 from the master")
    t.is_(w.wait_exit(T(w.shutdown_timeout + 5)), 0, "TERM: exit status 0")
    t.ok(all(x[1] == w.pid for x in mgr.msgs), "all %d messages came from the master"
         % len(mgr.msgs))
    t.is_(w.grep_log(r"cannot notify"), [], "no notification failed")
    mgr.close()


def test_abstract_and_gone(t):
    """@abstract address; WATCHDOG_PID of another process: no watchdog; the
    manager disappears: one warning, service unaffected."""
    name = "@wsgate-test-%d" % os.getpid()
    mgr = Manager(t, name)
    w = t.wsgate("abstract", workers=1)
    start(t, w, {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    m = mgr.wait("READY", T(10))
    t.ok(m is not None and m[1] == w.pid, "abstract socket: READY=1 from the master")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:
        mgr.poll(0.1)
    t.ok(not any("WATCHDOG" in x[2] for x in mgr.msgs),
         "WATCHDOG_PID=1 (not us): no WATCHDOG=1")

    mgr.close()
    for _ in range(3):
        w.signal(signal.SIGHUP)
        w.wait_log(r"reload complete", T(10))
    t.is_(len(w.grep_log(r"master\[\d+\] warn: cannot notify the service manager: "
                         r"[^=]+ socket=%s$" % re.escape(name))), 1,
          "manager gone: one warning for 6 failed notifications")
    t.ok(w.healthz_ok(), "manager gone: still serving")
    t.is_(w.stop(), 0, "manager gone: TERM still exits 0")


def test_unit(t):
    """systemd-analyze verify on the unit with this build's binary; its
    Documentation= pages are ours."""
    tmpl = os.path.join(harness.SRCDIR, "contrib", "wsgate.service.in")
    built = os.path.join(os.environ.get("WSGATE_BUILDDIR", ""), "wsgate.service")
    if os.path.exists(built):
        with open(built) as f:
            text = f.read()
        t.unlike(text, r"@\w+@", "built wsgate.service: every @dir@ substituted")
        t.like(text, r"(?m)^ExecStart=/\S+/wsgate -c /\S+/wsgate/wsgate\.conf",
               "built wsgate.service: ExecStart names the installed binary and config")
    else:
        t.skip("built wsgate.service", "no build dir", 2)
    if not shutil.which("systemd-analyze"):
        t.skip("systemd-analyze verify", "systemd-analyze not installed (apt-get install systemd)")
        return
    d = t.mkdir("unit")
    man = t.mkdir("unit/man")
    for page, sect in (("wsgate.8", "man8"), ("wsgate.conf.5", "man5")):
        os.makedirs(os.path.join(man, sect), exist_ok=True)
        shutil.copy(os.path.join(harness.SRCDIR, "doc", page), os.path.join(man, sect))
    with open(tmpl) as f:
        text = f.read()
    text = text.replace("@sbindir@", os.path.dirname(harness.WSGATE_BIN))
    text = text.replace("@sysconfdir@", d)
    unit = os.path.join(d, "wsgate.service")
    with open(unit, "w") as f:
        f.write(text)
    env = dict(os.environ, MANPATH=man, SYSTEMD_LOG_LEVEL="notice")
    # Documentation= is checked with man(1) when there is one.
    man_opt = [] if shutil.which("man") else ["--man=no"]
    if man_opt:
        t.note("man not installed: Documentation= not checked")
    r = subprocess.run(["systemd-analyze", "verify"] + man_opt + [unit],
                       stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=T(60),
                       env=env, cwd=d)
    out = r.stdout.decode(errors="replace")
    t.is_(r.returncode, 0, "systemd-analyze verify wsgate.service", diag=out)
    t.is_(out.strip(), "", "systemd-analyze verify: no warnings")


def main(t):
    t.need_binary()
    test_notify(t)
    test_abstract_and_gone(t)
    test_unit(t)


harness.run(main)
