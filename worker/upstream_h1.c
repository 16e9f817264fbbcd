/*
 * Built-in HTTP/1.1 client for cleartext (http://) upstreams.
 *
 * Why not libcurl here: on the hot path libcurl spent about 20 us of CPU
 * per request (its own state machine, a poll() liveness check on every
 * reused connection, epoll_ctl churn through CURLMOPT_SOCKETFUNCTION),
 * several times what the gateway does with the request otherwise.  A
 * keep-alive POST over a connection we already hold is one sendmsg() and,
 * once the answer is in, one recv(); that is all this client does.  TLS
 * and HTTP/2 stay with libcurl (upstream_curl.c), as do URLs this client
 * does not take (user info); see upstream.c.
 *
 * Connections: at most upstream_max_connections, kept alive, reused most
 * recently used first; one request at a time on each (no pipelining: the
 * requests are POSTs).  Calls that find every connection busy wait in
 * FIFO order.  Each connection's ev_io always watches for reading, so an
 * idle connection the server closes is noticed and dropped at once;
 * writing is watched only while a request is partly written.
 *
 * A request that fails on a reused connection before any byte of the
 * answer came back (the server closed an idle keep-alive connection as
 * we reused it) is sent again once, on a new connection, as browsers
 * and libcurl do.  Anything else fails the call: 502, or 504 after
 * upstream_timeout.
 *
 * Timeouts: every call has the same timeout, so calls are kept in start
 * order and one ev_timer waits for the oldest.
 *
 * Name resolution never blocks the loop (resolve.h): a name is looked up
 * at start, again every H1_RESOLVE_EVERY seconds and after a connect
 * error (at most every H1_RESOLVE_RETRY seconds).  While lookups fail,
 * the addresses of the last one that worked are used (the resolver keeps
 * them); with none, it is tried again every H1_RESOLVE_RETRY seconds.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "budget.h"
#include "h1resp.h"
#include "log.h"
#include "resolve.h"
#include "upstream_impl.h"
#include "util.h"

#define H1_READ_SIZE	(64u * 1024)	/* one recv() */
#define H1_READS_MAX	16		/* recv()s per wakeup, then yield */
#define H1_MAX_BODY	(256u << 20)	/* response bytes kept */
#define H1_POOL_BUF	(64u << 10)	/* larger body buffers not kept */
#define H1_RESOLVE_EVERY 30.		/* s, re-resolution of a host name */
#define H1_RESOLVE_RETRY 1.		/* s, after a failed one */
#define H1_RESOLVE_LOG_MS 10000		/* "cannot resolve": a line at most */
#define H1_KEY_MAX	64

enum h1_conn_state {
	K_CONNECTING,
	K_BUSY,			/* a call is being sent or answered */
	K_IDLE
};

struct h1conn;

struct h1call {
	TAILQ_ENTRY(h1call)	 c_time;	/* h1.calls, start order */
	TAILQ_ENTRY(h1call)	 c_wait;	/* h1.waitq or h1.failq */
	struct h1conn		*c_conn;
	const char		*c_body;
	size_t			 c_len;
	upstream_cb		*c_cb;
	void			*c_arg;
	ev_tstamp		 c_deadline;
	const char		*c_fail;	/* on h1.failq: why */
	char			 c_detail[160];
	char			 c_key[H1_KEY_MAX];
	unsigned int		 c_attempts;	/* connects that failed */
	unsigned int		 c_waiting:1;	/* on h1.waitq */
	unsigned int		 c_failing:1;	/* on h1.failq */
	unsigned int		 c_retried:1;
};

struct h1conn {
	TAILQ_ENTRY(h1conn)	 k_entry;	/* h1.idle or h1.busy */
	ev_io			 k_io;
	struct budget_item	 k_budget;	/* answers count against it */
	enum h1_conn_state	 k_state;
	struct h1call		*k_call;
	unsigned int		 k_requests;	/* sent on this connection */
	size_t			 k_headlen;
	size_t			 k_sent;	/* of head + body */
	struct h1resp		 k_resp;
	struct buf		 k_body;
	char			*k_head;	/* h1.prefix_len + H1_TAIL_MAX */
};

