/*
 * What every child process (worker, dbwriter) does the same way on its
 * libev loop: the signals the master sends it.
 */
#ifndef WSGATE_CHILD_H
#define WSGATE_CHILD_H

#include <ev.h>

#define CHILD_NSIGNALS	5

/* Called in loop context for TERM, INT (stop) and QUIT (drain). */
typedef void child_stop_fn(void *arg, int signum);

struct child_signals {
	ev_signal	 cs_sig[CHILD_NSIGNALS];
	child_stop_fn	*cs_stop;
	void		*cs_arg;
};

/*
 * Watch the master's signals: TERM/INT/QUIT call `stop`, USR1 reopens
 * the log file, HUP is ignored (reload is the master's job).
 */
void	child_signals_start(struct ev_loop *, struct child_signals *,
	    child_stop_fn *stop, void *arg);

#endif /* WSGATE_CHILD_H */
