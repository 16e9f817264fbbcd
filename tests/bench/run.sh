#!/usr/bin/env bash
#
# Runs the echo benchmarks of tests/bench/README.md with wsbench and prints
# the median of each: (1) 1000 connections x 16 in flight, 64-byte
# messages, (2) 10 connections x 64 in flight, (3) wsgate RSS per idle
# connection.  Starts its own wsgate (WSGATE_BIN, config in a temp dir)
# unless --url names a running echo endpoint.
#
set -eu

usage() {
	cat <<'EOF'
usage: run.sh [options]
  --url URL           benchmark a running echo endpoint instead of starting wsgate
                      (on loopback: scenario 3 binds 127.0.0.x source addresses)
  --pids "PID ..."    with --url: processes whose RSS scenario 3 sums
                      (without it, scenario 3 is skipped for --url)
  --wsgate PATH       wsgate binary (default $WSGATE_BIN, then ./wsgate)
  --wsbench PATH      wsbench binary (default $WSBENCH_BIN, then next to this
                      script, then $WSGATE_BUILDDIR/tests/bench/wsbench)
  --scenarios LIST    comma-separated subset of 1,2,3 (default 1,2,3)
  --runs N            runs per scenario, the median is reported (default 3)
  --duration S        measured seconds per load run (default 10)
  --warmup S          warmup seconds per load run (default 2)
  --workers N         wsgate workers for scenarios 1 and 2 (default 2)
  --idle-conns N      connections held in scenario 3 (default 50000)
  --idle-workers N    wsgate workers in scenario 3 (default ceil(N / 4000), at least 2)
  --idle-settle S     seconds between "all established" and measuring (default 5)
  --compare-url URL   also run scenarios 1 and 2 against this echo server
                      (same tool, same run) and print the ratio
  --bun PATH          start Bun's WebSocket echo server with this bun binary
                      and use it as --compare-url
  --keep              keep the temp dir (configs, logs, raw JSON)
  -h, --help          this text
Environment: WSBENCH_VMEM_KB / WSGATE_VMEM_KB address-space limits
(default 4194304 / 8388608 KiB; not applied to ASan binaries).
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
url=""
pids=""
wsgate=${WSGATE_BIN:-}
wsbench=${WSBENCH_BIN:-}
scenarios="1,2,3"
runs=3
duration=10
warmup=2
workers=2
idle_conns=50000
idle_workers=0
idle_settle=5
compare_url=""
bun=""
keep=0

while [ $# -gt 0 ]; do
	case $1 in
	--url) url=$2; shift ;;
	--pids) pids=$2; shift ;;
	--wsgate) wsgate=$2; shift ;;
	--wsbench) wsbench=$2; shift ;;
	--scenarios) scenarios=$2; shift ;;
	--runs) runs=$2; shift ;;
	--duration) duration=$2; shift ;;
	--warmup) warmup=$2; shift ;;
	--workers) workers=$2; shift ;;
	--idle-conns) idle_conns=$2; shift ;;
	--idle-workers) idle_workers=$2; shift ;;
	--idle-settle) idle_settle=$2; shift ;;
	--compare-url) compare_url=$2; shift ;;
	--bun) bun=$2; shift ;;
	--keep) keep=1 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

note() { echo "$prog: $*" >&2; }

need_whole runs duration warmup workers idle_conns idle_workers idle_settle
[ "$runs" -ge 1 ] || die "--runs must be at least 1"
[ "$duration" -ge 1 ] || die "--duration must be at least 1"
[ "$idle_conns" -ge 1 ] || die "--idle-conns must be at least 1"

if [ -z "$wsbench" ]; then
	for w in "$here/wsbench" "${WSGATE_BUILDDIR:-.}/tests/bench/wsbench"; do
		if [ -x "$w" ]; then wsbench=$w; break; fi
	done
fi
[ -n "$wsbench" ] && [ -x "$wsbench" ] ||
	die "wsbench not found: build it with 'make tests/bench/wsbench' and pass --wsbench or set WSBENCH_BIN"
