/*
 * Copyright (c) 2026 The wsgate authors.
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * shared/stats.c and worker/metrics.c: histogram buckets at their
 * bounds, slots shared with forked children and continued by the next
 * holder, gauges cleared by the master's slot_end, readiness from the
 * slots' dependency states and heartbeats, the exposition's lines, and
 * the event-loop lag of a loop whose callback busies it.
 */
#include "autoconf.h"

#include <sys/wait.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "tests/tap.h"
#include "buf.h"
#include "worker/metrics.h"
#include "stats.h"
#include "util.h"

static const struct stats_region *R;

static void	test_buckets(void);
static void	test_slots(void);
static void	test_fork(void);
static void	test_ready(void);
static void	test_render(void);
static void	test_lag(void);
static int	has_line(const struct buf *, const char *);

/* Whole-line match in an exposition. */
static int
has_line(const struct buf *b, const char *line)
{
	size_t	n = strlen(line);
	char	*p = b->b_p;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == b->b_p || p[-1] == '\n') && p[n] == '\n')
			return 1;
		p++;
	}
	return 0;
}

static void
test_buckets(void)
{
	struct stats_hist	h;

	memset(&h, 0, sizeof(h));
	stats_observe(&h, 0.00005);		/* a bound: le is inclusive */
	stats_observe(&h, 0.0000501);
	stats_observe(&h, -1);			/* a clock step: 0 */
	stats_observe(&h, 10);
	stats_observe(&h, 11);
	stats_observe(&h, 0.003);
	is_int(h.h_bucket[0], 2, "5e-05 and -1 in the first bucket");
	is_int(h.h_bucket[1], 1, "5.01e-05 in (5e-05, 1e-04]");
	is_int(h.h_bucket[STATS_NBOUNDS - 1], 1, "10 s in (5, 10]");
	is_int(h.h_bucket[STATS_NBOUNDS], 1, "11 s in +Inf");
	is_int(h.h_bucket[6], 1, "3 ms in (2.5 ms, 5 ms]");
	is_int(h.h_sum_ns, 50000 + 50100 + 10000000000ULL + 11000000000ULL +
	    3000000, "sum in ns");
	ok(stats_bounds_ns[STATS_NBOUNDS - 1] == 10000000000ULL,
	    "last bound 10 s");
}

static void
test_slots(void)
{
	struct stats_worker	sum;

	ok(stats_init() == 0, "stats_init maps a region");
	R = stats_region();
	ok(R != NULL && stats_nslots(STATS_WORKER) == 0, "no slot used yet");
	stats_slot_begin(STATS_WORKER, 2);
	stats_slot_begin(STATS_WORKER, 0);
	is_int(stats_nslots(STATS_WORKER), 3, "slots used: up to index 2");
	stats_slot_begin(STATS_WORKER, STATS_SLOTS);
	is_int(stats_nslots(STATS_WORKER), 3, "a slot past STATS_SLOTS: none");

	stats_attach(STATS_WORKER, 2);
	ok(stats_w == &R->sr_worker[2], "attached to slot 2");
	is_int(R->sr_worker[2].sw_proc.sp_pid, getpid(), "slot 2 held by us");
	stats_inc(&stats_w->sw_messages_in);
	stats_inc(&stats_w->sw_connections);
	stats_reply(200);
	stats_reply(200);
	stats_reply(700);
	stats_reply(-1);
	stats_set(&stats_w->sw_ring_records, 7);
	is_int(R->sr_worker[2].sw_replies[200], 2, "replies[200] 2");
	is_int(R->sr_worker[2].sw_replies[0], 2, "out-of-range statuses in [0]");

	/* The holder dies: the master's stats_slot_end(). */
	stats_slot_end(STATS_WORKER, 2);
	is_int(R->sr_worker[2].sw_proc.sp_pid, 0, "slot_end: no holder");
	is_int(R->sr_worker[2].sw_connections, 0, "slot_end: gauge cleared");
	is_int(R->sr_worker[2].sw_ring_records, 7, "slot_end: ring gauge kept");
	is_int(R->sr_worker[2].sw_messages_in, 1, "slot_end: counter kept");

	/* The next holder continues the counters. */
	stats_attach(STATS_WORKER, 2);
	stats_inc(&stats_w->sw_messages_in);
	is_int(R->sr_worker[2].sw_messages_in, 2, "a new holder counts on");
	stats_detach();
	is_int(R->sr_worker[2].sw_proc.sp_pid, 0, "detach: slot given up");
	stats_inc(&stats_w->sw_messages_in);
	is_int(R->sr_worker[2].sw_messages_in, 2,
	    "detached: writes go to the dummy slot");

	stats_attach(STATS_WORKER, 0);
	stats_add(&stats_w->sw_messages_in, 5);
	stats_reply(200);
	stats_detach();
	memset(&sum, 0, sizeof(sum));
	stats_sum(STATS_WORKER, &sum);
	is_int(sum.sw_messages_in, 7, "stats_sum: 2 + 5 messages");
	is_int(sum.sw_replies[200], 3, "stats_sum: 3 replies 200");
}

