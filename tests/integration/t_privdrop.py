#!/usr/bin/env python3
"""Privilege drop as a packaged service runs it (root master, `user
nobody`): runtime_dir stays root's (0711) with the dbwriter socket the
user's alone (0600), the spool is the user's (0700), whatever mode or owner
the directories had before; a shared directory (mode 1777) is refused; the
workers of the first and of a reloaded generation reach the dbwriters
(their requests land in PostgreSQL); contrib/wsgate.logrotate rotates the
log and every child, running as the user, reopens it.  worker_priority
sets the workers' nice value before the drop (a negative one needs root's
CAP_SYS_NICE), the dbwriters keep the master's; without the capability
the workers say so and keep it."""

import ctypes
import json
import os
import pwd
import grp
import shutil
import signal
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402
from t_pipeline import Client  # noqa: E402

TABLE = "resp_privdrop"
USER = "nobody"


def owner_mode(path):
    """("user:group", 0oMODE, is_socket) of path, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return ("%s:%s" % (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name),
            stat.S_IMODE(st.st_mode), stat.S_ISSOCK(st.st_mode))


def check_files(t, w, label):
    """Owners and modes of runtime_dir, the socket, the spool and the log."""
    user = "%s:%s" % (USER, grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name)
    run = w.conf["runtime_dir"]
    spool = w.conf["spool_dir"]
    t.is_(owner_mode(run), ("root:root", 0o711, False),
          "%s: runtime_dir root:root 0711 (the master's; children pass through)" % label)
    t.is_(owner_mode(os.path.join(run, "dbwriter.sock")), (user, 0o600, True),
          "%s: dbwriter.sock is a socket, %s 0600" % (label, user))
    t.is_(owner_mode(spool), (user, 0o700, False), "%s: spool_dir %s 0700" % (label, user))
    subs = sorted(os.listdir(spool))
    t.ok(subs and all(owner_mode(os.path.join(spool, d)) == (user, 0o700, False)
                      for d in subs),
         "%s: the dbwriters' spools %s are %s 0700" % (label, subs, user),
         diag=lambda: repr([(d, owner_mode(os.path.join(spool, d))) for d in subs]))
    t.is_((owner_mode(w.log_file) or ("",))[0].split(":")[0], USER,
          "%s: log_file belongs to %s (children reopen it)" % (label, USER))


def request(t, w, rid, label):
    """One request over the WebSocket: a 200 reply and its row."""
    c = Client(w.port)
    rep = c.call(json.dumps({"id": rid, "user-id": "u1", "payload": {"p": rid}}))
    c.close()
    t.is_(rep.obj and rep.obj.get("status"), 200, "%s: request answered 200" % label,
          diag=lambda: repr(rep.err or rep.obj))
    counts = pl.wait_rows(w.pg, TABLE, [json.dumps(rid)], T(15))
    t.is_(counts.get(json.dumps(rid)), 1, "%s: its row is in PostgreSQL (a worker "
          "running as %s reached a dbwriter)" % (label, USER))


def open_on(pid, path):
    """Whether pid holds a descriptor on the file now at path."""
    try:
        want = os.stat(path)
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            st = os.stat("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            return True
    return False


def nice_of(pid):
    """A process's nice value (field 19 of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def check_priority(t, w, want, label):
    """Workers at `want` (None: the master's), dbwriters at the master's
    nice value."""
    master = nice_of(w.pid)
    want = master if want is None else want
    workers = w.wait_children("worker", w.expected_workers(), T(5)) or []
    t.is_(sorted({nice_of(p) for p in workers}), [want],
          "%s: %d workers at nice %d" % (label, len(workers), want))
    t.is_(sorted({nice_of(p) for p in w.pids("dbwriter")}), [master],
          "%s: dbwriters at the master's nice %d" % (label, master))


