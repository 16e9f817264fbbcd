"""Helpers for the persistence tests (t_persist.py, t_persist_faults.py):
a load generator that keeps requests in flight on several connections and
records every reply, the "upstream-stage" classification of PROTOCOL.md
section 5, and the row checks against PostgreSQL (exactly one row per
upstream-stage reply the client received, matched by client_id).

Python 3 standard library only."""

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import wsclient  # noqa: E402
from wsclient import WS, OP_CLOSE  # noqa: E402

UPSTREAM_ERRORS = ("upstream error", "upstream timeout")


def upstream_stage(obj):
    """True for a reply that reached the upstream stage: it carries the
    upstream's body (any status), or wsgate's 502/504 of the upstream call."""
    if not isinstance(obj, dict):
        return False
    if "body" in obj:
        return True
    err = obj.get("error")
    return isinstance(err, str) and any(err == e or err.startswith(e + ":")
                                        for e in UPSTREAM_ERRORS)


def p99(samples):
    s = sorted(samples)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)] if s else None


def sq(s):
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def json_text(rid):
    """client_id as stored: the request id as JSON text."""
    return json.dumps(rid, separators=(",", ":"))


def replace_invalid(data):
    """What the dbwriter stores for raw bytes (store.c col_text): a NUL
    and every byte that does not start a complete valid UTF-8 sequence
    becomes U+FFFD, one per byte."""
    out = []
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0:
            out.append("\ufffd")
            i += 1
            continue
        if c < 0x80:
            out.append(chr(c))
            i += 1
            continue
        run = 4 if c >= 0xF0 else 3 if c >= 0xE0 else 2 if c >= 0xC0 else 1
        if run > 1 and i + run <= n:
            try:
                out.append(data[i:i + run].decode("utf-8", "strict"))
                i += run
                continue
            except UnicodeDecodeError:
                pass
        out.append("\ufffd")
        i += 1
    return "".join(out)


# ---- Load ----

class Rep:
    __slots__ = ("rid", "status", "stage", "error", "dt", "t", "obj")

    def __init__(self, rid, obj, dt, t):
        self.rid = rid
        self.obj = obj
        self.status = obj.get("status")
        self.stage = upstream_stage(obj)
        self.error = obj.get("error")
        self.dt = dt
        self.t = t


class Load:
    """`threads` connections, each keeping `depth` requests in flight until
    stop(); ids "<tag>c<thread>-<n>".  make(rid, thread, n) returns the
    request text (default: user u1, payload {"n": n}).  A dropped
    connection is reconnected; its requests in flight are `lost`."""

    def __init__(self, port, tag="", threads=4, depth=8, make=None, rate=None,
                 recv_timeout=None):
        self.port = port
        self.tag = tag
        self.nthreads = threads
        self.depth = depth
        self.make = make or (lambda rid, th, n: json.dumps(
            {"id": rid, "user-id": "u1", "payload": {"n": n}}))
        self.rate = rate            # requests/s per thread, None: as fast as possible
        self.recv_timeout = T(10) if recv_timeout is None else recv_timeout
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.replies = {}           # rid -> Rep
        self.lost = set()           # sent, no reply (connection dropped)
        self.sent = 0
        self.odd = []               # replies without a known id, errors
        self.drops = 0
        self.dups = []              # ids answered twice
        self.threads = []

    def start(self):
        for i in range(self.nthreads):
            th = threading.Thread(target=self._run, args=(i,), daemon=True)
            self.threads.append(th)
            th.start()
        return self

    def stop(self, timeout=None):
        """Stop sending, wait for the replies in flight."""
        self.stopping.set()
        deadline = time.monotonic() + (T(20) if timeout is None else timeout)
        for th in self.threads:
            th.join(max(0.1, deadline - time.monotonic()))
        return self

    def _connect(self):
        deadline = time.monotonic() + T(15)
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                return WS.connect(self.port, timeout=T(5))
            except (OSError, ValueError):
                time.sleep(0.1)
        return None

    def _run(self, th):
        n = 0
        ws = None
        inflight = {}
        while True:
            if ws is None:
                if self.stopping.is_set():
                    break
                ws = self._connect()
                if ws is None:
                    break
            try:
                while not self.stopping.is_set() and len(inflight) < self.depth:
                    n += 1
                    rid = "%sc%d-%d" % (self.tag, th, n)
                    msg = self.make(rid, th, n)
                    inflight[rid] = time.monotonic()
                    with self.lock:
                        self.sent += 1
                    ws.send_text(msg)
                    if self.rate:
                        time.sleep(1.0 / self.rate)
                        break
                if self.stopping.is_set() and not inflight:
                    break
                if not inflight:
                    continue
                op, data = ws.recv_message(self.recv_timeout if not self.rate else
                                           min(self.recv_timeout, 1.0 / self.rate))
            except socket.timeout:
                if self.rate and not self.stopping.is_set():
                    continue
                with self.lock:
                    self.odd.append("thread %d: no reply within %.1fs, %d in flight"
                                    % (th, self.recv_timeout, len(inflight)))
                    self.lost |= set(inflight)
                inflight = {}
                ws.close()
                ws = None
                continue
            except (wsclient.Closed, OSError, ValueError):
                with self.lock:
                    self.drops += 1
                    self.lost |= set(inflight)
                inflight = {}
                ws.close()
                ws = None
                continue
            now = time.monotonic()
            if op == OP_CLOSE:
                with self.lock:
                    self.drops += 1
                    self.lost |= set(inflight)
                inflight = {}
                ws.close()
                ws = None
                continue
            try:
                obj = json.loads(data.decode("utf-8"))
                rid = obj.get("id")
            except (ValueError, AttributeError):
                with self.lock:
                    self.odd.append("thread %d: bad reply %r" % (th, data[:200]))
                continue
            t0 = inflight.pop(rid, None)
            if t0 is None:
                with self.lock:
                    self.odd.append("thread %d: reply for unknown id %r" % (th, data[:200]))
                continue
            with self.lock:
                if rid in self.replies:
                    self.dups.append(rid)
                self.replies[rid] = Rep(rid, obj, now - t0, now)
        if ws is not None:
            ws.close()

    # -- results --
    def stage_ids(self):
        with self.lock:
            return {rid for rid, r in self.replies.items() if r.stage}

    def statuses(self):
        res = {}
        with self.lock:
            for r in self.replies.values():
                k = r.status if r.stage else "%s %s" % (r.status, (r.error or "").split(":")[0])
                res[k] = res.get(k, 0) + 1
        return res

    def summary(self):
        return "sent %d, replies %d (%s), lost %d, drops %d, odd %d" % (
            self.sent, len(self.replies), ", ".join(
                "%s: %d" % kv for kv in sorted(self.statuses().items(), key=str)),
            len(self.lost), self.drops, len(self.odd))


