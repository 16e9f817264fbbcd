#!/usr/bin/env python3
"""The Debian package, end to end on this machine: `dpkg-buildpackage -us
-uc -b` builds wsgate_VERSION_ARCH.deb from a clean copy of the source
(the checkout's files, or the release tarball's under `make distcheck`);
`dpkg -i` installs the binary, manual pages, schema, unit, logrotate
snippet and /etc/wsgate/wsgate.conf as a conffile, and creates the wsgate
system user; `wsgate -t -c /etc/wsgate/wsgate.conf` passes; the installed
binary serves with its children running as wsgate; `dpkg -r` keeps the
conffile, `dpkg --purge` removes everything but a spool that still holds
records.

Needs root, dpkg-buildpackage and the build dependencies; else SKIP with
the reason.  The machine may be shared: nothing is done if a wsgate
package or its directories already exist, concurrent runs take turns (a
lock file), and the package, and the user if this test created it, are
removed whatever happens."""

import fcntl
import glob
import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402

PKG = "wsgate"
LOCK = "/run/lock/wsgate-t_deb.lock"
# What the package owns on the system; any of them already there means
# someone else's wsgate, which this test must not touch.
SYSTEM_PATHS = ("/usr/sbin/wsgate", "/etc/wsgate", "/var/lib/wsgate",
                "/var/log/wsgate", "/lib/systemd/system/wsgate.service",
                "/etc/logrotate.d/wsgate")
EXPECT_FILES = ("./usr/sbin/wsgate", "./usr/share/man/man8/wsgate.8.gz",
                "./usr/share/man/man5/wsgate.conf.5.gz", "./etc/wsgate/wsgate.conf",
                "./usr/share/wsgate/schema.sql", "./lib/systemd/system/wsgate.service",
                "./etc/logrotate.d/wsgate", "./var/lib/wsgate/", "./var/log/wsgate/",
                "./usr/share/doc/wsgate/copyright")
CONFFILES = ("/etc/wsgate/wsgate.conf", "/etc/logrotate.d/wsgate")


def run(cmd, timeout, env=None, cwd=None):
    """(returncode, combined output) of cmd; 124 on timeout."""
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=cwd)
        return r.returncode, r.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or b"").decode(errors="replace") + "\n(timed out)"


def clean_env():
    """The environment without make check's make and sanitizer settings."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR",
              "ASAN_OPTIONS", "UBSAN_OPTIONS", "CFLAGS", "LDFLAGS", "CPPFLAGS"):
        env.pop(k, None)
    return env


def pkg_status():
    rc, out = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", PKG], 30)
    return out.strip() if rc == 0 else ""


def why_skip(src):
    """The reason this machine cannot run the test, or None."""
    if not harness.IS_ROOT:
        return "needs root (dpkg -i)"
    for tool in ("dpkg-buildpackage", "dpkg-checkbuilddeps", "dpkg", "dh"):
        if not shutil.which(tool):
            return "%s not found (apt-get install dpkg-dev debhelper)" % tool
    if not os.path.exists(os.path.join(src, "debian", "control")):
        return "the source at %s has no debian/" % src
    rc, out = run(["dpkg-checkbuilddeps"], 60, cwd=src)
    if rc != 0:
        return "build dependencies missing: " + out.strip().splitlines()[-1]
    if pkg_status() not in ("", "un "):
        return "a %s package is already on this machine (%s)" % (PKG, pkg_status().strip())
    there = [p for p in SYSTEM_PATHS if os.path.lexists(p)]
    if there:
        return "%s already exist(s): not ours to replace" % ", ".join(there)
    return None


def copy_source(t, src):
    """A clean copy to build from: a git checkout's tracked and untracked
    (not ignored) files; otherwise the tree itself, as a release tarball
    unpacks, without make distcheck's build and install dirs."""
    dst = os.path.join(t.dir, "src", "%s-src" % PKG)
    rc, out = (run(["git", "-C", src, "rev-parse", "--show-toplevel"], 30)
               if shutil.which("git") else (1, ""))
    if rc == 0 and os.path.realpath(out.strip()) == os.path.realpath(src):
        rc, out = run(["git", "-C", src, "ls-files", "-z", "--cached", "--others",
                       "--exclude-standard"], 60)
        if rc != 0:
            raise RuntimeError("git ls-files: " + out)
        for rel in sorted(set(out.split("\0")) - {""}):
            s = os.path.join(src, rel)
            if not os.path.lexists(s):
                continue        # deleted in the working tree
            d = os.path.join(dst, rel)
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy2(s, d, follow_symlinks=False)
        how = "git checkout (tracked and untracked files)"
    else:
        shutil.copytree(src, dst, symlinks=True, ignore=lambda d, names: [
            n for n in names if n.endswith("~") or d == src and (
                n.startswith("_") or n in ("autom4te.cache", "config.log",
                                           "config.status"))])
        how = "source tree (release tarball)"
    # distcheck's tree is read-only; the build writes configure and more.
    for root, dirs, files in os.walk(dst):
        for n in dirs + files:
            p = os.path.join(root, n)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    return dst, how


