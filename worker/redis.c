/*
 * Redis client for the worker (hiredis async + libev adapter).
 *
 * hiredis would resolve a host name synchronously inside
 * redisAsyncConnect(): a redis_host name is looked up off the loop
 * (resolve.h) before each connection attempt, and hiredis gets the
 * address.  Everything else is non-blocking.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "log.h"
#include "redis.h"
#include "resolve.h"
#include "stats.h"
#include "util.h"

#define REDIS_BACKOFF_MIN_MS	100
#define REDIS_BACKOFF_MAX_MS	5000
#define REDIS_HEALTH_S		1.0	/* PING this often */
#define REDIS_CONNECT_MIN_S	1.0	/* connect + set-up deadline, at least */
#define REDIS_STALE_TIMES	3	/* x redis_timeout without a PONG */
#define REDIS_LOG_EVERY_MS	10000	/* an error reply per GET: a line at most */

static struct {
	struct ev_loop		*loop;
	const struct config	*cfg;
	redisAsyncContext	*ac;
	int			 connected;	/* and the set-up answered */
	int			 setup_pending;	/* AUTH/SELECT/PING unanswered */
	int			 setup_auth;	/* AUTH or SELECT was sent */
	int			 stopping;
	unsigned int		 backoff_ms;
	ev_timer		 retry;
	int			 logged_down;
	ev_timer		 health;
	int			 ping_out;	/* a PING awaits its answer */
	ev_tstamp		 ping_at;
	struct resolver		 res;		/* redis_host */
	unsigned int		 addr;		/* the one being tried */
	ev_timer		 deadline;	/* connect and set-up */
	int			 abandoning;	/* redis_abandon() under way */
	struct log_limit	 get_fail_log;	/* "Redis GET failed" */
} rd;

static void	redis_connect(void);
static void	redis_open(redisAsyncContext *);
static void	redis_resolved(struct resolver *, int, void *);
static void	redis_connect_addr(void);
static void	redis_failed(const char *);
static void	redis_abandon(const char *);
static void	redis_deadline_cb(struct ev_loop *, ev_timer *, int);
static void	redis_connect_cb(const redisAsyncContext *, int);
static void	redis_disconnect_cb(const redisAsyncContext *, int);
static void	redis_retry_cb(struct ev_loop *, ev_timer *, int);
static void	redis_schedule(const char *);
static void	redis_setup_cb(redisAsyncContext *, void *, void *);
static void	redis_up(void);
static void	redis_get_reply_cb(redisAsyncContext *, void *, void *);
static void	redis_ping(void);
static void	redis_ping_cb(redisAsyncContext *, void *, void *);
static void	redis_health_cb(struct ev_loop *, ev_timer *, int);

static void
redis_schedule(const char *why)
{
	if (rd.stopping)
		return;
	stats_dep(STATS_DEP_DOWN);
	if (!rd.logged_down || rd.backoff_ms >= REDIS_BACKOFF_MAX_MS)
		log_warnx("Redis unavailable: %s retry_in=%ums", why,
		    rd.backoff_ms);
	rd.logged_down = 1;
	ev_timer_set(&rd.retry, rd.backoff_ms / 1000.0, 0.);
	ev_timer_start(rd.loop, &rd.retry);
	rd.backoff_ms *= 2;
	if (rd.backoff_ms > REDIS_BACKOFF_MAX_MS)
		rd.backoff_ms = REDIS_BACKOFF_MAX_MS;
}

/* redis_timeout in seconds, at least `floor`. */
static ev_tstamp
redis_timeout_s(ev_tstamp floor)
{
	ev_tstamp	t = rd.cfg->c_redis_timeout / 1000.0;

	return t < floor ? floor : t;
}

/* Connect: by path, or once the host's addresses are known. */
static void
redis_connect(void)
{
	if (rd.cfg->c_redis_socket != NULL)
		redis_open(redisAsyncConnectUnix(rd.cfg->c_redis_socket));
	else
		resolve_start(&rd.res);
}

