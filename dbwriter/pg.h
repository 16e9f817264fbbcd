/*
 * The dbwriter's PostgreSQL connection: non-blocking connect with
 * PQconnectStart/PQconnectPoll on the loop, table creation, reconnect
 * with exponential backoff.  Never blocks the loop.
 */
#ifndef WSGATE_PG_H
#define WSGATE_PG_H

#include <ev.h>
#include <libpq-fe.h>

#include "config.h"

enum pg_state {
	PG_IDLE = 0,		/* waiting to (re)connect */
	PG_CONNECTING,
	PG_SETUP,		/* CREATE TABLE in flight */
	PG_READY,
	PG_STOPPED
};

struct pg {
	struct ev_loop		*pg_loop;
	const struct config	*pg_cfg;
	PGconn			*pg_conn;
	enum pg_state		 pg_state;
	ev_io			 pg_io;
	ev_timer		 pg_retry;
	unsigned int		 pg_backoff_ms;
	int			 pg_io_events;
};

/* Start connecting; the connection keeps itself up from then on. */
void	pg_start(struct pg *, struct ev_loop *, const struct config *);

/* Close the connection and stop reconnecting. */
void	pg_stop(struct pg *);

#endif /* WSGATE_PG_H */
