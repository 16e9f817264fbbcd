#!/usr/bin/env bash
#
# Persistence benchmark (issue 5, tests/bench/README.md "Persistence
# benchmark"): the whole request path with the persistence path on
# (worker ring -> SOCK_SEQPACKET -> dbwriter -> batched COPY (or INSERT) into a
# private PostgreSQL) against the same gateway without persistence, same
# Redis (user configs, half EDN, half JSON) and nginx upstream.
#
# Modes, alternated run by run (median of --runs):
#   on        the wsgate under test, PostgreSQL with fsync and
#             synchronous_commit on (the defaults)
#   async     the same binary, a second PostgreSQL with
#             -c synchronous_commit=off (--no-async drops it)
#   off       --wsgate-off: the gateway as it was before persistence
#             (its pg_conninfo is a dummy; its dbwriter only retries)
#
# Each run: closed loop, --conns x --inflight, --warmup then --duration s.
# Reported: msgs/s, p50/p99, rows landed in PostgreSQL per second during
# the window (count(*) at the window's ends), time from the end of the
# load until the last row landed, dbwriter CPU per 1,000 rows, wsgate CPU
# per message (master + workers + dbwriter), PostgreSQL CPU per 1,000
# rows, and ON/OFF throughput ratio.
#
set -eu

usage() {
	cat <<'EOF'
usage: persist.sh --wsgate PATH --wsgate-off PATH [options]
  --wsgate PATH       wsgate with persistence (default $WSGATE_BIN, ./wsgate)
  --wsgate-off PATH   wsgate without persistence: the same commit with
                      worker/persist.c patched off (tests/bench/README.md),
                      or one from before persistence (b87d2e5); without
                      it the "off" mode is skipped
  --wsbench PATH      wsbench binary (default next to this script, then
                      ./tests/bench/wsbench)
  --runs N            runs per mode, median reported (default 3)
  --duration S        measured seconds (default 10)
  --warmup S          load before measuring (default 2)
  --conns N           connections (default 200)
  --inflight N        requests in flight per connection (default 8)
  --size BYTES        message size (default 160)
  --users N           configs seeded in Redis (default 1000)
  --workers N         wsgate workers (default 2)
  --no-async          skip the synchronous_commit=off mode
  --modes LIST        run only these of on,async,off (default: all)
  --max-load L        before each run wait until no other benchmark
                      (pipeline.sh, run.sh, wsbench) runs and the 1-min
                      load is below L (default 1.0) ...
  --load-wait S       ... for at most S seconds (default 40); after that
                      the run goes ahead if other processes used under 10 %
                      of the CPUs over 2 s (the load average still counts
                      our own previous run) and no wsbench but ours runs
                      (a benchmark script may be alive but idle, waiting
                      for us); after S + 150 s it goes ahead anyway --
                      the load and others' CPU share are recorded
  --profile DIR       afterwards, perf record -g the dbwriter and one
                      worker of the "on" gateway under load (if perf works)
  --keep              keep the temp dir
  --set "KEY VALUE"   a wsgate.conf line for both gateways (repeatable),
                      e.g. --set "db_batch_size 2000"
  --gateway-cpus F    run each gateway (master, workers, dbwriter) in a
                      CPU cgroup of its own limited to F CPUs (e.g. 0.6):
                      the gateway, not the machine, sets the pace, as on
                      a host whose clients, upstream and PostgreSQL are
                      other machines (root; cgroup v1 "cpu" or v2 "cpu.max")
  -h, --help          this text
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
wsgate=${WSGATE_BIN:-}
wsgate_off=""
wsbench=${WSBENCH_BIN:-}
runs=3
duration=10
warmup=2
conns=200
inflight=8
size=160
users=1000
workers=2
use_async=1
only_modes="on,async,off"
max_load=1.0
load_wait=40
profile=""
keep=0
extra_conf=""
gateway_cpus=""

while [ $# -gt 0 ]; do
	case $1 in
	--wsgate) wsgate=$2; shift ;;
	--wsgate-off) wsgate_off=$2; shift ;;
	--wsbench) wsbench=$2; shift ;;
	--runs) runs=$2; shift ;;
	--duration) duration=$2; shift ;;
	--warmup) warmup=$2; shift ;;
	--conns) conns=$2; shift ;;
	--inflight) inflight=$2; shift ;;
	--size) size=$2; shift ;;
	--users) users=$2; shift ;;
	--workers) workers=$2; shift ;;
	--no-async) use_async=0 ;;
	--modes) only_modes=$2; shift ;;
	--max-load) max_load=$2; shift ;;
	--load-wait) load_wait=$2; shift ;;
	--profile) profile=$2; shift ;;
	--keep) keep=1 ;;
	--set) extra_conf+="$2"$'\n'; shift ;;
	--gateway-cpus) gateway_cpus=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "persist.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

