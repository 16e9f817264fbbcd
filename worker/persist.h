/*
 * The worker's side of the persistence path (DESIGN.md): records are
 * appended to this slot's shared-memory ring before the reply goes out,
 * streamed to the dbwriter pool over the SOCK_SEQPACKET socket, and
 * freed when a dbwriter acknowledges them as durable.
 */
#ifndef WSGATE_PERSIST_H
#define WSGATE_PERSIST_H

#include <stddef.h>
#include <ev.h>

#include "config.h"
#include "record.h"

/*
 * Attach to the slot's ring (`mem`, `size`: the master's MAP_SHARED
 * region, which outlives us) and start connecting to `ipc_path`.
 * Records a previous worker of this slot left unacknowledged are sent
 * again.
 */
void	persist_init(struct ev_loop *, const struct config *, void *mem,
	    size_t size, const char *ipc_path, int slot,
	    unsigned int generation, void (*on_ack)(void *), void *arg);

/* 1 when the ring has room for a new request's record. */
int	persist_has_room(void);

/*
 * Append a record.  Returns 0, or -1 when it does not fit (the caller
 * answers 503 "overloaded"; nothing was stored).
 */
int	persist_append(const struct record *);

/* Records appended and not yet acknowledged. */
unsigned long	persist_pending(void);

void	persist_shutdown(void);

#endif /* WSGATE_PERSIST_H */
