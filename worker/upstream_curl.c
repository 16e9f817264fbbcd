/*
 * Upstream HTTP client on the worker loop (libcurl multi socket API),
 * for https:// (TLS, HTTP/2) and whatever the built-in client does not
 * take (upstream.c).
 *
 * SOCKETFUNCTION maps each curl socket to an ev_io, TIMERFUNCTION to one
 * ev_timer; both call curl_multi_socket_action() and then collect
 * finished transfers with curl_multi_info_read().  No polling, no
 * curl_multi_wait(): the worker loop is the only loop.
 *
 * At most upstream_max_connections transfers are in libcurl at once; the
 * others wait here, first come first served.  libcurl's own queue of
 * transfers waiting for a connection is not ordered (a freed connection
 * goes to whichever transfer it reaches first), which under load let
 * some requests wait far longer than others.  A waiting call's
 * upstream_timeout counts from upstream_post(): it enters libcurl with
 * what is left of it.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "log.h"
#include "upstream_impl.h"
#include "upstream_tls.h"
#include "util.h"

#define UPSTREAM_MAX_BODY	(256u << 20)	/* response bytes kept */
#define UPSTREAM_POOL_BUF	(64u << 10)	/* larger buffers not pooled */

struct upstream_call {
	TAILQ_ENTRY(upstream_call) uc_entry;	/* calls, or the free pool */
	CURL			*uc_easy;
	/*
	 * The request headers as a list curl only reads: nodes and the
	 * X-Request-Id text live here, no allocation per request.
	 */
	struct curl_slist	 uc_hdr[3];
	char			 uc_xid[96];
	struct buf		 uc_body;
	upstream_cb		*uc_cb;
	void			*uc_arg;
	ev_tstamp		 uc_deadline;
	int			 uc_queued;	/* on up.waitq, not in curl */
	int			 uc_too_big;
	int			 uc_early;	/* answered, upload unfinished */
	size_t			 uc_reqlen;
	char			 uc_error[CURL_ERROR_SIZE];
};

/* One per curl socket, attached with curl_multi_assign(). */
struct upstream_sock {
	ev_io		us_io;
	curl_socket_t	us_fd;
};

static struct {
	struct ev_loop		*loop;
	const struct config	*cfg;
	CURLM			*multi;
	ev_timer		 timer;
	unsigned int		 pending;
	int			 running;
	int			 https;
	int			 stopping;
	TAILQ_HEAD(, upstream_call) calls;	/* in libcurl */
	TAILQ_HEAD(, upstream_call) waitq;	/* not yet, in post order */
	TAILQ_HEAD(, upstream_call) pool;	/* idle, configured handles */
	unsigned int		 npool;
	unsigned int		 active;	/* calls in libcurl */
	unsigned int		 early;		/* calls with uc_early set */
	ev_timer		 qtimer;	/* the oldest waiting call */
} up;

static int	upstream_socket_cb(CURL *, curl_socket_t, int, void *, void *);
static int	upstream_timer_cb(CURLM *, long, void *);
static void	upstream_io_cb(struct ev_loop *, ev_io *, int);
static void	upstream_timeout_cb(struct ev_loop *, ev_timer *, int);
static void	upstream_check_done(void);
static size_t	upstream_write_cb(char *, size_t, size_t, void *);
static void	upstream_finish(struct upstream_call *, CURLcode);
static int	upstream_answer_whole(struct upstream_call *);
static struct upstream_call *upstream_call_new(void);
static void	upstream_start(struct upstream_call *);
static void	upstream_pump(void);
static void	upstream_queue_arm(void);
static void	upstream_queue_cb(struct ev_loop *, ev_timer *, int);

