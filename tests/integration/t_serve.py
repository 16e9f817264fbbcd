#!/usr/bin/env python3
"""wsgate starts and serves: the process tree (master, N workers, M
dbwriters), the admin listener's /healthz and 404s, the client listener's
404, privilege drop with `user`, many concurrent connections, and a burst
of WebSockets spread over the workers."""

import os
import re
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402
from wsclient import WS  # noqa: E402


def concurrent_gets(port, path, n, timeout):
    """Open n connections at once, then send GET path on each, then read
    every answer.  Returns (statuses, errors)."""
    socks, errors = [], []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            socks.append(s)
        except OSError as e:
            errors.append("connect: %s" % e)
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
    for s in socks:
        try:
            s.sendall(req)
        except OSError as e:
            errors.append("send: %s" % e)
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    statuses = []
    deadline = time.monotonic() + timeout
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except OSError as e:
                errors.append("recv: %s" % e)
                chunk = b""
            if chunk:
                bufs[s] += chunk
                continue
            m = re.match(rb"HTTP/1\.1 (\d{3}) ", bufs[s])
            statuses.append(int(m.group(1)) if m else None)
            sel.unregister(s)
            s.close()
            del bufs[s]
    for s in list(bufs):
        errors.append("no complete answer (got %r)" % bufs[s][:80])
        s.close()
    return statuses, errors


def uids(pid):
    st = harness.proc_status(pid) or {}
    u = [int(x) for x in st.get("Uid", "-1").split()]
    g = [int(x) for x in st.get("Gid", "-1").split()]
    groups = [int(x) for x in st.get("Groups", "").split()]
    return u, g, groups


