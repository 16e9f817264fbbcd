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
 * worker/budget.c in a real libev loop over socket pairs, one iteration
 * at a time (EVRUN_ONCE): an iteration reads at most `limit` sources,
 * the rest are read first thing in the next ones, oldest first, before
 * sources that became readable since; a source that goes away while it
 * waits (budget_cancel) is never read; every put-off read is counted;
 * without a budget everything is read at once.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "tests/tap.h"
#include "stats.h"
#include "worker/budget.h"

#define NSRC	6

struct src {
	ev_io			 io;
	struct budget_item	 bi;
	int			 fd[2];
	int			 id;
	int			 reads;		/* times read */
	unsigned int		 iter;		/* ev_iteration() of the last */
};

static struct ev_loop	*loop;
static struct src	 srcs[NSRC];
static int		 order[64];	/* ids, in the order read */
static int		 norder;
static int		 later[64];	/* ids, in the order put off */
static int		 nlater;

/* What a source's read does: drain it, one unit of input. */
static void
src_read(void *arg)
{
	struct src	*s = arg;
	char		 buf[64];

	while (read(s->fd[0], buf, sizeof(buf)) > 0)
		;
	s->reads++;
	s->iter = ev_iteration(loop);
	if (norder < (int)(sizeof(order) / sizeof(order[0])))
		order[norder++] = s->id;
	budget_charge(1);
}

static void
src_cb(struct ev_loop *l, ev_io *io, int revents)
{
	struct src	*s = io->data;
	int		 waited = s->bi.bi_queued;

	(void)l;
	(void)revents;
	if (budget_later(&s->bi)) {
		/* Put off now, not still waiting (and still readable). */
		if (!waited && s->bi.bi_queued &&
		    nlater < (int)(sizeof(later) / sizeof(later[0])))
			later[nlater++] = s->id;
		return;
	}
	src_read(s);
}

static void
poke(int id)
{
	if (write(srcs[id].fd[1], "x", 1) != 1)
		diag("write: %s", strerror(errno));
}

static uint64_t
deferred(void)
{
	return stats_w->sw_reads_later[STATS_READ_CLIENT];
}

/* One loop iteration; the sources read in it, as "id id ...". */
static const char *
iteration_flags(int flags)
{
	static char	out[128];
	size_t		n = 0;
	int		i, from = norder;

	ev_run(loop, flags);
	out[0] = '\0';
	for (i = from; i < norder && n + 4 < sizeof(out); i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%d",
		    n > 0 ? " " : "", order[i]);
	return out;
}

static const char *
iteration(void)
{
	return iteration_flags(EVRUN_ONCE);
}

static void
setup(void)
{
	int	i;

	for (i = 0; i < NSRC; i++) {
		struct src *s = &srcs[i];

		memset(s, 0, sizeof(*s));
		s->id = i;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
		    s->fd) == -1)
			diag("socketpair: %s", strerror(errno));
		ev_io_init(&s->io, src_cb, s->fd[0], EV_READ);
		s->io.data = s;
		budget_item_init(&s->bi, STATS_READ_CLIENT, src_read, s);
		ev_io_start(loop, &s->io);
	}
}

static void
teardown(void)
{
	int	i;

	for (i = 0; i < NSRC; i++) {
		budget_cancel(&srcs[i].bi);
		ev_io_stop(loop, &srcs[i].io);
		close(srcs[i].fd[0]);
		close(srcs[i].fd[1]);
	}
}

int
main(void)
{
	char		 first[128], want[128];
	uint64_t	 d0;
	int		 i;

	tap_watchdog(20);
	loop = ev_loop_new(EVFLAG_AUTO);

	/* A budget of 2 sources an iteration. */
	budget_init(loop, 2);
	setup();
	d0 = deferred();
	for (i = 0; i < NSRC; i++)
		poke(i);
	snprintf(first, sizeof(first), "%s", iteration());
	is_int(norder, 2, "6 readable, budget 2: 2 read (%s)", first);
	is_int(deferred() - d0, NSRC - 2, "4 reads put off and counted");

	/* Two that were read become readable again: they wait their turn. */
	poke(order[0]);
	poke(order[1]);
	/*
	 * The 4 put off are read 2 per iteration in the order they were
	 * put off (their callbacks' order, epoll's), then the 2 readable
	 * again, put off in the second iteration.
	 */
	is_int(nlater, NSRC - 2, "4 put off in the first iteration");
	snprintf(want, sizeof(want), "%d %d", later[0], later[1]);
	is_str(iteration(), want, "iteration 2: the oldest 2 put off");
	is_int(nlater, NSRC, "the 2 readable again put off behind them");
	snprintf(want, sizeof(want), "%d %d", later[2], later[3]);
	is_str(iteration(), want, "iteration 3: the next 2, not the new");
	snprintf(want, sizeof(want), "%d %d", later[4], later[5]);
	is_str(iteration(), want, "iteration 4: the 2 readable again");
	for (i = 0; i < NSRC; i++)
		ok(srcs[i].reads == 1 + (i == order[0] || i == order[1]),
		    "source %d read %d time(s), none twice for one input", i,
		    srcs[i].reads);
	is_str(iteration_flags(EVRUN_NOWAIT), "",
	    "then nothing: the queue is empty");
	teardown();

	/* A source that goes away while it waits is never read. */
	norder = 0;
	setup();
	for (i = 0; i < NSRC; i++)
		poke(i);
	iteration();
	{
		int	gone = -1;

		for (i = 0; i < NSRC && gone == -1; i++)
			if (srcs[i].reads == 0)
				gone = i;
		/* What conn_close() and h1_conn_close() do. */
		budget_cancel(&srcs[gone].bi);
		ev_io_stop(loop, &srcs[gone].io);
		for (i = 0; i < 4; i++)
			iteration_flags(EVRUN_NOWAIT);
		is_int(srcs[gone].reads, 0, "source %d, cancelled while it "
		    "waited, never read", gone);
		is_int(norder, NSRC - 1, "the other %d read", NSRC - 1);
	}
	teardown();

	/* Without a budget every source is read in one iteration. */
	budget_init(loop, 0);
	norder = 0;
	d0 = deferred();
	setup();
	for (i = 0; i < NSRC; i++)
		poke(i);
	iteration();
	is_int(norder, NSRC, "budget 0: all 6 read in one iteration");
	is_int(deferred() - d0, 0, "budget 0: nothing put off");
	teardown();

	ev_loop_destroy(loop);
	done_testing();
}