static void
ucurl_init(struct ev_loop *loop, const struct config *cfg)
{
	memset(&up, 0, sizeof(up));
	up.loop = loop;
	up.cfg = cfg;
	TAILQ_INIT(&up.calls);
	TAILQ_INIT(&up.waitq);
	TAILQ_INIT(&up.pool);
	ev_timer_init(&up.qtimer, upstream_queue_cb, 0., 0.);
	up.https = strncasecmp(cfg->c_upstream_url, "https:", 6) == 0;
	if (up.https && !cfg->c_upstream_tls_verify)
		log_warnx("upstream: certificate verification is off "
		    "(upstream_tls_verify off)");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if ((up.multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init failed");
	curl_multi_setopt(up.multi, CURLMOPT_SOCKETFUNCTION,
	    upstream_socket_cb);
	curl_multi_setopt(up.multi, CURLMOPT_TIMERFUNCTION, upstream_timer_cb);
	curl_multi_setopt(up.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    (long)cfg->c_upstream_max_connections);
	curl_multi_setopt(up.multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)cfg->c_upstream_max_connections);
	/* Idle connections kept for reuse. */
	curl_multi_setopt(up.multi, CURLMOPT_MAXCONNECTS,
	    (long)cfg->c_upstream_max_connections);
	curl_multi_setopt(up.multi, CURLMOPT_PIPELINING,
	    (long)CURLPIPE_MULTIPLEX);
	ev_timer_init(&up.timer, upstream_timeout_cb, 0., 0.);
}

static unsigned int
ucurl_pending(void)
{
	return up.pending;
}

static int
upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *sockp)
{
	struct upstream_sock	*us = sockp;
	int			 ev;

	(void)easy;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (us != NULL) {
			ev_io_stop(up.loop, &us->us_io);
			free(us);
			curl_multi_assign(up.multi, fd, NULL);
		}
		return 0;
	}
	ev = (what & CURL_POLL_IN ? EV_READ : 0) |
	    (what & CURL_POLL_OUT ? EV_WRITE : 0);
	if (us == NULL) {
		us = xcalloc(1, sizeof(*us));
		us->us_fd = fd;
		ev_io_init(&us->us_io, upstream_io_cb, fd, ev);
		us->us_io.data = us;
		curl_multi_assign(up.multi, fd, us);
	} else {
		ev_io_stop(up.loop, &us->us_io);
		ev_io_set(&us->us_io, fd, ev);
	}
	ev_io_start(up.loop, &us->us_io);
	return 0;
}

static int
upstream_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	(void)userp;
	ev_timer_stop(up.loop, &up.timer);
	if (timeout_ms >= 0) {
		/* 0 means "as soon as possible": the next loop iteration. */
		ev_timer_set(&up.timer, timeout_ms / 1000.0, 0.);
		ev_timer_start(up.loop, &up.timer);
	}
	return 0;
}

static void
upstream_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct upstream_sock	*us = io->data;
	int			 action;

	(void)loop;
	action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
	    (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	curl_multi_socket_action(up.multi, us->us_fd, action, &up.running);
	upstream_check_done();
}

static void
upstream_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	curl_multi_socket_action(up.multi, CURL_SOCKET_TIMEOUT, 0,
	    &up.running);
	upstream_check_done();
}

static size_t
upstream_write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct upstream_call	*uc = arg;
	size_t			 len = size * n;

	if (uc->uc_body.b_len + len > UPSTREAM_MAX_BODY) {
		uc->uc_too_big = 1;
		return 0;	/* makes curl fail with CURLE_WRITE_ERROR */
	}
	buf_append(&uc->uc_body, p, len);
	if (!uc->uc_early && upstream_answer_whole(uc)) {
		curl_off_t	sent = 0;

		curl_easy_getinfo(uc->uc_easy, CURLINFO_SIZE_UPLOAD_T, &sent);
		if (sent < (curl_off_t)uc->uc_reqlen) {
			uc->uc_early = 1;
			up.early++;
		}
	}
	return len;
}

/*
 * The server's whole answer is here: a final status, and as many body
 * bytes as its Content-Length said (without one, only the end of the
 * transfer tells).
 *
 * A server may answer before it has read the whole request and then
 * stop the upload (RFC 9113 section 8.1: RST_STREAM with NO_ERROR after
 * the response; HTTP/1.1: a close), and the client must keep that
 * answer.  libcurl 7.88 (Debian 12) does not: it fails the transfer
 * (CURLE_HTTP2_STREAM, CURLE_SEND_ERROR) or, when the server just stops
 * reading, waits for flow-control credit until the timeout.  So a call
 * whose answer is whole while its request is not all sent is finished
 * here (upstream_check_done), and a transfer that failed after its
 * answer was whole delivers that answer.
 */
static int
upstream_answer_whole(struct upstream_call *uc)
{
	long		status = 0;
	curl_off_t	clen = -1;

	curl_easy_getinfo(uc->uc_easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200)
		return 0;
	curl_easy_getinfo(uc->uc_easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
	    &clen);
	return clen >= 0 && (curl_off_t)uc->uc_body.b_len == clen;
}

