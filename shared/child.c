/*
 * Signal handling shared by the child roles, on their libev loops.
 */
#include "autoconf.h"

#include <signal.h>

#include "child.h"
#include "log.h"

static void	child_signal_cb(struct ev_loop *, ev_signal *, int);

static void
child_signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct child_signals	*cs = s->data;

	(void)loop;
	(void)revents;
	switch (s->signum) {
	case SIGTERM:
	case SIGINT:
	case SIGQUIT:
		cs->cs_stop(cs->cs_arg, s->signum);
		break;
	case SIGUSR1:
		if (log_reopen() == -1)
			log_warn("cannot reopen log file");
		break;
	default:
		/* HUP: a stray reload signal must not kill a child. */
		break;
	}
}

void
child_signals_start(struct ev_loop *loop, struct child_signals *cs,
    child_stop_fn *stop, void *arg)
{
	static const int sigs[CHILD_NSIGNALS] = {
		SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP
	};
	int	i;

	cs->cs_stop = stop;
	cs->cs_arg = arg;
	for (i = 0; i < CHILD_NSIGNALS; i++) {
		ev_signal_init(&cs->cs_sig[i], child_signal_cb, sigs[i]);
		cs->cs_sig[i].data = cs;
		ev_signal_start(loop, &cs->cs_sig[i]);
	}
}
