#!/usr/bin/env python3
"""A small HTTP upstream for wsgate: the demo upstream of the quick start
and the integration tests' upstream.  Python 3 standard library only.

Routes (any method; request bodies may use Content-Length or chunked):
  /, /echo          200, the request body verbatim (Content-Type copied)
  /status/NNN       status NNN with a small JSON body
  /slow/SECONDS     sleep SECONDS (fractions allowed, at most 600), then
                    like /echo
  /bytes/N          200 with N bytes (a repeating a-z pattern), N < 2^31
  /invalid-utf8     200 with a body that is not valid UTF-8
anything else       404

Every response echoes the request's X-Request-Id header and is HTTP/1.1
with Content-Length, keep-alive unless the client asked to close.
"""

import argparse
import json
import os
import re
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SLOW = 600.0
MAX_BYTES = 2**31 - 1
INVALID_UTF8 = b'{"text": "\xff\xfe invalid \xc3\x28 utf-8 \xed\xa0\x80"}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wsgate-test-upstream/1.0"
    quiet = False

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), fmt % args))

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline(3)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        rid = self.headers.get("X-Request-Id")
        if rid is not None:
            self.send_header("X-Request-Id", rid)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reply_bytes(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        rid = self.headers.get("X-Request-Id")
        if rid is not None:
            self.send_header("X-Request-Id", rid)
        self.end_headers()
        if self.command == "HEAD":
            return
        pattern = b"abcdefghijklmnopqrstuvwxyz" * 2520  # byte i is "a" + i % 26
        left = n
        while left > 0:
            chunk = pattern[:min(left, len(pattern))]
            self.wfile.write(chunk)
            left -= len(chunk)

    def handle_any(self):
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        echo_type = self.headers.get("Content-Type", "application/json")
        if path in ("/", "/echo"):
            return self.reply(200, body, echo_type)
        m = re.fullmatch(r"/status/(\d{3})", path)
        if m:
            st = int(m.group(1))
            if st < 200 or st in (204, 304):
                # No body allowed (1xx would not even be a final response).
                return self.reply(400, b'{"error": "status must be a final status with a body"}')
            return self.reply(st, json.dumps({"status": st}).encode())
        m = re.fullmatch(r"/slow/(\d+(?:\.\d+)?)", path)
        if m:
            time.sleep(min(float(m.group(1)), MAX_SLOW))
            return self.reply(200, body, echo_type)
        m = re.fullmatch(r"/bytes/(\d+)", path)
        if m and int(m.group(1)) <= MAX_BYTES:
            return self.reply_bytes(int(m.group(1)))
        if path == "/invalid-utf8":
            return self.reply(200, INVALID_UTF8, "text/plain")
        return self.reply(404, b'{"error": "not found"}')

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(
        description="HTTP upstream for wsgate demos and tests: echoes POST "
                    "bodies, answers chosen statuses, slow or large bodies.",
        epilog="Routes: / and /echo (echo body), /status/NNN, /slow/SECONDS, "
               "/bytes/N, /invalid-utf8; X-Request-Id is echoed back.")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0,
                    help="port to listen on; 0 picks a free one (default 0)")
    ap.add_argument("--port-file", metavar="FILE",
                    help="write the chosen port to FILE once listening")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="do not log requests to stderr")
    args = ap.parse_args()

    Handler.quiet = args.quiet
    srv = Server((args.host, args.port), Handler)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("upstream listening on http://%s:%d/ (POST /echo)" % (args.host, port), flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
