/*
 * HTTP/1.1 request-head parser (RFC 9110, RFC 9112), line by line: a line
 * is looked at once, when its LF has arrived, so the result cannot depend
 * on how the bytes were split between calls.
 */
#include "autoconf.h"

#include <string.h>

#include "http.h"

enum http_state {
	HTTP_S_REQUEST_LINE = 0,
	HTTP_S_FIELDS,
	HTTP_S_DONE,
	HTTP_S_ERROR
};

/* h_seen bits: fields that may appear only once, or must appear. */
#define HTTP_SEEN_HOST		0x01
#define HTTP_SEEN_ORIGIN	0x02
#define HTTP_SEEN_WS_KEY	0x04
#define HTTP_SEEN_WS_VERSION	0x08
#define HTTP_SEEN_TE		0x10

/* Character classes of the ASCII range, http_class bits. */
#define HC_TOKEN	0x01	/* tchar, RFC 9110 5.6.2 */
#define HC_HOST		0x02	/* reg-name, IP literal, ":" port */

#define T	(HC_TOKEN | HC_HOST)	/* ALPHA, DIGIT, - . _ ~ etc. */
#define O	HC_TOKEN
#define H	HC_HOST
static const uint8_t http_class[128] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/*  SP !  "  #  $  %  &  '  (  )  *  +  ,  -  .  / */
	    0, T, 0, O, T, T, T, T, H, H, T, T, H, T, T, 0,
	/*  0  1  2  3  4  5  6  7  8  9  :  ;  <  =  >  ? */
	    T, T, T, T, T, T, T, T, T, T, H, H, 0, H, 0, 0,
	/*  @  A  B  C  D  E  F  G  H  I  J  K  L  M  N  O */
	    0, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T,
	/*  P  Q  R  S  T  U  V  W  X  Y  Z  [  \  ]  ^  _ */
	    T, T, T, T, T, T, T, T, T, T, T, H, 0, H, O, T,
	/*  `  a  b  c  d  e  f  g  h  i  j  k  l  m  n  o */
	    O, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T,
	/*  p  q  r  s  t  u  v  w  x  y  z  {  |  }  ~ DEL */
	    T, T, T, T, T, T, T, T, T, T, T, 0, O, 0, T, 0
};
#undef T
#undef O
#undef H

#define HTTP_IS(c, cls)	((unsigned char)(c) < 128 && \
	(http_class[(unsigned char)(c)] & (cls)) != 0)
#define HTTP_IS_OWS(c)	((c) == ' ' || (c) == '\t')
/* Visible ASCII: what a request-target is made of. */
#define HTTP_IS_VCHAR(c)	((unsigned char)(c) > 0x20 && \
	(unsigned char)(c) < 0x7f)
/* Not allowed in a field value: controls other than HTAB, and DEL. */
#define HTTP_IS_CTL(c)	(((unsigned char)(c) < 0x20 && (c) != '\t') || \
	(unsigned char)(c) == 0x7f)

static enum http_parse_result
		http_fail(struct http_request *, int);
static int	http_line(struct http_request *, const char *, size_t);
static int	http_request_line(struct http_request *, const char *, size_t);
static int	http_field(struct http_request *, const char *, size_t);
static int	http_field_value(struct http_request *, struct http_span,
		    struct http_span);
static int	http_finish(struct http_request *);
static int	http_list_next(const char **, const char *, struct http_span *);
static int	http_once(struct http_request *, unsigned int,
		    struct http_span *, struct http_span);
static int	http_host(struct http_span);
static int	http_content_length(struct http_request *, struct http_span);
static int	http_transfer_encoding(struct http_request *, struct http_span);
static int	http_ws_version(struct http_span);

static inline int
http_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

int
http_span_eq(struct http_span s, const char *str)
{
	size_t	 i;

	for (i = 0; i < s.len; i++)
		if (str[i] == '\0' ||
		    http_lower((unsigned char)s.p[i]) !=
		    http_lower((unsigned char)str[i]))
			return 0;
	return str[i] == '\0';
}

void
http_request_init(struct http_request *r)
{
	memset(r, 0, sizeof(*r));
	r->h_version_minor = -1;
	r->h_ws_version = -1;
	r->h_content_length = -1;
	r->h_state = HTTP_S_REQUEST_LINE;
}