if [ -z "$url" ]; then
	[ -n "$wsgate" ] || wsgate=./wsgate
	[ -x "$wsgate" ] || die "wsgate not found at '$wsgate': pass --wsgate, set WSGATE_BIN, or use --url"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsbench.XXXXXX")
started=""		# PIDs this script started (timeout wrappers), killed on exit

trap cleanup_started EXIT
trap 'exit 130' INT TERM

command -v prlimit >/dev/null || die "prlimit (util-linux) is required"

# Address-space limit in bytes for prlimit --as, except for ASan builds
# (they reserve terabytes of address space).
vlimit() {
	local bin=$1 kb=$2
	if ldd "$bin" 2>/dev/null | grep -q libasan; then
		echo unlimited
	else
		echo $((kb * 1024))
	fi
}
wsbench_as=$(vlimit "$wsbench" "${WSBENCH_VMEM_KB:-4194304}")

# wsbench bounded in time and memory; arguments pass through.  Background
# runs spell the same command out, so that $! is the timeout process
# (prlimit execs it), which forwards SIGTERM to wsbench.
bench() {
	local limit=$1; shift
	prlimit --as="$wsbench_as" timeout -k 5 "$limit" "$wsbench" "$@"
}

# Waits until a WebSocket echo round trip to $1 succeeds; gives up early
# if process $2 (when given) has exited.
wait_echo() {
	local u=$1 pid=${2:-} i
	for i in $(seq 1 40); do
		if bench 10 -u "$u" -c 1 -n 1 -d 0.2 -t 2 --json >/dev/null 2>&1; then
			return 0
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.5
	done
	return 1
}

# ---- wsgate ----

gate_dir=""
gate_tpid=""	# the timeout wrapper
gate_pid=""	# the master
gate_url=""

gate_start() {
	local nworkers=$1 maxconn=$2 dir port aport vmem i
	gate_dir=$tmp/gate.$RANDOM
	dir=$gate_dir
	mkdir -p "$dir/run" "$dir/spool"
	port=$(free_port) || die "no free port"
	aport=$(free_port) || die "no free port"
	cat >"$dir/wsgate.conf" <<EOF
# Written by tests/bench/run.sh.  Upstream and PostgreSQL are dummies:
# the echo endpoint uses neither.
listen 127.0.0.1:$port
admin_listen 127.0.0.1:$aport
workers $nworkers
max_connections $maxconn
echo_path /echo
upstream_url http://127.0.0.1:9/
pg_conninfo host=127.0.0.1 port=9 dbname=x
runtime_dir $dir/run
spool_dir $dir/spool
pidfile $dir/wsgate.pid
log_file $dir/wsgate.log
EOF
	vmem=$(vlimit "$wsgate" "${WSGATE_VMEM_KB:-8388608}")
	prlimit --as="$vmem" timeout -k 10 7200 "$wsgate" -c "$dir/wsgate.conf" \
	    >"$dir/wsgate.out" 2>&1 &
	gate_tpid=$!
	started="$started $gate_tpid"
	gate_url="ws://127.0.0.1:$port/echo"
	if ! wait_echo "$gate_url" "$gate_tpid"; then
		tail -n 20 "$dir/wsgate.out" "$dir/wsgate.log" >&2 2>/dev/null || true
		die "wsgate did not answer on $gate_url (logs above; --keep keeps $dir)"
	fi
	gate_pid=""
	for i in $(seq 1 20); do
		[ -s "$dir/wsgate.pid" ] && gate_pid=$(cat "$dir/wsgate.pid") && break
		sleep 0.1
	done
	[ -n "$gate_pid" ] || gate_pid=$(pgrep -P "$gate_tpid" | head -n 1)
	note "wsgate master $gate_pid, $nworkers workers, $gate_url"
}

gate_stop() {
	[ -n "$gate_tpid" ] || return 0
	kill -TERM "$gate_tpid" 2>/dev/null || true
	wait "$gate_tpid" 2>/dev/null || true
	if grep -qiE 'sanitizer|fatal' "$gate_dir/wsgate.out" "$gate_dir/wsgate.log" 2>/dev/null; then
		note "wsgate reported errors, see $gate_dir (use --keep):"
		grep -iE 'sanitizer|fatal' "$gate_dir/wsgate.out" "$gate_dir/wsgate.log" | head -n 5 >&2 || true
	fi
	started=${started/ $gate_tpid/}
	gate_tpid=""
	gate_pid=""
}