/* X-Request-Id value, then Content-Length and the empty line. */
#define H1_TAIL_MAX	(H1_KEY_MAX + 64)

static struct {
	struct ev_loop		*loop;
	const struct config	*cfg;
	unsigned int		 max_conns;
	unsigned int		 nconns;
	unsigned int		 pending;
	TAILQ_HEAD(h1conns, h1conn) idle;	/* most recently used first */
	TAILQ_HEAD(, h1conn)	 busy;
	TAILQ_HEAD(, h1call)	 calls;		/* in flight, start order */
	TAILQ_HEAD(, h1call)	 waitq;		/* need a connection */
	TAILQ_HEAD(, h1call)	 failq;		/* fail on the next iteration */
	ev_timer		 timeout;
	ev_timer		 failnow;

	/* "POST /path HTTP/1.1\r\nHost: h\r\n...X-Request-Id: " */
	char			*prefix;
	size_t			 prefix_len;

	/* Where to connect. */
	char			*host;		/* without IPv6 brackets */
	char			 port[8];
	unsigned int		 next_addr;	/* in res.rs_addrs */
	struct resolver		 res;
	ev_timer		 reresolve;
	ev_tstamp		 resolve_at;	/* the last lookup's start */
	struct log_limit	 resolve_log;	/* "cannot resolve" */
} h1;

static void	h1_io_cb(struct ev_loop *, ev_io *, int);
static void	h1_timeout_cb(struct ev_loop *, ev_timer *, int);
static void	h1_failnow_cb(struct ev_loop *, ev_timer *, int);
static void	h1_resolved(struct resolver *, int, void *);
static void	h1_reresolve_cb(struct ev_loop *, ev_timer *, int);
static void	h1_resolve(void);
static void	h1_dispatch(struct h1call *);
static void	h1_pump(void);
static int	h1_send(struct h1conn *);
static void	h1_read(struct h1conn *);
static void	h1_read_later(void *);
static void	h1_conn_close(struct h1conn *);
static void	h1_conn_lost(struct h1conn *, const char *, int);
static void	h1_call_done(struct h1call *);
static void	h1_call_fail(struct h1call *, const char *);
static void	h1_call_timeout_arm(void);
static void	h1_connect(struct h1call *);
static void	h1_connect_failed(struct h1call *, int);

/*
 * Whether this client can serve `url`, with the parts it needs.  The URL
 * was already accepted by the config parser (libcurl's URL parser).
 */
