#!/usr/bin/env python3
"""A small HTTP upstream for wsgate: the demo upstream of the quick start
and the integration tests' upstream.  Python 3 standard library only.

Routes (any method; request bodies may use Content-Length or chunked):
  /, /echo          200, the request body verbatim (Content-Type copied).
                    If the body is a JSON object whose "payload" is an
                    object with a numeric "sleep" (wsgate's upstream body
                    {"payload": {"sleep": 3, ...}, "config": ...}), the
                    answer comes after that many seconds (at most 600):
                    one upstream URL, slow or fast per request.
  /status/NNN       status NNN with a small JSON body
  /slow/SECONDS     sleep SECONDS (fractions allowed, at most 600), then
                    like /echo
  /bytes/N          200 with N bytes (a repeating a-z pattern), N < 2^31
  /invalid-utf8     200 with a body that is not valid UTF-8
  /hex/HEX          200 with the bytes HEX spells (even number of hex
                    digits, at most 128 KiB), application/octet-stream:
                    any byte sequence, e.g. control characters
  /headers          200 with a JSON object describing the request:
                    {"method": M, "path": P, "headers": {Name: value, ...},
                    "body": the body as text (invalid UTF-8 replaced)}
  /stats            200 with {"requests": N, "paths": {PATH: N, ...}}: the
                    requests received so far (counted once the body is
                    read, before any sleep), /stats itself not counted
anything else       404

Every response echoes the request's X-Request-Id header and is HTTP/1.1
with Content-Length, keep-alive unless the client asked to close.
Requests are served on one thread each (a slow one blocks no other).
"""

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SLOW = 600.0
MAX_BYTES = 2**31 - 1
INVALID_UTF8 = b'{"text": "\xff\xfe invalid \xc3\x28 utf-8 \xed\xa0\x80"}'
MAX_HEX = 128 * 1024

STATS_LOCK = threading.Lock()
STATS = {"requests": 0, "paths": {}}


def count_request(path):
    with STATS_LOCK:
        STATS["requests"] += 1
        STATS["paths"][path] = STATS["paths"].get(path, 0) + 1


def payload_sleep(body):
    """Seconds to wait before echoing body: its payload's "sleep", or 0."""
    if b'"sleep"' not in body:
        return 0.0
    try:
        doc = json.loads(body.decode("utf-8"))
    except ValueError:
        return 0.0
    payload = doc.get("payload") if isinstance(doc, dict) else None
    secs = payload.get("sleep") if isinstance(payload, dict) else None
    if isinstance(secs, bool) or not isinstance(secs, (int, float)):
        return 0.0
    return max(0.0, min(float(secs), MAX_SLOW))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wsgate-test-upstream/1.0"
    quiet = False
    # Head and body go out in separate writes: without TCP_NODELAY the
    # body waits for the client's delayed ACK (~40 ms) on a reused
    # keep-alive connection.
    disable_nagle_algorithm = True

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
        if path == "/stats":
            with STATS_LOCK:
                data = json.dumps(STATS).encode()
            return self.reply(200, data)
        count_request(path)
        if path in ("/", "/echo"):
            secs = payload_sleep(body)
            if secs > 0:
                time.sleep(secs)
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
        m = re.fullmatch(r"/hex/((?:[0-9a-fA-F]{2})*)", path)
        if m and len(m.group(1)) <= 2 * MAX_HEX:
            return self.reply(200, bytes.fromhex(m.group(1)),
                              "application/octet-stream")
        if path == "/headers":
            hdrs = {}
            for k, v in self.headers.items():
                hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
            doc = {"method": self.command, "path": self.path,
                   "headers": hdrs, "body": body.decode("utf-8", "replace")}
            return self.reply(200, json.dumps(doc).encode())
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
        epilog="Routes: / and /echo (echo body; a body whose payload is an "
               "object with \"sleep\": SECONDS is echoed after that delay), "
               "/status/NNN, /slow/SECONDS, /bytes/N, /invalid-utf8, /hex/HEX "
               "(those bytes), /headers (the request described as JSON), "
               "/stats (request counts); X-Request-Id is echoed back.")
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
