#!/usr/bin/env python3
"""The persistence guarantee under faults (issue 5 "Tests", DESIGN.md "The
persistence path"), under load from the bench tool (tests/bench/wsbench,
recording every reply it receives): every reply with an upstream-stage
status that the client received has exactly one row (by client_id), rows
of replies lost with a dropped connection allowed, after each of

  kill -9 of a worker, of a dbwriter (the clients reconnect and go on),
  of the master (children drain and exit, wsbench ends at -d by itself;
  the spool replays after a restart on the same dirs);
  PostgreSQL stopped for 20 s mid-load, restarted on the same port;
  LOCK TABLE ... IN ACCESS EXCLUSIVE MODE held 10 s by another session;
  (for these two: replies go on at the offered rate, every one 200, with
  wsbench's p99 within 1.5x of a no-fault run at the same time: a twin
  wsgate with its own PostgreSQL under the same load, so that the noise
  of a shared, sanitized machine hits both runs alike)
  ring full (64k ring, 1m spool, PostgreSQL down): 503 overloaded, then
  recovery;
  the spool's disk full (a 384k tmpfs in a mount namespace of the
  test's own, spool_max_bytes far above it, PostgreSQL down): ENOSPC
  logged once, not at every retry; nothing acknowledged that is not on
  disk, 503 overloaded, no process dies; the disk grown (PostgreSQL
  still down): spooling resumes, said, requests answered 200 again;
  PostgreSQL back: every 200 reply has its row, and the disk is free
  again once the spool is replayed;
  PostgreSQL refusing the writes (INSERT revoked from wsgate's role
  for 4 s): the failure logged, not at every retry; replies go on, 200;
  the privilege back: every 200 reply has its row;
  SIGHUP during load;
  a corrupted and a truncated spool segment: damage logged, the rest
  replayed;
  upstream bodies with NUL bytes and invalid UTF-8 under load.

Each scenario has its own wsgate and table, db_spool_after 500ms.
PERSIST_ONLY=pgdown,lock,... runs some of them."""

import glob
import os
import re
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402

CONNS, INFLIGHT = 3, 6
RATE = 1000             # requests/s of every load
P99_FACTOR = 1.5        # the bound, fault run vs no-fault twin
PACE = 0.9              # fault run's replies in the window vs the twin's


def bench(t, w, tag, **kw):
    kw.setdefault("conns", CONNS)
    kw.setdefault("inflight", INFLIGHT)
    kw.setdefault("rate", RATE)
    return pl.Bench(t, w.port, tag, **kw)


def finish(t, pg, table, bn, label, allow_missing=(), prefix=None):
    """End the load (if still running), check the run and the rows."""
    bn.stop()
    t.note("%s: %s" % (label, bn.summary()))
    bn.sane(t, label)
    cids = bn.stage_cids()
    res = pl.check_rows(t, pg, table, cids, label, allow_missing=allow_missing,
                        prefix=prefix)
    extra = len(pl.row_counts(pg, table, prefix)) - len(cids)
    if extra:
        t.note("%s: %d rows for requests whose reply the client did not get (allowed)"
               % (label, extra))
    return res


def sleep_until(t_abs):
    time.sleep(max(0.0, t_abs - time.monotonic()))


# ---- fault vs no-fault twin ----

class Twin:
    """The no-fault run: a wsgate with its own PostgreSQL cluster, loaded
    like the faulty one and at the same time."""

    TABLE = "f_twin"

    def __init__(self, t, r, up):
        self.pg = t.start_postgres()
        self.w = pl.gateway(t, "twin", self.pg, r, up, self.TABLE).start()
        pl.wait_table(self.w, self.pg, self.TABLE)


