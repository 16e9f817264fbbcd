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

	/*
	 * Parser state: the search for LF resumes at h_scan, the line not
	 * yet ended starts at h_line; h_seen has a bit for each field that
	 * was met and may appear once.
	 */
	size_t			 h_scan;
	size_t			 h_line;
	int			 h_state;
	int			 h_nfields;
	unsigned int		 h_seen;
};

void	http_request_init(struct http_request *);

/*
 * Parse the head in buf[0..len).  buf must start at the request's first
 * byte and len may only grow between calls for the same request.  Once
 * COMPLETE or ERROR, later calls return the same.  Bytes after the head
 * (pipelined requests, WebSocket frames) are not looked at.
 *
 * 400: a request line other than token SP origin-form SP HTTP/d.d, a
 * field name that is not a token or is followed by whitespace, obs-fold,
 * a control character other than HTAB in a value, no Host in HTTP/1.1,
 * Host, Origin or Sec-WebSocket-Key twice, a bad Host, Content-Length
 * values that are not numbers or differ, chunked twice, Transfer-Encoding
 * with Content-Length.  431: no end of head in the first HTTP_MAX_HEAD
 * bytes, more than HTTP_MAX_HEADERS fields.  501: a transfer coding other
 * than chunked.  505: a version other than HTTP/1.0 and HTTP/1.1.
 * Empty lines before the request line are skipped, and a bare LF ends a
 * line as CRLF does.
 */
enum http_parse_result
	http_request_parse(struct http_request *, const char *buf, size_t len);

/* Case-insensitive comparison of a span with a NUL-terminated string. */
int	http_span_eq(struct http_span, const char *);

#endif /* WSGATE_HTTP_H */
