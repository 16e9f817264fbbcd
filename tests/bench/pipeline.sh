#!/usr/bin/env bash
#
# End-to-end benchmark of the request pipeline (issue 4, tests/bench/README.md
# "Pipeline benchmark"): a private Redis seeded with user configs (half EDN,
# half JSON), a private nginx upstream answering every POST with a small
# JSON body, wsgate (workers 2) and the Node.js peer (tests/bench/peers/node,
# cluster of 2) pointing at both, and wsbench driving
#
#   1. closed loop, 200 connections x 8 in flight (saturation)
#   2. open loop, 10,000 msgs/s over 200 connections
#
# against each server in turn, run by run.  Reports the median of --runs
# runs: msgs/s, p50/p99/p99.9, and CPU time per message of the server's
# processes (master/primary and all children), of Redis and of nginx, from
# /proc/PID/stat.  Optionally profiles a wsgate worker (--profile DIR).
#
set -eu

usage() {
	cat <<'EOF'
usage: pipeline.sh [options]
  --wsgate PATH       wsgate binary (default $WSGATE_BIN, then
                      $WSGATE_BUILDDIR/wsgate, then ./wsgate)
  --wsbench PATH      wsbench binary (default $WSBENCH_BIN, then next to this
                      script, then $WSGATE_BUILDDIR/tests/bench/wsbench,
                      then ./tests/bench/wsbench)
  --node PATH         node binary for the peer (default: node in PATH)
  --no-node           measure wsgate only (no ratios)
  --pg                start a private PostgreSQL (default settings, durable)
                      and persist: wsgate's pg_conninfo points at it, the
                      Node peer gets --pg (its own table); its CPU per
                      message is reported.  Without --pg, pg_conninfo is a
                      dummy: a wsgate that persists then spools every
                      record to disk, which is not a meaningful benchmark
  --scenarios LIST    comma-separated subset of 1,2 (default 1,2)
  --runs N            runs per scenario and server, median reported (3)
  --duration S        measured seconds per run (default 10)
  --warmup S          load before measuring (default 3)
  --conns N           connections (default 200)
  --inflight N        scenario 1 requests in flight per connection (default 8)
  --rate N            scenario 2 messages/s (default 10000)
  --size BYTES        message size (default 160)
  --users N           configs seeded in Redis, half EDN, half JSON (1000)
  --workers N         wsgate workers and Node cluster workers (default 2)
  --nginx-workers N   nginx worker processes (default 1)
  --quiet PCT         before each run wait (up to --quiet-wait s) until the
                      processes that are not ours used less than PCT % of
                      the machine's CPUs over 2 s (default: no wait); the
                      load average counts our own previous run, this not
  --quiet-wait S      (default 300); with --quiet, a run during which
                      other processes used 2 x PCT % or more is repeated
                      (up to 3 times)
  --profile DIR       afterwards, profile wsgate into DIR: perf (cpu-clock,
                      call graphs) on one worker under scenario 1, system
                      calls per message (perf stat on syscall tracepoints),
                      and callgrind on a 1-worker wsgate at --profile-rate
                      msgs/s (see tests/bench/README.md)
  --profile-rate N    (default 500: below what one worker under
                      callgrind can answer, so it is not saturated)
  --gate-opt 'KEY VALUE'
                      extra wsgate.conf line (repeatable), for experiments
                      such as --gate-opt 'upstream_max_connections 64'
  --worker-cpu N      give wsgate's workers CPU N to themselves (taskset):
                      everything else this script starts (wsbench, Redis,
                      nginx, PostgreSQL, the Node peer, wsgate's master
                      and dbwriters) runs on the other CPUs, as on a host
                      whose clients, upstream and database are elsewhere
  --gateway-cpu N     give the whole gateway (master, workers, dbwriters)
                      CPU N to itself; everything else on the other CPUs:
                      a gateway host whose load and backends are elsewhere
  --install           apt-get install nginx-light / redis-server if missing
  --keep              keep the temp dir (configs, logs, raw JSON)
  -h, --help          this text
Environment: WSBENCH_VMEM_KB, WSGATE_VMEM_KB, NODE_VMEM_KB (address-space
limits, default 4 GiB, 8 GiB, 24 GiB: V8 reserves WebAssembly memory
for undici's HTTP parser), REDIS_VMEM_KB, NGINX_VMEM_KB (2 GiB each).
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
wsgate=${WSGATE_BIN:-}
wsbench=${WSBENCH_BIN:-}
node=""
use_node=1
use_pg=0
scenarios="1,2"
runs=3
duration=10
warmup=3
conns=200
inflight=8
rate=10000
size=160
users=1000
workers=2
nginx_workers=1
quiet=""
quiet_wait=300
profile=""
profile_rate=500
install=0
keep=0
gate_opts=""
worker_cpu=""
gateway_cpu=""

while [ $# -gt 0 ]; do
	case $1 in
	--wsgate) wsgate=$2; shift ;;
	--wsbench) wsbench=$2; shift ;;
	--node) node=$2; shift ;;
	--no-node) use_node=0 ;;
	--pg) use_pg=1 ;;
	--scenarios) scenarios=$2; shift ;;
	--runs) runs=$2; shift ;;
	--duration) duration=$2; shift ;;
	--warmup) warmup=$2; shift ;;
	--conns) conns=$2; shift ;;
	--inflight) inflight=$2; shift ;;
	--rate) rate=$2; shift ;;
	--size) size=$2; shift ;;
	--users) users=$2; shift ;;
	--workers) workers=$2; shift ;;
	--nginx-workers) nginx_workers=$2; shift ;;
	--quiet) quiet=$2; shift ;;
	--quiet-wait) quiet_wait=$2; shift ;;
	--profile) profile=$2; shift ;;
	--profile-rate) profile_rate=$2; shift ;;
	--gate-opt) gate_opts="$gate_opts$2