def compare(t, label, fb, tb, t0, t1):
    """The fault run `fb` against the twin's `tb` (both finished): replies
    went on at the twin's pace in [t0, t1], each one 200, and wsbench's
    p99 over the measured window is within P99_FACTOR of the twin's."""
    during = [r for r in fb.recs if t0 <= r.t <= t1]
    twin = [r for r in tb.recs if t0 <= r.t <= t1]
    t.ok(len(during) >= PACE * len(twin) and len(during) > 0,
         "%s: replies go on (%d in %.1fs, no-fault twin %d)" % (
             label, len(during), t1 - t0, len(twin)))
    bad = sorted(set(r.label() for r in during if r.status != 200 or not r.stage))
    t.ok(not bad, "%s: every reply meanwhile 200 from the upstream" % label,
         lambda: repr(bad))
    p, q = fb.get("p99_ms", None), tb.get("p99_ms", None)
    t.note("%s: wsbench p99 %.2f ms (p50 %.2f, max %.1f) vs no-fault twin %.2f ms "
           "(p50 %.2f, max %.1f); p99 of the fault window alone %.2f ms" % (
               label, p or -1, fb.get("p50_ms"), fb.get("max_ms"), q or -1,
               tb.get("p50_ms"), tb.get("max_ms"),
               (pl.p99(pl.window(fb.recs, t0, t1)) or 0) * 1000))
    t.ok(p is not None and q and p <= P99_FACTOR * q,
         "%s: p99 within %.1fx of the no-fault run (%.2fx)" % (
             label, P99_FACTOR, p / q if p is not None and q else -1))


def pg_outage(t, pg, r, up, twin):
    table = "f_pgdown"
    warm, down, after = 2.0, 20.0, 3.0
    w = pl.gateway(t, "pgdown", pg, r, up, table).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "P", secs=down + after, warmup=warm).start()
    tb = bench(t, twin.w, "TP", secs=down + after, warmup=warm).start()
    sleep_until(fb.t_ready + warm)
    t0 = time.monotonic()
    pg.stop()
    t_down = time.monotonic()
    t.note("PostgreSQL stopped in %.2fs" % (t_down - t0))
    sleep_until(t_down + down)
    t1 = time.monotonic()
    pl.pg_restart_same_port(pg)
    t.note("PostgreSQL down %.1fs, restarted on port %d in %.2fs" % (
        t1 - t_down, pg.port, time.monotonic() - t1))
    fb.wait()
    tb.wait()
    t.ok(os.path.isdir(w.conf["spool_dir"]) and
         w.grep_log(r"dbwriter\[\d+\] .*(connection|PostgreSQL)"),
         "dbwriter logged the outage", lambda: w.describe())
    compare(t, "PostgreSQL down 20 s", fb, tb, t_down + 0.5, t1)
    finish(t, pg, table, fb, "PostgreSQL down 20 s")
    finish(t, twin.pg, twin.TABLE, tb, "no-fault twin of PostgreSQL down", prefix="TP.")
    rep = w.grep_log(r"replaying spooled records")
    t.ok(rep, "spooled records replayed after PostgreSQL came back (%d replay lines)" % len(rep),
         lambda: w.describe())
    pl.no_deaths(t, w, "PostgreSQL down")
    w.stop()


def lock_table(t, pg, r, up, twin):
    table = "f_lock"
    warm, held, after = 1.5, 10.0, 2.0
    w = pl.gateway(t, "lock", pg, r, up, table).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "K", secs=held + after, warmup=warm).start()
    tb = bench(t, twin.w, "TK", secs=held + after, warmup=warm).start()
    sleep_until(fb.t_ready + warm)
    lk = pl.Locker(pg, table, held)
    t.ok(lk.wait_locked(pg, table), "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE held" % table)
    t0 = time.monotonic()
    rc = lk.wait()
    t1 = time.monotonic()
    t.is_(rc, 0, "the locking session committed after %g s (%.1fs)" % (held, t1 - t0))
    fb.wait()
    tb.wait()
    t.ok(w.grep_log(r"PostgreSQL slow: batch spooled after"),
         "log: batch spooled after db_spool_after", lambda: w.describe())
    compare(t, "table locked 10 s", fb, tb, t0 + 0.5, t1)
    finish(t, pg, table, fb, "LOCK TABLE 10 s")
    finish(t, twin.pg, twin.TABLE, tb, "no-fault twin of LOCK TABLE", prefix="TK.")
    pl.no_deaths(t, w, "LOCK TABLE")
    w.stop()


# ---- process kills ----

