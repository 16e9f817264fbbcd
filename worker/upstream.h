/*
 * Calls to the upstream integration API (PROTOCOL.md section 3): one
 * curl multi handle per worker driven by CURLMOPT_SOCKETFUNCTION and
 * CURLMOPT_TIMERFUNCTION on ev_io/ev_timer, keep-alive connection reuse,
 * HTTP/2 multiplexing when the upstream offers it.
 */
#ifndef WSGATE_UPSTREAM_H
#define WSGATE_UPSTREAM_H

#include <stddef.h>
#include <ev.h>

#include "buf.h"
#include "config.h"

enum upstream_result {
	UPSTREAM_OK = 0,	/* an HTTP status and body, whatever they are */
	UPSTREAM_TIMEOUT,	/* upstream_timeout passed */
	UPSTREAM_ERROR		/* refused, reset, bad HTTP, TLS failure ... */
};

struct upstream_call;

/*
 * Called once per upstream_post() from the loop.  `status` is the HTTP
 * status (UPSTREAM_OK), `body` the response body, `detail` a
 * human-readable error (otherwise).  detail is valid during the call
 * only; the callback may take body's memory (moving it out and leaving
 * *body empty), else it is freed after the call.
 */
typedef void upstream_cb(void *arg, enum upstream_result, int status,
    struct buf *body, const char *detail);

void	upstream_init(struct ev_loop *, const struct config *);

/*
 * POST `body` (which must stay valid and unchanged until cb runs) with
 * X-Request-Id: request_key.  Never calls cb from inside this call.
 */
void	upstream_post(const char *body, size_t len, const char *request_key,
	    upstream_cb *cb, void *arg);

/* Transfers in flight. */
unsigned int	upstream_pending(void);

/* Abort every transfer (callbacks run with UPSTREAM_ERROR) and clean up. */
void	upstream_shutdown(void);

/*
 * The host name libcurl would look up inside a worker's loop: that of
 * upstream_url when libcurl calls it, the host is a name, and
 * `curl_features` (curl_version_info()'s) lacks CURL_VERSION_ASYNCHDNS.
 * Allocated, or NULL.
 */
char	*upstream_loop_lookup(const struct config *, unsigned int curl_features);

/* Warn (log) when upstream_loop_lookup() finds such a name. */
void	 upstream_check_lookup(const struct config *);

#endif /* WSGATE_UPSTREAM_H */