"; shift ;;
	--worker-cpu) worker_cpu=$2; shift ;;
	--gateway-cpu) gateway_cpu=$2; shift ;;
	--install) install=1 ;;
	--keep) keep=1 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "pipeline.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

note() { echo "$prog: $*" >&2; }

need_whole runs duration warmup conns inflight rate size users workers \
    nginx_workers quiet_wait profile_rate
[ "$runs" -ge 1 ] && [ "$duration" -ge 3 ] && [ "$conns" -ge 1 ] &&
    [ "$users" -ge 2 ] && [ "$workers" -ge 1 ] ||
	die "--runs, --conns, --workers >= 1, --duration >= 3, --users >= 2"
case $quiet in ''|[0-9]*) ;; *) die "--quiet needs a number" ;; esac

# --worker-cpu / --gateway-cpu: this script, and so all it starts, leaves
# that CPU to wsgate's workers, which are moved onto it once wsgate is
# up, or to the whole gateway, which is started on it.
own_cpu=$worker_cpu$gateway_cpu own_opt=--worker-cpu other_cpus=""
[ -z "$gateway_cpu" ] || own_opt=--gateway-cpu
[ -z "$worker_cpu" ] || [ -z "$gateway_cpu" ] ||
	die "--worker-cpu and --gateway-cpu exclude each other"
if [ -n "$own_cpu" ]; then
	command -v taskset >/dev/null || die "$own_opt needs taskset (util-linux)"
	ncpu=$(nproc --all)
	case $own_cpu in
	*[!0-9]*) die "$own_opt needs a CPU number, not '$own_cpu'" ;;
	esac
	if [ "$own_cpu" -ge "$ncpu" ] || [ "$ncpu" -lt 2 ]; then
		die "$own_opt $own_cpu: this machine has CPUs 0-$((ncpu - 1)) (2 at least needed)"
	fi
	other_cpus=$(seq 0 $((ncpu - 1)) | grep -vx "$own_cpu" | paste -sd, -)
	taskset -pc "$other_cpus" $$ >/dev/null ||
		die "cannot move this script to CPUs $other_cpus"
fi

# ---- Tools ----

command -v prlimit >/dev/null || die "prlimit (util-linux) is required"
need_pkgs=""
command -v redis-server >/dev/null || need_pkgs="$need_pkgs redis-server"
command -v redis-cli >/dev/null || need_pkgs="$need_pkgs redis-tools"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_pkgs="$need_pkgs nginx-light"
if [ -n "$need_pkgs" ]; then
	[ "$install" = 1 ] ||
		die "missing:$need_pkgs (apt-get install -y$need_pkgs, or pass --install)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need_pkgs >&2 ||
		die "apt-get install$need_pkgs failed (run apt-get update first?)"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "$wsgate" ]; then
	for w in "${WSGATE_BUILDDIR:-.}/wsgate" ./wsgate; do
		if [ -x "$w" ]; then wsgate=$w; break; fi
	done
fi
[ -n "$wsgate" ] && [ -x "$wsgate" ] ||
	die "wsgate not found: pass --wsgate or set WSGATE_BIN"
if [ -z "$wsbench" ]; then
	for w in "$here/wsbench" "${WSGATE_BUILDDIR:-.}/tests/bench/wsbench" \
	    ./tests/bench/wsbench; do
		if [ -x "$w" ]; then wsbench=$w; break; fi
	done
fi
[ -n "$wsbench" ] && [ -x "$wsbench" ] ||
	die "wsbench not found: build it with 'make tests/bench/wsbench' and pass --wsbench"
wsgate=$(cd "$(dirname "$wsgate")" && pwd)/$(basename "$wsgate")
wsbench=$(cd "$(dirname "$wsbench")" && pwd)/$(basename "$wsbench")

peer_dir=$here/peers/node
if [ "$use_node" = 1 ]; then
	[ -n "$node" ] || node=$(command -v node || true)
	[ -n "$node" ] && [ -x "$node" ] || die "node not found: pass --node or --no-node"
	if [ ! -d "$peer_dir/node_modules" ]; then
		note "installing the Node peer's packages (npm ci in $peer_dir)"
		(cd "$peer_dir" && timeout 600 npm ci --no-audit --no-fund >&2) ||
			die "npm ci failed in $peer_dir"
	fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pipebench.XXXXXX")
chmod 755 "$tmp"	# nginx workers run as nobody
started=""		# PIDs this script started (timeout wrappers)

trap cleanup_started EXIT
trap 'exit 130' INT TERM

is_asan() { ldd "$1" 2>/dev/null | grep -q libasan; }
as_limit() {	# binary KiB -> prlimit --as value
	if is_asan "$1"; then echo unlimited; else echo $(($2 * 1024)); fi
}
wsbench_as=$(as_limit "$wsbench" "${WSBENCH_VMEM_KB:-4194304}")

# Every server runs as: prlimit --as=LIMIT timeout -k 5 SECONDS CMD, in
# the background; $! is the timeout process (prlimit execs it), which
# forwards SIGTERM to the server; it is added to $started.
total_limit=$(( (runs * 2 * (duration + warmup + 15) + 120) * 2 + 600 ))
[ -z "$profile" ] || total_limit=$((total_limit + 900))

bench() {	# seconds, wsbench args...
	local limit=$1; shift
	prlimit --as="$wsbench_as" timeout -k 5 "$limit" "$wsbench" "$@"
}


