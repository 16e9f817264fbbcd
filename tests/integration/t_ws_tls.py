#!/usr/bin/env python3
"""wss://: TLS on the worker loop.  Echo over TLS, TLS 1.2+ only, a
stalled handshake does not block other clients, plain and TLS listeners
side by side, and SIGHUP loads a new certificate for new connections."""

import hashlib
import os
import socket
import ssl
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import wsclient  # noqa: E402
from wsclient import WS, OP_TEXT, OP_BINARY  # noqa: E402


def peer_fingerprint(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
        with ctx.wrap_socket(s) as ts:
            return hashlib.sha256(ts.getpeercert(binary_form=True)).hexdigest(), ts.version()


def file_fingerprint(crt):
    der = ssl.PEM_cert_to_DER_cert(open(crt).read())
    return hashlib.sha256(der).hexdigest()


def main(t):
    t.need_binary()
    crt, key = t.self_signed_cert("one")
    plain_port = harness.free_port()
    w = t.wsgate(workers=2, echo_path="/echo", tls_certificate=crt, tls_certificate_key=key)
    tls_port = w.port
    w.conf["listen"] = ["127.0.0.1:%d ssl" % tls_port, "127.0.0.1:%d" % plain_port]
    w.write_config()
    w.start()

    fp, version = peer_fingerprint(tls_port)
    t.is_(fp, file_fingerprint(crt), "the configured certificate is served")
    t.ok(version in ("TLSv1.2", "TLSv1.3"), "negotiated %s" % version)

    ws = WS.connect(tls_port, "/echo", tls=True)
    for n in (5, 70000, 300000):
        data = os.urandom(n)
        ws.send_frame(OP_BINARY, data)
        t.is_(ws.recv_message(T(10)), (OP_BINARY, data), "wss echo, %d bytes" % n)
    batch = b"".join(wsclient.frame(OP_TEXT, "m%d" % i) for i in range(100))
    ws.send(batch)
    t.is_([ws.recv_message()[1] for _ in range(100)], [b"m%d" % i for i in range(100)],
          "100 pipelined frames over TLS")
    ws.close()

    ws = WS.connect(plain_port, "/echo")
    ws.send_text("plain")
    t.is_(ws.recv_message(), (OP_TEXT, b"plain"), "plain listener beside the TLS one")
    ws.close()

    # TLS 1.1 only client (its own security level lowered so that it is
    # the server that refuses).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    refused = None
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(("127.0.0.1", tls_port), timeout=T(5)) as s:
            with ctx.wrap_socket(s) as ts:
                refused = "accepted %s" % ts.version()
    except (ssl.SSLError, OSError) as e:
        t.note("TLS 1.1 client: %s" % e)
        refused = True if "version" in str(e).lower() or "protocol" in str(e).lower() \
            or "handshake" in str(e).lower() else "other error: %s" % e
    t.is_(refused, True, "a TLS 1.1 client is refused")

    # A client stuck in the middle of its handshake blocks nobody.
    stuck = socket.create_connection(("127.0.0.1", tls_port), timeout=T(5))
    stuck.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    stuck2 = socket.create_connection(("127.0.0.1", tls_port), timeout=T(5))
    t0 = time.monotonic()
    ws = WS.connect(tls_port, "/echo", tls=True)
    ws.send_text("not blocked")
    t.is_(ws.recv_message(), (OP_TEXT, b"not blocked"), "echo while two handshakes hang")
    t.ok(time.monotonic() - t0 < T(1), "no wait behind them (%.3fs)" % (time.monotonic() - t0))
    ws.close()
    stuck.close()
    stuck2.close()

    # Garbage instead of a ClientHello: that connection only is closed.
    g = socket.create_connection(("127.0.0.1", tls_port), timeout=T(5))
    g.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        g.settimeout(T(3))
        d = g.recv(100)
    except OSError:
        d = b""
    t.ok(not d.startswith(b"HTTP"), "plain HTTP on the TLS port gets no HTTP answer")
    g.close()

    # SIGHUP: a new certificate for new connections, the old one keeps
    # its connection.
    old_ws = WS.connect(tls_port, "/echo", tls=True)
    crt2, key2 = t.self_signed_cert("two")
    w.write_config(tls_certificate=crt2, tls_certificate_key=key2)
    w.mark_log()
    w.signal(1)
    t.ok(w.wait_log(r"reload complete generation=2", T(5)), "reload complete")
    fp2 = None
    deadline = time.monotonic() + T(3)
    while time.monotonic() < deadline:
        fp2, _ = peer_fingerprint(tls_port)
        if fp2 == file_fingerprint(crt2):
            break
        time.sleep(0.1)
    t.is_(fp2, file_fingerprint(crt2), "after SIGHUP new connections get the new certificate")
    old_ws.send_text("old generation")
    t.is_(old_ws.recv_message(), (OP_TEXT, b"old generation"),
          "a wss connection of the old generation is still served while it drains")
    old_ws.close()

    # A bad key on reload: rejected, the running certificate stays.
    bad = t.write("bad.key", "not a key\n")
    w.write_config(tls_certificate_key=bad)
    w.mark_log()
    w.signal(1)
    t.ok(w.wait_log(r"reload failed: .*tls_certificate_key", T(5)),
         "reload with a bad key fails with a reason")
    t.is_(peer_fingerprint(tls_port)[0], file_fingerprint(crt2), "and the running certificate stays")

    rc, out, err = w.run("-t", "-c", w.conf_file)
    t.is_(rc, 1, "wsgate -t with the bad key exits 1")
    t.like(err, r"tls_certificate_key", "... naming tls_certificate_key")
    w.stop()


harness.run(main)
