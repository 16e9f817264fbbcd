/*
 * Client and admin connections: the transport (plain or TLS), buffers,
 * the per-connection timer and deferred free.  A connection starts by
 * reading an HTTP request head; the admin listener answers it and
 * closes, the client listener upgrades it to a WebSocket (wsconn.c).
 */
#ifndef WSGATE_CONN_H
#define WSGATE_CONN_H

#include <sys/queue.h>
#include <stdint.h>
#include <ev.h>
#include <openssl/ssl.h>

#include "budget.h"
#include "http.h"
#include "pipeline.h"
#include "worker.h"
#include "wsconn.h"

enum conn_state {
	CONN_TLS_HANDSHAKE = 0,
	CONN_READ_HEAD,		/* waiting for the request head */
	CONN_HTTP_WRITE,	/* HTTP response queued, close after it */
	CONN_LINGER,		/* response sent, waiting for the peer's FIN */
	CONN_WS,		/* WebSocket open */
	CONN_WS_CLOSING,	/* our Close sent, waiting for the peer's */
	CONN_CLOSED
};

/* The request head being read; freed once it is answered. */
struct conn_head {
	size_t			 hd_len;
	struct http_request	 hd_req;
	char			 hd_buf[HTTP_MAX_HEAD];
};

/* Pending output: data[off..len) still to be written. */
struct conn_buf {
	uint8_t			*b_data;
	size_t			 b_off;
	size_t			 b_len;
	size_t			 b_cap;
};

struct conn {
	TAILQ_ENTRY(conn)	 c_entry;	/* w_conns or w_dead */
	TAILQ_ENTRY(conn)	 c_flush_entry;	/* w_flush */
	struct worker		*c_worker;
	int			 c_fd;
	enum conn_state		 c_state;
	unsigned int		 c_admin:1;
	unsigned int		 c_echo:1;	/* echo endpoint */
	unsigned int		 c_flush_queued:1;
	unsigned int		 c_write_wants_read:1;	/* TLS */
	unsigned int		 c_tls_closed:1;	/* close_notify sent */
	unsigned int		 c_close_after_flush:1;	/* then TCP */
	unsigned int		 c_ping_sent:1;
	unsigned int		 c_close_when_idle:1;	/* 1001 after requests */
	SSL			*c_ssl;
	ev_io			 c_rio;
	ev_io			 c_wio;
	ev_timer		 c_timer;
	struct budget_item	 c_budget;	/* client reads only */

	ev_tstamp		 c_deadline;	/* handshake, linger, closing */
	ev_tstamp		 c_last_rx;	/* idle and pong deadline */
	ev_tstamp		 c_close_at;	/* drain: send 1001 then */

	struct conn_head	*c_head;
	struct conn_buf		 c_out;
	struct request_list	 c_requests;	/* in flight */
	unsigned int		 c_ninflight;
	struct ws_rx		 c_rx;
};

/* Take over an accepted, non-blocking socket; ssl_ctx NULL for plain. */
struct conn	*conn_new(struct worker *, int fd, int admin,
		    SSL_CTX *ssl_ctx);

/* Stop the connection now; memory is freed by conn_sweep(). */
void		 conn_close(struct conn *);

/* Half-close, read until the peer's FIN (or a timeout), then close. */
void		 conn_linger(struct conn *);

/* One of the connection's requests was answered. */
void		 conn_requests_done(struct conn *);

/* Free connections closed during this loop iteration. */
void		 conn_sweep(struct worker *);

/*
 * Queue a complete HTTP response and close after it is sent.  `extra`
 * holds further header lines ("Name: value\r\n"...) or NULL; `body` may
 * be NULL.  Copies what it needs.
 */
void		 conn_http_respond(struct conn *, int status,
		    const char *extra, const char *body, size_t len);
/* The same with a Content-Type other than text/plain's. */
void		 conn_http_respond_type(struct conn *, int status,
		    const char *type, const char *extra, const char *body,
		    size_t len);

/*
 * Append to the output buffer; it is written before the loop next
 * waits, coalesced with everything else queued for the connection.
 * Returns 0, or -1 when max_output_buffer would be exceeded: the
 * connection has then been closed.
 */
int		 conn_queue(struct conn *, const void *, size_t);
int		 conn_queue2(struct conn *, const void *, size_t,
		    const void *, size_t);

/* Write every queued buffer (from the worker's ev_prepare). */
void		 conn_flush_all(struct worker *);

/* Re-arm the connection's single timer for its nearest deadline. */
void		 conn_timer_update(struct conn *);

/* The canonical reason phrase for an HTTP status. */
const char	*http_reason(int);

#endif /* WSGATE_CONN_H */
