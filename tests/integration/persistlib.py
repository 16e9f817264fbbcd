"""Helpers for the persistence tests (t_persist.py, t_persist_faults.py):
the load generator (the bench tool, tests/bench/wsbench, recording every
reply it receives), the "upstream-stage" classification of PROTOCOL.md
section 5, and the row checks against PostgreSQL (exactly one row per
upstream-stage reply the client received, matched by client_id).

Python 3 standard library only."""

import json
import math
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402

UPSTREAM_ERRORS = ("upstream error", "upstream timeout")
USERS = ("u0", "u1", "u2", "u3", "u4", "u5")    # "u{conn}" of the load


def wsbench_bin():
    """The bench tool of this build: tests/bench/wsbench in the build tree
    (make check exports WSGATE_BUILDDIR), else next to the wsgate binary."""
    base = os.environ.get("WSGATE_BUILDDIR") or os.path.dirname(harness.WSGATE_BIN)
    return os.path.join(base, "tests", "bench", "wsbench")


def upstream_error(err):
    return isinstance(err, str) and any(err == e or err.startswith(e + ":")
                                        for e in UPSTREAM_ERRORS)


def upstream_stage(obj):
    """True for a reply that reached the upstream stage: it carries the
    upstream's body (any status), or wsgate's 502/504 of the upstream call."""
    if not isinstance(obj, dict):
        return False
    return "body" in obj or upstream_error(obj.get("error"))


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


# ---- Load: wsbench ----

class Rec:
    """One line of wsbench --record: a reply the client received."""
    __slots__ = ("cid", "status", "kind", "t", "lat", "error")

    def __init__(self, line):
        f = line.split("\t")
        if len(f) != 6:
            raise ValueError("bad record line %r" % line)
        self.cid = None if f[0] == "-" else f[0]      # client_id text
        self.status = None if f[1] == "-" else int(f[1])
        self.kind = f[2]                               # body, error or -
        self.t = int(f[3]) / 1e6                       # time.monotonic()
        self.lat = None if f[4] == "-" else int(f[4]) / 1e6
        try:
            self.error = json.loads('"%s"' % f[5]) if self.kind == "error" else None
        except ValueError:
            self.error = f[5]                          # cut off: as escaped

    @property
    def stage(self):
        return self.kind == "body" or (self.kind == "error" and upstream_error(self.error))

    def overloaded(self):
        return self.status == 503 and (self.error or "").startswith("overloaded")

    def label(self):
        return str(self.status) if self.kind == "body" else "%s %s" % (
            self.status, (self.error or self.kind).split(":")[0])


