/*
 * PostgreSQL connection management for the dbwriter.
 *
 * PQconnectStart() with a host name resolves it synchronously; configure
 * `hostaddr` (or a numeric host) in pg_conninfo to keep even that off the
 * loop.  Everything else is PQconnectPoll()/PQconsumeInput() driven by
 * ev_io on PQsocket().
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "util.h"

#define PG_BACKOFF_MIN_MS	100
#define PG_BACKOFF_MAX_MS	30000

static void	pg_io_cb(struct ev_loop *, ev_io *, int);
static void	pg_retry_cb(struct ev_loop *, ev_timer *, int);
static void	pg_connect(struct pg *);
static void	pg_poll_connect(struct pg *);
static void	pg_fail(struct pg *, const char *);
static void	pg_watch(struct pg *, int);
static void	pg_setup(struct pg *);
static void	pg_drain_results(struct pg *);
static void	pg_ready(struct pg *);

/* Keep one ev_io on the connection's socket with the wanted events. */
static void
pg_watch(struct pg *pg, int events)
{
	int	fd = PQsocket(pg->pg_conn);

	if (ev_is_active(&pg->pg_io) && pg->pg_io.fd == fd &&
	    pg->pg_io_events == events)
		return;
	ev_io_stop(pg->pg_loop, &pg->pg_io);
	if (fd < 0 || events == 0)
		return;
	ev_io_set(&pg->pg_io, fd, events);
	pg->pg_io_events = events;
	ev_io_start(pg->pg_loop, &pg->pg_io);
}

static void
pg_fail(struct pg *pg, const char *what)
{
	char	 reason[512], *nl;

	snprintf(reason, sizeof(reason), "%s", pg->pg_conn != NULL ?
	    PQerrorMessage(pg->pg_conn) : "out of memory");
	/* libpq messages span lines; keep the log one line per event. */
	for (nl = reason; *nl != '\0'; nl++)
		if (*nl == '\n' || *nl == '\t')
			*nl = ' ';
	while (nl > reason && nl[-1] == ' ')
		*--nl = '\0';
	ev_io_stop(pg->pg_loop, &pg->pg_io);
	if (pg->pg_conn != NULL)
		PQfinish(pg->pg_conn);
	pg->pg_conn = NULL;
	pg->pg_state = PG_IDLE;
	log_warnx("%s: %s retry_in=%ums", what, reason, pg->pg_backoff_ms);
	ev_timer_set(&pg->pg_retry, pg->pg_backoff_ms / 1000.0, 0.);
	ev_timer_start(pg->pg_loop, &pg->pg_retry);
	pg->pg_backoff_ms *= 2;
	if (pg->pg_backoff_ms > PG_BACKOFF_MAX_MS)
		pg->pg_backoff_ms = PG_BACKOFF_MAX_MS;
}

static void
pg_connect(struct pg *pg)
{
	pg->pg_state = PG_CONNECTING;
	pg->pg_conn = PQconnectStart(pg->pg_cfg->c_pg_conninfo);
	if (pg->pg_conn == NULL || PQstatus(pg->pg_conn) == CONNECTION_BAD) {
		pg_fail(pg, "PostgreSQL connection failed");
		return;
	}
	/* Per libpq, poll as if the last result was PGRES_POLLING_WRITING. */
	pg_watch(pg, EV_WRITE);
}

