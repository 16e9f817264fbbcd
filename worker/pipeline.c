/*
 * Request pipeline: parse, look the user's config up, call the upstream,
 * reply.  Every step is a callback on the worker loop.
 *
 * A request belongs to the worker, not to its connection: a client that
 * leaves while its request is in flight only clears rq_conn, and the
 * request runs to its end (it is recorded in every case).
 */
#include "autoconf.h"

#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "json.h"
#include "log.h"
#include "lookup.h"
#include "persist.h"
#include "pipeline.h"
#include "record.h"
#include "redis.h"
#include "stats.h"
#include "upstream.h"
#include "util.h"
#include "ws.h"
#include "wsconn.h"

#define PIPELINE_SLICE	(256 * 1024)	/* body bytes escaped per iteration */

static struct {
	struct worker	*w;
	char		 key_prefix[25];	/* 96 random bits, hex */
	uint64_t	 seq;
	unsigned int	 pending;
	struct buf	 reply;			/* scratch for replies */
	TAILQ_HEAD(, request) slicing;		/* large replies in progress */
	ev_check	 slice_check;
	ev_idle		 slice_idle;
} pl;

static void	pipeline_config_cb(void *, enum lookup_status, const char *,
		    size_t);
static void	pipeline_upstream_cb(void *, enum upstream_result, int,
		    struct buf *, const char *);
static void	pipeline_error(struct conn *, const char *, size_t, int,
		    const char *);
static void	pipeline_send(struct conn *, const struct buf *);
static void	reply_head(struct buf *, const char *, size_t, int);
static void	request_finish(struct request *, int, const char *,
		    struct buf *);
static void	request_done(struct request *, const struct buf *);
static int	request_record(struct request *, int, const char *,
		    const struct buf *);
static void	pipeline_slice_cb(struct ev_loop *, ev_check *, int);
static void	pipeline_idle_cb(struct ev_loop *, ev_idle *, int);

void
pipeline_init(struct worker *w)
{
	uint8_t	rnd[12];
	size_t	i;

	memset(&pl, 0, sizeof(pl));
	pl.w = w;
	TAILQ_INIT(&pl.slicing);
	ev_check_init(&pl.slice_check, pipeline_slice_cb);
	ev_idle_init(&pl.slice_idle, pipeline_idle_cb);
	/*
	 * Request keys: 96 random bits drawn at worker start and a
	 * sequence number, unique across workers, restarts and hosts.
	 */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		fatal("getrandom");
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(pl.key_prefix + 2 * i, 3, "%02x", rnd[i]);
	redis_init(w->w_loop, w->w_cfg);
	lookup_init(w->w_loop, w->w_cfg);
	upstream_init(w->w_loop, w->w_cfg);
}

unsigned int
pipeline_pending(void)
{
	return pl.pending;
}

/* {"id":ID,"status":N, -- the start of every reply. */
static void
reply_head(struct buf *b, const char *id, size_t idlen, int status)
{
	buf_reset(b);
	buf_appendc(b, '{');
	if (id != NULL) {
		buf_append(b, "\"id\":", 5);
		buf_append(b, id, idlen);
		buf_appendc(b, ',');
	}
	buf_append(b, "\"status\":", 9);
	b->b_len += fmt_u64(buf_reserve(b, 20), (uint64_t)status);
	buf_appendc(b, ',');
}

static void
pipeline_send(struct conn *c, const struct buf *b)
{
	if (c != NULL && c->c_state == CONN_WS)
		wsconn_send(c, WS_OP_TEXT, b->b_p, b->b_len);
}

/* A reply for a message that never became a request. */
static void
pipeline_error(struct conn *c, const char *id, size_t idlen, int status,
    const char *error)
{
	reply_head(&pl.reply, id, idlen, status);
	buf_append(&pl.reply, "\"error\":\"", 9);
	json_escape(&pl.reply, (const uint8_t *)error, strlen(error));
	buf_append(&pl.reply, "\"}", 2);
	stats_reply(status);
	pipeline_send(c, &pl.reply);
}