def drop_cap_sys_nice():
    """preexec: no CAP_SYS_NICE after the exec (out of the bounding set;
    the inheritable set is empty), so root cannot lower a nice value."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 23, 0, 0, 0) != 0:    # PR_CAPBSET_DROP, CAP_SYS_NICE
        raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")


def test_logrotate(t, w):
    """contrib/wsgate.logrotate against this instance: its paths pointed at
    the test's log dir and pidfile, the systemd unit at one that does not
    exist (the pidfile is the fallback)."""
    if not shutil.which("logrotate"):
        t.skip("logrotate", "logrotate not installed (apt-get install logrotate)", 5)
        return
    logdir = os.path.dirname(w.log_file)
    with open(os.path.join(harness.SRCDIR, "contrib", "wsgate.logrotate")) as f:
        text = f.read()
    text = (text.replace("/var/log/wsgate/", logdir + "/")
            .replace("/run/wsgate/wsgate.pid", w.pidfile)
            .replace("wsgate.service", "wsgate-test-absent-%d.service" % os.getpid()))
    conf = t.write("logrotate.conf", text, 0o644)
    workers = w.pids("worker")
    w.mark_log()
    r = subprocess.run(["logrotate", "-f", "-s", t.path("logrotate.state"), conf],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=T(30))
    t.is_(r.returncode, 0, "logrotate -f: exit 0", diag=r.stdout.decode(errors="replace"))
    rotated = w.log_file + ".1"
    t.ok(os.path.exists(rotated), "logrotate: log moved to wsgate.log.1")
    t.ok(w.wait_log(r"master\[%d\] info: reopened log files" % w.pid, T(5)) is not None,
         "logrotate: USR1 reached the master (pid from the pidfile); it reopened the log")
    kids = [p for p, _c, _r in w.children()]
    t.ok(harness.wait_for(lambda: all(open_on(k, w.log_file) and not open_on(k, rotated)
                                      for k in kids), T(5)),
         "logrotate: every child (running as %s) moved to the new file" % USER,
         diag=lambda: repr([(k, open_on(k, w.log_file), open_on(k, rotated)) for k in kids]))
    # A worker, running as nobody, says something after the rotation.
    victim = workers[0]
    os.kill(victim, signal.SIGQUIT)
    line = w.wait_log(r"worker\[%d\] info: draining" % victim, T(5))
    t.ok(line is not None, "logrotate: a worker's line after the rotation is in the new "
         "file (the worker could reopen it)",
         diag=lambda: "rotated file tail:\n" + harness._tail(rotated, 15))
    both = w.log_text() + w.log_text(rotated)
    t.unlike(both, r"cannot reopen", "logrotate: no 'cannot reopen log file'")
    w.wait_children("worker", len(workers), T(5), exclude=[victim])


def main(t):
    t.need_binary()
    if not harness.IS_ROOT:
        t.skip_all("privilege drop needs root")
    if not harness.user_ids(USER):
        t.skip_all("no user %s" % USER)
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    pg, r, up = pl.setup_services(t, users=("u1",))

    # Directories that do not exist yet, below root-owned ones.
    base = t.mkdir("srv")
    t.mkdir("srv/log")
    w = pl.gateway(t, "dropped", pg, r, up, TABLE, user=USER,
                   runtime_dir=os.path.join(base, "run", "wsgate"),
                   spool_dir=os.path.join(base, "lib", "wsgate", "spool"),
                   log_file=os.path.join(base, "log", "wsgate.log"),
                   worker_priority=-5)
    w.pg = pg
    w.start()
    t.ok(pl.wait_table(w, pg, TABLE), "dbwriter (as %s) created the table" % USER)
    check_files(t, w, "created")
    check_priority(t, w, -5, "worker_priority -5")
    request(t, w, "first", "generation 1")

    w.write_config(worker_priority=3)
    w.signal(signal.SIGHUP)
    t.ok(w.wait_log(r"reload complete generation=2", T(10)) is not None, "HUP: reloaded")
    w.wait_children("worker", w.expected_workers(), T(5))
    request(t, w, "second", "generation 2")
    check_files(t, w, "after HUP")
    check_priority(t, w, 3, "HUP to worker_priority 3")
    w.write_config(worker_priority=None)

    test_logrotate(t, w)
    t.is_(w.stop(), 0, "TERM: exit 0")
    t.ok(not os.path.exists(os.path.join(w.conf["runtime_dir"], "dbwriter.sock")),
         "TERM: socket removed")

    # What an older version, a package or a hand left: the runtime dir the
    # user's and 0755, the spool root's and 0755.  Set right at start.
    uid, gid = harness.user_ids(USER)
    os.chown(w.conf["runtime_dir"], uid, gid)
    os.chmod(w.conf["runtime_dir"], 0o755)
    os.chown(w.conf["spool_dir"], 0, 0)
    os.chmod(w.conf["spool_dir"], 0o755)
    w.mark_log()
    w.start()
    t.ok(w.wait_log(r"directory %s mode changed from 0755 to 0711" %
                    w.conf["runtime_dir"], T(5)) is not None,
         "restart: runtime_dir's mode change logged")
    check_files(t, w, "restart over wrong owners and modes")
    request(t, w, "third", "restart")
    check_priority(t, w, None, "worker_priority unset")
    w.stop()

    # Root without CAP_SYS_NICE (a bounding set that lacks it): the
    # workers cannot go below the master's nice value, say so, and serve.
    w.write_config(worker_priority=-5)
    w.mark_log()
    w.start(preexec=drop_cap_sys_nice)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    t.ok(w.wait_log(r"worker_priority -5 not applied: Permission denied "
                    r"\(the worker keeps nice %d\)" % ours, T(5)) is not None,
         "no CAP_SYS_NICE: a worker logs that it keeps nice %d" % ours)
    check_priority(t, w, ours, "no CAP_SYS_NICE")
    request(t, w, "fourth", "without CAP_SYS_NICE")
    w.stop()

    # A shared directory is never taken over.
    w2 = t.wsgate("refused", user=USER)
    shared = t.mkdir("tmp1777")
    os.chmod(shared, 0o1777)
    w2.write_config(spool_dir=shared)
    rc, _out, err = w2.run("-c", w2.conf_file, timeout=T(20))
    t.is_(rc, 1, "spool_dir mode 1777: refused, exit 1")
    t.like(err, r"%s is a shared directory \(mode 1777\)" % shared,
           "spool_dir mode 1777: says why")
    t.is_(owner_mode(shared), ("root:root", 0o1777, False), "spool_dir mode 1777: untouched")


harness.run(main)
