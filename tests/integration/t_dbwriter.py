#!/usr/bin/env python3
"""Dbwriters against a real, private PostgreSQL: connect and create the
PROTOCOL.md section 5 table; retry with a growing backoff while the server
is down (the gateway keeps serving), connect by themselves once it is up;
never block on a server that does not answer.  Several batches in flight
(db_connections), then PostgreSQL killed under them: every reply has
exactly one row.  A batch's COPY that meets a request_key in the table
goes again as INSERT ... ON CONFLICT DO NOTHING.  A response longer than ring_size/8 is stored cut at a
character boundary, with a note, while the client gets it whole."""

import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402
from wsclient import WS  # noqa: E402

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


class Flow:
    """`threads` connections, each with `depth` requests in flight (user
    u1, ids "<tag><thread>-<n>"), until stop(): the replies by id."""

    def __init__(self, port, tag, threads=4, depth=8):
        self.port, self.tag, self.depth = port, tag, depth
        self.replies, self.errors = {}, []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.stopping.set()
        for th in self.threads:
            th.join(T(30))
        return self

    def _run(self, th):
        try:
            ws = WS.connect(self.port, timeout=T(5))
            n, inflight = 0, set()
            while not self.stopping.is_set() or inflight:
                while not self.stopping.is_set() and len(inflight) < self.depth:
                    n += 1
                    rid = "%s%d-%d" % (self.tag, th, n)
                    inflight.add(rid)
                    ws.send_text(json.dumps({"id": rid, "user-id": "u1",
                                             "payload": {"n": n}}))
                _, data = ws.recv_message(T(20))
                obj = json.loads(data.decode())
                inflight.discard(obj.get("id"))
                with self.lock:
                    self.replies[obj.get("id")] = obj
            ws.close()
        except Exception as e:  # noqa: BLE001 -- reported by the test
            with self.lock:
                self.errors.append("thread %d: %r" % (th, e))

    def ids(self):
        with self.lock:
            return set(self.replies)

    def not_200(self):
        with self.lock:
            return [o for o in self.replies.values() if o.get("status") != 200]


def rows_once(t, pg, table, ids, label):
    """Each id (as client_id JSON text) has exactly one row, waiting for
    them to land."""
    want = {pl.json_text(i) for i in ids}
    harness.wait_for(lambda: want <= set(pl.row_counts(pg, table)), T(30), 0.3)
    counts = pl.row_counts(pg, table)
    missing = sorted(want - set(counts))
    dup = sorted((k, v) for k, v in counts.items() if v > 1)
    t.ok(not missing, "%s: all %d replies have a row" % (label, len(want)),
         diag=lambda: "%d missing, e.g. %r" % (len(missing), missing[:10]))
    t.ok(not dup, "%s: no client_id has more than one row (%d rows)"
         % (label, sum(counts.values())), diag=lambda: repr(dup[:10]))
    return counts


def inflight_then_killed(t, pg, r, up):
    """db_connections 3: three INSERTs wait on a held table lock at once;
    PostgreSQL is then stopped in immediate mode (its backends killed, no
    commit) under them, under load, and started again."""
    table = "inflight"
    # The harness runs PostgreSQL with synchronous_commit off, whose
    # commits a crash (an immediate stop is one) may lose: acknowledged
    # rows would vanish with no fault of ours.  The dbwriter's sessions
    # get it on (database settings override the command line's).
    pg.psql("ALTER DATABASE wsgate SET synchronous_commit = on", db="postgres")
    t.is_(pg.psql("SHOW synchronous_commit"), [["on"]],
          "inflight: new sessions commit synchronously")
    w = t.wsgate("inflight", upstream=up, postgres=pg, redis_port=r.port,
                 pg_table=table, db_connections=3, db_batch_size=10,
                 db_flush_interval="5ms", db_spool_after="60s",
                 shutdown_timeout="10s")
    w.start()
    t.ok(pl.wait_table(w, pg, table), "inflight: table created")
    ld = Flow(w.port, "K").start()
    t.ok(harness.wait_for(lambda: int(pg.psql("SELECT count(*) FROM %s" % table)[0][0]) > 200,
                          T(20), 0.1), "inflight: rows land under load")
    locker = pl.Locker(pg, table, 60)
    t.ok(locker.wait_locked(pg, table), "inflight: another session holds the table lock")

    # A batch is a COPY, or an INSERT ... ON CONFLICT when it must be.
    batch_sql = "(query LIKE 'COPY %s %%' OR query LIKE 'INSERT INTO %s %%')" % (table, table)

    def waiting():
        return int(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE %s "
                           "AND wait_event_type = 'Lock'" % batch_sql)[0][0])
    harness.wait_for(lambda: waiting() >= 3, T(10), 0.05)
    time.sleep(0.3)
    t.is_(waiting(), 3, "inflight: 3 batches in flight at once, one per connection, "
          "all waiting for the lock")
    pids = w.pids("dbwriter")
    t.ok(len(pids) == 1 and int(pg.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'wsgate' AND %s"
        % batch_sql)[0][0]) == 3, "... from the one dbwriter's 3 connections")
    w.mark_log()
    pg.proc.send_signal(signal.SIGQUIT)     # immediate shutdown: backends killed
    pg.proc.wait(T(20))
    locker.wait()
    t.ok(w.wait_log(r"dbwriter\[\d+\] warn: PostgreSQL down: spooling records", T(10)),
         "inflight: PostgreSQL killed: the dbwriter spools", diag=lambda: w.describe())
    time.sleep(1.5)
    t.ok(not ld.errors and not ld.not_200(), "inflight: every reply 200 while PostgreSQL "
         "is down (%d replies)" % len(ld.ids()),
         diag=lambda: "%r %r" % (ld.errors[:3], ld.not_200()[:3]))
    pg.start(create_db=False)
    time.sleep(1)
    ld.stop()
    t.ok(not ld.errors, "inflight: no load thread failed", diag=lambda: repr(ld.errors[:5]))
    ids = ld.ids()
    t.note("inflight: %d replies" % len(ids))
    rows_once(t, pg, table, ids, "PostgreSQL killed under 3 batches in flight")
    t.ok(w.grep_log(r"replaying spooled records"), "inflight: the spool was replayed")
    t.ok(not w.grep_log(r"dead-letter|record rejected|batch rejected"),
         "inflight: nothing rejected or dead-lettered")
    t.is_(w.stop(), 0, "inflight: TERM exits 0")