/* Addresses, or a failed lookup (retried as a failed connection). */
static void
redis_resolved(struct resolver *r, int ok, void *arg)
{
	(void)arg;
	if (rd.stopping)
		return;
	if (!ok) {
		redis_schedule(r->rs_error);
		return;
	}
	if (r->rs_error_kept)
		log_warnx("Redis: %s; trying the addresses it had", r->rs_error);
	rd.addr = 0;
	redis_connect_addr();
}

static void
redis_connect_addr(void)
{
	redis_open(redisAsyncConnect(rd.res.rs_addrs[rd.addr].ra_text,
	    rd.cfg->c_redis_port));
}

/* Whether the host has an address after the current one to try. */
static int
redis_next_addr(void)
{
	return rd.cfg->c_redis_socket == NULL && !rd.stopping &&
	    rd.addr + 1 < rd.res.rs_naddrs;
}

/*
 * A connection attempt failed: the host's next address at once (a name
 * may have an IPv6 and an IPv4 address, Redis listening on one), then,
 * all tried, a new attempt after the backoff.
 */
static void
redis_failed(const char *why)
{
	if (redis_next_addr()) {
		rd.addr++;
		redis_connect_addr();
		return;
	}
	redis_schedule(why);
}

static void
redis_open(redisAsyncContext *ac)
{
	if (ac == NULL) {
		redis_schedule("out of memory");
		return;
	}
	if (ac->err) {
		char why[256];
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		redis_failed(why);
		return;
	}
	if (redisLibevAttach(rd.loop, ac) != REDIS_OK) {
		redisAsyncFree(ac);
		redis_schedule("cannot attach to the event loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, redis_connect_cb);
	redisAsyncSetDisconnectCallback(ac, redis_disconnect_cb);
	rd.ac = ac;
	/*
	 * hiredis' asynchronous connect has no timeout of its own: an
	 * address that drops SYNs would hold the attempt for minutes, and a
	 * server that takes the connection but never answers the set-up
	 * (AUTH/SELECT/PING) forever.
	 */
	ev_timer_set(&rd.deadline, redis_timeout_s(REDIS_CONNECT_MIN_S), 0.);
	ev_timer_start(rd.loop, &rd.deadline);
}

static void
redis_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (rd.ac != NULL && !rd.connected)
		redis_abandon(rd.setup_pending == 0 ? "connection timed out" :
		    rd.setup_auth ? "no answer to AUTH/SELECT" :
		    "no answer to PING");
}

/*
 * Give up on the connection (connecting, or not answering): free it,
 * which fails the GETs waiting on it, and go on as after a failed
 * attempt, with the host's next address if there is one.
 */
static void
redis_abandon(const char *why)
{
	redisAsyncContext	*ac = rd.ac;

	ev_timer_stop(rd.loop, &rd.deadline);
	rd.ac = NULL;
	rd.connected = 0;
	rd.setup_pending = 0;
	rd.ping_out = 0;
	rd.abandoning = 1;	/* its disconnect callback stays out of it */
	redisAsyncFree(ac);
	rd.abandoning = 0;
	/* A refused address costs nothing; one given up on cost seconds. */
	if (redis_next_addr())
		log_warnx("Redis at %s port %d: %s; trying the next address",
		    rd.res.rs_addrs[rd.addr].ra_text, rd.cfg->c_redis_port,
		    why);
	redis_failed(why);
}

/*
 * AUTH / SELECT / PING answers.  The connection serves GETs only once all
 * went through: a GET sent behind a failed SELECT would read database 0,
 * and a server that took the connection has not shown it is alive until
 * it answers.  An error makes the connection useless; the backoff keeps
 * growing, since only a completed setup resets it.
 */
static void
redis_setup_cb(redisAsyncContext *ac, void *r, void *what)
{
	redisReply	*reply = r;

	if (reply == NULL)
		return;		/* disconnected; the disconnect cb handles it */
	if (reply->type == REDIS_REPLY_ERROR) {
		log_warnx("Redis %s failed: %s", (const char *)what,
		    reply->str);
		rd.setup_pending = 0;
		redisAsyncDisconnect(ac);
		return;
	}
	if (rd.setup_pending > 0 && --rd.setup_pending == 0)
		redis_up();
}

/* Connected and set up: serve GETs. */
static void
redis_up(void)
{
	ev_timer_stop(rd.loop, &rd.deadline);
	rd.connected = 1;
	stats_dep(STATS_DEP_UP);	/* it just answered a PING */
	rd.backoff_ms = REDIS_BACKOFF_MIN_MS;
	if (rd.logged_down)
		log_info("Redis connection restored");
	else
		log_info("connected to Redis");
	rd.logged_down = 0;
}

static void
redis_connect_cb(const redisAsyncContext *cac, int status)
{
	redisAsyncContext	*ac = (redisAsyncContext *)(uintptr_t)cac;
	const struct config	*cfg = rd.cfg;
	static char		 auth[] = "AUTH", select[] = "SELECT";
	static char		 ping[] = "PING";
	char			 db[16];

	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		ev_timer_stop(rd.loop, &rd.deadline);
		rd.ac = NULL;
		redis_failed(cac->errstr);
		return;
	}
	rd.setup_pending = 0;
	if (cfg->c_redis_password != NULL) {
		rd.setup_pending++;
		if (cfg->c_redis_username != NULL)
			redisAsyncCommand(ac, redis_setup_cb, auth,
			    "AUTH %s %s", cfg->c_redis_username,
			    cfg->c_redis_password);
		else
			redisAsyncCommand(ac, redis_setup_cb, auth,
			    "AUTH %s", cfg->c_redis_password);
	}
	if (cfg->c_redis_db != 0) {
		rd.setup_pending++;
		snprintf(db, sizeof(db), "%d", cfg->c_redis_db);
		redisAsyncCommand(ac, redis_setup_cb, select, "SELECT %s",
		    db);
	}
	rd.setup_auth = rd.setup_pending > 0;
	rd.setup_pending++;
	redisAsyncCommand(ac, redis_setup_cb, ping, "PING");
}

