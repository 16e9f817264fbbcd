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

/* Tell peer `peer_id` that its records up to `seq` are durable. */
typedef void store_ack_fn(void *arg, uint64_t peer_id, uint64_t seq);

/*
 * Open the spool `spool_name` (adopting orphaned ones), start its disk
 * thread and the PostgreSQL connections (db_connections of them).
 * Returns 0, or -1 with a reason in `err`.
 */
int	store_init(struct ev_loop *, const struct config *,
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
 * the time left, else the spool), and replay the spool while PostgreSQL
 * is up.  `done` is called once nothing is pending.
 */
void	store_drain(void (*done)(void *), void *arg);

/*
 * Last resort at exit, the loop stopped: finish the disk thread's jobs,
 * spool what is still pending, synchronously, close the connections
 * and the spool.
 */
void	store_shutdown(void);

#endif /* WSGATE_STORE_H */
