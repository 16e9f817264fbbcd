#!/usr/bin/env python3
"""Interoperability with a real third-party client: Debian's
python3-websockets, run by /usr/bin/python3 (wsinterop_client.py), talks
to the echo endpoint over ws:// and wss://: messages of 0 bytes to 1 MiB
(text and binary, every payload length form), fragmented messages with
pings between the fragments, ping/pong payloads, close codes echoed, and
Close 1009 for a message over max_message_size (also when the client
keeps sending well past the limit).

The library is a test dependency (tests/run.sh installs it): when
/usr/bin/python3 cannot import it the test fails, it does not skip."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsinterop_client.py")
MAX_MESSAGE_SIZE = 1 << 20
SIZES = [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20]


def client_env():
    """The environment for /usr/bin/python3: nothing of a pyenv or a
    virtualenv that may be active for us (-I ignores PYTHON* too)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PYENV", "VIRTUAL_ENV"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_import(t):
    """True when /usr/bin/python3 can import websockets; a failed test
    (with the fix) otherwise."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        t.ok(False, "%s exists (it runs the websockets client)" % SYSTEM_PYTHON,
             "install python3 and python3-websockets (apt-get install python3-websockets)")
        return False
    r = subprocess.run([SYSTEM_PYTHON, "-I", CLIENT, "--check-import"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=client_env(), timeout=T(30))
    out = r.stdout.decode(errors="replace")
    ok = t.ok(r.returncode == 0 and '"version"' in out,
              "%s can import websockets (python3-websockets)" % SYSTEM_PYTHON,
              lambda: "%s\n%s\nThe interop test needs Debian's python3-websockets: "
              "apt-get install python3-websockets (tests/run.sh installs it)"
              % (out, r.stderr.decode(errors="replace")))
    if ok:
        t.note("client: %s" % out.strip())
    return ok


def start_client(url, tag, t):
    out = open(t.path("client-%s.out" % tag), "wb")
    err = open(t.path("client-%s.err" % tag), "wb")
    p = subprocess.Popen([SYSTEM_PYTHON, "-I", CLIENT, "--url", url,
                          "--max-message-size", str(MAX_MESSAGE_SIZE),
                          "--timeout-mult", str(harness.MULT)],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                         env=client_env())
    out.close()
    err.close()
    harness.REG.add(p.pid, "wsinterop_client(%s)" % tag, p)
    return p


def read_results(t, tag):
    """{name: result} from the client's JSON lines, plus the raw text."""
    res = {}
    with open(t.path("client-%s.out" % tag), "rb") as f:
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        try:
            obj = json.loads(line)
            res[obj.pop("name")] = obj
        except (ValueError, KeyError, AttributeError):
            res.setdefault("unparsed", []).append(line)
    return res, text


def check(t, tag, res, name, desc, **expected):
    r = res.get(name)
    got = None if r is None else {k: r.get(k) for k in expected}
    return t.is_(got, expected, "%s: %s" % (tag, desc),
                 lambda: "client result %r: %r" % (name, r))


