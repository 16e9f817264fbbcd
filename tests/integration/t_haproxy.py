#!/usr/bin/env python3
"""Scale-out behind HAProxy (issue 6 "Scale-out", doc/scaling.md).

Two wsgate instances, A and B, share one Redis, one PostgreSQL and one
upstream.  Debian's haproxy runs contrib/haproxy.cfg in front of them: its
defaults, frontend and backend sections exactly as shipped, the test only
supplying the global section (a private stats socket, no chroot, no
daemon) and the addresses.  The bench tool drives load through HAProxy
with connections that reconnect when they are dropped, every request with
a unique id.  Then:

  SIGHUP of A mid-load: HAProxy sees no failed check of A, no connection
  error and no retry on A, and answers no client with a 5xx; every reply
  is 200;
  SIGTERM of A mid-load: A's clients get a 1001 Close and reconnect
  through HAProxy to B, which answers them (probe connections, and
  replies on every bench connection once A is gone); HAProxy marks A down
  and still answers no client with a 5xx;
  PostgreSQL stopped with only B left: B fails /readyz, HAProxy falls back
  to the hosts that are alive (backend wsgate_alive), so a new connection
  is still served (B spools), and B is ready again once PostgreSQL is
  back;

and at the end every upstream-stage reply the clients received has exactly
one row (by client_id), and no request whose reply never arrived has one
(what a 1001 cut off was never started).

Skipped when haproxy or PostgreSQL is not installed."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402
from t_pipeline import Client, Reply  # noqa: E402
from wsclient import WS, OP_CLOSE  # noqa: E402

CFG = os.path.join(harness.SRCDIR, "contrib", "haproxy.cfg")
TABLE = "scale"
TAG = "S"
CONNS, INFLIGHT, RATE = 6, 4, 300
FRONT, READY, ALIVE = "wsgate_in", "wsgate", "wsgate_alive"   # as shipped
SECTION_RX = re.compile(r"^(global|defaults|frontend|backend|listen|resolvers|"
                        r"peers|userlist|program|http-errors|ring|cache|mailers)\b")


def haproxy_bin():
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which("haproxy", path=path)


def sections(text):
    """The configuration's sections: [[header line, body lines...]]."""
    out = []
    for line in text.splitlines():
        if SECTION_RX.match(line):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