void
pipeline_message(struct conn *c, int opcode, const uint8_t *p, size_t len)
{
	struct json_request	 jr;
	struct request		*rq;
	const char		*why;
	char			 err[160];

	if (opcode != WS_OP_TEXT) {
		pipeline_error(c, NULL, 0, 400, "bad request: binary message");
		return;
	}
	if (json_request_parse((const char *)p, len, &jr, &why) == -1) {
		snprintf(err, sizeof(err), "bad request: %s", why);
		pipeline_error(c, jr.id.p, jr.id.len, 400, err);
		return;
	}
	if (c->c_ninflight >= c->c_worker->w_cfg->c_max_inflight_per_connection) {
		pipeline_error(c, jr.id.p, jr.id.len, 429,
		    "too many requests");
		return;
	}
	/* No room to record it: refuse before anything happens. */
	if (!persist_has_room()) {
		pipeline_error(c, jr.id.p, jr.id.len, 503, "overloaded");
		return;
	}

	rq = xcalloc(1, sizeof(*rq));
	rq->rq_t_start = stats_now();
	rq->rq_conn = c;
	snprintf(rq->rq_key, sizeof(rq->rq_key), "%s-%llx", pl.key_prefix,
	    (unsigned long long)++pl.seq);
	if (jr.id.p != NULL) {
		rq->rq_id = xstrndup(jr.id.p, jr.id.len);
		rq->rq_idlen = jr.id.len;
	}
	memcpy(rq->rq_user, jr.user_id, jr.user_id_len + 1);
	rq->rq_userlen = jr.user_id_len;
	/* The body starts now: the payload bytes are not ours for long. */
	buf_reserve(&rq->rq_body, jr.payload.len + 32);
	buf_append(&rq->rq_body, "{\"payload\":", 11);
	buf_append(&rq->rq_body, jr.payload.p, jr.payload.len);
	buf_append(&rq->rq_body, ",\"config\":", 10);
	TAILQ_INSERT_TAIL(&c->c_requests, rq, rq_entry);
	c->c_ninflight++;
	pl.pending++;
	lookup_start(&rq->rq_wait, rq->rq_user, rq->rq_userlen,
	    pipeline_config_cb, rq);
}

static void
pipeline_config_cb(void *arg, enum lookup_status st, const char *json,
    size_t len)
{
	struct request	*rq = arg;

	rq->rq_t_redis = stats_now();
	switch (st) {
	case LOOKUP_OK:
		buf_append(&rq->rq_body, json, len);
		buf_appendc(&rq->rq_body, '}');
		rq->rq_upstream = 1;
		upstream_post(rq->rq_body.b_p, rq->rq_body.b_len, rq->rq_key,
		    pipeline_upstream_cb, rq);
		break;
	case LOOKUP_MISSING:
		request_finish(rq, 404, "no config", NULL);
		break;
	case LOOKUP_UNAVAILABLE:
		request_finish(rq, 503, "config store unavailable", NULL);
		break;
	case LOOKUP_TIMEOUT:
		request_finish(rq, 504, "config store timeout", NULL);
		break;
	case LOOKUP_INVALID:
		request_finish(rq, 502, "invalid config", NULL);
		break;
	}
}

static void
pipeline_upstream_cb(void *arg, enum upstream_result res, int status,
    struct buf *body, const char *detail)
{
	struct request	*rq = arg;
	char		 err[512];

