/*
 * The worker's Redis connection: one hiredis async context on the
 * worker loop, commands pipelined, AUTH and SELECT on connect, and
 * reconnection with backoff.  hiredis 0.14 has no timeouts of its own;
 * callers time their commands (lookup.c).
 */
#ifndef WSGATE_REDIS_H
#define WSGATE_REDIS_H

#include <stddef.h>
#include <ev.h>

#include "config.h"

enum redis_result {
	REDIS_FOUND = 0,	/* value in val/len */
	REDIS_MISSING,		/* nil: no such key */
	REDIS_UNAVAILABLE,	/* not connected, or the connection dropped */
	REDIS_BADREPLY		/* an error or a reply of the wrong type */
};

/*
 * Called once per redis_get().  `val` points into hiredis' reply and is
 * valid only during the call: copy what you keep.
 */
typedef void redis_get_cb(void *arg, enum redis_result, const char *val,
    size_t len);

/* Embedded in the caller's object, which must live until cb runs. */
struct redis_call {
	redis_get_cb	*rc_cb;
	void		*rc_arg;
};

void	redis_init(struct ev_loop *, const struct config *);

/* 1 when commands can be sent now. */
int	redis_ready(void);

/*
 * GET key.  Returns 0 when sent (cb will be called, possibly with
 * REDIS_UNAVAILABLE if the connection drops), -1 when Redis is not
 * connected (cb is not called: fail fast).
 */
int	redis_get(const char *key, size_t keylen, struct redis_call *);

/* Disconnect for good (worker exit); pending callbacks get UNAVAILABLE. */
void	redis_shutdown(void);

#endif /* WSGATE_REDIS_H */
