/*
 * The worker: accepts on the inherited listeners and runs every
 * connection on one libev loop.  QUIT drains (stop accepting at once,
 * finish what was accepted); TERM stops (close connections now); both are
 * bounded by shutdown_timeout.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "child.h"
#include "conn.h"
#include "persist.h"
#include "pipeline.h"
#include "log.h"
#include "ring.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

#define ACCEPT_BATCH		64	/* per readiness, then let others run */
#define ACCEPT_RESUME_S		0.1	/* after EMFILE/ENFILE */
#define ACCEPT_YIELD_S		0.01	/* nearly full: let siblings accept */
/*
 * Accept balance: a worker with more than ACCEPT_SLACK connections over
 * the least loaded sibling that is accepting leaves new connections to
 * it, for at most ACCEPT_DEFER_S (the sibling may be busy).
 */
#define ACCEPT_SLACK		4
#define ACCEPT_DEFER_S		0.002

static struct worker	 worker;	/* large: w_rbuf */
static struct stats_loop worker_stats;
static const struct ring *worker_ring;	/* sampled for the ring gauges */

static void	worker_accept_cb(struct ev_loop *, ev_io *, int);
static void	worker_accept_resume_cb(struct ev_loop *, ev_timer *, int);
static void	worker_stop_cb(void *, int);
static void	worker_acked_cb(void *);
static void	worker_stop_timer_cb(struct ev_loop *, ev_timer *, int);
static void	worker_sweep_cb(struct ev_loop *, ev_check *, int);
static void	worker_flush_cb(struct ev_loop *, ev_prepare *, int);
static void	worker_accept_enable(struct worker *, int);
static void	worker_accept_watch(struct worker *, int);
static void	worker_stop_accepting(struct worker *);
static void	worker_begin_stop(struct worker *, int);
static void	worker_reject(int);
static void	worker_tick(void *);

static void
worker_accept_enable(struct worker *w, int on)
{
	stats_set(&stats_w->sw_accepting, on && w->w_accepting);
	worker_accept_watch(w, on);
}

/* Watch the listeners or not (siblings are not told: a short pause). */
static void
worker_accept_watch(struct worker *w, int on)
{
	size_t	i;

	for (i = 0; i < w->w_naccept; i++) {
		if (w->w_accept[i].wa_l.wl_fd == -1)
			continue;
		if (on)
			ev_io_start(w->w_loop, &w->w_accept[i].wa_io);
		else
			ev_io_stop(w->w_loop, &w->w_accept[i].wa_io);
	}
}

/* Draining: never accept again; the master keeps the sockets open. */
static void
worker_stop_accepting(struct worker *w)
{
	size_t	i;

	worker_accept_enable(w, 0);
	ev_timer_stop(w->w_loop, &w->w_accept_resume);
	for (i = 0; i < w->w_naccept; i++) {
		if (w->w_accept[i].wa_l.wl_fd != -1)
			close(w->w_accept[i].wa_l.wl_fd);
		w->w_accept[i].wa_l.wl_fd = -1;
	}
	w->w_accepting = 0;
}

/* Over max_connections: tell an HTTP client why, then close. */
static void
worker_reject(int fd)
{
	static const char resp[] =
	    "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 20\r\n"
	    "Connection: close\r\nRetry-After: 1\r\n\r\n"
	    "too many connections";

	(void)!write(fd, resp, sizeof(resp) - 1);
	close(fd);
	stats_inc(&stats_w->sw_handshakes_failed[STATS_HS_TOO_MANY]);
}

/* Every STATS_BEAT_S: the slot's ring, for wsgate_ring_* (metrics.c). */
static void
worker_tick(void *arg)
{
	(void)arg;
	if (worker_ring == NULL)
		return;
	stats_set(&stats_w->sw_ring_bytes, ring_used_bytes(worker_ring));
	stats_set(&stats_w->sw_ring_records, ring_count(worker_ring));
}

/*
 * The fewest client sockets a sibling worker has that is taking new
 * connections (alive, not draining, not stepping aside), or UINT64_MAX.
 * The kernel wakes every worker for a new connection and the first to
 * call accept() gets it, so without this one worker could end up with
 * all of a burst.
 */
static uint64_t
worker_least_sibling(const struct worker *w)
{
	const struct stats_worker	*sw;
	uint64_t			 least = UINT64_MAX, n, now = now_ms();
	int				 i;

	for (i = 0; i < stats_nslots(STATS_WORKER); i++) {
		if (i == w->w_slot)
			continue;
		sw = (const struct stats_worker *)(const void *)
		    stats_proc_of(STATS_WORKER, i);
		if (!stats_proc_fresh(&sw->sw_proc, now) ||
		    !stats_get(&sw->sw_accepting))
			continue;
		if ((n = stats_get(&sw->sw_sockets)) < least)
			least = n;
	}
	return least;
}