note() { echo "$prog: $(date +%H:%M:%S) $*" >&2; }

need_whole runs duration warmup conns inflight size users workers load_wait
[ "$duration" -ge 3 ] || die "--duration must be >= 3"
if [ -n "$gateway_cpus" ]; then
	awk -v f="$gateway_cpus" 'BEGIN { exit !(f ~ /^[0-9]*\.?[0-9]+$/ && f >= 0.05) }' ||
		die "--gateway-cpus needs a number of CPUs >= 0.05, not '$gateway_cpus'"
	[ "$(id -u)" = 0 ] || die "--gateway-cpus needs root (it creates cgroups)"
fi

# ---- Tools ----

for c in prlimit timeout redis-server redis-cli curl psql; do
	command -v "$c" >/dev/null || die "$c is required"
done
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || die "nginx is required (apt-get install nginx-light)"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
pg_bindir=""
for d in "$(dirname "$(readlink -f "$(command -v postgres 2>/dev/null || echo /nonexistent)")")" \
    /usr/lib/postgresql/*/bin; do
	if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then pg_bindir=$d; break; fi
done
[ -n "$pg_bindir" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"

[ -n "$wsgate" ] || wsgate=./wsgate
[ -x "$wsgate" ] || die "wsgate not found: pass --wsgate"
[ -z "$wsgate_off" ] || [ -x "$wsgate_off" ] || die "--wsgate-off $wsgate_off is not executable"
if [ -z "$wsbench" ]; then
	for w in "$here/wsbench" ./tests/bench/wsbench; do
		if [ -x "$w" ]; then wsbench=$w; break; fi
	done
fi
[ -n "$wsbench" ] && [ -x "$wsbench" ] || die "wsbench not found: pass --wsbench"
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
wsgate=$(abspath "$wsgate")
wsbench=$(abspath "$wsbench")
[ -z "$wsgate_off" ] || wsgate_off=$(abspath "$wsgate_off")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/persistbench.XXXXXX")
chmod 755 "$tmp"	# nginx workers run as nobody, PostgreSQL as postgres
started=""		# timeout wrappers of the services, in start order
pg_pids=""		# postmasters (stopped first with SIGINT: fast shutdown)

cleanup() {
	local p
	# Gateways and load first, then PostgreSQL, then the rest.
	for p in $gate_tpids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $gate_tpids; do wait "$p" 2>/dev/null || true; done
	for p in $pg_pids; do kill -INT "$p" 2>/dev/null || true; done
	for p in $started; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $started; do wait "$p" 2>/dev/null || true; done
	for p in $cgroups; do rmdir "$p" 2>/dev/null || true; done
	if [ "$keep" = 1 ]; then
		note "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
gate_tpids=""
cgroups=""		# CPU cgroups made for --gateway-cpus, removed on exit
trap cleanup EXIT
trap 'exit 130' INT TERM

total_limit=$(( runs * 3 * (duration + warmup + 60) + 900 ))
[ -z "$profile" ] || total_limit=$((total_limit + 300))

bench() {	# seconds, wsbench args...
	local limit=$1; shift
	prlimit --as=$(( ${WSBENCH_VMEM_KB:-4194304} * 1024 )) \
	    timeout -k 5 "$limit" "$wsbench" "$@"
}

cpu_ticks() {	# PIDs -> "USER SYS" clock ticks (no fork per PID)
	local p u=0 s=0 st
	for p in "$@"; do
		read -r st 2>/dev/null <"/proc/$p/stat" || continue
		st=${st##*) }
		set -- $st
		u=$((u + ${12})); s=$((s + ${13}))
	done
	echo "$u $s"
}
hz=$(getconf CLK_TCK)
sleep_until() {	# ns since the epoch
	local d
	d=$(( $1 - $(now_ns) ))
	[ "$d" -le 0 ] || sleep "$((d / 1000000000)).$(printf %09d $((d % 1000000000)))"
}

# Our process trees (services and this script's children).
ours() {
	local p
	for p in $started $gate_tpids $$; do tree "$p"; done
}
# Our ancestors (the shell that started us may name wsbench in its
# command line).
ancestors() {
	local p=$$
	while [ "$p" -gt 1 ] 2>/dev/null; do
		echo "$p"
		p=$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null || echo 1)
	done
}
# Other people's benchmarks: pipeline.sh, run.sh, wsbench not ours.
foreign_bench() {
	local mine p
	mine=" $(echo ${ours_cache:-$(ours)}) $(ancestors | tr '\n' ' ') "
	for p in $(pgrep -f 'pipeline\.sh|run\.sh|wsbench' 2>/dev/null || true); do
		case $mine in *" $p "*) continue ;; esac
		[ -r "/proc/$p/cmdline" ] || continue
		# Our own command substitutions (this one among them) are
		# copies of this script, its command line included.
		descendant "$p" && continue
		echo "$p"
	done
}
# 0 if process $1 is a descendant of this script.
descendant() {
	local p=$1 n
	for n in 1 2 3 4 5 6; do
		p=$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null) || return 1
		[ -n "$p" ] && [ "$p" -gt 1 ] || return 1
		[ "$p" != $$ ] || return 0
	done
	return 1
}

last_others=""
ours_cache=""
wait_quiet() {
	local waited=0 f l m0 m1 a0 a1 p o
	p=$(ours)	# stable between runs; one pgrep per process is slow
	ours_cache=$p
	while :; do
		f=$(foreign_bench)
		l=$(loadavg)
		m0=$(cpu_line); a0=$(cpu_ticks $p)
		sleep 2
		m1=$(cpu_line); a1=$(cpu_ticks $p)
		o=$(others_pct "$m0" "$m1" "$(ticks_delta "$a0" "$a1")")
		last_others=$o
		if [ -z "$f" ]; then
			awk -v l="$l" -v m="$max_load" 'BEGIN { exit !(l < m) }' && return 0
			if [ "$waited" -ge "$load_wait" ] && [ "$o" -lt 10 ]; then
				note "load $l after ${waited}s, other processes ${o}% of the CPUs: going ahead"
				return 0
			fi
		elif [ "$waited" -ge "$load_wait" ] && [ "$o" -lt 10 ] &&
		    [ -z "$(for q in $f; do tr '\0' '\n' 2>/dev/null <"/proc/$q/cmdline" | head -n 1 | grep 'wsbench$'; done)" ]; then
			# Another engineer's script (pipeline.sh's --quiet waits
			# for us in turn) is alive but idle: no wsbench of
			# theirs runs and their processes use under 10 %.
			note "other benchmark scripts alive but idle (no wsbench of theirs, others ${o}% of the CPUs, load $l): going ahead"
			return 0
		fi
		if [ "$waited" -ge $((load_wait + 150)) ]; then
			note "still busy after ${waited}s (load $l, others $o%, other benchmarks: $(echo $f)): going ahead"
			return 0
		fi
		[ -z "$f" ] || [ $((waited % 30)) -ne 0 ] ||
			note "waiting: other benchmarks running: $(for q in $f; do tr '\0' ' ' 2>/dev/null <"/proc/$q/cmdline" | cut -c1-60; echo; done | sort -u | paste -sd';')"
		sleep 1
		waited=$((waited + 3))
	done
}

# ---- Redis (as pipeline.sh) ----

redis_port=$(free_port) || die "no free port"
mkdir -p "$tmp/redis"
prlimit --as=$((2097152 * 1024)) timeout -k 5 "$total_limit" \
    redis-server --bind 127.0.0.1 --port "$redis_port" --save "" \
    --appendonly no --dir "$tmp/redis" --maxmemory 256mb \
    --protected-mode yes --daemonize no --loglevel warning \
    >"$tmp/redis/redis.log" 2>&1 &
started="$started $!"
redis_tpid=$!
for i in $(seq 1 50); do
	rcli ping >/dev/null 2>&1 && break
	kill -0 "$redis_tpid" 2>/dev/null || { cat "$tmp/redis/redis.log" >&2; die "redis-server exited"; }
	sleep 0.1
done
rcli ping >/dev/null 2>&1 || die "Redis did not answer on 127.0.0.1:$redis_port"
seed >"$tmp/redis/seed.resp"
rcli --pipe <"$tmp/redis/seed.resp" >"$tmp/redis/seed.out" 2>&1 ||
	{ cat "$tmp/redis/seed.out" >&2; die "seeding Redis failed"; }
[ "$(rcli dbsize)" = "$users" ] || die "Redis holds $(rcli dbsize) keys, expected $users"
note "Redis on 127.0.0.1:$redis_port, $users configs"

# ---- nginx (as pipeline.sh: one worker, every POST -> 200 small JSON) ----

nginx_port=$(free_port) || die "no free port"
nginx_start 1
note "nginx on $upstream_url"

# ---- PostgreSQL: initdb in the temp dir, as user postgres when root ----

as_pg=()
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user"
	command -v setpriv >/dev/null || die "setpriv (util-linux) is required as root"
	as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --reset-env)
fi
declare -A pg_port pg_pid pg_conn
pg_start() {	# name extra-postgres-args...
	local name=$1 dir=$tmp/pg-$1 port i
	shift
	port=$(free_port) || die "no free port"
	mkdir -p "$dir"
	[ "$(id -u)" != 0 ] || chown postgres:postgres "$dir"
	(cd "$dir" && timeout 120 "${as_pg[@]}" env LC_ALL=C HOME="$dir" \
	    "$pg_bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
	    --locale=C >"$dir/initdb.log" 2>&1) ||
		{ tail -n 20 "$dir/initdb.log" >&2; die "initdb failed"; }
	(cd "$dir" && exec prlimit --as=$((4194304 * 1024)) timeout -k 5 "$total_limit" \
	    "${as_pg[@]}" env LC_ALL=C HOME="$dir" "$pg_bindir/postgres" \
	    -D "$dir/data" -k "$dir" -p "$port" \
	    -c listen_addresses=127.0.0.1 "$@" >"$dir/postgres.log" 2>&1) &
	started="$started $!"
	for i in $(seq 1 100); do
		psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'SELECT 1' \
		    >/dev/null 2>&1 && break
		sleep 0.1
	done
	psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
	    -c 'CREATE DATABASE wsgate' >/dev/null ||
		{ tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL $name did not start"; }
	pg_pid[$name]=$(head -n 1 "$dir/data/postmaster.pid")
	pg_pids="$pg_pids ${pg_pid[$name]}"
	pg_port[$name]=$port
	pg_conn[$name]="host=127.0.0.1 port=$port user=postgres dbname=wsgate connect_timeout=5"
	note "PostgreSQL $name ($("$pg_bindir/postgres" --version | sed 's/.*) //')) pid ${pg_pid[$name]} on 127.0.0.1:$port $*"
}
sql() {	# name query -> unaligned tuples
	PGCONNECT_TIMEOUT=5 timeout 30 psql -X -q -A -t -h 127.0.0.1 -p "${pg_port[$1]}" \
	    -U postgres -d wsgate -v ON_ERROR_STOP=1 -c "$2"
}
pg_start on
[ "$use_async" = 0 ] || pg_start async -c synchronous_commit=off

# ---- Gateways ----

tmpl='{"id":{seq},"user-id":"u{conn}","payload":{"q":"{pad}","lang":"en","page":1}}'
wait_pipeline() {	# url pid
	local u=$1 pid=$2 i out
	for i in $(seq 1 60); do
		out=$(bench 10 -u "$u" -c 2 -n 1 -d 0.3 -t 2 -s "$size" \
		    -m "$tmpl" --json 2>/dev/null) || true
		if [ -n "$out" ] && [ "$(json_field "$out" status_2xx)" != 0 ] &&
		    [ -n "$(json_field "$out" status_2xx)" ]; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.5
	done
	return 1
}

# A CPU cgroup limited to --gateway-cpus (period 10 ms, so that a
# throttled gateway waits milliseconds, not a tenth of a second).
cpu_cgroup() {	# mode -> $cg (not in $(...): it records the cgroup)
	local d quota
	quota=$(awk -v f="$gateway_cpus" 'BEGIN { printf "%d", f * 10000 }')
	if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then	# v1
		d=/sys/fs/cgroup/cpu/wsgate-persistbench-$$-$1
		mkdir -p "$d" && echo 10000 >"$d/cpu.cfs_period_us" &&
		    echo "$quota" >"$d/cpu.cfs_quota_us" || die "cannot set up cgroup $d"
	elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then	# v2
		grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control ||
		    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control ||
		    die "cannot enable the cpu controller in /sys/fs/cgroup"
		d=/sys/fs/cgroup/wsgate-persistbench-$$-$1
		mkdir -p "$d" && echo "$quota 10000" >"$d/cpu.max" || die "cannot set up cgroup $d"
	else
		die "--gateway-cpus: no cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max)"
	fi
	cgroups="$d $cgroups"
	cg=$d
}

declare -A url root gtpid glog
gate_start() {	# mode binary pg_conninfo [attempt]
	local m=$1 bin=$2 conn=$3 dir=$tmp/gate-$1 port aport try=${4:-1} cg
	mkdir -p "$dir/run" "$dir/spool"
	port=$(free_port) || die "no free port"
	aport=$(free_port) || die "no free port"
	cat >"$dir/wsgate.conf" <<EOF
# Written by tests/bench/persist.sh (mode $m).
listen 127.0.0.1:$port
admin_listen 127.0.0.1:$aport
workers $workers
dbwriters 1
ws_path /ws
redis_host 127.0.0.1
redis_port $redis_port
upstream_url $upstream_url
pg_conninfo $conn
runtime_dir $dir/run
spool_dir $dir/spool
pidfile $dir/wsgate.pid
log_file $dir/wsgate.log
$extra_conf
EOF
	cg=""
	[ -z "$gateway_cpus" ] || cpu_cgroup "$m"
	# The subshell joins the cgroup, then becomes the wrapper: wsgate and
	# every child it forks are in it.
	( [ -z "$cg" ] || echo "$BASHPID" >"$cg/cgroup.procs"
	  exec prlimit --as=$((8388608 * 1024)) timeout -k 10 "$total_limit" \
	    "$bin" -c "$dir/wsgate.conf" ) >"$dir/wsgate.out" 2>&1 &
	gtpid[$m]=$!
	gate_tpids="$gate_tpids $!"
	url[$m]="ws://127.0.0.1:$port/ws"
	glog[$m]=$dir/wsgate.log
	if ! wait_pipeline "${url[$m]}" "${gtpid[$m]}"; then
		if [ "$try" -lt 3 ] && grep -q 'Address already in use' "$dir/wsgate.log" 2>/dev/null; then
			# Someone took a port between free_port and bind.
			wait "${gtpid[$m]}" 2>/dev/null || true
			gate_tpids=${gate_tpids/ ${gtpid[$m]}/}
			rm -f "$dir/wsgate.log"
			gate_start "$m" "$bin" "$conn" $((try + 1))
			return
		fi
		tail -n 20 "$dir/wsgate.out" "$dir/wsgate.log" >&2 2>/dev/null || true
		die "wsgate ($m) did not answer a pipeline request on ${url[$m]}"
	fi
	root[$m]=$(pgrep -P "${gtpid[$m]}" | head -n 1)
	note "wsgate $m: master ${root[$m]} ($bin), ${url[$m]}, children: $(pgrep -P "${root[$m]}" | while read -r p; do printf '%s=%s ' "$p" "$(cat /proc/$p/comm)"; done)"
}
by_comm() {	# root comm -> child PIDs with that name
	pgrep -P "$1" | while read -r p; do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p"
	done
	return 0
}

modes="on"
gate_start on "$wsgate" "${pg_conn[on]}"
if [ "$use_async" = 1 ]; then
	gate_start async "$wsgate" "${pg_conn[async]}"
	modes="$modes async"
fi
if [ -n "$wsgate_off" ]; then
	gate_start off "$wsgate_off" "host=127.0.0.1 port=9 dbname=x connect_timeout=1"
	modes="$modes off"
fi
# The table exists once the dbwriter connected (db_create_table on).
for m in on async; do
	case " $modes " in *" $m "*) ;; *) continue ;; esac
	for i in $(seq 1 50); do
		sql "$m" "SELECT 1 FROM responses LIMIT 1" >/dev/null 2>&1 && break
		sleep 0.2
	done
	sql "$m" "SELECT count(*) FROM responses" >/dev/null || die "no table responses in PostgreSQL $m"
done

# ---- Runs ----

declare -A res
printf '%s\n' "# raw: mode run | wsbench json | measurements" >"$tmp/results.txt"


one_run() {	# mode run
	local m=$1 r=$2 out bpid t_start w0 w1 win all gp dbp pgp k
	local c0 c1 d0 d1 p0 p1 m0 m1 a0 a1 n0="" n1="" tn0="" tn1="" oth load rate
	local expected final t_stop t_land last lastc spooled
	wait_quiet
	load=$(loadavg)
	gp=$(tree "${root[$m]}")
	dbp=$(by_comm "${root[$m]}" wsgate-dbwriter)
	pgp=""
	[ "$m" = off ] || pgp=$(tree "${pg_pid[$m]}")
	[ "$m" = off ] || sql "$m" "TRUNCATE responses" >/dev/null
	spooled=$(grep -c 'batch spooled' "${glog[$m]}" 2>/dev/null || true)
	# Everything we started, for the "other CPU" column: listed before
	# the load (a pgrep per process is slow on a saturated machine).
	all="$(ours) $(pgrep -f "^$wsbench " 2>/dev/null | tr '\n' ' ')"
	t_start=$(now_ns)
	bench $((duration + warmup + 60)) -u "${url[$m]}" -c "$conns" -n "$inflight" \
	    -s "$size" -m "$tmpl" -d "$duration" -w "$warmup" --json \
	    >"$tmp/run.json" 2>"$tmp/run.err" &
	bpid=$!
	# The window: from warmup + 0.5 s to warmup + duration - 0.5 s
	# after wsbench started, by the clock (so that slow sampling on a
	# busy machine does not push its end past the load's).
	sleep_until $((t_start + (warmup * 1000 + 500) * 1000000))
	# wsbench is the child of the timeout wrapper $bpid (no pgrep:
	# forks are slow on a saturated machine).
	read -r k 2>/dev/null <"/proc/$bpid/task/$bpid/children" || k=""
	all="$all $bpid $k"
	a0=$(cpu_ticks $all); m0=$(cpu_line)
	w0=$(now_ns)
	c0=$(cpu_ticks $gp); d0=$(cpu_ticks $dbp); p0=$(cpu_ticks $pgp)
	sleep_until $((t_start + ((warmup + duration) * 1000 - 500) * 1000000))
	c1=$(cpu_ticks $gp); d1=$(cpu_ticks $dbp); p1=$(cpu_ticks $pgp)
	w1=$(now_ns)
	a1=$(cpu_ticks $all); m1=$(cpu_line)
	wait "$bpid" || true
	t_stop=$(now_ns)
	out=$(cat "$tmp/run.json")
	sed "s/^/$m r$r: /" "$tmp/run.err" >>"$tmp/wsbench.err"
	if [ -z "$out" ] || [ "$(json_field "$out" conns_ok)" != "$conns" ] ||
	    [ "$(json_field "$out" conns_dropped)" != 0 ]; then
		note "$m run $r failed or lost connections: ${out:-no output}"
		head -n 5 "$tmp/run.err" >&2
		return 1
	fi
	rate=$(json_field "$out" msgs_per_s)
	win=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
	oth=$(others_pct "$m0" "$m1" "$(ticks_delta "$a0" "$a1")")
	res[$m.rate]+=" $rate"
	# Replies that were 2xx, per second: a full ring answers 503
	# "overloaded" in microseconds, which would inflate msgs/s.  wsbench's
	# status counts cover the whole run (warmup included): scale.
	res[$m.ok2xx]+=" $(awk -v r="$rate" -v a="$(json_field "$out" status_2xx)" -v b="$(json_field "$out" received)" -v w="$(json_field "$out" status_5xx)" -v x="$(json_field "$out" status_4xx)" 'BEGIN { t = a + w + x; printf "%.1f", (t > 0 ? r * a / t : 0) }')"
	res[$m.p50]+=" $(json_field "$out" p50_ms)"
	res[$m.p99]+=" $(json_field "$out" p99_ms)"
	res[$m.cpu]+=" $(awk -v t="$(ticks_delta "$c0" "$c1")" -v hz="$hz" -v w="$win" -v r="$rate" 'BEGIN { printf "%.2f", t / hz / w / r * 1e6 }')"
	res[$m.non2xx]+=" $(( $(json_field "$out" status_4xx) + $(json_field "$out" status_5xx) + $(json_field "$out" status_none) + $(json_field "$out" status_other) + $(json_field "$out" status_1xx) + $(json_field "$out" status_3xx) ))"
	res[$m.load]+=" $load"
	res[$m.others]+=" $oth"
	res[$m.busy]+=" $(busy_pct "$m0" "$m1")"
	res[$m.ok]=$(( ${res[$m.ok]:-0} + 1 ))
	local extra=""
	if [ "$m" != off ]; then
		# Every 2xx reply received (warmup included) is a row; requests
		# in flight when wsbench closed may add rows for replies it
		# never read.  Poll until the count stops changing for 1 s.
		expected=$(json_field "$out" status_2xx)
		last=-1; lastc=$t_stop; t_land=$t_stop
		while :; do
			final=$(sql "$m" "SELECT count(*) FROM responses")
			if [ "$final" != "$last" ]; then
				last=$final; lastc=$(now_ns); t_land=$lastc
			elif [ $(( $(now_ns) - lastc )) -gt 1000000000 ] && [ "$final" -ge "$expected" ]; then
				break
			fi
			if [ $(( $(now_ns) - t_stop )) -gt 60000000000 ]; then
				note "$m run $r: rows still missing 60 s after the load: $final of $expected"
				break
			fi
			sleep 0.02
		done
		local rows_s land_s dbk pgk dups
		# Rows that landed during the CPU window: created_at is now()
		# of the dbwriter's INSERT transaction, a few ms before its
		# commit.  Counted afterwards, so that no psql competes for
		# the CPUs during the window.
		n0=0; tn0=$w0; tn1=$w1
		n1=$(sql "$m" "SELECT count(*) FROM responses WHERE created_at >= to_timestamp($w0 / 1e9) AND created_at < to_timestamp($w1 / 1e9)")
		rows_s=$(awk -v a="$n0" -v b="$n1" -v x="$tn0" -v y="$tn1" 'BEGIN { printf "%.0f", (b - a) / ((y - x) / 1e9) }')
		land_s=$(awk -v a="$t_stop" -v b="$t_land" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
		dbk=$(awk -v t="$(ticks_delta "$d0" "$d1")" -v hz="$hz" -v w="$win" -v a="$n0" -v b="$n1" -v x="$tn0" -v y="$tn1" 'BEGIN { rows = (b - a) / ((y - x) / 1e9) * w; printf "%.2f", t / hz / rows * 1000 * 1000 }')
		pgk=$(awk -v t="$(ticks_delta "$p0" "$p1")" -v hz="$hz" -v w="$win" -v a="$n0" -v b="$n1" -v x="$tn0" -v y="$tn1" 'BEGIN { rows = (b - a) / ((y - x) / 1e9) * w; printf "%.1f", t / hz / rows * 1000 * 1000 }')
		echo "$m r$r rows per second of created_at (t = s since wsbench started): $(sql "$m" "SELECT round((extract(epoch from created_at) - $t_start / 1e9)::numeric, 0) AS s, count(*) FROM responses GROUP BY 1 ORDER BY 1" | tr '\n' ' ')" >>"$tmp/results.txt"
		dups=$(sql "$m" "SELECT count(*) - count(DISTINCT client_id || '/' || user_id) FROM responses")
		spooled=$(( $(grep -c 'batch spooled' "${glog[$m]}" 2>/dev/null || true) - spooled ))
		res[$m.rows]+=" $rows_s"
		res[$m.land]+=" $land_s"
		res[$m.dbk]+=" $dbk"
		res[$m.pgk]+=" $pgk"
		res[$m.extra]+=" $((final - expected))"
		res[$m.dups]+=" $dups"
		res[$m.spooled]+=" $spooled"
		res[$m.ratio]+=" $(awk -v a="$rows_s" -v b="$rate" 'BEGIN { printf "%.3f", a / b }')"
		extra=", rows/s $rows_s (rows with created_at in the CPU window), rows $final for $expected 2xx replies (+$((final - expected)), duplicate client ids $dups), last row landed ${land_s}s after the load, dbwriter ${dbk} ms CPU/1000 rows, PostgreSQL ${pgk} ms CPU/1000 rows, batches spooled $spooled"
	fi
	echo "$m r$r $out | window ${win}s gate ${c0}->${c1} dbwriter ${d0}->${d1} pg ${p0}->${p1} rows ${n0:-}@${tn0:-}->${n1:-}@${tn1:-} final ${final:-} land ${land_s:-} load $load others $oth" >>"$tmp/results.txt"
	note "$m run $r: $rate msgs/s, p50 $(json_field "$out" p50_ms) p99 $(json_field "$out" p99_ms) ms, wsgate ${res[$m.cpu]##* } us CPU/msg$extra; load before $load, machine $(busy_pct "$m0" "$m1")% busy, other processes $oth%"
}

note "$(nproc) CPUs, $runs runs x ${duration}s (+${warmup}s warmup), $conns x $inflight, modes: $modes; load now $(loadavg)"
for r in $(seq 1 "$runs"); do
	for m in $modes; do
		case ",$only_modes," in *,$m,*) ;; *) continue ;; esac
		one_run "$m" "$r" || true
	done
done

# Errors in the gateways' logs.
for m in $modes; do
	n=$(grep -ciE 'exited|signal|fatal|abort|warn|error' "${glog[$m]}" || true)
	[ "$n" = 0 ] || { note "wsgate $m log: $n lines with warn/error/exit/signal, first few:"; grep -iE 'exited|signal|fatal|abort|warn|error' "${glog[$m]}" | head -n 5 >&2; }
done
if grep -q 'not 2xx' "$tmp/wsbench.err" 2>/dev/null; then
	note "replies that were not 2xx (first few):"
	grep 'not 2xx' "$tmp/wsbench.err" | head -n 5 >&2
fi

# ---- Report ----

med() { median ${res[$1]:-}; }
list() { echo ${res[$1]:-} | tr ' ' '/'; }
label() {
	case $1 in
	on) echo "ON (fsync, synchronous_commit on)" ;;
	async) echo "ON (synchronous_commit=off)" ;;
	off) echo "OFF (--wsgate-off, no persistence)" ;;
	esac
}
echo
echo "Persistence benchmark, median of $runs runs ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(uname -r), $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
echo "wsgate $wsgate (source tree: $(cd "$here" && git describe --always --dirty 2>/dev/null || echo '?')); off: ${wsgate_off:-none}; $workers workers, 1 dbwriter${gateway_cpus:+ (each gateway in a cgroup of $gateway_cpus CPUs)}, other keys at their defaults${extra_conf:+ but: $(echo "$extra_conf" | sed '/^$/d' | paste -sd, -)}; PostgreSQL $("$pg_bindir/postgres" --version | sed 's/.*) //') (fsync on; data dir on $(df -T "$tmp" | awk 'NR == 2 { print $2 }')); Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///')"
echo "closed loop $conns x $inflight, ${size}-byte messages, ${warmup}s warmup + ${duration}s"
echo
echo "| mode | runs ok | msgs/s | 2xx msgs/s | p50 ms | p99 ms | wsgate CPU us/msg | rows/s in PostgreSQL | last row landed after load, s | dbwriter CPU ms / 1000 rows | PostgreSQL CPU ms / 1000 rows | extra rows (replies not read) | duplicates | batches spooled | non-2xx | load before | machine busy % | other % |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for m in $modes; do
	echo "| $(label "$m") | ${res[$m.ok]:-0} | $(med $m.rate) | $(med $m.ok2xx) | $(med $m.p50) | $(med $m.p99) | $(med $m.cpu) | $(med $m.rows) | $(med $m.land) | $(med $m.dbk) | $(med $m.pgk) | $(list $m.extra) | $(list $m.dups) | $(list $m.spooled) | $(list $m.non2xx) | $(list $m.load) | $(list $m.busy) | $(list $m.others) |"
done
echo
echo "msgs/s per run: $(for m in $modes; do printf '%s %s; ' "$m" "$(list $m.rate)"; done)"
if [ -n "$wsgate_off" ]; then
	for m in on async; do
		case " $modes " in *" $m "*) ;; *) continue ;; esac
		awk -v a="$(med $m.ok2xx)" -v b="$(med off.ok2xx)" -v m="$(label $m)" 'BEGIN {
		    if (a + 0 > 0 && b + 0 > 0) printf "2xx throughput %s / OFF: %.3f (persistence costs %.1f%%: %s the 15%% target)\n", m, a / b, 100 * (1 - a / b), (1 - a / b < 0.15) ? "within" : "NOT within" }'
	done
fi
echo
sed 's/^/# /' "$tmp/results.txt"

# ---- Profile (optional) ----

if [ -n "$profile" ]; then
	mkdir -p "$profile"
	profile=$(cd "$profile" && pwd)
	if command -v perf >/dev/null && perf stat -e instructions true >/dev/null 2>&1 ||
	    perf stat -e cpu-clock true >/dev/null 2>&1; then
		dbp=$(by_comm "${root[on]}" wsgate-dbwriter | head -n 1)
		wk=$(by_comm "${root[on]}" wsgate-worker | head -n 1)
		bench $((duration + 60)) -u "${url[on]}" -c "$conns" -n "$inflight" \
		    -s "$size" -m "$tmpl" -d $((duration + 2)) --json \
		    >"$profile/perf-load.json" 2>/dev/null &
		bp=$!
		sleep 1
		timeout -k 5 $((duration + 30)) perf record -e cpu-clock -F 999 -g \
		    -p "$dbp,$wk" -o "$profile/perf.data" -- sleep "$duration" \
		    >"$profile/perf-record.log" 2>&1 || true
		wait "$bp" || true
		for p in "$dbp" "$wk"; do
			perf report -i "$profile/perf.data" --pid "$p" --no-children \
			    --sort dso,sym -g none --stdio >"$profile/perf-self.$p.txt" 2>/dev/null || true
			perf report -i "$profile/perf.data" --pid "$p" --children \
			    --sort sym -g none --stdio >"$profile/perf-children.$p.txt" 2>/dev/null || true
		done
		note "perf (dbwriter $dbp, worker $wk): $profile/perf-*.txt"
	else
		note "perf does not work here: no profile"
	fi
fi
