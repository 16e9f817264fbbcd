/*
 * Where the dbwriter puts records: batches into PostgreSQL, or the spool
 * while PostgreSQL is down or too slow, and the acknowledgements that
 * free the workers' rings once a record is durable in either.
 */
#ifndef WSGATE_STORE_H
#define WSGATE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "config.h"
#include "pg.h"

/* Tell peer `peer_id` that its records up to `seq` are durable. */
typedef void store_ack_fn(void *arg, uint64_t peer_id, uint64_t seq);

int	store_init(struct ev_loop *, const struct config *, struct pg *,
	    const char *spool_name, store_ack_fn *, void *arg, char *err,
	    size_t errlen);

/*
 * Take a copy of an encoded record from peer `peer_id`.  Records of one
 * peer must come in seq order.
 */
void	store_add(uint64_t peer_id, uint64_t seq, const void *rec,
	    size_t len);

/* Records taken and not yet durable. */
size_t	store_pending(void);

/*
 * Stopping: write everything out now (PostgreSQL if it answers within
 * the time left, else the spool).  `done` is called once nothing is
 * pending.
 */
void	store_drain(void (*done)(void *), void *arg);

/* Last resort at exit: spool what is still pending, synchronously. */
void	store_shutdown(void);

#endif /* WSGATE_STORE_H */
