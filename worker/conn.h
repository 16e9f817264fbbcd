/*
 * Client and admin connections: buffers, reads and writes, timeouts,
 * deferred free.  Until the WebSocket upgrade exists a connection carries
 * one HTTP request and its response.
 */
#ifndef WSGATE_CONN_H
#define WSGATE_CONN_H

#include <sys/queue.h>
#include <ev.h>

#include "http.h"
#include "worker.h"

enum conn_state {
	CONN_READ_HEAD = 0,	/* waiting for the request head */
	CONN_WRITE,		/* response queued */
	CONN_LINGER,		/* response sent, waiting for the peer's FIN */
	CONN_CLOSED
};

struct conn {
	TAILQ_ENTRY(conn)	 c_entry;
	struct worker		*c_worker;
	int			 c_fd;
	int			 c_admin;
	enum conn_state		 c_state;
	ev_io			 c_rio;
	ev_io			 c_wio;
	ev_timer		 c_timer;

	char			*c_in;		/* HTTP_MAX_HEAD bytes */
	size_t			 c_inlen;
	struct http_request	 c_req;

	char			*c_out;
	size_t			 c_outlen;
	size_t			 c_outoff;
};

/* Take over an accepted, non-blocking socket. */
struct conn	*conn_new(struct worker *, int fd, int admin);

/* Stop the connection now; memory is freed by conn_sweep(). */
void		 conn_close(struct conn *);

/*
 * Queue a complete HTTP response and close after it is sent.  `body` may
 * be NULL.  Copies what it needs.
 */
void		 conn_http_respond(struct conn *, int status,
		    const char *content_type, const char *body, size_t len);

/* Free connections closed during this loop iteration. */
void		 conn_sweep(struct worker *);

/* The canonical reason phrase for an HTTP status. */
const char	*http_reason(int);

#endif /* WSGATE_CONN_H */
