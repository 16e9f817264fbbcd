#!/usr/bin/env python3
"""An https:// upstream (libcurl; wsgate.conf(5) upstream_ca_file,
upstream_tls_verify), against real TLS servers on loopback ports:

- certificates are verified by default: a self-signed upstream is refused
  (502 upstream error naming the certificate problem), `wsgate -T` says
  FAILED;
- upstream_ca_file trusting that certificate: 200, the connection kept
  alive across requests, `wsgate -T` ok;
- upstream_tls_verify off: 200, with a warning in the log;
- HTTP/2 when the upstream offers it (nginx with `http2`, when nginx is
  installed): 30 concurrent requests all answered over HTTP/2 on one or
  two connections (multiplexed), not one connection each.
"""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
from t_pipeline import rcall, expect_ok, expect_error, no_worker_died  # noqa: E402
from t_upstream_h1 import RawUpstream, burst, session, body_of, msg, CONFIG  # noqa: E402
from t_pipeline import Client  # noqa: E402


class TlsUpstream(RawUpstream):
    """RawUpstream behind TLS (HTTP/1.1)."""

    def __init__(self, t, crt, key):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        super().__init__(t)

    def url(self, path, host="127.0.0.1"):
        return "https://%s:%d%s" % (host, self.port, path)

    def serve(self, c, n):
        try:
            c = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.open -= 1
            c.close()
            return
        super().serve(c, n)


def verify(t, r, up, crt):
    with session(t, r, up, "/ka", "verify-default") as (w, c):
        rep = c.call(msg("v1", "1"))
        expect_error(t, rep, 502, "upstream error",
                     "self-signed upstream, no upstream_ca_file: 502", rid="v1")
        err = str((rep.obj or {}).get("error", ""))
        t.ok("certificate" in err.lower(), "... naming the certificate problem (%s)"
             % err)
        reqs, _, _, _ = up.snapshot()
        t.is_(len(reqs), 0, "... and the request never reached it")
        rc, out = run_T(w)
        t.ok(rc != 0 and "upstream 127.0.0.1:%d: FAILED" % up.port in out,
             "wsgate -T without the CA: upstream FAILED", lambda: out)

    with session(t, r, up, "/ka", "verify-ca", upstream_ca_file=crt) as (w, c):
        for i in range(5):
            expect_ok(t, c.call(msg("c%d" % i, "%d" % i)), body_of("%d" % i),
                      "upstream_ca_file trusts it: 200 (%d)" % i, rid="c%d" % i)
        _, conns, _, _ = up.snapshot()
        t.is_(conns, 1, "5 requests over one kept-alive TLS connection")
        rc, out = run_T(w)
        # (No PostgreSQL in this test: -T's exit status reports that.)
        t.ok("upstream 127.0.0.1:%d: ok" % up.port in out,
             "wsgate -T with upstream_ca_file: upstream ok", lambda: out)

    with session(t, r, up, "/ka", "verify-off", upstream_tls_verify="off") as (w, c):
        expect_ok(t, c.call(msg("o1", "1")), body_of("1"),
                  "upstream_tls_verify off: 200", rid="o1")
        t.ok(w.grep_log(r"certificate verification is off"),
             "upstream_tls_verify off: warning logged")


def queueing(t, r, up, crt):
    """upstream_max_connections bounds the transfers in libcurl; the rest
    wait in order, their upstream_timeout counting from arrival."""
    with session(t, r, up, "/slow", "queue", upstream_ca_file=crt,
                 upstream_max_connections=2) as (w, c):
        t0 = time.monotonic()
        for i in range(6):
            c.send(msg("q%d" % i, "%d" % i))
        order, ok = [], 0
        for _ in range(6):
            rep = c.recv(T(10))
            if rep.obj is not None:
                order.append(rep.obj.get("id"))
                ok += rep.obj.get("status") == 200
        dt = time.monotonic() - t0
        _, _, max_open, _ = up.snapshot()
        t.is_(ok, 6, "6 slow (0.3 s) https requests, upstream_max_connections 2: "
              "all 200")
        t.ok(max_open <= 2, "at most 2 connections at once (%d)" % max_open)
        t.ok(dt >= 0.85, "three rounds of 0.3 s (%.2fs)" % dt)
        t.ok(set(order[:2]) == {"q0", "q1"} and set(order[4:]) == {"q4", "q5"},
             "first come, first served: %r" % order)

    with session(t, r, up, "/hang", "queue-timeout", upstream_ca_file=crt,
                 upstream_max_connections=1, upstream_timeout="1s") as (w, c):
        t0 = time.monotonic()
        c.send(msg("t1", "1"))
        c.send(msg("t2", "2"))
        got = []
        for _ in range(2):
            rep = c.recv(T(10))
            got.append(((rep.obj or {}).get("status"), time.monotonic() - t0))
        t.ok([g[0] for g in got] == [504, 504], "both 504 upstream timeout: %r" % got)
        t.ok(all(g[1] < 1.6 for g in got),
             "the waiting one's timeout counted from its arrival, not from when "
             "it got a connection (%s)" % ", ".join("%.2fs" % g[1] for g in got))


