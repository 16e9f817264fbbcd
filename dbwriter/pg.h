/*
 * The dbwriter's PostgreSQL connection: non-blocking connect with
 * PQconnectStart/PQconnectPoll on the loop, table creation, reconnect
 * with exponential backoff.  Never blocks the loop.
 */
#ifndef WSGATE_PG_H
#define WSGATE_PG_H

#include <ev.h>
#include <libpq-fe.h>

#include "buf.h"
#include "config.h"
#include "resolve.h"

enum pg_state {
	PG_IDLE = 0,		/* waiting to (re)connect */
	PG_CONNECTING,
	PG_SETUP,		/* CREATE TABLE in flight */
	PG_PREPARE,		/* the insert statement being prepared */
	PG_READY,
	PG_BUSY,		/* a batch in flight (INSERT or COPY) */
	PG_STOPPED
};

/*
 * A batch finished: ok, or failed with SQLSTATE and message (sqlstate
 * "" when the connection broke: nothing is known about the batch).
 */
typedef void pg_done_fn(void *arg, int ok, const char *sqlstate,
    const char *msg);
/* The connection became ready (1) or was lost (0). */
typedef void pg_state_fn(void *arg, int ready);

#define PG_NPARAMS	8

/* Where a COPY stands (pg_copy()). */
enum pg_copy_phase {
	PG_COPY_NONE = 0,
	PG_COPY_START,		/* COPY sent, waiting for the server's go */
	PG_COPY_DATA,		/* the rows to hand to libpq */
	PG_COPY_END,		/* the end of data to hand to libpq */
	PG_COPY_SENT		/* all sent, waiting for the result */
};

/* One host of the conninfo's list, as libpq takes it (NULL: not given). */
struct pg_host {
	char			*ph_host;
	char			*ph_addr;	/* hostaddr */
	char			*ph_port;
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
	pg_done_fn		*pg_done;	/* the batch's callback */
	void			*pg_done_arg;
	int			 pg_failed;	/* a result of it failed */
	int			 pg_readonly;	/* left a read-only server */
	char			 pg_sqlstate[6];
	char			 pg_errmsg[256];
	enum pg_copy_phase	 pg_copy;
	struct buf		 pg_copy_data;	/* the COPY's rows */
	size_t			 pg_copy_off;	/* of them handed to libpq */
	pg_state_fn		*pg_on_state;	/* ready / lost */
	void			*pg_on_state_arg;
	/*
	 * A host list is tried one host per connection, names looked up
	 * off the loop first (pg.c).
	 */
	PQconninfoOption	*pg_opts;	/* the parsed conninfo */
	struct resolver		 pg_res;
	int			 pg_lookup;	/* the host list has names */
	struct pg_host		*pg_hosts;	/* none: the conninfo as is */
	size_t			 pg_nhosts;
	size_t			 pg_hosti;	/* the one being tried */
	char			*pg_why;	/* a failure without a PGconn */
};

/*
 * Set up a connection, not connected yet; `fn` is called whenever it
 * becomes ready or is lost.
 */
void	pg_init(struct pg *, struct ev_loop *, const struct config *,
	    pg_state_fn *fn, void *arg);

/* Start connecting; the connection keeps itself up from then on. */
void	pg_connect(struct pg *);

/* 1 when a batch can be sent now. */
int	pg_idle(const struct pg *);

/* 1 when connected and set up: idle, or with a batch in flight. */
int	pg_up(const struct pg *);

/*
 * Insert rows: the 8 parameters are PostgreSQL array literals (text
 * format) of request_key, user_id, client_id, status, response, error,
 * latency_ms and created_at.  Returns 0 (done will be called) or -1 if
 * the connection is not idle.  Duplicates of request_key are ignored.
 */
int	pg_insert(struct pg *, const char *const params[PG_NPARAMS],
	    pg_done_fn *done, void *arg);

/*
 * Insert rows with COPY ... FROM STDIN: `rows` holds them in COPY's text
 * format, columns as for pg_insert(), '\t' between them, '\n' after each
 * row.  Cheaper for the server than pg_insert() (no ON CONFLICT check, no
 * array parsing), but all or nothing: a request_key already in the table
 * fails the batch with SQLSTATE 23505.  Returns 0 (done will be called;
 * the rows were taken, *rows is an empty buffer to reuse) or -1 if the
 * connection is not idle (*rows untouched).
 */
int	pg_copy(struct pg *, struct buf *rows, pg_done_fn *done, void *arg);

/* Close the connection and stop reconnecting. */
void	pg_stop(struct pg *);

#endif /* WSGATE_PG_H */
