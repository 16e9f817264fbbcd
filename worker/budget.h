/*
 * The worker loop's read budget.  An iteration handles at most
 * loop_budget units of input, a unit being one client message or one
 * upstream answer; a source found readable after that is read first
 * thing in the next iteration instead, oldest first, before anything
 * newly ready.  One iteration therefore never serves a whole backlog:
 * replies already computed go out, timers run, and new connections and
 * admin requests wait for one short iteration, not for every pending
 * input.  Units, not time: an iteration the kernel preempted or a CPU
 * quota paused has done no more work, and reading a thread's CPU clock
 * per read would cost more than the budget saves.
 *
 * A source put off stays in the poll set (level-triggered), so nothing
 * is lost and the loop does not block while reads wait.
 */
#ifndef WSGATE_BUDGET_H
#define WSGATE_BUDGET_H

#include <sys/queue.h>
#include <ev.h>

#include "stats.h"

/* Embedded in a source of reads. */
struct budget_item {
	TAILQ_ENTRY(budget_item) bi_entry;
	void		(*bi_read)(void *);
	void		*bi_arg;
	unsigned int	 bi_iter;	/* ev_iteration() it was last served */
	unsigned int	 bi_queued:1;
	enum stats_read_source bi_source;	/* for the metric */
};

/* `limit` units per iteration; 0: no budget (every read at once). */
void	budget_init(struct ev_loop *, unsigned int limit);

/* `n` units of input handled (messages, answers). */
void	budget_charge(unsigned int n);

/* read(arg) does what the source's read callback would have done. */
void	budget_item_init(struct budget_item *, enum stats_read_source,
	    void (*read)(void *), void *arg);

/*
 * First thing in a read callback.  0: read now.  1: return without
 * reading: the read waits for the next iteration (the budget is used up,
 * or it waits already), or it was served from the queue this iteration.
 */
int	budget_later(struct budget_item *);

/* The source goes away: forget its waiting read. */
void	budget_cancel(struct budget_item *);

#endif /* WSGATE_BUDGET_H */