int
upstream_h1_usable(const char *url, char **host, char **port, char **target,
    char **hosthdr)
{
	CURLU	*u;
	char	*scheme = NULL, *user = NULL, *h = NULL, *p = NULL;
	char	*path = NULL, *query = NULL;
	int	 ok = 0;

	if ((u = curl_url()) == NULL)
		fatalx("curl_url: out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "http") != 0)
		goto out;
	/* user:password@ means Basic auth: libcurl's business. */
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	(void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
	ok = 1;
	if (host != NULL) {
		/* "[::1]" -> "::1" for getaddrinfo(). */
		if (h[0] == '[')
			*host = xstrndup(h + 1, strlen(h) - 2);
		else
			*host = xstrdup(h);
		*port = xstrdup(p);
		xasprintf(target, "%s%s%s", path[0] != '\0' ? path : "/",
		    query != NULL ? "?" : "", query != NULL ? query : "");
		if (strcmp(p, "80") == 0)
			*hosthdr = xstrdup(h);
		else
			xasprintf(hosthdr, "%s:%s", h, p);
	}
out:
	curl_free(scheme);
	curl_free(user);
	curl_free(h);
	curl_free(p);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return ok;
}

static void
h1_init(struct ev_loop *loop, const struct config *cfg)
{
	char		*port, *target, *hosthdr;
	const char	*name;

	memset(&h1, 0, sizeof(h1));
	h1.loop = loop;
	h1.cfg = cfg;
	h1.max_conns = cfg->c_upstream_max_connections;
	TAILQ_INIT(&h1.idle);
	TAILQ_INIT(&h1.busy);
	TAILQ_INIT(&h1.calls);
	TAILQ_INIT(&h1.waitq);
	TAILQ_INIT(&h1.failq);
	ev_timer_init(&h1.timeout, h1_timeout_cb, 0., 0.);
	ev_timer_init(&h1.failnow, h1_failnow_cb, 0., 0.);
	ev_timer_init(&h1.reresolve, h1_reresolve_cb, 0., 0.);

	if (!upstream_h1_usable(cfg->c_upstream_url, &h1.host, &port,
	    &target, &hosthdr))
		fatalx("upstream: built-in client cannot use upstream_url");
	snprintf(h1.port, sizeof(h1.port), "%s", port);
	h1.prefix_len = (size_t)xasprintf(&h1.prefix,
	    "POST %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Content-Type: application/json\r\n"
	    "X-Request-Id: ", target, hosthdr);
	free(port);
	free(target);
	free(hosthdr);

	name = h1.host;
	if (resolve_init(&h1.res, loop, &name, 1, h1.port, h1_resolved,
	    NULL) == -1)
		fatalx("upstream: %s", h1.res.rs_error);
	/* A numeric address needs no lookup: use it now. */
	if (h1.res.rs_numeric)
		h1_resolved(&h1.res, 1, NULL);
	else
		h1_resolve();
}

/* Look the host name up (again); a numeric host is never looked up. */
static void
h1_resolve(void)
{
	if (h1.res.rs_numeric || resolve_busy(&h1.res))
		return;
	ev_timer_stop(h1.loop, &h1.reresolve);
	h1.resolve_at = ev_now(h1.loop);
	resolve_start(&h1.res);
}

/*
 * After a connect error: look the name up again, but not more than every
 * H1_RESOLVE_RETRY seconds (an upstream that refuses connections fails
 * every call at once, and each would otherwise bring a lookup).
 */
static void
h1_resolve_soon(void)
{
	ev_tstamp	wait = h1.resolve_at + H1_RESOLVE_RETRY -
			    ev_now(h1.loop);

	if (wait <= 0.) {
		h1_resolve();
		return;
	}
	if (h1.res.rs_numeric || resolve_busy(&h1.res) ||
	    (ev_is_active(&h1.reresolve) &&
	    ev_timer_remaining(h1.loop, &h1.reresolve) <= wait))
		return;
	ev_timer_stop(h1.loop, &h1.reresolve);
	ev_timer_set(&h1.reresolve, wait, 0.);
	ev_timer_start(h1.loop, &h1.reresolve);
}

static void
h1_resolved(struct resolver *r, int ok, void *arg)
{
	struct h1call	*c;
	ev_tstamp	 again = H1_RESOLVE_EVERY;
	uint64_t	 quiet;

	(void)arg;
	h1.next_addr = 0;
	if (r->rs_numeric)
		return;
	/* resolve.c kept the addresses of the last lookup that worked. */
	if (r->rs_error[0] == '\0')
		log_limit_reset(&h1.resolve_log);
	else if (log_limit_now(&h1.resolve_log, H1_RESOLVE_LOG_MS, &quiet))
		log_warnx("upstream: %s%s unlogged=%" PRIu64, r->rs_error,
		    ok ? "; trying the addresses it had" : "", quiet);
	/*
	 * No address: soon again, and the waiting calls cannot go anywhere
	 * until a lookup works.  (With addresses a connect error also
	 * brings a lookup.)
	 */
	if (!ok) {
		again = H1_RESOLVE_RETRY;
		while ((c = TAILQ_FIRST(&h1.waitq)) != NULL)
			h1_call_fail(c, r->rs_error);
	}
	ev_timer_set(&h1.reresolve, again, 0.);
	ev_timer_start(h1.loop, &h1.reresolve);
	h1_pump();
}

static void
h1_reresolve_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	h1_resolve();
}

static unsigned int
h1_pending(void)
{
	return h1.pending;
}

static void
h1_post(const char *body, size_t len, const char *request_key,
    upstream_cb *cb, void *arg)
{
	struct h1call	*c;

	c = xcalloc(1, sizeof(*c));
	c->c_body = body;
	c->c_len = len;
	c->c_cb = cb;
	c->c_arg = arg;
	snprintf(c->c_key, sizeof(c->c_key), "%s", request_key);
	c->c_deadline = ev_now(h1.loop) +
	    (ev_tstamp)h1.cfg->c_upstream_timeout / 1000.;
	TAILQ_INSERT_TAIL(&h1.calls, c, c_time);
	h1.pending++;
	if (TAILQ_FIRST(&h1.calls) == c)
		h1_call_timeout_arm();
	/* Nobody queued before it: no reordering, send it now. */
	if (TAILQ_EMPTY(&h1.waitq))
		h1_dispatch(c);
	else {
		c->c_waiting = 1;
		TAILQ_INSERT_TAIL(&h1.waitq, c, c_wait);
	}
	h1_pump();
}

/* Give `c` a connection: an idle one, a new one, or a place in line. */
static void
h1_dispatch(struct h1call *c)
{
	struct h1conn	*k;

	if (!c->c_retried && (k = TAILQ_FIRST(&h1.idle)) != NULL) {
		TAILQ_REMOVE(&h1.idle, k, k_entry);
		TAILQ_INSERT_TAIL(&h1.busy, k, k_entry);
		k->k_state = K_BUSY;
		k->k_call = c;
		c->c_conn = k;
		(void)h1_send(k);
		return;
	}
	/* A retry wants a new connection: make room if all are taken. */
	if (c->c_retried && h1.nconns >= h1.max_conns &&
	    (k = TAILQ_LAST(&h1.idle, h1conns)) != NULL)
		h1_conn_close(k);
	if (h1.nconns < h1.max_conns && h1.res.rs_naddrs > 0) {
		h1_connect(c);
		return;
	}
	if (h1.res.rs_naddrs == 0 && !resolve_busy(&h1.res)) {
		h1_call_fail(c, h1.res.rs_error[0] != '\0' ?
		    h1.res.rs_error : "no address for the upstream host");
		return;
	}
	c->c_waiting = 1;
	TAILQ_INSERT_HEAD(&h1.waitq, c, c_wait);
}

/* Connections or addresses became available: serve the line in order. */
static void
h1_pump(void)
{
	struct h1call	*c;

	while ((c = TAILQ_FIRST(&h1.waitq)) != NULL &&
	    (!TAILQ_EMPTY(&h1.idle) ||
	    (h1.nconns < h1.max_conns && h1.res.rs_naddrs > 0))) {
		TAILQ_REMOVE(&h1.waitq, c, c_wait);
		c->c_waiting = 0;
		h1_dispatch(c);
		if (TAILQ_FIRST(&h1.waitq) == c)
			break;		/* still no way to send it */
	}
}

/* Open a connection for `c`, or fail it. */
static void
h1_connect(struct h1call *c)
{
	const struct resolve_addr *a =
			 &h1.res.rs_addrs[h1.next_addr % h1.res.rs_naddrs];
	struct h1conn	*k;
	int		 fd, one = 1;

	fd = socket(a->ra_addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(c->c_detail, sizeof(c->c_detail),
		    "cannot create a socket: %s", strerror(errno));
		h1_call_fail(c, c->c_detail);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&a->ra_addr, a->ra_len) ==
	    -1 && errno != EINPROGRESS) {
		h1_connect_failed(c, errno);
		close(fd);
		return;
	}
	k = xcalloc(1, sizeof(*k));
	k->k_head = xmalloc(h1.prefix_len + H1_TAIL_MAX);
	memcpy(k->k_head, h1.prefix, h1.prefix_len);
	h1resp_init(&k->k_resp);
	k->k_call = c;
	c->c_conn = k;
	h1.nconns++;
	TAILQ_INSERT_TAIL(&h1.busy, k, k_entry);
	k->k_state = K_CONNECTING;
	ev_io_init(&k->k_io, h1_io_cb, fd, EV_WRITE);
	k->k_io.data = k;
	budget_item_init(&k->k_budget, STATS_READ_UPSTREAM, h1_read_later,
	    k);
	ev_io_start(h1.loop, &k->k_io);
}

