/*
 * Connection life cycle on the worker loop: read the request head, hand
 * it to its endpoint, write the response, linger for the peer's FIN,
 * close.  Closed connections are freed from an ev_check sweep so no
 * callback ever touches freed memory.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "conn.h"
#include "log.h"
#include "util.h"

#define CONN_LINGER_MS	2000

static void	conn_read_cb(struct ev_loop *, ev_io *, int);
static void	conn_write_cb(struct ev_loop *, ev_io *, int);
static void	conn_timer_cb(struct ev_loop *, ev_timer *, int);
static void	conn_dispatch(struct conn *);
static void	conn_flush(struct conn *);
static void	conn_linger_read(struct conn *);

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
conn_new(struct worker *w, int fd, int admin)
{
	struct conn	*c;

	c = xcalloc(1, sizeof(*c));
	c->c_worker = w;
	c->c_fd = fd;
	c->c_admin = admin;
	c->c_state = CONN_READ_HEAD;
	c->c_in = xmalloc(HTTP_MAX_HEAD);
	http_request_init(&c->c_req);
	ev_io_init(&c->c_rio, conn_read_cb, fd, EV_READ);
	ev_io_init(&c->c_wio, conn_write_cb, fd, EV_WRITE);
	c->c_rio.data = c->c_wio.data = c;
	ev_timer_init(&c->c_timer, conn_timer_cb,
	    w->w_cfg->c_handshake_timeout / 1000.0, 0.);
	c->c_timer.data = c;
	ev_io_start(w->w_loop, &c->c_rio);
	ev_timer_start(w->w_loop, &c->c_timer);
	TAILQ_INSERT_TAIL(&w->w_conns, c, c_entry);
	w->w_nconns++;
	return c;
}

void
conn_close(struct conn *c)
{
	struct worker	*w = c->c_worker;

	if (c->c_state == CONN_CLOSED)
		return;
	c->c_state = CONN_CLOSED;
	ev_io_stop(w->w_loop, &c->c_rio);
	ev_io_stop(w->w_loop, &c->c_wio);
	ev_timer_stop(w->w_loop, &c->c_timer);
	close(c->c_fd);
	c->c_fd = -1;
	TAILQ_REMOVE(&w->w_conns, c, c_entry);
	TAILQ_INSERT_TAIL(&w->w_dead, c, c_entry);
	w->w_nconns--;
	worker_conn_gone(w);
}

void
conn_sweep(struct worker *w)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&w->w_dead)) != NULL) {
		TAILQ_REMOVE(&w->w_dead, c, c_entry);
		free(c->c_in);
		free(c->c_out);
		free(c);
	}
}

void
conn_http_respond(struct conn *c, int status, const char *content_type,
    const char *body, size_t len)
{
	char	head[512];
	int	n, with_body;

	with_body = body != NULL && !(c->c_req.h_method.len == 4 &&
	    memcmp(c->c_req.h_method.p, "HEAD", 4) == 0);
	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\n"
	    "Server: wsgate\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "\r\n", status, http_reason(status),
	    content_type != NULL ? content_type : "text/plain",
	    body != NULL ? len : 0);
	free(c->c_out);
	c->c_outlen = (size_t)n + (with_body ? len : 0);
	c->c_out = xmalloc(c->c_outlen);
	memcpy(c->c_out, head, n);
	if (with_body)
		memcpy(c->c_out + n, body, len);
	c->c_outoff = 0;
	c->c_state = CONN_WRITE;
	/* Stop reading: one request per connection for now. */
	ev_io_stop(c->c_worker->w_loop, &c->c_rio);
	conn_flush(c);
}

/* Write what the socket takes; wait for writability for the rest. */
static void
conn_flush(struct conn *c)
{
	struct worker	*w = c->c_worker;
	ssize_t		 n;

	while (c->c_outoff < c->c_outlen) {
		n = write(c->c_fd, c->c_out + c->c_outoff,
		    c->c_outlen - c->c_outoff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(w->w_loop, &c->c_wio);
				return;
			}
			conn_close(c);
			return;
		}
		c->c_outoff += (size_t)n;
	}
	ev_io_stop(w->w_loop, &c->c_wio);
	/*
	 * Half-close and wait for the peer's FIN before closing, so that
	 * unread request bytes do not turn our close into a reset that
	 * destroys the response in flight [nginx lingering_close].
	 */
	shutdown(c->c_fd, SHUT_WR);
	c->c_state = CONN_LINGER;
	ev_timer_stop(w->w_loop, &c->c_timer);
	ev_timer_set(&c->c_timer, CONN_LINGER_MS / 1000.0, 0.);
	ev_timer_start(w->w_loop, &c->c_timer);
	ev_io_start(w->w_loop, &c->c_rio);
}

static void
conn_linger_read(struct conn *c)
{
	char	buf[4096];
	ssize_t	n;

	for (;;) {
		n = read(c->c_fd, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		conn_close(c);
		return;
	}
}

static void
conn_dispatch(struct conn *c)
{
	if (c->c_admin) {
		admin_handle(c);
		return;
	}
	conn_http_respond(c, 404, "text/plain", "not found\n", 10);
}

static void
conn_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn	*c = io->data;
	ssize_t		 n;
	int		 rc;

	(void)loop;
	(void)revents;
	if (c->c_state == CONN_LINGER) {
		conn_linger_read(c);
		return;
	}
	if (c->c_inlen == HTTP_MAX_HEAD) {
		conn_http_respond(c, 431, "text/plain",
		    "request header too large\n", 25);
		return;
	}
	n = read(c->c_fd, c->c_in + c->c_inlen, HTTP_MAX_HEAD - c->c_inlen);
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR &&
	    errno != EWOULDBLOCK)) {
		conn_close(c);
		return;
	}
	if (n == -1)
		return;
	c->c_inlen += (size_t)n;
	rc = http_request_parse(&c->c_req, c->c_in, c->c_inlen);
	if (rc == HTTP_INCOMPLETE)
		return;
	if (rc == HTTP_ERROR) {
		int	status = c->c_req.h_error_status;
		char	body[64];
		int	len = snprintf(body, sizeof(body), "%s\n",
			    http_reason(status));
		conn_http_respond(c, status, "text/plain", body, len);
		return;
	}
	ev_timer_stop(c->c_worker->w_loop, &c->c_timer);
	conn_dispatch(c);
}

static void
conn_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	conn_flush(io->data);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn	*c = t->data;

	(void)loop;
	(void)revents;
	if (c->c_state == CONN_READ_HEAD && c->c_inlen > 0) {
		conn_http_respond(c, 408, "text/plain", "request timeout\n", 16);
		return;
	}
	conn_close(c);
}
