/*
 * WebSocket connections (RFC 6455, server side): opening handshake,
 * frame reception, fragmentation, UTF-8, control frames, close
 * handshake, keepalive.
 *
 * Frames are handled where they land in the worker's read buffer: a
 * message that arrives whole in one read is unmasked in place and handed
 * to the endpoint without a copy.  Only messages that span reads or
 * frames are gathered in rx_buf, which never grows past
 * max_message_size.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "stats.h"
#include "util.h"
#include "wsconn.h"

#define WS_CLOSING_TIMEOUT_S	5.0	/* wait for the peer's Close */

static int	wsconn_origin_allowed(const struct config *,
		    struct http_span);
static void	wsconn_refuse(struct conn *, enum stats_handshake, int,
		    const char *, const char *, size_t);
static void	wsconn_message(struct conn *, int, const uint8_t *, size_t);
static void	wsconn_control(struct conn *, int, const uint8_t *, size_t);
static int	wsconn_frame_start(struct conn *);
static int	wsconn_payload(struct conn *, uint8_t *, size_t);
static void	wsconn_fail(struct conn *, unsigned int, const char *);

static int
wsconn_origin_allowed(const struct config *cfg, struct http_span origin)
{
	size_t	i;

	if (cfg->c_allowed_origins == NULL)
		return 1;
	if (origin.p == NULL)
		return 0;
	for (i = 0; i < cfg->c_nallowed_origins; i++)
		if (http_span_eq(origin, cfg->c_allowed_origins[i]))
			return 1;
	return 0;
}

static int
span_eq_exact(struct http_span s, const char *lit)
{
	return lit != NULL && s.len == strlen(lit) &&
	    memcmp(s.p, lit, s.len) == 0;
}

/* An upgrade request refused: count why, answer it. */
static void
wsconn_refuse(struct conn *c, enum stats_handshake why, int status,
    const char *extra, const char *body, size_t len)
{
	stats_inc(&stats_w->sw_handshakes_failed[why]);
	conn_http_respond(c, status, extra, body, len);
}

void
wsconn_upgrade(struct conn *c, uint8_t *extra, size_t extralen)
{
	struct worker			*w = c->c_worker;
	const struct config		*cfg = w->w_cfg;
	const struct http_request	*r = &c->c_head->hd_req;
	char				 accept[WS_ACCEPT_LEN + 1], resp[256];
	int				 n;

	if (span_eq_exact(r->h_path, cfg->c_echo_path))
		c->c_echo = 1;
	else if (!span_eq_exact(r->h_path, cfg->c_ws_path)) {
		wsconn_refuse(c, STATS_HS_NOT_FOUND, 404, NULL, "not found\n",
		    10);
		return;
	}
	if (!span_eq_exact(r->h_method, "GET")) {
		wsconn_refuse(c, STATS_HS_METHOD, 405, "Allow: GET\r\n",
		    "method not allowed\n", 19);
		return;
	}
	if (!r->h_upgrade_websocket) {
		wsconn_refuse(c, STATS_HS_NOT_WEBSOCKET, 426,
		    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
		    "this endpoint speaks WebSocket\n", 31);
		return;
	}
	if (r->h_version_minor < 1 || !r->h_connection_upgrade) {
		wsconn_refuse(c, STATS_HS_BAD_UPGRADE, 400, NULL,
		    "bad upgrade request\n", 20);
		return;
	}
	if (r->h_ws_version != 13) {
		wsconn_refuse(c, STATS_HS_VERSION, 426,
		    "Sec-WebSocket-Version: 13\r\n",
		    "unsupported WebSocket version\n", 30);
		return;
	}
	if (!ws_key_valid(r->h_ws_key.p, r->h_ws_key.len)) {
		wsconn_refuse(c, STATS_HS_BAD_UPGRADE, 400, NULL,
		    "bad Sec-WebSocket-Key\n", 22);
		return;
	}
	if (!wsconn_origin_allowed(cfg, r->h_origin)) {
		wsconn_refuse(c, STATS_HS_ORIGIN, 403, NULL,
		    "origin not allowed\n", 19);
		return;
	}
	ws_accept_key(r->h_ws_key.p, r->h_ws_key.len, accept);
	n = snprintf(resp, sizeof(resp),
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n"
	    "\r\n", accept);

	c->c_state = CONN_WS;
	c->c_last_rx = ev_now(w->w_loop);
	ws_msg_init(&c->c_rx.rx_msg);
	if (conn_queue(c, resp, (size_t)n) == -1)
		return;
	conn_timer_update(c);
	/*
	 * Open from here on: c_head goes away below, which is how
	 * conn_close() knows to count the connection out.
	 */
	stats_inc(&stats_w->sw_connections_total);
	stats_inc(&stats_w->sw_connections);
	if (extralen > 0) {
		/*
		 * Frames pipelined behind the head: move them out of the
		 * head buffer, which goes away now.
		 */
		uint8_t *tmp = w->w_rbuf;
		memcpy(tmp, extra, extralen);
		free(c->c_head);
		c->c_head = NULL;
		wsconn_input(c, tmp, extralen);
		return;
	}
	free(c->c_head);
	c->c_head = NULL;
}