	rq->rq_t_upstream = stats_now();
	switch (res) {
	case UPSTREAM_OK:
		request_finish(rq, status, NULL, body);
		break;
	case UPSTREAM_TIMEOUT:
		stats_inc(&stats_w->sw_upstream_errors[STATS_UPSTREAM_TIMEOUT]);
		request_finish(rq, 504, "upstream timeout", NULL);
		break;
	case UPSTREAM_ERROR:
		stats_inc(&stats_w->sw_upstream_errors[STATS_UPSTREAM_ERROR]);
		snprintf(err, sizeof(err), "upstream error: %s", detail);
		request_finish(rq, 502, err, NULL);
		break;
	}
}

/*
 * The request is answered: reply if the client is still there, then
 * forget it.  `error` NULL means an upstream reply with `body`; a large
 * body is escaped a slice per loop iteration (pipeline_slice_cb) so that
 * a multi-megabyte answer never holds up other clients.
 */
static void
request_finish(struct request *rq, int status, const char *error,
    struct buf *body)
{
	rq->rq_status = status;
	rq->rq_error = error;
	/*
	 * A request that reached the upstream is recorded before its reply
	 * leaves; if the ring cannot take the record, the client gets 503
	 * instead, so no upstream answer goes out unrecorded.
	 */
	if (rq->rq_upstream && request_record(rq, status, error, body) == -1) {
		status = rq->rq_status = 503;
		error = rq->rq_error = "overloaded";
		body = NULL;
	}
	if (error == NULL && body != NULL && body->b_len > PIPELINE_SLICE) {
		/* Take the body over from the upstream call. */
		rq->rq_resp = *body;
		memset(body, 0, sizeof(*body));
		rq->rq_resp_off = 0;
		reply_head(&rq->rq_reply, rq->rq_id, rq->rq_idlen, status);
		buf_append(&rq->rq_reply, "\"body\":\"", 8);
		TAILQ_INSERT_TAIL(&pl.slicing, rq, rq_entry_slice);
		if (!ev_is_active(&pl.slice_check)) {
			ev_check_start(pl.w->w_loop, &pl.slice_check);
			ev_idle_start(pl.w->w_loop, &pl.slice_idle);
		}
		return;
	}
	reply_head(&pl.reply, rq->rq_id, rq->rq_idlen, status);
	if (error != NULL) {
		buf_append(&pl.reply, "\"error\":\"", 9);
		json_escape(&pl.reply, (const uint8_t *)error, strlen(error));
	} else {
		buf_append(&pl.reply, "\"body\":\"", 8);
		if (body != NULL && body->b_len > 0)
			json_escape(&pl.reply, (const uint8_t *)body->b_p,
			    body->b_len);
	}
	buf_append(&pl.reply, "\"}", 2);
	request_done(rq, &pl.reply);
}

/* Append the request's record to the ring.  0, or -1 if it did not fit. */
static int
request_record(struct request *rq, int status, const char *error,
    const struct buf *body)
{
	struct record	r;
	struct timespec	ts;

	memset(&r, 0, sizeof(r));
	clock_gettime(CLOCK_REALTIME, &ts);
	r.r_created_at = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	r.r_latency_ms = (stats_now() - rq->rq_t_start) * 1000.0;
	r.r_request_key.p = rq->rq_key;
	r.r_request_key.len = strlen(rq->rq_key);
	r.r_user_id.p = rq->rq_user;
	r.r_user_id.len = rq->rq_userlen;
	if (rq->rq_id != NULL) {
		r.r_client_id.p = rq->rq_id;
		r.r_client_id.len = rq->rq_idlen;
	}
	if (error == NULL) {
		r.r_has_status = 1;
		r.r_status = status;
		r.r_response.p = body != NULL && body->b_p != NULL ?
		    body->b_p : "";
		r.r_response.len = body != NULL ? body->b_len : 0;
	} else {
		r.r_error.p = error;
		r.r_error.len = strlen(error);
	}
	return persist_append(&r);
}