# Worker processes of master $1: children whose name or command line
# says "worker", else children the master logged as "started pid=N
# role=worker" in $gate_dir/wsgate.log, else all children.
gate_workers() {
	local master=$1 kids k w="" logged
	kids=$(pgrep -P "$master" || true)
	for k in $kids; do
		if grep -qa worker "/proc/$k/comm" "/proc/$k/cmdline" 2>/dev/null; then
			w="$w $k"
		fi
	done
	if [ -z "$w" ]; then
		logged=$(sed -n 's/.*started pid=\([0-9]*\) role=worker.*/\1/p' \
		    "$gate_dir/wsgate.log" 2>/dev/null || true)
		for k in $kids; do
			case " $(echo $logged) " in *" $k "*) w="$w $k" ;; esac
		done
	fi
	if [ -z "$w" ]; then
		note "cannot tell workers from other children of $master: measuring all"
		w=$kids
	fi
	echo $w
}

# Sums VmRSS and Pss (KiB) over the PIDs given; prints "RSS PSS".
mem_kib() {
	local rss=0 pss=0 p v
	for p in "$@"; do
		v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
		rss=$((rss + ${v:-0}))
		v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || true)
		pss=$((pss + ${v:-0}))
	done
	echo "$rss $pss"
}

# ---- Scenarios ----

declare -A result

# load_scenario NAME CONNS INFLIGHT URL: $runs runs, medians into result[].
load_once() {
	local u=$1 c=$2 n=$3 out
	out=$(bench $((duration + warmup + 120)) -u "$u" -c "$c" -n "$n" -s 64 \
	    -d "$duration" -w "$warmup" --json 2>>"$tmp/wsbench.err") || true
	echo "$u c=$c n=$n $out" >>"$tmp/results.txt"
	if [ -z "$out" ] || [ "$(json_field "$out" conns_ok)" != "$c" ] ||
	    [ "$(json_field "$out" conns_dropped)" != 0 ]; then
		note "run against $u failed or lost connections: ${out:-no output} (see $tmp/wsbench.err)"
		return 1
	fi
	echo "$out"
}

