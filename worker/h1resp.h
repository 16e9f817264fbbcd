/*
 * Incremental HTTP/1.1 response parser for the built-in upstream client
 * (RFC 9112).  Pure: no I/O.  Bytes are fed as they arrive, split
 * anywhere; the head is gathered in the parser (at most H1_MAX_HEAD
 * bytes), body bytes are appended to the caller's buffer with the
 * framing (Content-Length, chunked, until close) removed.
 */
#ifndef WSGATE_H1RESP_H
#define WSGATE_H1RESP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define H1_MAX_HEAD	(64 * 1024)	/* status line + fields, per head */

enum h1_result {
	H1_ERROR = -1,		/* r->error says why; the connection is done */
	H1_MORE = 0,		/* every byte taken, the response goes on */
	H1_DONE = 1		/* a whole response; *used bytes were taken */
};

struct h1resp {
	/* Results, valid once H1_DONE (status and keep_alive: after the head). */
	int		 status;
	unsigned int	 keep_alive:1;	/* the connection may carry another */
	const char	*error;		/* after H1_ERROR: a static string */

	/* State. */
	int		 state;
	int		 version_minor;
	unsigned int	 chunked:1;
	unsigned int	 until_close:1;
	uint64_t	 remaining;	/* body or chunk bytes still due */
	size_t		 scan;		/* head: where the search for LF resumes */
	struct buf	 head;		/* head, or a chunk-size/trailer line */
};

void	h1resp_init(struct h1resp *);
/* Ready for the next response on the same connection (memory kept). */
void	h1resp_reset(struct h1resp *);
void	h1resp_free(struct h1resp *);

/*
 * Take bytes p[0..len).  Body bytes go to `body`.  On H1_DONE, *used says
 * how many bytes belonged to the response (the rest were sent after it);
 * otherwise all were taken.  Interim 1xx responses are skipped.
 */
enum h1_result	h1resp_feed(struct h1resp *, const char *p, size_t len,
		    size_t *used, struct buf *body);

/*
 * The server closed the connection: H1_DONE if that ends a response
 * delimited by the close, else H1_ERROR.
 */
enum h1_result	h1resp_eof(struct h1resp *);

/* Whether any byte of the current response has been seen. */
int		h1resp_started(const struct h1resp *);

#endif /* WSGATE_H1RESP_H */
