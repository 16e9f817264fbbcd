#!/usr/bin/env python3
"""wsgate's command line: -V, -h, a bad option, and -t on the sample
config, on good files and on every kind of bad file, with the exact
messages an operator sees."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MINIMAL = """\
# minimal wsgate config
upstream_url http://127.0.0.1:8000/echo

pg_conninfo host=127.0.0.1 dbname=wsgate
"""


def version_from_build():
    """PACKAGE_VERSION from the build tree's autoconf.h, if we find it."""
    for d in (os.environ.get("WSGATE_BUILDDIR"), os.path.dirname(harness.WSGATE_BIN)):
        if not d:
            continue
        try:
            with open(os.path.join(d, "autoconf.h")) as f:
                m = re.search(r'#define PACKAGE_VERSION "([^"]+)"', f.read())
                if m:
                    return m.group(1)
        except OSError:
            pass
    return None


def check_bad(t, w, desc, path, regex, user=None):
    rc, out, err = w.run("-t", "-c", path, user=user)
    t.is_(rc, 1, "%s: -t exits with status 1" % desc, diag="stderr: %r" % err)
    t.like(err, regex, "%s: message" % desc)


def main(t):
    t.need_binary()
    w = t.wsgate()  # only used to run the binary: never started here

    # -- -V, -h, bad option --
    rc, out, err = w.run("-V")
    t.is_(rc, 0, "-V exits 0")
    t.like(out, r"\Awsgate \d+\.\d+\.\d+\n?\Z", "-V prints 'wsgate X.Y.Z' on stdout")
    ver = version_from_build()
    if ver:
        t.is_(out.strip(), "wsgate " + ver, "-V shows configure's version")
    else:
        t.skip("-V shows configure's version", "autoconf.h not found")

    rc, out, err = w.run("-h")
    t.is_(rc, 0, "-h exits 0")
    t.like(out, r"(?i)usage:.*wsgate", "-h prints usage on stdout")
    for opt in ("-c", "-t", "-d", "-p", "-V", "-h"):
        t.like(out, re.escape(opt) + r"\b", "-h usage mentions %s" % opt)

    rc, out, err = w.run("-Z")
    t.is_(rc, 1, "bad option exits with status 1")
    t.like(err, r"(?i)usage:", "bad option prints usage on stderr")
    t.is_(out, "", "bad option prints nothing on stdout")

    rc, out, err = w.run("-c")
    t.is_(rc, 1, "-c without argument exits with status 1")

    rc, out, err = w.run("extra-argument")
    t.is_(rc, 1, "a stray argument exits with status 1")

    # -- -t on the sample config shipped in doc/ --
    sample = os.path.join(harness.SRCDIR, "doc", "wsgate.conf")
    rc, out, err = w.run("-t", "-c", sample)
    if rc != 0 and re.search(r"No such file|cannot open", err) and os.path.exists(sample):
        t.skip("-t on the sample config", "it references files missing here: %s" % err.strip())
    else:
        t.is_(rc, 0, "-t on doc/wsgate.conf exits 0", diag="stderr: %r" % err)
        t.like(err, r"wsgate: configuration file %s test is successful" % re.escape(sample),
               "-t on doc/wsgate.conf reports success")

    # -- -t on good files --
    good = t.write("good.conf", MINIMAL)
    rc, out, err = w.run("-t", "-c", good)
    t.is_(rc, 0, "-t on a minimal config exits 0", diag="stderr: %r" % err)
    t.like(err, r"^wsgate: configuration file %s test is successful$" % re.escape(good),
           "-t on a minimal config: exact success message")

    # Every key of PROTOCOL.md section 7 (but TLS, which needs PEM files),
    # each with its documented default or a typical value.
    spool = t.mkdir("spool")
    every = t.write("every.conf", """\
listen 127.0.0.1:8080
listen [::1]:8081
admin_listen 127.0.0.1:9090
workers auto
dbwriters 1
ws_path /ws
echo_path /echo
allowed_origins https://a.example.com https://b.example.com
max_connections 10000
max_message_size 1m
max_inflight_per_connection 64
handshake_timeout 10s
idle_timeout 120s
max_output_buffer 4m
redis_host 127.0.0.1
redis_port 6379
redis_password secret
redis_username default
redis_db 0
redis_key_prefix cfg:
redis_timeout 2s
missing_config null
upstream_url http://127.0.0.1:8000/echo
upstream_timeout 30s
upstream_max_connections 256
pg_conninfo host=127.0.0.1 port=5432 dbname=wsgate user=wsgate
pg_table responses
db_create_table on
db_batch_size 500
db_flush_interval 20ms
ring_size 16m
spool_dir %s
spool_max_bytes 1g
db_spool_after 1s
shutdown_timeout 30s
user nobody
group nogroup
pidfile %s
log_file %s
log_level info
runtime_dir %s
""" % (spool, t.path("every.pid"), t.path("every.log"), t.mkdir("run")))
    rc, out, err = w.run("-t", "-c", every)
    t.is_(rc, 0, "-t accepts every documented key", diag="stderr: %r" % err)

    units = t.write("units.conf", MINIMAL + """\
idle_timeout 1500ms
handshake_timeout 2m
upstream_timeout 45
max_message_size 65536
max_output_buffer 512k
spool_max_bytes 2g
workers 3
missing_config reject
db_create_table off
log_level debug
""")
    rc, out, err = w.run("-t", "-c", units)
    t.is_(rc, 0, "-t accepts ms/s/m durations, bare numbers and k/m/g sizes",
          diag="stderr: %r" % err)

    # -- -t on bad files --
    f = t.write("unknown.conf", MINIMAL + "lisen 127.0.0.1:8080\n")
    check_bad(t, w, "unknown directive", f,
              r'^wsgate: %s:5: unknown directive "lisen"' % re.escape(f))

    f = t.write("duration.conf", MINIMAL + "workers 2\nidle_timeout 10x\n")
    check_bad(t, w, "bad duration", f,
              r'^wsgate: %s:6: invalid duration "10x" for "idle_timeout"' % re.escape(f))

    f = t.write("dup.conf", "workers 2\n" + MINIMAL + "workers 3\n")
    check_bad(t, w, "duplicate directive", f,
              r'^wsgate: %s:6: duplicate directive "workers" \(first at line 1\)' % re.escape(f))

    # Other bad values: the reason text is free, file:line is not.
    bad_values = [
        ("workers abc", "workers not a number"),
        ("workers -1", "negative workers"),
        ("dbwriters x", "dbwriters not a number"),
        ("listen 127.0.0.1:70000", "listen port out of range"),
        ("listen nohost", "listen without a port"),
        ("admin_listen 300.1.2.3:9090", "admin_listen bad address"),
        ("max_message_size 12q", "bad size suffix"),
        ("log_level loud", "unknown log_level"),
        ("missing_config maybe", "unknown missing_config"),
        ("db_create_table maybe", "db_create_table not on/off"),
        ("upstream_timeout -5s", "negative duration"),
        ("redis_port 99999", "redis_port out of range"),
        ("upstream_url notaurl", "upstream_url not a URL"),
        ("user no-such-user-wsgate", "unknown user"),
        ("workers", "directive without a value"),
    ]
    for i, (line, desc) in enumerate(bad_values):
        key = line.split()[0]
        # Replace a key of MINIMAL rather than duplicating it.
        base = MINIMAL if key != "upstream_url" else MINIMAL.replace(
            "upstream_url http://127.0.0.1:8000/echo\n", "")
        f = t.write("bad%d.conf" % i, base + line + "\n")
        lineno = (base + line).count("\n") + 1
        check_bad(t, w, desc, f, r'^wsgate: %s:%d: \S' % (re.escape(f), lineno))

    missing = t.path("no-such-dir/wsgate.conf")
    check_bad(t, w, "missing file", missing,
              r'^wsgate: %s: cannot open: No such file or directory' % re.escape(missing))

    f = t.write("required.conf", "pg_conninfo dbname=wsgate\nworkers 1\n")
    check_bad(t, w, "missing upstream_url", f,
              r'^wsgate: %s: "upstream_url" is required' % re.escape(f))

    f = t.write("required2.conf", "upstream_url http://127.0.0.1:8000/echo\n")
    check_bad(t, w, "missing pg_conninfo", f,
              r'^wsgate: %s: "pg_conninfo" is required' % re.escape(f))

    d = t.mkdir("conf.d")
    check_bad(t, w, "a directory", d, r'^wsgate: %s: \S' % re.escape(d))

    # Unreadable file: as root, permissions would not stop us, so run the
    # check as nobody (with a copy of the binary nobody may execute).
    f = t.write("unreadable.conf", MINIMAL, mode=0o000)
    if harness.IS_ROOT:
        if harness.user_ids("nobody"):
            binary = t.path("wsgate-copy")
            shutil.copy(harness.WSGATE_BIN, binary)
            os.chmod(binary, 0o755)
            saved = harness.WSGATE_BIN
            harness.WSGATE_BIN = binary
            try:
                check_bad(t, w, "unreadable file", f,
                          r'^wsgate: %s: cannot open: Permission denied' % re.escape(f),
                          user="nobody")
            finally:
                harness.WSGATE_BIN = saved
        else:
            t.skip("unreadable file", "no user nobody", 3)
    else:
        check_bad(t, w, "unreadable file", f,
                  r'^wsgate: %s: cannot open: Permission denied' % re.escape(f))

    # -t never starts anything.
    t.ok(not os.path.exists(t.path("every.pid")), "-t wrote no pidfile")


harness.run(main)