static void
pg_poll_connect(struct pg *pg)
{
	switch (PQconnectPoll(pg->pg_conn)) {
	case PGRES_POLLING_READING:
		pg_watch(pg, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		pg_watch(pg, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(pg->pg_conn, 1) == -1) {
			pg_fail(pg, "PostgreSQL connection failed");
			break;
		}
		log_info("connected to PostgreSQL server_version=%d",
		    PQserverVersion(pg->pg_conn));
		pg->pg_backoff_ms = PG_BACKOFF_MIN_MS;
		pg_setup(pg);
		break;
	default:
		pg_fail(pg, "PostgreSQL connection failed");
		break;
	}
}

/* Create the records table (PROTOCOL.md section 5) when asked to. */
static void
pg_setup(struct pg *pg)
{
	char	sql[1024];

	if (!pg->pg_cfg->c_db_create_table) {
		pg_ready(pg);
		return;
	}
	snprintf(sql, sizeof(sql),
	    "CREATE TABLE IF NOT EXISTS %s ("
	    " id bigserial PRIMARY KEY,"
	    " request_key text NOT NULL UNIQUE,"
	    " user_id text NOT NULL,"
	    " client_id text,"
	    " status integer,"
	    " response text,"
	    " error text,"
	    " latency_ms double precision,"
	    " created_at timestamptz NOT NULL DEFAULT now())",
	    pg->pg_cfg->c_pg_table);
	if (!PQsendQuery(pg->pg_conn, sql)) {
		pg_fail(pg, "PostgreSQL create table failed");
		return;
	}
	pg->pg_state = PG_SETUP;
	pg_watch(pg, EV_READ | (PQflush(pg->pg_conn) == 1 ? EV_WRITE : 0));
}

static void
pg_ready(struct pg *pg)
{
	pg->pg_state = PG_READY;
	if (pg->pg_cfg->c_db_create_table)
		log_info("table ready table=%s", pg->pg_cfg->c_pg_table);
	pg_watch(pg, EV_READ);
}

/* Collect results of the statement in flight without blocking. */
static void
pg_drain_results(struct pg *pg)
{
	PGresult	*res;
	int		 failed = 0;

	if (!PQconsumeInput(pg->pg_conn)) {
		pg_fail(pg, "PostgreSQL connection lost");
		return;
	}
	if (PQflush(pg->pg_conn) == 1) {
		pg_watch(pg, EV_READ | EV_WRITE);
		return;
	}
	while (!PQisBusy(pg->pg_conn)) {
		if ((res = PQgetResult(pg->pg_conn)) == NULL) {
			if (pg->pg_state == PG_SETUP && !failed)
				pg_ready(pg);
			return;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK) {
			char *nl, msg[512];
			snprintf(msg, sizeof(msg), "%s",
			    PQresultErrorMessage(res));
			if ((nl = strchr(msg, '\n')) != NULL)
				*nl = '\0';
			log_warnx("PostgreSQL statement failed: %s", msg);
			failed = 1;
		}
		PQclear(res);
		if (failed && pg->pg_state == PG_SETUP) {
			/* Drain, then retry the set-up on a new connection. */
			while ((res = PQgetResult(pg->pg_conn)) != NULL)
				PQclear(res);
			pg_fail(pg, "PostgreSQL set-up failed");
			return;
		}
	}
	pg_watch(pg, EV_READ);
}

static void
pg_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct pg	*pg = io->data;
	PGnotify	*n;

	(void)loop;
	(void)revents;
	switch (pg->pg_state) {
	case PG_CONNECTING:
		pg_poll_connect(pg);
		break;
	case PG_SETUP:
		pg_drain_results(pg);
		break;
	case PG_READY:
		/* Idle: a readable socket means a notice, or the server left. */
		if (!PQconsumeInput(pg->pg_conn) ||
		    PQstatus(pg->pg_conn) != CONNECTION_OK) {
			pg_fail(pg, "PostgreSQL connection lost");
			return;
		}
		while ((n = PQnotifies(pg->pg_conn)) != NULL)
			PQfreemem(n);
		break;
	default:
		break;
	}
}

static void
pg_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	pg_connect(t->data);
}

void
pg_start(struct pg *pg, struct ev_loop *loop, const struct config *cfg)
{
	memset(pg, 0, sizeof(*pg));
	pg->pg_loop = loop;
	pg->pg_cfg = cfg;
	pg->pg_backoff_ms = PG_BACKOFF_MIN_MS;
	ev_init(&pg->pg_io, pg_io_cb);
	pg->pg_io.data = pg;
	ev_timer_init(&pg->pg_retry, pg_retry_cb, 0., 0.);
	pg->pg_retry.data = pg;
	pg_connect(pg);
}

void
pg_stop(struct pg *pg)
{
	ev_io_stop(pg->pg_loop, &pg->pg_io);
	ev_timer_stop(pg->pg_loop, &pg->pg_retry);
	if (pg->pg_conn != NULL)
		PQfinish(pg->pg_conn);
	pg->pg_conn = NULL;
	pg->pg_state = PG_STOPPED;
}