def main(t):
    t.need_binary()
    w = t.wsgate(workers=3, dbwriters=2)
    t0 = time.monotonic()
    w.start()
    t.diag("started and healthy in %.2fs" % (time.monotonic() - t0))

    master = harness.proc_stat(w.pid)
    t.is_(master and master[0], "wsgate", "master comm is wsgate")
    kids = w.children()
    workers = [p for p, c, r in kids if c == "wsgate-worker"]
    dbw = [p for p, c, r in kids if c.startswith("wsgate-db")]
    t.is_(len(workers), 3, "3 workers (comm wsgate-worker) are children of the master",
          diag=lambda: "children: %r" % kids)
    t.is_(len(dbw), 2, "2 dbwriters (comm wsgate-db...) are children of the master")
    t.is_(len(kids), 5, "no other children", diag=lambda: "children: %r" % kids)

    for p in workers + dbw:
        role = "worker" if p in workers else "dbwriter"
        m = w.grep_log(r"master\[%d\] info: started pid=%d role=%s slot=\d+ generation=1\b"
                       % (w.pid, p, role))
        t.ok(m, "log: started pid=%d role=%s slot=S generation=1" % (p, role),
             diag=lambda: w.describe())
    slots = sorted(int(m.group(1)) for m in w.grep_log(r"started pid=\d+ role=worker slot=(\d+)"))
    t.is_(len(set(slots)), 3, "3 distinct worker slots", diag=lambda: "slots: %r" % slots)

    bad = [l for l in w.log_lines() if l and not harness.LOG_LINE_RE.match(l)]
    t.ok(not bad, "every log line has the documented format",
         diag=lambda: "\n".join(bad[:10]))

    # -- admin listener --
    r = harness.http_request(w.admin_port, "/healthz")
    t.is_(r.status, 200, "admin GET /healthz: 200")
    t.like(r.text, r"\Aok\n?\Z", "admin GET /healthz: body ok")
    t.is_(r.headers.get("content-length"), str(len(r.body)), "/healthz has a correct Content-Length")
    t.like(r.headers.get("connection", ""), r"(?i)close", "/healthz has Connection: close")
    t.like(r.raw.decode("latin-1"), r"\AHTTP/1\.1 200", "/healthz answers HTTP/1.1")

    st, body = harness.http_get(w.admin_port, "/nope")
    t.is_(st, 404, "admin GET /nope: 404")
    st, body = harness.http_get(w.admin_port, "/healthz/extra")
    t.is_(st, 404, "admin GET /healthz/extra: 404")

    # -- client listener --
    st, body = harness.http_get(w.port, "/")
    t.is_(st, 404, "client listener GET /: 404")
    st, body = harness.http_get(w.port, "/healthz")
    t.is_(st, 404, "client listener GET /healthz: 404 (health is on the admin port only)")

    # Garbage on the admin port closes that connection only.
    try:
        with socket.create_connection(("127.0.0.1", w.admin_port), timeout=T(5)) as s:
            s.sendall(b"\x00\x01 NOT HTTP \r\n\r\n")
            s.recv(4096)
    except OSError:
        pass
    t.ok(w.healthz_ok(), "still healthy after a garbage request")

    # -- many concurrent connections --
    n = 300
    t0 = time.monotonic()
    statuses, errors = concurrent_gets(w.admin_port, "/healthz", n, T(15))
    dt = time.monotonic() - t0
    t.is_(len(errors), 0, "%d concurrent connections: no errors" % n,
          diag=lambda: "\n".join(errors[:10]))
    t.is_(statuses.count(200), n, "%d concurrent /healthz all answered 200 (%.2fs)" % (n, dt))
    statuses, errors = concurrent_gets(w.port, "/", n, T(15))
    t.is_(statuses.count(404), n, "%d concurrent client connections all answered 404" % n,
          diag=lambda: "errors: %r" % errors[:10])
    t.is_(sorted(w.pids("worker")), sorted(workers), "no worker died under load")

    # -- accept balance: a burst of WebSockets spreads over the workers --
    # (a gateway of its own: the sockets of the bursts above, still
    # closing, would count)
    wb = t.wsgate("balance", workers=3)
    wb.start()
    bworkers = wb.pids("worker")
    n = 90
    conns = [WS.connect(wb.port, "/ws", timeout=T(5)) for _ in range(n)]
    time.sleep(0.2)
    per = {p: pl.client_conns(p, wb.port) for p in bworkers}
    t.is_(sum(per.values()), n, "accept balance: %d WebSockets open" % n,
          diag=lambda: repr(per))
    t.ok(len(per) == 3 and min(per.values()) >= n // 6,
         "accept balance: every one of 3 workers has at least %d of %d connections "
         "opened in a burst (%s)" % (n // 6, n, "/".join(str(v) for v in sorted(per.values()))))
    for c in conns:
        c.close()
    wb.stop()

    # -- privilege drop --
    if not harness.IS_ROOT:
        t.skip("privilege drop", "not running as root", 5)
    elif not harness.user_ids("nobody"):
        t.skip("privilege drop", "no user nobody", 5)
    else:
        uid, gid = harness.user_ids("nobody")
        w2 = t.wsgate("dropped", user="nobody")
        for d in (w2.conf["spool_dir"], w2.conf["runtime_dir"]):
            os.chown(d, uid, gid)
        w2.start()
        u, g, groups = uids(w2.pid)
        t.is_(u[0], 0, "user nobody: master stays root")
        kids2 = w2.children()
        ids = {p: uids(p) for p, c, r in kids2}
        t.ok(kids2 and all(ids[p][0] == [uid] * 4 for p in ids),
             "user nobody: every child runs with nobody's uid (real, effective, saved, fs)",
             diag=lambda: "children: %r ids: %r" % (kids2, ids))
        t.ok(kids2 and all(ids[p][1] == [gid] * 4 for p in ids),
             "user nobody: every child runs with nobody's gid",
             diag=lambda: "ids: %r" % ids)
        t.ok(kids2 and all(0 not in ids[p][2] for p in ids),
             "user nobody: no child keeps root's supplementary groups",
             diag=lambda: "ids: %r" % ids)
        t.ok(w2.healthz_ok(), "user nobody: /healthz 200")
        w2.stop()


harness.run(main)
