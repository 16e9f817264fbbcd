#!/usr/bin/env python3
"""Redis AUTH and SELECT (wsgate.conf(5) redis_password, redis_username,
redis_db) against a real Redis with a password and an ACL user:

- the default user's password, and a named user's, each with redis_db 3:
  the config comes from database 3, not 0;
- a wrong password: 503 config store unavailable, never an answer, the
  failure logged;
- no password where one is required: the set-up's PING is refused
  (NOAUTH), logged, 503, /readyz 503, never counted as connected;
- redis_db beyond the server's databases: SELECT fails, every request is
  503 (none is served from database 0, where the same key exists), and
  the reconnects back off instead of looping;
- a Redis restarted with a dataset to load (10,000 keys, slowed down by
  key-load-delay to a few seconds) answers -LOADING: the set-up's PING is
  refused and logged, requests are answered 503 at once, /readyz says
  'redis unavailable'; once it has loaded, the worker connects within
  its backoff (5 s at most) and serves again.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
from t_pipeline import Client, echo_body, expect_ok, expect_error, no_worker_died  # noqa: E402

CFG_DB0 = '{"db":0}'
CFG_DB3 = '{"db":3}'


def redis_session(r, *cmds, auth=None):
    """Several commands on one connection (SELECT holds for the rest);
    the raw replies."""
    out = []
    with socket.create_connection(("127.0.0.1", r.port), timeout=T(5)) as s:
        f = s.makefile("rb")
        for args in ((("AUTH",) + auth,) if auth else ()) + cmds:
            req = b"*%d\r\n" % len(args)
            for a in args:
                a = a.encode() if isinstance(a, str) else a
                req += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(req)
            out.append(f.readline())
    return out


def call(w, i):
    c = Client(w.port)
    try:
        return c.call('{"id":"%s","user-id":"u1","payload":%d}' % (i, i))
    finally:
        c.close()


def main(t):
    t.need_binary()
    r = t.start_redis()
    u = t.start_upstream()
    replies = redis_session(r, ("SET", "cfg:u1", CFG_DB0), ("SELECT", "3"),
                            ("SET", "cfg:u1", CFG_DB3),
                            ("ACL", "SETUSER", "gw", "on", ">gwpass", "~*",
                             "+@all"),
                            ("CONFIG", "SET", "requirepass", "defpass"))
    t.ok(all(x.startswith(b"+OK") for x in replies),
         "Redis set up: configs in databases 0 and 3, user gw, requirepass",
         lambda: repr(replies))

    for name, conf in [("password", {"redis_password": "defpass"}),
                       ("user", {"redis_username": "gw",
                                 "redis_password": "gwpass"})]:
        w = t.wsgate("auth-" + name, workers=1, redis_port=r.port,
                     upstream_url=u.url, redis_db=3, **conf)
        w.start()
        for i in range(3):
            expect_ok(t, call(w, i), echo_body("%d" % i, CFG_DB3),
                      "AUTH with the %s, SELECT 3: database 3's config (%d)" %
                      (name, i), rid="%d" % i)
        w.stop()

    w = t.wsgate("auth-wrong", workers=1, redis_port=r.port,
                 upstream_url=u.url, redis_password="wrong")
    w.start()
    for i in range(3):
        expect_error(t, call(w, i), 503, "config store unavailable",
                     "wrong password: 503 (%d)" % i, rid="%d" % i)
    t.ok(w.grep_log(r"Redis AUTH failed"), "wrong password: AUTH failure logged")
    w.stop()

    # No password configured, one required: the set-up's PING is refused,
    # so the connection never counts as up (and /readyz says so).
    w = t.wsgate("auth-none", workers=1, redis_port=r.port, upstream_url=u.url)
    w.start()
    t.ok(harness.wait_for(lambda: w.grep_log(r"worker\[\d+\] warn: Redis PING failed: "
                                             r"NOAUTH Authentication required"), T(5)),
         "no password: 'Redis PING failed: NOAUTH Authentication required' logged")
    expect_error(t, call(w, 0), 503, "config store unavailable", "no password: 503", rid="0")
    st, body = harness.try_http_get(w.admin_port, "/readyz")
    t.ok(st == 503 and "redis unavailable" in body,
         "no password: /readyz 503 'redis unavailable'", lambda: repr((st, body)))
    t.ok(not w.grep_log(r"connected to Redis|Redis connection restored"),
         "no password: never logged as connected")
    w.stop()

    w = t.wsgate("select-bad", workers=1, redis_port=r.port,
                 upstream_url=u.url, redis_password="defpass", redis_db=99)
    w.start()
    statuses = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        rep = call(w, len(statuses))
        statuses.append(rep.obj.get("status") if rep.obj else None)
        time.sleep(0.02)
    t.ok(statuses and all(s == 503 for s in statuses),
         "redis_db 99 (SELECT fails): all %d requests 503, none served from "
         "database 0" % len(statuses), lambda: repr(statuses))
    t.ok(w.grep_log(r"Redis SELECT failed"), "SELECT failure logged")
    n = len(w.grep_log(r"Redis SELECT failed"))
    t.ok(n <= 8, "reconnects back off: %d failed SELECTs in %.1f s" %
         (n, time.monotonic() - t0))
    w.stop()
    loading(t, u)
    no_worker_died(t)


def loading(t, u):
    r = t.start_redis()
    n = 10000
    with socket.create_connection(("127.0.0.1", r.port), timeout=T(10)) as s:
        s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$32\r\n%s\r\n"
                           % (len(k), k, b"x" * 32)
                           for k in (b"fill:%d" % i for i in range(n))))
        got = b""
        while got.count(b"+OK\r\n") < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    replies = redis_session(r, ("SET", "cfg:u1", CFG_DB0), ("SAVE",))
    t.ok(got.count(b"+OK\r\n") == n and all(x.startswith(b"+OK") for x in replies),
         "loading: %d keys and cfg:u1 saved" % n, lambda: repr(replies))
    w = t.wsgate("loading", workers=1, redis_port=r.port, upstream_url=u.url)
    w.start()
    expect_ok(t, call(w, 0), echo_body("0", CFG_DB0), "loading: served before", rid="0")
    r.stop()
    # 300 us a key: about 3 s of loading, answering -LOADING meanwhile.
    r.start(extra=("--key-load-delay", "300", "--loading-process-events-interval-bytes",
                   "1024"), loaded=False)
    t_restart = time.monotonic()
    t.like(r.command("PING").decode(errors="replace"), r"^-LOADING",
           "loading: Redis answers -LOADING while it loads")
    t.ok(harness.wait_for(lambda: w.grep_log(r"worker\[\d+\] warn: Redis PING failed: "
                                             r"LOADING "), T(10)),
         "loading: 'Redis PING failed: LOADING ...' logged", lambda: w.describe())
    t0 = time.monotonic()
    expect_error(t, call(w, 1), 503, "config store unavailable", "loading: 503", rid="1")
    t.ok(time.monotonic() - t0 < 1.0, "loading: ... at once (%.2fs)" % (time.monotonic() - t0))
    st, body = harness.try_http_get(w.admin_port, "/readyz")
    t.ok(st == 503 and "redis unavailable" in body, "loading: /readyz 503 'redis unavailable'",
         lambda: repr((st, body)))
    t.ok(harness.wait_for(r.ping, T(30)), "loading: Redis done loading (%.1fs)"
         % (time.monotonic() - t_restart))
    t_loaded = time.monotonic()
    t.ok(harness.wait_for(lambda: w.grep_log(r"worker\[\d+\] info: Redis connection restored"),
                          T(8)),
         "loading: the worker connected again %.1fs after the load ended (backoff: 5 s at "
         "most)" % (time.monotonic() - t_loaded))
    expect_ok(t, call(w, 2), echo_body("2", CFG_DB0), "loading: served again", rid="2")
    w.stop()
    r.stop()


if __name__ == "__main__":
    harness.run(main, watchdog=120)