def assert_results(t, tag, res, text, rc, errtext):
    t.is_(rc, 0, "%s: the client exits 0" % tag, lambda: errtext[-3000:])
    errors = {k: v["error"] for k, v in res.items()
              if isinstance(v, dict) and v.get("error")}
    t.is_(errors, {}, "%s: no step of the client raised" % tag)
    t.is_(res.get("unparsed"), None, "%s: the client printed only JSON lines" % tag)

    h = res.get("handshake") or {}
    if tag == "wss":
        t.ok(h.get("tls") in ("TLSv1.2", "TLSv1.3"), "wss: TLS %s" % h.get("tls"))
    else:
        t.is_(h.get("tls"), None, "ws: no TLS")
    check(t, tag, res, "handshake", "handshake accepted, permessage-deflate declined",
          extensions=[], subprotocol=None, upgrade="websocket")
    check(t, tag, res, "wrong_path", "a wrong path is refused with 404", status=404)

    for kind, typ in (("text", "str"), ("binary", "bytes")):
        for n in SIZES:
            check(t, tag, res, "echo %s %d" % (kind, n), "%s message of %d bytes echoed"
                  % (kind, n), type=typ, len=n, equal=True)
    check(t, tag, res, "echo text utf8", "multi-byte UTF-8 text (~280 KB) echoed",
          type="str", equal=True)
    check(t, tag, res, "burst", "300 messages in flight echoed in order",
          count=300, equal=True)

    for label, typ, nfrag in (("text 3", "str", 3), ("text empty fragments", "str", 5),
                              ("text utf8", "str", 3), ("binary 3", "bytes", 3),
                              ("binary 1000 small", "bytes", 1000),
                              ("binary 4x256k", "bytes", 4), ("text 2x64k", "str", 2)):
        check(t, tag, res, "fragmented " + label,
              "fragmented message (%s) echoed whole" % label,
              fragments=nfrag, type=typ, equal=True)
    check(t, tag, res, "fragmented with pings",
          "pings between fragments answered, the message echoed whole",
          pongs=3, type="str", equal=True)

    for label in ("empty", "text", "binary", "125 bytes"):
        check(t, tag, res, "ping " + label,
              "ping (%s payload) answered with a pong carrying it" % label, pong=True)
    check(t, tag, res, "ping between messages", "a ping between messages: pong, echo in order",
          pong=True, messages=["before", "after"])

    for code in (1000, 1001, 3000, 4000, 4999):
        # wsgate echoes the code of the client's Close, without a reason.
        check(t, tag, res, "close %d" % code,
              "client Close %d: the server echoes code %d" % (code, code),
              close_code=code, close_reason="")
        secs = (res.get("close %d" % code) or {}).get("secs")
        t.ok(secs is not None and secs < T(2),
             "%s: ... and the close handshake completes at once (%ss)" % (tag, secs))

    for label in ("text", "binary", "fragmented"):
        check(t, tag, res, "too big " + label,
              "%s message of max_message_size + 1: Close 1009" % label, close_code=1009)
    # The client is still sending when the server fails the connection:
    # the Close must not be lost to a TCP reset.
    check(t, tag, res, "too big 8x", "one frame of 8 x max_message_size: Close 1009",
          close_code=1009)
    check(t, tag, res, "too big stream",
          "64 KiB fragments streamed on past the limit: Close 1009", close_code=1009)

    check(t, tag, res, "concurrent", "20 concurrent connections x 20 echoes",
          connections=20, all_equal=True)

    for s in ("handshake", "wrong_path", "echo", "burst", "fragmented", "ping",
              "close", "too_big", "concurrent"):
        if "done " + s not in res:
            t.ok(False, "%s: client scenario %s finished" % (tag, s),
                 lambda: text[-3000:] + "\n" + errtext[-3000:])
    t.note("%s: scenario seconds: %s" % (tag, ", ".join(
        "%s %.2f" % (k[5:], v.get("secs", 0)) for k, v in res.items()
        if k.startswith("done "))))


def main(t):
    t.need_binary()
    if not check_import(t):
        return
    crt, key = t.self_signed_cert("interop")
    plain_port = harness.free_port()
    w = t.wsgate(workers=2, echo_path="/echo", max_message_size="1m",
                 tls_certificate=crt, tls_certificate_key=key)
    tls_port = w.port
    w.conf["listen"] = ["127.0.0.1:%d" % plain_port, "127.0.0.1:%d ssl" % tls_port]
    w.write_config()
    w.start()

    urls = {"ws": "ws://127.0.0.1:%d/echo" % plain_port,
            "wss": "wss://127.0.0.1:%d/echo" % tls_port}
    procs = {tag: start_client(url, tag, t) for tag, url in urls.items()}
    rcs = {}
    for tag, p in procs.items():
        try:
            rcs[tag] = p.wait(T(60))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rcs[tag] = "timeout after %ss" % T(60)
    for tag in urls:
        res, text = read_results(t, tag)
        with open(t.path("client-%s.err" % tag), "rb") as f:
            errtext = f.read().decode(errors="replace")
        assert_results(t, tag, res, text, rcs[tag], errtext)

    t.ok(w.alive(), "wsgate still running after both clients")
    t.ok(w.healthz_ok(), "healthz still answers")
    w.stop()


harness.run(main)