def kill_worker(t, pg, r, up):
    table = "f_wkill"
    w = pl.gateway(t, "wkill", pg, r, up, table).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "W", conns=4).start()
    time.sleep(2)
    # The worker holding the most of the load's connections.
    held = sorted((pl.client_conns(p, w.port), p) for p in w.pids("worker"))
    t.note("client connections per worker (count, pid): %r" % held)
    victim = held[-1][1]
    os.kill(victim, signal.SIGKILL)
    new = w.wait_children("worker", 2, T(10), exclude=[victim])
    t.ok(new, "killed worker %d replaced" % victim)
    t_new = time.monotonic()
    time.sleep(2.5)
    rec = w.grep_log(r"ring recovered slot=")
    t.note("replacement: %s" % ("; ".join(m.string.split(": ", 1)[-1] for m in rec) or
                                "no 'ring recovered' line"))
    finish(t, pg, table, fb, "kill -9 worker")
    t.ok(fb.get("conns_dropped") > 0 and fb.get("reconnects") > 0,
         "clients of the killed worker dropped (%d) and reconnected (%d)" % (
             fb.get("conns_dropped"), fb.get("reconnects")))
    late = [x for x in fb.recs if x.t > t_new + 1 and x.status == 200]
    t.ok(len(late) > 100, "load goes on after the replacement (%d replies 200)" % len(late))
    w.stop()


def kill_dbwriter(t, pg, r, up):
    table = "f_dkill"
    w = pl.gateway(t, "dkill", pg, r, up, table).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "D").start()
    time.sleep(2)
    victim = w.pids("dbwriter")[0]
    os.kill(victim, signal.SIGKILL)
    new = w.wait_children("dbwriter", 1, T(10), exclude=[victim])
    t.ok(new, "killed dbwriter %d replaced" % victim)
    time.sleep(2.5)
    finish(t, pg, table, fb, "kill -9 dbwriter")
    t.is_((fb.get("conns_dropped"), fb.get("lost")), (0, 0),
          "no client connection dropped, no request lost")
    pl.no_deaths(t, w, "kill -9 dbwriter", roles=("worker",))
    w.stop()


def kill_master(t, pg, r, up):
    """PostgreSQL down (records go to the spool), kill -9 the master: the
    children drain and exit and wsbench, its connections gone, ends at -d
    by itself; PostgreSQL and wsgate (same dirs) started again: the spool
    replays."""
    table = "f_mkill"
    secs = 8.0
    w = pl.gateway(t, "mkill", pg, r, up, table).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "M", secs=secs).start()
    time.sleep(1.5)
    pg.stop()
    time.sleep(2)
    kids = [p for p, _c, _r in w.children()]
    os.kill(w.pid, signal.SIGKILL)
    t0 = time.monotonic()
    gone = harness.wait_for(lambda: not any(harness.REG.alive(p) for p in kids),
                            T(w.shutdown_timeout + 8))
    t.ok(gone, "children exit after the master's SIGKILL (%.1fs)" % (time.monotonic() - t0),
         lambda: "still alive: %r" % [p for p in kids if harness.pid_alive(p)])
    fb.wait()
    t.ok(fb.rc == 0 and fb.res is not None and
         abs(fb.get("duration_s") - secs) < 1 and
         fb.t_ready + secs - 0.5 <= time.monotonic() <= fb.t_ready + secs + T(10),
         "wsbench, its server gone, ended by itself at -d %g s (exit %s, measured %.2fs)"
         % (secs, fb.rc, fb.get("duration_s")), lambda: fb.stderr()[-2000:])
    t.ok(w.grep_log(r"worker\[\d+\] info: draining") and
         w.grep_log(r"dbwriter\[\d+\] info: (draining|dbwriter exiting)"),
         "children logged draining (PR_SET_PDEATHSIG)")
    t.ok(not w.grep_log(r"shutdown_timeout reached|records unacknowledged|not acknowledged"),
         "children drained within shutdown_timeout",
         lambda: "\n".join(m.string for m in w.grep_log(
             r"shutdown_timeout reached|unacknowledged|not acknowledged")))
    segs = glob.glob(os.path.join(w.conf["spool_dir"], "*", "spool-*.seg"))
    t.ok(segs, "records spooled while PostgreSQL was down (%d segment files)" % len(segs))
    pl.pg_restart_same_port(pg)
    w.mark_log()
    w.start()
    t.ok(w.wait_log(r"replaying spooled records", T(15)), "restarted wsgate replays the spool",
         lambda: w.describe())
    finish(t, pg, table, fb, "kill -9 master")
    w.stop()


