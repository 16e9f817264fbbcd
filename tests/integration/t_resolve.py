#!/usr/bin/env python3
"""Host names never block an event loop: redis_host, the upstream_url's
host and pg_conninfo's host list are looked up off the workers' and the
dbwriters' loops, before each connection attempt.

The test runs in network and mount namespaces of its own (root needed):
loopback only, /etc/resolv.conf bound to tests/integration/dnsserver.py
on 127.0.0.1:53, whose zone the test edits as it goes:
- names for all three: requests answered, rows written; Redis' name
  with a refusing address first, the second tried at once;
- a PostgreSQL host list (a name that does not resolve, one whose port
  is dead, then a name): the first skipped with a log line, the last
  used;
- a name whose first address stalls, and a list of two addresses whose
  first stalls: PostgreSQL reached at the second (each host gets its
  own connection and connect_timeout);
- Redis addresses that drop the connection request, or take it and
  never answer (a PING, a SELECT): the attempt times out, the connection
  is given up and the next address used;
- more than 8 names in pg_conninfo: said, and left to libpq;
- lookups answered after 4 s: the worker serves echo and /healthz, and
  the dbwriter takes its workers' connections, before the answer; then
  Redis and PostgreSQL are reached;
- names unknown (NXDOMAIN): logged, 503 "config store unavailable",
  /readyz 503; once the zone has them, the next attempts connect;
- names that stop resolving once connected (taken out of the zone),
  then every connection lost: each lookup's failure logged, and Redis,
  PostgreSQL and the upstream reached again at the addresses their last
  lookup gave; requests answered, rows written."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402
from t_pipeline import Client, expect_error  # noqa: E402

DNS_PY = os.path.join(harness.HERE, "dnsserver.py")
DELAY = 4.0             # seconds a slow lookup takes
TABLE = "resp_resolve"


class Dns:
    """dnsserver.py on 127.0.0.1:53 of this namespace, and its zone."""

    def __init__(self, t):
        self.zone_file = os.path.join(t.dir, "zone.json")
        self.log = os.path.join(t.dir, "dns.log")
        self.zone = {"ready.wsgate.test": {"a": ["127.0.0.1"]}}
        self.save()
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, DNS_PY, "--listen", "127.0.0.1:53", "--zone", self.zone_file],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        harness.REG.add(self.proc.pid, "dnsserver", self.proc)

    def save(self):
        tmp = self.zone_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.zone, f)
        os.rename(tmp, self.zone_file)

    def set(self, name, addrs, delay=0.0):
        self.zone[name] = {"a": list(addrs), "delay": delay}
        self.save()

    def remove(self, name):
        """NXDOMAIN for name from now on."""
        del self.zone[name]
        self.save()

    def answers(self, name):
        """Wall-clock times of the A answers given for name."""
        with open(self.log) as f:
            return [float(l.split()[0]) for l in f
                    if len(l.split()) >= 3 and l.split()[1] == name and l.split()[2] == "1"]


def private_resolver(t):
    """Network and mount namespaces of our own whose resolver is ours."""
    rc = os.path.join(t.dir, "resolv.conf")
    with open(rc, "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:%d attempts:2\n" % (DELAY + 4))
    return harness.private_network(rc)


def resolves(name):
    try:
        return socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return None


def log_times(w, regex):
    """Wall-clock times of the log lines matching regex."""
    out = []
    for m in w.grep_log(regex):
        stamp = m.string.split()[0]         # 2026-11-27T17:44:17.919Z
        out.append(time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
                   - time.timezone + float("0" + stamp[19:-1]))
    return out


def wait_ready(w, status, body, timeout):
    """Wait until /readyz answers status and body; the last answer."""
    last = [None]

    def check():
        st, text = harness.try_http_get(w.admin_port, "/readyz")
        last[0] = (st, text.strip())
        return last[0] == (status, body)
    harness.wait_for(check, timeout, 0.1)
    return last[0]


def request(c, rid, user="u1"):
    return c.call('{"id":"%s","user-id":"%s","payload":{"n":1}}' % (rid, user), timeout=T(10))


def requests_land(t, w, pg, rids, label):
    """Each request answered 200 on one connection, then one row each."""
    c = Client(w.port)
    for rid in rids:
        rep = request(c, rid)
        t.is_((rep.obj or {}).get("status"), 200, "%s: request %s answered 200" % (label, rid),
              lambda: repr(rep))
    c.close()
    pl.check_rows(t, pg, TABLE, ['"%s"' % rid for rid in rids], label)


def logged(w, regex, timeout):
    """Whether a log line matches regex within timeout (lines stay)."""
    return bool(harness.wait_for(lambda: w.grep_log(regex), timeout))


def test_names(t, dns, pg, r, up):
    """Redis, the upstream and PostgreSQL by name.  Redis' name has two
    addresses: 127.0.0.1, which glibc puts first (RFC 6724 rule 9) and
    where nothing listens on that port, and 127.0.0.3, where a Redis of
    this test's own network namespace does."""
    r3 = t.start_redis(bind="127.0.0.3")
    r3.command("SET", "cfg:u1", json.dumps({"u": "u1"}))
    dns.set("redis.wsgate.test", ["127.0.0.3", "127.0.0.1"])
    dns.set("pg.wsgate.test", ["127.0.0.1"])
    dns.set("up.wsgate.test", ["127.0.0.1"])
    t.is_(resolves("redis.wsgate.test"), "127.0.0.1",
          "names: redis.wsgate.test gives 127.0.0.1 first")
    w = pl.gateway(t, "names", pg, r3, up, TABLE, redis_host="redis.wsgate.test",
                   url=up.url.replace("127.0.0.1", "up.wsgate.test"),
                   pg_conninfo=pg.conninfo.replace("host=127.0.0.1", "host=pg.wsgate.test"))
    w.start()
    t.is_(wait_ready(w, 200, "ready", T(15)), (200, "ready"),
          "names: /readyz 200 (Redis and PostgreSQL reached by name)")
    requests_land(t, w, pg, ["n%d" % i for i in range(4)], "names")
    for n in ("redis.wsgate.test", "pg.wsgate.test", "up.wsgate.test"):
        t.ok(dns.answers(n), "names: %s was looked up in DNS" % n)
    t.is_([m.string for m in w.grep_log(r"Redis unavailable|PostgreSQL connection failed")],
          [], "names: Redis' refusing first address cost no failed attempt (the "
          "second is tried at once)")
    w.stop()
    t.stop_redis(r3)


