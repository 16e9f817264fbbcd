#!/usr/bin/env python3
"""Dbwriters against a real, private PostgreSQL: connect and create the
PROTOCOL.md section 5 table; retry with a growing backoff while the server
is down (the gateway keeps serving), connect by themselves once it is up;
never block on a server that does not answer."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402

# PROTOCOL.md section 5: (column, data_type, is_nullable) in order.
COLUMNS = [
    ["id", "bigint", "NO"],
    ["request_key", "text", "NO"],
    ["user_id", "text", "NO"],
    ["client_id", "text", "YES"],
    ["status", "integer", "YES"],
    ["response", "text", "YES"],
    ["error", "text", "YES"],
    ["latency_ms", "double precision", "YES"],
    ["created_at", "timestamp with time zone", "NO"],
]

FAILED_RE = (r"dbwriter\[(\d+)\] (?:warn|error): PostgreSQL connection failed: (\S.*?) "
             r"retry_in=(\d+)ms")


def check_table(t, pg, table, db=None, label=""):
    cols = pg.psql("SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                   "WHERE table_schema = 'public' AND table_name = '%s' "
                   "ORDER BY ordinal_position" % table, db=db)
    t.is_(cols, COLUMNS, "%stable %s has PROTOCOL.md's columns, types and NOT NULLs"
          % (label, table))
    if not cols:
        t.skip("%s%s constraints and defaults" % (label, table), "no such table", 4)
        return
    idx = [r[0] for r in pg.psql("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' "
                                 "AND tablename = '%s'" % table, db=db)]
    t.ok(any("UNIQUE" in d and "(request_key)" in d for d in idx),
         "%s%s.request_key is UNIQUE" % (label, table), diag="indexes: %r" % idx)
    pk = pg.psql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                 "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'public.%s'::regclass "
                 "AND i.indisprimary" % table, db=db)
    t.is_(pk, [["id"]], "%s%s primary key is id" % (label, table))
    dflt = pg.psql("SELECT column_name, column_default FROM information_schema.columns "
                   "WHERE table_schema = 'public' AND table_name = '%s' AND column_default "
                   "IS NOT NULL ORDER BY ordinal_position" % table, db=db)
    d = dict((r[0], r[1]) for r in dflt)
    t.like(d.get("id", ""), r"^nextval\(", "%s%s.id is a bigserial" % (label, table))
    t.like(d.get("created_at", ""), r"^(now\(\)|CURRENT_TIMESTAMP)",
           "%s%s.created_at defaults to now()" % (label, table))


def main(t):
    t.need_binary()
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed (apt-get install postgresql)")

    # -- 1. PostgreSQL up: connect, create the table --
    pg = t.start_postgres()
    w = t.wsgate(postgres=pg)
    w.start()
    m = w.wait_log(r"dbwriter\[(\d+)\] info: connected to PostgreSQL", T(10))
    t.ok(m, "log: dbwriter connected to PostgreSQL", diag=lambda: w.describe())
    m2 = w.wait_log(r"dbwriter\[(\d+)\] info: table ready table=responses\b", T(10))
    t.ok(m2, "log: table ready table=responses", diag=lambda: w.describe())
    if m:
        t.ok(int(m.group(1)) in w.pids("dbwriter"), "the logging process is a dbwriter child")
    check_table(t, pg, "responses")
    conns = pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'wsgate' "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
    t.ok(int(conns[0][0]) >= 1, "PostgreSQL sees the dbwriter's connection (%s)" % conns[0][0])
    t.ok(not w.grep_log(r"dbwriter\[\d+\] error:"), "no dbwriter error logged",
         diag=lambda: w.describe())

    # A configured table name, two dbwriters creating it at the same time.
    w1b = t.wsgate("custom", postgres=pg, pg_table="gw_records", dbwriters=2)
    w1b.start()
    ready = harness.wait_for(lambda: len(w1b.grep_log(r"table ready table=gw_records\b")) >= 2,
                             T(10))
    t.ok(ready, "pg_table gw_records, 2 dbwriters: both log 'table ready table=gw_records'",
         diag=lambda: w1b.describe())
    check_table(t, pg, "gw_records", label="pg_table: ")
    w1b.stop()
    w.stop()

    # -- 2. PostgreSQL down: retries with a growing backoff, still serving --
    port = harness.free_port()
    pg2 = t.postgres(port)
    pg2.initdb()    # ready to start quickly later; nothing listens yet
    w2 = t.wsgate("down", pg_conninfo="host=127.0.0.1 port=%d user=postgres dbname=postgres "
                  "connect_timeout=2" % port)
    w2.start()
    retries, worst = [], 0.0
    deadline = time.monotonic() + T(30)
    while len(retries) < 4 and time.monotonic() < deadline:
        m = w2.wait_log(FAILED_RE, 0.2)
        if m:
            retries.append((int(m.group(3)), m.group(2)))
        t0 = time.monotonic()
        healthy = w2.healthz_ok()
        worst = max(worst, time.monotonic() - t0 if healthy else 99)
    vals = [r[0] for r in retries]
    t.ok(len(retries) >= 3, "log: 'PostgreSQL connection failed: REASON retry_in=Nms' repeated "
         "(%r)" % vals, diag=lambda: w2.describe())
    if retries:
        t.like(retries[0][1], r"(?i)refused|connect", "the failure reason is libpq's (%s)"
               % retries[0][1])
    t.ok(len(vals) >= 3 and all(b >= a for a, b in zip(vals, vals[1:])) and vals[-1] > vals[0],
         "retry_in grows (%r)" % vals)
    t.ok(worst < 1, "/healthz answered 200 within 1 s throughout (worst %.3fs)" % worst)
    t.ok(len(w2.pids("dbwriter")) == 1, "the dbwriter retries by itself (not respawned)",
         diag=lambda: "children: %r" % w2.children())
    t.ok(not w2.grep_log(r"child exited pid=\d+ role=dbwriter"),
         "no dbwriter exited while PostgreSQL was down")

    # -- 3. PostgreSQL comes up: the dbwriter connects by itself --
    last = vals[-1] / 1000.0 if vals else 1.0
    w2.mark_log()
    t0 = time.monotonic()
    pg2.start(create_db=False)
    limit = max(5.0, 2 * last + 2)
    m = w2.wait_log(r"dbwriter\[\d+\] info: connected to PostgreSQL", T(limit) + 5)
    dt = time.monotonic() - t0
    t.ok(m and dt <= limit, "PostgreSQL started: dbwriter connected by itself in %.1fs "
         "(limit %.1fs)" % (dt, limit), diag=lambda: w2.describe())
    t.ok(w2.wait_log(r"table ready table=responses\b", T(5)), "then: table ready")
    tables = pg2.psql("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                      "'responses'", db="postgres")
    t.is_(tables, [["1"]], "table responses created in the new server")
    w2.stop()
    pg2.stop()

    # -- 4. A server that accepts but never answers must not block the
    # dbwriter: without connect_timeout a blocking connect would hang
    # forever, so a prompt stop proves the loop kept running.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    sport = silent.getsockname()[1]
    w4 = t.wsgate("silent", shutdown_timeout="10s",
                  pg_conninfo="host=127.0.0.1 port=%d user=postgres dbname=wsgate sslmode=disable"
                  % sport)
    w4.start()
    time.sleep(1)
    t.ok(w4.healthz_ok(), "silent server: /healthz 200")
    t0 = time.monotonic()
    rc = w4.stop()
    dt = time.monotonic() - t0
    t.is_(rc, 0, "silent server: TERM exits 0")
    t.ok(dt < 5, "silent server: stop did not wait for shutdown_timeout 10s (%.2fs): "
         "the dbwriter's connect does not block its loop" % dt)
    silent.close()


harness.run(main)