# ---- backpressure, reload ----

def ring_full(t, pg, r, up):
    table = "f_ring"
    w = pl.gateway(t, "ring", pg, r, up, table, ring_size="64k", spool_max_bytes="1m").start()
    pl.wait_table(w, pg, table)
    # Faster than the other loads: a 1m spool fills in about 2 s.
    fb = bench(t, w, "R", rate=4 * RATE).start()
    time.sleep(1)
    pg.stop()
    t_down = time.monotonic()
    # wsbench writes its record out once a second.
    got503 = harness.wait_for(lambda: any(x.overloaded() for x in fb.records()), T(20), 0.3)
    t.ok(got503, "ring and spool full: 503 overloaded (after %.1fs)" % (
        time.monotonic() - t_down), lambda: w.describe())
    t_first = time.monotonic() - t_down
    # With a 64k ring (~350 records) the first 503s may come before the
    # spool is full: a batch stuck at the stopping server holds acks for
    # up to db_spool_after.  Then the spool (1m) fills and stays full.
    full = harness.wait_for(lambda: w.grep_log(r"spool full or failing"), T(15), 0.1)
    t.ok(full, "log: spool full or failing (first 503 after %.1fs, spool full after %.1fs)"
         % (t_first, time.monotonic() - t_down), lambda: w.describe())
    t_full = time.monotonic()
    time.sleep(2)
    recent = [x for x in fb.records() if t_full + 0.3 < x.t]
    n503 = sum(1 for x in recent if x.overloaded())
    t.ok(recent and n503 == len(recent),
         "spool full, PostgreSQL down: every new request 503 overloaded (%d of %d)"
         % (n503, len(recent)), lambda: repr(sorted(set(x.label() for x in recent))))
    pl.pg_restart_same_port(pg)
    t_up = time.monotonic()
    rec = harness.wait_for(lambda: any(x.status == 200 and x.t > t_up + 0.2
                                       for x in fb.records()), T(20), 0.3)
    t.ok(rec, "after PostgreSQL is back: new requests answered 200 (after %.1fs)" % (
        time.monotonic() - t_up))
    time.sleep(1)
    finish(t, pg, table, fb, "ring full")
    last = sorted(fb.recs, key=lambda x: x.t)[-200:]
    t.ok(len(last) == 200 and all(x.status == 200 for x in last),
         "the last 200 replies are all 200", lambda: repr(sorted(set(x.label() for x in last))))
    pl.no_deaths(t, w, "ring full")
    w.stop()


