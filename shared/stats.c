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
 * The shared-memory stats region: its slots, who writes them when, and
 * the loop instrumentation (heartbeat, event-loop lag) of the children.
 */
#include "autoconf.h"

#include <sys/mman.h>

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "util.h"

#define STATS_MAGIC	0x7773746174730001ULL	/* "wstats", version 1 */

/* stats_sum() treats slots as arrays of uint64_t. */
_Static_assert(sizeof(struct stats_worker) % sizeof(uint64_t) == 0,
    "stats_worker is not made of uint64_t");
_Static_assert(sizeof(struct stats_dbwriter) % sizeof(uint64_t) == 0,
    "stats_dbwriter is not made of uint64_t");

const uint64_t stats_bounds_ns[STATS_NBOUNDS] = {
	50000, 100000, 250000, 500000,			/* 50 us .. 0.5 ms */
	1000000, 2500000, 5000000, 10000000,		/* 1 ms .. 10 ms */
	25000000, 50000000, 100000000, 250000000,	/* 25 ms .. 0.25 s */
	500000000, 1000000000, 2500000000ULL,		/* 0.5 s .. 2.5 s */
	5000000000ULL, 10000000000ULL			/* 5 s, 10 s */
};

static struct stats_region	*region;
static struct stats_worker	 dummy_w;
static struct stats_dbwriter	 dummy_d;
static struct stats_proc	*self = &dummy_w.sw_proc;

struct stats_worker	*stats_w = &dummy_w;
struct stats_dbwriter	*stats_d = &dummy_d;

static void	stats_prepare_cb(struct ev_loop *, ev_prepare *, int);
static void	stats_timer_cb(struct ev_loop *, ev_timer *, int);
static struct stats_proc *stats_slot(enum stats_role, int);

double
stats_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
stats_observe(struct stats_hist *h, double secs)
{
	uint64_t	ns;
	size_t		i;

	/* A billion seconds at most: the sum must not wrap. */
	ns = secs <= 0 ? 0 : secs < 1e9 ? (uint64_t)(secs * 1e9) :
	    1000000000ULL * 1000000000ULL;
	for (i = 0; i < STATS_NBOUNDS && ns > stats_bounds_ns[i]; i++)
		;
	stats_inc(&h->h_bucket[i]);
	stats_add(&h->h_sum_ns, ns);
}

/* ---- The region ---- */