/*
 * 1 to leave the pending connection to a lighter sibling, which the
 * kernel woke for it too: we stop watching the listeners for
 * ACCEPT_DEFER_S.  0 once it has waited that long (the sibling is busy):
 * then we take it.
 */
static int
worker_accept_defer(struct worker *w)
{
	ev_tstamp	now = ev_now(w->w_loop);

	/* A mark older than a deferral could last is from an earlier one. */
	if (w->w_defer_since == 0 ||
	    now - w->w_defer_since > 4 * ACCEPT_DEFER_S)
		w->w_defer_since = now;
	if (now - w->w_defer_since >= ACCEPT_DEFER_S)
		return 0;
	worker_accept_watch(w, 0);
	ev_timer_set(&w->w_accept_resume, ACCEPT_DEFER_S, 0.);
	ev_timer_start(w->w_loop, &w->w_accept_resume);
	return 1;
}

static void
worker_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker_accept	*wa = io->data;
	struct worker		*w = wa->wa_worker;
	uint64_t		 least;
	int			 i, fd;

	(void)loop;
	(void)revents;
	least = w->w_cfg->c_workers > 1 ? worker_least_sibling(w) : UINT64_MAX;
	for (i = 0; i < ACCEPT_BATCH && w->w_accepting; i++) {
		if (least != UINT64_MAX && w->w_nconns > least + ACCEPT_SLACK &&
		    worker_accept_defer(w))
			return;
		fd = accept4(wa->wa_l.wl_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EAGAIN:
#if EAGAIN != EWOULDBLOCK
			case EWOULDBLOCK:
#endif
				return;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
				continue;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				/*
				 * Out of descriptors or memory: pause
				 * accepting instead of spinning on a
				 * listener that stays readable.
				 */
				if (now_ms() - w->w_emfile_logged > 1000) {
					log_warn("accept paused on %s",
					    wa->wa_l.wl_name);
					w->w_emfile_logged = now_ms();
				}
				worker_accept_enable(w, 0);
				ev_timer_set(&w->w_accept_resume,
				    ACCEPT_RESUME_S, 0.);
				ev_timer_start(w->w_loop, &w->w_accept_resume);
				return;
			default:
				log_warn("accept on %s", wa->wa_l.wl_name);
				return;
			}
		}
		w->w_defer_since = 0;
		if (w->w_nconns >= w->w_cfg->c_max_connections) {
			worker_reject(fd);
			continue;
		}
		conn_new(w, fd, wa->wa_l.wl_admin,
		    wa->wa_l.wl_ssl ? w->w_ssl_ctx : NULL);
		/*
		 * Nearly full while siblings may have room: step aside for a
		 * moment so they take the next connections [nginx
		 * accept_disabled].  A lone worker fills up, then rejects.
		 */
		if (w->w_cfg->c_workers > 1 && w->w_nconns >=
		    w->w_cfg->c_max_connections / 8 * 7) {
			worker_accept_enable(w, 0);
			ev_timer_set(&w->w_accept_resume, ACCEPT_YIELD_S, 0.);
			ev_timer_start(w->w_loop, &w->w_accept_resume);
			return;
		}
	}
}

static void
worker_accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker	*w = t->data;

	(void)loop;
	(void)revents;
	if (w->w_accepting)
		worker_accept_enable(w, 1);
}

/*
 * A draining worker exits once its connections are gone, its requests
 * answered and every record acknowledged by a dbwriter.
 */
void
worker_conn_gone(struct worker *w)
{
	if (w->w_draining && w->w_nconns == 0 && pipeline_pending() == 0 &&
	    persist_pending() == 0)
		ev_break(w->w_loop, EVBREAK_ALL);
}

static void
worker_acked_cb(void *arg)
{
	worker_conn_gone(arg);
}

/*
 * QUIT (drain): stop accepting, let connections finish; WebSockets stay
 * until late in shutdown_timeout.  TERM: stop accepting, close
 * connections now.  Either way WebSockets get a 1001 Close at a random
 * moment of a window, so thousands of clients do not reconnect at once.
 */
static void
worker_begin_stop(struct worker *w, int sig)
{
	struct conn	*c, *next;
	double		 grace = w->w_cfg->c_shutdown_timeout / 1000.0;
	double		 now = ev_now(w->w_loop), from, span;

	if (w->w_draining == SIGTERM || w->w_draining == sig)
		return;
	if (!w->w_draining) {
		log_info("%s slot=%d generation=%u connections=%u",
		    sig == SIGQUIT ? "draining" : "stopping", w->w_slot,
		    w->w_generation, w->w_nconns);
		worker_stop_accepting(w);
		ev_timer_set(&w->w_stop_timer, grace, 0.);
		ev_timer_start(w->w_loop, &w->w_stop_timer);
	}
	w->w_draining = sig == SIGQUIT ? SIGQUIT : SIGTERM;
	if (sig == SIGQUIT) {
		from = 0.5 * grace;
		span = 0.4 * grace;
	} else {
		from = 0;
		span = 0.5 * grace;
	}
	for (c = TAILQ_FIRST(&w->w_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, c_entry);
		switch (c->c_state) {
		case CONN_WS:
			c->c_close_at = now + from + span * drand48();
			conn_timer_update(c);
			break;
		case CONN_TLS_HANDSHAKE:
		case CONN_READ_HEAD:
		case CONN_LINGER:
			if (sig != SIGQUIT)
				conn_close(c);
			break;
		default:
			break;
		}
	}
	worker_conn_gone(w);
}