# CPU of whole process trees, "USER SYS" in clock ticks: utime + cutime
# and stime + cstime summed over the live processes given (pass every
# process of the trees, read anew at each sample).  A process that exits
# between two samples moves its time into its reaper's cutime/cstime, so
# it is neither lost nor counted twice; one started in between counts
# whole.  Field 2 (comm) may hold spaces: cut up to the last ')'.
cpu_ticks() {
	local p u=0 s=0 st
	for p in "$@"; do
		st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		st=${st##*) }
		set -- $st
		u=$((u + ${12} + ${14})); s=$((s + ${13} + ${15}))
	done
	echo "$u $s"
}
hz=$(getconf CLK_TCK)

# Ticks used by everything we started (servers, Redis, nginx; plus any
# PIDs given).
ours() {
	echo "$(tree "$redis_tpid") $(tree "$nginx_tpid") $(tree "$gate_tpid")" \
	    "${node_tpid:+$(tree "$node_tpid")}" "${pg_tpid:+$(tree "$pg_tpid")}" "$@"
}

# Waits until other processes use less than $quiet % of the CPUs.
wait_quiet() {
	local waited=0 m0 m1 a0 a1 p o
	[ -n "$quiet" ] || return 0
	while :; do
		p=$(ours)
		m0=$(cpu_line); a0=$(cpu_ticks $p)
		sleep 2
		m1=$(cpu_line); a1=$(cpu_ticks $p)
		o=$(others_pct "$m0" "$m1" "$(ticks_delta "$a0" "$a1")")
		[ "$o" -lt "$quiet" ] && return 0
		if [ "$waited" -ge "$quiet_wait" ]; then
			note "other processes still use $o% of the CPUs after ${quiet_wait}s, running anyway"
			return 0
		fi
		sleep 3
		waited=$((waited + 5))
	done
}

# ---- Redis ----

mkdir -p "$tmp/redis"
for attempt in 1 2 3; do	# another job may take the port meanwhile
	redis_port=$(free_port) || die "no free port"
	prlimit --as=$(( ${REDIS_VMEM_KB:-2097152} * 1024 )) timeout -k 5 "$total_limit" \
	    redis-server --bind 127.0.0.1 --port "$redis_port" --save "" \
	    --appendonly no --dir "$tmp/redis" --maxmemory 256mb \
	    --protected-mode yes --daemonize no --loglevel warning \
	    >"$tmp/redis/redis.log" 2>&1 &
	redis_tpid=$!
	started="$started $redis_tpid"
	for i in $(seq 1 50); do
		rcli ping >/dev/null 2>&1 && break
		kill -0 "$redis_tpid" 2>/dev/null || break
		sleep 0.1
	done
	rcli ping >/dev/null 2>&1 && break
	kill -TERM "$redis_tpid" 2>/dev/null || true
	wait "$redis_tpid" 2>/dev/null || true
	started=${started/ $redis_tpid/}
	[ "$attempt" -lt 3 ] || { cat "$tmp/redis/redis.log" >&2; die "redis-server did not start"; }
done
redis_pid=$(pgrep -P "$redis_tpid" | head -n 1)

seed >"$tmp/redis/seed.resp"
rcli --pipe <"$tmp/redis/seed.resp" >"$tmp/redis/seed.out" 2>&1 ||
	{ cat "$tmp/redis/seed.out" >&2; die "seeding Redis failed"; }
[ "$(rcli dbsize)" = "$users" ] || die "Redis holds $(rcli dbsize) keys, expected $users"
note "Redis $redis_pid on 127.0.0.1:$redis_port, $users configs (EDN: $(rcli strlen cfg:u0) bytes, JSON: $(rcli strlen cfg:u1) bytes)"

redis_gets() {
	rcli info commandstats | sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p'
}

# ---- nginx ----
#
# A private master with its own config (daemon off, so the timeout
# wrapper stays its parent).  worker_processes 1 by default: the
# upstream is not what is measured, one worker is far from saturated at
# these rates (its CPU per request is reported), and a second worker
# would only take CPU slices from the servers under test on 2 cores
# (nginx_start in lib.sh).

nginx_port=$(free_port) || die "no free port"
nginx_start "$nginx_workers"
nginx_master=$(pgrep -P "$nginx_tpid" | head -n 1)
nginx_requests() {
	curl -s -m 5 "http://127.0.0.1:$nginx_port/nginx_status" |
	    awk 'NR == 3 { print $3 }'
}
note "nginx master $nginx_master ($nginx_workers worker(s)) on $upstream_url"

# ---- PostgreSQL (--pg) ----
#
# A private cluster in the temp dir, run as the postgres user (the server
# refuses root); setpriv execs it, so the timeout wrapper's child is the
# postmaster.  Default settings (fsync and synchronous_commit on): the
# persistence path is measured as deployed.

pg_conninfo="host=127.0.0.1 port=9 dbname=x connect_timeout=1"
pg_tpid=""
if [ "$use_pg" = 1 ]; then
	pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$pgbin" ] && [ -x "$pgbin/postgres" ] ||
		die "--pg: PostgreSQL server not found (apt-get install -y postgresql)"
	pg_port=$(free_port) || die "no free port"
	pd=$tmp/pg
	mkdir -p "$pd"
	pg_priv=()
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || die "--pg as root needs the postgres system user"
		chown postgres: "$pd"
		pg_priv=(--reuid postgres --regid postgres --init-groups)
	fi
	as_pg() { setpriv "${pg_priv[@]}" -- "$@"; }
	as_pg "$pgbin/initdb" -D "$pd/data" -U postgres -A trust -E UTF8 \
	    --locale=C -N >"$pd/initdb.log" 2>&1 ||
		{ tail -n 20 "$pd/initdb.log" >&2; die "initdb failed"; }
	prlimit --as=$(( ${PG_VMEM_KB:-4194304} * 1024 )) timeout -k 10 "$total_limit" \
	    setpriv "${pg_priv[@]}" -- \
	    "$pgbin/postgres" -D "$pd/data" -k "$pd" -p "$pg_port" \
	    -c listen_addresses=127.0.0.1 -c max_connections=50 \
	    >"$pd/postgres.log" 2>&1 &
	pg_tpid=$!
	started="$started $pg_tpid"
	pq() { timeout 20 psql -X -q -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
	for i in $(seq 1 100); do
		pq -d postgres -c 'select 1' >/dev/null 2>&1 && break
		kill -0 "$pg_tpid" 2>/dev/null || { tail -n 20 "$pd/postgres.log" >&2; die "postgres exited"; }
		sleep 0.1
	done
	pq -d postgres -c 'CREATE DATABASE wsgate' >/dev/null ||
		die "PostgreSQL on 127.0.0.1:$pg_port does not answer"
	pg_conninfo="host=127.0.0.1 port=$pg_port user=postgres dbname=wsgate connect_timeout=5"
	note "PostgreSQL $(pgrep -P "$pg_tpid" | head -n 1) on 127.0.0.1:$pg_port ($("$pgbin/postgres" --version | awk '{ print $3 }'))"
fi

# ---- Servers under test ----

# Waits until pipeline requests through $1 for u0 (EDN config) and u1
# (JSON config) are answered, then insists that every answer was 2xx;
# gives up early if process $2 has exited.
tmpl='{"id":{seq},"user-id":"u{conn}","payload":{"q":"{pad}","lang":"en","page":1}}'
wait_pipeline() {
	local u=$1 pid=$2 i out
	for i in $(seq 1 60); do
		out=$(bench 10 -u "$u" -c 2 -n 1 -d 0.3 -t 2 -s "$size" \
		    -m "$tmpl" --json 2>/dev/null) || true
		if [ -n "$out" ] && [ -n "$(json_field "$out" status_2xx)" ] &&
		    [ "$(json_field "$out" status_2xx)" != 0 ]; then
			out=$(bench 10 -u "$u" -c 2 -n 1 -d 0.3 -t 2 -s "$size" \
			    -m "$tmpl" --json 2>"$tmp/check.err") || true
			[ "$(json_field "$out" status_4xx)" = 0 ] &&
			    [ "$(json_field "$out" status_5xx)" = 0 ] &&
			    [ "$(json_field "$out" status_none)" = 0 ] &&
			    return 0
			cat "$tmp/check.err" >&2
			die "$u answers with errors (see above)"
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

declare -A root url label log admin
# wsgate: a config in the temp dir; without --pg, PostgreSQL is a dummy
# and the dbwriter spools every record (use --pg for real figures).
gate_start() {	# name workers
	local name=$1 nw=$2 dir=$tmp/$1 port aport
	mkdir -p "$dir/run" "$dir/spool"
	port=$(free_port) || die "no free port"
	aport=$(free_port) || die "no free port"
	cat >"$dir/wsgate.conf" <<EOF
# Written by tests/bench/pipeline.sh.  Without --pg, PostgreSQL is a
# dummy.
listen 127.0.0.1:$port
admin_listen 127.0.0.1:$aport
workers $nw
ws_path /ws
redis_host 127.0.0.1
redis_port $redis_port
upstream_url $upstream_url
pg_conninfo $pg_conninfo
runtime_dir $dir/run
spool_dir $dir/spool
pidfile $dir/wsgate.pid
log_file $dir/wsgate.log
EOF
	if [ -n "$gate_opts" ]; then
		printf '# --gate-opt\n%s' "$gate_opts" >>"$dir/wsgate.conf"
	fi
	url[$name]="ws://127.0.0.1:$port/ws"
	log[$name]=$dir/wsgate.log
	admin[$name]=$aport
}

# The workers' event-loop lag histogram from /metrics: "LE:COUNT ..."
# (cumulative, seconds), or nothing.
lag_hist() {	# admin port
	timeout 5 python3 - "$1" <<'PY' 2>/dev/null || true
import re, sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1],
                              timeout=3).read().decode()
rx = re.compile(r'^wsgate_event_loop_lag_seconds_bucket\{(.*)\} (\S+)$')
out = []
for line in body.splitlines():
    m = rx.match(line)
    if m and 'role="worker"' in m.group(1):
        le = re.search(r'(?:^|,)le="([^"]+)"', m.group(1)).group(1)
        out.append("%s:%s" % (le, m.group(2)))
print(" ".join(out))
PY
}

# p50, p99 and p99.9 of the lag between two lag_hist snapshots, as the
# upper bound of the bucket each falls in ("<=0.25ms"), the count, and
# the share of iterations over 1 ms ("0.42%": the p99 is under 1 ms when
# it is under 1 %; 1 ms is a bucket bound, so this share is exact).
lag_quantiles() {	# before after
	python3 - "$1" "$2" <<'PY' 2>/dev/null || echo "? ? ? 0"
import sys
def parse(s):
    return [(float("inf") if le == "+Inf" else float(le), float(n))
            for le, n in (x.split(":") for x in s.split())]
a, b = parse(sys.argv[1]), parse(sys.argv[2])
d = [(le, nb - na) for (le, na), (_, nb) in zip(a, b)]
total = d[-1][1] if d else 0
def q(p):
    for le, n in d:
        if total and n >= p * total:
            return "inf" if le == float("inf") else "<=%gms" % (le * 1000)
    return "?"
# Cumulative buckets: the one at 1 ms counts every iteration up to it.
over = total - max([n for le, n in d if le <= 0.001] or [0])
print(q(0.5), q(0.99), q(0.999), int(total),
      "%.2f%%" % (100.0 * over / total) if total else "?")
PY
}

gate_start wsgate "$workers"
gate_cpu=${gateway_cpu:+taskset -c $gateway_cpu}
prlimit --as="$(as_limit "$wsgate" "${WSGATE_VMEM_KB:-8388608}")" \
    timeout -k 10 "$total_limit" $gate_cpu "$wsgate" -c "$tmp/wsgate/wsgate.conf" \
    >"$tmp/wsgate/wsgate.out" 2>&1 &
gate_tpid=$!
started="$started $gate_tpid"
if ! wait_pipeline "${url[wsgate]}" "$gate_tpid"; then
	tail -n 20 "$tmp/wsgate/wsgate.out" "$tmp/wsgate/wsgate.log" >&2 2>/dev/null || true
	die "wsgate did not answer a pipeline request on ${url[wsgate]}"
fi
root[wsgate]=$(pgrep -P "$gate_tpid" | head -n 1)
label[wsgate]="wsgate"
if [ -n "$worker_cpu" ]; then
	for p in $(pgrep -P "${root[wsgate]}"); do
		grep -qa worker "/proc/$p/comm" || continue
		taskset -pc "$worker_cpu" "$p" >/dev/null ||
			die "cannot move worker $p to CPU $worker_cpu"
	done
	note "wsgate workers on CPU $worker_cpu, everything else on CPUs $other_cpus"
fi
[ -z "$gateway_cpu" ] ||
	note "wsgate (master, workers, dbwriters) on CPU $gateway_cpu, everything else on CPUs $other_cpus"
note "wsgate master ${root[wsgate]}, $workers workers, ${url[wsgate]}: $(tree "${root[wsgate]}" | tr '\n' ' ')"

targets="wsgate"
if [ "$use_node" = 1 ]; then
	nport=$(free_port) || die "no free port"
	mkdir -p "$tmp/node"
	prlimit --as=$(( ${NODE_VMEM_KB:-25165824} * 1024 )) \
	    timeout -k 10 "$total_limit" "$node" --max-old-space-size=1024 \
	    "$peer_dir/server.js" --listen "127.0.0.1:$nport" \
	    --workers "$workers" --redis "127.0.0.1:$redis_port" \
	    --upstream "$upstream_url" \
	    ${pg_tpid:+--pg "postgresql://postgres@127.0.0.1:$pg_port/wsgate" --pg-table responses_node} \
	    >"$tmp/node/node.out" 2>&1 &
	node_tpid=$!
	started="$started $node_tpid"
	url[node]="ws://127.0.0.1:$nport/ws"
	log[node]=$tmp/node/node.out
	if ! wait_pipeline "${url[node]}" "$node_tpid"; then
		tail -n 20 "$tmp/node/node.out" >&2 || true
		die "the Node peer did not answer a pipeline request on ${url[node]}"
	fi
	root[node]=$(pgrep -P "$node_tpid" | head -n 1)
	label[node]="Node $("$node" --version)"
	note "Node peer primary ${root[node]}, $workers workers, ${url[node]}: $(tree "${root[node]}" | tr '\n' ' ')"
	targets="wsgate node"
fi

# ---- Runs ----
#
# CPU is sampled over a window inside wsbench's measured period: from
# 0.5 s after it starts (connections are up well before: 200 take
# ~0.1 s) plus the warmup, for duration - 1 s.  CPU per message =
# (CPU seconds / window seconds) / measured msgs/s.

declare -A res
printf '%s\n' "# raw results: target scenario run json | cpu" >"$tmp/results.txt"

# The measured process trees, read anew at each sample.
trees() {
	pids=$(tree "${root[$t]}")
	npids=$(tree "$nginx_master")
	ppids=$( [ -z "$pg_tpid" ] || tree "$pg_tpid")
}

one_run() {	# target scenario run attempt
	local t=$1 sc=$2 r=$3 try=$4 args out pids npids c0 c1 r0 r1 n0 n1 g0 g1
	local q0 q1 m0 m1 w0 w1 win load gcpu rcpu ncpu
	local gu k all a0 a1 oth ppids p0 p1 pcpu l0 l1 lag
	if [ "$sc" = 1 ]; then
		args=(-c "$conns" -n "$inflight")
	else
		args=(-c "$conns" -n 32 -r "$rate")
	fi
	wait_quiet
	load=$(loadavg)
	bench $((duration + warmup + 60)) -u "${url[$t]}" "${args[@]}" \
	    -s "$size" -m "$tmpl" -d "$duration" -w "$warmup" --json \
	    >"$tmp/run.json" 2>"$tmp/run.err" &
	local bpid=$!
	sleep "$warmup.5"
	# Everything we started, for the "other CPU" column.
	# shellcheck disable=SC2046
	all=$(ours $(tree "$bpid"))
	a0=$(cpu_ticks $all)
	w0=$(now_ns); m0=$(cpu_line); o0=$(cpu_line "$own_cpu")
	trees
	c0=$(cpu_ticks $pids); r0=$(cpu_ticks "$redis_pid"); n0=$(cpu_ticks $npids)
	p0=$(cpu_ticks $ppids)
	g0=$(redis_gets); q0=$(nginx_requests)
	l0=$( [ -z "${admin[$t]:-}" ] || lag_hist "${admin[$t]}")
	sleep $((duration - 1))
	w1=$(now_ns); m1=$(cpu_line); o1=$(cpu_line "$own_cpu")
	# shellcheck disable=SC2046
	a1=$(cpu_ticks $(ours $(tree "$bpid")))
	trees
	c1=$(cpu_ticks $pids); r1=$(cpu_ticks "$redis_pid"); n1=$(cpu_ticks $npids)
	p1=$(cpu_ticks $ppids)
	g1=$(redis_gets); q1=$(nginx_requests)
	l1=$( [ -z "${admin[$t]:-}" ] || lag_hist "${admin[$t]}")
	wait "$bpid" || true
	out=$(cat "$tmp/run.json")
	sed "s/^/$t s$sc r$r: /" "$tmp/run.err" >>"$tmp/wsbench.err"
	win=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
	echo "$t s$sc r$r $out | window ${win}s server ${c0}->${c1} redis ${r0}->${r1} nginx ${n0}->${n1} gets ${g0}->${g1} upstream ${q0}->${q1} load $load" >>"$tmp/results.txt"
	if [ -z "$out" ] || [ "$(json_field "$out" conns_ok)" != "$conns" ] ||
	    [ "$(json_field "$out" conns_dropped)" != 0 ]; then
		note "$t scenario $sc run $r failed or lost connections: ${out:-no output}"
		head -n 5 "$tmp/run.err" >&2
		return 1
	fi
	# Other people's jobs took CPU during the window: do it again.
	oth=$(others_pct "$m0" "$m1" "$(ticks_delta "$a0" "$a1")")
	if [ -n "$quiet" ] && [ "$oth" -ge $((2 * quiet)) ] && [ "$try" -lt 4 ]; then
		note "$t scenario $sc run $r: other processes used $oth% of the CPUs, repeating the run"
		return 2
	fi
	# Per-message figures, microseconds.
	per_msg() {	# ticks0 ticks1 (USER SYS each) -> "total user sys"
		awk -v a="$1" -v b="$2" -v hz="$hz" -v w="$win" \
		    -v rate="$(json_field "$out" msgs_per_s)" 'BEGIN {
		    split(a, x, " "); split(b, y, " ");
		    u = (y[1] - x[1]) / hz / w / rate * 1e6;
		    s = (y[2] - x[2]) / hz / w / rate * 1e6;
		    printf "%.2f %.2f %.2f", u + s, u, s }'
	}
	gcpu=$(per_msg "$c0" "$c1")
	rcpu=$(per_msg "$r0" "$r1")
	ncpu=$(per_msg "$n0" "$n1")
	pcpu=$(per_msg "$p0" "$p1")
	k="$t.$sc"
	res[$k.rate]+=" $(json_field "$out" msgs_per_s)"
	res[$k.p50]+=" $(json_field "$out" p50_ms)"
	res[$k.p99]+=" $(json_field "$out" p99_ms)"
	res[$k.p999]+=" $(json_field "$out" p999_ms)"
	res[$k.cpu]+=" ${gcpu%% *}"
	gu=${gcpu#* }; res[$k.usr]+=" ${gu%% *}"; res[$k.sys]+=" ${gcpu##* }"
	res[$k.rcpu]+=" ${rcpu%% *}"
	res[$k.ncpu]+=" ${ncpu%% *}"
	res[$k.pcpu]+=" ${pcpu%% *}"
	res[$k.busy]+=" $(busy_pct "$m0" "$m1")"
	res[$k.others]+=" $oth"
	res[$k.gets]+=" $(awk -v a="$g0" -v b="$g1" -v w="$win" -v r="$(json_field "$out" msgs_per_s)" 'BEGIN { printf "%.3f", (b - a) / w / r }')"
	res[$k.ups]+=" $(awk -v a="$q0" -v b="$q1" -v w="$win" -v r="$(json_field "$out" msgs_per_s)" 'BEGIN { printf "%.3f", (b - a - 1) / w / r }')"
	res[$k.non2xx]+=" $(( $(json_field "$out" status_4xx) + $(json_field "$out" status_5xx) + $(json_field "$out" status_none) + $(json_field "$out" status_other) + $(json_field "$out" status_1xx) + $(json_field "$out" status_3xx) ))"
	res[$k.unmatched]+=" $(json_field "$out" unmatched)"
	res[$k.load]+=" $load"
	res[$k.ok]=$(( ${res[$k.ok]:-0} + 1 ))
	lag=""
	if [ -n "$l0" ] && [ -n "$l1" ]; then
		lag=$(lag_quantiles "$l0" "$l1")
		res[$k.lag]+="${res[$k.lag]:+/}$(echo "$lag" | awk '{ print $2 " (" $5 " over 1ms)" }')"
		lag="; worker event-loop lag p50 ${lag%% *}, p99/p99.9 $(echo "$lag" | awk '{ print $2 "/" $3 " over " $4 " iterations, " $5 " of them over 1ms" }')"
	fi
	note "$t scenario $sc run $r: $(json_field "$out" msgs_per_s) msgs/s, p50 $(json_field "$out" p50_ms) p99 $(json_field "$out" p99_ms) p99.9 $(json_field "$out" p999_ms) ms, CPU/msg: $t ${gcpu%% *} us, Redis ${rcpu%% *} us, nginx ${ncpu%% *} us${pg_tpid:+, PostgreSQL ${pcpu%% *} us}; machine $(busy_pct "$m0" "$m1")% busy${own_cpu:+ (CPU $own_cpu $(busy_pct "$o0" "$o1")%)}, ${res[$k.others]##* }% by other processes, load before $load$lag"
}

src_rev=$(cd "$here" && git describe --always --dirty 2>/dev/null || echo '?')
note "wsbench $wsbench; $(nproc) CPUs; $runs runs x ${duration}s (+${warmup}s warmup); load now $(loadavg)"
for sc in 1 2; do
	case ",$scenarios," in *,$sc,*) ;; *) continue ;; esac
	for r in $(seq 1 "$runs"); do
		for t in $targets; do
			for try in 1 2 3 4; do
				rc=0
				one_run "$t" "$sc" "$r" "$try" || rc=$?
				[ "$rc" = 2 ] || break
			done
		done
	done