def cut_response(t, pg, r, up):
    """ring_size 64k: a record may take 8k; longer echoed bodies are
    stored cut (at a UTF-8 character boundary) with a note in error."""
    table = "cut"
    w = t.wsgate("cut", upstream=up, postgres=pg, redis_port=r.port, pg_table=table,
                 ring_size="64k")
    w.start()
    t.ok(pl.wait_table(w, pg, table), "cut: table created")
    ws = WS.connect(w.port, timeout=T(5))
    sent = {"short": "x" * 1000, "long": "\u00e9" * 10000, "ascii": "a" * 30000}
    bodies = {}
    for rid, payload in sent.items():
        ws.send_text(json.dumps({"id": rid, "user-id": "u1", "payload": {"s": payload}},
                                ensure_ascii=False))
        _, data = ws.recv_message(T(10))
        obj = json.loads(data.decode())
        t.is_(obj.get("status"), 200, "cut: %s: 200" % rid)
        bodies[obj.get("id")] = obj.get("body", "").encode()
    ws.close()
    t.ok(len(bodies.get("long", b"")) > 20000 and len(bodies.get("ascii", b"")) > 30000,
         "cut: the client got the long bodies whole (%d, %d bytes)"
         % (len(bodies.get("long", b"")), len(bodies.get("ascii", b""))))
    rows_once(t, pg, table, list(sent), "cut")
    for rid in sent:
        rows = pg.psql("SELECT encode(convert_to(response, 'UTF8'), 'hex'), coalesce(error, "
                       "'NULL') FROM %s WHERE client_id = %s" % (table, pl.sq(pl.json_text(rid))))
        if not rows:
            t.ok(False, "cut: %s: a row" % rid)
            continue
        stored, err = bytes.fromhex(rows[0][0]), rows[0][1]
        full = bodies[rid]
        if rid == "short":
            t.ok(stored == full and err == "NULL", "cut: a short body is stored whole, "
                 "error NULL")
            continue
        t.ok(len(stored) < 8192 and full.startswith(stored),
             "cut: %s: stored %d of %d bytes, a prefix of the reply's body"
             % (rid, len(stored), len(full)))
        t.is_(err, "response cut to %d of %d bytes: longer than ring_size/8"
              % (len(stored), len(full)), "cut: %s: the error column says so" % rid)
        t.ok("\ufffd" not in stored.decode("utf-8", "replace"),
             "cut: %s: cut at a character boundary (no U+FFFD)" % rid)
    cuts = w.grep_log(r"worker\[\d+\] info: response stored cut to \d+ of \d+ bytes")
    t.is_(len(cuts), 1, "cut: logged once for the 2 cuts on one connection (a line a "
          "minute at most)", lambda: "\n".join(m.string for m in cuts))
    t.like(cuts[0].string if cuts else "", r"unlogged=0$", "cut: the first line: unlogged=0")
    w.stop()