enum http_parse_result
http_request_parse(struct http_request *r, const char *buf, size_t len)
{
	const char	*lf;
	size_t		 limit, eol;
	int		 status;

	if (r->h_state == HTTP_S_DONE)
		return HTTP_COMPLETE;
	if (r->h_state == HTTP_S_ERROR)
		return HTTP_ERROR;

	/* Only the first HTTP_MAX_HEAD bytes may hold the head. */
	limit = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
	while (r->h_scan < limit) {
		lf = memchr(buf + r->h_scan, '\n', limit - r->h_scan);
		if (lf == NULL) {
			r->h_scan = limit;
			break;
		}
		eol = (size_t)(lf - buf);
		r->h_scan = eol + 1;
		status = http_line(r, buf + r->h_line, eol - r->h_line);
		r->h_line = eol + 1;
		if (status != 0)
			return http_fail(r, status);
		if (r->h_state == HTTP_S_DONE) {
			r->h_head_len = eol + 1;
			if ((status = http_finish(r)) != 0)
				return http_fail(r, status);
			return HTTP_COMPLETE;
		}
	}
	if (len >= HTTP_MAX_HEAD)
		return http_fail(r, 431);
	return HTTP_INCOMPLETE;
}

static enum http_parse_result
http_fail(struct http_request *r, int status)
{
	r->h_state = HTTP_S_ERROR;
	r->h_error_status = status;
	return HTTP_ERROR;
}

/*
 * One line without its LF.  Returns 0 or the error status.  A CR before
 * the LF is dropped; a bare LF ends a line too (RFC 9112 2.2).
 */
static int
http_line(struct http_request *r, const char *p, size_t n)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (r->h_state == HTTP_S_REQUEST_LINE) {
		/* Empty lines before the request line are ignored. */
		if (n == 0)
			return 0;
		r->h_state = HTTP_S_FIELDS;
		return http_request_line(r, p, n);
	}
	if (n == 0) {
		r->h_state = HTTP_S_DONE;
		return 0;
	}
	return http_field(r, p, n);
}

/* method SP request-target SP HTTP-version, the target in origin-form. */
static int
http_request_line(struct http_request *r, const char *p, size_t n)
{
	const char	*end = p + n, *q, *s;

	for (q = p; q < end && HTTP_IS(*q, HC_TOKEN); q++)
		;
	if (q == p || q == end || *q != ' ')
		return 400;
	r->h_method.p = p;
	r->h_method.len = (size_t)(q - p);

	for (s = ++q; q < end && HTTP_IS_VCHAR(*q); q++)
		;
	if (q == s || q == end || *q != ' ' || *s != '/')
		return 400;
	r->h_target.p = s;
	r->h_target.len = (size_t)(q - s);
	r->h_path = r->h_target;
	if ((s = memchr(s, '?', r->h_target.len)) != NULL)
		r->h_path.len = (size_t)(s - r->h_path.p);

	/* "HTTP/" DIGIT "." DIGIT; 1.0 and 1.1 are the ones served. */
	q++;
	if (end - q != 8 || memcmp(q, "HTTP/", 5) != 0 ||
	    q[5] < '0' || q[5] > '9' || q[6] != '.' ||
	    q[7] < '0' || q[7] > '9')
		return 400;
	if (q[5] != '1' || q[7] > '1')
		return 505;
	r->h_version_minor = q[7] - '0';
	return 0;
}

/* field-name ":" OWS field-value OWS */
static int
http_field(struct http_request *r, const char *p, size_t n)
{
	struct http_span	 name, value;
	const char		*end = p + n, *q;

	if (++r->h_nfields > HTTP_MAX_HEADERS)
		return 431;
	/*
	 * Whitespace before the colon and obs-fold (a line that starts
	 * with whitespace) both stop the name short of a colon.
	 */
	for (q = p; q < end && HTTP_IS(*q, HC_TOKEN); q++)
		;
	if (q == p || q == end || *q != ':')
		return 400;
	name.p = p;
	name.len = (size_t)(q - p);

	for (q++; q < end && HTTP_IS_OWS(*q); q++)
		;
	value.p = q;
	for (; q < end; q++)
		if (HTTP_IS_CTL(*q))
			return 400;
	while (q > value.p && HTTP_IS_OWS(q[-1]))
		q--;
	value.len = (size_t)(q - value.p);
	return http_field_value(r, name, value);
}

/* Record the fields the worker acts on; others are only checked. */
static int
http_field_value(struct http_request *r, struct http_span name,
    struct http_span value)
{
	struct http_span	 e;
	const char		*p = value.p, *end = value.p + value.len;

