/*
 * Connection life cycle on the worker loop: TLS handshake, request head,
 * endpoint dispatch, buffered writes, linger and close.  Closed
 * connections are freed from an ev_check sweep so that no callback ever
 * touches freed memory.
 *
 * Reads go into the worker's shared scratch buffer and are handled in
 * place; a connection owns memory only for what must outlive one read
 * (a request head, a partial message, unsent output), so an idle
 * WebSocket costs little more than struct conn.
 *
 * Client reads count against the loop's read budget (budget.h); admin
 * connections' do not.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "admin.h"
#include "conn.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#define CONN_LINGER_S		2.0
#define CONN_READS_PER_EVENT	16	/* then let other connections run */
#define CONN_BUF_MIN		512

enum {
	IO_WANT_READ = -1,
	IO_WANT_WRITE = -2,
	IO_ERROR = -3
};

static void	conn_read_cb(struct ev_loop *, ev_io *, int);
static void	conn_read(struct conn *);
static void	conn_read_later(void *);
static void	conn_write_cb(struct ev_loop *, ev_io *, int);
static void	conn_timer_cb(struct ev_loop *, ev_timer *, int);
static ssize_t	conn_io_read(struct conn *, void *, size_t);
static ssize_t	conn_io_write(struct conn *, const void *, size_t);
static ssize_t	conn_ssl_result(struct conn *, int);
static void	conn_tls_handshake(struct conn *);
static void	conn_read_head(struct conn *);
static void	conn_read_ws(struct conn *);
static void	conn_linger_read(struct conn *);
static void	conn_flush(struct conn *);
static void	conn_flushed(struct conn *);
static void	conn_want(struct conn *, int);
static void	conn_refused(struct conn *, enum stats_handshake);

const char *
http_reason(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

struct conn *
conn_new(struct worker *w, int fd, int admin, SSL_CTX *ssl_ctx)
{
	struct conn	*c;

	c = xcalloc(1, sizeof(*c));
	c->c_worker = w;
	c->c_fd = fd;
	c->c_admin = admin;
	c->c_head = xmalloc(sizeof(*c->c_head));
	c->c_head->hd_len = 0;
	TAILQ_INIT(&c->c_requests);
	http_request_init(&c->c_head->hd_req);
	ev_io_init(&c->c_rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->c_wio, conn_write_cb, fd, EV_WRITE);
	c->c_rio.data = c->c_wio.data = c;
	budget_item_init(&c->c_budget, STATS_READ_CLIENT, conn_read_later, c);
	ev_init(&c->c_timer, conn_timer_cb);
	c->c_timer.data = c;
	c->c_deadline = ev_now(w->w_loop) +
	    w->w_cfg->c_handshake_timeout / 1000.0;
	c->c_state = CONN_READ_HEAD;
	if (ssl_ctx != NULL) {
		if ((c->c_ssl = SSL_new(ssl_ctx)) == NULL ||
		    SSL_set_fd(c->c_ssl, fd) != 1) {
			log_warnx("cannot set up TLS for a connection");
			ERR_clear_error();
			if (c->c_ssl != NULL)
				SSL_free(c->c_ssl);
			free(c->c_head);
			free(c);
			close(fd);
			return NULL;
		}
		c->c_state = CONN_TLS_HANDSHAKE;
	}
	TAILQ_INSERT_TAIL(&w->w_conns, c, c_entry);
	w->w_nconns++;
	stats_set(&stats_w->sw_sockets, w->w_nconns);
	ev_io_start(w->w_loop, &c->c_rio);
	conn_timer_update(c);
	return c;
}

void
conn_close(struct conn *c)
{
	struct worker	*w = c->c_worker;

	if (c->c_state == CONN_CLOSED)
		return;
	c->c_state = CONN_CLOSED;
	pipeline_conn_closed(c);
	ev_io_stop(w->w_loop, &c->c_rio);
	ev_io_stop(w->w_loop, &c->c_wio);
	ev_timer_stop(w->w_loop, &c->c_timer);
	if (c->c_flush_queued) {
		TAILQ_REMOVE(&w->w_flush, c, c_flush_entry);
		c->c_flush_queued = 0;
	}
	budget_cancel(&c->c_budget);
	if (c->c_ssl != NULL && !c->c_tls_closed) {
		/* One non-blocking attempt at close_notify; never wait. */
		SSL_shutdown(c->c_ssl);
		ERR_clear_error();
	}
	close(c->c_fd);
	c->c_fd = -1;
	/* wsconn_upgrade() counted it in when it let the head go. */
	if (c->c_head == NULL)
		stats_dec(&stats_w->sw_connections);
	TAILQ_REMOVE(&w->w_conns, c, c_entry);
	TAILQ_INSERT_TAIL(&w->w_dead, c, c_entry);
	w->w_nconns--;
	stats_set(&stats_w->sw_sockets, w->w_nconns);
	worker_conn_gone(w);
}

void
conn_sweep(struct worker *w)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&w->w_dead)) != NULL) {
		TAILQ_REMOVE(&w->w_dead, c, c_entry);
		if (c->c_ssl != NULL)
			SSL_free(c->c_ssl);
		wsconn_free(c);
		free(c->c_head);
		free(c->c_out.b_data);
		free(c);
	}
}