def tree(top):
    """Every path below top, relative."""
    return sorted(os.path.relpath(os.path.join(root, n), top)
                  for root, dirs, files in os.walk(top) for n in dirs + files)


def build(t, src):
    """dpkg-buildpackage in the copy: the .deb's path, or None."""
    before = tree(src)
    env = clean_env()
    env["DEB_BUILD_OPTIONS"] = "parallel=2"
    t0 = time.monotonic()
    rc, out = run(["dpkg-buildpackage", "-us", "-uc", "-b"], T(900), env=env, cwd=src)
    t.is_(rc, 0, "dpkg-buildpackage -us -uc -b: exit 0 (%.0fs)" % (time.monotonic() - t0),
          diag=lambda: "\n".join(out.splitlines()[-60:]))
    debs = glob.glob(os.path.join(os.path.dirname(src), "%s_*.deb" % PKG))
    t.is_(len(debs), 1, "one wsgate_VERSION_ARCH.deb built", diag=repr(debs))
    # debian/rules clean leaves the tree as it was (dh_autoreconf_clean).
    rc2, out2 = run(["dpkg-buildpackage", "-T", "clean"], T(300), env=env, cwd=src)
    after = tree(src)
    t.ok(rc2 == 0 and after == before, "debian/rules clean leaves the source tree as it was",
         diag=lambda: "added %r, removed %r\n%s" % (sorted(set(after) - set(before))[:20],
                                                   sorted(set(before) - set(after))[:20],
                                                   out2[-2000:]))
    return debs[0] if rc == 0 and len(debs) == 1 else None


def check_deb(t, deb):
    rc, ver = run([harness.WSGATE_BIN, "-V"], 30)
    version = ver.split()[-1] if rc == 0 and ver.split() else "?"
    arch = run(["dpkg", "--print-architecture"], 30)[1].strip()
    t.is_(os.path.basename(deb), "%s_%s_%s.deb" % (PKG, version, arch),
          "the .deb is named for this build's version (wsgate -V) and arch")
    rc, listing = run(["dpkg-deb", "-c", deb], 60)
    names = {line.split()[-1] if "->" not in line else line.split()[-3]
             for line in listing.splitlines() if line.strip()}
    missing = [f for f in EXPECT_FILES if f not in names]
    t.ok(rc == 0 and not missing, "the .deb holds the binary, manual pages, config, "
         "schema, unit, logrotate snippet, spool and log dirs", diag="missing: %r" % missing)
    rc, conff = run(["dpkg-deb", "-f", deb, "Depends"], 30)
    t.like(conff, r"\badduser\b", "Depends: adduser (postinst creates the user)")
    tmp = os.path.join(os.path.dirname(deb), "control")
    run(["dpkg-deb", "-e", deb, tmp], 60)
    try:
        with open(os.path.join(tmp, "conffiles")) as f:
            conffiles = f.read().split()
    except OSError:
        conffiles = []
    t.ok(all(c in conffiles for c in CONFFILES), "conffiles: %s" % ", ".join(CONFFILES),
         diag=repr(conffiles))
    if shutil.which("lintian"):
        rc, out = run(["lintian", "--fail-on", "error", "--suppress-tags",
                       "initial-upload-closes-no-bugs", deb], T(300))
        t.is_(rc, 0, "lintian: no errors", diag=out)
        tags = [l for l in out.splitlines() if re.match(r"[EWIPX]: ", l)]
        if tags:
            t.diag("lintian:\n" + "\n".join(tags))
    else:
        t.skip("lintian", "lintian not installed")


