/*
 * PostgreSQL connection management for the dbwriter.
 *
 * PQconnectStart() with a host name would resolve it synchronously: the
 * names of the conninfo's host list are looked up off the loop first
 * (resolve.h) and libpq gets their addresses as `hostaddr`, with `host`
 * kept for TLS, Kerberos and the password file.  Everything else is
 * PQconnectPoll()/PQconsumeInput() driven by ev_io on PQsocket().
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pg.h"
#include "stats.h"
#include "util.h"

#define PG_BACKOFF_MIN_MS	100
#define PG_BACKOFF_MAX_MS	30000
#define PG_CONNECT_TIMEOUT_S	10	/* without connect_timeout in conninfo */
#define PG_COPY_PIECE		(1024 * 1024)	/* bytes per CopyData message */
#define PG_SQLSTATE_READ_ONLY	"25006"	/* read_only_sql_transaction */
#define PG_RESOLVE_LOG_MS	10000	/* a failed lookup: a line at most */

/* Failed lookups, over all of the dbwriter's connections. */
static struct log_limit	pg_resolve_log;

static void	pg_io_cb(struct ev_loop *, ev_io *, int);
static void	pg_notice_cb(void *, const char *);
static void	pg_retry_cb(struct ev_loop *, ev_timer *, int);
static ev_tstamp pg_connect_timeout(struct pg *);
static size_t	pg_list_len(const char *);
static const char *pg_opt(const struct pg *, const char *);
static void	pg_poll_connect(struct pg *);
static void	pg_fail(struct pg *, const char *);
static void	pg_watch(struct pg *, int);
static void	pg_setup(struct pg *);
static void	pg_drain_results(struct pg *);
static void	pg_ready(struct pg *);
static void	pg_finished(struct pg *);
static int	pg_copy_put(struct pg *);
static void	pg_start(struct pg *, pg_done_fn *, void *);
static void	pg_resolved(struct resolver *, int, void *);
static void	pg_connect_start(struct pg *, const struct pg_host *);
static void	pg_connect_failed(struct pg *, const char *);
static void	pg_try_host(struct pg *, size_t);

