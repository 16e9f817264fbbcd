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
 * The stats region: counters, gauges and histograms of every process in
 * one shared-memory mapping, so that whichever worker the admin listener
 * hands a request to can answer /metrics and /readyz for all of them.
 *
 * The master maps the region (MAP_SHARED | MAP_ANONYMOUS) once, before
 * it forks anything, and keeps it for its life.  It holds one slot per
 * (role, slot index), the same slot indices the master gives children
 * (and their rings): at most one process holds a slot at a time, and a
 * slot's only writer is that process (its disk thread for the spool
 * gauge), or the master between two holders.  So nothing is locked:
 * writers do relaxed atomic loads and stores of aligned uint64_t (plain
 * moves on x86-64, no locked instruction), readers relaxed loads, and a
 * reader sees every value whole, each at most one update stale.
 *
 * Generations: a process that takes a slot over (a respawn, or a reload's
 * new generation once the slot is free again) continues its counters, so
 * every counter only grows for the life of the master, and a sum over
 * all slots ever used counts everything any process did.  Gauges belong
 * to the holder: the master clears them when it reaps the holder
 * (stats_slot_end()), except the ring gauges, which describe the slot's
 * ring, and that outlives its workers.
 *
 * Hot paths use the inline functions below on the process's own slot
 * (stats_w, stats_d): a load, an add and a store, no call, no syscall.
 * Without a region (unit tests) or past STATS_SLOTS they write to a
 * private dummy slot.
 */
#ifndef WSGATE_STATS_H
#define WSGATE_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#define STATS_SLOTS		1024	/* slot indices per role */
#define STATS_STATUS_MAX	600	/* reply statuses 0..599 */
#define STATS_NBOUNDS		17	/* histogram bucket bounds ... */
#define STATS_NBUCKETS		(STATS_NBOUNDS + 1)	/* ... and +Inf */
#define STATS_BEAT_S		1.0	/* heartbeat and gauge sampling */
#define STATS_STALE_MS		5000	/* a heartbeat older is not trusted */

enum stats_role {
	STATS_WORKER = 0,
	STATS_DBWRITER,
	STATS_NROLES
};

/* A dependency's state as a process sees it (sp_dep). */
enum stats_dep {
	STATS_DEP_UNKNOWN = 0,	/* not tried yet (starting, stopping) */
	STATS_DEP_UP,
	STATS_DEP_DOWN
};

/* Why a client connection never became a WebSocket. */
enum stats_handshake {
	STATS_HS_NOT_FOUND = 0,		/* 404: neither ws_path nor echo_path */
	STATS_HS_METHOD,		/* 405 */
	STATS_HS_NOT_WEBSOCKET,		/* 426: no Upgrade: websocket */
	STATS_HS_BAD_UPGRADE,		/* 400: Connection, key, HTTP/1.0 */
	STATS_HS_VERSION,		/* 426: Sec-WebSocket-Version */
	STATS_HS_ORIGIN,		/* 403 */
	STATS_HS_BAD_REQUEST,		/* malformed or oversized HTTP */
	STATS_HS_TIMEOUT,		/* handshake_timeout */
	STATS_HS_TLS,			/* TLS handshake failed */
	STATS_HS_TOO_MANY,		/* max_connections */
	STATS_NHANDSHAKE
};

enum stats_stage {
	STATS_STAGE_REDIS = 0,
	STATS_STAGE_UPSTREAM,
	STATS_STAGE_TOTAL,
	STATS_NSTAGES
};

enum stats_redis_error {
	STATS_REDIS_UNAVAILABLE = 0,	/* not connected, or dropped */
	STATS_REDIS_TIMEOUT,		/* no answer within redis_timeout */
	STATS_REDIS_ERROR,		/* an error reply or a wrong type */
	STATS_NREDIS_ERRORS
};

enum stats_upstream_error {
	STATS_UPSTREAM_TIMEOUT = 0,
	STATS_UPSTREAM_ERROR,
	STATS_NUPSTREAM_ERRORS
};

