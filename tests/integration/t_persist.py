#!/usr/bin/env python3
"""The persistence path's promise without faults (PROTOCOL.md section 5,
DESIGN.md "The persistence path"): every reply with an upstream-stage
status (an upstream body, whatever its status, or wsgate's 502/504 of the
upstream call) has exactly one row, found by client_id (the request id as
JSON text), under full load from the bench tool (tests/bench/wsbench,
recording every reply) and for single requests of every kind; bodies with NUL bytes and invalid UTF-8 land with U+FFFD in
their place; status NULL and the error text for 502/504; latency_ms and
created_at plausible; no row for 400, 404, 429, 502 invalid config and
503 replies that never reached the upstream."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import T  # noqa: E402
import persistlib as pl  # noqa: E402
from persistlib import sq, json_text  # noqa: E402
from t_pipeline import Client  # noqa: E402

TABLE = "resp_basic"
COLS = ("client_id, user_id, status, response IS NULL, "
        "encode(convert_to(response, 'UTF8'), 'hex'), error IS NULL, error, "
        "latency_ms, extract(epoch FROM created_at), request_key")


def rows_for(pg, cids):
    """{client_id text: [row dict, ...]} for the given client_id texts."""
    if not cids:
        return {}
    res = {}
    rows = pg.psql("SELECT %s FROM %s WHERE client_id IN (%s)" % (
        COLS, TABLE, ",".join(sq(c) for c in cids)))
    for r in rows:
        d = {"client_id": r[0], "user_id": r[1], "status": int(r[2]) if r[2] else None,
             "response": None if r[3] == "t" else bytes.fromhex(r[4]).decode("utf-8"),
             "error": None if r[5] == "t" else r[6], "latency_ms": float(r[7]),
             "created_at": float(r[8]), "request_key": r[9]}
        res.setdefault(r[0], []).append(d)
    return res


def wait_for_ids(pg, cids, timeout=None):
    return harness.wait_for(lambda: len(rows_for(pg, cids)) >= len(cids),
                            T(30) if timeout is None else timeout, 0.2)


def main(t):
    t.need_binary()
    if not harness.pg_bindir():
        t.skip_all("PostgreSQL server not installed")
    pg, r, up = pl.setup_services(t, users=pl.USERS + ("noid",))
    r.command("SET", "cfg:badcfg", "{[")
    t_begin = time.time()
    base = "http://127.0.0.1:%d" % up.port

    w = pl.gateway(t, "basic", pg, r, up, TABLE, missing_config="reject",
                   upstream_timeout="1s", max_inflight_per_connection=4,
                   db_flush_interval="20ms")
    w.start()
    t.ok(pl.wait_table(w, pg, TABLE), "dbwriter created table %s" % TABLE,
         lambda: w.describe())

    # -- 1. load: every upstream-stage reply has exactly one row --
    # wsbench as fast as the replies come: ids "L.<run>.<conn>.<seq>",
    # user u<conn>, payload {"n":<seq>}.
    bn = pl.Bench(t, w.port, "L", conns=3, inflight=4, secs=3).start().wait()
    t.note("load: " + bn.summary())
    bn.sane(t, "load")
    cids = bn.stage_cids()
    t.ok(len(cids) >= 100, "load: %d upstream-stage replies (>= 100)" % len(cids))
    t.ok(all(x.status == 200 and x.kind == "body" for x in bn.recs) and
         bn.get("lost", None) == 0 and bn.get("conns_dropped", None) == 0,
         "load: every reply 200 with a body, none lost", lambda: bn.summary())
    pl.check_rows(t, pg, TABLE, cids, "load", prefix="L.")
    # Spot checks: the upstream echoes wsgate's body, so each row's
    # response is known from its id.
    sample = sorted(cids)[:50]
    got = rows_for(pg, sample)
    bad = []
    for cid in sample:
        _tag, _run, conn, seq = json.loads(cid).split(".")
        user = "u" + conn
        body = '{"payload":{"n":%s},"config":%s}' % (seq, json.dumps({"u": user}))
        row = (got.get(cid) or [{}])[0]
        if (row.get("response"), row.get("user_id"), row.get("status"),
                row.get("error")) != (body, user, 200, None):
            bad.append((cid, row, body))
    t.ok(not bad, "load: sample of 50 rows: response = the echoed request, user_id, "
         "status 200, error NULL", lambda: repr(bad[:3]))
    keys = pg.psql("SELECT count(DISTINCT request_key), count(*) FROM %s" % TABLE)
    t.is_(keys[0][0], keys[0][1], "request_key unique per row (%s rows)" % keys[0][1])

    # -- 2. one request of each kind, on one connection --
    c = Client(w.port)
    cases = []      # (client_id text, message, expected)

    def call(msg, timeout=None):
        rep = c.call(msg, timeout)
        return rep
    rep = call('{"id":"one-echo","user-id":"u2","payload":{"x":[1,2,"\\u00e9"]}}')
    dt_echo = rep.dt
    t.is_(rep.obj and rep.obj.get("status"), 200, "echo: 200")
    cases.append(("one-echo", rep))
    rep = call('{"id":4711,"user-id":"u1","payload":1}')
    t.is_(rep.obj and rep.obj.get("status"), 200, "numeric id: 200")
    rep = call('{"id":"esc\\"q\\\\","user-id":"u1","payload":2}')
    t.is_(rep.obj and rep.obj.get("status"), 200, "id with escapes: 200")
    rep = call('{"user-id":"noid","payload":"no id here"}')
    t.is_(rep.obj and rep.obj.get("status"), 200, "request without id: 200")
    rep = call('{"id":"one-slow","user-id":"u1","payload":{"sleep":0.3}}', T(5))
    dt_slow = rep.dt
    t.is_(rep.obj and rep.obj.get("status"), 200, "slow (0.3 s) echo: 200")
    rep = call('{"id":"one-timeout","user-id":"u1","payload":{"sleep":2}}', T(5))
    t.ok(rep.obj and rep.obj.get("status") == 504 and
         str(rep.obj.get("error", "")).startswith("upstream timeout"),
         "upstream_timeout 1s: 504 upstream timeout", lambda: repr(rep))
    # No row for these:
    rep = call('{"id":"no-400","payload":1}')
    t.is_(rep.obj and rep.obj.get("status"), 400, "no user-id: 400")
    rep = call('{"id":"no-404","user-id":"nocfg","payload":1}')
    t.is_(rep.obj and rep.obj.get("status"), 404, "missing config (reject): 404")
    rep = call('{"id":"no-502","user-id":"badcfg","payload":1}')
    t.ok(rep.obj and rep.obj.get("status") == 502 and
         str(rep.obj.get("error", "")).startswith("invalid config"),
         "unparsable config: 502 invalid config", lambda: repr(rep))
    c.close()

    # 429: more than max_inflight_per_connection slow requests at once.
    c = Client(w.port)
    for i in range(6):
        c.send('{"id":"lim-%d","user-id":"u1","payload":{"sleep":0.5}}' % i)
    lim = {}
    for _ in range(6):
        rp = c.recv(T(5))
        if rp.obj:
            lim[rp.obj.get("id")] = rp.obj.get("status")
    c.close()
    t.is_(sorted(lim.values()), [200] * 4 + [429] * 2,
          "6 slow requests with max_inflight_per_connection 4: 4 x 200, 2 x 429")
    lim_ok = [k for k, v in lim.items() if v == 200]
    lim_429 = [k for k, v in lim.items() if v == 429]

    want = ['"one-echo"', "4711", '"esc\\"q\\\\"', '"one-slow"', '"one-timeout"'] + \
        [json_text(k) for k in lim_ok]
    t.ok(wait_for_ids(pg, want), "rows for every upstream-stage reply landed",
         lambda: "have %r" % sorted(rows_for(pg, want)))
    got = rows_for(pg, want)
    t.is_({k: len(v) for k, v in got.items()}, {k: 1 for k in want},
          "exactly one row each, client_id is the id as JSON text")
    e = (got.get('"one-echo"') or [{}])[0]
    t.is_(e.get("response"), cases[0][1].obj.get("body") if cases[0][1].obj else None,
          "echo: response column = the body the client got")
    t.is_((e.get("status"), e.get("error"), e.get("user_id")), (200, None, "u2"),
          "echo: status 200, error NULL, user_id u2")
    lat = e.get("latency_ms", -1)
    t.ok(0 < lat <= dt_echo * 1000 + 20,
         "echo: latency_ms %.3f in (0, client round trip %.1f ms]" % (lat, dt_echo * 1000))
    now = time.time()
    ca = e.get("created_at", 0)
    t.ok(t_begin - 2 <= ca <= now + 2,
         "created_at plausible (%.3f s before now)" % (now - ca))
    s = (got.get('"one-slow"') or [{}])[0]
    t.ok(300 <= s.get("latency_ms", -1) <= dt_slow * 1000 + 20,
         "slow echo: latency_ms %.1f >= 300 and <= round trip %.1f ms" % (
             s.get("latency_ms", -1), dt_slow * 1000))
    o = (got.get('"one-timeout"') or [{}])[0]
    t.is_((o.get("status"), o.get("response"), o.get("error")),
          (None, None, "upstream timeout"),
          "504: status NULL, response NULL, error 'upstream timeout'")
    t.ok(950 <= o.get("latency_ms", -1) <= 1500,
         "504: latency_ms about upstream_timeout (%.1f)" % o.get("latency_ms", -1))
    t.is_((got.get("4711") or [{}])[0].get("user_id"), "u1", "numeric id: client_id '4711'")
    noid = pg.psql("SELECT count(*), count(client_id) FROM %s WHERE user_id = 'noid'" % TABLE)
    t.is_(noid, [["1", "0"]], "request without id: one row, client_id NULL")
    none = ['"no-400"', '"no-404"', '"no-502"'] + [json_text(k) for k in lim_429]
    time.sleep(0.5)
    t.is_(rows_for(pg, none), {}, "no row for 400, 404, 502 invalid config, 429")

    # 503 before the upstream: Redis stopped.
    r.stop()
    c = Client(w.port)
    rep = c.call('{"id":"no-503","user-id":"u1","payload":1}', T(5))
    t.ok(rep.obj and rep.obj.get("status") == 503, "Redis down: 503", lambda: repr(rep))
    c.close()
    time.sleep(0.3)
    t.is_(rows_for(pg, ['"no-503"']), {}, "no row for 503 config store unavailable")
    r = t.start_redis(port=r.port)
    for u in ("u1", "u2", "u3"):
        r.command("SET", "cfg:" + u, json.dumps({"u": u}))

    # -- 3. upstream statuses and errors from other upstream URLs --
    wst = pl.gateway(t, "st503", pg, r, up, TABLE, url=base + "/status/503")
    wref = pl.gateway(t, "refused", pg, r, up, TABLE,
                      url="http://127.0.0.1:%d/echo" % harness.free_port())
    # NUL and bad UTF-8 (stored as U+FFFD), and what COPY's text format
    # must escape or could misread: tab, newline, CR, backslashes, "\."
    # alone on a line, "\N", other control bytes (stored as they are).
    nul_bad = (b'{"a":"x\x00y","b":"\xff\xfe\xc3\x28\xed\xa0\x80\xe2\x82z","c":"\xf0\x9f\x98\x80",'
               b'"d":"\t\n\\.\n\r\\N \\\\ \x01\x1f\x7f"}')
    whex = pl.gateway(t, "hex", pg, r, up, TABLE, url=base + "/hex/" + nul_bad.hex())
    winv = pl.gateway(t, "inv", pg, r, up, TABLE, url=base + "/invalid-utf8")
    for g in (wst, wref, whex, winv):
        g.start()
    res = {}
    for tag, g in (("st", wst), ("ref", wref), ("hex", whex), ("inv", winv)):
        c = Client(g.port)
        res[tag] = [c.call('{"id":"%s-%d","user-id":"u1","payload":%d}' % (tag, i, i), T(5))
                    for i in range(3)]
        c.close()
    t.ok(all(rp.obj and rp.obj.get("status") == 503 and "body" in rp.obj for rp in res["st"]),
         "upstream answering 503: relayed with its body", lambda: repr(res["st"]))
    t.ok(all(rp.obj and rp.obj.get("status") == 502 and
             str(rp.obj.get("error", "")).startswith("upstream error") for rp in res["ref"]),
         "upstream refused: 502 upstream error", lambda: repr(res["ref"]))
    t.ok(all(rp.obj and rp.obj.get("status") == 200 for rp in res["hex"] + res["inv"]),
         "NUL/invalid UTF-8 bodies: 200", lambda: repr(res["hex"] + res["inv"]))
    want = [json_text("%s-%d" % (tag, i)) for tag in res for i in range(3)]
    t.ok(wait_for_ids(pg, want), "rows for upstream statuses, errors and odd bodies landed",
         lambda: "have %r" % sorted(rows_for(pg, want)))
    got = rows_for(pg, want)
    t.is_({k: len(v) for k, v in got.items()}, {k: 1 for k in want}, "exactly one row each")

    def one(cid):
        return (got.get(cid) or [{}])[0]
    t.ok(all(one(json_text("st-%d" % i)).get("status") == 503 and
             one(json_text("st-%d" % i)).get("response") == '{"status": 503}' and
             one(json_text("st-%d" % i)).get("error") is None for i in range(3)),
         "upstream 503: status 503, its body, error NULL",
         lambda: repr([one(json_text("st-%d" % i)) for i in range(3)]))
    t.ok(all(one(json_text("ref-%d" % i)).get("status") is None and
             one(json_text("ref-%d" % i)).get("response") is None and
             str(one(json_text("ref-%d" % i)).get("error")).startswith("upstream error")
             for i in range(3)),
         "502 upstream error: status NULL, response NULL, error 'upstream error...'",
         lambda: repr([one(json_text("ref-%d" % i)) for i in range(3)]))
    t.ok(all(one(json_text("ref-%d" % i)).get("error") == res["ref"][i].obj.get("error")
             for i in range(3) if res["ref"][i].obj),
         "502: the row's error text is the reply's")
    exp = pl.replace_invalid(nul_bad)
    t.ok(all(one(json_text("hex-%d" % i)).get("response") == exp for i in range(3)),
         "NUL and invalid UTF-8 body: landed with U+FFFD per bad byte, control bytes and "
         "backslashes as they were",
         lambda: "got %r\nexpected %r" % (one(json_text("hex-0")).get("response"), exp))
    import upstream as upmod
    exp = pl.replace_invalid(upmod.INVALID_UTF8)
    t.ok(all(one(json_text("inv-%d" % i)).get("response") == exp for i in range(3)),
         "/invalid-utf8 body: landed with U+FFFD per bad byte",
         lambda: "got %r\nexpected %r" % (one(json_text("inv-0")).get("response"), exp))
    dl = pg.psql("SELECT count(*) FROM %s" % TABLE)
    t.note("rows in %s: %s" % (TABLE, dl[0][0]))
    for g in (w, wst, wref, whex, winv):
        t.ok(not g.grep_log(r"dead-letter|record rejected|batch rejected"),
             "%s: nothing dead-lettered or rejected" % g.name,
             lambda: "\n".join(m.string for m in g.grep_log(r"dead-letter|rejected")))
        t.ok(not g.grep_log(r"child exited .*role="), "%s: no child died" % g.name)


harness.run(main, watchdog=120)
