# Helpers shared by the benchmark scripts (run.sh, pipeline.sh,
# persist.sh), sourced after they set $here.  Bash.

prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 1; }

need_whole() {	# variable names: each must hold a whole number
	local v
	for v; do
		case ${!v} in
		''|*[!0-9]*) die "--${v//_/-} needs a whole number, not '${!v}'" ;;
		esac
	done
}

# Ports are picked at random below the ephemeral range (so that no
# outgoing connection of the benchmark itself can hold one), checked free,
# and never handed out twice in one run.
eph_lo=$(cut -f 1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$eph_lo" -gt 12000 ] 2>/dev/null || eph_lo=32768
used_ports=""
free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((10000 + RANDOM % (eph_lo - 10000)))
		case " $used_ports " in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
		    ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			used_ports="$used_ports $p"
			echo "$p"
			return 0
		fi
	done
	return 1
}

# A number (or a word) from wsbench's one-line --json output.
json_field() {	# json name
	sed -n "s/.*\"$2\":\"\{0,1\}\([-0-9.eE+a-z]*\).*/\1/p" <<<"$1"
}

median() {	# values... (empty ones ignored) -> the median, or n/a
	printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 }
	    END { if (NR == 0) print "n/a";
	          else if (NR % 2) print a[(NR + 1) / 2];
	          else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

tree() {	# the process and its descendants
	local p=$1 k
	echo "$p"
	for k in $(pgrep -P "$p" 2>/dev/null || true); do
		tree "$k"
	done
}

now_ns() { date +%s%N; }
loadavg() { cut -d ' ' -f 1 /proc/loadavg; }
# The machine's CPU line of /proc/stat, or CPU N's, for busy_pct and
# others_pct.
cpu_line() {	# [N]
	if [ -n "${1:-}" ]; then grep "^cpu$1 " /proc/stat; else head -n 1 /proc/stat; fi
}

busy_pct() {	# stat-line stat-line -> % of the CPUs busy between them
	awk -v a="$1" -v b="$2" 'BEGIN {
	    n = split(a, x, " "); split(b, y, " "); tot = 0; idle = 0;
	    for (i = 2; i <= n; i++) { d = y[i] - x[i]; tot += d;
	        if (i == 5 || i == 6) idle += d }
	    if (tot > 0) printf "%.0f", 100 * (tot - idle) / tot; else print "n/a" }'
}

others_pct() {	# stat-line stat-line our-ticks -> % of the CPUs used by others
	awk -v a="$1" -v b="$2" -v ours="$3" 'BEGIN {
	    n = split(a, x, " "); split(b, y, " "); tot = 0; idle = 0;
	    for (i = 2; i <= n; i++) { d = y[i] - x[i]; tot += d;
	        if (i == 5 || i == 6) idle += d }
	    o = tot - idle - ours; if (o < 0) o = 0;
	    if (tot > 0) printf "%.0f", 100 * o / tot; else print "n/a" }'
}

ticks_delta() {	# "U S" "U S" -> total ticks between them
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
	    print y[1] + y[2] - x[1] - x[2] }'
}

rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# $users configs in RESP for `redis-cli --pipe`: even users EDN, odd
# users the same config as JSON.  Both convert to the same JSON; the EDN
# uses keywords (plain and namespaced), a set, a list, a nested map, a
# string, numbers, nil, a comment, commas and #_ discard, so the
# conversion does real work.
seed() {
	local i k v
	for ((i = 0; i < users; i++)); do
		k="cfg:u$i"
		if ((i % 2 == 0)); then
			v="{:user/id \"u$i\", :plan :pro, :timeout-ms $((1000 + i % 7 * 250)), :retries 3,
 :features #{:search :export}, :limits {:rps $((100 + i % 5)), :burst 200}, ; per user
 :tags [:beta \"eu-west\"], :ratio 0.75, :enabled true, :fallback nil,
 :legacy #_ :old-value (1 2)}"
		else
			v="{\"user/id\":\"u$i\",\"plan\":\"pro\",\"timeout-ms\":$((1000 + i % 7 * 250)),\"retries\":3,\"features\":[\"search\",\"export\"],\"limits\":{\"rps\":$((100 + i % 5)),\"burst\":200},\"tags\":[\"beta\",\"eu-west\"],\"ratio\":0.75,\"enabled\":true,\"fallback\":null,\"legacy\":[1,2]}"
		fi
		printf '*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n' \
		    "${#k}" "$k" "$(printf %s "$v" | wc -c)" "$v"
	done
}

# A private nginx on $nginx_port answering every POST with a small JSON
# ({"ok":true,"n":1}; the body is read and discarded), with stub_status
# for request counts; `nginx_start WORKERS` sets nginx_tpid and
# upstream_url.  keepalive_requests is raised so that clients' keep-alive
# connections are never closed during a run (the default, 1000, would
# make clients reconnect every 1000 requests).  Needs $tmp, $nginx_bin,
# $total_limit, $started and die().
nginx_start() {
	local nd=$tmp/nginx i
	mkdir -p "$nd"
	cat >"$nd/nginx.conf" <<NGINX
# Written by tests/bench/lib.sh.
daemon off;
master_process on;
worker_processes $1;
pid $nd/nginx.pid;
error_log $nd/error.log warn;
worker_rlimit_nofile 8192;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $nd/body;
    proxy_temp_path $nd/proxy;
    fastcgi_temp_path $nd/fastcgi;
    uwsgi_temp_path $nd/uwsgi;
    scgi_temp_path $nd/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_buffer_size 16k;
    server {
        listen 127.0.0.1:$nginx_port backlog=4096;
        location = /nginx_status {
            stub_status;
        }
        location / {
            default_type application/json;
            return 200 '{"ok":true,"n":1}';
        }
    }
}
NGINX
	prlimit --as=$(( ${NGINX_VMEM_KB:-2097152} * 1024 )) \
	    timeout -k 5 "$total_limit" \
	    "$nginx_bin" -c "$nd/nginx.conf" -p "$nd" -e "$nd/error.log" \
	    >"$nd/nginx.out" 2>&1 &
	nginx_tpid=$!
	started="$started $nginx_tpid"
	upstream_url="http://127.0.0.1:$nginx_port/api/v1/process"
	for i in $(seq 1 50); do
		[ "$(curl -s -m 2 -X POST -d '{}' "$upstream_url" 2>/dev/null)" = '{"ok":true,"n":1}' ] && break
		kill -0 "$nginx_tpid" 2>/dev/null || { cat "$nd/nginx.out" "$nd/error.log" >&2 2>/dev/null; die "nginx exited"; }
		sleep 0.1
	done
	[ "$(curl -s -m 2 -X POST -d '{}' "$upstream_url")" = '{"ok":true,"n":1}' ] ||
		die "nginx does not answer on $upstream_url"
}

# Stop what the script started (their timeout wrappers); remove the temp
# dir unless --keep.
cleanup_started() {
	local p
	for p in $started; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in $started; do
		wait "$p" 2>/dev/null || true
	done
	if [ "$keep" = 1 ]; then
		note "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
