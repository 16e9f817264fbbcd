#!/usr/bin/env python3
"""Observability (issue 6): /metrics, /readyz and `wsgate -T` against real
Redis, PostgreSQL and the echoing upstream.

- /metrics parses with a strict parser of the text exposition format 0.0.4
  written here (HELP and TYPE before a family's samples, families
  contiguous, no duplicate series, label and value syntax, histogram
  buckets cumulative with +Inf = _count), with prometheus_client's parser
  and with `promtool check metrics` (lint included) when installed.
- A known workload moves the counters by exactly what it did: N requests
  answered 200 make replies_total{status="200"} grow by N, messages in and
  out by N plus the other messages sent, each stage histogram's _count by
  the requests that went through the stage; rows_written_total by the rows
  that reached the table; handshake failures by reason; the connections
  gauge follows the open WebSockets.
- /readyz: 200 "ready"; 503 "redis unavailable" when Redis is stopped and
  200 again once it is back; the same for PostgreSQL (and the spool gauge
  grows meanwhile); 503 when the only dbwriter stops beating (SIGSTOP).
- Counters survive a reload and a killed worker (reloads_total and
  child_restarts_total count them) and keep counting exactly.
- `wsgate -T`: one ok line per dependency with everything up; FAILED and a
  non-zero exit status with Redis down."""

import json
import math
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
from t_pipeline import Client  # noqa: E402

TABLE = "resp_metrics"

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
SAMPLE_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?\Z")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z", s):
        raise ValueError("bad value %r" % s)
    return float(s)


def parse_labels(s):
    """'a="x",b="y"' -> (("a","x"),("b","y")); raises ValueError."""
    out, pos = [], 0
    while pos < len(s):
        m = LABEL_RE.match(s, pos)
        if not m:
            raise ValueError("bad label at %r" % s[pos:])
        out.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(s):
            if s[pos] != ",":
                raise ValueError("expected ',' at %r" % s[pos:])
            pos += 1
    names = [k for k, _v in out]
    if len(set(names)) != len(names):
        raise ValueError("duplicate label in %r" % s)
    return tuple(out)