def disk_full(t, pg, r, up):
    """ENOSPC from the spool's file system itself, not spool_max_bytes."""
    if not harness.IS_ROOT:
        t.skip("disk full", "mounting a small tmpfs needs root", 7)
        return
    why = harness.private_mounts()
    if why is not None:
        t.skip("disk full", "no mount namespace: %s" % why, 7)
        return
    table = "f_disk"
    w = pl.gateway(t, "disk", pg, r, up, table, ring_size="64k", spool_max_bytes="64m")
    spool = w.conf["spool_dir"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k,mode=0700", "wsgate-test",
                    spool], check=True)

    def free():
        st = os.statvfs(spool)
        return st.f_bavail * st.f_frsize
    total = free()
    w.start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "D", rate=4 * RATE).start()
    time.sleep(1)
    pg.stop()
    t_down = time.monotonic()
    t.ok(w.wait_log(r"dbwriter\[\d+\] warn: spool: cannot write segment: No space left "
                    r"on device file=\S+ bytes=\d+ unlogged=0$", T(20)),
         "disk full: 'spool: cannot write segment: No space left on device' logged "
         "(after %.1fs)" % (time.monotonic() - t_down), lambda: w.describe())
    t.ok(harness.wait_for(lambda: w.grep_log(r"spool full or failing"), T(10), 0.1),
         "disk full: 'spool full or failing: records wait' logged")
    t.ok(free() < 64 * 1024, "disk full: the spool's file system is full (%d of %d bytes "
         "free)" % (free(), total))
    got503 = harness.wait_for(lambda: any(x.overloaded() for x in fb.records()), T(20), 0.3)
    t.ok(got503, "disk full, PostgreSQL down: 503 overloaded once the ring is full too")
    t_full = time.monotonic()
    time.sleep(3)
    recent = [x for x in fb.records() if t_full + 0.3 < x.t]
    t.ok(recent and all(x.overloaded() for x in recent),
         "disk full, PostgreSQL down: every new request 503 overloaded (%d)" % len(recent),
         lambda: repr(sorted(set(x.label() for x in recent))))
    # A retry every db_flush_interval, each failing: a line every 10 s at most.
    fails = w.grep_log(r"spool: cannot (write|create) segment")
    t.ok(1 <= len(fails) <= 2 + (time.monotonic() - t_down) / 10,
         "disk full: the failing retries are not logged each (%d lines in %.1fs)"
         % (len(fails), time.monotonic() - t_down), lambda: "\n".join(m.string for m in fails))
    # Room again, PostgreSQL still down: the spool takes the records.
    subprocess.run(["mount", "-o", "remount,size=16m", spool], check=True)
    t_room = time.monotonic()
    t.ok(w.wait_log(r"dbwriter\[\d+\] info: spool: segments written again failed=\d+ ", T(10)),
         "disk grown: 'spool: segments written again failed=N' logged")
    rec = harness.wait_for(lambda: any(x.status == 200 and x.t > t_room + 0.5
                                       for x in fb.records()), T(20), 0.3)
    t.ok(rec, "disk grown, PostgreSQL still down: requests answered 200 again (after %.1fs)"
         % (time.monotonic() - t_room))
    pl.pg_restart_same_port(pg)
    t_up = time.monotonic()
    t.ok(harness.wait_for(lambda: any(x.status == 200 and x.t > t_up + 0.2
                                      for x in fb.records()), T(20), 0.3),
         "after PostgreSQL is back: requests answered 200")
    time.sleep(1)
    finish(t, pg, table, fb, "disk full")
    t.ok(w.wait_log(r"dbwriter\[\d+\] info: spooled records all read back for replay "
                    r"count=[1-9]\d* seconds=", T(20)),
         "disk full: 'spooled records all read back for replay count=N' logged")
    reps = w.grep_log(r"replaying spooled records")
    t.is_(len(reps), 1, "disk full: one 'replaying spooled records' line for the replay",
          lambda: "\n".join(m.string for m in reps))
    size = os.statvfs(spool).f_blocks * os.statvfs(spool).f_frsize
    t.ok(harness.wait_for(lambda: free() > size - 64 * 1024, T(30), 0.3),
         "disk full: the spool replayed and its segments deleted (%d of %d bytes free)"
         % (free(), size))
    pl.no_deaths(t, w, "disk full")
    w.stop()
    subprocess.run(["umount", spool], check=False)


def revoked(t, pg, r, up):
    """A lasting statement error that is not the data's: permission."""
    table, role = "f_revoke", "wsgate_writer"
    pg.psql("CREATE ROLE %s LOGIN; GRANT CREATE ON SCHEMA public TO %s" % (role, role))
    w = pl.gateway(t, "revoke", pg, r, up, table,
                   pg_conninfo=pg.conninfo.replace("user=postgres", "user=" + role)).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "V").start()
    time.sleep(1)
    pg.psql("REVOKE INSERT ON %s FROM %s" % (table, role))
    t_rev = time.monotonic()
    t.ok(w.wait_log(r"dbwriter\[\d+\] warn: batch failed sqlstate=42501 rows=\d+: "
                    r".*permission denied for table %s unlogged=0$" % table, T(10)),
         "INSERT revoked: 'batch failed sqlstate=42501 ...: permission denied' logged",
         lambda: w.describe())
    time.sleep(4)
    fails = w.grep_log(r"batch failed sqlstate=")
    t.ok(1 <= len(fails) <= 2 + (time.monotonic() - t_rev) / 10,
         "INSERT revoked: the failing retries are not logged each (%d lines in %.1fs)"
         % (len(fails), time.monotonic() - t_rev), lambda: "\n".join(m.string for m in fails))
    pg.psql("GRANT INSERT ON %s TO %s" % (table, role))
    t_back = time.monotonic()
    rev = [x for x in fb.records() if t_rev + 1.0 < x.t < t_back]
    t.ok(rev and all(x.status == 200 for x in rev),
         "INSERT revoked: replies go on, every one 200 (%d)" % len(rev),
         lambda: repr(sorted(set(x.label() for x in rev))))
    time.sleep(2)
    finish(t, pg, table, fb, "INSERT revoked")
    pl.no_deaths(t, w, "INSERT revoked")
    w.stop()


