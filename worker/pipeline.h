/*
 * The request pipeline (PROTOCOL.md sections 1-4): a client message
 * becomes a config lookup, an upstream call and a reply, all as
 * callbacks on the worker loop.
 */
#ifndef WSGATE_PIPELINE_H
#define WSGATE_PIPELINE_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "json.h"
#include "lookup.h"

struct conn;
struct worker;

struct request {
	TAILQ_ENTRY(request)	 rq_entry;	/* conn's c_requests */
	TAILQ_ENTRY(request)	 rq_entry_slice;	/* large reply queue */
	struct conn		*rq_conn;	/* NULL once the client left */
	struct lookup_waiter	 rq_wait;
	char			 rq_key[48];	/* request_key, X-Request-Id */
	char			*rq_id;		/* id as JSON text, or NULL */
	size_t			 rq_idlen;
	char			 rq_user[JSON_USER_ID_MAX + 1];
	size_t			 rq_userlen;
	struct buf		 rq_body;	/* the upstream POST body */
	struct buf		 rq_resp;	/* a large upstream body ... */
	size_t			 rq_resp_off;	/* ... escaped this far */
	struct buf		 rq_reply;	/* ... into this reply */
	int			 rq_status;	/* reply status */
	int			 rq_upstream;	/* reached the upstream stage */
	const char		*rq_error;	/* NULL on an upstream reply */
	/* Timings (seconds, monotonic), kept for metrics and the record. */
	double			 rq_t_start;
	double			 rq_t_redis;
	double			 rq_t_upstream;
	double			 rq_t_done;
};

TAILQ_HEAD(request_list, request);

void	pipeline_init(struct worker *);

/* A complete data message from an open WebSocket on ws_path. */
void	pipeline_message(struct conn *, int opcode, const uint8_t *,
	    size_t);

/* The connection is closing: its requests go on without it. */
void	pipeline_conn_closed(struct conn *);

/* Requests in flight in this worker. */
unsigned int	pipeline_pending(void);

void	pipeline_shutdown(void);

#endif /* WSGATE_PIPELINE_H */