/*
 * A request of this connection was answered: a drain waiting for the
 * connection's last answer sends its Close now.
 */
void
conn_requests_done(struct conn *c)
{
	if (c->c_close_when_idle && c->c_ninflight == 0 &&
	    c->c_state == CONN_WS) {
		c->c_close_when_idle = 0;
		wsconn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
	}
}

/* A client connection that ends before its WebSocket opened. */
static void
conn_refused(struct conn *c, enum stats_handshake why)
{
	if (!c->c_admin)
		stats_inc(&stats_w->sw_handshakes_failed[why]);
}

/* ---- Transport ---- */

/* Map a failed SSL_read/SSL_write to 0 (clean EOF) or an IO_ code. */
static ssize_t
conn_ssl_result(struct conn *c, int rc)
{
	switch (SSL_get_error(c->c_ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		ERR_clear_error();
		return IO_ERROR;
	}
}

/* Bytes read, 0 at EOF, or IO_WANT_READ/IO_WANT_WRITE/IO_ERROR. */
static ssize_t
conn_io_read(struct conn *c, void *buf, size_t len)
{
	ssize_t	n;
	int	rc;

	if (c->c_ssl == NULL) {
		do
			n = read(c->c_fd, buf, len);
		while (n == -1 && errno == EINTR);
		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EWOULDBLOCK ?
		    IO_WANT_READ : IO_ERROR;
	}
	rc = SSL_read(c->c_ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	return rc > 0 ? rc : conn_ssl_result(c, rc);
}

/* Bytes written, or IO_WANT_READ/IO_WANT_WRITE/IO_ERROR. */
static ssize_t
conn_io_write(struct conn *c, const void *buf, size_t len)
{
	ssize_t	n;
	int	rc;

	if (c->c_ssl == NULL) {
		do
			n = write(c->c_fd, buf, len);
		while (n == -1 && errno == EINTR);
		if (n >= 0)
			return n;
		return errno == EAGAIN || errno == EWOULDBLOCK ?
		    IO_WANT_WRITE : IO_ERROR;
	}
	rc = SSL_write(c->c_ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	if (rc > 0)
		return rc;
	n = conn_ssl_result(c, rc);
	return n == 0 ? IO_ERROR : n;
}

/* Wait for writability (TLS may need it to make progress reading). */
static void
conn_want(struct conn *c, int what)
{
	if (what == IO_WANT_WRITE)
		ev_io_start(c->c_worker->w_loop, &c->c_wio);
}

static void
conn_tls_handshake(struct conn *c)
{
	int	rc;

	ERR_clear_error();
	rc = SSL_accept(c->c_ssl);
	if (rc == 1) {
		ev_io_stop(c->c_worker->w_loop, &c->c_wio);
		c->c_state = CONN_READ_HEAD;
		conn_read_head(c);
		return;
	}
	switch (SSL_get_error(c->c_ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		ev_io_stop(c->c_worker->w_loop, &c->c_wio);
		return;
	case SSL_ERROR_WANT_WRITE:
		ev_io_start(c->c_worker->w_loop, &c->c_wio);
		return;
	default:
		log_debug("TLS handshake failed fd=%d", c->c_fd);
		ERR_clear_error();
		conn_refused(c, STATS_HS_TLS);
		conn_close(c);
		return;
	}
}

/* ---- Output ---- */

int
conn_queue2(struct conn *c, const void *a, size_t alen, const void *b,
    size_t blen)
{
	struct worker	*w = c->c_worker;
	struct conn_buf	*o = &c->c_out;
	size_t		 pending = o->b_len - o->b_off, need;

	if (c->c_state == CONN_CLOSED)
		return -1;
	if (pending + alen + blen > w->w_cfg->c_max_output_buffer &&
	    (c->c_state == CONN_WS || c->c_state == CONN_WS_CLOSING)) {
		log_info("closing a client that does not read "
		    "pending=%zu limit=%zu", pending + alen + blen,
		    w->w_cfg->c_max_output_buffer);
		conn_close(c);
		return -1;
	}
	if (o->b_off > 0 && o->b_len + alen + blen > o->b_cap) {
		memmove(o->b_data, o->b_data + o->b_off, pending);
		o->b_len = pending;
		o->b_off = 0;
	}
	need = o->b_len + alen + blen;
	if (need > o->b_cap) {
		size_t cap = o->b_cap < CONN_BUF_MIN ? CONN_BUF_MIN : o->b_cap;
		while (cap < need)
			cap *= 2;
		o->b_data = xrealloc(o->b_data, cap);
		o->b_cap = cap;
	}
	memcpy(o->b_data + o->b_len, a, alen);
	if (blen > 0)
		memcpy(o->b_data + o->b_len + alen, b, blen);
	o->b_len += alen + blen;
	if (!c->c_flush_queued) {
		TAILQ_INSERT_TAIL(&w->w_flush, c, c_flush_entry);
		c->c_flush_queued = 1;
	}
	return 0;
}

int
conn_queue(struct conn *c, const void *p, size_t len)
{
	return conn_queue2(c, p, len, NULL, 0);
}

/*
 * Everything queued during this loop iteration goes out in one write
 * per connection, just before the loop waits again.
 */
void
conn_flush_all(struct worker *w)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&w->w_flush)) != NULL) {
		TAILQ_REMOVE(&w->w_flush, c, c_flush_entry);
		c->c_flush_queued = 0;
		conn_flush(c);
	}
}

