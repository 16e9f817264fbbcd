/*
 * The dbwriter's disk thread: every call on its spool (spool.h), any of
 * which may wait for the disk, runs on one thread of its own, never on
 * the event loop.  Jobs run one at a time in the order queued; each
 * one's completion runs on the loop afterwards, in the same order.
 */
#ifndef WSGATE_SPOOLQ_H
#define WSGATE_SPOOLQ_H

#include <stddef.h>
#include <ev.h>

#include "spool.h"

/* spool_sync() after `work`: the job succeeds only if both do. */
#define SPOOLQ_SYNC	0x01

/*
 * Runs on the disk thread: may call spool_*() on the spool and touch
 * what `arg` points to, which the loop leaves alone until `done`.
 * Returns SPOOL_OK, SPOOL_FULL or -1.
 */
typedef int	spoolq_work_fn(struct spool *, void *arg);

/* Runs on the loop: `result` is work's, or spool_sync()'s if that failed. */
typedef void	spoolq_done_fn(void *arg, int result);

struct spoolq;

/*
 * Hand `spool` over to a new thread; the caller calls no spool_*() on it
 * until spoolq_stop().
 */
struct spoolq	*spoolq_start(struct ev_loop *, struct spool *);

/*
 * Queue a job.  The queued SPOOLQ_SYNC jobs that the thread finds
 * together share one spool_sync() (one fdatasync for all of them).
 * After spoolq_stop() the job runs at once, before this returns.
 */
void		 spoolq_run(struct spoolq *, int flags, spoolq_work_fn *,
		    spoolq_done_fn *, void *arg);

/* Jobs queued whose completion has not run yet. */
size_t		 spoolq_busy(const struct spoolq *);

/*
 * Let the thread finish what is queued, join it and run the remaining
 * completions; from then on jobs run inline (the loop has stopped).
 * The spool is the caller's again.
 */
void		 spoolq_stop(struct spoolq *);

/* Free a stopped queue; NULL is a no-op. */
void		 spoolq_free(struct spoolq *);

#endif /* WSGATE_SPOOLQ_H */
