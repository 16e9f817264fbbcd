"""Integration test harness for wsgate: TAP output, a private temp dir,
and real processes (wsgate, Redis, PostgreSQL, an HTTP upstream) started on
free loopback ports and killed by PID when the test ends.

Python 3 standard library only.  Each t_*.py does

    import harness
    def main(t):
        w = t.wsgate(workers=2)
        w.start()
        t.is_(w.http_get(w.admin_port, "/healthz")[0], 200, "healthz")
    harness.run(main)

Environment knobs:
    WSGATE_BIN              the daemon binary (set by make check)
    WSGATE_SRCDIR           top source dir (sample config, upstream.py)
    WSGATE_TEST_LEAVE=1     keep the temp dir and print its path
    WSGATE_TEST_CATLOG=1    print wsgate's log files at exit
    WSGATE_TEST_TIMEOUT_MULT  multiply every timeout (ASan builds: 2-3)

Waits and the watchdog scale with WSGATE_TEST_TIMEOUT_MULT (T(seconds)); a
time limit that is part of the contract ("replaced within 2 s", "exits
within shutdown_timeout") is asserted on the measured time, unscaled.
"""

import atexit
import ctypes
import glob
import os
import pwd
import re
import resource
import shutil
import signal
import signal as _sig
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("WSGATE_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
WSGATE_BIN = os.environ.get("WSGATE_BIN") or os.path.join(HERE, "..", "..", "wsgate")
WSGATE_BIN = os.path.abspath(WSGATE_BIN)
UPSTREAM_PY = os.path.join(HERE, "upstream.py")

try:
    MULT = float(os.environ.get("WSGATE_TEST_TIMEOUT_MULT") or 1)
except ValueError:
    MULT = 1.0
if MULT <= 0:
    MULT = 1.0

IS_ROOT = os.geteuid() == 0


def T(seconds):
    """A timeout in seconds, scaled by WSGATE_TEST_TIMEOUT_MULT."""
    return seconds * MULT


_given_ports = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now (and that
    this process has not handed out before)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free port found")


def tcp_answers(port, addr="127.0.0.1", timeout=1.0):
    """Whether a TCP connection to addr:port completes within timeout."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_for(fn, timeout, interval=0.05):
    """Call fn() until it returns a true value or timeout (already scaled)
    passes; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---- /proc helpers ----

def proc_stat(pid):
    """(comm, state, ppid) of pid, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    lp = data.find("(")
    rp = data.rfind(")")
    if lp < 0 or rp < 0:
        return None
    comm = data[lp + 1:rp]
    rest = data[rp + 2:].split()
    return comm, rest[0], int(rest[1])


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def all_procs():
    """{pid: (comm, state, ppid)} for every process."""
    res = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                res[int(d)] = st
    return res


def descendants(pids, procs=None):
    """Every live descendant of the given pids (not the pids themselves)."""
    procs = procs if procs is not None else all_procs()
    kids = {}
    for pid, (_c, _s, ppid) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), list(pids)
    while todo:
        p = todo.pop()
        for c in kids.get(p, ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def proc_status(pid):
    """/proc/PID/status as a dict of field -> value string."""
    res = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                res[k] = v.strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return res


def role_of(comm):
    if comm == "wsgate-worker":
        return "worker"
    if comm.startswith("wsgate-db"):
        return "dbwriter"
    if comm == "wsgate":
        return "master"
    return comm


def user_ids(name):
    """(uid, gid) of a system user, or None."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def as_user_kwargs(name):
    """subprocess keyword arguments that run a child as system user name
    (only meaningful when we are root)."""
    pw = pwd.getpwnam(name)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


# ---- Process registry: everything started is killed by PID at exit ----

class _Registry:
    def __init__(self):
        self.lock = threading.RLock()
        self.entries = []   # dicts: pid, popen, name, stopsig

    def add(self, pid, name, popen=None, stopsig=signal.SIGTERM):
        with self.lock:
            self.entries.append({"pid": pid, "popen": popen, "name": name,
                                 "stopsig": stopsig})

    def popen_pids(self):
        with self.lock:
            return {e["pid"] for e in self.entries if e["popen"] is not None}

    def reap(self):
        """Collect exit statuses: our Popen children via poll(), orphans
        re-parented to us (we are a child subreaper) via waitpid."""
        with self.lock:
            for e in self.entries:
                if e["popen"] is not None:
                    e["popen"].poll()
            own = self.popen_pids()
        me = os.getpid()
        for pid, (_c, state, ppid) in all_procs().items():
            if ppid == me and state == "Z" and pid not in own:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def alive(self, pid):
        self.reap()
        return pid_alive(pid)

    def kill_all(self, grace=None):
        """Stop every recorded process and its descendants: the stop signal
        (SIGTERM, SIGINT for PostgreSQL), then SIGKILL after grace."""
        grace = T(5) if grace is None else grace
        with self.lock:
            entries = list(self.entries)
        procs = all_procs()
        roots = [e for e in entries if pid_alive(e["pid"])]
        tree = set(e["pid"] for e in roots)
        tree |= descendants(tree, procs)
        tree |= descendants([os.getpid()], procs)
        tree.discard(os.getpid())
        for e in roots:
            try:
                os.kill(e["pid"], e["stopsig"])
            except ProcessLookupError:
                pass

        def still():
            self.reap()
            return [p for p in tree | descendants(tree) if pid_alive(p)]
        left = still()
        deadline = time.monotonic() + grace
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = still()
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not still(), T(5))
        self.reap()
        return left


