/*
 * Incremental HTTP/1.1 request-head parser.  Pure: no I/O, no allocation.
 * The caller accumulates bytes in its own buffer and calls
 * http_request_parse() with the whole buffer after every read; the parser
 * resumes its scan where it stopped, so a head arriving one byte at a
 * time costs O(n) in total.  Results point into the caller's buffer and
 * stay valid while that buffer is unchanged.
 */
#ifndef WSGATE_HTTP_H
#define WSGATE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD	8192	/* request line + headers; beyond: 431 */
#define HTTP_MAX_HEADERS 64	/* header fields; beyond: 431 */

enum http_parse_result {
	HTTP_ERROR = -1,	/* r->h_error_status says which (400/431/501/505) */
	HTTP_INCOMPLETE = 0,	/* need more bytes */
	HTTP_COMPLETE = 1	/* head parsed; r->h_head_len bytes consumed */
};

struct http_span {
	const char	*p;
	size_t		 len;
};

struct http_request {
	/* Results, valid after HTTP_COMPLETE. */
	struct http_span	 h_method;
	struct http_span	 h_target;	/* request-target as sent */
	struct http_span	 h_path;	/* target without "?query" */
	int			 h_version_minor;	/* HTTP/1.x */
	struct http_span	 h_host;
	struct http_span	 h_origin;
	struct http_span	 h_ws_key;	/* Sec-WebSocket-Key, trimmed */
	int			 h_ws_version;	/* -1 absent, -2 unparsable */
	unsigned int		 h_upgrade_websocket:1;	/* Upgrade has token */
	unsigned int		 h_connection_upgrade:1;/* Connection has token */
	unsigned int		 h_connection_close:1;
	unsigned int		 h_connection_keepalive:1;
	unsigned int		 h_chunked:1;
	int64_t			 h_content_length;	/* -1 absent */
	size_t			 h_head_len;	/* incl. the final CRLF CRLF */
	int			 h_error_status;	/* after HTTP_ERROR */

	/* Parser state. */
	size_t			 h_scan;
};

void	http_request_init(struct http_request *);

/*
 * Parse the head in buf[0..len).  buf must start at the request's first
 * byte and len may only grow between calls for the same request.
 */
enum http_parse_result
	http_request_parse(struct http_request *, const char *buf, size_t len);

/* Case-insensitive comparison of a span with a NUL-terminated string. */
int	http_span_eq(struct http_span, const char *);

#endif /* WSGATE_HTTP_H */