def sighup(t, pg, r, up):
    table = "f_hup"
    w = pl.gateway(t, "hup", pg, r, up, table).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "H").start()
    time.sleep(1.5)
    old = set(w.pids("worker")) | set(w.pids("dbwriter"))
    w.signal(signal.SIGHUP)
    t.ok(harness.wait_for(lambda: len(set(w.pids("worker")) - old) == 2, T(10)),
         "SIGHUP: a new generation of workers")
    t.ok(harness.wait_for(lambda: not (old & set(p for p, _c, _r in w.children())),
                          T(w.shutdown_timeout + 8)),
         "old generation exited")
    t_new = time.monotonic()
    time.sleep(1.5)
    finish(t, pg, table, fb, "SIGHUP")
    late = [x for x in fb.recs if x.t > t_new + 0.5 and x.status == 200]
    t.ok(len(late) > 100, "load goes on with the new generation (%d replies 200, %d "
         "reconnects)" % (len(late), fb.get("reconnects")))
    pl.no_deaths(t, w, "SIGHUP")
    w.stop()


# ---- spool damage ----

FRAME = struct.Struct("<4sIII")
MAGIC = b"WSP\x01"
IDRX = re.compile(rb'"S\.[0-9a-f]+\.\d+\.\d+"')


def frames(data):
    """[(offset, total length, client_id texts in the payload)] of a
    segment's frames."""
    out, off = [], 0
    while off + FRAME.size <= len(data):
        magic, n, _c1, _c2 = FRAME.unpack_from(data, off)
        if magic != MAGIC or off + FRAME.size + n > len(data):
            break
        payload = data[off + FRAME.size:off + FRAME.size + n]
        out.append((off, FRAME.size + n, [m.decode() for m in IDRX.findall(payload)]))
        off += FRAME.size + n
    return out