/* Server notices ("already exists, skipping") go to the debug log. */
static void
pg_notice_cb(void *arg, const char *msg)
{
	(void)arg;
	log_debug("PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
}

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

/* Why the connection failed, on one line. */
static void
pg_reason(struct pg *pg, char *reason, size_t len)
{
	char	*nl;

	snprintf(reason, len, "%s", pg->pg_conn != NULL ?
	    PQerrorMessage(pg->pg_conn) : pg->pg_why != NULL ? pg->pg_why :
	    "out of memory");
	pg->pg_why = NULL;
	/* libpq messages span lines; keep the log one line per event. */
	for (nl = reason; *nl != '\0'; nl++)
		if (*nl == '\n' || *nl == '\t')
			*nl = ' ';
	/* A timeout leaves libpq's message unfinished ("...failed:"). */
	while (nl > reason && (nl[-1] == ' ' || nl[-1] == ':'))
		*--nl = '\0';
}

static void
pg_fail(struct pg *pg, const char *what)
{
	int	was_busy = pg->pg_state == PG_BUSY;
	int	was_ready = was_busy || pg->pg_state == PG_READY;
	char	 reason[512];

	pg_reason(pg, reason, sizeof(reason));
	ev_io_stop(pg->pg_loop, &pg->pg_io);
	if (pg->pg_conn != NULL)
		PQfinish(pg->pg_conn);
	pg->pg_conn = NULL;
	pg->pg_state = PG_IDLE;
	pg->pg_copy = PG_COPY_NONE;
	/* /readyz: down once none of this dbwriter's connections is up. */
	stats_inc(&stats_d->sd_pg_errors[STATS_PG_CONNECTION]);
	if (was_ready)
		stats_dec(&stats_d->sd_pg_conns);
	if (stats_get(&stats_d->sd_pg_conns) == 0)
		stats_dep(STATS_DEP_DOWN);
	log_warnx("%s: %s retry_in=%ums", what, reason, pg->pg_backoff_ms);
	ev_timer_stop(pg->pg_loop, &pg->pg_retry);	/* connect deadline */
	ev_timer_set(&pg->pg_retry, pg->pg_backoff_ms / 1000.0, 0.);
	ev_timer_start(pg->pg_loop, &pg->pg_retry);
	pg->pg_backoff_ms *= 2;
	if (pg->pg_backoff_ms > PG_BACKOFF_MAX_MS)
		pg->pg_backoff_ms = PG_BACKOFF_MAX_MS;
	if (was_busy && pg->pg_done != NULL) {
		pg_done_fn *done = pg->pg_done;
		pg->pg_done = NULL;
		done(pg->pg_done_arg, 0, "", reason);
	}
	if (was_ready && pg->pg_on_state != NULL)
		pg->pg_on_state(pg->pg_on_state_arg, 0);
}

void
pg_connect(struct pg *pg)
{
	pg->pg_state = PG_CONNECTING;
	/* Nothing of a previous connection's statements carries over. */
	pg->pg_failed = 0;
	pg->pg_sqlstate[0] = '\0';
	pg->pg_errmsg[0] = '\0';
	if (pg->pg_lookup)
		resolve_start(&pg->pg_res);	/* pg_resolved() goes on */
	else if (pg->pg_nhosts > 0)
		pg_try_host(pg, 0);
	else
		pg_connect_start(pg, NULL);
}

/*
 * TCP settings libpq gets where the conninfo has none of its own: a
 * server that vanishes (host down, network partition) while a batch is
 * in flight would otherwise hold the connection for the kernel's ~15
 * minutes of retransmissions (and an idle one for 2 hours of
 * keepalive), leaving the batch to the spool and the next host of the
 * list untried.  Data unacknowledged for 20 s, or 3 keepalive probes
 * unanswered after 10 s of silence, close the connection.  A server
 * that is merely slow (a lock, a long checkpoint) acknowledges what it
 * is sent and answers the probes, so these never cut a statement short.
 */
static const struct {
	const char	*kw, *val;
} pg_tcp_defaults[] = {
	{ "keepalives_idle",	"10" },
	{ "keepalives_interval",	"5" },
	{ "keepalives_count",	"3" },
	{ "tcp_user_timeout",	"20000" },	/* ms */
};
#define PG_NTCP_DEFAULTS (sizeof(pg_tcp_defaults) / sizeof(pg_tcp_defaults[0]))

/*
 * Connect with the conninfo's options, host e's instead of its host
 * list if e is not NULL, and pg_tcp_defaults where the conninfo sets
 * none.  A conninfo libpq could not parse goes to libpq as it is, for
 * libpq to say what is wrong with it.
 */
static void
pg_connect_start(struct pg *pg, const struct pg_host *e)
{
	const PQconninfoOption	*o;
	const char		*kw[64], *val[64];
	size_t			 i, n = 0;

	for (o = pg->pg_opts; o != NULL && o->keyword != NULL &&
	    n < 64 - 4 - PG_NTCP_DEFAULTS; o++) {
		if (o->val == NULL || (e != NULL &&
		    (strcmp(o->keyword, "host") == 0 ||
		    strcmp(o->keyword, "hostaddr") == 0 ||
		    strcmp(o->keyword, "port") == 0)))
			continue;
		kw[n] = o->keyword;
		val[n++] = o->val;
	}
	if (e != NULL && e->ph_host != NULL) {
		kw[n] = "host";
		val[n++] = e->ph_host;
	}
	if (e != NULL && e->ph_addr != NULL) {
		kw[n] = "hostaddr";
		val[n++] = e->ph_addr;
	}
	if (e != NULL && e->ph_port != NULL) {
		kw[n] = "port";
		val[n++] = e->ph_port;
	}
	/* Only keywords this libpq knows (listed, unset) get a default. */
	for (i = 0; i < PG_NTCP_DEFAULTS; i++)
		for (o = pg->pg_opts; o != NULL && o->keyword != NULL; o++)
			if (strcmp(o->keyword, pg_tcp_defaults[i].kw) == 0) {
				if (o->val == NULL) {
					kw[n] = pg_tcp_defaults[i].kw;
					val[n++] = pg_tcp_defaults[i].val;
				}
				break;
			}
	kw[n] = val[n] = NULL;
	if (pg->pg_opts == NULL)
		pg->pg_conn = PQconnectStart(pg->pg_cfg->c_pg_conninfo);
	else
		pg->pg_conn = PQconnectStartParams(kw, val, 0);
	if (pg->pg_conn == NULL || PQstatus(pg->pg_conn) == CONNECTION_BAD) {
		pg_connect_failed(pg, "PostgreSQL connection failed");
		return;
	}
	/*
	 * PQconnectPoll() applies no connect_timeout, and cannot be told to
	 * give up on one host for the next: the retry timer is the deadline,
	 * and a list of hosts is tried one host per connection (pg_hosts).
	 */
	ev_timer_set(&pg->pg_retry, pg_connect_timeout(pg), 0.);
	ev_timer_start(pg->pg_loop, &pg->pg_retry);
	/* Per libpq, poll as if the last result was PGRES_POLLING_WRITING. */
	pg_watch(pg, EV_WRITE);
}

/* The conninfo's connect_timeout, PG_CONNECT_TIMEOUT_S without one. */
static ev_tstamp
pg_connect_timeout(struct pg *pg)
{
	const char	*t = pg_opt(pg, "connect_timeout");
	long		 secs = t != NULL ? strtol(t, NULL, 10) : 0;

	if (secs <= 0)
		return PG_CONNECT_TIMEOUT_S;
	/* libpq takes values under 2 as 2 seconds. */
	return (ev_tstamp)(secs < 2 ? 2 : secs);
}

/*
 * Connecting failed or timed out: the list's next host at once, if there
 * is one; else the whole attempt failed (retried after the backoff).
 */
static void
pg_connect_failed(struct pg *pg, const char *what)
{
	char	reason[512];

	if (pg->pg_hosti + 1 >= pg->pg_nhosts) {
		pg_fail(pg, what);
		return;
	}
	pg_reason(pg, reason, sizeof(reason));
	log_warnx("%s: %s; trying the next host", what, reason);
	ev_io_stop(pg->pg_loop, &pg->pg_io);
	ev_timer_stop(pg->pg_loop, &pg->pg_retry);
	if (pg->pg_conn != NULL)
		PQfinish(pg->pg_conn);
	pg->pg_conn = NULL;
	pg_try_host(pg, pg->pg_hosti + 1);
}

static void
pg_poll_connect(struct pg *pg)
{
	/*
	 * While connecting libpq may close its socket and open another
	 * (the next host or address, an SSL fallback), often under the same
	 * number: stopping the watcher makes pg_watch() register the
	 * descriptor again, which libev needs after a close (epoll forgot
	 * the old one).
	 */
	ev_io_stop(pg->pg_loop, &pg->pg_io);
	switch (PQconnectPoll(pg->pg_conn)) {
	case PGRES_POLLING_READING:
		pg_watch(pg, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		pg_watch(pg, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		ev_timer_stop(pg->pg_loop, &pg->pg_retry);
		PQsetNoticeProcessor(pg->pg_conn, pg_notice_cb, NULL);
		if (PQsetnonblocking(pg->pg_conn, 1) == -1) {
			pg_fail(pg, "PostgreSQL connection failed");
			break;
		}
		log_info("connected to PostgreSQL server_version=%d",
		    PQserverVersion(pg->pg_conn));
		pg_setup(pg);
		break;
	default:
		pg_connect_failed(pg, "PostgreSQL connection failed");
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
	char	sql[1024];

	if (pg->pg_state == PG_SETUP && pg->pg_cfg->c_db_create_table)
		log_info("table ready table=%s", pg->pg_cfg->c_pg_table);
	if (pg->pg_state != PG_PREPARE) {
		/* One statement for every batch: arrays in, rows out. */
		snprintf(sql, sizeof(sql),
		    "INSERT INTO %s (request_key, user_id, client_id, status,"
		    " response, error, latency_ms, created_at)"
		    " SELECT * FROM unnest($1::text[], $2::text[],"
		    " $3::text[], $4::int4[], $5::text[], $6::text[],"
		    " $7::float8[], $8::timestamptz[])"
		    " ON CONFLICT (request_key) DO NOTHING",
		    pg->pg_cfg->c_pg_table);
		if (!PQsendPrepare(pg->pg_conn, "wsgate_insert", sql,
		    PG_NPARAMS, NULL)) {
			pg_fail(pg, "PostgreSQL prepare failed");
			return;
		}
		pg->pg_state = PG_PREPARE;
		pg_watch(pg, EV_READ |
		    (PQflush(pg->pg_conn) == 1 ? EV_WRITE : 0));
		return;
	}
	pg->pg_state = PG_READY;
	/*
	 * The backoff starts over once the set-up worked (a set-up that
	 * keeps failing backs off), and for a server that was read-only,
	 * once a batch went in.
	 */
	if (!pg->pg_readonly)
		pg->pg_backoff_ms = PG_BACKOFF_MIN_MS;
	stats_inc(&stats_d->sd_pg_conns);
	stats_dep(STATS_DEP_UP);
	pg_watch(pg, EV_READ);
	if (pg->pg_on_state != NULL)
		pg->pg_on_state(pg->pg_on_state_arg, 1);
}

int
pg_idle(const struct pg *pg)
{
	return pg->pg_state == PG_READY;
}

int
pg_up(const struct pg *pg)
{
	return pg->pg_state == PG_READY || pg->pg_state == PG_BUSY;
}

int
pg_insert(struct pg *pg, const char *const params[PG_NPARAMS],
    pg_done_fn *done, void *arg)
{
	if (pg->pg_state != PG_READY)
		return -1;
	if (!PQsendQueryPrepared(pg->pg_conn, "wsgate_insert", PG_NPARAMS,
	    params, NULL, NULL, 0)) {
		pg_fail(pg, "PostgreSQL send failed");
		return -1;
	}
	pg_start(pg, done, arg);
	return 0;
}

int
pg_copy(struct pg *pg, struct buf *rows, pg_done_fn *done, void *arg)
{
	char		sql[512];
	struct buf	old;

	if (pg->pg_state != PG_READY)
		return -1;
	snprintf(sql, sizeof(sql), "COPY %s (request_key, user_id,"
	    " client_id, status, response, error, latency_ms, created_at)"
	    " FROM STDIN", pg->pg_cfg->c_pg_table);
	if (!PQsendQuery(pg->pg_conn, sql)) {
		pg_fail(pg, "PostgreSQL send failed");
		return -1;
	}
	/*
	 * The rows go once the server is ready for them (pg_copy_put()):
	 * keep them by taking the caller's buffer, giving it ours.
	 */
	old = pg->pg_copy_data;
	pg->pg_copy_data = *rows;
	*rows = old;
	buf_reset(rows);
	pg->pg_copy_off = 0;
	pg->pg_copy = PG_COPY_START;
	pg_start(pg, done, arg);
	return 0;
}

/* A batch's statement was handed to libpq. */
static void
pg_start(struct pg *pg, pg_done_fn *done, void *arg)
{
	pg->pg_state = PG_BUSY;
	pg->pg_done = done;
	pg->pg_done_arg = arg;
	pg->pg_failed = 0;
	pg->pg_sqlstate[0] = '\0';
	pg->pg_errmsg[0] = '\0';
	pg_watch(pg, EV_READ | (PQflush(pg->pg_conn) == 1 ? EV_WRITE : 0));
}

/*
 * Hand the COPY's rows and its end to libpq.  Returns 0 when both are
 * queued, 1 when libpq's buffer is full (try again once the socket is
 * writable), -1 when the connection failed.
 */
static int
pg_copy_put(struct pg *pg)
{
	int	r;

	/* In pieces: a message's length is an int. */
	while (pg->pg_copy == PG_COPY_DATA) {
		size_t n = pg->pg_copy_data.b_len - pg->pg_copy_off;
		if (n > PG_COPY_PIECE)
			n = PG_COPY_PIECE;
		r = PQputCopyData(pg->pg_conn, pg->pg_copy_data.b_p +
		    pg->pg_copy_off, (int)n);
		if (r != 1)
			return r == 0 ? 1 : -1;
		if ((pg->pg_copy_off += n) == pg->pg_copy_data.b_len)
			pg->pg_copy = PG_COPY_END;
	}
	if (pg->pg_copy == PG_COPY_END) {
		if ((r = PQputCopyEnd(pg->pg_conn, NULL)) != 1)
			return r == 0 ? 1 : -1;
		pg->pg_copy = PG_COPY_SENT;
	}
	return 0;
}

/* Collect results of the statement in flight without blocking. */
static void
pg_drain_results(struct pg *pg)
{
	PGresult	*res;
	char		*nl;
	int		 r;

	if (!PQconsumeInput(pg->pg_conn)) {
		pg_fail(pg, "PostgreSQL connection lost");
		return;
	}
	if ((pg->pg_copy == PG_COPY_DATA || pg->pg_copy == PG_COPY_END) &&
	    (r = pg_copy_put(pg)) != 0) {
		if (r == -1)
			pg_fail(pg, "PostgreSQL send failed");
		else
			pg_watch(pg, EV_READ | EV_WRITE);
		return;
	}
	if (PQflush(pg->pg_conn) == 1) {
		pg_watch(pg, EV_READ | EV_WRITE);
		return;
	}
	while (!PQisBusy(pg->pg_conn)) {
		if ((res = PQgetResult(pg->pg_conn)) == NULL) {
			pg_finished(pg);
			return;
		}
		if (PQresultStatus(res) == PGRES_COPY_IN) {
			/* The server takes the rows now. */
			PQclear(res);
			pg->pg_copy = PG_COPY_DATA;
			if ((r = pg_copy_put(pg)) == -1) {
				pg_fail(pg, "PostgreSQL send failed");
				return;
			}
			if (r == 1) {
				pg_watch(pg, EV_READ | EV_WRITE);
				return;
			}
			continue;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
		    PQresultStatus(res) != PGRES_TUPLES_OK) {
			const char *st = PQresultErrorField(res,
			    PG_DIAG_SQLSTATE);
			snprintf(pg->pg_sqlstate, sizeof(pg->pg_sqlstate), "%s",
			    st != NULL ? st : "XX000");
			snprintf(pg->pg_errmsg, sizeof(pg->pg_errmsg), "%s",
			    PQresultErrorMessage(res));
			if ((nl = strchr(pg->pg_errmsg, '\n')) != NULL)
				*nl = '\0';
			pg->pg_failed = 1;
			stats_inc(&stats_d->sd_pg_errors[STATS_PG_STATEMENT]);
		} else if (pg->pg_state == PG_BUSY)
			/* The INSERT's count (conflicts are not in it), COPY's. */
			stats_add(&stats_d->sd_rows,
			    strtoull(PQcmdTuples(res), NULL, 10));
		PQclear(res);
	}
	pg_watch(pg, EV_READ | (PQflush(pg->pg_conn) == 1 ? EV_WRITE : 0));
}

/* The statement in flight has all its results. */
static void
pg_finished(struct pg *pg)
{
	pg_done_fn	*done;

	switch (pg->pg_state) {
	case PG_SETUP:
	case PG_PREPARE:
		if (pg->pg_failed) {
			log_warnx("PostgreSQL statement failed: %s",
			    pg->pg_errmsg);
			pg_fail(pg, "PostgreSQL set-up failed");
			return;
		}
		pg_ready(pg);
		return;
	case PG_BUSY:
		/*
		 * A server that turned read-only under the connection (a
		 * primary demoted by a failover that kept its sessions, as
		 * Aurora's does): connect again, to whichever host is the
		 * primary now (a name that follows it, a host list with
		 * target_session_attrs=read-write).  The batch goes again.
		 */
		if (pg->pg_failed && strcmp(pg->pg_sqlstate,
		    PG_SQLSTATE_READ_ONLY) == 0) {
			pg->pg_readonly = 1;
			pg_fail(pg, "PostgreSQL server is read-only, "
			    "connecting again");
			return;
		}
		if (!pg->pg_failed && pg->pg_readonly) {
			pg->pg_readonly = 0;
			pg->pg_backoff_ms = PG_BACKOFF_MIN_MS;
		}
		pg->pg_state = PG_READY;
		pg->pg_copy = PG_COPY_NONE;
		pg_watch(pg, EV_READ);
		done = pg->pg_done;
		pg->pg_done = NULL;
		if (done != NULL)
			done(pg->pg_done_arg, !pg->pg_failed, pg->pg_sqlstate,
			    pg->pg_errmsg);
		return;
	default:
		pg_watch(pg, EV_READ);
		return;
	}
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
	case PG_PREPARE:
	case PG_BUSY:
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

/* The backoff is over, or (while connecting) the deadline passed. */
static void
pg_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pg	*pg = t->data;

	(void)loop;
	(void)revents;
	if (pg->pg_state == PG_CONNECTING)
		pg_connect_failed(pg, "PostgreSQL connection timed out");
	else
		pg_connect(pg);
}

/*
 * Whether an element of libpq's host list is a name to look up: not
 * empty (the default), not a socket directory ('/', or '@' for an
 * abstract one), not an address.
 */
static int
pg_host_is_name(const char *h, size_t len)
{
	char	tmp[256];

	if (len == 0 || h[0] == '/' || h[0] == '@' || len >= sizeof(tmp))
		return 0;
	memcpy(tmp, h, len);
	tmp[len] = '\0';
	return !resolve_is_numeric(tmp);
}

/* The n-th element (from 0) of a comma-separated list; its length. */
static const char *
pg_list_at(const char *list, size_t n, size_t *len)
{
	for (; n > 0; n--)
		list = strchr(list, ',') + 1;
	*len = strcspn(list, ",");
	return list;
}

static size_t
pg_list_len(const char *list)
{
	size_t	n = 1;

	for (; *list != '\0'; list++)
		n += *list == ',';
	return n;
}

static const char *
pg_opt(const struct pg *pg, const char *keyword)
{
	const PQconninfoOption	*o;

	for (o = pg->pg_opts; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, keyword) == 0)
			return o->val;
	return NULL;
}

static void
pg_hosts_free(struct pg *pg)
{
	size_t	i;

	for (i = 0; i < pg->pg_nhosts; i++) {
		free(pg->pg_hosts[i].ph_host);
		free(pg->pg_hosts[i].ph_addr);
		free(pg->pg_hosts[i].ph_port);
	}
	free(pg->pg_hosts);
	pg->pg_hosts = NULL;
	pg->pg_nhosts = 0;
}

/* Append a host; an empty part is one not given. */
static void
pg_hosts_add(struct pg *pg, const char *h, size_t hlen, const char *addr,
    size_t alen, const char *port, size_t plen)
{
	struct pg_host	*e;

	pg->pg_hosts = xrealloc(pg->pg_hosts,
	    (pg->pg_nhosts + 1) * sizeof(*pg->pg_hosts));
	e = &pg->pg_hosts[pg->pg_nhosts++];
	e->ph_host = hlen > 0 ? xstrndup(h, hlen) : NULL;
	e->ph_addr = alen > 0 ? xstrndup(addr, alen) : NULL;
	e->ph_port = plen > 0 ? xstrndup(port, plen) : NULL;
}

/*
 * Element i of an optional list: "" when absent, the one value of a
 * single-element list for every i.
 */
static const char *
pg_list_get(const char *list, size_t i, size_t *len)
{
	if (list == NULL) {
		*len = 0;
		return "";
	}
	return pg_list_at(list, pg_list_len(list) > 1 ? i : 0, len);
}

/*
 * Read the conninfo's host list.  libpq, driven without blocking,
 * applies no connect_timeout and cannot be told to leave a host that
 * does not answer for the next, so a list of two hosts or more is tried
 * here, one host per connection (pg_try_host()).  Without hostaddr, the
 * names in the list (up to RESOLVE_MAX_NAMES) are looked up before each
 * attempt; otherwise libpq gets the conninfo as it is.
 */
static void
pg_hosts_init(struct pg *pg)
{
	const char	*hosts, *addrs, *port, *names[RESOLVE_MAX_NAMES], *h;
	const char	*a, *p;
	char		*copy[RESOLVE_MAX_NAMES];
	size_t		 i, n, len, alen, plen, nnames = 0;

	pg->pg_opts = PQconninfoParse(pg->pg_cfg->c_pg_conninfo, NULL);
	hosts = pg_opt(pg, "host");
	addrs = pg_opt(pg, "hostaddr");
	port = pg_opt(pg, "port");
	if (hosts == NULL && addrs == NULL)
		return;
	n = pg_list_len(hosts != NULL ? hosts : addrs);
	if ((hosts != NULL && addrs != NULL && pg_list_len(addrs) != n) ||
	    (port != NULL && pg_list_len(port) > 1 && pg_list_len(port) != n))
		return;		/* libpq reports that */
	for (i = 0; addrs == NULL && i < n; i++) {
		h = pg_list_at(hosts, i, &len);
		if (!pg_host_is_name(h, len))
			continue;
		if (nnames == RESOLVE_MAX_NAMES) {
			log_warnx("pg_conninfo: more than %d host names; "
			    "libpq looks them up itself, blocking the "
			    "dbwriter", RESOLVE_MAX_NAMES);
			nnames = 0;
			break;
		}
		copy[nnames] = xstrndup(h, len);
		names[nnames] = copy[nnames];
		nnames++;
	}
	if (nnames > 0 && resolve_init(&pg->pg_res, pg->pg_loop, names,
	    nnames, "5432", pg_resolved, pg) == 0)
		pg->pg_lookup = 1;
	for (i = 0; i < nnames; i++)
		free(copy[i]);
	if (pg->pg_lookup || n < 2)
		return;
	for (i = 0; i < n; i++) {
		h = pg_list_get(hosts, i, &len);
		a = pg_list_get(addrs, i, &alen);
		p = pg_list_get(port, i, &plen);
		pg_hosts_add(pg, h, len, a, alen, p, plen);
	}
}

/*
 * The names' addresses are in: the host list again, each name as one
 * host per address, in order (none if it did not resolve, as libpq
 * skips such a host), with the address as hostaddr and the name kept as
 * host for TLS and the password file.
 */
static void
pg_resolved(struct resolver *r, int ok, void *arg)
{
	struct pg	*pg = arg;
	const char	*hosts = pg_opt(pg, "host"), *port = pg_opt(pg, "port");
	const char	*h, *p, *a;
	size_t		 i, n, len, plen;
	unsigned int	 k, name = 0;
	uint64_t	 quiet;

	if (pg->pg_state != PG_CONNECTING)
		return;		/* stopped meanwhile */
	if (!ok) {
		pg->pg_why = r->rs_error;
		pg_fail(pg, "PostgreSQL connection failed");
		return;
	}
	/* Each connection looks the names up: a line now and then. */
	if (r->rs_error[0] != '\0' &&
	    log_limit_now(&pg_resolve_log, PG_RESOLVE_LOG_MS, &quiet)) {
		if (r->rs_error_kept)
			log_warnx("PostgreSQL: %s; trying the addresses it had "
			    "unlogged=%" PRIu64, r->rs_error, quiet);
		else
			log_warnx("PostgreSQL host skipped: %s unlogged=%"
			    PRIu64, r->rs_error, quiet);
	}
	pg_hosts_free(pg);
	n = pg_list_len(hosts);
	for (i = 0; i < n; i++) {
		h = pg_list_at(hosts, i, &len);
		p = pg_list_get(port, i, &plen);
		if (!pg_host_is_name(h, len)) {
			pg_hosts_add(pg, h, len, "", 0, p, plen);
			continue;
		}
		for (k = 0; k < r->rs_naddrs; k++)
			if (r->rs_addrs[k].ra_name == name) {
				a = r->rs_addrs[k].ra_text;
				pg_hosts_add(pg, h, len, a, strlen(a), p, plen);
			}
		name++;
	}
	if (pg->pg_nhosts == 0) {	/* cannot happen: ok means addresses */
		pg->pg_why = r->rs_error;
		pg_fail(pg, "PostgreSQL connection failed");
		return;
	}
	pg_try_host(pg, 0);
}

/* Connect to host i of the list, with the conninfo's other options. */
static void
pg_try_host(struct pg *pg, size_t i)
{
	pg->pg_hosti = i;
	pg_connect_start(pg, &pg->pg_hosts[i]);
}

void
pg_init(struct pg *pg, struct ev_loop *loop, const struct config *cfg,
    pg_state_fn *fn, void *arg)
{
	memset(pg, 0, sizeof(*pg));
	pg->pg_loop = loop;
	pg->pg_cfg = cfg;
	pg->pg_backoff_ms = PG_BACKOFF_MIN_MS;
	pg->pg_state = PG_STOPPED;
	pg->pg_on_state = fn;
	pg->pg_on_state_arg = arg;
	ev_init(&pg->pg_io, pg_io_cb);
	pg->pg_io.data = pg;
	ev_timer_init(&pg->pg_retry, pg_retry_cb, 0., 0.);
	pg->pg_retry.data = pg;
	pg_hosts_init(pg);
}

void
pg_stop(struct pg *pg)
{
	if (pg_up(pg))
		stats_dec(&stats_d->sd_pg_conns);
	ev_io_stop(pg->pg_loop, &pg->pg_io);
	ev_timer_stop(pg->pg_loop, &pg->pg_retry);
	if (pg->pg_conn != NULL)
		PQfinish(pg->pg_conn);
	pg->pg_conn = NULL;
	pg->pg_state = PG_STOPPED;
	pg->pg_copy = PG_COPY_NONE;
	buf_free(&pg->pg_copy_data);
	resolve_close(&pg->pg_res);
	pg->pg_lookup = 0;
	pg_hosts_free(pg);
	if (pg->pg_opts != NULL) {
		PQconninfoOption *o;
		for (o = pg->pg_opts; o->keyword != NULL; o++)
			if (o->val != NULL)
				explicit_bzero(o->val, strlen(o->val));
		PQconninfoFree(pg->pg_opts);
		pg->pg_opts = NULL;
	}
}