def serve_installed(t):
    """The installed binary with the installed config's user, on test
    ports and dirs: READY=1 to a notify socket, children run as wsgate."""
    w = t.wsgate("installed", user="wsgate", workers=1)
    notify = t.path("notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(notify)
    s.settimeout(T(10))
    env = dict(os.environ, NOTIFY_SOCKET=notify)
    env.pop("ASAN_OPTIONS", None)
    out = open(w.stderr_file, "ab")
    p = subprocess.Popen(["/usr/sbin/wsgate", "-c", w.conf_file], stdin=subprocess.DEVNULL,
                         stdout=out, stderr=out, env=env)
    out.close()
    harness.REG.add(p.pid, "wsgate(installed)", p)
    w.proc, w._pid = p, p.pid
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        msg = ""
    s.close()
    t.like(msg, r"(?m)^READY=1$", "installed binary: READY=1 on NOTIFY_SOCKET",
           diag=lambda: w.describe())
    kids = w.wait_children("worker", 1, T(10)) or []
    uid = pwd.getpwnam("wsgate").pw_uid
    t.ok(kids and all((harness.proc_status(k) or {}).get("Uid", "").split()[:1] == [str(uid)]
                      for k in kids), "installed binary: its worker runs as wsgate")
    t.ok(harness.wait_for(w.healthz_ok, T(10)), "installed binary: /healthz 200")
    t.is_(w.stop(), 0, "installed binary: TERM, exit 0")


def installed_checks(t):
    for p in ("/usr/sbin/wsgate", "/usr/share/man/man8/wsgate.8.gz",
              "/usr/share/man/man5/wsgate.conf.5.gz", "/usr/share/wsgate/schema.sql",
              "/lib/systemd/system/wsgate.service", "/etc/logrotate.d/wsgate"):
        t.ok(os.path.exists(p), "installed: %s" % p)
    rc, out = run(["/usr/sbin/wsgate", "-t", "-c", "/etc/wsgate/wsgate.conf"], T(30))
    t.is_(rc, 0, "wsgate -t -c /etc/wsgate/wsgate.conf: exit 0", diag=out)
    t.like(out, r"configuration file /etc/wsgate/wsgate\.conf test is successful",
           "wsgate -t: test is successful")
    try:
        pw = pwd.getpwnam("wsgate")
        t.ok(pw.pw_uid < 1000 and pw.pw_shell in ("/usr/sbin/nologin", "/bin/false"),
             "user wsgate: a system user without a login shell (uid %d, %s)"
             % (pw.pw_uid, pw.pw_shell))
        t.is_(grp.getgrgid(pw.pw_gid).gr_name, "wsgate", "user wsgate: group wsgate")
    except KeyError:
        t.ok(False, "user wsgate exists after dpkg -i")
    with open("/etc/wsgate/wsgate.conf") as f:
        conf = f.read()
    t.ok(re.search(r"(?m)^user wsgate$", conf) and re.search(r"(?m)^group wsgate$", conf)
         and re.search(r"(?m)^log_file /var/log/wsgate/wsgate\.log$", conf),
         "packaged config: user, group wsgate, log_file under /var/log/wsgate")
    rc, out = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG], 30)
    t.ok(all(c in out for c in CONFFILES), "dpkg knows the conffiles", diag=out)
    with open("/lib/systemd/system/wsgate.service") as f:
        unit = f.read()
    t.like(unit, r"(?m)^ExecStart=/usr/sbin/wsgate -c /etc/wsgate/wsgate\.conf ",
           "installed unit: ExecStart=/usr/sbin/wsgate -c /etc/wsgate/wsgate.conf")
    t.ok(not glob.glob("/etc/systemd/system/*.wants/wsgate.service"),
         "installed unit: not enabled (configure first)")
    if shutil.which("systemd-analyze"):
        man_opt = [] if shutil.which("man") else ["--man=no"]
        rc, out = run(["systemd-analyze", "verify"] + man_opt +
                      ["/lib/systemd/system/wsgate.service"], T(60))
        t.is_(rc, 0, "systemd-analyze verify of the installed unit", diag=out)
    else:
        t.skip("systemd-analyze verify", "systemd not installed")
    serve_installed(t)


