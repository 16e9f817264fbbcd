/*
 * The dbwriter's disk thread (spoolq.h).
 *
 * One thread per dbwriter owns the spool while the loop runs: the loop
 * queues jobs under a mutex and signals a condition variable; the thread
 * takes every queued job at once, runs them in order, then one
 * spool_sync() for those that need it, so that a burst of spooled
 * batches costs one fdatasync; it hands the jobs back and wakes the loop
 * with ev_async_send(), whose callback runs their completions.  One
 * thread keeps the spool single-threaded (spool.c is not thread-safe)
 * and the jobs in order, which the dbwriter relies on: commits in the
 * order batches were replayed, acknowledgements after the sync.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "spoolq.h"
#include "stats.h"
#include "util.h"

struct sq_job {
	TAILQ_ENTRY(sq_job)	 j_entry;
	int			 j_flags;
	spoolq_work_fn		*j_work;
	spoolq_done_fn		*j_done;
	void			*j_arg;
	int			 j_result;
};
TAILQ_HEAD(sq_jobs, sq_job);

struct spoolq {
	struct ev_loop		*q_loop;
	struct spool		*q_spool;
	pthread_t		 q_thread;
	pthread_mutex_t		 q_lock;
	pthread_cond_t		 q_cond;
	struct sq_jobs		 q_todo;	/* for the thread */
	struct sq_jobs		 q_done;	/* run, for the loop */
	int			 q_stopping;	/* under q_lock */
	int			 q_running;	/* the thread exists (loop side) */
	size_t			 q_busy;	/* loop side */
	ev_async		 q_async;
};

static void	*spoolq_main(void *);
static void	 spoolq_work(struct spool *, struct sq_jobs *);
static void	 spoolq_gauge(struct spool *);
static void	 spoolq_complete(struct spoolq *);
static void	 spoolq_async_cb(struct ev_loop *, ev_async *, int);

/*
 * wsgate_spool_bytes: the spool's size for the stats slot, from whoever
 * owns the spool now (the thread, or the loop before and after it).
 */
static void
spoolq_gauge(struct spool *sp)
{
	struct spool_stats	ss;

	spool_stats(sp, &ss);
	stats_set(&stats_d->sd_spool_bytes, ss.ss_bytes);
}

/* Run the jobs in order, then one sync for those that want it. */
static void
spoolq_work(struct spool *sp, struct sq_jobs *jobs)
{
	struct sq_job	*j;
	int		 sync = 0, r;

	TAILQ_FOREACH(j, jobs, j_entry) {
		j->j_result = j->j_work(sp, j->j_arg);
		sync |= j->j_flags & SPOOLQ_SYNC;
	}
	if (!sync || (r = spool_sync(sp)) == SPOOL_OK) {
		spoolq_gauge(sp);
		return;
	}
	/*
	 * Nothing buffered is durable: drop it, the jobs' owners try again
	 * (what an earlier segment of this sync did write is replayed
	 * twice at worst, which the insert absorbs).
	 */
	spool_discard(sp);
	TAILQ_FOREACH(j, jobs, j_entry)
		if ((j->j_flags & SPOOLQ_SYNC) && j->j_result == SPOOL_OK)
			j->j_result = r;
	spoolq_gauge(sp);
}

static void *
spoolq_main(void *arg)
{
	struct spoolq	*q = arg;
	struct sq_jobs	 jobs;

	TAILQ_INIT(&jobs);
	for (;;) {
		pthread_mutex_lock(&q->q_lock);
		while (TAILQ_EMPTY(&q->q_todo) && !q->q_stopping)
			pthread_cond_wait(&q->q_cond, &q->q_lock);
		if (TAILQ_EMPTY(&q->q_todo)) {
			pthread_mutex_unlock(&q->q_lock);
			return NULL;
		}
		TAILQ_CONCAT(&jobs, &q->q_todo, j_entry);
		pthread_mutex_unlock(&q->q_lock);

		spoolq_work(q->q_spool, &jobs);

		pthread_mutex_lock(&q->q_lock);
		TAILQ_CONCAT(&q->q_done, &jobs, j_entry);
		pthread_mutex_unlock(&q->q_lock);
		ev_async_send(q->q_loop, &q->q_async);
	}
}

/* Run the completions of the jobs the thread finished, in order. */
static void
spoolq_complete(struct spoolq *q)
{
	struct sq_jobs	 done;
	struct sq_job	*j;

	TAILQ_INIT(&done);
	pthread_mutex_lock(&q->q_lock);
	TAILQ_CONCAT(&done, &q->q_done, j_entry);
	pthread_mutex_unlock(&q->q_lock);
	while ((j = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, j, j_entry);
		q->q_busy--;
		j->j_done(j->j_arg, j->j_result);
		free(j);
	}
}

static void
spoolq_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	spoolq_complete(w->data);
}

struct spoolq *
spoolq_start(struct ev_loop *loop, struct spool *sp)
{
	struct spoolq	*q;
	sigset_t	 all, old;
	int		 rc;

	spoolq_gauge(sp);
	q = xcalloc(1, sizeof(*q));
	q->q_loop = loop;
	q->q_spool = sp;
	TAILQ_INIT(&q->q_todo);
	TAILQ_INIT(&q->q_done);
	pthread_mutex_init(&q->q_lock, NULL);
	pthread_cond_init(&q->q_cond, NULL);
	ev_async_init(&q->q_async, spoolq_async_cb);
	q->q_async.data = q;
	ev_async_start(loop, &q->q_async);
	/* Signals are the loop's (child.c): the thread blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&q->q_thread, NULL, spoolq_main, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		ev_async_stop(loop, &q->q_async);
		pthread_cond_destroy(&q->q_cond);
		pthread_mutex_destroy(&q->q_lock);
		free(q);
		errno = rc;
		return NULL;
	}
	q->q_running = 1;
	return q;
}

void
spoolq_run(struct spoolq *q, int flags, spoolq_work_fn *work,
    spoolq_done_fn *done, void *arg)
{
	struct sq_jobs	 one;
	struct sq_job	*j;

	j = xcalloc(1, sizeof(*j));
	j->j_flags = flags;
	j->j_work = work;
	j->j_done = done;
	j->j_arg = arg;
	if (!q->q_running) {
		TAILQ_INIT(&one);
		TAILQ_INSERT_TAIL(&one, j, j_entry);
		spoolq_work(q->q_spool, &one);
		done(arg, j->j_result);
		free(j);
		return;
	}
	q->q_busy++;
	pthread_mutex_lock(&q->q_lock);
	TAILQ_INSERT_TAIL(&q->q_todo, j, j_entry);
	pthread_cond_signal(&q->q_cond);
	pthread_mutex_unlock(&q->q_lock);
}

size_t
spoolq_busy(const struct spoolq *q)
{
	return q->q_busy;
}

void
spoolq_stop(struct spoolq *q)
{
	if (!q->q_running)
		return;
	pthread_mutex_lock(&q->q_lock);
	q->q_stopping = 1;
	pthread_cond_signal(&q->q_cond);
	pthread_mutex_unlock(&q->q_lock);
	pthread_join(q->q_thread, NULL);
	q->q_running = 0;
	ev_async_stop(q->q_loop, &q->q_async);
	spoolq_complete(q);
}

void
spoolq_free(struct spoolq *q)
{
	if (q == NULL)
		return;
	spoolq_stop(q);
	pthread_cond_destroy(&q->q_cond);
	pthread_mutex_destroy(&q->q_lock);
	free(q);
}