/* TERM, INT or QUIT from the master (child.c). */
static void
worker_stop_cb(void *arg, int signum)
{
	worker_begin_stop(arg, signum);
}

static void
worker_stop_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker	*w = t->data;
	struct conn	*c;

	(void)revents;
	log_warnx("shutdown_timeout reached, closing connections=%u",
	    w->w_nconns);
	while ((c = TAILQ_FIRST(&w->w_conns)) != NULL)
		conn_close(c);
	ev_break(loop, EVBREAK_ALL);
}

static void
worker_sweep_cb(struct ev_loop *loop, ev_check *chk, int revents)
{
	(void)loop;
	(void)revents;
	conn_sweep(chk->data);
}

static void
worker_flush_cb(struct ev_loop *loop, ev_prepare *prep, int revents)
{
	(void)loop;
	(void)revents;
	conn_flush_all(prep->data);
}

int
worker_main(struct config *cfg, SSL_CTX *ssl_ctx, struct worker_listener *wl,
    size_t nwl, const char *ipc_path, void *ring_mem, size_t ring_size,
    int slot, unsigned int generation)
{
	struct worker	*w = &worker;
	size_t		 i;

	srand48((long)getpid() ^ (long)now_ms());

	memset(w, 0, sizeof(*w));
	w->w_cfg = cfg;
	w->w_ssl_ctx = ssl_ctx;
	w->w_slot = slot;
	w->w_generation = generation;
	TAILQ_INIT(&w->w_conns);
	TAILQ_INIT(&w->w_dead);
	TAILQ_INIT(&w->w_flush);
	/* Workers never hold the database password. */
	config_wipe_pg(cfg);

	if ((w->w_loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot create event loop");
	stats_attach(STATS_WORKER, slot);
	child_signals_start(w->w_loop, &w->w_signals, worker_stop_cb, w);
	ev_timer_init(&w->w_stop_timer, worker_stop_timer_cb, 0., 0.);
	w->w_stop_timer.data = w;
	ev_timer_init(&w->w_accept_resume, worker_accept_resume_cb,
	    ACCEPT_RESUME_S, 0.);
	w->w_accept_resume.data = w;
	ev_check_init(&w->w_sweep, worker_sweep_cb);
	w->w_sweep.data = w;
	ev_check_start(w->w_loop, &w->w_sweep);
	budget_init(w->w_loop, cfg->c_loop_budget);
	ev_prepare_init(&w->w_flusher, worker_flush_cb);
	w->w_flusher.data = w;
	ev_prepare_start(w->w_loop, &w->w_flusher);

	for (i = 0; i < nwl; i++) {
		struct worker_accept *wa = &w->w_accept[i];
		wa->wa_l = wl[i];
		wa->wa_worker = w;
		ev_io_init(&wa->wa_io, worker_accept_cb, wl[i].wl_fd, EV_READ);
		wa->wa_io.data = wa;
	}
	w->w_naccept = nwl;
	w->w_accepting = 1;
	worker_accept_enable(w, 1);

	persist_init(w->w_loop, cfg, ring_mem, ring_size, ipc_path, slot,
	    generation, worker_acked_cb, w);
	pipeline_init(w);
	worker_ring = ring_mem;
	worker_tick(NULL);
	stats_loop_start(w->w_loop, &worker_stats, worker_tick, NULL);
	log_info("worker started slot=%d generation=%u", slot, generation);
	ev_run(w->w_loop, 0);

	worker_stop_accepting(w);
	while (!TAILQ_EMPTY(&w->w_conns))
		conn_close(TAILQ_FIRST(&w->w_conns));
	pipeline_shutdown();
	if (persist_pending() > 0)
		log_warnx("exiting with records not acknowledged records=%lu "
		    "slot=%d (the next worker of this slot sends them)",
		    persist_pending(), slot);
	persist_shutdown();
	conn_sweep(w);
	stats_loop_stop(w->w_loop, &worker_stats);
	worker_tick(NULL);
	stats_detach();
	log_info("worker exiting slot=%d generation=%u", slot, generation);
	config_free(cfg);
	return 0;
}
