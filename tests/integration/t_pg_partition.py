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
upstream-stage reply has exactly one row in A and B together.  Then
again with tcp_user_timeout=3000 in pg_conninfo: the conninfo's own
setting wins (given up within 3 s + slack)."""

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


def scenario(t, pg_a, pg_b, r, up, label, table, extra, user_timeout):
    """A gateway whose pg_conninfo lists A then B (plus `extra`) under
    load; A partitioned away: the connection is given up within
    user_timeout + 10 s, B takes over, each reply has exactly one row."""
    why = blackhole_ready()
    t.ok(why is None, "%s: tc set up on lo" % label, lambda: why)
    conninfo = "host=%s,%s port=%d,%d user=postgres dbname=wsgate connect_timeout=2%s" % (
        A_ADDR, B_ADDR, pg_a.port, pg_b.port, extra)
    w = pl.gateway(t, table, pg_a, r, up, table, pg_conninfo=conninfo).start()
    pl.wait_table(w, pg_a, table)

    bn = pl.Bench(t, w.port, table, conns=3, inflight=4, rate=300, secs=600).start()
    t.ok(harness.wait_for(lambda: pl.rows_if_any(pg_a, table), T(10)),
         "%s: rows land in PostgreSQL A, the list's first host" % label)
    t.ok(harness.tcp_answers(pg_a.port, A_ADDR), "%s: A takes TCP connections" % label)

    rc, out = partition(A_ADDR)
    t_cut = time.monotonic()
    t.is_(rc, 0, "%s: tc: packets to %s dropped from now on" % (label, A_ADDR), lambda: out)
    t.ok(not harness.tcp_answers(pg_a.port, A_ADDR),
         "%s: partitioned: a connection to A gets no answer" % label)

    lost = harness.wait_for(lambda: w.grep_log(
        r"dbwriter\[\d+\] \w+: PostgreSQL (connection lost|send failed): .*timed out"),
        T(user_timeout + 15), 0.2)
    t_lost = time.monotonic()
    t.ok(lost, "%s: the dbwriter gives up the connection to A: 'PostgreSQL connection "
         "lost: ... timed out' logged" % label, lambda: w.describe())
    if lost:
        t.note("%s: connection to A given up %.1fs after the partition" % (label,
                                                                           t_lost - t_cut))
        t.ok(t_lost - t_cut <= user_timeout + 10,
             "%s: given up within tcp_user_timeout (%g s) and 10 s (%.1fs)" % (
                 label, user_timeout, t_lost - t_cut))
    slow = [m.string for m in w.grep_log(r"PostgreSQL slow: batch spooled after")]
    t.ok(1 <= len(slow) <= 1 + user_timeout // 10 and
         all(re.search(r"\(\d+ batches, \d+ rows in all since the last such line\)$", x)
             for x in slow[1:]),
         "%s: the batches spooled meanwhile are logged at most every 10 s, with counts "
         "(%d lines)" % (label, len(slow)), lambda: "\n".join(slow))
    t.ok(harness.wait_for(lambda: w.grep_log(
        r"dbwriter\[\d+\] \w+: PostgreSQL connection timed out: connection to server at "
        r"\"%s\", port %d failed; trying the next host" % (A_ADDR.replace(".", r"\."),
                                                            pg_a.port)), T(15)),
         "%s: A, tried again, times out (connect_timeout=2) and the next host is tried"
         % label, lambda: w.describe())
    t.ok(harness.wait_for(lambda: pl.rows_if_any(pg_b, table), T(15)),
         "%s: rows land in PostgreSQL B, the list's second host" % label)
    time.sleep(2)
    bn.stop()
    t.note("%s: %s" % (label, bn.summary()))
    bn.sane(t, label)
    bad = sorted(set(x.label() for x in bn.recs if x.t >= t_cut and
                     (x.status != 200 or not x.stage)))
    after = [x for x in bn.recs if x.t >= t_cut]
    t.ok(after and not bad, "%s: replies go on during the partition, all 200 from the "
         "upstream (%d)" % (label, len(after)), lambda: repr(bad))

    rc, out = heal()
    t.is_(rc, 0, "%s: tc: the partition healed (A reachable again, for counting)" % label,
          lambda: out)
    pl.check_rows_across(t, (pg_a, pg_b), table, bn.stage_cids(), label)
    pl.no_deaths(t, w, label)
    w.stop()


def main(t):
    t.need_binary()
    if not harness.IS_ROOT:
        t.skip_all("a network namespace and tc need root")
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    why = harness.private_network()
    if why is None:
        why = blackhole_ready()
        heal()
    if why is not None:
        t.skip_all("no private network with a blackhole qdisc (%s)" % why)

    pg_a = t.start_postgres(host=A_ADDR)
    pg_b = t.start_postgres(host=B_ADDR)
    r = t.start_redis()
    for u in pl.USERS:
        r.command("SET", "cfg:" + u, '{"u":"%s"}' % u)
    up = t.start_upstream()
    scenario(t, pg_a, pg_b, r, up, "default", "resp_partition", "", USER_TIMEOUT)
    # The conninfo's own setting wins over the dbwriter's default.
    scenario(t, pg_a, pg_b, r, up, "tcp_user_timeout=3000", "resp_partition3",
             " tcp_user_timeout=3000", 3.0)


harness.run(main, watchdog=240)