done

# Crashes and errors of the servers.
for t in $targets; do
	if [ "$t" = wsgate ]; then
		n=$(grep -ciE 'exited|signal|fatal|sanitizer|abort' "${log[$t]}" || true)
		[ "$n" = 0 ] || { note "wsgate log has $n lines about exits/signals/errors:"; grep -iE 'exited|signal|fatal|sanitizer|abort' "${log[$t]}" | head -n 5 >&2; }
	else
		[ ! -s "${log[$t]}" ] || { grep -v '^listening' "${log[$t]}" | head -n 5 >&2 || true; }
	fi
done
if grep -q 'not 2xx' "$tmp/wsbench.err" 2>/dev/null; then
	note "replies that were not 2xx (first few):"
	grep 'not 2xx' "$tmp/wsbench.err" | head -n 5 >&2
fi

if [ -n "$pg_tpid" ]; then
	sleep 2	# the last batches
	note "PostgreSQL rows: wsgate $(pq -d wsgate -tA -c 'select count(*) from responses' 2>/dev/null || echo '?'), Node $(pq -d wsgate -tA -c 'select count(*) from responses_node' 2>/dev/null || echo '?')"
fi

# ---- Report ----

med() { median ${res[$1]:-}; }
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'
}
echo
echo "Pipeline benchmark, median of $runs runs ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -r), $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
echo "wsgate $wsgate (built $(date -u -r "$wsgate" '+%Y-%m-%d %H:%M UTC'); source tree at start: $src_rev), $workers workers$( [ -z "$gate_opts" ] || printf ' (%s)' "$(printf '%s' "$gate_opts" | tr '\n' ';')"); ${label[node]:-no Node peer}; Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), $nginx_workers worker(s)"
echo "messages: $size bytes, $tmpl; $conns connections${pg_tpid:+; persisting to PostgreSQL $("$pgbin/postgres" --version | awk '{ print $3 }')}"
echo
echo "| scenario | server | runs ok | msgs/s | p50 ms | p99 ms | p99.9 ms | server CPU us/msg (user+sys) | Redis us/msg | nginx us/msg |${pg_tpid:+ PostgreSQL us/msg |} GETs/msg | upstream req/msg | non-2xx | machine busy % | other processes % | load before |"
echo "|---|---|---|---|---|---|---|---|---|---|${pg_tpid:+---|}---|---|---|---|---|---|"
for sc in 1 2; do
	case ",$scenarios," in *,$sc,*) ;; *) continue ;; esac
	if [ $sc = 1 ]; then name="1: closed loop $conns x $inflight"; else name="2: open loop $rate msgs/s"; fi
	for t in $targets; do
		k="$t.$sc"
		echo "| $name | ${label[$t]} | ${res[$k.ok]:-0} | $(med $k.rate) | $(med $k.p50) | $(med $k.p99) | $(med $k.p999) | $(med $k.cpu) ($(med $k.usr)+$(med $k.sys)) | $(med $k.rcpu) | $(med $k.ncpu) |${pg_tpid:+ $(med $k.pcpu) |} $(med $k.gets) | $(med $k.ups) | $(echo ${res[$k.non2xx]:-} | tr ' ' '+') | $(med $k.busy) | $(echo ${res[$k.others]:-} | tr ' ' '/') | $(echo ${res[$k.load]:-} | tr ' ' '/') |"
	done