	switch (http_lower((unsigned char)name.p[0])) {
	case 'c':
		if (http_span_eq(name, "connection")) {
			while (http_list_next(&p, end, &e)) {
				if (http_span_eq(e, "upgrade"))
					r->h_connection_upgrade = 1;
				else if (http_span_eq(e, "close"))
					r->h_connection_close = 1;
				else if (http_span_eq(e, "keep-alive"))
					r->h_connection_keepalive = 1;
			}
		} else if (http_span_eq(name, "content-length"))
			return http_content_length(r, value);
		break;
	case 'h':
		if (!http_span_eq(name, "host"))
			break;
		if (!http_host(value))
			return 400;
		return http_once(r, HTTP_SEEN_HOST, &r->h_host, value);
	case 'o':
		if (http_span_eq(name, "origin"))
			return http_once(r, HTTP_SEEN_ORIGIN, &r->h_origin,
			    value);
		break;
	case 's':
		if (http_span_eq(name, "sec-websocket-key"))
			return http_once(r, HTTP_SEEN_WS_KEY, &r->h_ws_key,
			    value);
		if (http_span_eq(name, "sec-websocket-version")) {
			/* Twice is as unusable as unparsable. */
			r->h_ws_version = (r->h_seen & HTTP_SEEN_WS_VERSION) ?
			    -2 : http_ws_version(value);
			r->h_seen |= HTTP_SEEN_WS_VERSION;
		}
		break;
	case 't':
		if (http_span_eq(name, "transfer-encoding"))
			return http_transfer_encoding(r, value);
		break;
	case 'u':
		if (http_span_eq(name, "upgrade")) {
			while (http_list_next(&p, end, &e))
				if (http_span_eq(e, "websocket"))
					r->h_upgrade_websocket = 1;
		}
		break;
	}
	return 0;
}

/* Checks that need the whole head. */
static int
http_finish(struct http_request *r)
{
	if (r->h_version_minor == 1 && !(r->h_seen & HTTP_SEEN_HOST))
		return 400;
	/* Both framings at once is how requests are smuggled. */
	if ((r->h_seen & HTTP_SEEN_TE) && r->h_content_length >= 0)
		return 400;
	return 0;
}

/*
 * Store a field that may appear only once: 0 the first time `bit` is
 * met, 400 after.
 */
static int
http_once(struct http_request *r, unsigned int bit, struct http_span *dst,
    struct http_span value)
{
	if (r->h_seen & bit)
		return 400;
	r->h_seen |= bit;
	*dst = value;
	return 0;
}

/*
 * Next element of the comma-separated list in [*pp, end), OWS trimmed;
 * empty elements are skipped (RFC 9110 5.6.1).  Returns 0 at the end.
 */
static int
http_list_next(const char **pp, const char *end, struct http_span *e)
{
	const char	*p = *pp, *q;

	while (p < end && (*p == ',' || HTTP_IS_OWS(*p)))
		p++;
	if (p == end) {
		*pp = p;
		return 0;
	}
	for (q = p; q < end && *q != ','; q++)
		;
	*pp = q;
	while (HTTP_IS_OWS(q[-1]))
		q--;
	e->p = p;
	e->len = (size_t)(q - p);
	return 1;
}

/* 1 if the value is a plausible uri-host [":" port]. */
static int
http_host(struct http_span v)
{
	size_t	 i;

	for (i = 0; i < v.len; i++)
		if (!HTTP_IS(v.p[i], HC_HOST))
			return 0;
	return 1;
}

/*
 * 1*DIGIT, or a list of them that all agree (RFC 9110 8.6), and the same
 * value in every Content-Length field.
 */
static int
http_content_length(struct http_request *r, struct http_span v)
{
	struct http_span	 e;
	const char		*p = v.p, *end = v.p + v.len;
	int64_t			 n;
	size_t			 i;
	int			 any = 0;

	while (http_list_next(&p, end, &e)) {
		n = 0;
		for (i = 0; i < e.len; i++) {
			if (e.p[i] < '0' || e.p[i] > '9' ||
			    n > (INT64_MAX - 9) / 10)
				return 400;
			n = n * 10 + (e.p[i] - '0');
		}
		if (r->h_content_length >= 0 && r->h_content_length != n)
			return 400;
		r->h_content_length = n;
		any = 1;
	}
	return any ? 0 : 400;
}

/*
 * Transfer codings: chunked is the one we know, and it may appear once
 * (it must be last, which holds when it is the only one).  Any other
 * coding is 501 (RFC 9112 6.1).
 */
static int
http_transfer_encoding(struct http_request *r, struct http_span v)
{
	struct http_span	 e;
	const char		*p = v.p, *end = v.p + v.len, *semi;
	int			 any = 0;

	r->h_seen |= HTTP_SEEN_TE;
	while (http_list_next(&p, end, &e)) {
		/* A coding's parameters follow ';'. */
		if ((semi = memchr(e.p, ';', e.len)) != NULL) {
			e.len = (size_t)(semi - e.p);
			while (e.len > 0 && HTTP_IS_OWS(e.p[e.len - 1]))
				e.len--;
		}
		if (!http_span_eq(e, "chunked"))
			return 501;
		if (r->h_chunked)
			return 400;
		r->h_chunked = 1;
		any = 1;
	}
	return any ? 0 : 400;
}

/* RFC 6455 4.1: 0-255 without leading zeros; -2 for anything else. */
static int
http_ws_version(struct http_span v)
{
	int	 n = 0;
	size_t	 i;

	if (v.len == 0 || v.len > 3 || (v.len > 1 && v.p[0] == '0'))
		return -2;
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -2;
		n = n * 10 + (v.p[i] - '0');
	}
	return n <= 255 ? n : -2;
}