/* A forked child writes its slot; the parent reads it. */
static void
test_fork(void)
{
	pid_t	pid;
	int	status, i;

	stats_slot_begin(STATS_DBWRITER, 1);
	if ((pid = fork()) == 0) {
		stats_attach(STATS_DBWRITER, 1);
		for (i = 0; i < 1000; i++)
			stats_inc(&stats_d->sd_rows);
		stats_observe(&stats_d->sd_batch, 0.02);
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && status == 0,
	    "child ran");
	is_int(R->sr_dbwriter[1].sd_rows, 1000, "the child's 1000 rows seen");
	is_int(R->sr_dbwriter[1].sd_batch.h_bucket[8], 1,
	    "the child's 20 ms batch in (10 ms, 25 ms]");
	is_int(R->sr_dbwriter[1].sd_proc.sp_pid, pid,
	    "the slot names the child until the master reaps it");
	stats_slot_end(STATS_DBWRITER, 1);
}

/* Readiness from hand-made slot states. */
static void
test_ready(void)
{
	struct stats_proc	*w0, *w1, *w2, *d0;
	char			 why[128];
	uint64_t		 now = now_ms();

	w0 = (struct stats_proc *)(uintptr_t)&R->sr_worker[0].sw_proc;
	w1 = (struct stats_proc *)(uintptr_t)&R->sr_worker[1].sw_proc;
	w2 = (struct stats_proc *)(uintptr_t)&R->sr_worker[2].sw_proc;
	d0 = (struct stats_proc *)(uintptr_t)&R->sr_dbwriter[0].sd_proc;
	stats_slot_begin(STATS_DBWRITER, 0);
	w0->sp_pid = w1->sp_pid = d0->sp_pid = 4242;
	w0->sp_beat_ms = w1->sp_beat_ms = d0->sp_beat_ms = now;
	w0->sp_dep = STATS_DEP_UP;
	w1->sp_dep = STATS_DEP_UNKNOWN;
	d0->sp_dep = STATS_DEP_UP;
	/* Slot 2 is held by nobody: whatever it says does not count. */
	w2->sp_dep = STATS_DEP_DOWN;
	ok(metrics_ready(why, sizeof(why)) == 1, "ready: up + starting");
	w1->sp_dep = STATS_DEP_DOWN;
	ok(metrics_ready(why, sizeof(why)) == 0 &&
	    strcmp(why, "redis unavailable") == 0,
	    "one worker finds Redis down: \"%s\"", why);
	w1->sp_dep = STATS_DEP_UP;
	d0->sp_beat_ms = now - STATS_STALE_MS - 1000;
	ok(metrics_ready(why, sizeof(why)) == 0 &&
	    strcmp(why, "postgresql unavailable") == 0,
	    "a dbwriter that stopped beating does not look connected: "
	    "\"%s\"", why);
	d0->sp_beat_ms = now;
	d0->sp_pid = 0;
	w0->sp_dep = w1->sp_dep = STATS_DEP_UNKNOWN;
	ok(metrics_ready(why, sizeof(why)) == 0 &&
	    strcmp(why, "redis unavailable, postgresql unavailable") == 0,
	    "nobody up: both named: \"%s\"", why);
	d0->sp_pid = 4242;
	d0->sp_dep = STATS_DEP_UP;
	w0->sp_dep = STATS_DEP_UP;
	ok(metrics_ready(why, sizeof(why)) == 1, "ready again");
}