/*
 * _Fail the WebSocket Connection_ (RFC 6455 7.1.7): send a Close saying
 * why, then close TCP once it is out, without waiting for an answer.
 */
static void
wsconn_fail(struct conn *c, unsigned int code, const char *why)
{
	log_debug("failing WebSocket code=%u reason=\"%s\"", code, why);
	wsconn_close(c, code, why);
	c->c_close_after_flush = 1;
}

int
wsconn_send(struct conn *c, int opcode, const void *p, size_t len)
{
	uint8_t	hdr[WS_SERVER_HEADER_MAX];
	size_t	hlen;

	hlen = ws_frame_header_build(hdr, 1, opcode, len);
	if (conn_queue2(c, hdr, hlen, p, len) == -1)
		return -1;
	if (opcode < 0x8)
		stats_inc(&stats_w->sw_messages_out);
	return 0;
}

void
wsconn_close(struct conn *c, unsigned int code, const char *reason)
{
	uint8_t	payload[WS_CONTROL_MAX];
	size_t	len;

	if (c->c_state != CONN_WS)
		return;
	len = ws_close_build(payload, code, reason,
	    reason != NULL ? strlen(reason) : 0);
	if (wsconn_send(c, WS_OP_CLOSE, payload, len) == -1)
		return;
	c->c_state = CONN_WS_CLOSING;
	c->c_deadline = ev_now(c->c_worker->w_loop) + WS_CLOSING_TIMEOUT_S;
	conn_timer_update(c);
}

/* A complete data message: echoed on echo_path, a request on ws_path. */
static void
wsconn_message(struct conn *c, int opcode, const uint8_t *p, size_t len)
{
	stats_inc(&stats_w->sw_messages_in);
	budget_charge(1);
	if (c->c_echo)
		wsconn_send(c, opcode, p, len);
	else
		pipeline_message(c, opcode, p, len);
}

static void
wsconn_control(struct conn *c, int opcode, const uint8_t *p, size_t len)
{
	struct ws_close	cl;
	uint8_t		payload[WS_CONTROL_MAX];
	size_t		plen;
	int		rc;

	switch (opcode) {
	case WS_OP_PING:
		if (c->c_state == CONN_WS)
			wsconn_send(c, WS_OP_PONG, p, len);
		break;
	case WS_OP_PONG:
		c->c_ping_sent = 0;
		break;
	case WS_OP_CLOSE:
		c->c_close_after_flush = 1;
		if (c->c_state == CONN_WS_CLOSING) {
			/* The answer to our Close: done once ours is out. */
			if (c->c_out.b_off == c->c_out.b_len)
				conn_linger(c);
			break;
		}
		if ((rc = ws_close_parse(p, len, &cl)) != 0) {
			wsconn_fail(c, (unsigned int)rc, "invalid close frame");
			break;
		}
		/* Echo the code (RFC 6455 5.5.1); empty for none. */
		plen = ws_close_build(payload, cl.code, NULL, 0);
		if (wsconn_send(c, WS_OP_CLOSE, payload, plen) == -1)
			break;
		c->c_state = CONN_WS_CLOSING;
		c->c_deadline = ev_now(c->c_worker->w_loop) +
		    WS_CLOSING_TIMEOUT_S;
		conn_timer_update(c);
		break;
	}
}