/*
 * Connecting failed: try the host's next address (a name may have an
 * IPv6 and an IPv4 one, only one of them served); once every address
 * failed for this call, fail it and look the name up again.
 */
static void
h1_connect_failed(struct h1call *c, int err)
{
	h1.next_addr++;
	if (++c->c_attempts < h1.res.rs_naddrs) {
		h1_connect(c);
		return;
	}
	snprintf(c->c_detail, sizeof(c->c_detail),
	    "cannot connect to %s port %s: %s", h1.host, h1.port,
	    strerror(err));
	h1_resolve_soon();
	h1_call_fail(c, c->c_detail);
}

/*
 * The end of the request head after the constant prefix: the
 * X-Request-Id value, Content-Length and the empty line (at most
 * H1_TAIL_MAX bytes: the key is shorter than H1_KEY_MAX).
 */
static size_t
h1_head_tail(char *p, const struct h1call *c)
{
	static const char	cl[] = "\r\nContent-Length: ";
	size_t			n = strlen(c->c_key);

	memcpy(p, c->c_key, n);
	memcpy(p + n, cl, sizeof(cl) - 1);
	n += sizeof(cl) - 1;
	n += fmt_u64(p + n, c->c_len);
	memcpy(p + n, "\r\n\r\n", 4);
	return n + 4;
}