def run_load(port, secs, **kw):
    ld = Load(port, **kw).start()
    time.sleep(secs)
    return ld.stop()


# ---- PostgreSQL ----

def row_counts(pg, table, prefix=None):
    """{client_id text: count} of the table (optionally only ids starting
    with prefix, given without the JSON quote)."""
    where = ""
    if prefix is not None:
        where = " WHERE client_id LIKE %s" % sq('"' + prefix.replace("_", "\\_") + "%")
    rows = pg.psql("SELECT client_id, count(*) FROM %s%s GROUP BY client_id" % (table, where))
    return {r[0]: int(r[1]) for r in rows}


def wait_rows(pg, table, ids, timeout=None, prefix=None):
    """Poll until every id has a row (or timeout): the final counts."""
    want = {json_text(i) for i in ids}
    deadline = time.monotonic() + (T(30) if timeout is None else timeout)
    while True:
        try:
            counts = row_counts(pg, table, prefix)
        except RuntimeError:
            counts = {}
        if want <= set(counts) or time.monotonic() >= deadline:
            return counts
        time.sleep(0.3)


def check_rows(t, pg, table, ids, label, prefix=None, allow_missing=(), timeout=None):
    """The guarantee: each id has exactly one row (none missing except
    allow_missing, none duplicated).  Returns (missing, duplicated)."""
    ids = set(ids)
    counts = wait_rows(pg, table, ids - set(allow_missing), timeout, prefix)
    missing = sorted(i for i in ids if json_text(i) not in counts)
    really_missing = [i for i in missing if i not in set(allow_missing)]
    dup = sorted((k, v) for k, v in counts.items() if v > 1)
    t.ok(not really_missing, "%s: all %d upstream-stage replies have a row%s" % (
        label, len(ids), " (%d damaged allowed to miss)" % len(allow_missing)
        if allow_missing else ""),
         lambda: "%d missing, e.g. %r" % (len(really_missing), really_missing[:20]))
    t.ok(not dup, "%s: no client_id has more than one row (%d rows)" % (
        label, sum(counts.values())),
         lambda: "%d duplicated, e.g. %r" % (len(dup), dup[:20]))
    return missing, dup


def pg_restart_same_port(pg):
    """Start a stopped harness Postgres again on its port and data dir."""
    return pg.start(create_db=False)


class Locker:
    """A psql session holding LOCK TABLE ... IN ACCESS EXCLUSIVE MODE for
    `secs` seconds (BEGIN; LOCK; pg_sleep; COMMIT) in the background."""

    def __init__(self, pg, table, secs):
        sql = ("BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT 'locked'; "
               "SELECT pg_sleep(%g); COMMIT;" % (table, secs))
        self.proc = subprocess.Popen(
            [os.path.join(pg.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", pg.db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=pg._env())
        harness.REG.add(self.proc.pid, "psql-lock", self.proc)
        self.proc.stdin.write(sql.encode() + b"\n")
        self.proc.stdin.close()
        self.secs = secs

    def wait_locked(self, pg, table, timeout=None):
        """True once pg_locks shows the AccessExclusiveLock granted."""
        def held():
            try:
                r = pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = "
                            "l.relation WHERE c.relname = %s AND l.mode = "
                            "'AccessExclusiveLock' AND l.granted" % sq(table))
                return int(r[0][0]) > 0
            except RuntimeError:
                return False
        return harness.wait_for(held, T(5) if timeout is None else timeout, 0.05)

    def wait(self, timeout=None):
        try:
            self.proc.wait(T(self.secs + 10) if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def setup_services(t, users=("u1", "u2", "u3")):
    """PostgreSQL, Redis (cfg:USER = {"u": USER} for each user) and the
    upstream, started once per test file."""
    pg = t.start_postgres()
    r = t.start_redis()
    for u in users:
        r.command("SET", "cfg:" + u, json.dumps({"u": u}))
    up = t.start_upstream()
    return pg, r, up


def gateway(t, name, pg, r, up, table, url=None, **conf):
    """A wsgate instance writing to `table` (created by the dbwriter)."""
    base = {"redis_port": r.port, "pg_table": table, "db_spool_after": "500ms",
            "workers": 2, "dbwriters": 1, "upstream_timeout": "5s"}
    base.update(conf)
    w = t.wsgate(name, upstream=up, postgres=pg, **base)
    if url is not None:
        w.write_config(upstream_url=url)
    return w


def wait_table(w, pg, table, timeout=None):
    """Wait until the dbwriter created `table`."""
    return harness.wait_for(
        lambda: pg.psql("SELECT to_regclass(%s) IS NOT NULL" % sq(table))[0][0] == "t",
        T(15) if timeout is None else timeout, 0.1)