/* Whose reads the loop's read budget put off (worker/budget.h). */
enum stats_read_source {
	STATS_READ_CLIENT = 0,		/* client connections */
	STATS_READ_UPSTREAM,		/* upstream answers (built-in client) */
	STATS_NREAD_SOURCES
};

enum stats_pg_error {
	STATS_PG_CONNECTION = 0,	/* connect or set-up failed, or lost */
	STATS_PG_STATEMENT,		/* an INSERT failed */
	STATS_NPG_ERRORS
};

/*
 * A histogram: h_bucket[i] counts observations in (bound[i-1],
 * bound[i]], not cumulative (the last bucket is +Inf); h_sum_ns their
 * sum in nanoseconds.  Bounds in stats_bounds_ns.
 */
struct stats_hist {
	uint64_t	h_bucket[STATS_NBUCKETS];
	uint64_t	h_sum_ns;
};

/* What every slot has. */
struct stats_proc {
	uint64_t	sp_pid;		/* 0: no process holds the slot */
	uint64_t	sp_beat_ms;	/* CLOCK_MONOTONIC ms, every STATS_BEAT_S */
	uint64_t	sp_dep;		/* stats_dep: Redis or PostgreSQL */
	struct stats_hist sp_lag;	/* event-loop lag */
};

struct stats_worker {
	struct stats_proc sw_proc;
	uint64_t	sw_connections;		/* gauge: open WebSockets */
	/* Accept balance between workers (not exported). */
	uint64_t	sw_sockets;		/* gauge: client sockets open */
	uint64_t	sw_accepting;		/* gauge: 1 while accepting */
	uint64_t	sw_connections_total;
	uint64_t	sw_handshakes_failed[STATS_NHANDSHAKE];
	uint64_t	sw_messages_in;
	uint64_t	sw_messages_out;
	uint64_t	sw_reads_later[STATS_NREAD_SOURCES];
	uint64_t	sw_redis_errors[STATS_NREDIS_ERRORS];
	uint64_t	sw_upstream_errors[STATS_NUPSTREAM_ERRORS];
	uint64_t	sw_ring_bytes;		/* gauges of the slot's ring */
	uint64_t	sw_ring_records;
	struct stats_hist sw_stage[STATS_NSTAGES];
	uint64_t	sw_replies[STATS_STATUS_MAX];	/* [0]: out of range */
} __attribute__((aligned(64)));

struct stats_dbwriter {
	struct stats_proc sd_proc;
	uint64_t	sd_pg_conns;		/* gauge: connections ready */
	uint64_t	sd_batches;		/* committed */
	uint64_t	sd_rows;		/* inserted */
	uint64_t	sd_dead_letters;	/* from the disk thread */
	uint64_t	sd_pg_errors[STATS_NPG_ERRORS];
	uint64_t	sd_spool_bytes;		/* gauge, from the disk thread */
	struct stats_hist sd_batch;
} __attribute__((aligned(64)));

struct stats_master {
	uint64_t	sm_reloads;
	uint64_t	sm_reload_failures;
	uint64_t	sm_restarts;		/* children respawned */
	uint64_t	sm_nslots[STATS_NROLES];	/* 1 + highest slot used */
} __attribute__((aligned(64)));

struct stats_region {
	uint64_t		sr_magic;
	struct stats_master	sr_master;
	struct stats_worker	sr_worker[STATS_SLOTS];
	struct stats_dbwriter	sr_dbwriter[STATS_SLOTS];
};

/* Histogram bounds in nanoseconds, ascending (5e-05 s .. 10 s). */
extern const uint64_t	 stats_bounds_ns[STATS_NBOUNDS];

/* This process's slot: a dummy until stats_attach(). */
extern struct stats_worker	*stats_w;
extern struct stats_dbwriter	*stats_d;

/* ---- Writers (the slot's holder) ---- */