/*
 * Write as much of the request as the socket takes.  Returns -1 if the
 * connection was lost (and freed).
 */
static int
h1_send(struct h1conn *k)
{
	struct h1call	*c = k->k_call;
	struct iovec	 iov[2];
	struct msghdr	 mh;
	ssize_t		 n;
	size_t		 off;
	int		 ev;

	if (k->k_sent == 0 && k->k_headlen == 0) {
		k->k_headlen = h1_head_tail(k->k_head + h1.prefix_len, c) +
		    h1.prefix_len;
		k->k_requests++;
	}
	for (;;) {
		off = k->k_sent;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		if (off < k->k_headlen) {
			iov[0].iov_base = k->k_head + off;
			iov[0].iov_len = k->k_headlen - off;
			iov[1].iov_base = (void *)(uintptr_t)c->c_body;
			iov[1].iov_len = c->c_len;
			mh.msg_iovlen = 2;
		} else {
			off -= k->k_headlen;
			iov[0].iov_base = (void *)(uintptr_t)(c->c_body + off);
			iov[0].iov_len = c->c_len - off;
			mh.msg_iovlen = 1;
		}
		n = sendmsg(k->k_io.fd, &mh, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			h1_conn_lost(k, "cannot send the request", errno);
			return -1;
		}
		k->k_sent += (size_t)n;
		if (k->k_sent == k->k_headlen + c->c_len)
			break;
	}
	ev = k->k_sent == k->k_headlen + c->c_len ? EV_READ :
	    EV_READ | EV_WRITE;
	if ((k->k_io.events & (EV_READ | EV_WRITE)) != ev) {
		ev_io_stop(h1.loop, &k->k_io);
		ev_io_set(&k->k_io, k->k_io.fd, ev);
		ev_io_start(h1.loop, &k->k_io);
	}
	return 0;
}

static void
h1_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct h1conn	*k = w->data;
	int		 err = 0;
	socklen_t	 len = sizeof(err);

	(void)loop;
	if (k->k_state == K_CONNECTING) {
		if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0)
			h1_conn_lost(k, "cannot connect", err);
		else {
			k->k_state = K_BUSY;
			(void)h1_send(k);
		}
	} else if (!(revents & EV_WRITE) || h1_send(k) == 0) {
		if ((revents & EV_READ) && !budget_later(&k->k_budget))
			h1_read(k);
	}
	/* Connections were freed or closed: serve who waits. */
	h1_pump();
}

/* An answer's read the loop's budget put off (budget.h). */
static void
h1_read_later(void *arg)
{
	h1_read(arg);
	h1_pump();
}