class HAProxy:
    """haproxy in the foreground (-db) on contrib/haproxy.cfg adapted to
    loopback ports: every bind on 127.0.0.1:port, the n-th server line of
    each backend pointing at hosts[n] and checking its admin port."""

    def __init__(self, t, hosts):
        self.t = t
        self.bin = haproxy_bin()
        self.dir = t.mkdir("haproxy")
        self.port = harness.free_port()
        self.sock = os.path.join(self.dir, "admin.sock")
        self.conf = os.path.join(self.dir, "haproxy.cfg")
        self.log = os.path.join(self.dir, "haproxy.log")
        self.names = []         # server names, in the order of hosts
        self.backends = {}      # backend name -> its server lines as shipped
        with open(CFG) as f:
            self.shipped = f.read()
        with open(self.conf, "w") as f:
            f.write(self.adapt(hosts))
        self.proc = None

    def adapt(self, hosts):
        out = ["global",
               "\tstats socket %s mode 600 level admin" % self.sock,
               "\tlog stdout format raw local0",
               "\tmaxconn 4096", ""]
        for sec in sections(self.shipped):
            if sec[0].startswith("global"):
                continue
            n = 0
            for line in sec:
                f = line.split()
                if f[:1] == ["bind"]:
                    line = "\tbind 127.0.0.1:%d" % self.port
                elif f[:1] == ["server"] and "port" in f:
                    h = hosts[n % len(hosts)]
                    self.backends.setdefault(sec[0].split()[1], []).append(line)
                    if n < len(hosts) and f[1] not in self.names:
                        self.names.append(f[1])
                    n += 1
                    f[2] = "127.0.0.1:%d" % h.port
                    f[f.index("port") + 1] = str(h.admin_port)
                    line = "\t" + " ".join(f)
                out.append(line)
        return "\n".join(out) + "\n"

    def check(self, path):
        """haproxy -c: (exit status, output)."""
        r = subprocess.run([self.bin, "-c", "-f", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=T(20))
        return r.returncode, r.stdout.decode(errors="replace")

    def start(self):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([self.bin, "-db", "-f", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.dir)
        harness.REG.add(self.proc.pid, "haproxy", self.proc)
        harness.wait_for(lambda: self.stat() or self.proc.poll() is not None, T(10))
        if self.stat() is None:
            raise RuntimeError("haproxy did not start:\n" + self.tail())
        return self

    def tail(self, n=40):
        return harness._tail(self.log, n)

    def command(self, cmd):
        """One command on the stats socket: its whole answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(T(5))
            s.connect(self.sock)
            s.sendall(cmd.encode() + b"\n")
            with s.makefile("rb") as f:
                return f.read().decode(errors="replace")

    def stat(self):
        """show stat: {(proxy, server): {field: value}}, or None."""
        try:
            lines = self.command("show stat").splitlines()
        except OSError:
            return None
        if not lines or not lines[0].startswith("# "):
            return None
        head = lines[0][2:].split(",")
        res = {}
        for line in lines[1:]:
            if line:
                d = dict(zip(head, line.split(",")))
                res[(d["pxname"], d["svname"])] = d
        return res

    def status(self, backend, server):
        st = self.stat() or {}
        return st.get((backend, server), {}).get("status", "")

    def sessions(self):
        """show sess: {client port: server name} of the sessions to a server."""
        res = {}
        for line in self.command("show sess").splitlines():
            m = re.search(r"src=[0-9.]+:(\d+) .*\bsrv=(\S+)", line)
            if m:
                res[int(m.group(1))] = m.group(2)
        return res


def count(st, px, sv, field):
    v = st.get((px, sv), {}).get(field, "")
    return int(v) if v.isdigit() else 0


def delta(s0, s1, px, sv, field):
    return count(s1, px, sv, field) - count(s0, px, sv, field)


def went_on(t, hp, bn, s0, t0, t1, label):
    """Since stats s0: HAProxy answered no client with a 5xx, and the load
    got replies between t0 and t1, every one 200.  The stats now."""
    s1 = hp.stat()
    t.is_(delta(s0, s1, FRONT, "FRONTEND", "hrsp_5xx"), 0,
          "%s: HAProxy answered no client with a 5xx (%d retries, %d redispatches)"
          % (label, delta(s0, s1, READY, "BACKEND", "wretr"),
             delta(s0, s1, READY, "BACKEND", "wredis")))
    recs = [x for x in bn.records() if t0 <= x.t <= t1]
    t.ok(len(recs) > RATE and all(x.status == 200 for x in recs),
         "%s: load went on, every reply 200 (%d replies)" % (label, len(recs)),
         lambda: repr(sorted(set(x.label() for x in recs))))
    return s1


def conn_of(rec):
    """The bench connection number in a reply's client_id "S.run.conn.seq"."""
    return rec.cid.strip('"').split(".")[2] if rec.cid else None


class Probe:
    """A WebSocket client through HAProxy that knows which host serves it
    (server None: no connection, see err)."""

    def __init__(self, hp):
        self.server = self.err = None
        try:
            self.ws = WS.connect(hp.port, timeout=T(10))
        except (OSError, ValueError) as e:
            self.ws, self.err = None, "%s: %s" % (type(e).__name__, e)
            return
        port = self.ws.s.getsockname()[1]
        self.server = harness.wait_for(lambda: hp.sessions().get(port), T(5))

    def call(self, rid):
        if self.ws is None:
            return Reply(err="no connection (%s)" % self.err)
        c = Client.__new__(Client)
        c.ws = self.ws
        return c.call('{"id":"%s","user-id":"u0","payload":1}' % rid, T(10))

    def close(self):
        if self.ws is not None:
            self.ws.close()


def main(t):
    t.need_binary()
    if not haproxy_bin():
        t.skip_all("haproxy not installed (apt-get install haproxy)")
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    pg, r, up = pl.setup_services(t)
    a = pl.gateway(t, "a", pg, r, up, TABLE).start()
    b = pl.gateway(t, "b", pg, r, up, TABLE).start()
    t.ok(pl.wait_table(a, pg, TABLE), "dbwriter created table %s" % TABLE)
    hp = HAProxy(t, [a, b])

    # -- the shipped file --
    rc, out = hp.check(CFG)
    if harness.user_ids("haproxy"):
        t.is_(rc, 0, "haproxy -c accepts contrib/haproxy.cfg as shipped", out)
    else:
        t.skip("haproxy -c on contrib/haproxy.cfg", "no haproxy user")
    shape = {k: len(v) for k, v in hp.backends.items()}
    t.is_(shape, {READY: 2, ALIVE: 2},
          "contrib/haproxy.cfg: backends %s and %s, two servers each, checked on "
          "their admin port" % (READY, ALIVE))
    t.like(hp.shipped, r"(?m)^\s*option httpchk GET /readyz$", "checks /readyz")
    rc, out = hp.check(hp.conf)
    t.is_(rc, 0, "haproxy -c accepts the test's adaptation", out)
    hp.start()
    wa, wb = hp.names[0], hp.names[1]

    def all_up():
        return all(hp.status(px, sv) == "UP" for px in (READY, ALIVE) for sv in (wa, wb))
    t.ok(harness.wait_for(all_up, T(10)), "HAProxy: both hosts UP (/readyz, /healthz)",
         lambda: "%r\n%s" % (hp.stat(), hp.tail()))

    bn = pl.Bench(t, hp.port, TAG, conns=CONNS, inflight=INFLIGHT, rate=RATE).start()
    time.sleep(2)
    sess = hp.sessions()
    t.ok(wa in sess.values() and wb in sess.values(),
         "leastconn: the load's connections are on both hosts", lambda: repr(sess))

    # -- SIGHUP of A under load: nothing refused, nothing fails --
    s0 = hp.stat()
    t_hup = time.monotonic()
    old = set(a.pids("worker")) | set(a.pids("dbwriter"))
    a.signal(signal.SIGHUP)
    t.ok(harness.wait_for(lambda: len(set(a.pids("worker")) - old) == 2, T(10)),
         "SIGHUP: A starts a new generation")
    t.ok(harness.wait_for(lambda: not old & set(p for p, _c, _r in a.children()),
                          T(a.shutdown_timeout + 8)), "SIGHUP: A's old generation exited")
    time.sleep(1)
    s1 = went_on(t, hp, bn, s0, t_hup, time.monotonic(), "SIGHUP")
    for px in (READY, ALIVE):
        t.is_([delta(s0, s1, px, wa, k) for k in ("chkfail", "chkdown")], [0, 0],
              "SIGHUP: no failed check of A (%s)" % px)
    t.is_([delta(s0, s1, READY, wa, k) for k in ("econ", "eresp", "wretr", "wredis")],
          [0, 0, 0, 0], "SIGHUP: no connection error, response error, retry or "
          "redispatch on A")

    # -- SIGTERM of A under load: its clients move to B --
    probes = []
    while len([p for p in probes if p.server == wa]) < 2 and len(probes) < 10:
        probes.append(Probe(hp))
    on_a = [p for p in probes if p.server == wa]
    on_b = [p for p in probes if p.server == wb]
    t.ok(len(on_a) == 2 and on_b, "probes: %d on A, %d on B" % (len(on_a), len(on_b)))
    s1 = hp.stat()
    a.mark_log()
    a.signal(signal.SIGTERM)
    closes = []
    for p in on_a:
        try:
            closes.append(p.ws.recv_close(T(10))[0])
            p.ws.send_frame(OP_CLOSE, b"\x03\xe8")
        except (OSError, ValueError) as e:
            closes.append("%s: %s" % (type(e).__name__, e))
        p.ws.close()
    t.is_(closes, [1001] * len(on_a), "SIGTERM: A's clients get a 1001 Close")
    rc = a.wait_exit(T(15))
    t_gone = time.monotonic()
    t.is_(rc, 0, "SIGTERM: A exited 0")
    m = a.grep_log(r"stopping slot=\d+ generation=\d+ connections=(\d+)")
    t.ok(sum(int(x.group(1)) for x in m) > len(on_a),
         "SIGTERM: A had bench connections too (%s)" % [x.group(1) for x in m])
    t.ok(harness.wait_for(lambda: hp.status(READY, wa).startswith("DOWN"), T(10)),
         "HAProxy marks A DOWN", lambda: hp.status(READY, wa))
    moved = []
    for i, p in enumerate(on_a):
        q = Probe(hp)
        rep = q.call("probe-a%d" % i)
        moved.append((q.server, rep.obj and rep.obj.get("status")))
        q.close()
    t.is_(moved, [(wb, 200)] * len(on_a),
          "A's probe clients reconnect through HAProxy to B and get answers")
    stay = [p.call("probe-b%d" % i).obj for i, p in enumerate(on_b)]
    t.ok(all(o and o.get("status") == 200 for o in stay),
         "probes on B were not disturbed", lambda: repr(stay))
    for p in on_b:
        p.close()
    time.sleep(2)
    s2 = went_on(t, hp, bn, s1, t_gone + 0.5, time.monotonic(), "SIGTERM")
    served = {conn_of(x) for x in bn.records() if x.t > t_gone + 0.5 and x.status == 200}
    t.is_(len(served), CONNS, "every bench connection is answered again once A is gone")

    # -- PostgreSQL down: no host ready, the alive ones still serve --
    pg.stop()
    t_down = time.monotonic()
    t.ok(harness.wait_for(lambda: hp.status(READY, wb).startswith("DOWN"), T(10)),
         "PostgreSQL down: B fails /readyz, HAProxy marks it not ready (%.1fs)"
         % (time.monotonic() - t_down), lambda: hp.status(READY, wb))
    t.is_(hp.status(ALIVE, wb), "UP", "... and still alive (/healthz)")
    q = Probe(hp)
    rep = q.call("probe-nopg")
    t.ok(q.server == wb and rep.obj and rep.obj.get("status") == 200,
         "a new connection with no host ready is served by B (via %s), reply 200"
         % ALIVE, lambda: "%s %r" % (q.server, rep))
    q.close()
    time.sleep(2)
    pl.pg_restart_same_port(pg)
    t_up = time.monotonic()
    t.ok(harness.wait_for(lambda: hp.status(READY, wb) == "UP", T(15)),
         "PostgreSQL back: B ready again (%.1fs)" % (time.monotonic() - t_up))
    went_on(t, hp, bn, s2, t_down, t_up, "PostgreSQL outage")
    time.sleep(1)

    # -- the rows --
    bn.stop()
    t.note("load: " + bn.summary())
    bn.sane(t, "load")
    t.ok(all(x.status == 200 for x in bn.recs), "load: every reply 200",
         lambda: repr(bn.statuses()))
    pl.check_rows(t, pg, TABLE, bn.stage_cids(), "load", prefix=TAG + ".")
    got = {x.cid for x in bn.recs}
    orphans = sorted(set(pl.row_counts(pg, TABLE, TAG + ".")) - got)
    t.ok(not orphans, "no row for a request whose reply did not arrive (%d requests "
         "in flight on dropped connections)" % bn.get("lost"), lambda: repr(orphans[:20]))
    for g in (a, b):
        # Unclean exits and respawns are logged as warnings (master.c).
        died = [m.string for m in g.grep_log(r"(warn|error): child exited")]
        t.ok(not died, "%s: no child died" % g.name, lambda: "\n".join(died))


harness.run(main, watchdog=60)