def test_pg_list(t, dns, pg, r, up):
    """A host list: a name that does not resolve (skipped, as libpq
    would), a name whose port is dead, then a name that works."""
    dns.set("dead.wsgate.test", ["127.0.0.1"])
    dead = harness.free_port()
    conninfo = pg.conninfo.replace(
        "host=127.0.0.1 port=%d" % pg.port,
        "host=gone.wsgate.test,dead.wsgate.test,pg.wsgate.test port=%d,%d,%d"
        % (dead, dead, pg.port))
    t.like(conninfo, r"host=gone\.wsgate\.test,dead\.wsgate\.test,pg\.wsgate\.test "
           r"port=\d+,\d+,%d" % pg.port, "list: conninfo with three hosts and three ports")
    w = pl.gateway(t, "list", pg, r, up, TABLE, pg_conninfo=conninfo)
    w.start()
    t.ok(logged(w, r"dbwriter\[\d+\] warn: PostgreSQL host skipped: cannot resolve "
                r"gone\.wsgate\.test: Name or service not known", T(15)),
         "list: 'PostgreSQL host skipped: cannot resolve gone.wsgate.test: ...' logged")
    t.ok(logged(w, r"dbwriter\[\d+\] info: connected to PostgreSQL", T(15)),
         "list: the dbwriter connected through the host list's last entry")
    requests_land(t, w, pg, ["list1"], "list")
    t.ok(dns.answers("dead.wsgate.test"), "list: the second name was looked up too")
    w.stop()

    # More names than are looked up in the background: said, and libpq
    # looks them up itself (blocking the dbwriter, as the line says).
    names = ["n%d.wsgate.test" % i for i in range(9)]
    for n in names:
        dns.set(n, ["127.0.0.1"])
    w = pl.gateway(t, "ninenames", pg, r, up, TABLE,
                   pg_conninfo=pg.conninfo.replace("host=127.0.0.1", "host=" + ",".join(names)))
    w.start()
    t.ok(logged(w, r"dbwriter\[\d+\] warn: pg_conninfo: more than 8 host names; libpq looks "
                r"them up itself, blocking the dbwriter", T(10)),
         "9 names: 'more than 8 host names; libpq looks them up itself' logged")
    t.ok(logged(w, r"dbwriter\[\d+\] info: connected to PostgreSQL", T(15)),
         "9 names: connected all the same")
    w.stop()


