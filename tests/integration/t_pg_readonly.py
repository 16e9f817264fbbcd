#!/usr/bin/env python3
"""A primary that turns read-only under the dbwriter's connections (a
failover that demotes it and keeps its sessions, as Aurora's does) does
not hold the dbwriter: an INSERT refused as read-only (SQLSTATE 25006)
drops the connection, and the next attempt goes to whichever host is
writable now.

PostgreSQL A and B on loopback; pg_conninfo lists A then B with
target_session_attrs=read-write.  Under load from the bench tool, A is
made read-only (default_transaction_read_only, reloaded: the sessions
already open turn read-only too).  Expected: 'PostgreSQL server is
read-only, connecting again' logged; rows land in B from then on;
replies go on, all 200; every upstream-stage reply has exactly one row
in A and B together; no process dies."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402

TABLE = "resp_readonly"


def main(t):
    t.need_binary()
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    pg_a, pg_b = t.start_postgres(), t.start_postgres()
    r = t.start_redis()
    for u in pl.USERS:
        r.command("SET", "cfg:" + u, '{"u":"%s"}' % u)
    up = t.start_upstream()
    conninfo = ("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=wsgate "
                "connect_timeout=5 target_session_attrs=read-write" % (pg_a.port, pg_b.port))
    w = pl.gateway(t, "readonly", pg_a, r, up, TABLE, pg_conninfo=conninfo).start()
    pl.wait_table(w, pg_a, TABLE)
    bn = pl.Bench(t, w.port, "RO", conns=3, inflight=4, rate=500).start()
    t.ok(harness.wait_for(lambda: pl.rows_if_any(pg_a, TABLE), T(10)),
         "rows land in A, the list's first host")

    pg_a.psql("ALTER SYSTEM SET default_transaction_read_only = on")
    pg_a.psql("SELECT pg_reload_conf()")
    t_ro = time.monotonic()
    t.ok(w.wait_log(r"dbwriter\[\d+\] warn: PostgreSQL server is read-only, connecting "
                    r"again: .*read-only transaction retry_in=\d+ms", T(10)),
         "A read-only: 'PostgreSQL server is read-only, connecting again' logged",
         lambda: w.describe())
    t.ok(harness.wait_for(lambda: pl.rows_if_any(pg_b, TABLE), T(15)),
         "rows land in B once A is read-only (%.1fs)" % (time.monotonic() - t_ro),
         lambda: w.describe())
    a_then = sum(pl.rows_if_any(pg_a, TABLE).values())
    time.sleep(2)
    t.is_(sum(pl.rows_if_any(pg_a, TABLE).values()), a_then, "no row goes to A any more")
    bn.stop()
    t.note("read-only: %s" % bn.summary())
    bn.sane(t, "read-only")
    bad = sorted(set(x.label() for x in bn.recs if x.status != 200 or not x.stage))
    t.ok(bn.recs and not bad, "replies go on, all 200 from the upstream (%d)" % len(bn.recs),
         lambda: repr(bad))
    pl.check_rows_across(t, (pg_a, pg_b), TABLE, bn.stage_cids(), "read-only")
    pl.no_deaths(t, w, "read-only")
    w.stop()


harness.run(main, watchdog=120)
