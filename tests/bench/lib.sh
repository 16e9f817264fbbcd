# Helpers shared by the benchmark scripts (run.sh, pipeline.sh,
# persist.sh), sourced after they set $here.  Bash.

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
# The machine's CPU line of /proc/stat, for busy_pct and others_pct.
cpu_line() { head -n 1 /proc/stat; }

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
