#!/usr/bin/env python3
"""WebSocket limits: max_message_size (1009), handshake_timeout against a
slowloris, idle_timeout with server pings and a pong deadline,
max_connections per worker (a polite 503, no busy loop), the
per-connection output buffer (a client that does not read is closed,
others are unaffected), and close 1001 spread over a window on stop."""

import os
import resource
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import wsclient  # noqa: E402
from wsclient import WS, OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE  # noqa: E402


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def message_size(t):
    w = t.wsgate("size", workers=1, echo_path="/echo", max_message_size="1k")
    w.start()
    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_TEXT, "a" * 1024)
    t.is_(ws.recv_message(), (OP_TEXT, b"a" * 1024), "message of exactly max_message_size echoed")
    ws.send_frame(OP_TEXT, "b" * 1025)
    t.is_(ws.recv_close()[0], 1009, "one byte over max_message_size: Close 1009")
    ws.close()
    ws = WS.connect(w.port, "/echo")
    ws.send_frame(OP_TEXT, "c" * 600, fin=False)
    ws.send_frame(0, "d" * 600)
    t.is_(ws.recv_close()[0], 1009, "fragments adding up past the limit: Close 1009")
    ws.close()
    # The header alone announces too much: closed before the payload.
    ws = WS.connect(w.port, "/echo")
    ws.send(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 40) + b"\0\0\0\0")
    t.is_(ws.recv_close()[0], 1009, "a 1 TiB frame header: Close 1009 at once")
    ws.close()
    w.stop()


def slowloris(t):
    w = t.wsgate("slow", workers=1, echo_path="/echo", handshake_timeout="1s")
    w.start()
    s = wsclient.raw_connect(w.port, timeout=T(5))
    req, _ = wsclient.upgrade_request("/echo")
    t0 = time.monotonic()
    cut = None
    for b in req[:-4]:
        try:
            s.send(bytes([b]))
        except OSError:
            cut = time.monotonic() - t0
            break
        s.settimeout(0.2)
        try:
            d = s.recv(4096)
            if d == b"" or d.startswith(b"HTTP/1.1 408"):
                cut = time.monotonic() - t0
                break
        except socket.timeout:
            pass
        except OSError:
            cut = time.monotonic() - t0
            break
        if time.monotonic() - t0 > T(5):
            break
    s.close()
    t.ok(cut is not None and cut < T(2.5),
         "headers trickled one byte per 0.2 s are cut off near handshake_timeout (%s s)"
         % (None if cut is None else round(cut, 2)))
    # A silent connection is closed too.
    s = wsclient.raw_connect(w.port, timeout=T(5))
    s.settimeout(T(4))
    t0 = time.monotonic()
    try:
        d = s.recv(100)
    except OSError:
        d = b""
    t.ok(d == b"" and time.monotonic() - t0 < T(3), "a silent connection is closed after handshake_timeout")
    s.close()
    ws = WS.connect(w.port, "/echo")
    ws.send_text("still fine")
    t.is_(ws.recv_message(), (OP_TEXT, b"still fine"), "upgraded connections are not cut by handshake_timeout")
    time.sleep(1.3)
    ws.send_text("later")
    t.is_(ws.recv_message(), (OP_TEXT, b"later"), "... even after it has passed")
    ws.close()
    w.stop()


def idle(t):
    w = t.wsgate("idle", workers=1, echo_path="/echo", idle_timeout="1s")
    w.start()
    ws = WS.connect(w.port, "/echo")
    t0 = time.monotonic()
    fin, op, payload = ws.recv_frame(T(3))
    t.is_(op, OP_PING, "idle connection gets a ping")
    t.ok(0.8 < time.monotonic() - t0 < T(2), "ping after about idle_timeout")
    ws.send_frame(OP_PONG, payload)
    fin, op, _ = ws.recv_frame(T(3))
    t.is_(op, OP_PING, "after the pong, the next idle period brings another ping")
    # No pong now: closed one more idle period later.
    t.ok(ws.wait_eof(T(3)), "no pong within idle_timeout: connection closed")
    ws.close()
    # Traffic keeps a connection alive without pings.
    ws = WS.connect(w.port, "/echo")
    pings = 0
    for i in range(8):
        ws.send_text("t%d" % i)
        while True:
            fin, op, p = ws.recv_frame(T(3))
            if op == OP_PING:
                pings += 1
                ws.send_frame(OP_PONG, p)
                continue
            break
        time.sleep(0.3)
    t.is_(pings, 0, "a connection with traffic every 0.3 s gets no pings")
    ws.close()
    w.stop()