int
stats_init(void)
{
	void	*mem;

	mem = mmap(NULL, sizeof(*region), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -1;
	/* Fresh anonymous pages are zero: every counter starts at 0. */
	region = mem;
	region->sr_magic = STATS_MAGIC;
	return 0;
}

const struct stats_region *
stats_region(void)
{
	return region;
}

/* The slot's common part, or NULL when there is none. */
static struct stats_proc *
stats_slot(enum stats_role role, int slot)
{
	if (region == NULL || slot < 0 || slot >= STATS_SLOTS)
		return NULL;
	return role == STATS_WORKER ? &region->sr_worker[slot].sw_proc :
	    &region->sr_dbwriter[slot].sd_proc;
}

void
stats_slot_begin(enum stats_role role, int slot)
{
	struct stats_master	*sm;

	if (stats_slot(role, slot) == NULL)
		return;
	sm = &region->sr_master;
	/* Readers look at slots below this: raise it before the fork. */
	if (stats_get(&sm->sm_nslots[role]) < (uint64_t)slot + 1)
		stats_set(&sm->sm_nslots[role], (uint64_t)slot + 1);
}

/*
 * The holder is gone (reaped): the slot is the master's until the next
 * holder starts, so these stores race with no one.
 */
void
stats_slot_end(enum stats_role role, int slot)
{
	struct stats_proc	*sp;

	if ((sp = stats_slot(role, slot)) == NULL)
		return;
	stats_set(&sp->sp_pid, 0);
	stats_set(&sp->sp_dep, STATS_DEP_UNKNOWN);
	if (role == STATS_WORKER) {
		stats_set(&region->sr_worker[slot].sw_connections, 0);
		stats_set(&region->sr_worker[slot].sw_sockets, 0);
		stats_set(&region->sr_worker[slot].sw_accepting, 0);
	} else {
		stats_set(&region->sr_dbwriter[slot].sd_pg_conns, 0);
		stats_set(&region->sr_dbwriter[slot].sd_spool_bytes, 0);
	}
}

void
stats_count_reload(int ok)
{
	if (region != NULL)
		stats_inc(ok ? &region->sr_master.sm_reloads :
		    &region->sr_master.sm_reload_failures);
}

void
stats_count_restart(void)
{
	if (region != NULL)
		stats_inc(&region->sr_master.sm_restarts);
}

void
stats_attach(enum stats_role role, int slot)
{
	struct stats_proc	*sp;

	if ((sp = stats_slot(role, slot)) == NULL)
		return;
	if (role == STATS_WORKER)
		stats_w = &region->sr_worker[slot];
	else
		stats_d = &region->sr_dbwriter[slot];
	self = sp;
	stats_set(&sp->sp_dep, STATS_DEP_UNKNOWN);
	stats_beat();
	stats_set(&sp->sp_pid, (uint64_t)getpid());
}

void
stats_detach(void)
{
	stats_set(&self->sp_dep, STATS_DEP_UNKNOWN);
	stats_set(&self->sp_pid, 0);
	self = &dummy_w.sw_proc;
	stats_w = &dummy_w;
	stats_d = &dummy_d;
}

void
stats_beat(void)
{
	stats_set(&self->sp_beat_ms, now_ms());
}

void
stats_dep(enum stats_dep st)
{
	stats_set(&self->sp_dep, st);
}

/* ---- Readers ---- */

int
stats_nslots(enum stats_role role)
{
	uint64_t	n;

	if (region == NULL)
		return 0;
	n = stats_get(&region->sr_master.sm_nslots[role]);
	return n > STATS_SLOTS ? STATS_SLOTS : (int)n;
}

const struct stats_proc *
stats_proc_of(enum stats_role role, int i)
{
	return stats_slot(role, i);
}

int
stats_proc_fresh(const struct stats_proc *sp, uint64_t now)
{
	uint64_t	beat = stats_get(&sp->sp_beat_ms);

	/* A beat "after" now: another CPU's clock read; fresh enough. */
	return stats_get(&sp->sp_pid) != 0 &&
	    (beat >= now || now - beat <= STATS_STALE_MS);
}

/* Slots are nothing but uint64_t: add them up word by word. */
void
stats_sum(enum stats_role role, void *out)
{
	const uint64_t	*src;
	uint64_t	*dst = out;
	size_t		 words, w;
	int		 i, n = stats_nslots(role);

	words = (role == STATS_WORKER ? sizeof(struct stats_worker) :
	    sizeof(struct stats_dbwriter)) / sizeof(uint64_t);
	for (i = 0; i < n; i++) {
		src = role == STATS_WORKER ?
		    (const uint64_t *)(const void *)&region->sr_worker[i] :
		    (const uint64_t *)(const void *)&region->sr_dbwriter[i];
		for (w = 0; w < words; w++)
			dst[w] += stats_get(&src[w]);
	}
}

enum stats_dep
stats_dep_of(enum stats_role role, uint64_t now)
{
	const struct stats_proc	*sp;
	int			 i, n = stats_nslots(role), up = 0;

	for (i = 0; i < n; i++) {
		sp = stats_slot(role, i);
		if (!stats_proc_fresh(sp, now))
			continue;
		switch (stats_get(&sp->sp_dep)) {
		case STATS_DEP_UP:
			up = 1;
			break;
		case STATS_DEP_DOWN:
			return STATS_DEP_DOWN;
		}
	}
	return up ? STATS_DEP_UP : STATS_DEP_DOWN;
}

/* ---- Loop instrumentation ---- */

/*
 * ev_now() is the iteration's wake-up: libev reads the clock after its
 * wait and not again before the next one (only then, after the prepare
 * watchers).  ev_time() and ev_now() are both wall-clock time, which
 * libev keeps on the monotonic clock between resyncs, so the difference
 * is the iteration's duration.
 */
static void
stats_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct stats_loop	*sl = w->data;

	(void)revents;
	/* The loop's first wait follows no wake-up. */
	if (sl->sl_waited)
		stats_observe(&self->sp_lag, ev_time() - ev_now(loop));
	sl->sl_waited = 1;
}

static void
stats_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct stats_loop	*sl = w->data;

	(void)loop;
	(void)revents;
	stats_beat();
	if (sl->sl_tick != NULL)
		sl->sl_tick(sl->sl_arg);
}

void
stats_loop_start(struct ev_loop *loop, struct stats_loop *sl,
    void (*tick)(void *), void *arg)
{
	memset(sl, 0, sizeof(*sl));
	sl->sl_tick = tick;
	sl->sl_arg = arg;
	ev_prepare_init(&sl->sl_prepare, stats_prepare_cb);
	ev_set_priority(&sl->sl_prepare, EV_MINPRI);
	sl->sl_prepare.data = sl;
	ev_prepare_start(loop, &sl->sl_prepare);
	ev_timer_init(&sl->sl_timer, stats_timer_cb, STATS_BEAT_S,
	    STATS_BEAT_S);
	sl->sl_timer.data = sl;
	ev_timer_start(loop, &sl->sl_timer);
	stats_beat();
}

void
stats_loop_stop(struct ev_loop *loop, struct stats_loop *sl)
{
	ev_prepare_stop(loop, &sl->sl_prepare);
	ev_timer_stop(loop, &sl->sl_timer);
}