/* Read what the server sent; finish the call when its answer is whole. */
static void
h1_read(struct h1conn *k)
{
	static char	 rbuf[H1_READ_SIZE];
	struct h1call	*c;
	enum h1_result	 r;
	ssize_t		 n;
	size_t		 used;
	int		 i;

	for (i = 0; i < H1_READS_MAX; i++) {
		n = recv(k->k_io.fd, rbuf, sizeof(rbuf), 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			h1_conn_lost(k, "cannot read the response", errno);
			return;
		}
		if ((c = k->k_call) == NULL) {
			/* Idle: the server closed it, or sent what nobody asked. */
			h1_conn_close(k);
			return;
		}
		if (n == 0) {
			if (!h1resp_started(&k->k_resp))
				h1_conn_lost(k, "connection closed before the "
				    "response", 0);
			else if (h1resp_eof(&k->k_resp) == H1_DONE) {
				h1_call_done(c);
				free(c);
				h1_conn_close(k);
			} else
				h1_conn_lost(k, k->k_resp.error, 0);
			return;
		}
		r = h1resp_feed(&k->k_resp, rbuf, (size_t)n, &used,
		    &k->k_body);
		if (r == H1_ERROR) {
			h1_conn_lost(k, k->k_resp.error, 0);
			return;
		}
		if (k->k_body.b_len > H1_MAX_BODY) {
			h1_conn_lost(k, "response too large", 0);
			return;
		}
		if (r == H1_DONE) {
			h1_call_done(c);
			if (!k->k_resp.keep_alive || used < (size_t)n ||
			    k->k_sent < k->k_headlen + c->c_len) {
				/* Closing, bytes after it, or body unsent. */
				h1_conn_close(k);
			} else {
				k->k_call = NULL;
				k->k_state = K_IDLE;
				k->k_sent = k->k_headlen = 0;
				h1resp_reset(&k->k_resp);
				TAILQ_REMOVE(&h1.busy, k, k_entry);
				TAILQ_INSERT_HEAD(&h1.idle, k, k_entry);
			}
			free(c);
			return;
		}
		if ((size_t)n < sizeof(rbuf))
			return;		/* drained for now */
	}
}

/* The answer is whole: hand it over, then forget the call. */
static void
h1_call_done(struct h1call *c)
{
	struct h1conn	*k = c->c_conn;

	TAILQ_REMOVE(&h1.calls, c, c_time);
	h1.pending--;
	if (TAILQ_EMPTY(&h1.calls))
		ev_timer_stop(h1.loop, &h1.timeout);
	budget_charge(1);
	c->c_cb(c->c_arg, UPSTREAM_OK, k->k_resp.status, &k->k_body, NULL);
	if (k->k_body.b_cap > H1_POOL_BUF)
		buf_free(&k->k_body);
	buf_reset(&k->k_body);
	c->c_conn = NULL;
}

/*
 * The connection broke (or never came up).  Its call is sent again on a
 * new connection if it was reused and nothing of the answer came back,
 * else it fails.
 */
static void
h1_conn_lost(struct h1conn *k, const char *what, int err)
{
	struct h1call	*c = k->k_call;

	if (c != NULL && k->k_state == K_CONNECTING) {
		k->k_call = NULL;
		c->c_conn = NULL;
		h1_conn_close(k);
		h1_connect_failed(c, err);
		return;
	}
	if (c != NULL) {
		c->c_conn = NULL;
		k->k_call = NULL;
		if (k->k_requests > 1 && !c->c_retried &&
		    k->k_state == K_BUSY && !h1resp_started(&k->k_resp)) {
			c->c_retried = 1;
			h1_conn_close(k);
			h1_dispatch(c);
			return;
		}
		if (err != 0)
			snprintf(c->c_detail, sizeof(c->c_detail), "%s %s "
			    "port %s: %s", what, h1.host, h1.port,
			    strerror(err));
		else
			snprintf(c->c_detail, sizeof(c->c_detail), "%s", what);
		h1_call_fail(c, c->c_detail);
	}
	h1_conn_close(k);
}

static void
h1_conn_close(struct h1conn *k)
{
	ev_io_stop(h1.loop, &k->k_io);
	budget_cancel(&k->k_budget);
	close(k->k_io.fd);
	if (k->k_state == K_IDLE)
		TAILQ_REMOVE(&h1.idle, k, k_entry);
	else
		TAILQ_REMOVE(&h1.busy, k, k_entry);
	h1.nconns--;
	h1resp_free(&k->k_resp);
	buf_free(&k->k_body);
	free(k->k_head);
	free(k);
}