def key_conflict(t, pg, r, up):
    """A live batch goes with COPY, all or nothing; when one of its
    request_keys is in the table already (here planted by the test; in
    production a worker's resend of a record committed before its ack),
    the batch goes again as INSERT ... ON CONFLICT DO NOTHING: the other
    rows land once, the planted row stays as it was."""
    table = "conflict"
    w = t.wsgate("conflict", upstream=up, postgres=pg, redis_port=r.port, pg_table=table,
                 db_flush_interval="3s", db_batch_size=1000, db_spool_after="60s")
    w.write_config(upstream_url=up.url.rsplit("/", 1)[0] + "/headers")
    w.start()
    t.ok(pl.wait_table(w, pg, table), "conflict: table created")
    ws = WS.connect(w.port, timeout=T(5))
    keys, t0 = {}, time.monotonic()
    for i in range(10):
        rid = "dup-%d" % i
        ws.send_text(json.dumps({"id": rid, "user-id": "u1", "payload": {"n": i}}))
        _, data = ws.recv_message(T(10))
        obj = json.loads(data.decode())
        try:
            keys[rid] = json.loads(obj["body"])["headers"]["X-Request-Id"]
        except (KeyError, TypeError, ValueError):
            keys[rid] = None
        if i == 0 and keys[rid]:
            # Planted before the batch's flush (db_flush_interval 3s).
            pg.psql("INSERT INTO %s (request_key, user_id) VALUES (%s, 'planted')"
                    % (table, pl.sq(keys[rid])))
    ws.close()
    t.ok(all(keys.values()) and time.monotonic() - t0 < 2.5,
         "conflict: 10 replies, each with its request_key, within the flush interval",
         diag=lambda: repr(keys))
    t.ok(w.wait_log(r"dbwriter\[\d+\] info: batch has rows already in the table: "
                    r"inserting its 10 records with ON CONFLICT DO NOTHING", T(10)),
         "conflict: COPY found the planted key, logged; the batch goes again",
         diag=lambda: w.describe())
    rows_once(t, pg, table, ["dup-%d" % i for i in range(1, 10)], "conflict")
    planted = pg.psql("SELECT user_id, coalesce(client_id, 'NULL') FROM %s WHERE "
                      "request_key = %s" % (table, pl.sq(keys["dup-0"] or "")))
    t.is_(planted, [["planted", "NULL"]], "conflict: the planted row is the only one for "
          "its request_key, unchanged")
    t.is_(pg.psql("SELECT count(*) FROM %s" % table), [["10"]], "conflict: 10 rows in all")
    t.ok(not w.grep_log(r"dead-letter|record rejected|batch rejected"),
         "conflict: nothing rejected or dead-lettered")
    t.is_(w.stop(), 0, "conflict: TERM exits 0")


def poison_record(t, pg, r, up):
    """A record PostgreSQL rejects for its data (here a CHECK constraint
    on the table; in production e.g. a text column changed to json) fails
    its batch's COPY: the batch is split in halves down to that record,
    the others land once, and it goes to spool_dir/dead-letter, logged
    and counted, never retried."""
    table = "poison"
    pg.psql("CREATE TABLE %s (id bigserial PRIMARY KEY, request_key text NOT NULL UNIQUE, "
            "user_id text NOT NULL, client_id text CHECK (client_id IS DISTINCT FROM "
            "'\"bad-1\"'), status integer, response text, error text, latency_ms double "
            "precision, created_at timestamptz NOT NULL DEFAULT now())" % table)
    w = t.wsgate("poison", upstream=up, postgres=pg, redis_port=r.port, pg_table=table,
                 db_flush_interval="1s", db_batch_size=100, db_spool_after="60s")
    w.start()
    ws = WS.connect(w.port, timeout=T(5))
    ids = ["p-%d" % i for i in range(4)] + ["bad-1"] + ["p-%d" % i for i in range(4, 9)]
    for rid in ids:
        ws.send_text(json.dumps({"id": rid, "user-id": "u1", "payload": 1}))
    got = [json.loads(ws.recv_message(T(10))[1].decode()).get("status") for _ in ids]
    ws.close()
    t.is_(got, [200] * 10, "poison: 10 replies 200, bad-1's too")
    rows_once(t, pg, table, [i for i in ids if i != "bad-1"], "poison")
    t.ok(w.wait_log(r"dbwriter\[\d+\] warn: batch rejected sqlstate=23514: retrying its 10 "
                    r"records in halves", T(5)), "poison: the batch's rejection logged",
         diag=lambda: w.describe())
    t.ok(w.wait_log(r"dbwriter\[\d+\] warn: record rejected, dead-lettered sqlstate=23514 "
                    r"reason=\".*poison_client_id_check", T(10)),
         "poison: the record rejected alone is dead-lettered, with PostgreSQL's reason")
    t.is_(pg.psql("SELECT count(*) FROM %s WHERE client_id = '\"bad-1\"'" % table), [["0"]],
          "poison: no row for bad-1")
    dl = os.path.join(w.conf["spool_dir"], "dead-letter")
    data = open(dl, "rb").read() if os.path.exists(dl) else b""
    t.ok(data.count(b'"bad-1"') == 1 and b'"p-0"' not in data,
         "poison: %s holds that record and no other (%d bytes)" % (dl, len(data)))

    def dead():
        return w.metric("wsgate_records_dead_lettered_total")
    t.ok(harness.wait_for(lambda: dead() == 1, T(5), 0.1),
         "poison: wsgate_records_dead_lettered_total 1 (%r)" % dead())
    time.sleep(1.5)
    t.is_(len(w.grep_log(r"record rejected, dead-lettered")), 1,
          "poison: never retried (one dead-letter line after another flush interval)")
    t.is_(w.stop(), 0, "poison: TERM exits 0")


