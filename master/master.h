/*
 * The master process: supervision, signals, reload generations.
 */
#ifndef WSGATE_MASTER_H
#define WSGATE_MASTER_H

#include "config.h"

struct master_opts {
	const char	*mo_config_path;
	const char	*mo_pidfile;	/* -p, overrides the config's */
	int		 mo_daemonize;
};

/* Run the master; takes ownership of cfg.  Returns the exit status. */
int	master_main(struct config *cfg, const struct master_opts *);

#endif /* WSGATE_MASTER_H */