static void
test_render(void)
{
	struct buf	b = BUF_INIT;

	metrics_render(&b);
	buf_cstr(&b);
	ok(has_line(&b, "# TYPE wsgate_replies_total counter"),
	    "TYPE line for replies_total");
	ok(has_line(&b, "wsgate_replies_total{status=\"200\"} 3"),
	    "replies_total{status=\"200\"} 3, summed over slots");
	ok(has_line(&b, "wsgate_replies_total{status=\"other\"} 2"),
	    "out-of-range statuses as status=\"other\"");
	ok(strstr(b.b_p, "wsgate_replies_total{status=\"404\"}") == NULL,
	    "statuses never seen are not exported");
	ok(has_line(&b, "wsgate_handshakes_failed_total{reason=\"tls\"} 0"),
	    "enumerated labels exported at 0");
	ok(has_line(&b, "wsgate_ring_records_unacked{slot=\"2\"} 7"),
	    "ring gauge per slot");
	ok(has_line(&b, "wsgate_rows_written_total 1000"), "rows written");
	ok(has_line(&b, "wsgate_db_batch_duration_seconds_bucket{le=\"0.01\"} 0")
	    && has_line(&b,
	    "wsgate_db_batch_duration_seconds_bucket{le=\"0.025\"} 1") &&
	    has_line(&b, "wsgate_db_batch_duration_seconds_bucket{le=\"+Inf\"} 1"),
	    "histogram buckets cumulative, le in seconds");
	ok(has_line(&b, "wsgate_db_batch_duration_seconds_sum 0.020000000") &&
	    has_line(&b, "wsgate_db_batch_duration_seconds_count 1"),
	    "histogram _sum in seconds and _count");
	ok(has_line(&b, "wsgate_processes{role=\"worker\"} 2"),
	    "processes: slots with a holder");
	ok(has_line(&b, "wsgate_dependency_up{dependency=\"redis\"} 1"),
	    "dependency_up as /readyz judges");
	ok(b.b_len > 0 && b.b_p[b.b_len - 1] == '\n', "ends with a newline");
	buf_free(&b);
}

static void
spin_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	double	until = stats_now() + 0.004;

	(void)t;
	(void)revents;
	while (stats_now() < until)
		;
	ev_break(loop, EVBREAK_ALL);
}

/* A callback that holds the loop 4 ms shows as 4 ms of lag. */
static void
test_lag(void)
{
	struct ev_loop		*loop = ev_loop_new(EVFLAG_AUTO);
	struct stats_loop	 sl;
	ev_timer		 t;
	const struct stats_hist	*h;
	uint64_t		 slow = 0, n = 0;
	size_t			 i;

	stats_attach(STATS_WORKER, 1);
	h = &R->sr_worker[1].sw_proc.sp_lag;
	stats_loop_start(loop, &sl, NULL, NULL);
	ev_timer_init(&t, spin_cb, 0.01, 0.);
	ev_timer_start(loop, &t);
	ev_run(loop, 0);
	/* One more iteration: its prepare observes the spinning one. */
	ev_run(loop, EVRUN_NOWAIT);
	stats_loop_stop(loop, &sl);
	ev_loop_destroy(loop);
	for (i = 0; i < STATS_NBUCKETS; i++) {
		n += h->h_bucket[i];
		if (i >= 6)	/* above 2.5 ms */
			slow += h->h_bucket[i];
	}
	ok(n >= 1, "loop iterations observed: %llu", (unsigned long long)n);
	ok(slow >= 1, "the 4 ms callback observed above 2.5 ms");
	ok(h->h_sum_ns >= 4000000, "lag sum >= 4 ms (%llu ns)",
	    (unsigned long long)h->h_sum_ns);
	ok(now_ms() - R->sr_worker[1].sw_proc.sp_beat_ms < 1000,
	    "heartbeat written");
	stats_detach();
}

int
main(void)
{
	tap_watchdog(30);
	test_buckets();
	test_slots();
	test_fork();
	test_ready();
	test_render();
	test_lag();
	return done_testing();
}