/*
 * Fail a call from the next loop iteration: callers may be inside
 * upstream_post(), which never calls back.
 */
static void
h1_call_fail(struct h1call *c, const char *why)
{
	if (c->c_waiting) {
		TAILQ_REMOVE(&h1.waitq, c, c_wait);
		c->c_waiting = 0;
	}
	c->c_fail = why;
	c->c_failing = 1;
	TAILQ_INSERT_TAIL(&h1.failq, c, c_wait);
	if (!ev_is_active(&h1.failnow)) {
		ev_timer_set(&h1.failnow, 0., 0.);
		ev_timer_start(h1.loop, &h1.failnow);
	}
}

static void
h1_call_end(struct h1call *c, enum upstream_result res, const char *why)
{
	if (c->c_failing)
		TAILQ_REMOVE(&h1.failq, c, c_wait);
	if (c->c_waiting)
		TAILQ_REMOVE(&h1.waitq, c, c_wait);
	TAILQ_REMOVE(&h1.calls, c, c_time);
	h1.pending--;
	c->c_cb(c->c_arg, res, 0, NULL, why);
	free(c);
}

static void
h1_failnow_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct h1call	*c;

	(void)loop;
	(void)t;
	(void)revents;
	while ((c = TAILQ_FIRST(&h1.failq)) != NULL)
		h1_call_end(c, UPSTREAM_ERROR, c->c_fail);
	h1_call_timeout_arm();
	h1_pump();
}

static void
h1_call_timeout_arm(void)
{
	struct h1call	*c;

	ev_timer_stop(h1.loop, &h1.timeout);
	if ((c = TAILQ_FIRST(&h1.calls)) == NULL)
		return;
	ev_timer_set(&h1.timeout, c->c_deadline - ev_now(h1.loop) > 0. ?
	    c->c_deadline - ev_now(h1.loop) : 0., 0.);
	ev_timer_start(h1.loop, &h1.timeout);
}

static void
h1_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct h1call	*c;
	struct h1conn	*k;

	(void)t;
	(void)revents;
	while ((c = TAILQ_FIRST(&h1.calls)) != NULL &&
	    c->c_deadline <= ev_now(loop)) {
		if (c->c_failing) {
			/* Fails in a moment anyway; keep its reason. */
			h1_call_end(c, UPSTREAM_ERROR, c->c_fail);
			continue;
		}
		if ((k = c->c_conn) != NULL) {
			/* The answer may still come: the connection is spent. */
			k->k_call = NULL;
			c->c_conn = NULL;
			h1_conn_close(k);
		}
		h1_call_end(c, UPSTREAM_TIMEOUT, "upstream timeout");
	}
	h1_call_timeout_arm();
	h1_pump();
}

static void
h1_shutdown(void)
{
	struct h1call	*c;
	struct h1conn	*k;

	ev_timer_stop(h1.loop, &h1.timeout);
	ev_timer_stop(h1.loop, &h1.failnow);
	ev_timer_stop(h1.loop, &h1.reresolve);
	/* A lookup under way finishes in its thread, unheard of. */
	resolve_close(&h1.res);
	while ((c = TAILQ_FIRST(&h1.calls)) != NULL) {
		if ((k = c->c_conn) != NULL) {
			k->k_call = NULL;
			c->c_conn = NULL;
		}
		h1_call_end(c, UPSTREAM_ERROR, c->c_failing ? c->c_fail :
		    "shutting down");
	}
	while ((k = TAILQ_FIRST(&h1.busy)) != NULL)
		h1_conn_close(k);
	while ((k = TAILQ_FIRST(&h1.idle)) != NULL)
		h1_conn_close(k);
	free(h1.prefix);
	free(h1.host);
	h1.prefix = h1.host = NULL;
}

const struct upstream_impl upstream_h1 = {
	"built-in HTTP/1.1",
	h1_init,
	h1_post,
	h1_pending,
	h1_shutdown
};