def run_T(w):
    p = subprocess.run([harness.WSGATE_BIN, "-T", "-c", w.conf_file],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=T(30))
    return p.returncode, p.stdout.decode("utf-8", "replace")


def http2(t, r, crt, key):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access(
        "/usr/sbin/nginx", os.X_OK) else None)
    if nginx is None:
        t.skip("HTTP/2 upstream", "nginx not installed", 3)
        return
    d = t.mkdir("nginx")
    port = harness.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
events { worker_connections 256; }
http {
    log_format proto '$server_protocol $connection';
    access_log %(d)s/access.log proto;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    server {
        listen 127.0.0.1:%(port)d ssl http2;
        ssl_certificate %(crt)s;
        ssl_certificate_key %(key)s;
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
    }
}
""" % {"d": d, "port": port, "crt": crt, "key": key})
    p = subprocess.Popen([nginx, "-c", conf, "-p", d], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    harness.REG.add(p.pid, "nginx", p)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    if not harness.wait_for(up, T(10)):
        t.ok(False, "nginx started", lambda: open(os.path.join(d, "error.log")).read())
        return
    w = t.wsgate("h2", workers=1, redis_port=r.port,
                 upstream_url="https://127.0.0.1:%d/api" % port,
                 upstream_ca_file=crt)
    w.start()
    got, _, bad = burst(w, 3, 10, "h")
    t.is_(got, 30, "HTTP/2 upstream: 30 concurrent requests all 200", lambda: repr(bad[:5]))
    # nginx's "return" answers without reading the request body; with
    # 600 kB of it still to come it ends the stream with RST_STREAM
    # NO_ERROR after a complete response (RFC 9113 8.1: the client must
    # keep that response).  libcurl 7.88 fails such a transfer or waits
    # for flow-control credit until upstream_timeout.
    cl = Client(w.port)
    cl.send(msg("early", '"%s"' % ("x" * 600000)))
    rep = cl.recv(T(10))
    t.is_(rep.obj and (rep.obj.get("status"), rep.obj.get("body")),
          (200, '{"ok":true}'),
          "HTTP/2 upstream answering before the request body is read: its answer kept",
          lambda: repr(rep))
    cl.send(msg("after", "1"))
    rep = cl.recv(T(10))
    cl.close()
    t.is_(rep.obj and rep.obj.get("status"), 200, "and the next request answered 200",
          lambda: repr(rep))
    w.stop()
    p.terminate()
    p.wait(timeout=T(10))
    lines = [ln.split() for ln in open(os.path.join(d, "access.log")) if ln.strip()]
    protos = {ln[0] for ln in lines}
    conns = {ln[1] for ln in lines}
    t.is_(protos, {"HTTP/2.0"}, "every request went over HTTP/2")
    t.ok(1 <= len(conns) <= 2, "multiplexed: %d requests over %d connection(s)" %
         (len(lines), len(conns)))


def main(t):
    t.need_binary()
    r = t.start_redis()
    rcall(r, "SET", "cfg:u1", CONFIG)
    crt, key = t.self_signed_cert("localhost", "IP:127.0.0.1,DNS:localhost")
    up = TlsUpstream(t, crt, key)
    try:
        verify(t, r, up, crt)
        queueing(t, r, up, crt)
    finally:
        up.stop()
    http2(t, r, crt, key)
    no_worker_died(t)


if __name__ == "__main__":
    harness.run(main, watchdog=180)