REG = _Registry()


def _set_subreaper():
    """Become a child subreaper so orphaned grandchildren (a daemonized
    wsgate, children of a killed master) are re-parented to us, where the
    cleanup can still find them by ppid."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:
        pass


# ---- HTTP client (raw sockets: we want to see exactly what is sent) ----

class HttpResponse:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers       # lower-case name -> value
        self.body = body             # bytes
        self.raw = raw

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


def http_request(port, path="/", method="GET", host="127.0.0.1",
                 timeout=None, headers=None, body=b""):
    """One HTTP/1.1 request on a new connection.  Returns an HttpResponse;
    raises OSError (refused, reset, timeout) or ValueError (bad response)."""
    timeout = T(5) if timeout is None else timeout
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        hdrs = {"Host": "%s:%d" % (host, port), "Connection": "close",
                "User-Agent": "wsgate-tests"}
        if body:
            hdrs["Content-Length"] = str(len(body))
        hdrs.update(headers or {})
        req = "%s %s HTTP/1.1\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        s.sendall(req.encode("latin-1") + body)
        return read_http_response(s)
    finally:
        s.close()


def read_http_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ValueError("connection closed before end of headers: %r" % buf[:200])
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
    if not m:
        raise ValueError("bad status line: %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise ValueError("bad header line: %r" % line)
        headers[k.strip().lower()] = v.strip()
    cl = headers.get("content-length")
    if cl is not None:
        cl = int(cl)
        while len(rest) < cl:
            chunk = s.recv(65536)
            if not chunk:
                raise ValueError("body truncated: %d of %d bytes" % (len(rest), cl))
            rest += chunk
        body = rest[:cl]
    else:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        body = rest
    return HttpResponse(int(m.group(1)), m.group(2), headers, body, buf)


def http_get(port, path="/", timeout=None):
    """(status, body text) of GET path on 127.0.0.1:port."""
    r = http_request(port, path, timeout=timeout)
    return r.status, r.text


def try_http_get(port, path="/", timeout=None):
    """Like http_get but returns (None, error text) instead of raising."""
    try:
        return http_get(port, path, timeout)
    except (OSError, ValueError) as e:
        return None, "%s: %s" % (type(e).__name__, e)


# ---- Services ----

class Redis:
    def __init__(self, t, port=None, bind="127.0.0.1"):
        self.t = t
        self.bind = bind
        self.port = port or free_port()
        self.dir = t.mkdir("redis-%d" % self.port)
        self.proc = None

    def start(self, extra=(), loaded=True):
        """Start (again: the dataset saved in the dir is loaded); extra:
        more redis-server options.  Returns once it answers PING, or with
        loaded=False once it answers at all (-LOADING too)."""
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", self.bind,
             "--dir", self.dir, "--save", "", "--appendonly", "no",
             "--daemonize", "no"] + list(extra),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.dir)
        log.close()
        REG.add(self.proc.pid, "redis-server", self.proc)
        up = self.ping if loaded else self.answers
        if not wait_for(lambda: up() or self.proc.poll() is not None, T(10)) \
                or not up():
            raise RuntimeError("redis-server did not start on port %d:\n%s" % (
                self.port, _tail(os.path.join(self.dir, "redis.log"))))
        return self

    def command(self, *args):
        """Send one command as raw RESP, return the raw reply bytes."""
        req = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            req += b"$%d\r\n%s\r\n" % (len(a), a)
        with socket.create_connection((self.bind, self.port), timeout=T(2)) as s:
            s.sendall(req)
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data

    def ping(self):
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False

    def answers(self):
        try:
            return self.command("PING") != b""
        except OSError:
            return False

    def stop(self):
        stop_process(self.proc)


def stop_process(proc):
    """TERM a Popen'ed process, KILL it if it has not gone in 10 s."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(T(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000