/*
 * A complete frame header is in rx_frame: check it against the message
 * rules and limits.  Returns 0, or -1 after failing the connection.
 */
static int
wsconn_frame_start(struct conn *c)
{
	struct ws_rx	*rx = &c->c_rx;
	struct ws_frame	*f = &rx->rx_frame;
	int		 op;

	if ((op = ws_msg_frame(&rx->rx_msg, f)) == -1) {
		wsconn_fail(c, WS_CLOSE_PROTOCOL, "unexpected continuation");
		return -1;
	}
	rx->rx_opcode = op;
	rx->rx_left = f->payload_len;
	rx->rx_off = 0;
	rx->rx_in_frame = 1;
	if (f->opcode >= 0x8) {
		rx->rx_ctllen = 0;
		return 0;
	}
	if (f->opcode != WS_OP_CONT) {
		rx->rx_len = 0;
		if (op == WS_OP_TEXT)
			utf8_init(&rx->rx_utf8);
	}
	if (f->payload_len > c->c_worker->w_cfg->c_max_message_size ||
	    rx->rx_len + f->payload_len >
	    c->c_worker->w_cfg->c_max_message_size) {
		wsconn_fail(c, WS_CLOSE_TOO_BIG, "message too big");
		return -1;
	}
	return 0;
}

/*
 * Payload bytes p[0..len) of the current frame (len <= rx_left).
 * Returns 0, or -1 once the connection is failed or closed.
 */