class Bench:
    """The bench tool as the load: `conns` connections, each keeping
    `inflight` requests in flight (`rate`: total requests/s, None: as fast
    as replies come), reconnecting dropped connections, recording every
    reply.  Request ids are "<tag>.<run>.<conn>.<seq>" (run: wsbench's
    random run tag), user "u<conn>", payload {"n": <seq>} unless `template`
    (a wsbench -m template) says otherwise.  The run ends after `secs`
    (measured, after `warmup`) or at stop(); then wsbench stops sending
    and waits up to `drain` s for the replies in flight."""

    def __init__(self, t, port, tag, conns=3, inflight=6, secs=600, rate=None,
                 warmup=0, drain=5, template=None):
        assert conns <= len(USERS)
        self.t = t
        self.tag = tag
        self.secs = secs
        self.drain = drain
        self.warmup = warmup
        d = t.mkdir("bench")
        n = len([x for x in os.listdir(d) if x.endswith(".rec")])
        base = os.path.join(d, "%s-%d" % (tag, n))
        self.rec_file, self.out_file, self.err_file = (
            base + ".rec", base + ".json", base + ".err")
        self.template = template or (
            '{"id":"%s.{run}.{conn}.{seq}","user-id":"u{conn}","payload":{"n":{seq}}}' % tag)
        self.argv = [wsbench_bin(), "-u", "ws://127.0.0.1:%d/ws" % port,
                     "-c", str(conns), "-n", str(inflight), "-d", "%g" % secs,
                     "-w", "%g" % warmup, "-m", self.template, "--match", "id",
                     "--reconnect", "--drain", "%g" % drain, "--record", self.rec_file,
                     "--json"]
        if rate:
            self.argv += ["-r", "%g" % rate]
        self.proc = None
        self.res = None         # wsbench's --json summary
        self.recs = None        # [Rec] once finished
        self.rc = None
        self.t_ready = None

    def start(self):
        if not os.access(self.argv[0], os.X_OK):
            self.t.bail_out("wsbench not found at %s (make builds it)" % self.argv[0])
        with open(self.out_file, "wb") as out, open(self.err_file, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err)
        harness.REG.add(self.proc.pid, "wsbench", self.proc)
        ok = harness.wait_for(lambda: "wsbench: ready:" in self.stderr() or
                              self.proc.poll() is not None, T(15), 0.02)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError("wsbench did not start: %s\n%s" % (
                " ".join(self.argv), self.stderr()))
        self.t_ready = time.monotonic()
        return self

    def stderr(self):
        try:
            with open(self.err_file, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def records(self):
        """The replies recorded so far (wsbench writes its record out once
        a second): [Rec], complete lines only."""
        try:
            with open(self.rec_file, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return [Rec(line) for line in data.split("\n")[:-1]]

    def _finish(self):
        self.rc = self.proc.returncode
        try:
            with open(self.out_file) as f:
                self.res = json.loads(f.read().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            self.res = None
        self.recs = self.records()
        return self

    def wait(self, timeout=None):
        """Wait for the run to end by itself (-d, then the drain)."""
        limit = self.secs + self.warmup + self.drain + 20 if timeout is None else timeout
        try:
            self.proc.wait(T(limit))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self._finish()

    def stop(self):
        """End the run now: SIGTERM (stop sending, drain, close)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(self.drain + 15)

    # -- results (after wait/stop) --
    def get(self, key, default=0):
        return (self.res or {}).get(key, default)

    def stage_cids(self):
        return {r.cid for r in self.recs if r.stage and r.cid}

    def dups(self):
        seen, dup = set(), []
        for r in self.recs:
            if r.cid in seen:
                dup.append(r.cid)
            seen.add(r.cid)
        return dup

    def statuses(self):
        res = {}
        for r in self.recs:
            res[r.label()] = res.get(r.label(), 0) + 1
        return res

    def summary(self):
        return ("wsbench rc %s: sent %d, replies %d (%s), lost %d, dropped %d, reconnects %d, "
                "unmatched %d, p99 %.2f ms" % (
                    self.rc, self.get("sent_all"), len(self.recs or ()), ", ".join(
                        "%s: %d" % kv for kv in sorted(self.statuses().items())),
                    self.get("lost"), self.get("conns_dropped"), self.get("reconnects"),
                    self.get("unmatched"), self.get("p99_ms")))

    def sane(self, t, label):
        """The run itself went right: wsbench exited 0 with its summary,
        recorded every reply it counted, every reply matched a request of
        ours, no id answered twice."""
        t.ok(self.rc == 0 and self.res is not None and
             self.get("records") == len(self.recs) == self.get("replies_all"),
             "%s: wsbench exit 0, %d replies recorded" % (label, len(self.recs or ())),
             lambda: "%s\n%s" % (self.summary(), self.stderr()[-2000:]))
        odd = [r for r in self.recs if r.cid is None or r.lat is None or
               not r.cid.startswith('"%s.' % self.tag)]
        t.ok(not odd and self.get("unmatched") == 0 and self.get("unexpected") == 0,
             "%s: every reply names a request in flight" % label,
             lambda: "%d odd, e.g. %r" % (len(odd), [(r.cid, r.status, r.kind) for r in odd[:5]]))
        dup = self.dups()
        t.ok(not dup, "%s: no id answered twice" % label, lambda: repr(dup[:10]))


def window(recs, t0, t1):
    """Latencies (s) of the upstream-stage replies received in [t0, t1]."""
    return [r.lat for r in recs if r.stage and r.lat is not None and t0 <= r.t <= t1]


def client_conns(pid, port):
    """How many established TCP connections to local `port` process pid
    holds (its socket inodes matched against /proc/net/tcp{,6})."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return 0
    # A socket is counted once: /proc/net/tcp is read a page at a time,
    # and a table that changes between two reads can list one twice.
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "01" and f[9] in inodes:
                found.add(f[9])
    return len(found)


# ---- PostgreSQL ----

def row_counts(pg, table, prefix=None):
    """{client_id text: count} of the table (optionally only ids starting
    with prefix, given without the JSON quote)."""
    where = ""
    if prefix is not None:
        where = " WHERE client_id LIKE %s" % sq('"' + prefix.replace("_", "\\_") + "%")
    rows = pg.psql("SELECT client_id, count(*) FROM %s%s GROUP BY client_id" % (table, where))
    return {r[0]: int(r[1]) for r in rows}


def wait_rows(pg, table, cids, timeout=None, prefix=None):
    """Poll until every client_id text in cids has a row (or timeout): the
    final counts."""
    want = set(cids)
    deadline = time.monotonic() + (T(30) if timeout is None else timeout)
    while True:
        try:
            counts = row_counts(pg, table, prefix)
        except RuntimeError:
            counts = {}
        if want <= set(counts) or time.monotonic() >= deadline:
            return counts
        time.sleep(0.3)


def check_rows(t, pg, table, cids, label, prefix=None, allow_missing=(), timeout=None):
    """The guarantee: each client_id text in cids has exactly one row (none
    missing except allow_missing, none duplicated, in the whole table or
    among the ids starting with prefix).  Returns (missing, duplicated)."""
    cids = set(cids)
    allow = set(allow_missing)
    counts = wait_rows(pg, table, cids - allow, timeout, prefix)
    missing = sorted(i for i in cids if i not in counts)
    really_missing = [i for i in missing if i not in allow]
    dup = sorted((k, v) for k, v in counts.items() if v > 1)
    t.ok(cids and not really_missing, "%s: all %d upstream-stage replies have a row%s" % (
        label, len(cids), " (%d damaged allowed to miss)" % len(allow) if allow else ""),
         lambda: "%d missing, e.g. %r" % (len(really_missing), really_missing[:20]))
    t.ok(not dup, "%s: no client_id has more than one row (%d rows)" % (
        label, sum(counts.values())),
         lambda: "%d duplicated, e.g. %r" % (len(dup), dup[:20]))
    return missing, dup


def no_deaths(t, w, label, roles=("worker", "dbwriter")):
    """The master never logged a child's unclean exit (a warning, with
    the respawn, master.c)."""
    died = [m.string for m in w.grep_log(r"(warn|error): child exited .*role=(%s) "
                                         % "|".join(roles))]
    t.ok(not died, "%s: no child died" % label, lambda: "\n".join(died))


def rows_if_any(pg, table):
    """{client_id: count} of table, {} while nobody created it there yet."""
    try:
        return row_counts(pg, table)
    except RuntimeError:
        return {}


def check_rows_across(t, pgs, table, cids, label, timeout=None):
    """The guarantee when the records may go to several servers (a host
    list, a failover): each client_id text in cids has exactly one row in
    all of pgs' tables together.  Returns the {client_id: count} of each."""
    want = set(cids)
    deadline = time.monotonic() + (T(30) if timeout is None else timeout)
    while True:
        counts = [rows_if_any(pg, table) for pg in pgs]
        seen = set().union(*counts)
        if want <= seen or time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    missing = sorted(want - seen)
    t.ok(cids and not missing, "%s: all %d upstream-stage replies have a row in one of "
         "the servers (%s)" % (label, len(want), ", ".join(str(len(c)) for c in counts)),
         lambda: "%d missing, e.g. %r" % (len(missing), missing[:20]))
    dup = sorted(k for k in seen if sum(c.get(k, 0) for c in counts) > 1)
    t.ok(not dup, "%s: no client_id has more than one row, the servers together" % label,
         lambda: "%d duplicated, e.g. %r" % (len(dup), dup[:20]))
    return counts


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


def setup_services(t, users=USERS):
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