def private_network(resolv_conf=None):
    """Move this process, and all it starts from now on, into a network
    namespace of its own (loopback only, up) and a mount namespace, with
    resolv_conf (a path) bound over /etc/resolv.conf if given.  Root
    needed.  None, or why it was not possible."""
    cmds = [["ip", "link", "set", "lo", "up"]]
    if resolv_conf is not None:
        cmds.append(["mount", "--bind", resolv_conf, "/etc/resolv.conf"])
    return _unshare(CLONE_NEWNS | CLONE_NEWNET, cmds)


def private_mounts():
    """Move this process, and all it starts from now on, into a mount
    namespace of its own, so that what it mounts is seen by no one else
    and goes away with it.  Root needed.  None, or why not."""
    return _unshare(CLONE_NEWNS, [])


def _unshare(flags, cmds):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        return "unshare: %s" % os.strerror(ctypes.get_errno())
    for cmd in [["mount", "--make-rprivate", "/"]] + cmds:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            return "%s: %s" % (" ".join(cmd), r.stdout.decode(errors="replace").strip())
    return None


def pg_bindir():
    """Newest /usr/lib/postgresql/VERSION/bin holding a postgres server."""
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.path.exists(os.path.join(d, "postgres"))]

    def ver(d):
        v = d.split("/")[-2]
        return [int(x) if x.isdigit() else 0 for x in v.split(".")]
    dirs.sort(key=ver)
    return dirs[-1] if dirs else None