def max_connections(t):
    w = t.wsgate("maxconn", workers=1, echo_path="/echo", max_connections=20)
    w.start()
    held = [WS.connect(w.port, "/echo") for _ in range(20)]
    s = wsclient.raw_connect(w.port)
    req, _ = wsclient.upgrade_request("/echo")
    s.sendall(req)
    s.settimeout(T(5))
    try:
        data = s.recv(4096)
    except OSError:
        data = b""
    t.like(data.decode("latin-1"), r"^HTTP/1.1 503 ", "connection over max_connections: 503")
    s.close()
    worker = w.pids("worker")[0]
    # Hammer it for a second: every extra connection rejected (and, below,
    # no spinning once the storm is over).
    rejected = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1:
        try:
            s = socket.create_connection(("127.0.0.1", w.port), timeout=T(2))
            s.sendall(req)
            if s.recv(4096).startswith(b"HTTP/1.1 503"):
                rejected += 1
            s.close()
        except OSError:
            pass
    t.ok(rejected > 10, "a storm of extra connections is answered 503 (%d)" % rejected)
    for i, ws in enumerate(held[:3]):
        ws.send_text("held %d" % i)
        t.is_(ws.recv_message(), (OP_TEXT, b"held %d" % i), "held connection %d still served" % i)
    held[0].close()
    time.sleep(0.3)
    ws = WS.connect(w.port, "/echo")
    ws.send_text("room again")
    t.is_(ws.recv_message(), (OP_TEXT, b"room again"), "a freed place is taken by a new connection")
    idle_before = cpu_ticks(worker)
    time.sleep(1)
    t.ok(cpu_ticks(worker) - idle_before <= 5, "worker idle at max_connections (no busy loop)")
    for x in held[1:] + [ws]:
        x.close()
    w.stop()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def slow_reader(t):
    w = t.wsgate("slowread", workers=1, echo_path="/echo", max_output_buffer="256k")
    w.start()
    worker = w.pids("worker")[0]
    other = WS.connect(w.port, "/echo")
    hog = WS.connect(w.port, "/echo")
    hog.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    chunk = wsclient.frame(OP_BINARY, b"x" * 60000)
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < T(10):
        try:
            hog.s.settimeout(0.5)
            hog.s.sendall(chunk)
            sent += 1
        except (socket.timeout, OSError):
            break
        other.send_text("ping %d" % sent)
        if other.recv_message(T(3)) != (OP_TEXT, b"ping %d" % sent):
            break
        if sent > 400:
            break
    t.ok(w.wait_log(r"closing a client that does not read", T(5)),
         "a client that does not read is closed (logged)")
    t.ok(sent < 400, "... before 24 MB piled up (%d messages sent)" % sent)
    other.send_text("unaffected")
    t.is_(other.recv_message(), (OP_TEXT, b"unaffected"), "the other client is unaffected")
    t.ok(rss_kib(worker) < 64 * 1024, "worker RSS stays bounded (%d KiB)" % rss_kib(worker))
    hog.close()
    other.close()
    w.stop()


def spread_close(t):
    w = t.wsgate("spread", workers=2, echo_path="/echo", shutdown_timeout="4s")
    w.start()
    conns = [WS.connect(w.port, "/echo") for _ in range(40)]
    arrivals = [None] * len(conns)

    def waiter(i, ws):
        try:
            code, _ = ws.recv_close(T(10))
            arrivals[i] = (time.monotonic(), code)
            ws.send_frame(OP_CLOSE, struct.pack("!H", code or 1000))
        except Exception:
            pass
    th = [threading.Thread(target=waiter, args=(i, c)) for i, c in enumerate(conns)]
    t0 = time.monotonic()
    for x in th:
        x.start()
    w.signal(15)
    rc = w.wait_exit(T(8))
    for x in th:
        x.join(T(5))
    t.is_(rc, 0, "SIGTERM with 40 WebSockets open: exit 0")
    got = [a for a in arrivals if a is not None]
    t.is_(len(got), 40, "every WebSocket got a Close")
    t.ok(all(a[1] == 1001 for a in got), "all with code 1001 (going away)")
    if got:
        times = sorted(a[0] - t0 for a in got)
        t.ok(times[-1] - times[0] > 0.5,
             "closes spread over %.2f s, not one instant" % (times[-1] - times[0]))
        t.ok(times[-1] < 4.0 * 1.1, "all within shutdown_timeout (last %.2f s)" % times[-1])
    for c in conns:
        c.close()