static inline uint64_t
stats_get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static inline void
stats_set(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* Not an atomic add: one writer per slot needs none. */
static inline void
stats_add(uint64_t *c, uint64_t n)
{
	stats_set(c, stats_get(c) + n);
}

static inline void
stats_inc(uint64_t *c)
{
	stats_add(c, 1);
}

static inline void
stats_dec(uint64_t *c)
{
	stats_set(c, stats_get(c) - 1);
}

/* Count a reply with this status (out of range: bucket 0). */
static inline void
stats_reply(int status)
{
	stats_inc(&stats_w->sw_replies[status > 0 &&
	    status < STATS_STATUS_MAX ? status : 0]);
}

/* Record a duration in seconds (negative counts as 0). */
void	stats_observe(struct stats_hist *, double secs);

/* Seconds on CLOCK_MONOTONIC, for durations. */
double	stats_now(void);

/*
 * Master, before the first fork: map the region (a new, zeroed one at
 * each call).  Returns 0, or -1 with errno set.  Children inherit it.
 */
int	stats_init(void);

/*
 * Master: a child is about to start in (role, slot) / was reaped
 * (clears the slot's process gauges; counters stay).
 */
void	stats_slot_begin(enum stats_role, int slot);
void	stats_slot_end(enum stats_role, int slot);

/* Master: a reload done (ok) or refused; a child respawned. */
void	stats_count_reload(int ok);
void	stats_count_restart(void);

/*
 * Child: make (role, slot) this process's slot (stats_w or stats_d) and
 * mark it held by us; stats_detach() at a clean exit gives it up.
 */
void	stats_attach(enum stats_role, int slot);
void	stats_detach(void);

/* The holder's heartbeat (the loop is alive), see STATS_STALE_MS. */
void	stats_beat(void);

/* This process's dependency state (sp_dep). */
void	stats_dep(enum stats_dep);

/*
 * A loop's instrumentation: the heartbeat every STATS_BEAT_S, calling
 * `tick` (may be NULL) after it, and the event-loop lag, observed once
 * per loop iteration: the time from the loop's wake-up to its next wait,
 * so how long an event that came in meanwhile waited for the loop.  An
 * EV_MINPRI ev_prepare, which runs after every other callback (and the
 * output flush), reads the clock and subtracts ev_now(), which libev set
 * right after its wait: one clock read and one callback per iteration.
 */
struct stats_loop {
	ev_prepare	 sl_prepare;
	ev_timer	 sl_timer;
	int		 sl_waited;	/* ev_now() is a wake-up's time */
	void		(*sl_tick)(void *);
	void		*sl_arg;
};

void	stats_loop_start(struct ev_loop *, struct stats_loop *,
	    void (*tick)(void *), void *arg);
void	stats_loop_stop(struct ev_loop *, struct stats_loop *);

/* ---- Readers ---- */

/* The region, or NULL before stats_init() (and in unit tests). */
const struct stats_region *stats_region(void);

/* Slots of the role ever used (1 + the highest index). */
int	stats_nslots(enum stats_role);

/* The role's slot `i` (< stats_nslots()). */
const struct stats_proc *stats_proc_of(enum stats_role, int i);

/*
 * 1 when a process holds the slot and beat within STATS_STALE_MS of
 * `now_ms` (CLOCK_MONOTONIC).
 */
int	stats_proc_fresh(const struct stats_proc *, uint64_t now_ms);

/*
 * Add up every slot of the role ever used into *out, a zeroed struct
 * stats_worker or stats_dbwriter: counters are totals, gauges too (the
 * master zeroes those of a slot nobody holds); the stats_proc part is
 * meaningless except sp_lag.
 */
void	stats_sum(enum stats_role, void *out);

/*
 * A dependency as the role's processes see it: down if any process with
 * a fresh heartbeat finds it down, or if none finds it up (processes
 * still trying for the first time count neither way).
 */
enum stats_dep	stats_dep_of(enum stats_role, uint64_t now_ms);

#endif /* WSGATE_STATS_H */