static void
upstream_finish(struct upstream_call *uc, CURLcode rc)
{
	long	status = 0;
	char	detail[CURL_ERROR_SIZE + 64];

	if (uc->uc_queued) {
		TAILQ_REMOVE(&up.waitq, uc, uc_entry);
		uc->uc_queued = 0;
	} else {
		curl_multi_remove_handle(up.multi, uc->uc_easy);
		TAILQ_REMOVE(&up.calls, uc, uc_entry);
		up.active--;
	}
	up.pending--;
	if (uc->uc_early) {
		uc->uc_early = 0;
		up.early--;
	}
	/* The answer was whole before the transfer failed: it stands. */
	if (rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT &&
	    rc != CURLE_ABORTED_BY_CALLBACK && !uc->uc_too_big &&
	    upstream_answer_whole(uc)) {
		log_debug("upstream answered before the request was sent "
		    "whole; answer kept (%s)", curl_easy_strerror(rc));
		rc = CURLE_OK;
	}
	if (rc == CURLE_OK) {
		curl_easy_getinfo(uc->uc_easy, CURLINFO_RESPONSE_CODE,
		    &status);
		uc->uc_cb(uc->uc_arg, UPSTREAM_OK, (int)status, &uc->uc_body,
		    NULL);
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		uc->uc_cb(uc->uc_arg, UPSTREAM_TIMEOUT, 0, NULL,
		    "upstream timeout");
	} else {
		snprintf(detail, sizeof(detail), "%s", uc->uc_too_big ?
		    "response too large" : uc->uc_error[0] != '\0' ?
		    uc->uc_error : curl_easy_strerror(rc));
		uc->uc_cb(uc->uc_arg, UPSTREAM_ERROR, 0, NULL, detail);
	}
	/*
	 * Keep the configured handle for the next request: creating and
	 * configuring one per request was a large share of libcurl's cost.
	 */
	if (up.npool < up.cfg->c_upstream_max_connections && up.multi != NULL &&
	    !up.stopping) {
		if (uc->uc_body.b_cap > UPSTREAM_POOL_BUF)
			buf_free(&uc->uc_body);
		buf_reset(&uc->uc_body);
		TAILQ_INSERT_HEAD(&up.pool, uc, uc_entry);
		up.npool++;
		return;
	}
	curl_easy_cleanup(uc->uc_easy);
	buf_free(&uc->uc_body);
	free(uc);
}

static void
upstream_check_done(void)
{
	CURLMsg			*msg;
	int			 left;
	struct upstream_call	*uc, *next;

	while ((msg = curl_multi_info_read(up.multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&uc);
		upstream_finish(uc, msg->data.result);
	}
	/* Answered while their requests were still being sent: done. */
	for (uc = TAILQ_FIRST(&up.calls); up.early > 0 && uc != NULL;
	    uc = next) {
		next = TAILQ_NEXT(uc, uc_entry);
		if (uc->uc_early)
			upstream_finish(uc, CURLE_OK);
	}
	upstream_pump();
}

/* A handle with every option that does not change per request. */
static struct upstream_call *
upstream_call_new(void)
{
	const struct config	*cfg = up.cfg;
	struct upstream_call	*uc;
	CURL			*e;

	uc = xcalloc(1, sizeof(*uc));
	if ((e = uc->uc_easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	uc->uc_hdr[0].data = (char *)(uintptr_t)"Content-Type: application/json";
	uc->uc_hdr[0].next = &uc->uc_hdr[1];
	uc->uc_hdr[1].data = uc->uc_xid;
	uc->uc_hdr[1].next = &uc->uc_hdr[2];
	/* No "Expect: 100-continue" round trip for large bodies. */
	uc->uc_hdr[2].data = (char *)(uintptr_t)"Expect:";
	uc->uc_hdr[2].next = NULL;
	curl_easy_setopt(e, CURLOPT_URL, cfg->c_upstream_url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, uc->uc_hdr);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, upstream_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, uc);
	curl_easy_setopt(e, CURLOPT_PRIVATE, uc);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, uc->uc_error);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* No proxy: also spares libcurl reading the environment each time. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	/*
	 * HTTP/2 over TLS when offered (ALPN), multiplexed; 1.1 otherwise.
	 * PIPEWAIT (prefer waiting for a connection that may multiplex)
	 * only where ALPN answers during the handshake: on cleartext HTTP
	 * curl would learn it from the first response, so every request
	 * would queue behind a slow first one.
	 */
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS);
	if (up.https)
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	upstream_tls_setopt(e, cfg);
	return uc;
}