/* Send the finished reply and free the request. */
static void
request_done(struct request *rq, const struct buf *reply)
{
	struct conn	*c = rq->rq_conn;

	rq->rq_t_done = stats_now();
	stats_reply(rq->rq_status);
	stats_observe(&stats_w->sw_stage[STATS_STAGE_REDIS],
	    rq->rq_t_redis - rq->rq_t_start);
	if (rq->rq_upstream)
		stats_observe(&stats_w->sw_stage[STATS_STAGE_UPSTREAM],
		    rq->rq_t_upstream - rq->rq_t_redis);
	stats_observe(&stats_w->sw_stage[STATS_STAGE_TOTAL],
	    rq->rq_t_done - rq->rq_t_start);
	if (c != NULL) {
		pipeline_send(c, reply);
		TAILQ_REMOVE(&c->c_requests, rq, rq_entry);
		c->c_ninflight--;
	}
	pl.pending--;
	free(rq->rq_id);
	buf_free(&rq->rq_body);
	buf_free(&rq->rq_resp);
	buf_free(&rq->rq_reply);
	free(rq);
	if (c != NULL)
		conn_requests_done(c);
	else
		worker_conn_gone(pl.w);
}

/*
 * One slice of the oldest large reply per loop iteration, round robin.
 * The ev_idle only keeps the loop from sleeping while work is queued.
 */
static void
pipeline_slice_cb(struct ev_loop *loop, ev_check *chk, int revents)
{
	struct request	*rq;
	const uint8_t	*p;
	size_t		 n, left, i;

	(void)chk;
	(void)revents;
	if ((rq = TAILQ_FIRST(&pl.slicing)) == NULL) {
		ev_check_stop(loop, &pl.slice_check);
		ev_idle_stop(loop, &pl.slice_idle);
		return;
	}
	TAILQ_REMOVE(&pl.slicing, rq, rq_entry_slice);
	n = rq->rq_resp.b_len - rq->rq_resp_off;
	if (n > PIPELINE_SLICE)
		n = PIPELINE_SLICE;
	/*
	 * Slices end anywhere, even inside a UTF-8 sequence: keep the
	 * sequence whole so it is not replaced as invalid.
	 */
	p = (const uint8_t *)rq->rq_resp.b_p + rq->rq_resp_off;
	left = rq->rq_resp.b_len - rq->rq_resp_off;
	for (i = 0; i < 3 && n < left && (p[n] & 0xC0) == 0x80; i++)
		n++;
	json_escape(&rq->rq_reply, p, n);
	rq->rq_resp_off += n;
	if (rq->rq_resp_off < rq->rq_resp.b_len) {
		TAILQ_INSERT_TAIL(&pl.slicing, rq, rq_entry_slice);
		return;
	}
	buf_append(&rq->rq_reply, "\"}", 2);
	request_done(rq, &rq->rq_reply);
}

static void
pipeline_idle_cb(struct ev_loop *loop, ev_idle *idle, int revents)
{
	(void)loop;
	(void)idle;
	(void)revents;
}

void
pipeline_conn_closed(struct conn *c)
{
	struct request	*rq;

	while ((rq = TAILQ_FIRST(&c->c_requests)) != NULL) {
		TAILQ_REMOVE(&c->c_requests, rq, rq_entry);
		rq->rq_conn = NULL;
	}
	c->c_ninflight = 0;
}

void
pipeline_shutdown(void)
{
	struct request	*rq;

	/* Aborted upstream calls and Redis lookups finish their requests. */
	upstream_shutdown();
	redis_shutdown();
	lookup_shutdown();
	while ((rq = TAILQ_FIRST(&pl.slicing)) != NULL) {
		TAILQ_REMOVE(&pl.slicing, rq, rq_entry_slice);
		json_escape(&rq->rq_reply, (const uint8_t *)rq->rq_resp.b_p +
		    rq->rq_resp_off, rq->rq_resp.b_len - rq->rq_resp_off);
		buf_append(&rq->rq_reply, "\"}", 2);
		request_done(rq, &rq->rq_reply);
	}
	buf_free(&pl.reply);
}
