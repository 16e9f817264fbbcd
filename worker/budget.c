/*
 * The worker loop's read budget, see budget.h.
 *
 * The queue is served by an EV_MAXPRI ev_check: check watchers become
 * pending right after the wait, and libev invokes pending watchers by
 * priority, so it runs before any I/O callback of the iteration.  It
 * serves at least one waiting read, so every read put off is done
 * within as many iterations as there were reads ahead of it.  An ev_idle
 * runs alongside only so that the loop polls without blocking.
 */
#include "autoconf.h"

#include "budget.h"

static struct {
	struct ev_loop		*loop;
	unsigned int		 limit;		/* units per iteration */
	unsigned int		 used;		/* in iteration `iter` */
	unsigned int		 iter;
	TAILQ_HEAD(, budget_item) queue;
	ev_check		 check;
	ev_idle			 idle;
} budget;

static void	budget_check_cb(struct ev_loop *, ev_check *, int);
static void	budget_idle_cb(struct ev_loop *, ev_idle *, int);
static int	budget_spent(void);

void
budget_init(struct ev_loop *loop, unsigned int limit)
{
	budget.loop = loop;
	budget.limit = limit;
	TAILQ_INIT(&budget.queue);
	ev_check_init(&budget.check, budget_check_cb);
	ev_set_priority(&budget.check, EV_MAXPRI);
	ev_idle_init(&budget.idle, budget_idle_cb);
}

void
budget_item_init(struct budget_item *bi, enum stats_read_source source,
    void (*read)(void *), void *arg)
{
	bi->bi_source = source;
	bi->bi_read = read;
	bi->bi_arg = arg;
	bi->bi_iter = 0;
	bi->bi_queued = 0;
}

/* The units used in this iteration (a new one starts from 0). */
static unsigned int *
budget_used(void)
{
	unsigned int	iter = ev_iteration(budget.loop);

	if (budget.iter != iter) {
		budget.iter = iter;
		budget.used = 0;
	}
	return &budget.used;
}

static int
budget_spent(void)
{
	return *budget_used() >= budget.limit;
}

void
budget_charge(unsigned int n)
{
	/* Nothing to count without a budget (nor before budget_init()). */
	if (budget.limit != 0)
		*budget_used() += n;
}

int
budget_later(struct budget_item *bi)
{
	if (budget.limit == 0)
		return 0;
	if (bi->bi_queued || bi->bi_iter == ev_iteration(budget.loop))
		return 1;
	if (!budget_spent())
		return 0;
	bi->bi_queued = 1;
	TAILQ_INSERT_TAIL(&budget.queue, bi, bi_entry);
	stats_add(&stats_w->sw_reads_later[bi->bi_source], 1);
	if (!ev_is_active(&budget.check)) {
		ev_check_start(budget.loop, &budget.check);
		ev_idle_start(budget.loop, &budget.idle);
	}
	return 1;
}

void
budget_cancel(struct budget_item *bi)
{
	if (bi->bi_queued) {
		TAILQ_REMOVE(&budget.queue, bi, bi_entry);
		bi->bi_queued = 0;
	}
}

static void
budget_check_cb(struct ev_loop *loop, ev_check *chk, int revents)
{
	struct budget_item	*bi;
	unsigned int		 iter = ev_iteration(loop);
	int			 served = 0;

	(void)chk;
	(void)revents;
	while ((bi = TAILQ_FIRST(&budget.queue)) != NULL) {
		if (served++ > 0 && budget_spent())
			return;
		TAILQ_REMOVE(&budget.queue, bi, bi_entry);
		bi->bi_queued = 0;
		bi->bi_iter = iter;
		bi->bi_read(bi->bi_arg);
	}
	ev_check_stop(loop, &budget.check);
	ev_idle_stop(loop, &budget.idle);
}

static void
budget_idle_cb(struct ev_loop *loop, ev_idle *idle, int revents)
{
	(void)loop;
	(void)idle;
	(void)revents;
}