static void
redis_disconnect_cb(const redisAsyncContext *ac, int status)
{
	(void)status;
	if (rd.abandoning)
		return;
	ev_timer_stop(rd.loop, &rd.deadline);
	rd.connected = 0;
	rd.ac = NULL;
	/* hiredis frees the context after this callback. */
	redis_schedule(ac->err ? ac->errstr : "connection closed");
}

static void
redis_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (rd.ac == NULL && !rd.stopping && !resolve_busy(&rd.res))
		redis_connect();
}

/*
 * Health, for /readyz: a PING now and then, so that the state is known
 * before any request needs Redis and a Redis that stopped answering
 * (but keeps the connection) shows as down.
 */
static void
redis_ping(void)
{
	if (redisAsyncCommand(rd.ac, redis_ping_cb, NULL, "PING") ==
	    REDIS_OK) {
		rd.ping_out = 1;
		rd.ping_at = ev_now(rd.loop);
	}
}

static void
redis_ping_cb(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply	*reply = r;

	(void)ac;
	(void)priv;
	rd.ping_out = 0;
	/* NULL: disconnected, which the disconnect callback reports. */
	if (reply != NULL)
		stats_dep(reply->type == REDIS_REPLY_STATUS ? STATS_DEP_UP :
		    STATS_DEP_DOWN);
}

static void
redis_health_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	if (!redis_ready())
		return;
	if (!rd.ping_out)
		redis_ping();
	else if (ev_now(loop) - rd.ping_at > REDIS_STALE_TIMES *
	    redis_timeout_s(REDIS_HEALTH_S)) {
		/*
		 * Gone quiet for good (a host down, a failover that moved
		 * the address): a new connection, maybe elsewhere.
		 */
		log_warnx("Redis has not answered a PING for %.1fs: "
		    "reconnecting", ev_now(loop) - rd.ping_at);
		redis_abandon("not answering");
	} else if (ev_now(loop) - rd.ping_at > redis_timeout_s(0.))
		stats_dep(STATS_DEP_DOWN);
}