static void
conn_flush(struct conn *c)
{
	struct conn_buf	*o = &c->c_out;
	ssize_t		 n;

	c->c_write_wants_read = 0;
	while (o->b_off < o->b_len) {
		n = conn_io_write(c, o->b_data + o->b_off, o->b_len - o->b_off);
		if (n == IO_WANT_WRITE) {
			ev_io_start(c->c_worker->w_loop, &c->c_wio);
			return;
		}
		if (n == IO_WANT_READ) {
			c->c_write_wants_read = 1;
			return;
		}
		if (n < 0) {
			conn_close(c);
			return;
		}
		o->b_off += (size_t)n;
	}
	ev_io_stop(c->c_worker->w_loop, &c->c_wio);
	/* Nothing pending: give the memory back (idle connections). */
	free(o->b_data);
	memset(o, 0, sizeof(*o));
	conn_flushed(c);
}

/*
 * Half-close and wait for the peer's FIN before closing, so that unread
 * bytes in our receive queue do not turn close() into a reset that
 * destroys the last response or Close frame in flight [nginx
 * lingering_close].
 */
void
conn_linger(struct conn *c)
{
	struct worker	*w = c->c_worker;

	if (c->c_ssl != NULL) {
		/* close_notify first; what follows is read raw and dropped. */
		SSL_shutdown(c->c_ssl);
		ERR_clear_error();
		c->c_tls_closed = 1;
	}
	shutdown(c->c_fd, SHUT_WR);
	c->c_state = CONN_LINGER;
	c->c_deadline = ev_now(w->w_loop) + CONN_LINGER_S;
	ev_io_start(w->w_loop, &c->c_rio);
	conn_timer_update(c);
}