class Postgres:
    """A private PostgreSQL cluster: initdb in the temp dir, the postgres
    server started directly (its PID is the one we kill), loopback port,
    trust auth, superuser 'postgres', database 'wsgate'."""

    def __init__(self, t, port=None, host="127.0.0.1"):
        self.t = t
        self.host = host
        self.port = port or free_port()
        self.bindir = pg_bindir()
        if not self.bindir:
            raise RuntimeError("PostgreSQL server binaries not found "
                               "(apt-get install postgresql)")
        self.dir = t.mkdir("pg-%d" % self.port)
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.proc = None
        self.initialized = False
        self.db = "wsgate"
        self.conninfo = ("host=%s port=%d user=postgres dbname=%s "
                         "connect_timeout=5" % (host, self.port, self.db))
        self._kw = {}
        if IS_ROOT:
            if not user_ids("postgres"):
                raise RuntimeError("running as root needs the 'postgres' system user")
            self._kw = as_user_kwargs("postgres")
            os.chown(self.dir, self._kw["user"], self._kw["group"])

    def _env(self):
        env = dict(os.environ, LC_ALL="C", LANG="C")
        if IS_ROOT:
            env["HOME"] = self.dir
        return env

    def initdb(self):
        r = subprocess.run(
            [os.path.join(self.bindir, "initdb"), "-D", self.data,
             "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=self.dir, env=self._env(),
            timeout=T(120), **self._kw)
        if r.returncode != 0:
            raise RuntimeError("initdb failed:\n" + r.stdout.decode(errors="replace"))
        self.initialized = True
        return self

    def start(self, create_db=True):
        """Start the server (initdb first if needed), wait until it accepts
        connections; create database 'wsgate' the first time."""
        if not self.initialized:
            self.initdb()
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bindir, "postgres"), "-D", self.data,
             "-k", self.dir, "-p", str(self.port),
             "-c", "listen_addresses=" + self.host, "-c", "fsync=off",
             "-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.dir, env=self._env(), **self._kw)
        log.close()
        REG.add(self.proc.pid, "postgres", self.proc, stopsig=signal.SIGINT)
        ok = wait_for(lambda: self.ready() or self.proc.poll() is not None, T(30))
        if not ok or not self.ready():
            raise RuntimeError("postgres did not start on port %d:\n%s" % (
                self.port, _tail(self.logfile)))
        if create_db and not self.psql("SELECT 1 FROM pg_database WHERE datname = 'wsgate'",
                                       db="postgres"):
            self.psql("CREATE DATABASE wsgate", db="postgres")
        return self

    def ready(self):
        r = subprocess.run(
            [os.path.join(self.bindir, "pg_isready"), "-q", "-h", self.host,
             "-p", str(self.port), "-U", "postgres", "-t", "2"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def psql(self, sql, db=None):
        """Run sql, return the rows as lists of strings (raises on error)."""
        r = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t",
             "-F", "\x1f", "-v", "ON_ERROR_STOP=1", "-h", self.host,
             "-p", str(self.port), "-U", "postgres", "-d", db or self.db,
             "-c", sql],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=T(30), env=self._env())
        if r.returncode != 0:
            raise RuntimeError("psql %r failed: %s" % (sql, r.stderr.decode(errors="replace")))
        out = r.stdout.decode()
        return [line.split("\x1f") for line in out.splitlines() if line != ""]

    def stop(self):
        """Fast shutdown (SIGINT: does not wait for clients to leave)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(T(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Upstream:
    """tests/integration/upstream.py as a separate process."""

    def __init__(self, t, port=0):
        self.t = t
        self.dir = t.mkdir("upstream-%d" % len(t.services))
        self.port_file = os.path.join(self.dir, "port")
        self.logfile = os.path.join(self.dir, "upstream.log")
        self.port = port
        self.proc = None

    def start(self):
        # A restart: the file of the run before must not pass for this one's.
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        log = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, UPSTREAM_PY, "--host", "127.0.0.1",
             "--port", str(self.port), "--port-file", self.port_file],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.dir)
        log.close()
        REG.add(self.proc.pid, "upstream", self.proc)

        def up():
            try:
                with open(self.port_file) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return None
        wait_for(lambda: up() or self.proc.poll() is not None, T(10))
        if not up():
            raise RuntimeError("upstream.py did not start:\n" + _tail(self.logfile))
        self.port = up()
        self.url = "http://127.0.0.1:%d/echo" % self.port
        return self

    def stop(self):
        stop_process(self.proc)


# ---- wsgate ----

LOG_LINE_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (master|worker|dbwriter)\[(\d+)\] "
    r"(debug|info|warn|error): (.*)$")


class Wsgate:
    """One wsgate instance with its own config, log, pidfile and dirs under
    TMP/NAME/.  conf: key -> value (None: leave the key out; a list: the
    key repeated)."""

    def __init__(self, t, name="wsgate", upstream=None, postgres=None, **conf):
        self.t = t
        self.name = name
        self.dir = t.mkdir(name)
        self.conf_file = os.path.join(self.dir, "wsgate.conf")
        self.stdout_file = os.path.join(self.dir, "stdout")
        self.stderr_file = os.path.join(self.dir, "stderr")
        self.port = free_port()
        self.admin_port = free_port()
        if upstream is not None:
            upstream_url = upstream.url
        else:
            upstream_url = "http://127.0.0.1:%d/echo" % free_port()
        if postgres is not None:
            pg_conninfo = postgres.conninfo
        else:
            # Nothing listens there: the dbwriter just keeps retrying.
            pg_conninfo = ("host=127.0.0.1 port=%d user=postgres dbname=wsgate "
                           "connect_timeout=2" % free_port())
        self.conf = {
            "listen": "127.0.0.1:%d" % self.port,
            "admin_listen": "127.0.0.1:%d" % self.admin_port,
            "workers": 2,
            "dbwriters": 1,
            "upstream_url": upstream_url,
            "pg_conninfo": pg_conninfo,
            "runtime_dir": t.mkdir(name + "/run"),
            "spool_dir": t.mkdir(name + "/spool"),
            "log_file": os.path.join(self.dir, "wsgate.log"),
            "pidfile": os.path.join(self.dir, "wsgate.pid"),
            "shutdown_timeout": "3s",
        }
        self.conf.update(conf)
        self.proc = None
        self._pid = None
        self._log_ino = None
        self._log_pos = 0
        self._log_partial = b""
        t.instances.append(self)
        self.write_config()

    # -- config --
    @property
    def log_file(self):
        return self.conf.get("log_file")

    @property
    def pidfile(self):
        return self.conf.get("pidfile")

    @property
    def shutdown_timeout(self):
        return parse_duration(str(self.conf.get("shutdown_timeout", "30s")))

    def config_text(self, extra=""):
        lines = ["# wsgate test config (%s)" % self.t.name]
        for k, v in self.conf.items():
            if v is None:
                continue
            for one in (v if isinstance(v, (list, tuple)) else [v]):
                lines.append("%s %s" % (k, one))
        return "\n".join(lines) + "\n" + extra

    def write_config(self, extra="", **changes):
        """(Re)write the config file with changes applied; extra is raw text
        appended.  Returns the file's line count."""
        self.conf.update(changes)
        text = self.config_text(extra)
        tmp = self.conf_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.conf_file)
        return text.count("\n")

    def expected_workers(self):
        w = str(self.conf.get("workers", "auto"))
        return os.cpu_count() if w == "auto" else int(w)

    def expected_dbwriters(self):
        return int(self.conf.get("dbwriters", 1))

    # -- process --
    def env(self):
        env = dict(os.environ)
        asan = env.get("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
        env["ASAN_OPTIONS"] = asan + ":log_path=" + os.path.join(self.t.dir, "asan")
        ubsan = env.get("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env["UBSAN_OPTIONS"] = ubsan + ":log_path=" + os.path.join(self.t.dir, "ubsan")
        return env

    def run(self, *args, timeout=None, user=None):
        """Run the binary with args to completion: (returncode, stdout, stderr)."""
        kw = as_user_kwargs(user) if user else {}
        r = subprocess.run([WSGATE_BIN] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout or T(20), env=self.env(), **kw)
        return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def spawn(self, *args, preexec=None):
        """Start `wsgate -c CONF ARGS...` without waiting for anything;
        preexec runs in the child before the exec (e.g. to join a cgroup)."""
        out = open(self.stdout_file, "ab")
        err = open(self.stderr_file, "ab")
        self.proc = subprocess.Popen([WSGATE_BIN, "-c", self.conf_file] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     env=self.env(), preexec_fn=preexec)
        out.close()
        err.close()
        self._pid = self.proc.pid
        REG.add(self.proc.pid, "wsgate", self.proc)
        return self.proc

    def start(self, *args, wait=True, preexec=None):
        """Start wsgate in the foreground; with wait, return once /healthz
        answers 200 and all workers and dbwriters run.  Raises RuntimeError
        (with stderr and the log) when it does not come up."""
        self.spawn(*args, preexec=preexec)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        timeout = T(15) if timeout is None else timeout

        def up():
            if self.proc is not None and self.proc.poll() is not None:
                return True
            return self.healthz_ok()
        wait_for(up, timeout)
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("wsgate exited with status %s at start:\n%s" % (
                self.proc.returncode, self.describe()))
        if not self.healthz_ok():
            raise RuntimeError("wsgate /healthz not answering after %.1fs:\n%s" % (
                timeout, self.describe()))
        if self.wait_children("worker", self.expected_workers(), timeout) is None \
                or self.wait_children("dbwriter", self.expected_dbwriters(), timeout) is None:
            raise RuntimeError("wsgate children not all up: %r\n%s" % (
                self.children(), self.describe()))

    @property
    def pid(self):
        """The master's pid: the process we started, or (after -d) the
        pidfile's content."""
        return self._pid

    def adopt_pidfile(self, path=None):
        """Take the master pid from a pidfile (after -d) and record it."""
        pid = read_pidfile(path or self.pidfile)
        if pid:
            self._pid = pid
            REG.add(pid, "wsgate(daemon)")
        return pid

    def alive(self):
        return self._pid is not None and REG.alive(self._pid)

    def signal(self, sig):
        os.kill(self._pid, sig)

    def wait_exit(self, timeout=None):
        """Wait for the master to exit; its return code (negative: killed by
        that signal), or None if still running after timeout."""
        timeout = T(10) if timeout is None else timeout
        if self.proc is not None and self.proc.pid == self._pid:
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        # A daemon: re-parented to us (subreaper) or to init.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(self._pid, os.WNOHANG)
                if pid == self._pid:
                    return os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                if not pid_alive(self._pid):
                    return "unknown"
            time.sleep(0.05)
        return None

    def stop(self, sig=_sig.SIGTERM, timeout=None):
        if self.alive():
            self.signal(sig)
            return self.wait_exit(timeout or T(self.shutdown_timeout + 5))
        return None

    def children(self):
        """[(pid, comm, role)] of the master's live direct children."""
        if self._pid is None:
            return []
        REG.reap()
        return sorted((pid, comm, role_of(comm))
                      for pid, (comm, state, ppid) in all_procs().items()
                      if ppid == self._pid and state not in ("Z", "X"))

    def pids(self, role):
        return [p for p, _c, r in self.children() if r == role]

    def wait_children(self, role, n, timeout=None, exclude=()):
        """Wait until exactly n children of role run (none of them in
        exclude); return their pids, or None on timeout."""
        timeout = T(5) if timeout is None else timeout
        exclude = set(exclude)

        def check():
            p = self.pids(role)
            return p if len(p) == n and not exclude & set(p) else None
        return wait_for(check, timeout)

    # -- log --
    def _read_new_log(self):
        """New complete lines of log_file since the last read (follows the
        path: a new file there is read from its start)."""
        try:
            st = os.stat(self.log_file)
        except FileNotFoundError:
            return []
        if st.st_ino != self._log_ino or st.st_size < self._log_pos:
            self._log_ino = st.st_ino
            self._log_pos = 0
            self._log_partial = b""
        if st.st_size == self._log_pos:
            return []
        with open(self.log_file, "rb") as f:
            f.seek(self._log_pos)
            data = f.read()
        self._log_pos += len(data)
        data = self._log_partial + data
        lines = data.split(b"\n")
        self._log_partial = lines.pop()
        return [l.decode("utf-8", "replace") for l in lines]

    def mark_log(self):
        """Forget every log line written so far: wait_log() only sees lines
        written after this call."""
        self._read_new_log()

    def wait_log(self, regex, timeout=None):
        """Wait for a log line matching regex (re.search) written after the
        previous match or mark_log(); the match object, or None on timeout.
        Lines read while waiting are consumed."""
        timeout = T(5) if timeout is None else timeout
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        pending = getattr(self, "_pending", [])
        while True:
            pending += self._read_new_log()
            while pending:
                line = pending.pop(0)
                m = rx.search(line)
                if m:
                    self._pending = pending
                    return m
            if time.monotonic() >= deadline:
                self._pending = []
                return None
            time.sleep(0.05)

    def log_text(self, path=None):
        try:
            with open(path or self.log_file, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (FileNotFoundError, TypeError):
            return ""

    def log_lines(self):
        return self.log_text().splitlines()

    def grep_log(self, regex, path=None):
        rx = re.compile(regex)
        return [m for m in (rx.search(l) for l in self.log_text(path).splitlines()) if m]

    def describe(self, lines=40):
        """stderr and the tail of the log, for diagnostics."""
        out = []
        for label, path in (("stderr", self.stderr_file), ("log", self.log_file)):
            if path and os.path.exists(path):
                out.append("--- %s %s (last %d lines) ---" % (self.name, label, lines))
                out.append(_tail(path, lines))
        return "\n".join(out)

    # -- HTTP --
    def http_get(self, port, path="/", timeout=None):
        return http_get(port, path, timeout)

    def healthz_ok(self):
        st, body = try_http_get(self.admin_port, "/healthz", timeout=T(2))
        return st == 200 and body.strip() == "ok"

    def metric(self, series):
        """The value of one /metrics series, e.g. 'wsgate_rows_written_total'
        or 'wsgate_reads_deferred_total{source="client"}'; None when the
        admin listener does not answer or the series is absent."""
        st, body = try_http_get(self.admin_port, "/metrics", timeout=T(2))
        if st != 200:
            return None
        m = re.search(r"^%s (\S+)$" % re.escape(series), body, re.M)
        return float(m.group(1)) if m else None


def parse_duration(s):
    m = re.match(r"^(\d+(?:\.\d+)?)(ms|s|m)?$", s.strip())
    if not m:
        return 30.0
    v = float(m.group(1))
    return {"ms": v / 1000.0, "s": v, None: v, "m": v * 60}[m.group(2)]


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as e:
        return "(%s)" % e
    return "\n".join(lines[-n:])


# ---- TAP test object ----

class Test:
    def __init__(self, name=None):
        self.name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
        self.n = 0
        self.failed = 0
        self.finished = False
        self.instances = []
        self.services = []
        self.t0 = time.monotonic()
        base = os.environ.get("TMPDIR") or tempfile.gettempdir()
        self.dir = tempfile.mkdtemp(prefix="wsgate-%s-" % self.name, dir=base)
        # Readable by the postgres and nobody users we run things as.
        os.chmod(self.dir, 0o755)
        self.lock = threading.Lock()

    # -- TAP --
    def _emit(self, line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def ok(self, cond, desc, diag=None):
        with self.lock:
            self.n += 1
            desc = str(desc).replace("#", "\\#").replace("\n", " ")
            if cond:
                self._emit("ok %d - %s" % (self.n, desc))
            else:
                self.failed += 1
                self._emit("not ok %d - %s" % (self.n, desc))
                where = traceback.extract_stack(limit=4)
                for fr in reversed(where[:-1]):
                    if os.path.basename(fr.filename) != "harness.py":
                        self.diag("  at %s line %d" % (os.path.basename(fr.filename), fr.lineno))
                        break
                if diag:
                    self.diag(diag() if callable(diag) else diag)
        return bool(cond)

    def is_(self, got, expected, desc, diag=None):
        good = got == expected
        if not self.ok(good, desc):
            self.diag("       got: %r\n  expected: %r" % (got, expected))
            if diag:
                self.diag(diag() if callable(diag) else diag)
        return good

    def like(self, got, regex, desc, diag=None, flags=re.M):
        good = got is not None and re.search(regex, got, flags) is not None
        if not self.ok(good, desc):
            self.diag("       got: %r\n  expected to match: %r" % (got, regex))
            if diag:
                self.diag(diag() if callable(diag) else diag)
        return good

    def unlike(self, got, regex, desc, flags=re.M):
        good = got is not None and re.search(regex, got, flags) is None
        if not self.ok(good, desc):
            self.diag("       got: %r\n  expected not to match: %r" % (got, regex))
        return good

    def diag(self, msg):
        for line in str(msg).splitlines() or [""]:
            self._emit("# " + line)

    def note(self, msg):
        self.diag(msg)

    def skip(self, desc, reason, count=1):
        with self.lock:
            for _ in range(count):
                self.n += 1
                self._emit("ok %d - %s # SKIP %s" % (self.n, desc, reason))

    def skip_all(self, reason):
        """No test can run here: plan 1..0 and exit 0."""
        self._emit("1..0 # SKIP %s" % reason)
        self.finished = True
        self.cleanup()
        sys.exit(0)

    def bail_out(self, reason):
        self._emit("Bail out! %s" % reason)
        self.failed += 1
        self.finished = True
        self.cleanup()
        os._exit(1)

    def elapsed(self):
        return time.monotonic() - self.t0

    # -- resources --
    def mkdir(self, rel):
        p = os.path.join(self.dir, rel)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, 0o755)
        return p

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def self_signed_cert(self, name, san=None):
        """A self-signed certificate and its key in the temp dir, CN=name
        (and subjectAltName `san`, e.g. "IP:127.0.0.1"): (crt, key) paths."""
        crt, key = self.path(name + ".crt"), self.path(name + ".key")
        cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
               "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + name]
        if san:
            cmd += ["-addext", "subjectAltName=" + san]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=T(60))
        return crt, key

    def write(self, rel, text, mode=None):
        p = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        if mode is not None:
            os.chmod(p, mode)
        return p

    def wsgate(self, name="wsgate", **kw):
        return Wsgate(self, name, **kw)

    def start_redis(self, port=None, bind="127.0.0.1"):
        r = Redis(self, port, bind).start()
        self.services.append(r)
        return r

    def postgres(self, port=None, host="127.0.0.1"):
        """A cluster object (not started): .initdb(), .start(), .stop()."""
        pg = Postgres(self, port, host)
        self.services.append(pg)
        return pg

    def start_postgres(self, port=None, host="127.0.0.1"):
        return self.postgres(port, host).start()

    def start_upstream(self):
        u = Upstream(self)
        self.services.append(u)
        return u.start()

    # Stopping is also done for everything at exit; these are for tests
    # that need a service gone in the middle.
    def stop_redis(self, r):
        r.stop()

    def stop_postgres(self, pg):
        pg.stop()

    def stop_upstream(self, u):
        u.stop()

    def need_binary(self):
        if not os.access(WSGATE_BIN, os.X_OK):
            self.bail_out("wsgate binary not found at %s (set WSGATE_BIN)" % WSGATE_BIN)

    # -- end --
    def sanitizer_reports(self):
        files = sorted(glob.glob(os.path.join(self.dir, "asan*")) +
                       glob.glob(os.path.join(self.dir, "ubsan*")))
        return files

    def cleanup(self):
        left = REG.kill_all()
        if left:
            sys.stderr.write("# harness: had to SIGKILL pids %s\n" % sorted(left))
        catlog = os.environ.get("WSGATE_TEST_CATLOG") == "1"
        if catlog or self.failed:
            for w in self.instances:
                logs = sorted(glob.glob(w.log_file + "*")) if w.log_file else []
                for path in logs + [w.stderr_file]:
                    if not os.path.exists(path) or not os.path.getsize(path):
                        continue
                    sys.stderr.write("# ---- %s ----\n" % path)
                    sys.stderr.write(_tail(path, 100000 if catlog else 60) + "\n")
        if os.environ.get("WSGATE_TEST_LEAVE") == "1":
            sys.stderr.write("# harness: left %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def done(self):
        """Stop everything, check for sanitizer reports, print the plan and
        exit (status 1 if anything failed)."""
        if self.finished:
            return
        REG.kill_all()
        if self.instances:
            reps = self.sanitizer_reports()
            self.ok(not reps, "no sanitizer reports",
                    lambda: "\n".join("%s:\n%s" % (p, _tail(p, 60)) for p in reps))
        self._emit("1..%d" % self.n)
        self.finished = True
        self.diag("%s: %d tests, %d failed, %.1fs" % (self.name, self.n, self.failed,
                                                      self.elapsed()))
        self.cleanup()
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


_current = None
_watchdog_secs = 0


def _watchdog(signum, frame):
    t = _current
    if t is not None and not t.finished:
        t.ok(False, "watchdog: test still running after %ds" % _watchdog_secs)
        t.diag("".join(traceback.format_stack(frame)))
        t._emit("1..%d" % t.n)
        t.finished = True
        t.cleanup()
    sys.stdout.flush()
    os._exit(1)


def _on_term(signum, frame):
    t = _current
    if t is not None and not t.finished:
        t.ok(False, "interrupted by signal %d" % signum)
        t._emit("1..%d" % t.n)
        t.finished = True
        t.cleanup()
    sys.stdout.flush()
    os._exit(1)


def _atexit():
    t = _current
    if t is not None and not t.finished:
        t.finished = True
        t.cleanup()
    else:
        REG.kill_all()


def run(main, watchdog=120):
    """Run main(t) under the watchdog; any exception is a failed test.
    Always stops every process, prints the plan and exits."""
    global _current, _watchdog_secs
    _set_subreaper()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    t = Test()
    _current = t
    atexit.register(_atexit)
    signal.signal(signal.SIGALRM, _watchdog)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    _watchdog_secs = max(1, int(T(watchdog)))
    signal.alarm(_watchdog_secs)
    t.diag("%s: temp dir %s, WSGATE_BIN=%s, timeout mult %g" % (t.name, t.dir, WSGATE_BIN, MULT))
    try:
        main(t)
    except SystemExit:
        raise
    except BaseException:
        t.ok(False, "test script raised an exception")
        t.diag(traceback.format_exc())
        for w in t.instances:
            t.diag(w.describe())
    signal.alarm(0)
    t.done()
