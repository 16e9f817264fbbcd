#!/usr/bin/env python3
"""A PostgreSQL host that vanishes while a batch is in flight (host down,
network partition: nothing answers, not even a reset) does not hold the
dbwriter: the connection is given up within libpq's tcp_user_timeout,
which the dbwriter sets to 20 s where pg_conninfo sets none (without it
the kernel retransmits for about 15 minutes), and the next host of the
list takes over.

The test runs in a network namespace of its own (root needed).
PostgreSQL A listens on 127.0.0.5, B on 127.0.0.3; pg_conninfo lists A
then B.  Under load from the bench tool, every packet to 127.0.0.5 is
dropped (tc on lo: an htb class with a blackhole qdisc, a u32 filter on
the destination).  Expected: replies go on, all 200; the batches spooled
meanwhile are logged at most every 10 s; the dbwriter logs the lost
connection within 20 s + slack, times out on A, connects to B; every
upstream-stage reply has exactly one row in A and B together."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402

TABLE = "resp_partition"
A_ADDR, B_ADDR = "127.0.0.5", "127.0.0.3"
USER_TIMEOUT = 20.0     # the dbwriter's default tcp_user_timeout, seconds


def tc(*args):
    r = subprocess.run(["tc"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode, r.stdout.decode(errors="replace").strip()


def blackhole_ready():
    """An htb root on lo whose default class passes everything, and a
    class leading to a blackhole qdisc, not used yet.  None, or why not."""
    for args in (("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"),
                 ("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb",
                  "rate", "10gbit"),
                 ("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb",
                  "rate", "10gbit"),
                 ("qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "blackhole")):
        rc, out = tc(*args)
        if rc != 0:
            return "tc %s: %s" % (" ".join(args), out)
    return None


def partition(addr):
    """Drop every packet to addr from now on."""
    return tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1",
              "u32", "match", "ip", "dst", addr + "/32", "flowid", "1:20")


def heal():
    return tc("qdisc", "del", "dev", "lo", "root")


def rows(pg):
    """{client_id: count} of TABLE, {} while the dbwriter has not created
    it there yet."""
    try:
        return pl.row_counts(pg, TABLE)
    except RuntimeError:
        return {}


def main(t):
    t.need_binary()
    if not harness.IS_ROOT:
        t.skip_all("a network namespace and tc need root")
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    why = harness.private_network()
    if why is None:
        why = blackhole_ready()
    if why is not None:
        t.skip_all("no private network with a blackhole qdisc (%s)" % why)

    pg_a = t.start_postgres(host=A_ADDR)
    pg_b = t.start_postgres(host=B_ADDR)
    r = t.start_redis()
    for u in pl.USERS:
        r.command("SET", "cfg:" + u, '{"u":"%s"}' % u)
    up = t.start_upstream()
    conninfo = "host=%s,%s port=%d,%d user=postgres dbname=wsgate connect_timeout=2" % (
        A_ADDR, B_ADDR, pg_a.port, pg_b.port)
    w = pl.gateway(t, "partition", pg_a, r, up, TABLE, pg_conninfo=conninfo).start()
    pl.wait_table(w, pg_a, TABLE)

    bn = pl.Bench(t, w.port, "X", conns=3, inflight=4, rate=300, secs=600).start()
    t.ok(harness.wait_for(lambda: rows(pg_a), T(10)),
         "before: rows land in PostgreSQL A, the list's first host")
    t.ok(harness.tcp_answers(pg_a.port, A_ADDR), "before: A takes TCP connections")

    rc, out = partition(A_ADDR)
    t_cut = time.monotonic()
    t.is_(rc, 0, "tc: packets to %s dropped from now on" % A_ADDR, lambda: out)
    t.ok(not harness.tcp_answers(pg_a.port, A_ADDR),
         "partitioned: a connection to A gets no answer")

    lost = harness.wait_for(lambda: w.grep_log(
        r"dbwriter\[\d+\] \w+: PostgreSQL (connection lost|send failed): .*timed out"),
        T(USER_TIMEOUT + 15), 0.2)
    t_lost = time.monotonic()
    t.ok(lost, "the dbwriter gives up the connection to A: 'PostgreSQL connection lost: "
         "... timed out' logged", lambda: w.describe())
    if lost:
        t.note("connection to A given up %.1fs after the partition" % (t_lost - t_cut))
        t.ok(t_lost - t_cut <= USER_TIMEOUT + 10,
             "given up within tcp_user_timeout (20 s) and 10 s (%.1fs)" % (t_lost - t_cut))
    slow = [m.string for m in w.grep_log(r"PostgreSQL slow: batch spooled after")]
    t.ok(1 <= len(slow) <= 3 and all(re.search(r"\(\d+ batches, \d+ rows in all since "
                                               r"the last such line\)$", x) for x in slow[1:]),
         "the batches spooled meanwhile are logged at most every 10 s, with counts "
         "(%d lines)" % len(slow), lambda: "\n".join(slow))
    t.ok(harness.wait_for(lambda: w.grep_log(
        r"dbwriter\[\d+\] \w+: PostgreSQL connection timed out: connection to server at "
        r"\"%s\", port %d failed; trying the next host" % (A_ADDR.replace(".", r"\."),
                                                            pg_a.port)), T(15)),
         "A, tried again, times out (connect_timeout=2) and the next host is tried",
         lambda: w.describe())
    t.ok(harness.wait_for(lambda: rows(pg_b), T(15)),
         "rows land in PostgreSQL B, the list's second host")
    time.sleep(2)
    bn.stop()
    t.note("partition: %s" % bn.summary())
    bn.sane(t, "partition")
    bad = sorted(set(x.label() for x in bn.recs if x.t >= t_cut and
                     (x.status != 200 or not x.stage)))
    after = [x for x in bn.recs if x.t >= t_cut]
    t.ok(after and not bad, "replies go on during the partition, all 200 from the upstream "
         "(%d)" % len(after), lambda: repr(bad))

    rc, out = heal()
    t.is_(rc, 0, "tc: the partition healed (A reachable again, for counting)", lambda: out)
    cids = bn.stage_cids()
    want = set(cids)
    deadline = time.monotonic() + T(30)
    while True:
        a, b = rows(pg_a), rows(pg_b)
        if want <= set(a) | set(b) or time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    missing = sorted(want - set(a) - set(b))
    t.ok(cids and not missing, "all %d upstream-stage replies have a row in A or B "
         "(%d in A, %d in B)" % (len(cids), len(a), len(b)),
         lambda: "%d missing, e.g. %r" % (len(missing), missing[:20]))
    dup = sorted(k for k in set(a) | set(b) if a.get(k, 0) + b.get(k, 0) > 1)
    t.ok(not dup, "no client_id has more than one row in A and B together",
         lambda: "%d duplicated, e.g. %r" % (len(dup), dup[:20]))
    died = [m.string for m in w.grep_log(r"(warn|error): child exited ")]
    t.ok(not died, "no child died", lambda: "\n".join(died))
    w.stop()


harness.run(main, watchdog=180)