done
if [ -n "${res[wsgate.1.lag]:-}${res[wsgate.2.lag]:-}" ]; then
	echo
	echo "wsgate workers' event-loop lag p99 per run (wsgate_event_loop_lag_seconds over the CPU window; bucket upper bounds): scenario 1: ${res[wsgate.1.lag]:-n/a}; scenario 2: ${res[wsgate.2.lag]:-n/a}"
fi
bad=0
for k in "${!res[@]}"; do
	case $k in *.non2xx) for v in ${res[$k]}; do [ "$v" = 0 ] || bad=1; done ;; esac
done
if [ "$bad" = 1 ]; then
	echo
	echo "WARNING: some runs had replies that were not 2xx (column non-2xx; wsgate's 503 'overloaded' is cheap): msgs/s counts every reply, so those runs overstate throughput and understate CPU per message."
fi
if [ "$use_node" = 1 ]; then
	echo
	echo "| scenario | throughput wsgate / Node | CPU per message wsgate / Node | p99 wsgate / Node |"
	echo "|---|---|---|---|"
	for sc in 1 2; do
		case ",$scenarios," in *,$sc,*) ;; *) continue ;; esac
		if [ $sc = 1 ]; then name="1: closed loop $conns x $inflight"; else name="2: open loop $rate msgs/s"; fi
		echo "| $name | $(ratio "$(med wsgate.$sc.rate)" "$(med node.$sc.rate)") | $(ratio "$(med wsgate.$sc.cpu)" "$(med node.$sc.cpu)") | $(ratio "$(med wsgate.$sc.p99)" "$(med node.$sc.p99)") |"
	done
