#!/usr/bin/env python3
"""The README's first quick-start command, contrib/dev-gateway.sh, brings
up a working gateway and Ctrl-C takes it all down.

Run as a user would, in a session of its own, with the build's binary
(WSGATE_DEV_BIN: the build itself is what the test command does) and
without installing packages (WSGATE_NO_APT=1: a machine without them
skips).  Checked: the script says where everything is; /healthz and
/readyz answer on the admin port; the demo request it suggests is
answered 200 with the upstream's echo of it; its row lands in the
PostgreSQL the script started; SIGINT to the session (Ctrl-C) ends the
script, and every process it started is gone, every port closed."""

import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
from t_pipeline import Client  # noqa: E402

SCRIPT = os.path.join(harness.HERE, "..", "..", "contrib", "dev-gateway.sh")


def session_pids(sid):
    """Processes whose session is sid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(d))
    return out


def main(t):
    t.need_binary()
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    port, admin = harness.free_port(), harness.free_port()
    env = dict(os.environ, WSGATE_DEV_PORT=str(port), WSGATE_DEV_ADMIN_PORT=str(admin),
               WSGATE_DEV_DIR=os.path.join(t.dir, "dev"),
               WSGATE_DEV_BIN=os.path.abspath(harness.WSGATE_BIN), WSGATE_NO_APT="1")
    out_path = os.path.join(t.dir, "dev-gateway.out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(["sh", SCRIPT], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    harness.REG.add(proc.pid, "dev-gateway.sh", proc)

    def output():
        with open(out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    harness.wait_for(lambda: "Ctrl-C to stop" in output() or proc.poll() is not None, T(60))
    text = output()
    t.note("dev-gateway.sh said:\n" + text.rstrip())
    if proc.poll() is not None and "missing packages" in text:
        t.skip_all(text.strip().splitlines()[-1])
    t.ok("Ctrl-C to stop" in text and proc.poll() is None,
         "the script brought the stack up and says so")
    m = re.search(r"Redis 127\.0\.0\.1:(\d+), PostgreSQL 127\.0\.0\.1:(\d+),", text)
    u = re.search(r"upstream http://127\.0\.0\.1:(\d+)/echo", text)
    t.ok(m and u and ("ws://127.0.0.1:%d/ws" % port) in text and
         ("http://127.0.0.1:%d/healthz" % admin) in text,
         "it names Redis, PostgreSQL, the upstream, the WebSocket URL and the admin URL")
    if not (m and u):
        t.bail_out("cannot go on without the ports")
    redis_port, pg_port, up_port = int(m.group(1)), int(m.group(2)), int(u.group(1))

    st = harness.wait_for(lambda: harness.try_http_get(admin, "/readyz")[0] == 200, T(20))
    t.ok(st, "/readyz 200: the workers reach Redis, the dbwriter PostgreSQL",
         lambda: repr(harness.try_http_get(admin, "/readyz")))
    t.is_(harness.try_http_get(admin, "/healthz")[0], 200, "/healthz 200")

    # The request the script suggests, as python3 -m websockets would send it.
    req = '{"id": 1, "user-id": "42", "payload": {"hello": "world"}}'
    c = Client(port)
    rep = c.call(req, timeout=T(10))
    c.close()
    obj = rep.obj or {}
    t.is_((obj.get("id"), obj.get("status")), (1, 200), "the demo request is answered 200",
          lambda: repr(rep))
    try:
        echoed = json.loads(obj.get("body", ""))
    except (TypeError, ValueError):
        echoed = None
    t.ok(isinstance(echoed, dict) and echoed.get("payload") == {"hello": "world"},
         "the body is the demo upstream's echo of the request", lambda: repr(obj))

    psql = [os.path.join(harness.pg_bindir(), "psql"), "-h", "127.0.0.1", "-p", str(pg_port),
            "-U", "postgres", "-d", "wsgate", "-Atc",
            "SELECT user_id, status FROM responses WHERE client_id = '1'"]

    def row():
        r = subprocess.run(psql, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=T(10))
        return r.stdout.decode(errors="replace").strip() if r.returncode == 0 else None
    t.is_(harness.wait_for(row, T(10), 0.2), "42|200",
          "its row is in the responses table of the script's PostgreSQL (the command it "
          "prints shows it)")

    # Ctrl-C: SIGINT to the foreground process group, here the session.
    sid = proc.pid
    before = session_pids(sid)
    t.ok(len(before) >= 5, "the session holds the script, Redis, PostgreSQL, the upstream "
         "and wsgate (%d processes)" % len(before))
    os.killpg(sid, signal.SIGINT)
    try:
        rc = proc.wait(T(30))
    except subprocess.TimeoutExpired:
        rc = None
    t.ok(rc is not None, "Ctrl-C ends the script (exit %s)" % rc)
    left = harness.wait_for(lambda: not session_pids(sid), T(10), 0.1)
    t.ok(left, "every process it started is gone",
         lambda: repr([(p, open("/proc/%d/cmdline" % p).read()) for p in session_pids(sid)]))
    open_ports = [p for p in (port, admin, redis_port, pg_port, up_port)
                  if harness.tcp_answers(p)]
    t.is_(open_ports, [], "every port it opened is closed")


harness.run(main, watchdog=150)