static void
ucurl_post(const char *body, size_t len, const char *request_key,
    upstream_cb *cb, void *arg)
{
	struct upstream_call	*uc;
	CURL			*e;

	if ((uc = TAILQ_FIRST(&up.pool)) != NULL) {
		TAILQ_REMOVE(&up.pool, uc, uc_entry);
		up.npool--;
	} else
		uc = upstream_call_new();
	e = uc->uc_easy;
	uc->uc_cb = cb;
	uc->uc_arg = arg;
	uc->uc_too_big = 0;
	uc->uc_reqlen = len;
	uc->uc_error[0] = '\0';
	snprintf(uc->uc_xid, sizeof(uc->uc_xid), "X-Request-Id: %s",
	    request_key);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	uc->uc_deadline = ev_now(up.loop) +
	    (ev_tstamp)up.cfg->c_upstream_timeout / 1000.;
	up.pending++;
	if (up.active < up.cfg->c_upstream_max_connections &&
	    TAILQ_EMPTY(&up.waitq)) {
		upstream_start(uc);
		return;
	}
	uc->uc_queued = 1;
	TAILQ_INSERT_TAIL(&up.waitq, uc, uc_entry);
	if (TAILQ_FIRST(&up.waitq) == uc)
		upstream_queue_arm();
}

/* Hand the call to libcurl with what is left of its timeout. */
static void
upstream_start(struct upstream_call *uc)
{
	ev_tstamp	left = uc->uc_deadline - ev_now(up.loop);
	long		ms = left > 0.001 ? (long)(left * 1000.) : 1;

	curl_easy_setopt(uc->uc_easy, CURLOPT_TIMEOUT_MS, ms);
	if (curl_multi_add_handle(up.multi, uc->uc_easy) != CURLM_OK)
		fatalx("curl_multi_add_handle failed");
	TAILQ_INSERT_TAIL(&up.calls, uc, uc_entry);
	up.active++;
}

/* Transfers ended: let waiting calls in, oldest first. */
static void
upstream_pump(void)
{
	struct upstream_call	*uc;
	int			 moved = 0;

	while (!up.stopping && up.active < up.cfg->c_upstream_max_connections &&
	    (uc = TAILQ_FIRST(&up.waitq)) != NULL) {
		TAILQ_REMOVE(&up.waitq, uc, uc_entry);
		uc->uc_queued = 0;
		upstream_start(uc);
		moved = 1;
	}
	if (moved)
		upstream_queue_arm();
}

static void
upstream_queue_arm(void)
{
	struct upstream_call	*uc;
	ev_tstamp		 left;

	ev_timer_stop(up.loop, &up.qtimer);
	if ((uc = TAILQ_FIRST(&up.waitq)) == NULL)
		return;
	left = uc->uc_deadline - ev_now(up.loop);
	ev_timer_set(&up.qtimer, left > 0. ? left : 0., 0.);
	ev_timer_start(up.loop, &up.qtimer);
}

/* Waiting calls whose upstream_timeout passed before they got in. */
static void
upstream_queue_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct upstream_call	*uc;

	(void)t;
	(void)revents;
	while ((uc = TAILQ_FIRST(&up.waitq)) != NULL &&
	    uc->uc_deadline <= ev_now(loop))
		upstream_finish(uc, CURLE_OPERATION_TIMEDOUT);
	upstream_queue_arm();
}

static void
ucurl_shutdown(void)
{
	struct upstream_call	*uc;

	ev_timer_stop(up.loop, &up.timer);
	ev_timer_stop(up.loop, &up.qtimer);
	up.stopping = 1;
	while ((uc = TAILQ_FIRST(&up.waitq)) != NULL)
		upstream_finish(uc, CURLE_ABORTED_BY_CALLBACK);
	while ((uc = TAILQ_FIRST(&up.calls)) != NULL)
		upstream_finish(uc, CURLE_ABORTED_BY_CALLBACK);
	while ((uc = TAILQ_FIRST(&up.pool)) != NULL) {
		TAILQ_REMOVE(&up.pool, uc, uc_entry);
		curl_easy_cleanup(uc->uc_easy);
		buf_free(&uc->uc_body);
		free(uc);
	}
	curl_multi_cleanup(up.multi);
	up.multi = NULL;
	curl_global_cleanup();
}

const struct upstream_impl upstream_curl = {
	"libcurl",
	ucurl_init,
	ucurl_post,
	ucurl_pending,
	ucurl_shutdown
};