def main(t):
    src = harness.SRCDIR
    reason = why_skip(src)
    if reason:
        t.skip_all(reason)
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    lock = open(LOCK, "a")
    deadline = time.monotonic() + T(900)
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                t.skip_all("another t_deb.py held %s for too long" % LOCK)
            time.sleep(1)
    reason = why_skip(src)      # again, now that it is our turn
    if reason:
        t.skip_all(reason)
    user_existed = harness.user_ids("wsgate") is not None
    group_existed = True
    try:
        grp.getgrnam("wsgate")
    except KeyError:
        group_existed = False
    try:
        copy, how = copy_source(t, src)
        t.note("building from a copy of the %s" % how)
        deb = build(t, copy)
        if deb is None:
            return
        check_deb(t, deb)
        env = clean_env()

        rc, out = run(["dpkg", "-i", deb], T(300), env=env)
        t.is_(rc, 0, "dpkg -i: exit 0", diag=out)
        t.is_(pkg_status().strip(), "ii", "dpkg: wsgate installed")
        installed_checks(t)

        # Remove: the binary goes, the (changed) conffile stays.
        with open("/etc/wsgate/wsgate.conf", "a") as f:
            f.write("# changed by t_deb\n")
        rc, out = run(["dpkg", "-r", PKG], T(300), env=env)
        t.is_(rc, 0, "dpkg -r: exit 0", diag=out)
        t.ok(not os.path.exists("/usr/sbin/wsgate"), "dpkg -r: binary removed")
        t.ok(os.path.exists("/etc/wsgate/wsgate.conf"), "dpkg -r: conffile kept")
        rc, out = run(["dpkg", "--purge", PKG], T(300), env=env)
        t.is_(rc, 0, "dpkg --purge: exit 0", diag=out)
        left = [p for p in SYSTEM_PATHS if os.path.lexists(p)]
        t.is_(left, [], "dpkg --purge: nothing left of the package (conffile, spool, logs)")
        t.ok(pkg_status().strip() in ("", "un"), "dpkg: wsgate not installed")

        # A spool holding records survives a purge.
        rc, out = run(["dpkg", "-i", deb], T(300), env=env)
        t.is_(rc, 0, "dpkg -i again: exit 0", diag=out)
        seg = "/var/lib/wsgate/spool/g1-s0/spool-0000000000000001.seg"
        os.makedirs(os.path.dirname(seg))
        with open(seg, "wb") as f:
            f.write(b"WSP\001 pretend records")
        rc, out = run(["dpkg", "--purge", PKG], T(300), env=env)
        t.is_(rc, 0, "dpkg --purge with a spooled record: exit 0", diag=out)
        t.ok(os.path.exists(seg), "dpkg --purge: a spool holding records is kept")
        t.like(out, r"keeping /var/lib/wsgate", "dpkg --purge: says it kept the spool")
        t.ok(not os.path.exists("/etc/wsgate") and not os.path.exists("/usr/sbin/wsgate"),
             "dpkg --purge: the rest is gone")
    finally:
        if pkg_status().strip() not in ("", "un"):
            run(["dpkg", "--purge", PKG], T(300), env=clean_env())
        for d in ("/var/lib/wsgate", "/var/log/wsgate", "/etc/wsgate"):
            shutil.rmtree(d, ignore_errors=True)     # none was there before
        if not user_existed and harness.user_ids("wsgate"):
            run(["userdel", "wsgate"], 60)
        if not group_existed:
            try:
                grp.getgrnam("wsgate")
                run(["groupdel", "wsgate"], 60)
            except KeyError:
                pass
        t.ok(pkg_status().strip() in ("", "un") and
             not [p for p in SYSTEM_PATHS if os.path.lexists(p)] and
             (user_existed or harness.user_ids("wsgate") is None),
             "the machine is as before: no package, files or user left")
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


harness.run(main, watchdog=1500)