fi
echo
if [ "$keep" = 1 ]; then
	echo "raw results: $tmp/results.txt"
else
	sed 's/^/# /' "$tmp/results.txt"
fi

# ---- Profile (optional) ----

if [ -n "$profile" ]; then
	mkdir -p "$profile"
	profile=$(cd "$profile" && pwd)
	note "profiling wsgate into $profile"
	wk=$(pgrep -P "${root[wsgate]}" | while read -r p; do
		grep -qa worker "/proc/$p/comm" && echo "$p"; done | head -n 1)
	# 1. perf: cpu-clock samples (a software event: this machine's
	#    virtual CPUs expose no hardware counters) with call graphs, on
	#    one worker, while scenario 1 runs.
	if command -v perf >/dev/null && [ -n "$wk" ]; then
		bench $((duration + 60)) -u "${url[wsgate]}" -c "$conns" \
		    -n "$inflight" -s "$size" -m "$tmpl" -d $((duration + 2)) \
		    --json >"$profile/perf-load.json" 2>/dev/null &
		bp=$!
		sleep 1
		timeout -k 5 $((duration + 30)) perf record -e cpu-clock -F 499 \
		    --call-graph dwarf,8192 -p "$wk" -o "$profile/perf.data" \
		    -- sleep "$duration" >"$profile/perf-record.log" 2>&1 || true
		wait "$bp" || true
		perf report -i "$profile/perf.data" --no-children --sort dso \
		    -g none --stdio >"$profile/perf-dso.txt" 2>/dev/null || true
		perf report -i "$profile/perf.data" --no-children \
		    --sort dso,sym -g none --stdio >"$profile/perf-self.txt" 2>/dev/null || true
		perf report -i "$profile/perf.data" --children --sort sym \
		    -g none --stdio >"$profile/perf-children.txt" 2>/dev/null || true
		note "perf: $profile/perf-{dso,self,children}.txt"
	fi
	# 2. System calls per message at saturation: perf stat on the
	#    syscall tracepoints of all workers while scenario 1 runs
	#    (no slowdown, unlike strace), divided by the messages answered
	#    in the same 5 s (wsbench's rate).
	wks=$(pgrep -P "${root[wsgate]}" | while read -r p; do
		grep -qa worker "/proc/$p/comm" && echo "$p"; done | paste -sd, -)
	if command -v perf >/dev/null && [ -n "$wks" ]; then
		bench 60 -u "${url[wsgate]}" -c "$conns" -n "$inflight" \
		    -s "$size" -m "$tmpl" -d 8 --json >"$profile/syscalls-load.json" 2>/dev/null &
		bp=$!
		sleep 2
		timeout -k 5 30 perf stat -e 'syscalls:sys_enter_*' -p "$wks" -x, \
		    -o "$profile/syscalls.csv" -- sleep 5 >/dev/null 2>&1 || true
		wait "$bp" || true
		r=$(json_field "$(cat "$profile/syscalls-load.json")" msgs_per_s)
		awk -F, -v n="$(awk -v r="$r" 'BEGIN { print r * 5 }')" '
		    $3 ~ /sys_enter_/ && $1 + 0 > 0 {
			sub(/.*sys_enter_/, "", $3); c[$3] = $1; t += $1 }
		    END { printf "system calls per message at %d msgs/s (all workers, 5 s): %.2f\n", n / 5, t / n;
			  for (k in c) printf "%-16s %6.2f\n", k, c[k] / n | "sort -k2 -rn" }' \
		    "$profile/syscalls.csv" >"$profile/syscalls.txt" || true
		note "syscalls: $profile/syscalls.txt"
	fi
	# 3. callgrind: a 1-worker wsgate under valgrind at a low rate;
	#    instructions by function, inclusive, user space only.
	if command -v valgrind >/dev/null; then
		gate_start cg 1
		timeout -k 10 600 valgrind --tool=callgrind --trace-children=yes \
		    --callgrind-out-file="$profile/callgrind.out.%p" \
		    "$wsgate" -c "$tmp/cg/wsgate.conf" >"$tmp/cg/valgrind.out" 2>&1 &
		cg_tpid=$!
		started="$started $cg_tpid"
		if wait_pipeline "${url[cg]}" "$cg_tpid"; then
			bench 120 -u "${url[cg]}" -c 20 -n 32 -r "$profile_rate" \
			    -s "$size" -m "$tmpl" -d 20 -w 2 --json \
			    >"$profile/callgrind-load.json" 2>/dev/null || true
		fi
		kill -TERM "$cg_tpid" 2>/dev/null || true
		wait "$cg_tpid" 2>/dev/null || true
		started=${started/ $cg_tpid/}
		for f in "$profile"/callgrind.out.*; do
			[ -s "$f" ] || continue
			callgrind_annotate --inclusive=yes --threshold=100 "$f" >"$f.incl.txt" 2>/dev/null || true
			callgrind_annotate --threshold=100 "$f" >"$f.self.txt" 2>/dev/null || true
		done
		# The worker did almost everything: the largest profile.
		f=$(ls -S "$profile"/callgrind.out.*[0-9] 2>/dev/null | head -n 1)
		msgs=$(json_field "$(cat "$profile/callgrind-load.json" 2>/dev/null)" status_2xx)
		if [ -n "$f" ] && [ -n "$msgs" ] && [ "$msgs" -gt 0 ]; then
			{
			echo "callgrind, 1 worker at $profile_rate msgs/s: $(basename "$f"), $msgs replies"
			echo
			echo "Self instructions by object (per message, share):"
			awk -v n="$msgs" '
			    /PROGRAM TOTALS/ { gsub(/,/, "", $1); tot = $1 }
			    /^ *[0-9,]+ \( *[0-9.]+%\)  .*\]$/ {
				v = $1; gsub(/,/, "", v); o = $NF;
				gsub(/^\[|\]$/, "", o); sub(/.*\//, "", o);
				sub(/\.so.*/, "", o); by[o] += v }
			    END { for (o in by) if (by[o] >= n) printf "  %-22s %9.0f  %5.1f%%\n", o, by[o] / n, 100 * by[o] / tot;
				  printf "  %-22s %9.0f  100.0%%\n", "total", tot / n }' \
			    "$f.self.txt" | sort -k2 -rn
			echo
			echo "Inclusive instructions of selected functions (per message, share):"
			for fn in upstream_post upstream_timeout_cb upstream_io_cb \
			    upstream_check_done curl_easy_init curl_multi_remove_handle \
			    curl_easy_cleanup curl_url_get curl_url_set curl_mvaprintf \
			    curl_mvsnprintf curl_getenv pipeline_message \
			    json_request_parse jsmn_parse json_escape lookup_reply_cb \
			    json_valid edn_to_json redisAsyncCommandArgv \
			    redisProcessCallbacks wsconn_input wsconn_send \
			    conn_flush_all request_finish; do
				awk -v n="$msgs" -v fn="$fn" '
				    /PROGRAM TOTALS/ { gsub(/,/, "", $1); tot = $1 }
				    $0 ~ (":" fn " ") && !seen { v = $1; gsub(/,/, "", v);
					printf "  %-26s %9.0f  %5.1f%%\n", fn, v / n, 100 * v / tot; seen = 1 }' \
				    "$f.incl.txt"
			done
			} >"$profile/callgrind-summary.txt"
		fi
		note "callgrind: $profile/callgrind-summary.txt, $profile/callgrind.out.*"
	fi
fi