def mute_first(t, dns, name, port, label):
    """A listener on 127.0.0.1:port that takes connections and never
    answers, and `name` with 127.0.0.1 (which glibc sorts first) and
    127.0.0.3, where the real server listens.  Returns the listener."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", port))
    mute.listen(64)
    dns.set(name, ["127.0.0.3", "127.0.0.1"])
    t.is_(resolves(name), "127.0.0.1", "%s: %s gives the mute 127.0.0.1 first" % (label, name))
    return mute


def test_pg_stall(t, dns, r, up):
    """The first host takes the connection and never answers: libpq waits
    connect_timeout there, then the next host, where a PostgreSQL of this
    namespace listens, is tried.  Once as a name with two addresses
    (glibc sorts the stalling 127.0.0.1 first), once as a plain list of
    two addresses."""
    pg3 = t.start_postgres(host="127.0.0.3")
    stall = mute_first(t, dns, "stall.wsgate.test", pg3.port, "stall")
    for i, hosts in enumerate(("stall.wsgate.test", "127.0.0.1,127.0.0.3")):
        label = "stall, host=%s" % hosts
        w = pl.gateway(t, "stall%d" % i, pg3, r, up, TABLE,
                       pg_conninfo="host=%s port=%d user=postgres dbname=wsgate "
                       "connect_timeout=2" % (hosts, pg3.port))
        w.start()
        t.ok(logged(w, r"dbwriter\[\d+\] info: connected to PostgreSQL", T(20)),
             "%s: the dbwriter connected through the second address" % label)
        timed_out = [m.string for m in w.grep_log(r"PostgreSQL connection timed out")]
        t.ok(timed_out and all(re.search(r'timed out: connection to server at "127\.0\.0\.1", '
                                         r'port %d failed; trying the next host$' % pg3.port, l)
                               for l in timed_out),
             "%s: each time-out on 127.0.0.1 says so and goes on to the next host" % label,
             lambda: repr(timed_out))
        t.is_([m.string for m in
               w.grep_log(r"PostgreSQL connection (failed|timed out).*retry_in")],
              [], "%s: no attempt failed as a whole" % label)
        requests_land(t, w, pg3, ["stall%d" % i], label)
        w.stop()
    stall.close()
    t.stop_postgres(pg3)


def test_redis_silent(t, dns, pg, up):
    """Redis addresses that never answer: one that drops the connection
    request (a route into the void), one that takes the connection and
    never says a word.  Neither holds the worker's Redis client: the
    first attempt times out, the second is given up when the first PING
    goes unanswered (the connection never counted as up) and the next
    address is tried.  And a Redis that hangs (SIGSTOP) once connected:
    given up after three redis_timeout without a PONG, /readyz 503; back
    once it answers again."""
    subprocess.run(["ip", "route", "add", "10.77.0.1/32", "dev", "lo"], check=True)
    dns.set("redis-void.wsgate.test", ["10.77.0.1"])
    w = pl.gateway(t, "void", pg, types.SimpleNamespace(port=6379), up, TABLE,
                   redis_host="redis-void.wsgate.test", redis_timeout="500ms", workers=1)
    w.start()
    t.ok(logged(w, r"worker\[\d+\] warn: Redis unavailable: connection timed out "
                r"retry_in=\d+ms", T(5)),
         "void: 'Redis unavailable: connection timed out' within 5 s (no connect timeout "
         "of the kernel's minutes)")
    w.stop()

    r3 = t.start_redis(bind="127.0.0.3")
    r3.command("SET", "cfg:u1", json.dumps({"u": "u1"}))
    stall = mute_first(t, dns, "redis-mute.wsgate.test", r3.port, "mute")
    w = pl.gateway(t, "mute", pg, r3, up, TABLE, redis_host="redis-mute.wsgate.test",
                   redis_timeout="500ms", workers=1)
    w.start()
    t.ok(logged(w, r"worker\[\d+\] warn: Redis at 127\.0\.0\.1 port %d: no answer to PING; "
                r"trying the next address$" % r3.port, T(10)),
         "mute: 'Redis at 127.0.0.1 port N: no answer to PING; trying the next address'")
    t.is_(wait_ready(w, 200, "ready", T(10)), (200, "ready"),
          "mute: /readyz 200 once the next address answers")
    ups = [m.string for m in w.grep_log(r"worker\[\d+\] (info: (connected to Redis|Redis "
                                        r"connection restored)|warn: Redis)")]
    t.ok(len(ups) == 2 and "no answer to PING" in ups[0] and "connected to Redis" in ups[1],
         "mute: the mute address never counted as connected; the next one did",
         lambda: "\n".join(ups))
    requests_land(t, w, pg, ["mute1"], "mute")

    # The real one hangs: connected, then nothing.
    os.kill(r3.proc.pid, signal.SIGSTOP)
    try:
        t.ok(logged(w, r"worker\[\d+\] warn: Redis has not answered a PING for "
                    r"\d+\.\ds: reconnecting", T(10)),
             "hang: 'Redis has not answered a PING for ...s: reconnecting' logged")
        t.is_(wait_ready(w, 503, "redis unavailable", T(5)), (503, "redis unavailable"),
              "hang: /readyz 503 'redis unavailable'")
    finally:
        os.kill(r3.proc.pid, signal.SIGCONT)
    t.is_(wait_ready(w, 200, "ready", T(15)), (200, "ready"),
          "hang: /readyz 200 once Redis answers again")
    requests_land(t, w, pg, ["hang1"], "hang")
    w.stop()

    # Only the mute address, and a SELECT to send: the set-up's deadline.
    w = pl.gateway(t, "mute-select", pg, r3, up, TABLE, redis_host="127.0.0.1",
                   redis_port=r3.port, redis_db=1, redis_timeout="500ms", workers=1)
    w.start()
    t.ok(logged(w, r"worker\[\d+\] warn: Redis unavailable: no answer to AUTH/SELECT "
                r"retry_in=\d+ms", T(5)),
         "mute, redis_db 1: 'Redis unavailable: no answer to AUTH/SELECT' within 5 s")
    w.stop()
    stall.close()
    t.stop_redis(r3)


def test_slow(t, dns, pg, r, up):
    """Lookups that take DELAY seconds hold up no loop."""
    dns.set("redis-slow.wsgate.test", ["127.0.0.1"], DELAY)
    dns.set("pg-slow.wsgate.test", ["127.0.0.1"], DELAY)
    w = pl.gateway(t, "slow", pg, r, up, TABLE, redis_host="redis-slow.wsgate.test",
                   echo_path="/echo", workers=1,
                   pg_conninfo=pg.conninfo.replace("host=127.0.0.1", "host=pg-slow.wsgate.test"))
    w.start()
    c = Client(w.port, "/echo")
    c.send("ping during the lookups")
    rep = c.recv(T(5))
    echoed = time.time()
    healthz = harness.try_http_get(w.admin_port, "/healthz")[0]
    healthz_at = time.time()
    c.close()
    t.is_(rep.raw, b"ping during the lookups", "slow: the worker echoes while Redis' name "
          "is looked up", lambda: repr(rep))
    t.is_(healthz, 200, "slow: /healthz answers meanwhile")
    t.ok(logged(w, r"dbwriter\[\d+\] info: connected to PostgreSQL", T(DELAY + 15)),
         "slow: the dbwriter reached PostgreSQL after the lookup")
    t.is_(wait_ready(w, 200, "ready", T(DELAY + 15)), (200, "ready"),
          "slow: /readyz 200 once both names were answered")
    redis_at, pg_at = dns.answers("redis-slow.wsgate.test"), dns.answers("pg-slow.wsgate.test")
    t.ok(redis_at and echoed < min(redis_at) and healthz_at < min(redis_at),
         "slow: echo and /healthz answered before DNS answered redis-slow",
         lambda: "echo at %.3f, healthz at %.3f, DNS answers %r" % (echoed, healthz_at, redis_at))
    accepted = log_times(w, r"dbwriter\[\d+\] info: worker connected slot=0")
    t.ok(pg_at and accepted and min(accepted) < min(pg_at),
         "slow: the dbwriter took the worker's connection before DNS answered pg-slow",
         lambda: "worker connected at %r, DNS answers %r" % (accepted, pg_at))
    requests_land(t, w, pg, ["slow1"], "slow: then")
    w.stop()


def test_unknown(t, dns, pg, r, up):
    """NXDOMAIN: said, and connected once the names exist."""
    w = pl.gateway(t, "unknown", pg, r, up, TABLE, redis_host="redis-new.wsgate.test",
                   workers=1,
                   pg_conninfo=pg.conninfo.replace("host=127.0.0.1", "host=pg-new.wsgate.test"))
    w.start()
    t.ok(logged(w, r"worker\[\d+\] warn: Redis unavailable: cannot resolve "
                r"redis-new\.wsgate\.test: Name or service not known retry_in=\d+ms", T(10)),
         "unknown: 'Redis unavailable: cannot resolve redis-new.wsgate.test: ...' logged")
    t.ok(logged(w, r"dbwriter\[\d+\] warn: PostgreSQL connection failed: cannot resolve "
                r"pg-new\.wsgate\.test: Name or service not known retry_in=\d+ms", T(10)),
         "unknown: 'PostgreSQL connection failed: cannot resolve pg-new.wsgate.test: ...' logged")
    st = harness.try_http_get(w.admin_port, "/readyz")[0]
    t.is_(st, 503, "unknown: /readyz 503")
    c = Client(w.port)
    expect_error(t, request(c, "unk1"), 503, "config store unavailable",
                 "unknown: a request meanwhile", rid="unk1")
    c.close()
    dns.set("redis-new.wsgate.test", ["127.0.0.1"])
    dns.set("pg-new.wsgate.test", ["127.0.0.1"])
    # Redis retries within 5 s, PostgreSQL's backoff by then up to 30 s.
    t.is_(wait_ready(w, 200, "ready", T(40)), (200, "ready"),
          "unknown: /readyz 200 once the zone has both names (looked up again)")
    requests_land(t, w, pg, ["unk2"], "unknown: then")
    w.stop()


def test_kept(t, dns, pg, r, up):
    """Names that stop resolving keep the addresses they had: a DNS
    server that fails for a while does not cut the gateway off from
    servers that are still there."""
    names = {"redis": "redis-kept.wsgate.test", "pg": "pg-kept.wsgate.test",
             "up": "up-kept.wsgate.test"}
    for n in names.values():
        dns.set(n, ["127.0.0.1"])
    w = pl.gateway(t, "kept", pg, r, up, TABLE, redis_host=names["redis"], workers=1,
                   url=up.url.replace("127.0.0.1", names["up"]),
                   pg_conninfo=pg.conninfo.replace("host=127.0.0.1", "host=" + names["pg"]))
    w.start()
    t.is_(wait_ready(w, 200, "ready", T(15)), (200, "ready"), "kept: /readyz 200 by name")
    requests_land(t, w, pg, ["kept1"], "kept: before")
    for n in names.values():
        dns.remove(n)
    t.is_(resolves(names["redis"]), None, "kept: the names no longer resolve")
    # Every connection lost: each is made again, after a lookup that fails.
    t.like(r.command("CLIENT", "KILL", "TYPE", "normal").decode(), r"^:[1-9]",
           "kept: Redis dropped the worker's connection")
    killed = pg.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
    t.ok(int(killed[0][0]) >= 1, "kept: PostgreSQL dropped the dbwriter's connections")
    for what, regex in (
            ("Redis", r"worker\[\d+\] warn: Redis: cannot resolve redis-kept\.wsgate\.test: "
                      r"Name or service not known; trying the addresses it had"),
            ("PostgreSQL", r"dbwriter\[\d+\] warn: PostgreSQL: cannot resolve "
                           r"pg-kept\.wsgate\.test: Name or service not known; "
                           r"trying the addresses it had unlogged=0$")):
        t.ok(logged(w, regex, T(20)),
             "kept: '%s: cannot resolve ...; trying the addresses it had' logged" % what)
    pgl = w.grep_log(r"PostgreSQL: cannot resolve pg-kept")
    t.ok(1 <= len(pgl) <= 2, "kept: the dbwriter's %d connections, each looking the name up, "
         "log it once (%d lines)" % (int(killed[0][0]), len(pgl)),
         lambda: "\n".join(m.string for m in pgl))
    t.is_(wait_ready(w, 200, "ready", T(20)), (200, "ready"),
          "kept: /readyz 200 again, the names still unresolvable")
    # The upstream looks its name up again after a connection error.
    up.stop()
    wall0 = time.time()
    c = Client(w.port)
    reps = [request(c, "kept-down%d" % i) for i in range(40)]
    c.close()
    wall1 = time.time()
    t.is_(sorted(set((rp.obj or {}).get("status") for rp in reps)), [502],
          "kept: 40 requests while the upstream is down: 502 each",
          lambda: repr([rp for rp in reps if (rp.obj or {}).get("status") != 502][:3]))
    up.start()
    t.ok(logged(w, r"worker\[\d+\] warn: upstream: cannot resolve up-kept\.wsgate\.test: "
                r"Name or service not known; trying the addresses it had unlogged=0$", T(20)),
         "kept: 'upstream: cannot resolve ...; trying the addresses it had' logged")
    # Each refused connection calls for a lookup: at most one a second.
    looked = [x for x in dns.answers(names["up"]) if wall0 <= x <= wall1 + 0.5]
    t.ok(1 <= len(looked) <= 2 + (wall1 - wall0),
         "kept: 40 refused connections in %.1fs, %d lookups of the upstream's name"
         % (wall1 - wall0, len(looked)))
    t.ok(len(w.grep_log(r"upstream: cannot resolve up-kept")) <= 2,
         "kept: the failed lookups are not logged each",
         lambda: "\n".join(m.string for m in w.grep_log(r"upstream: cannot resolve")))
    t.is_(resolves(names["pg"]), None, "kept: (still NXDOMAIN)")
    requests_land(t, w, pg, ["kept2", "kept3"], "kept: after")
    t.is_([m.string for m in w.grep_log(r"Redis unavailable: cannot resolve")], [],
          "kept: Redis never counted as unavailable for the lookup")
    w.stop()


def main(t):
    t.need_binary()
    if not harness.IS_ROOT:
        t.skip_all("namespaces and a resolver on port 53 need root")
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    why = private_resolver(t)
    if why is not None:
        t.skip_all("no private network namespace (%s)" % why)
    dns = Dns(t)
    t.ok(harness.wait_for(lambda: resolves("ready.wsgate.test") == "127.0.0.1", T(10)),
         "this namespace resolves names through the test's DNS server")
    pg, r, up = pl.setup_services(t, users=("u1",))
    test_names(t, dns, pg, r, up)
    test_pg_list(t, dns, pg, r, up)
    test_pg_stall(t, dns, r, up)
    test_redis_silent(t, dns, pg, up)
    test_slow(t, dns, pg, r, up)
    test_unknown(t, dns, pg, r, up)
    test_kept(t, dns, pg, r, up)


harness.run(main, watchdog=240)