/* All output written: finish an HTTP exchange or a close handshake. */
static void
conn_flushed(struct conn *c)
{
	if (c->c_state == CONN_HTTP_WRITE ||
	    (c->c_state == CONN_WS_CLOSING && c->c_close_after_flush))
		conn_linger(c);
}

void
conn_http_respond(struct conn *c, int status, const char *extra,
    const char *body, size_t len)
{
	conn_http_respond_type(c, status, "text/plain; charset=utf-8", extra,
	    body, len);
}

void
conn_http_respond_type(struct conn *c, int status, const char *type,
    const char *extra, const char *body, size_t len)
{
	const struct http_request	*r = &c->c_head->hd_req;
	char				 head[1024];
	int				 n, with_body;

	with_body = body != NULL && !(r->h_method.len == 4 &&
	    memcmp(r->h_method.p, "HEAD", 4) == 0);
	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\n"
	    "Server: wsgate\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "%s"
	    "Connection: close\r\n"
	    "\r\n", status, http_reason(status), type, body != NULL ? len : 0,
	    extra != NULL ? extra : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		conn_close(c);
		return;
	}
	c->c_state = CONN_HTTP_WRITE;
	/* One request per connection: stop reading until the linger. */
	ev_io_stop(c->c_worker->w_loop, &c->c_rio);
	c->c_deadline = ev_now(c->c_worker->w_loop) +
	    c->c_worker->w_cfg->c_handshake_timeout / 1000.0;
	conn_timer_update(c);
	conn_queue2(c, head, (size_t)n, body, with_body ? len : 0);
}

/* ---- Input ---- */

/* Discard what the peer still sends (raw: TLS is over) until its FIN. */
static void
conn_linger_read(struct conn *c)
{
	struct worker	*w = c->c_worker;
	ssize_t		 n;

	for (;;) {
		n = read(c->c_fd, w->w_rbuf, sizeof(w->w_rbuf));
		if (n > 0 || (n == -1 && errno == EINTR))
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(c);
		return;
	}
}

static void
conn_read_head(struct conn *c)
{
	struct conn_head	*hd = c->c_head;
	ssize_t			 n;
	int			 rc;

	if (hd->hd_len == sizeof(hd->hd_buf)) {
		conn_refused(c, STATS_HS_BAD_REQUEST);
		conn_http_respond(c, 431, NULL, "request header too large\n",
		    25);
		return;
	}
	n = conn_io_read(c, hd->hd_buf + hd->hd_len,
	    sizeof(hd->hd_buf) - hd->hd_len);
	if (n == IO_WANT_READ || n == IO_WANT_WRITE) {
		conn_want(c, (int)n);
		return;
	}
	if (n <= 0) {
		conn_close(c);
		return;
	}
	hd->hd_len += (size_t)n;
	rc = http_request_parse(&hd->hd_req, hd->hd_buf, hd->hd_len);
	if (rc == HTTP_INCOMPLETE) {
		/* TLS may hold more decrypted bytes than the socket shows. */
		if (c->c_ssl != NULL && SSL_pending(c->c_ssl) > 0)
			conn_read_head(c);
		return;
	}
	if (rc == HTTP_ERROR) {
		int	status = hd->hd_req.h_error_status;
		char	body[64];
		int	len = snprintf(body, sizeof(body), "%s\n",
			    http_reason(status));
		conn_refused(c, STATS_HS_BAD_REQUEST);
		conn_http_respond(c, status, NULL, body, (size_t)len);
		return;
	}
	if (c->c_admin) {
		admin_handle(c);
		return;
	}
	wsconn_upgrade(c, (uint8_t *)hd->hd_buf + hd->hd_req.h_head_len,
	    hd->hd_len - hd->hd_req.h_head_len);
}