load_scenario() {
	local key=$1 c=$2 n=$3 i out rate=() p50=() p99=() crate=() cp99=()
	for i in $(seq 1 "$runs"); do
		if out=$(load_once "$target" "$c" "$n"); then
			rate+=("$(json_field "$out" msgs_per_s)")
			p50+=("$(json_field "$out" p50_ms)")
			p99+=("$(json_field "$out" p99_ms)")
			note "scenario $key run $i: $(json_field "$out" msgs_per_s) msg/s, p99 $(json_field "$out" p99_ms) ms"
		fi
		if [ -n "$compare_url" ] &&
		    out=$(load_once "$compare_url" "$c" "$n"); then
			crate+=("$(json_field "$out" msgs_per_s)")
			cp99+=("$(json_field "$out" p99_ms)")
			note "scenario $key run $i (compare): $(json_field "$out" msgs_per_s) msg/s, p99 $(json_field "$out" p99_ms) ms"
		fi
	done
	result[$key.runs]=${#rate[@]}
	result[$key.rate]=$(median "${rate[@]}")
	result[$key.p50]=$(median "${p50[@]}")
	result[$key.p99]=$(median "${p99[@]}")
	if [ -n "$compare_url" ]; then
		result[$key.crate]=$(median "${crate[@]}")
		result[$key.cp99]=$(median "${cp99[@]}")
	fi
}

# One idle run: hold $idle_conns connections, spread over enough wsbench
# processes (the open-files limit) and 127.0.0.2-127.0.0.50 (ephemeral
# ports), and measure the RSS of $measure_pids before and after.  Sets
# idle_est and idle_rss/idle_pss (bytes per connection).  Not run in a
# command substitution: the PIDs it starts must reach the exit trap.
idle_once() {
	local u=$1 per nproc span i first last n c pids_b="" f est=0 before after
	local t waited rssd pssd
	per=15000
	nproc=$(( (idle_conns + per - 1) / per ))
	span=$(( 49 / nproc )); [ "$span" -ge 1 ] || span=1
	before=$(mem_kib $measure_pids)
	for i in $(seq 0 $((nproc - 1))); do
		c=$(( idle_conns / nproc ))
		[ "$i" -lt $(( idle_conns % nproc )) ] && c=$((c + 1))
		first=$(( 2 + (i * span) % 49 ))
		last=$(( first + span - 1 )); [ "$last" -le 50 ] || last=50
		f=$tmp/idle.$i
		rm -f "$f.out" "$f.err"
		prlimit --as="$wsbench_as" timeout -k 5 1800 "$wsbench" \
		    -u "$u" --idle -c "$c" -d 0 -t 30 \
		    --src "127.0.0.$first-127.0.0.$last" --json \
		    >"$f.out" 2>"$f.err" &
		pids_b="$pids_b $!"
		started="$started $!"
	done
	waited=0
	while :; do
		n=0
		for i in $(seq 0 $((nproc - 1))); do
			grep -q '^established' "$tmp/idle.$i.out" 2>/dev/null && n=$((n + 1))
		done
		[ "$n" -eq "$nproc" ] && break
		for t in $pids_b; do
			if ! kill -0 "$t" 2>/dev/null; then
				cat "$tmp"/idle.*.err >&2
				die "a wsbench --idle process exited before establishing its connections"
			fi
		done
		waited=$((waited + 1))
		[ "$waited" -lt 1200 ] || die "connections not established after 600 s"
		sleep 0.5
	done
	for i in $(seq 0 $((nproc - 1))); do
		est=$((est + $(awk '/^established/ { print $2 }' "$tmp/idle.$i.out")))
	done
	sleep "$idle_settle"
	after=$(mem_kib $measure_pids)
	for t in $pids_b; do kill -TERM "$t" 2>/dev/null || true; done
	for t in $pids_b; do wait "$t" 2>/dev/null || true; started=${started/ $t/}; done
	rssd=$(( ${after% *} - ${before% *} ))
	pssd=$(( ${after#* } - ${before#* } ))
	echo "idle: $est held, RSS ${before% *} -> ${after% *} KiB, Pss ${before#* } -> ${after#* } KiB" >>"$tmp/results.txt"
	[ "$est" -eq "$idle_conns" ] ||
		note "scenario 3: only $est of $idle_conns connections established (see $tmp/idle.*.err)"
	note "scenario 3: $est connections held, RSS $(printf %+d "$rssd") KiB, Pss $(printf %+d "$pssd") KiB"
	[ "$est" -gt 0 ] || return 1
	idle_est=$est
	idle_rss=$((rssd * 1024 / est))
	idle_pss=$((pssd * 1024 / est))
}

idle_scenario() {
	local i held=() rss=() pss=()
	for i in $(seq 1 "$runs"); do
		if [ -z "$url" ]; then
			# Fresh server per run: freed memory stays in the
			# allocator and would hide the next run's growth.
			# Workers: the kernel spreads accepts unevenly (one
			# worker took 3.3x the mean in our runs) and each has
			# max_connections below the 20,000 open-files limit.
			local nw=$idle_workers
			[ "$nw" -ge 1 ] || nw=$(( (idle_conns + 3999) / 4000 ))
			[ "$nw" -ge 2 ] || nw=2
			gate_start "$nw" 18000
			target=$gate_url
			sleep 1
			measure_pids=$(gate_workers "$gate_pid")
			[ -n "$measure_pids" ] || die "no wsgate worker processes found under $gate_pid"
			note "measuring worker PIDs:$(printf ' %s' $measure_pids)"
		fi
		if idle_once "$target"; then
			held+=("$idle_est"); rss+=("$idle_rss"); pss+=("$idle_pss")
		fi
		[ -n "$url" ] || gate_stop
	done
	result[3.runs]=${#rss[@]}
	result[3.held]=$(median "${held[@]}")
	result[3.rss]=$(median "${rss[@]}")
	result[3.pss]=$(median "${pss[@]}")
}

# ---- Main ----

note "wsbench $wsbench, temp dir $tmp, $(nproc) CPUs, open files $(ulimit -Hn)"

if [ -n "$bun" ]; then
	[ -x "$bun" ] || die "--bun: '$bun' is not executable"
	bport=$(free_port) || die "no free port"
	cat >"$tmp/bun-echo.js" <<'EOF'
// Bun's built-in WebSocket server (uWebSockets), echoing every message.
Bun.serve({
	hostname: "127.0.0.1",
	port: Number(process.argv[2]),
	fetch(req, server) {
		if (server.upgrade(req))
			return;
		return new Response("not found\n", { status: 404 });
	},
	websocket: {
		perMessageDeflate: false,
		message(ws, msg) { ws.send(msg); },
	},
});
EOF
	timeout -k 5 7200 "$bun" run "$tmp/bun-echo.js" "$bport" \
	    >"$tmp/bun.out" 2>&1 &
	started="$started $!"
	compare_url="ws://127.0.0.1:$bport/echo"
	wait_echo "$compare_url" "$!" || { cat "$tmp/bun.out" >&2; die "Bun echo server did not start"; }
	note "Bun echo server on $compare_url"
fi
if [ -n "$compare_url" ] && [ -z "$bun" ]; then
	wait_echo "$compare_url" || die "no echo answer from $compare_url"
fi

target=""
measure_pids=""
if [ -n "$url" ]; then
	wait_echo "$url" || die "no echo answer from $url"
	target=$url
	measure_pids=$pids
fi

case ",$scenarios," in
*,1,*|*,2,*)
	if [ -z "$url" ]; then
		gate_start "$workers" 10000
		target=$gate_url
	fi
	case ",$scenarios," in *,1,*) load_scenario 1 1000 16 ;; esac
	case ",$scenarios," in *,2,*) load_scenario 2 10 64 ;; esac
	[ -n "$url" ] || gate_stop
	;;
esac
case ",$scenarios," in
*,3,*)
	if [ -n "$url" ] && [ -z "$pids" ]; then
		note "scenario 3 skipped: --url without --pids (whose RSS to measure?)"
	else
		idle_scenario
	fi
	;;
esac

echo
echo "wsbench results, median of $runs runs ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -r))"
echo
case ",$scenarios," in
*,1,*|*,2,*)
	echo "| scenario | runs ok | msg/s | p50 ms | p99 ms |${compare_url:+ other msg/s | other p99 ms | ratio |}"
	echo "|---|---|---|---|---|${compare_url:+---|---|---|}"
	;;
esac
for k in 1 2; do
	case ",$scenarios," in *,$k,*) ;; *) continue ;; esac
	[ $k = 1 ] && name="1000 conns x 16 in flight, 64 B" || name="10 conns x 64 in flight, 64 B"
	line="| $name | ${result[$k.runs]} | ${result[$k.rate]} | ${result[$k.p50]} | ${result[$k.p99]} |"
	if [ -n "$compare_url" ]; then
		ratio=$(awk -v a="${result[$k.rate]}" -v b="${result[$k.crate]}" \
		    'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }')
		line="$line ${result[$k.crate]} | ${result[$k.cp99]} | $ratio |"
	fi
	echo "$line"
done
case ",$scenarios," in
*,3,*)
	if [ -n "${result[3.runs]:-}" ]; then
		echo
		echo "| idle connections held | runs ok | RSS bytes/conn | Pss bytes/conn |"
		echo "|---|---|---|---|"
		echo "| ${result[3.held]} | ${result[3.runs]} | ${result[3.rss]} | ${result[3.pss]} |"
	fi
	;;
esac
echo
if [ "$keep" = 1 ]; then
	echo "raw results: $tmp/results.txt"
else
	sed 's/^/# /' "$tmp/results.txt" 2>/dev/null || true
fi