def spool_damage(t, pg, r, up):
    table = "f_spool"
    w = pl.gateway(t, "spool", pg, r, up, table).start()
    pl.wait_table(w, pg, table)
    pg.stop()
    fb = bench(t, w, "S", secs=2).start().wait()
    t.note("spool damage load: " + fb.summary())
    fb.sane(t, "spool damage load")
    rc = w.stop()
    t.is_(rc, 0, "wsgate stopped (TERM) with PostgreSQL down, exit 0")
    segs = sorted(glob.glob(os.path.join(w.conf["spool_dir"], "*", "spool-*.seg")))
    t.ok(segs, "records spooled: %s" % [os.path.relpath(s, w.conf["spool_dir"]) for s in segs])
    damaged = set()
    allframes = 0
    ids_spooled = set()
    fr_by_seg = {}
    for s in segs:
        with open(s, "rb") as f:
            fr_by_seg[s] = frames(f.read())
        allframes += len(fr_by_seg[s])
        for _o, _n, ids in fr_by_seg[s]:
            ids_spooled.update(ids)
    t.note("spool: %d segment(s), %d frames" % (len(segs), allframes))
    if not segs or allframes < 10:
        t.ok(False, "enough spooled frames to damage")
        return
    # Flip bytes inside the payload of a frame in the middle of the first
    # segment, and cut the last frame of the last one in half.
    s0 = segs[0]
    fr = fr_by_seg[s0]
    mid = fr[len(fr) // 2]
    with open(s0, "r+b") as f:
        f.seek(mid[0] + FRAME.size + 10)
        f.write(b"\xde\xad\xbe\xef")
    damaged.update(mid[2])
    sl = segs[-1]
    last = fr_by_seg[sl][-1]
    with open(sl, "r+b") as f:
        f.truncate(last[0] + last[1] // 2)
    damaged.update(last[2])
    t.note("damaged: frame at offset %d of %s (%d ids), tail frame at offset %d of %s "
           "(%d ids)" % (mid[0], os.path.basename(s0), len(mid[2]), last[0],
                         os.path.basename(sl), len(last[2])))
    pl.pg_restart_same_port(pg)
    w.mark_log()
    w.start()
    m1 = w.wait_log(r"spool: skipped (damaged bytes|torn tail) .*bytes=\d+", T(15))
    t.ok(m1, "log: damaged spool bytes skipped", lambda: w.describe())
    cids = fb.stage_cids()
    missing, dup = pl.check_rows(t, pg, table, cids, "spool damage", allow_missing=damaged,
                                 timeout=T(20))
    lines = [m.string for m in w.grep_log(r"spool: skipped")]
    t.note("skip lines:\n" + "\n".join(lines))
    t.ok(any("torn tail" in x for x in lines), "log: torn tail")
    t.ok(any("damaged bytes" in x for x in lines), "log: damaged bytes")
    t.ok(set(missing) <= damaged and len(missing) <= len(damaged),
         "at most the %d damaged records are missing (%d missing)" % (len(damaged), len(missing)),
         lambda: "missing: %r, damaged: %r" % (missing, sorted(damaged)))
    not_spooled = cids - ids_spooled
    if not_spooled:
        t.note("%d replies were not in the spool (committed before PostgreSQL stopped?)"
               % len(not_spooled))
    pl.no_deaths(t, w, "spool damage")
    w.stop()


def poison(t, pg, r, up):
    table = "f_poison"
    body = b'{"t":"nul\x00 \xff\xfe bad \xc3\x28 \xed\xa0\x80 \xe2\x82 ok \xc3\xa9"}'
    w = pl.gateway(t, "poison", pg, r, up, table,
                   url="http://127.0.0.1:%d/hex/%s" % (up.port, body.hex())).start()
    pl.wait_table(w, pg, table)
    fb = bench(t, w, "X").start()
    time.sleep(3)
    t_stop = time.monotonic()
    finish(t, pg, table, fb, "NUL/invalid UTF-8 bodies")
    t.note("rows landed %.1fs after the load stopped" % (time.monotonic() - t_stop))
    t.ok(all(x.status == 200 for x in fb.recs), "every reply 200",
         lambda: repr(fb.statuses()))
    exp = pl.replace_invalid(body)
    rows = pg.psql("SELECT response, count(*) FROM %s GROUP BY response" % table)
    t.is_(rows, [[exp, str(len(pl.row_counts(pg, table)))]] if rows else None,
          "every row's response is the body with U+FFFD for each bad byte")
    t.ok(not w.grep_log(r"dead-letter|rejected"), "nothing rejected or dead-lettered",
         lambda: "\n".join(m.string for m in w.grep_log(r"dead-letter|rejected")))
    w.stop()


def main(t):
    t.need_binary()
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    pg, r, up = pl.setup_services(t)
    only = [x for x in os.environ.get("PERSIST_ONLY", "").split(",") if x]

    def want(name):
        return not only or name in only
    twin = Twin(t, r, up) if want("pgdown") or want("lock") else None
    for name, fn in (("pgdown", pg_outage), ("lock", lock_table)):
        if want(name):
            st = time.monotonic()
            fn(t, pg, r, up, twin)
            t.note("-- %s took %.1fs" % (name, time.monotonic() - st))
    if twin is not None:
        pl.no_deaths(t, twin.w, "no-fault twin")
        twin.w.stop()
    for name, fn in (("wkill", kill_worker), ("dkill", kill_dbwriter), ("mkill", kill_master),
                     ("ring", ring_full), ("disk", disk_full), ("revoke", revoked),
                     ("hup", sighup), ("spool", spool_damage),
                     ("poison", poison)):
        if want(name):
            st = time.monotonic()
            fn(t, pg, r, up)
            t.note("-- %s took %.1fs" % (name, time.monotonic() - st))


harness.run(main, watchdog=400)