def drain_on_reload(t):
    w = t.wsgate("drain", workers=1, echo_path="/echo", shutdown_timeout="3s")
    w.start()
    old = WS.connect(w.port, "/echo")
    old_worker = w.pids("worker")[0]
    t0 = time.monotonic()
    w.signal(1)
    t.ok(w.wait_log(r"reload complete generation=2", T(5)), "reload complete")
    old.send_text("still here")
    t.is_(old.recv_message(), (OP_TEXT, b"still here"),
          "a WebSocket of the draining generation is still served")
    new = WS.connect(w.port, "/echo")
    new.send_text("new gen")
    t.is_(new.recv_message(), (OP_TEXT, b"new gen"), "new connections go to the new generation")
    code, _ = old.recv_close(T(5))
    dt = time.monotonic() - t0
    t.is_(code, 1001, "the draining connection is closed with 1001")
    t.ok(1.0 <= dt <= 3.0, "late in shutdown_timeout, not at once (%.2f s of 3 s)" % dt)
    old.send_frame(OP_CLOSE, struct.pack("!H", 1001))
    t.ok(old.wait_eof(T(3)), "TCP closed after the close handshake")
    t.ok(harness.wait_for(lambda: not harness.pid_alive(old_worker), T(3)),
         "the old worker exits once its connections are gone")
    new.send_text("unaffected")
    t.is_(new.recv_message(), (OP_TEXT, b"unaffected"), "the new generation's connection is unaffected")
    new.close()
    old.close()
    w.stop()


def out_of_fds(t):
    """A worker out of descriptors pauses accepting instead of spinning on
    a listener that stays readable, and resumes once descriptors free."""
    w = t.wsgate("emfile", workers=1, echo_path="/echo", max_connections=10000)
    w.start()
    worker = w.pids("worker")[0]
    # Lower the running worker's limit (prlimit(2) on our own child).
    resource.prlimit(worker, resource.RLIMIT_NOFILE, (128, 128))
    conns, extra = [], []
    for _ in range(110):
        try:
            conns.append(WS.connect(w.port, "/echo", timeout=T(2)))
        except (OSError, ValueError, wsclient.Closed):
            break
    # The kernel queues more; the worker cannot take them now.
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", w.port), timeout=T(2))
        req, _ = wsclient.upgrade_request("/echo")
        s.sendall(req)
        extra.append(s)
    t.ok(w.wait_log(r"accept paused on 127\.0\.0\.1:%d" % w.port, T(5)),
         "EMFILE logged: accept paused (%d connections held)" % len(conns))
    c0 = cpu_ticks(worker)
    time.sleep(1.0)
    ticks = cpu_ticks(worker) - c0
    t.ok(ticks <= 10, "no busy loop while out of descriptors (%d ticks in 1 s)" % ticks)
    conns[0].send_text("held")
    t.is_(conns[0].recv_message(), (OP_TEXT, b"held"), "held connections are still served")
    for ws in conns[:40]:
        ws.close()
    served = 0
    for s in extra:
        s.settimeout(T(5))
        try:
            if s.recv(12).startswith(b"HTTP/1.1 101"):
                served += 1
        except OSError:
            pass
        s.close()
    t.is_(served, len(extra), "queued connections are accepted once descriptors free up")
    t.ok(harness.pid_alive(worker), "the worker survived")
    for ws in conns[40:]:
        ws.close()
    w.stop()


def main(t):
    t.need_binary()
    out_of_fds(t)
    drain_on_reload(t)
    message_size(t)
    slowloris(t)
    idle(t)
    max_connections(t)
    slow_reader(t)
    spread_close(t)


harness.run(main, watchdog=240)