static int
wsconn_payload(struct conn *c, uint8_t *p, size_t len)
{
	struct ws_rx	*rx = &c->c_rx;
	struct ws_frame	*f = &rx->rx_frame;
	int		 last, whole;

	ws_unmask(p, len, f->mask, (size_t)rx->rx_off);
	rx->rx_off += len;
	rx->rx_left -= len;
	last = rx->rx_left == 0;

	if (f->opcode >= 0x8) {
		memcpy(rx->rx_ctl + rx->rx_ctllen, p, len);
		rx->rx_ctllen += (uint8_t)len;
		if (last) {
			rx->rx_in_frame = 0;
			wsconn_control(c, f->opcode, rx->rx_ctl, rx->rx_ctllen);
		}
		return c->c_state == CONN_CLOSED ? -1 : 0;
	}
	if (c->c_state != CONN_WS) {
		/* Data after a Close is ignored (RFC 6455 5.5.1). */
		if (last)
			rx->rx_in_frame = 0;
		return 0;
	}
	if (rx->rx_opcode == WS_OP_TEXT &&
	    utf8_feed(&rx->rx_utf8, p, len) == UTF8_INVALID) {
		wsconn_fail(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
		return -1;
	}
	/* The whole message in this one piece: no copy. */
	whole = f->fin && rx->rx_len == 0 && rx->rx_off == len && last;
	if (!whole && len > 0) {
		if (rx->rx_len + len > rx->rx_cap) {
			size_t cap = rx->rx_cap < 256 ? 256 : rx->rx_cap;
			while (cap < rx->rx_len + len)
				cap *= 2;
			rx->rx_buf = xrealloc(rx->rx_buf, cap);
			rx->rx_cap = cap;
		}
		memcpy(rx->rx_buf + rx->rx_len, p, len);
		rx->rx_len += len;
	}
	if (!last)
		return 0;
	rx->rx_in_frame = 0;
	if (!f->fin)
		return 0;
	if (rx->rx_opcode == WS_OP_TEXT &&
	    utf8_feed(&rx->rx_utf8, NULL, 0) != UTF8_OK) {
		wsconn_fail(c, WS_CLOSE_INVALID_DATA, "truncated UTF-8");
		return -1;
	}
	if (whole)
		wsconn_message(c, rx->rx_opcode, p, len);
	else {
		wsconn_message(c, rx->rx_opcode, rx->rx_buf, rx->rx_len);
		rx->rx_len = 0;
		/* Keep small buffers; give large ones back. */
		if (rx->rx_cap > 65536) {
			free(rx->rx_buf);
			rx->rx_buf = NULL;
			rx->rx_cap = 0;
		}
	}
	return c->c_state == CONN_CLOSED ? -1 : 0;
}

void
wsconn_input(struct conn *c, uint8_t *p, size_t len)
{
	struct ws_rx	*rx = &c->c_rx;
	int		 hl;
	size_t		 take;

	while (len > 0 && c->c_state != CONN_CLOSED) {
		if (c->c_state == CONN_WS_CLOSING && c->c_close_after_flush)
			return;		/* nothing more to read */
		if (rx->rx_in_frame) {
			take = rx->rx_left < len ? (size_t)rx->rx_left : len;
			if (wsconn_payload(c, p, take) == -1)
				return;
			p += take;
			len -= take;
			continue;
		}
		if (rx->rx_hdrlen > 0) {
			/* A header split across reads: complete it. */
			take = WS_CLIENT_HEADER_MAX - rx->rx_hdrlen;
			if (take > len)
				take = len;
			memcpy(rx->rx_hdr + rx->rx_hdrlen, p, take);
			hl = ws_frame_parse(rx->rx_hdr, rx->rx_hdrlen + take,
			    &rx->rx_frame);
			if (hl == 0) {
				rx->rx_hdrlen += (uint8_t)take;
				return;
			}
			if (hl < 0) {
				wsconn_fail(c, rx->rx_frame.close_code,
				    "bad frame");
				return;
			}
			take = (size_t)hl - rx->rx_hdrlen;
			rx->rx_hdrlen = 0;
		} else {
			hl = ws_frame_parse(p, len, &rx->rx_frame);
			if (hl == 0) {
				memcpy(rx->rx_hdr, p, len);
				rx->rx_hdrlen = (uint8_t)len;
				return;
			}
			if (hl < 0) {
				wsconn_fail(c, rx->rx_frame.close_code,
				    "bad frame");
				return;
			}
			take = (size_t)hl;
		}
		p += take;
		len -= take;
		if (wsconn_frame_start(c) == -1)
			return;
		if (rx->rx_left == 0 && wsconn_payload(c, p, 0) == -1)
			return;
	}
}

void
wsconn_timer(struct conn *c, double now)
{
	struct worker	*w = c->c_worker;
	double		 idle = w->w_cfg->c_idle_timeout / 1000.0;

	if (c->c_close_at != 0 && now >= c->c_close_at) {
		c->c_close_at = 0;
		/* Answer what is in flight first (conn_requests_done). */
		if (c->c_ninflight > 0)
			c->c_close_when_idle = 1;
		else {
			wsconn_close(c, WS_CLOSE_GOING_AWAY,
			    "server shutting down");
			return;
		}
	}
	if (c->c_ping_sent && now >= c->c_last_rx + 2 * idle) {
		log_debug("no pong within idle_timeout, closing");
		conn_close(c);
		return;
	}
	if (!c->c_ping_sent && now >= c->c_last_rx + idle) {
		c->c_ping_sent = 1;
		if (wsconn_send(c, WS_OP_PING, NULL, 0) == -1)
			return;
	}
	conn_timer_update(c);
}

void
wsconn_free(struct conn *c)
{
	free(c->c_rx.rx_buf);
	c->c_rx.rx_buf = NULL;
}