void
redis_init(struct ev_loop *loop, const struct config *cfg)
{
	char		 port[8];
	const char	*host = cfg->c_redis_host;

	memset(&rd, 0, sizeof(rd));
	rd.loop = loop;
	rd.cfg = cfg;
	snprintf(port, sizeof(port), "%d", cfg->c_redis_port);
	if (cfg->c_redis_socket == NULL && resolve_init(&rd.res, loop, &host,
	    1, port, redis_resolved, NULL) == -1)
		fatalx("Redis: %s", rd.res.rs_error);
	rd.backoff_ms = REDIS_BACKOFF_MIN_MS;
	ev_timer_init(&rd.retry, redis_retry_cb, 0., 0.);
	ev_timer_init(&rd.deadline, redis_deadline_cb, 0., 0.);
	ev_timer_init(&rd.health, redis_health_cb, REDIS_HEALTH_S,
	    REDIS_HEALTH_S);
	ev_timer_start(loop, &rd.health);
	redis_connect();
}

int
redis_ready(void)
{
	return rd.connected && rd.ac != NULL;
}

static void
redis_get_reply_cb(redisAsyncContext *ac, void *r, void *priv)
{
	struct redis_call	*call = priv;
	redisReply		*reply = r;
	uint64_t		 quiet;

	(void)ac;
	if (reply == NULL)
		call->rc_cb(call->rc_arg, REDIS_UNAVAILABLE, NULL, 0);
	else if (reply->type == REDIS_REPLY_NIL)
		call->rc_cb(call->rc_arg, REDIS_MISSING, NULL, 0);
	else if (reply->type == REDIS_REPLY_STRING)
		call->rc_cb(call->rc_arg, REDIS_FOUND, reply->str,
		    (size_t)reply->len);
	else {
		if (reply->type == REDIS_REPLY_ERROR &&
		    log_limit_now(&rd.get_fail_log, REDIS_LOG_EVERY_MS, &quiet))
			log_warnx("Redis GET failed: %s unlogged=%" PRIu64,
			    reply->str, quiet);
		call->rc_cb(call->rc_arg, REDIS_BADREPLY, NULL, 0);
	}
}

/*
 * GET in RESP, formatted here and handed over whole: hiredis' generic
 * formatter (sdscatfmt) cost about 8% of a worker's instructions per
 * message.
 */
int
redis_get(const char *key, size_t keylen, struct redis_call *call)
{
	static const char	 head[] = "*2\r\n$3\r\nGET\r\n$";
	char			 small[256], *cmd = small;
	size_t			 n = sizeof(head) - 1;
	int			 rc;

	if (!redis_ready())
		return -1;
	if (keylen + n + 26 > sizeof(small))
		cmd = xmalloc(keylen + n + 26);
	memcpy(cmd, head, n);
	n += fmt_u64(cmd + n, keylen);
	memcpy(cmd + n, "\r\n", 2);
	memcpy(cmd + n + 2, key, keylen);
	memcpy(cmd + n + 2 + keylen, "\r\n", 2);
	n += keylen + 4;
	rc = redisAsyncFormattedCommand(rd.ac, redis_get_reply_cb, call, cmd,
	    n);
	if (cmd != small)
		free(cmd);
	return rc == REDIS_OK ? 0 : -1;
}

void
redis_shutdown(void)
{
	rd.stopping = 1;
	ev_timer_stop(rd.loop, &rd.retry);
	ev_timer_stop(rd.loop, &rd.deadline);
	ev_timer_stop(rd.loop, &rd.health);
	resolve_close(&rd.res);
	if (rd.ac != NULL) {
		redisAsyncContext *ac = rd.ac;
		rd.ac = NULL;
		rd.connected = 0;
		/* Calls every pending callback with a NULL reply. */
		redisAsyncFree(ac);
	}
}