static void
conn_read_ws(struct conn *c)
{
	struct worker	*w = c->c_worker;
	ssize_t		 n;
	int		 i;

	for (i = 0; i < CONN_READS_PER_EVENT; i++) {
		n = conn_io_read(c, w->w_rbuf, sizeof(w->w_rbuf));
		if (n > 0) {
			c->c_last_rx = ev_now(w->w_loop);
			wsconn_input(c, w->w_rbuf, (size_t)n);
			if (c->c_state == CONN_CLOSED)
				return;
			/* A short read drained the socket. */
			if ((size_t)n < sizeof(w->w_rbuf) &&
			    (c->c_ssl == NULL || SSL_pending(c->c_ssl) == 0))
				return;
			continue;
		}
		if (n == IO_WANT_READ || n == IO_WANT_WRITE) {
			conn_want(c, (int)n);
			return;
		}
		/* EOF or error without a close handshake: 1006 for the peer. */
		conn_close(c);
		return;
	}
}

static void
conn_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn	*c = io->data;

	(void)loop;
	(void)revents;
	if (!c->c_admin && budget_later(&c->c_budget))
		return;
	conn_read(c);
}

/* A read the budget put off, now first in its iteration. */
static void
conn_read_later(void *arg)
{
	struct conn	*c = arg;

	/* Not if reading stopped meanwhile (an HTTP response). */
	if (ev_is_active(&c->c_rio))
		conn_read(c);
}

static void
conn_read(struct conn *c)
{
	if (c->c_write_wants_read) {
		conn_flush(c);
		if (c->c_state == CONN_CLOSED)
			return;
	}
	switch (c->c_state) {
	case CONN_TLS_HANDSHAKE:
		conn_tls_handshake(c);
		break;
	case CONN_READ_HEAD:
		conn_read_head(c);
		break;
	case CONN_LINGER:
		conn_linger_read(c);
		break;
	case CONN_WS:
	case CONN_WS_CLOSING:
		conn_read_ws(c);
		break;
	default:
		break;
	}
}

static void
conn_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn	*c = io->data;

	(void)revents;
	switch (c->c_state) {
	case CONN_TLS_HANDSHAKE:
		conn_tls_handshake(c);
		return;
	case CONN_READ_HEAD:
		/* A TLS read that needed to write first. */
		ev_io_stop(loop, io);
		conn_read_head(c);
		return;
	default:
		break;
	}
	if (c->c_out.b_off < c->c_out.b_len)
		conn_flush(c);
	else {
		ev_io_stop(loop, io);
		if (c->c_state == CONN_WS || c->c_state == CONN_WS_CLOSING)
			conn_read_ws(c);
	}
}

/* ---- Timers ---- */

void
conn_timer_update(struct conn *c)
{
	struct worker	*w = c->c_worker;
	ev_tstamp	 at, now = ev_now(w->w_loop);

	if (c->c_state == CONN_CLOSED)
		return;
	if (c->c_state == CONN_WS) {
		double idle = w->w_cfg->c_idle_timeout / 1000.0;
		at = c->c_last_rx + idle * (c->c_ping_sent ? 2 : 1);
		if (c->c_close_at != 0 && c->c_close_at < at)
			at = c->c_close_at;
	} else
		at = c->c_deadline;
	ev_timer_stop(w->w_loop, &c->c_timer);
	ev_timer_set(&c->c_timer, at > now ? at - now : 0., 0.);
	ev_timer_start(w->w_loop, &c->c_timer);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn	*c = t->data;
	ev_tstamp	 now = ev_now(loop);

	(void)revents;
	switch (c->c_state) {
	case CONN_WS:
		wsconn_timer(c, now);
		return;
	case CONN_READ_HEAD:
		if (now < c->c_deadline)
			break;
		conn_refused(c, STATS_HS_TIMEOUT);
		if (c->c_head->hd_len > 0) {
			conn_http_respond(c, 408, NULL, "request timeout\n",
			    16);
			return;
		}
		conn_close(c);
		return;
	default:
		if (now < c->c_deadline)
			break;
		if (c->c_state == CONN_TLS_HANDSHAKE)
			conn_refused(c, STATS_HS_TIMEOUT);
		conn_close(c);
		return;
	}
	conn_timer_update(c);
}