def parse_exposition(text):
    """Strict parse of the Prometheus text format 0.0.4 as wsgate writes
    it.  Returns ({(name, labels): value}, {family: type}, [errors])."""
    errors, types, helps, samples = [], {}, {}, {}
    done = set()            # families whose samples ended
    current = None
    if not text.endswith("\n"):
        errors.append("exposition does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: " % n
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                continue        # a plain comment
            name = parts[2]
            if not NAME_RE.match(name):
                errors.append(where + "bad metric name %r" % name)
            if name in done or name == current:
                errors.append(where + "%s for %s after its samples" % (parts[1], name))
            if parts[1] == "HELP":
                if name in helps:
                    errors.append(where + "second HELP for " + name)
                if len(parts) < 4 or not parts[3].strip():
                    errors.append(where + "empty HELP for " + name)
                helps[name] = parts[3] if len(parts) > 3 else ""
            else:
                if name in types:
                    errors.append(where + "second TYPE for " + name)
                if len(parts) != 4 or parts[3] not in TYPES:
                    errors.append(where + "bad TYPE line %r" % line)
                types[name] = parts[3] if len(parts) > 3 else ""
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            errors.append(where + "not a sample: %r" % line)
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        try:
            labels = parse_labels(labels)
            value = parse_value(value)
        except ValueError as e:
            errors.append(where + str(e))
            continue
        fam = name
        if name not in types:
            base = re.sub(r"_(bucket|sum|count)\Z", "", name)
            if types.get(base) == "histogram":
                fam = base
            else:
                errors.append(where + "sample of %s without a TYPE" % name)
                continue
        if fam != current:
            if fam in done:
                errors.append(where + "family %s is not contiguous" % fam)
            if current is not None:
                done.add(current)
            current = fam
        key = (name, labels)
        if key in samples:
            errors.append(where + "duplicate series %s%r" % key)
        samples[key] = value
    for fam, typ in types.items():
        if fam not in helps:
            errors.append("%s has no HELP" % fam)
        if not fam.startswith("wsgate_"):
            errors.append("%s lacks the wsgate_ prefix" % fam)
        if typ == "counter" and not fam.endswith("_total"):
            errors.append("counter %s does not end in _total" % fam)
        if typ == "histogram":
            errors.extend(check_histogram(fam, samples))
    return samples, types, errors


def check_histogram(fam, samples):
    """Buckets ascending by le, counts non-decreasing, +Inf == _count, a
    _sum, for each label set of the family."""
    errors, sets = [], {}
    for (name, labels), v in samples.items():
        if name == fam + "_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            le = [val for k, val in labels if k == "le"]
            if len(le) != 1:
                errors.append("%s bucket without one le" % fam)
                continue
            sets.setdefault(rest, []).append((parse_value(le[0]), v))
    if not sets:
        errors.append("histogram %s has no buckets" % fam)
    for rest, buckets in sets.items():
        les = [le for le, _v in buckets]
        counts = [v for le, v in sorted(buckets)]
        if les != sorted(les) or les[-1] != math.inf:
            errors.append("%s%r: le not ascending to +Inf" % (fam, rest))
        if counts != sorted(counts):
            errors.append("%s%r: buckets not cumulative" % (fam, rest))
        count = samples.get((fam + "_count", rest))
        if count is None or count != counts[-1]:
            errors.append("%s%r: _count %r != +Inf bucket %r" % (fam, rest, count, counts[-1]))
        if (fam + "_sum", rest) not in samples:
            errors.append("%s%r: no _sum" % (fam, rest))
    return errors


# Run by the interpreter that has prometheus_client (Debian's is /usr/bin/python3).
PROM_PARSE = ("import sys\n"
              "from prometheus_client.parser import text_string_to_metric_families as f\n"
              "print(len(list(f(sys.stdin.read()))))\n")


def prometheus_client_python():
    for py in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        if py and os.path.exists(py) and subprocess.run(
                [py, "-c", "import prometheus_client.parser"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


class Scrape:
    """One GET /metrics, parsed."""

    def __init__(self, w):
        r = harness.http_request(w.admin_port, "/metrics")
        self.status, self.ctype, self.text = r.status, r.headers.get("content-type", ""), r.text
        self.samples, self.types, self.errors = parse_exposition(self.text)

    def v(self, name, **labels):
        """A sample's value (0 when absent: a status not seen yet)."""
        want = tuple(sorted(labels.items()))
        for (n, lab), val in self.samples.items():
            if n == name and tuple(sorted(lab)) == want:
                return val
        return 0

    def total(self, name):
        """The sum of every series of a metric."""
        return sum(v for (n, _l), v in self.samples.items() if n == name)


def check_format(t, sc, label):
    t.is_(sc.status, 200, "%s: /metrics 200" % label)
    t.like(sc.ctype, r"^text/plain; version=0\.0\.4(;|$)",
           "%s: Content-Type text/plain; version=0.0.4 (the text exposition format)" % label)
    t.ok(not sc.errors, "%s: strict parse of the text format 0.0.4 (%d series)" % (
        label, len(sc.samples)), lambda: "\n".join(sc.errors[:20]))
    py = prometheus_client_python()
    if py is None:
        t.skip("%s: prometheus_client parses it" % label, "python3-prometheus-client not installed")
    else:
        r = subprocess.run([py, "-c", PROM_PARSE], input=sc.text.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=T(30))
        out = r.stdout.decode(errors="replace").strip()
        t.ok(r.returncode == 0 and out.isdigit() and int(out) >= 20,
             "%s: prometheus_client parses it (%s families)" % (label, out[:20]),
             lambda: out[-2000:])
    promtool = shutil.which("promtool")
    if promtool is None:
        t.skip("%s: promtool check metrics" % label, "promtool (Debian prometheus) not installed")
    else:
        r = subprocess.run([promtool, "check", "metrics"], input=sc.text.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=T(30))
        out = r.stdout.decode(errors="replace").strip()
        t.ok(r.returncode == 0 and out == "", "%s: promtool check metrics: no problem" % label,
             lambda: "exit %d: %s" % (r.returncode, out[:2000]))


def readyz(w):
    st, body = harness.try_http_get(w.admin_port, "/readyz")
    return st, body


def wait_ready(w, want_status, want_body, timeout):
    """Wait until /readyz answers want_status with want_body; the last
    answer either way."""
    last = [None]

    def check():
        last[0] = readyz(w)
        return last[0][0] == want_status and last[0][1] == want_body
    harness.wait_for(check, timeout, 0.1)
    return last[0]


def table_count(pg):
    return int(pg.psql("SELECT count(*) FROM %s" % TABLE)[0][0])


def requests(port, tag, n, conns, user="u1"):
    """n requests over `conns` WebSockets (sequential on each, all open at
    once); returns the statuses and the connections gauge seen while they
    were all open."""
    clients = [Client(port) for _ in range(conns)]
    statuses = []
    for i in range(n):
        rep = clients[i % conns].call(
            '{"id":"%s-%d","user-id":"%s","payload":{"n":%d}}' % (tag, i, user, i))
        statuses.append(rep.obj.get("status") if rep.obj else rep.err)
    return clients, statuses


def close_all(clients):
    for c in clients:
        c.close()


def workload(t, w, pg):
    """The known workload: exact counter movements."""
    n, conns = 120, 4
    m0 = Scrape(w)
    check_format(t, m0, "idle")
    base_conns = m0.v("wsgate_connections")
    base_rows = table_count(pg)

    clients, statuses = requests(w.port, "wl", n, conns)
    t.ok(statuses == [200] * n, "workload: %d requests answered 200" % n,
         lambda: repr([s for s in statuses if s != 200][:5]))
    mid = Scrape(w)
    t.is_(mid.v("wsgate_connections") - base_conns, conns,
          "connections gauge: +%d while %d WebSockets are open" % (conns, conns))
    # Three refused before the pipeline (no user-id: 400), one upstream timeout.
    c = clients[0]
    for i in range(3):
        rep = c.call('{"id":"bad-%d","payload":1}' % i)
        t.is_(rep.obj and rep.obj.get("status"), 400, "request without user-id: 400")
    rep = c.call('{"id":"slow","user-id":"u1","payload":{"sleep":2}}', T(10))
    t.is_(rep.obj and rep.obj.get("status"), 504, "upstream_timeout 1s: 504")
    close_all(clients)

    # Handshakes refused, by reason.
    r = harness.http_request(w.port, "/ws")
    t.is_(r.status, 426, "plain GET of ws_path: 426")
    r = harness.http_request(w.port, "/nope", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    t.is_(r.status, 404, "upgrade on an unknown path: 404")

    t.ok(harness.wait_for(lambda: Scrape(w).v("wsgate_connections") == base_conns, T(10)),
         "connections gauge back to %d once the clients left" % base_conns)
    m1 = Scrape(w)
    check_format(t, m1, "after the workload")

    def d(name, **labels):
        return m1.v(name, **labels) - m0.v(name, **labels)
    t.is_(d("wsgate_replies_total", status="200"), n, "replies_total{status=200} +%d" % n)
    t.is_(d("wsgate_replies_total", status="400"), 3, "replies_total{status=400} +3")
    t.is_(d("wsgate_replies_total", status="504"), 1, "replies_total{status=504} +1")
    t.is_(m1.total("wsgate_replies_total") - m0.total("wsgate_replies_total"), n + 4,
          "replies_total: no other status moved")
    t.is_(d("wsgate_messages_received_total"), n + 4, "messages_received_total +%d" % (n + 4))
    t.is_(d("wsgate_messages_sent_total"), n + 4, "messages_sent_total +%d" % (n + 4))
    for stage in ("redis", "upstream", "total"):
        t.is_(d("wsgate_stage_duration_seconds_count", stage=stage), n + 1,
              "stage_duration_seconds{stage=%s}: _count +%d (the 400s never got there)" % (
                  stage, n + 1))
        t.is_(d("wsgate_stage_duration_seconds_bucket", stage=stage, le="+Inf"), n + 1,
              "stage %s: +Inf bucket +%d" % (stage, n + 1))
    up_sum = d("wsgate_stage_duration_seconds_sum", stage="upstream")
    t.ok(1.0 <= up_sum < 60, "upstream stage _sum holds the 1 s timeout (%.3f s)" % up_sum)
    t.ok(d("wsgate_stage_duration_seconds_bucket", stage="total", le="0.5") >= n,
         "total stage: the %d echoes under 0.5 s" % n)
    t.is_(d("wsgate_upstream_errors_total", kind="timeout"), 1, "upstream_errors_total{timeout} +1")
    t.is_(d("wsgate_upstream_errors_total", kind="error"), 0, "upstream_errors_total{error} +0")
    t.is_(d("wsgate_connections_total"), conns, "connections_total +%d" % conns)
    t.is_(d("wsgate_handshakes_failed_total", reason="not_websocket"), 1,
          "handshakes_failed_total{reason=not_websocket} +1")
    t.is_(d("wsgate_handshakes_failed_total", reason="not_found"), 1,
          "handshakes_failed_total{reason=not_found} +1")
    t.is_(m1.total("wsgate_handshakes_failed_total") - m0.total("wsgate_handshakes_failed_total"),
          2, "handshakes_failed_total: no other reason moved")
    t.ok(d("wsgate_event_loop_lag_seconds_count", role="worker") > 0 and
         d("wsgate_event_loop_lag_seconds_count", role="dbwriter") > 0,
         "event_loop_lag_seconds observed in workers and dbwriters")

    # Persistence: every upstream-stage reply (n + the 504) becomes a row.
    rows = n + 1
    t.ok(harness.wait_for(lambda: Scrape(w).v("wsgate_rows_written_total") -
                          m0.v("wsgate_rows_written_total") >= rows, T(20), 0.2),
         "rows_written_total reaches +%d" % rows)
    m2 = Scrape(w)
    t.is_(m2.v("wsgate_rows_written_total") - m0.v("wsgate_rows_written_total"), rows,
          "rows_written_total +%d exactly" % rows)
    t.is_(table_count(pg) - base_rows, rows, "the table holds %d more rows" % rows)
    batches = m2.v("wsgate_db_batches_total") - m0.v("wsgate_db_batches_total")
    t.ok(batches >= 1, "db_batches_total +%d" % batches)
    t.is_(m2.v("wsgate_db_batch_duration_seconds_count") -
          m0.v("wsgate_db_batch_duration_seconds_count"), batches,
          "db_batch_duration_seconds: one observation per batch")
    t.ok(harness.wait_for(lambda: Scrape(w).total("wsgate_ring_records_unacked") == 0 and
                          Scrape(w).total("wsgate_ring_bytes") == 0, T(10), 0.2),
         "ring gauges back to 0 once everything is durable")
    return n + 1


def admin_methods(t, w):
    # HEAD: the length of the body GET would have, and no body.
    with socket.create_connection(("127.0.0.1", w.admin_port), timeout=T(5)) as s:
        s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    t.ok(head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: " in head and body == b"",
         "HEAD /metrics: 200, no body", lambda: repr(data[:300]))
    r = harness.http_request(w.admin_port, "/readyz", method="POST")
    t.is_(r.status, 405, "POST /readyz: 405")


def readiness(t, w, pg, r):
    st = wait_ready(w, 200, "ready\n", T(10))
    t.is_(st, (200, "ready\n"), "/readyz: 200 ready")
    sc = Scrape(w)
    t.ok(sc.v("wsgate_dependency_up", dependency="redis") == 1 and
         sc.v("wsgate_dependency_up", dependency="postgresql") == 1,
         "dependency_up: redis 1, postgresql 1")

    # -- Redis --
    r.stop()
    st = wait_ready(w, 503, "redis unavailable\n", T(10))
    t.is_(st, (503, "redis unavailable\n"), "Redis stopped: /readyz 503 redis unavailable")
    m0 = Scrape(w)
    t.is_(m0.v("wsgate_dependency_up", dependency="redis"), 0, "dependency_up{redis} 0")
    c = Client(w.port)
    rep = c.call('{"id":"noredis","user-id":"u1","payload":1}')
    c.close()
    t.is_(rep.obj and rep.obj.get("status"), 503, "a request meanwhile: 503")
    m1 = Scrape(w)
    t.is_(m1.v("wsgate_redis_errors_total", kind="unavailable") -
          m0.v("wsgate_redis_errors_total", kind="unavailable"), 1,
          "redis_errors_total{kind=unavailable} +1")
    t.is_(m1.v("wsgate_replies_total", status="503") - m0.v("wsgate_replies_total", status="503"),
          1, "replies_total{status=503} +1")
    r.start()
    for u in pl.USERS:
        r.command("SET", "cfg:" + u, json.dumps({"u": u}))
    st = wait_ready(w, 200, "ready\n", T(20))
    t.is_(st, (200, "ready\n"), "Redis back: /readyz 200 again")

    # -- PostgreSQL --
    e0 = Scrape(w).v("wsgate_pg_errors_total", kind="connection")
    pg.stop()
    st = wait_ready(w, 503, "postgresql unavailable\n", T(10))
    t.is_(st, (503, "postgresql unavailable\n"),
          "PostgreSQL stopped: /readyz 503 postgresql unavailable")
    sc = Scrape(w)
    t.ok(sc.v("wsgate_dependency_up", dependency="postgresql") == 0 and
         sc.v("wsgate_db_connections") == 0,
         "dependency_up{postgresql} 0, db_connections 0")
    t.ok(sc.v("wsgate_pg_errors_total", kind="connection") > e0,
         "pg_errors_total{kind=connection} grew")
    clients, statuses = requests(w.port, "nopg", 10, 2)
    close_all(clients)
    t.ok(statuses == [200] * 10, "10 requests while PostgreSQL is down: 200")
    t.ok(harness.wait_for(lambda: Scrape(w).v("wsgate_spool_bytes") > 0, T(10), 0.2),
         "spool_bytes > 0: the records went to the spool")
    pl.pg_restart_same_port(pg)
    st = wait_ready(w, 200, "ready\n", T(45))
    t.is_(st, (200, "ready\n"), "PostgreSQL back: /readyz 200 again")

    # -- A dbwriter that stops beating does not look connected --
    dbw = w.pids("dbwriter")
    t.is_(len(dbw), 1, "one dbwriter")
    os.kill(dbw[0], signal.SIGSTOP)
    try:
        st = wait_ready(w, 503, "postgresql unavailable\n", T(15))
        t.is_(st, (503, "postgresql unavailable\n"),
              "dbwriter stopped (SIGSTOP): /readyz 503 once its heartbeat is stale")
    finally:
        os.kill(dbw[0], signal.SIGCONT)
    st = wait_ready(w, 200, "ready\n", T(10))
    t.is_(st, (200, "ready\n"), "dbwriter continued: /readyz 200")
    return 10


def generations(t, w, pg, rows_so_far):
    """Counters survive a reload and a killed worker, and count on."""
    m0 = Scrape(w)
    w.signal(signal.SIGHUP)
    t.ok(harness.wait_for(lambda: Scrape(w).v("wsgate_reloads_total") ==
                          m0.v("wsgate_reloads_total") + 1, T(10), 0.1),
         "reloads_total +1 after SIGHUP")
    t.ok(harness.wait_for(lambda: Scrape(w).v("wsgate_processes", role="worker") == 2 and
                          len(w.pids("worker")) == 2, T(20), 0.2),
         "the old generation has drained (2 workers)")
    workers = w.pids("worker")
    os.kill(workers[0], signal.SIGKILL)
    t.ok(w.wait_children("worker", 2, T(10), exclude=[workers[0]]) is not None,
         "killed worker replaced")
    m1 = Scrape(w)
    check_format(t, m1, "after a reload and a respawn")
    t.is_(m1.v("wsgate_child_restarts_total") - m0.v("wsgate_child_restarts_total"), 1,
          "child_restarts_total +1")
    moved = [k for k, v in m0.samples.items()
             if m0.types.get(k[0]) == "counter" and m1.samples.get(k, 0) < v]
    t.ok(not moved, "no counter went backwards across the reload and the respawn",
         lambda: repr(moved[:10]))
    k = 20
    t.ok(wait_ready(w, 200, "ready\n", T(15)) == (200, "ready\n"), "ready after the respawn")
    clients, statuses = requests(w.port, "gen", k, 2)
    close_all(clients)
    t.ok(statuses == [200] * k, "%d requests after the reload: 200" % k)
    m2 = Scrape(w)
    t.is_(m2.v("wsgate_replies_total", status="200") - m1.v("wsgate_replies_total", status="200"),
          k, "replies_total{status=200} +%d across generations" % k)
    total = rows_so_far + k
    t.ok(harness.wait_for(lambda: table_count(pg) >= total, T(30), 0.2),
         "all %d rows in the table" % total)
    t.ok(harness.wait_for(lambda: Scrape(w).v("wsgate_rows_written_total") == table_count(pg),
                          T(10), 0.2),
         "rows_written_total equals the rows in the table (%d)" % table_count(pg))


def depcheck(t, w, r, pg, up, want_ok):
    rc, out, err = w.run("-T", "-c", w.conf_file)
    lines = {"redis": r"^redis 127\.0\.0\.1:%d: " % r.port,
             "upstream": r"^upstream 127\.0\.0\.1:%d: " % up.port,
             "postgresql": r"^postgresql 127\.0\.0\.1:%d/wsgate: " % pg.port}
    if want_ok:
        t.is_(rc, 0, "wsgate -T, everything up: exit 0", err)
        for dep, rx in lines.items():
            t.like(out, rx + "ok$", "wsgate -T: %s ok" % dep)
        t.like(err, r"test is successful", "wsgate -T: the -t line too")
    else:
        t.ok(rc != 0, "wsgate -T, Redis down: non-zero exit (%d)" % rc)
        t.like(out, lines["redis"] + r"FAILED: \S", "wsgate -T: redis FAILED with a reason")
        t.like(out, lines["upstream"] + "ok$", "wsgate -T: upstream still ok")
        t.like(out, lines["postgresql"] + "ok$", "wsgate -T: postgresql still ok")
    t.is_(len(out.strip().splitlines()), 3, "wsgate -T: one line per dependency")


def depcheck_auth(t, w, r):
    """-T authenticates with the configured password, and never prints it."""
    pw = "s3cret-Pw"
    r.start()
    r.command("CONFIG", "SET", "requirepass", pw)
    w.write_config(redis_password="wrong-" + pw)
    rc, out, _err = w.run("-T", "-c", w.conf_file)
    t.ok(rc != 0, "wsgate -T, wrong Redis password: non-zero exit (%d)" % rc)
    t.like(out, r"^redis 127\.0\.0\.1:%d: FAILED: AUTH: \S" % r.port,
           "wsgate -T: redis FAILED: AUTH and Redis' error")
    w.write_config(redis_password=pw)
    rc, out2, err = w.run("-T", "-c", w.conf_file)
    t.is_(rc, 0, "wsgate -T, right Redis password: exit 0", err)
    t.like(out2, r"^redis 127\.0\.0\.1:%d: ok$" % r.port, "wsgate -T: redis ok with AUTH")
    t.ok(pw not in out + out2 + err, "wsgate -T prints no password")


def depcheck_pg_write(t, pg, r, up):
    """-T checks that the dbwriters could write, not only connect."""
    role = "wsgate_ro"
    pg.psql("CREATE ROLE %s LOGIN" % role)
    as_role = pg.conninfo.replace("user=postgres", "user=" + role)
    line = r"^postgresql 127\.0\.0\.1:%d/wsgate: " % pg.port

    def check(name, want, desc, **conf):
        w = pl.gateway(t, name, pg, r, up, conf.pop("table", TABLE), **conf)
        rc, out, err = w.run("-T", "-c", w.conf_file)
        t.like(out, line + want, "wsgate -T: %s" % desc)
        if want != "ok$":
            t.ok(rc != 0, "... and a non-zero exit (%d)" % rc)
        return w
    check("dc-insert", r"FAILED: role %s may not INSERT into %s$" % (role, TABLE),
          "a role without INSERT on pg_table", pg_conninfo=as_role)
    w = check("dc-create", r"FAILED: table dc_missing does not exist and role %s may not "
              r"create it in schema public$" % role,
              "pg_table missing, a role that may not create it", pg_conninfo=as_role,
              table="dc_missing")
    # Started all the same: each connection's set-up fails, and backs off.
    w.start()
    t0 = time.monotonic()
    time.sleep(3)
    fails = w.grep_log(r"dbwriter\[\d+\] warn: PostgreSQL set-up failed: ")
    n = 4       # db_connections' default
    t.ok(1 <= len(fails) <= n * 6, "a set-up that keeps failing backs off: %d failures of "
         "%d connections in %.1fs" % (len(fails), n, time.monotonic() - t0),
         lambda: "\n".join(m.string for m in fails[-5:]))
    w.stop()
    check("dc-nocreate", r"FAILED: table dc_missing does not exist \(db_create_table is "
          r"off\)$", "pg_table missing, db_create_table off", table="dc_missing",
          db_create_table="off")
    check("dc-create-ok", r"ok$", "pg_table missing, a role that may create it",
          table="dc_missing")
    pg.psql("ALTER SYSTEM SET default_transaction_read_only = on")
    pg.psql("SELECT pg_reload_conf()")
    try:
        check("dc-readonly", r"FAILED: the server is read-only \(transaction_read_only is "
              r"on: a standby\?\)$", "a read-only server")
    finally:
        pg.psql("ALTER SYSTEM RESET default_transaction_read_only")
        pg.psql("SELECT pg_reload_conf()")
    check("dc-writable", r"ok$", "the server writable again")


def main(t):
    t.need_binary()
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    pg, r, up = pl.setup_services(t)
    w = pl.gateway(t, "metrics", pg, r, up, TABLE, db_flush_interval="20ms",
                   upstream_timeout="1s")
    depcheck(t, w, r, pg, up, True)
    w.start()
    t.ok(pl.wait_table(w, pg, TABLE), "dbwriter created table %s" % TABLE)
    admin_methods(t, w)
    rows = workload(t, w, pg)
    rows += readiness(t, w, pg, r)
    generations(t, w, pg, rows)
    r.stop()
    depcheck(t, w, r, pg, up, False)
    w.stop()
    depcheck_auth(t, w, r)
    depcheck_pg_write(t, pg, r, up)


harness.run(main, watchdog=360)
