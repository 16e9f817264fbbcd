#!/usr/bin/env python3
"""Only dbwriters hold the PostgreSQL credentials (issue 5): a worker's
memory never contains the database password.  The whole readable memory
of every worker is searched for the password of pg_conninfo, after the
workers served requests; the same search over a dbwriter, which needs
the password, must find it (so the search itself can fail).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from t_pipeline import Client, rcall, no_worker_died  # noqa: E402

SECRET = b"Pg-S3cret-" + os.urandom(6).hex().encode()
MAX_MAPPING = 256 << 20     # skip larger mappings (ASan shadow memory)


def memory_has(pid, needle):
    """Whether any readable mapping of `pid` holds `needle`; also the
    number of bytes searched."""
    searched = 0
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            lo, hi, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
            if perms[0] != "r" or hi - lo > MAX_MAPPING or "[vvar]" in line:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            searched += len(data)
            if needle in data:
                return True, searched
    return False, searched


def main(t):
    t.need_binary()
    if not harness.IS_ROOT:
        t.skip_all("reading another process's memory needs root here")
    r = t.start_redis()
    rcall(r, "SET", "cfg:u1", '{"k":"v"}')
    u = t.start_upstream()
    port = harness.free_port()   # nothing listens: the dbwriter keeps trying
    w = t.wsgate("secrets", workers=2, redis_port=r.port, upstream_url=u.url,
                 pg_conninfo="host=127.0.0.1 port=%d user=postgres dbname=wsgate "
                 "password=%s connect_timeout=2" % (port, SECRET.decode()))
    w.start()
    c = Client(w.port)
    for i in range(20):
        rep = c.call('{"id":%d,"user-id":"u1","payload":%d}' % (i, i))
        t.ok(rep.obj is not None and rep.obj.get("status") == 200,
             "request %d served" % i, lambda: repr(rep))
    c.close()
    workers, dbwriters = w.pids("worker"), w.pids("dbwriter")
    t.is_(len(workers), 2, "two workers")
    for pid in workers:
        found, n = memory_has(pid, SECRET)
        t.ok(not found and n > 1 << 20, "worker %d: the password is nowhere in its "
             "memory (%d MiB searched)" % (pid, n >> 20))
    found, n = memory_has(dbwriters[0], SECRET)
    t.ok(found, "the dbwriter, which connects with it, does hold it (the search "
         "works; %d MiB searched)" % (n >> 20))
    t.ok(w.grep_log(re.escape(SECRET.decode())) == [],
         "the password is not in the log")
    w.stop()
    no_worker_died(t)


if __name__ == "__main__":
    harness.run(main, watchdog=120)
