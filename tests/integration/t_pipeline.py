#!/usr/bin/env python3
"""The request pipeline's contract (PROTOCOL.md sections 1-4) against real
Redis and the echoing test upstream: every field rule of a request, the
shape of every reply, JSON configs passed through byte for byte and EDN
configs converted, missing config (null and `missing_config reject`),
unparsable config (502), the headers the upstream gets, and config
lookups coalesced into one GET per user (plus the optional cache).

The upstream is upstream.py's /echo, so a reply's body is exactly the
POST body wsgate sent: {"payload":<as received>,"config":<as JSON>}."""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import wsclient  # noqa: E402
from wsclient import WS, OP_TEXT, OP_BINARY, OP_CONT  # noqa: E402

NOID = object()     # "the request had no id"
DIED = r"child exited .*role=worker .*respawn_in="   # the master's log line


# ---- Redis over raw RESP (full replies, binary-safe values) ----

def _read_resp(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("short RESP reply: %r" % line)
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError("Redis error: %s" % rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise OSError("bad RESP reply: %r" % line)


def rcall(r, *args):
    """One Redis command; the decoded reply."""
    req = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", r.port), timeout=T(5)) as s:
        s.sendall(req)
        with s.makefile("rb") as f:
            return _read_resp(f)


def get_calls(r):
    """How many GETs Redis has executed (INFO commandstats)."""
    info = rcall(r, "INFO", "commandstats").decode()
    for line in info.splitlines():
        if line.startswith("cmdstat_get:"):
            for kv in line.split(":", 1)[1].split(","):
                k, _, v = kv.partition("=")
                if k == "calls":
                    return int(v)
    return 0


def upstream_stats(u):
    st, body = harness.http_get(u.port, "/stats", timeout=T(5))
    return json.loads(body)["requests"] if st == 200 else None


# ---- WebSocket client side ----

def strict_json(text):
    """json.loads refusing what RFC 8259 does not allow (NaN, Infinity)
    and duplicate keys."""
    def pairs(kv):
        d = {}
        for k, v in kv:
            if k in d:
                raise ValueError("duplicate key %r" % k)
            d[k] = v
        return d

    def const(c):
        raise ValueError("not JSON: %s" % c)
    return json.loads(text, object_pairs_hook=pairs, parse_constant=const)


class Reply:
    """One reply message: obj (the parsed object, or None), raw (bytes),
    err (why obj is None), dt (seconds from send to reply)."""

    def __init__(self, obj=None, raw=b"", err=None, dt=None):
        self.obj, self.raw, self.err, self.dt = obj, raw, err, dt

    def __repr__(self):
        return "Reply(%s)" % (self.err or self.raw[:300])


class Client:
    def __init__(self, port, path="/ws"):
        self.ws = WS.connect(port, path, timeout=T(5))

    def send(self, msg):
        self.ws.send_text(msg.encode() if isinstance(msg, str) else msg)

    def recv(self, timeout=None):
        try:
            op, data = self.ws.recv_message(T(5) if timeout is None else timeout)
        except (socket.timeout, wsclient.Closed, OSError, ValueError) as e:
            return Reply(err="no reply (%s: %s)" % (type(e).__name__, e))
        if op != OP_TEXT:
            return Reply(raw=data, err="opcode %d, not a text message" % op)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            return Reply(raw=data, err="reply is not UTF-8: %s" % e)
        try:
            obj = strict_json(text)
        except ValueError as e:
            return Reply(raw=data, err="reply is not JSON: %s" % e)
        if not isinstance(obj, dict):
            return Reply(raw=data, err="reply is not an object")
        return Reply(obj, data)

    def call(self, msg, timeout=None):
        t0 = time.monotonic()
        self.send(msg)
        rep = self.recv(timeout)
        rep.dt = time.monotonic() - t0
        return rep

    def close(self):
        self.ws.close()


def jtype(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return type(v).__name__


def check_id(t, rep, want, desc):
    o = rep.obj
    if want is NOID:
        return t.ok("id" not in o, "%s: no id in the reply" % desc,
                    lambda: "reply: %r" % rep.raw[:300])
    got = o.get("id", NOID)
    good = got is not NOID and jtype(got) == jtype(want) and got == want
    return t.ok(good, "%s: id echoed (%s %r)" % (desc, jtype(want), want),
                lambda: "reply: %r" % rep.raw[:300])


def expect_ok(t, rep, body, desc, rid=NOID, status=200):
    """A success reply: exactly id?/status/body; body compared as a
    string (or with a callable returning True/False)."""
    if not t.ok(rep.obj is not None, "%s: reply is a JSON object" % desc,
                lambda: repr(rep)):
        return False
    o = rep.obj
    keys = {"status", "body"} | ({"id"} if rid is not NOID else set())
    good = t.is_(sorted(o), sorted(keys), "%s: reply keys" % desc)
    good &= t.is_(o.get("status"), status, "%s: status %d" % (desc, status),
                  lambda: "reply: %r" % rep.raw[:500])
    if callable(body):
        good &= t.ok(isinstance(o.get("body"), str) and body(o["body"]),
                     "%s: body" % desc, lambda: "reply: %r" % rep.raw[:500])
    else:
        good &= t.is_(o.get("body"), body, "%s: body byte for byte" % desc)
    if rid is not NOID or "id" in o:
        good &= check_id(t, rep, rid, desc)
    return good


def expect_error(t, rep, status, prefix, desc, rid=None):
    """An error reply: status and error text starting with prefix; with
    rid (NOID or a value) the id is checked too."""
    if not t.ok(rep.obj is not None, "%s: reply is a JSON object" % desc,
                lambda: repr(rep)):
        return False
    o = rep.obj
    good = t.is_(o.get("status"), status, "%s: status %d" % (desc, status),
                 lambda: "reply: %r" % rep.raw[:300])
    err = o.get("error")
    good &= t.ok(isinstance(err, str) and (err == prefix or err.startswith(prefix + ": ")),
                 "%s: error %r" % (desc, prefix), lambda: "reply: %r" % rep.raw[:300])
    extra = set(o) - {"id", "status", "error"}
    good &= t.ok(not extra and "body" not in o, "%s: only id/status/error keys" % desc,
                 lambda: "reply: %r" % rep.raw[:300])
    if rid is not None:
        good &= check_id(t, rep, rid, desc)
    return good


def echo_body(payload, config):
    return '{"payload":%s,"config":%s}' % (payload, config)


def body_config(body):
    """The config value in an upstream echo body, parsed (or an error
    marker when the body is not JSON)."""
    try:
        return strict_json(body)["config"]
    except (ValueError, KeyError, TypeError) as e:
        return "<body not JSON: %s>" % e


# ---- the contract ----

JSON_CFG = '{"timeout": 30,  "name":"x" ,"list":[1,2.5e3,-0,"\\u00e9\u00e9\\n"],"n":null}'


def setup_configs(r):
    rcall(r, "SET", "cfg:42", JSON_CFG)
    rcall(r, "SET", "cfg:7", '{"seven":7}')
    rcall(r, "SET", 'cfg:a"b', '{"quoted":true}')
    rcall(r, "SET", "cfg:\u00e9t\u00e9", '{"ete":1}')
    rcall(r, "SET", "cfg:sp ace", '"space"')
    rcall(r, "SET", "cfg:-7", '{"neg":-7}')
    rcall(r, "SET", "cfg:0", '{"zero":0}')
    rcall(r, "SET", "cfg:123456789012345678901234567890", '{"big":1}')
    rcall(r, "SET", "cfg:" + "u" * 128, '{"long":128}')
    rcall(r, "SET", "cfg:" + "\u00e9" * 64, '{"long":"e64"}')


def requests_and_ids(t, w, u):
    c = Client(w.port)
    rep = c.call('{"id": "c-17", "user-id": "42", "payload": {"any": ["json", 1, true]}}')
    expect_ok(t, rep, echo_body('{"any": ["json", 1, true]}', JSON_CFG),
              "PROTOCOL example request", rid="c-17")
    rep = c.call('{"user-id":42,"payload":{"a":1}}')
    expect_ok(t, rep, echo_body('{"a":1}', JSON_CFG), "integer user-id 42 reads cfg:42")
    t.ok(rep.obj is not None and "id" not in rep.obj, "no id in the request: no id in the reply",
         lambda: repr(rep))
    rep = c.call('{"user_id":"42","payload":{"a":2}}')
    expect_ok(t, rep, echo_body('{"a":2}', JSON_CFG), "user_id alias")
    rep = c.call('{"user_id":42,"payload":3}')
    expect_ok(t, rep, echo_body('3', JSON_CFG), "user_id alias with an integer")

    # Payload forwarded byte for byte, whatever JSON it is.
    payloads = [
        '{ "any" : [ "json" , 1 , true ] }',
        '[ 1 ,\n\t2 ,\r\n  3 ]',
        '"str with \\" escapes \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\u0000 raw \u00e9\U0001F600"',
        '123', '-0', '-0.5e-3', '1E+2', '0.0', '1e-7',
        '123456789012345678901234567890.123456789e-300',
        'true', 'false', 'null', '[]', '{}', '""', '[[[[[[]]]]]]',
        '{"nested":{"deep":[1,{"x":null,"y":[{},[]]}]},"":"empty key","\\u0041":1}',
        '{"dup":1,"dup":2}',
        '"raw DEL \x7f and U+2028 \u2028"',
        '[' * 31 + ']' * 31,          # the message 32 deep: wsgate(8)'s limit
    ]
    for i, p in enumerate(payloads):
        rep = c.call('{"id":%d,"user-id":"42","payload":%s}' % (i, p))
        expect_ok(t, rep, echo_body(p, JSON_CFG), "payload %r" % p[:40], rid=i)

    # Whitespace around the payload value is not part of it.
    rep = c.call('{"user-id":"42","payload":  \n [1, 2]\t }')
    expect_ok(t, rep, lambda b: b.startswith('{"payload":') and
              strict_json(b) == {"payload": [1, 2], "config": strict_json(JSON_CFG)},
              "whitespace around the payload value")
    big = '"' + "x" * 500000 + '"'
    rep = c.call('{"id":"big","user-id":"42","payload":%s}' % big)
    expect_ok(t, rep, echo_body(big, JSON_CFG), "500 kB payload", rid="big")

    rep = c.call('{"id":"np","user-id":"42"}')
    expect_ok(t, rep, echo_body("null", JSON_CFG), "no payload: null", rid="np")

    # Unknown fields, any order, look-alike keys nested in them.
    rep = c.call('{"payload":[1],"zzz":{"user-id":"nope","user_id":"nope","id":"no"},'
                 '"user-id":"42","extra":[1,{"payload":2}],"id":5,"more":null}')
    expect_ok(t, rep, echo_body("[1]", JSON_CFG), "unknown fields ignored, nested look-alikes too",
              rid=5)
    rep = c.call('{"x":{"payload":"inner"},"user-id":"7","payload":"outer","y":["payload"]}')
    expect_ok(t, rep, echo_body('"outer"', '{"seven":7}'), "the top-level payload is the one sent")
    rep = c.call('{"x":{"user-id":"42"},"payload":1,"id":"nested-only"}')
    expect_error(t, rep, 400, "bad request", "user-id only inside another field",
                 rid="nested-only")
    rep = c.call('  \r\n\t{"user-id":"7","payload":0}\n  ')
    expect_ok(t, rep, echo_body("0", '{"seven":7}'), "whitespace around the message")

    # ids: a string or a number, echoed with the same JSON type.
    ids = ['"c-17"', '17', '-3', '1.5', '0', '1e3', '""', '"esc\\"aped \\u00e9 \u00e9"',
           '12345678901234567890', '"x\\ny"']
    for i in ids:
        rep = c.call('{"id":%s,"user-id":"7"}' % i)
        want = json.loads(i)
        expect_ok(t, rep, echo_body("null", '{"seven":7}'), "id %s" % i, rid=want)
    rep = c.call('{"user-id":"7","payload":1,"id":"last-field"}')
    expect_ok(t, rep, echo_body("1", '{"seven":7}'), "id after the other fields", rid="last-field")
    for i in ['true', 'null', '{"a":1}', '[1]']:
        rep = c.call('{"id":%s,"user-id":"7"}' % i)
        t.ok(rep.obj is not None and rep.obj.get("status") in (200, 400),
             "id %s (not in the contract): a reply, 200 or 400" % i, lambda: repr(rep))
    c.close()


def user_ids(t, w, u):
    c = Client(w.port)
    cases = [
        ('"a\\"b"', '{"quoted":true}', 'escaped quote: key cfg:a"b'),
        ('"\\u00e9t\\u00e9"', '{"ete":1}', "\\u escapes: key cfg:\u00e9t\u00e9 in UTF-8"),
        ('"\u00e9t\u00e9"', '{"ete":1}', "raw UTF-8 user-id"),
        ('"sp ace"', '"space"', "user-id with a space"),
        ('-7', '{"neg":-7}', "negative integer: cfg:-7"),
        ('0', '{"zero":0}', "integer 0"),
        ('123456789012345678901234567890', '{"big":1}', "integer beyond 64 bits, digits as written"),
        ('"' + "u" * 128 + '"', '{"long":128}', "128-byte user-id"),
        ('"' + "\u00e9" * 64 + '"', '{"long":"e64"}', "64 x U+00E9 = 128 bytes"),
        ('"' + "\\u00e9" * 64 + '"', '{"long":"e64"}', "128 bytes after unescaping"),
        ('"nobody-has-this"', 'null', "missing key: config null"),
    ]
    for uid, cfg, desc in cases:
        rep = c.call('{"id":"u","user-id":%s,"payload":{"k":1}}' % uid)
        expect_ok(t, rep, echo_body('{"k":1}', cfg), desc, rid="u")
    bad = [
        ('"' + "u" * 129 + '"', "129-byte user-id"),
        ('"' + "\u00e9" * 65 + '"', "65 x U+00E9 = 130 bytes"),
        ('"' + "\\u00e9" * 65 + '"', "130 bytes after unescaping"),
        ('4.2', "float user-id"),
        ('42.0', "float user-id 42.0"),
        ('true', "boolean user-id"),
        ('false', "false user-id"),
        ('null', "null user-id"),
        ('{"id":42}', "object user-id"),
        ('["42"]', "array user-id"),
    ]
    for uid, desc in bad:
        rep = c.call('{"id":"bad","user-id":%s,"payload":1}' % uid)
        expect_error(t, rep, 400, "bad request", desc, rid="bad")
        rep = c.call('{"id":"bad","user_id":%s,"payload":1}' % uid)
        expect_error(t, rep, 400, "bad request", desc + " (user_id)", rid="bad")
    rep = c.call('{"id":9,"payload":{"user-id":"42"}}')
    expect_error(t, rep, 400, "bad request", "no user-id", rid=9)
    rep = c.call('{}')
    expect_error(t, rep, 400, "bad request", "empty object", rid=NOID)
    for msg in ['[1,2]', '"user-id"', '42', 'null', 'true', '[{"user-id":"42"}]']:
        rep = c.call(msg)
        expect_error(t, rep, 400, "bad request", "not an object: %s" % msg, rid=NOID)
    rep = c.call('{"user-id":"7","payload":"still open"}')
    expect_ok(t, rep, echo_body('"still open"', '{"seven":7}'),
              "the connection is still open after the 400s")
    c.close()


INVALID = [
    ("empty message", b""),
    ("whitespace only", b"  \n\t "),
    ("truncated object", b'{"user-id":"42"'),
    ("truncated after comma", b'{"user-id":"42",'),
    ("unquoted key", b'{user-id:"42"}'),
    ("single quotes", b"{'user-id':'42'}"),
    ("bare word value", b'{"user-id":"42","payload":hello}'),
    ("bare word user-id", b'{"user-id":abc}'),
    ("bare word key and value", b'{"user-id":"42",abc:def}'),
    ("truncated literal", b'{"user-id":"42","payload":tru}'),
    ("literal with extra letters", b'{"user-id":"42","payload":nullx}'),
    ("capitalised literal", b'{"user-id":"42","payload":True}'),
    ("leading zero", b'{"user-id":"42","payload":01}'),
    ("leading zeros in a fraction", b'{"user-id":"42","payload":00.5}'),
    ("leading zero in user-id", b'{"user-id":042}'),
    ("negative leading zero", b'{"user-id":"42","payload":-01}'),
    ("minus alone", b'{"user-id":"42","payload":-}'),
    ("fraction without digits", b'{"user-id":"42","payload":1.}'),
    ("fraction without integer part", b'{"user-id":"42","payload":.5}'),
    ("plus sign", b'{"user-id":"42","payload":+1}'),
    ("exponent without digits", b'{"user-id":"42","payload":1e}'),
    ("exponent sign without digits", b'{"user-id":"42","payload":1e+}'),
    ("hex number", b'{"user-id":"42","payload":0x10}'),
    ("NaN", b'{"user-id":"42","payload":NaN}'),
    ("Infinity", b'{"user-id":"42","payload":-Infinity}'),
    ("bad escape \\x", b'{"user-id":"42","payload":"\\x41"}'),
    ("bad escape \\a", b'{"user-id":"42","payload":"\\a"}'),
    ("bad escape \\' ", b'{"user-id":"42","payload":"\\\'"}'),
    ("bad escape in user-id", b'{"user-id":"4\\q2"}'),
    ("short \\u escape", b'{"user-id":"42","payload":"\\u12"}'),
    ("\\u with a non-hex digit", b'{"user-id":"42","payload":"\\u12g4"}'),
    ("backslash at the end of a string", b'{"user-id":"42","payload":"ab\\"}'),
    ("raw tab in a string", b'{"user-id":"42","payload":"a\tb"}'),
    ("raw newline in a string", b'{"user-id":"42","payload":"a\nb"}'),
    ("raw NUL in a string", b'{"user-id":"42","payload":"a\x00b"}'),
    ("raw control character in user-id", b'{"user-id":"4\x012"}'),
    ("raw control character in a key", b'{"user-id":"42","k\x1fk":1}'),
    ("raw control character in id", b'{"id":"i\x02d","user-id":"42"}'),
    ("unterminated string", b'{"user-id":"42","payload":"abc}'),
    ("trailing comma in an array", b'{"user-id":"42","payload":[1,2,]}'),
    ("trailing comma in the object", b'{"user-id":"42",}'),
    ("trailing comma in a nested object", b'{"user-id":"42","payload":{"a":1,}}'),
    ("leading comma", b'{,"user-id":"42"}'),
    ("leading comma in an array", b'{"user-id":"42","payload":[,1]}'),
    ("double comma", b'{"user-id":"42",,"payload":1}'),
    ("missing comma between members", b'{"user-id":"42" "payload":1}'),
    ("missing comma in an array", b'{"user-id":"42","payload":[1 2]}'),
    ("missing colon", b'{"user-id" "42"}'),
    ("double colon", b'{"user-id"::"42"}'),
    ("key without value", b'{"user-id":"42","payload"}'),
    ("key with colon, no value", b'{"user-id":"42","payload":}'),
    ("non-string key", b'{"user-id":"42",1:2}'),
    ("colon in an array", b'{"user-id":"42","payload":[1:2]}'),
    ("garbage after the object", b'{"user-id":"42"}garbage'),
    ("a second value after the object", b'{"user-id":"42"} {"user-id":"42"}'),
    ("extra closing brace", b'{"user-id":"42"}}'),
    ("mismatched brackets", b'{"user-id":"42","payload":[1}]'),
    ("unclosed array", b'{"user-id":"42","payload":[1}'),
    ("comment", b'{"user-id":"42" /* c */}'),
    ("line comment", b'{"user-id":"42"} // c'),
    ("array closed by a brace", b'{"user-id":"42","payload":[1,2}}'),
]


def invalid_json(t, w, u):
    c = Client(w.port)
    before = upstream_stats(u)
    for desc, msg in INVALID:
        rep = c.call(msg)
        expect_error(t, rep, 400, "bad request", "invalid JSON, %s" % desc)
    # wsgate(8): messages nest at most 32 levels deep (the object is one).
    rep = c.call('{"user-id":"42","payload":' + "[" * 32 + "]" * 32 + "}")
    expect_error(t, rep, 400, "bad request", "message nested 33 levels deep")
    rep = c.call('{"user-id":"42","payload":' + '{"a":' * 32 + "1" + "}" * 33)
    expect_error(t, rep, 400, "bad request", "message of objects nested 33 levels deep")
    # Far beyond any limit: 400, no crash.
    rep = c.call('{"user-id":"42","payload":' + "[" * 100000 + "]" * 100000 + "}")
    t.ok(rep.obj is not None and rep.obj.get("status") in (200, 400),
         "payload nested 100000 deep: a reply (200 or 400), no crash", lambda: repr(rep))
    deep_ok = rep.obj is not None and rep.obj.get("status") == 200
    rep = c.call('{"user-id":"42","payload":' + "[" * 100000 + "}")
    expect_error(t, rep, 400, "bad request", "unbalanced 100000-deep payload")
    time.sleep(0.2)
    after = upstream_stats(u)
    t.is_(after - before, 1 if deep_ok else 0,
          "no invalid message reached the upstream")
    rep = c.call('{"user-id":"42","payload":' + '{"a":' * 31 + "1" + "}" * 32)
    expect_ok(t, rep, echo_body('{"a":' * 31 + "1" + "}" * 31, JSON_CFG),
              "message of objects nested 32 levels deep")
    rep = c.call('{"id":"after","user-id":"7"}')
    expect_ok(t, rep, echo_body("null", '{"seven":7}'),
              "the connection still serves requests after %d invalid messages" % len(INVALID),
              rid="after")

    # Binary messages: 400, the connection stays open.
    c.ws.send_frame(OP_BINARY, b'{"id":"bin","user-id":"42"}')
    rep = c.recv()
    expect_error(t, rep, 400, "bad request", "binary message")
    c.ws.send_frame(OP_BINARY, b"\x00\xff\xfe")
    rep = c.recv()
    expect_error(t, rep, 400, "bad request", "binary message, not UTF-8")
    # A fragmented text message is one request.
    c.ws.send_frame(OP_TEXT, b'{"id":"frag","user-', fin=False)
    c.ws.send_frame(OP_CONT, b'id":"7","payload":', fin=False)
    c.ws.send_frame(OP_CONT, b'[1,2]}')
    rep = c.recv()
    expect_ok(t, rep, echo_body("[1,2]", '{"seven":7}'), "fragmented text message", rid="frag")
    c.close()


EDN_CASES = [
    ('{:timeout 30 :tags #{:a} :name "x" :nested {:k [1 2.5 nil true]}}',
     {"timeout": 30, "tags": ["a"], "name": "x", "nested": {"k": [1, 2.5, None, True]}},
     "the example map"),
    ('{:a/b 1, :c "s\\"q\\n\\t\\\\" :d [1 -2 +3 4.5 -6e2] :e (1 2) :f nil :g true :h false}',
     {"a/b": 1, "c": 's"q\n\t\\', "d": [1, -2, 3, 4.5, -600], "e": [1, 2], "f": None,
      "g": True, "h": False},
     "namespaced keyword, string escapes, numbers, list, literals, commas"),
    ('; a comment line\n{:x 1 #_ :ignored :y [1 #_2 3] ; trailing comment\n :z #_{:gone 1} "kept"}',
     {"x": 1, "y": [1, 3], "z": "kept"}, "comments and #_ discard"),
    ('{:mode fast :fn my.ns/handler :op + :q? yes!}',
     {"mode": "fast", "fn": "my.ns/handler", "op": "+", "q?": "yes!"}, "symbols become strings"),
    ('{"string-key" 1 :uni "\u00e9t\u00e9 \U0001F600" :tab "a\tb\nc"}',
     {"string-key": 1, "uni": "\u00e9t\u00e9 \U0001F600", "tab": "a\tb\nc"},
     "string keys, UTF-8, raw tab and newline in a string"),
    ('[1 2 3]', [1, 2, 3], "a top-level vector"),
    ('(:a :b)', ["a", "b"], "a top-level list"),
    (':just-a-keyword', "just-a-keyword", "a top-level keyword"),
    ('nil', None, "nil"),
    ('{:v [[] {} () #{}] :deep [[[[:x]]]]}',
     {"v": [[], {}, [], []], "deep": [[[["x"]]]]}, "empty collections, nesting"),
    ('  {:padded 1}  \n', {"padded": 1}, "whitespace around the value"),
]

JSON_CASES = [
    ('[1, 2, 3]', "JSON array with spaces (also valid EDN)"),
    ('{"a": 1}', "JSON object with a space"),
    ('"just a string"', "JSON string"),
    ('42', "JSON number"),
    ('null', "JSON null"),
    ('{"s":"\\u00e9\\ud83d\\ude00 \\" \\\\ \\/","e":1.5e-3,"b":[true,false,null]}',
     "JSON with escapes kept as written"),
    ('{"a":1,"a":2}', "JSON with a duplicate key"),
]

BAD_CONFIGS = [
    ('{:a', "unclosed EDN map"),
    ('[1 2', "unclosed EDN vector"),
    ('{"a":1', "unclosed JSON object"),
    ('{:a 1 :b}', "EDN map with an odd number of forms"),
    (')', "a lone closing paren"),
    ('"unterminated', "unterminated string"),
    ('{:a [1 2}', "mismatched brackets"),
]


def configs(t, w, u, r):
    c = Client(w.port)
    for i, (edn, want, desc) in enumerate(EDN_CASES):
        key = "edn%d" % i
        rcall(r, "SET", "cfg:" + key, edn)
        rep = c.call('{"id":%d,"user-id":"%s","payload":{"p": [1, 2]}}' % (i, key))
        o = rep.obj or {}
        body = o.get("body") if isinstance(o.get("body"), str) else ""
        t.is_(o.get("status"), 200, "EDN config, %s: status 200" % desc, lambda: repr(rep))
        t.ok(body.startswith('{"payload":{"p": [1, 2]},"config":') and body.endswith("}"),
             "EDN config, %s: payload byte for byte, then the config" % desc,
             lambda: "body: %r" % body[:300])
        got = body_config(body)
        if isinstance(want, dict) and isinstance(got, dict):
            for k in ("tags",):
                if isinstance(got.get(k), list):
                    got[k] = sorted(got[k], key=repr)
        t.is_(got, want, "EDN config, %s: converted to JSON" % desc)

    # A set's elements in any order.
    rcall(r, "SET", "cfg:ednset", '#{1 2 3 :x "y"}')
    rep = c.call('{"user-id":"ednset"}')
    got = body_config((rep.obj or {}).get("body", ""))
    t.is_(sorted(got, key=repr) if isinstance(got, list) else got,
          sorted([1, 2, 3, "x", "y"], key=repr), "EDN set -> array of its elements")

    for i, (cfg, desc) in enumerate(JSON_CASES):
        key = "json%d" % i
        rcall(r, "SET", "cfg:" + key, cfg)
        rep = c.call('{"id":"j%d","user-id":"%s","payload":[0]}' % (i, key))
        expect_ok(t, rep, echo_body("[0]", cfg), "%s passed through byte for byte" % desc,
                  rid="j%d" % i)
    rcall(r, "SET", "cfg:jsonpad", ' \n{"padded": true}\t ')
    rep = c.call('{"user-id":"jsonpad"}')
    t.is_(body_config((rep.obj or {}).get("body", "")), {"padded": True},
          "JSON config with whitespace around it: the same value", lambda: repr(rep))

    before = upstream_stats(u)
    for i, (cfg, desc) in enumerate(BAD_CONFIGS):
        key = "bad%d" % i
        rcall(r, "SET", "cfg:" + key, cfg)
        rep = c.call('{"id":"b%d","user-id":"%s","payload":1}' % (i, key))
        expect_error(t, rep, 502, "invalid config", "config %r (%s)" % (cfg, desc),
                     rid="b%d" % i)
    time.sleep(0.2)
    t.is_(upstream_stats(u) - before, 0, "an invalid config never reaches the upstream")
    bad = w.grep_log(r"worker\[\d+\] warn: invalid config key=cfg:bad\d+ reason=\"[^\"]+\" "
                     r"unlogged=0$")
    t.is_(len(bad), 1, "%d invalid configs in a row: one log line, the next in 10 s at most"
          % len(BAD_CONFIGS), lambda: "\n".join(m.string for m in w.grep_log("invalid config")))
    rep = c.call('{"user-id":"42","payload":"ok"}')
    expect_ok(t, rep, echo_body('"ok"', JSON_CFG), "the connection is fine after the 502s")
    c.close()


def headers(t, r, u):
    w = t.wsgate("headers", workers=2, redis_port=r.port,
                 upstream_url="http://127.0.0.1:%d/headers" % u.port)
    w.start()
    rids = []
    ok_all = True
    for n in range(4):
        c = Client(w.port)
        for i in range(5):
            payload = '{"n": %d, "i": %d}' % (n, i)
            rep = c.call('{"id":%d,"user-id":"7","payload":%s}' % (i, payload))
            try:
                doc = strict_json(rep.obj["body"])
                hdrs = {k.lower(): v for k, v in doc["headers"].items()}
            except (TypeError, KeyError, ValueError, AttributeError):
                ok_all = t.ok(False, "/headers reply %d/%d is readable" % (n, i),
                              lambda: repr(rep))
                continue
            if n == 0 and i == 0:
                t.is_(doc["method"], "POST", "upstream request: POST")
                t.is_(doc["path"], "/headers", "upstream request: the configured path")
                t.is_(hdrs.get("content-type"), "application/json",
                      "upstream request: Content-Type: application/json")
                t.like(hdrs.get("x-request-id"), r"^\S+$",
                       "upstream request: a non-empty X-Request-Id")
            if doc["body"] != echo_body(payload, '{"seven":7}') or \
                    hdrs.get("content-type") != "application/json":
                ok_all = t.ok(False, "upstream request %d/%d: body and Content-Type" % (n, i),
                              lambda: "got %r" % doc)
            rids.append(hdrs.get("x-request-id"))
        c.close()
    t.ok(ok_all, "20 upstream requests over 4 connections, 2 workers: exact bodies")
    t.is_(len(set(rids)), 20, "X-Request-Id unique per request", lambda: repr(rids))
    t.ok(all(rids), "X-Request-Id never empty")
    w.stop()


def reject(t, r, u):
    w = t.wsgate("reject", workers=1, redis_port=r.port, upstream_url=u.url,
                 missing_config="reject", redis_key_prefix="app:")
    w.start()
    rcall(r, "SET", "app:u1", '{"app":1}')
    rcall(r, "SET", "cfg:u2", '{"cfg":2}')
    c = Client(w.port)
    rep = c.call('{"id":"r1","user-id":"u1","payload":1}')
    expect_ok(t, rep, echo_body("1", '{"app":1}'), "redis_key_prefix app: GETs app:u1", rid="r1")
    before = upstream_stats(u)
    rep = c.call('{"id":"r2","user-id":"u2","payload":1}')
    expect_error(t, rep, 404, "no config", "missing_config reject: 404 (cfg:u2 not used)",
                 rid="r2")
    rep = c.call('{"user-id":"nobody"}')
    expect_error(t, rep, 404, "no config", "missing_config reject, no id", rid=NOID)
    time.sleep(0.2)
    t.is_(upstream_stats(u) - before, 0, "missing_config reject: no upstream call")
    rep = c.call('{"id":3,"user-id":"u1"}')
    expect_ok(t, rep, echo_body("null", '{"app":1}'), "still serving after the 404s", rid=3)
    c.close()
    w.stop()


def coalescing(t, r, u):
    w = t.wsgate("coalesce", workers=1, redis_port=r.port, upstream_url=u.url)
    w.start()
    rcall(r, "SET", "cfg:co", '{"co":1}')
    c = Client(w.port)
    rep = c.call('{"user-id":"co"}')
    expect_ok(t, rep, echo_body("null", '{"co":1}'), "coalescing: warm-up request")

    def batch(users, tag):
        frames = b"".join(wsclient.frame(OP_TEXT, '{"id":"%s-%d","user-id":"%s","payload":%d}'
                                         % (tag, i, uid, i)) for i, uid in enumerate(users))
        g0 = get_calls(r)
        c.ws.send(frames)
        got = {}
        for _ in users:
            rep = c.recv(T(10))
            if rep.obj is None:
                t.ok(False, "%s: all replies" % tag, lambda: repr(rep))
                break
            got[rep.obj.get("id")] = rep.obj
        return got, get_calls(r) - g0

    got, gets = batch(["co"] * 20, "same")
    good = len(got) == 20 and all(
        got.get("same-%d" % i, {}).get("body") == echo_body(str(i), '{"co":1}') for i in range(20))
    t.ok(good, "20 requests for one user in one write: 20 right replies", lambda: repr(got)[:2000])
    t.ok(gets < 20, "20 concurrent requests for one user: fewer than 20 GETs (%d)" % gets)
    t.note("GETs for 20 concurrent requests for one user: %d (ideal: 1)" % gets)

    users = ["cu%d" % i for i in range(20)]
    for i, uid in enumerate(users):
        rcall(r, "SET", "cfg:" + uid, '{"u":%d}' % i)
    got, gets = batch(users, "diff")
    good = len(got) == 20 and all(
        got.get("diff-%d" % i, {}).get("body") == echo_body(str(i), '{"u":%d}' % i)
        for i in range(20))
    t.ok(good, "20 users in one write: each gets its own config", lambda: repr(got)[:2000])
    t.is_(gets, 20, "20 different users: 20 GETs")

    # Mixed: 4 users x 10 requests interleaved.
    mixed = [users[i % 4] for i in range(40)]
    got, gets = batch(mixed, "mix")
    good = len(got) == 40 and all(
        got.get("mix-%d" % i, {}).get("body") == echo_body(str(i), '{"u":%d}' % (i % 4))
        for i in range(40))
    t.ok(good, "4 users x 10 interleaved requests: right configs", lambda: repr(got)[:2000])
    t.ok(gets < 40, "4 users x 10 interleaved requests: fewer than 40 GETs (%d)" % gets)
    t.note("GETs for 4 users x 10 interleaved requests: %d (ideal: 4)" % gets)

    # No cache by default: a later request GETs again and sees a change.
    rcall(r, "SET", "cfg:co", '{"co":2}')
    g0 = get_calls(r)
    rep = c.call('{"user-id":"co"}')
    expect_ok(t, rep, echo_body("null", '{"co":2}'), "no cache by default: a new value at once")
    t.is_(get_calls(r) - g0, 1, "no cache by default: one GET per later request")
    c.close()
    w.stop()


def cache(t, r, u):
    ttl = 2.0
    w = t.wsgate("cache", workers=1, redis_port=r.port, upstream_url=u.url,
                 config_cache_ttl="2s", config_cache_entries=3)
    w.start()
    rcall(r, "SET", "cfg:ca", '{"ca":1}')
    c = Client(w.port)

    def batch(n, tag, want_cfg):
        frames = b"".join(wsclient.frame(OP_TEXT, '{"id":"%s-%d","user-id":"ca","payload":%d}'
                                         % (tag, i, i)) for i in range(n))
        g0 = get_calls(r)
        c.ws.send(frames)
        good = True
        for _ in range(n):
            rep = c.recv(T(10))
            o = rep.obj or {}
            i = str(o.get("id", "-x")).rsplit("-", 1)[1]
            good &= o.get("body") == echo_body(i, want_cfg)
            if not good:
                t.diag("%s: %r" % (tag, rep))
                break
        return good, get_calls(r) - g0

    good, gets = batch(10, "first", '{"ca":1}')
    t.ok(good, "cache: first batch answered")
    t.ok(1 <= gets < 10, "cache: first batch of 10 GETs once or a few times (%d)" % gets)
    t_cached = time.monotonic()
    good, gets = batch(10, "second", '{"ca":1}')
    t.ok(good, "cache: second batch answered")
    t.is_(gets, 0, "config_cache_ttl: a second batch within the TTL does not GET")
    rcall(r, "SET", "cfg:ca", '{"ca":2}')
    good, gets = batch(3, "stale", '{"ca":1}')
    t.ok(good and gets == 0, "config_cache_ttl: within the TTL the cached value is served (%d GETs)"
         % gets)
    time.sleep(max(0, t_cached + ttl + 0.3 - time.monotonic()))
    good, gets = batch(10, "expired", '{"ca":2}')
    t.ok(good, "cache: after the TTL the new value is served")
    t.ok(gets >= 1, "config_cache_ttl: after the TTL it GETs again (%d)" % gets)

    # config_cache_entries 3: five users cannot all stay cached.
    for i in range(5):
        rcall(r, "SET", "cfg:ce%d" % i, '{"ce":%d}' % i)
    g0 = get_calls(r)
    good = True
    t0 = time.monotonic()
    for rnd in range(2):
        for i in range(5):
            rep = c.call('{"user-id":"ce%d"}' % i)
            good &= (rep.obj or {}).get("body") == echo_body("null", '{"ce":%d}' % i)
    gets = get_calls(r) - g0
    quick = time.monotonic() - t0 < ttl
    t.ok(good, "config_cache_entries: right configs")
    if quick:
        t.ok(7 <= gets <= 10, "config_cache_entries 3: 5 users twice within the TTL: "
             "at least 2 evicted and fetched again (%d GETs)" % gets)
    else:
        t.skip("config_cache_entries eviction", "10 requests took longer than the TTL")
    c.close()
    w.stop()


def main(t):
    t.need_binary()
    r = t.start_redis()
    u = t.start_upstream()
    setup_configs(r)
    w = t.wsgate("pipeline", workers=2, redis_port=r.port, upstream_url=u.url,
                 redis_timeout="2s", max_output_buffer="16m")
    w.start()
    phases = [("requests and ids", lambda: requests_and_ids(t, w, u)),
              ("user-id rules", lambda: user_ids(t, w, u)),
              ("invalid JSON", lambda: invalid_json(t, w, u)),
              ("configs", lambda: configs(t, w, u, r))]
    for name, fn in phases:
        t0 = time.monotonic()
        fn()
        t.note("phase %s: %.1fs" % (name, time.monotonic() - t0))
    workers = w.pids("worker")
    t.is_(len(workers), 2, "both workers still running (no crash)")
    w.stop()
    for name, fn in [("headers", headers), ("reject", reject),
                     ("coalescing", coalescing), ("cache", cache)]:
        t0 = time.monotonic()
        fn(t, r, u)
        t.note("phase %s: %.1fs" % (name, time.monotonic() - t0))
    no_worker_died(t)


def no_worker_died(t):
    """One check per wsgate instance of the test: the master never
    logged a worker's death."""
    for inst in t.instances:
        died = inst.grep_log(DIED)
        t.ok(not died, "%s: no worker died" % inst.name,
             lambda: "\n".join(m.string for m in died))


if __name__ == "__main__":     # t_pipeline_faults.py imports the helpers
    harness.run(main, watchdog=240)