def flush_interval(t, pg, r, up):
    """A partial batch waits a whole db_flush_interval after its first
    record, also when the interval's timer was stopped early by a batch
    cut for size (libev keeps a stopped timer's time left: restarted
    as it was, it fired early)."""
    table = "flushiv"
    w = t.wsgate("flushiv", upstream=up, postgres=pg, redis_port=r.port, pg_table=table,
                 db_flush_interval="2s", db_batch_size=2, db_spool_after="60s")
    w.start()
    t.ok(pl.wait_table(w, pg, table), "flush: table created")
    ws = WS.connect(w.port, timeout=T(5))

    def ask(rid):
        ws.send_text(json.dumps({"id": rid, "user-id": "u1", "payload": 1}))
        ws.recv_message(T(10))
        return time.monotonic()

    def have(rid):
        return pl.row_counts(pg, table).get(pl.json_text(rid), 0)
    ask("f-1")                 # the timer starts: 2 s
    time.sleep(1.5)
    ask("f-2")                 # a full batch of 2: cut, the timer stopped 0.5 s early
    t.ok(harness.wait_for(lambda: have("f-2"), T(5), 0.05), "flush: a full batch lands at once")
    time.sleep(0.3)
    t0 = ask("f-3")            # alone: it waits for the interval
    time.sleep(max(0.0, t0 + 1.2 - time.monotonic()))
    t.is_(have("f-3"), 0, "flush: a lone record is not written 1.2 s into a 2 s interval")
    t.ok(harness.wait_for(lambda: have("f-3"), T(5), 0.05), "flush: ... and is written after it")
    ws.close()
    t.is_(w.stop(), 0, "flush: TERM exits 0")


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

    # The same server with connect_timeout 2: the dbwriter gives up on
    # the attempt (PQconnectPoll applies no timeout by itself) and retries.
    w4b = t.wsgate("silent-timeout",
                   pg_conninfo="host=127.0.0.1 port=%d user=postgres dbname=wsgate "
                   "sslmode=disable connect_timeout=2" % sport)
    w4b.start()
    t0 = time.monotonic()
    m = w4b.wait_log(r"PostgreSQL connection timed out", T(8))
    dt = time.monotonic() - t0
    t.ok(m and dt < 5, "silent server, connect_timeout=2: attempt abandoned and logged "
         "(%.1fs)" % dt, diag=lambda: w4b.describe())
    w4b.stop()
    silent.close()

    # -- 4b. a multi-host conninfo whose first host refuses: libpq moves
    # to the next host on a new socket (often the same descriptor number)
    # and the dbwriter follows it.
    w4c = t.wsgate("multihost",
                   pg_conninfo="host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres "
                   "dbname=wsgate" % (harness.free_port(), pg.port))
    w4c.start()
    t.ok(w4c.wait_log(r"table ready table=responses\b", T(10)),
         "multi-host conninfo, first host refusing: connected to the second",
         diag=lambda: w4c.describe())
    w4c.stop()

    # -- 5. several batches in flight; PostgreSQL killed under them --
    r = t.start_redis()
    r.command("SET", "cfg:u1", json.dumps({"u": "u1"}))
    up = t.start_upstream()
    inflight_then_killed(t, pg, r, up)

    # -- 6. responses longer than ring_size/8 --
    cut_response(t, pg, r, up)

    # -- 7. a COPY meets a request_key in the table --
    key_conflict(t, pg, r, up)

    # -- 8. db_flush_interval after an early stop of its timer --
    flush_interval(t, pg, r, up)

    # -- 9. a record PostgreSQL rejects: split, dead-lettered --
    poison_record(t, pg, r, up)


harness.run(main)
