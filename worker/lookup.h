/*
 * User config lookups (PROTOCOL.md section 2): GET from Redis with a
 * per-lookup timeout, conversion of EDN or JSON values to JSON,
 * coalescing of concurrent lookups for the same user into one GET, and
 * an optional bounded cache (config_cache_ttl).
 */
#ifndef WSGATE_LOOKUP_H
#define WSGATE_LOOKUP_H

#include <sys/queue.h>
#include <stddef.h>
#include <ev.h>

#include "config.h"

enum lookup_status {
	LOOKUP_OK = 0,		/* config JSON given ("null" when missing) */
	LOOKUP_MISSING,		/* no config and missing_config = reject */
	LOOKUP_UNAVAILABLE,	/* Redis down or not answering properly */
	LOOKUP_TIMEOUT,		/* no answer within redis_timeout */
	LOOKUP_INVALID		/* neither JSON nor EDN */
};

/*
 * `json` is valid only during the call.  The callback may run inside
 * lookup_start() (cache hit, Redis down) or later from the loop.
 */
typedef void lookup_cb(void *arg, enum lookup_status, const char *json,
    size_t len);

struct lookup;

/* Embedded in the requester; must stay alive until its callback ran. */
struct lookup_waiter {
	TAILQ_ENTRY(lookup_waiter)	 lw_entry;
	lookup_cb			*lw_cb;
	void				*lw_arg;
};

void	lookup_init(struct ev_loop *, const struct config *);
void	lookup_start(struct lookup_waiter *, const char *user, size_t len,
	    lookup_cb *, void *arg);
/* Number of GETs in flight (drain waits for them). */
unsigned int	lookup_pending(void);
void	lookup_shutdown(void);

#endif /* WSGATE_LOOKUP_H */
