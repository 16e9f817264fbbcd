/*
 * HTTP/1.1 response parsing for the built-in upstream client.
 *
 * The head is gathered in r->head until its empty line (CRLF CRLF, or
 * bare LFs), then parsed as a whole; the scan for the end resumes where
 * it stopped, so a head arriving a byte at a time costs O(n).  The body
 * is a small state machine over the three framings of RFC 9112 section
 * 6.3: chunked, Content-Length, or the rest of the connection.  Anything
 * that could make the framing ambiguous (Content-Length with
 * Transfer-Encoding, differing lengths, obs-fold, a coding other than
 * chunked) is an error: the connection is closed and the request answered
 * 502, never guessed at.
 */
#include "autoconf.h"

#include <string.h>
#include <strings.h>

#include "h1resp.h"

#define H1_MAX_LINE	4096		/* chunk-size line, chunk-ext included */
#define H1_MAX_CHUNK	(UINT64_C(1) << 60)

enum {
	S_HEAD,
	S_BODY_LEN,		/* `remaining` bytes of Content-Length body */
	S_BODY_CLOSE,		/* everything until the server closes */
	S_CHUNK_SIZE,		/* gathering a chunk-size line in head */
	S_CHUNK_DATA,		/* `remaining` bytes of chunk data */
	S_CHUNK_END,		/* the CRLF after chunk data */
	S_TRAILER,		/* trailer fields up to the empty line */
	S_DONE
};

static int	h1_head_end(struct h1resp *);
static int	h1_parse_head(struct h1resp *, size_t);
static int	h1_parse_field(struct h1resp *, const char *, size_t,
		    int64_t *);
static int	h1_token_list_has(const char *, size_t, const char *);
static int	h1_is_tchar(unsigned char);
static enum h1_result h1_fail(struct h1resp *, const char *);
static enum h1_result h1_line(struct h1resp *, const char *, size_t,
		    size_t *, size_t, int *);

void
h1resp_init(struct h1resp *r)
{
	memset(r, 0, sizeof(*r));
	h1resp_reset(r);
}

void
h1resp_reset(struct h1resp *r)
{
	r->status = 0;
	r->keep_alive = 0;
	r->error = NULL;
	r->state = S_HEAD;
	r->version_minor = 1;
	r->chunked = 0;
	r->until_close = 0;
	r->remaining = 0;
	r->scan = 0;
	buf_reset(&r->head);
}

void
h1resp_free(struct h1resp *r)
{
	buf_free(&r->head);
}

int
h1resp_started(const struct h1resp *r)
{
	return r->state != S_HEAD || r->head.b_len > 0;
}

static enum h1_result
h1_fail(struct h1resp *r, const char *why)
{
	r->error = why;
	r->state = S_DONE;
	r->keep_alive = 0;
	return H1_ERROR;
}

/* RFC 9110 tchar, by table: field names are checked byte by byte. */
static const unsigned char h1_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1
};

static int
h1_is_tchar(unsigned char c)
{
	return h1_tchar[c];
}

/*
 * Whether the comma-separated list v[0..len) has the token `tok`
 * (case-insensitive), as Connection's value does.
 */
static int
h1_token_list_has(const char *v, size_t len, const char *tok)
{
	size_t	tlen = strlen(tok), i = 0, s, e;

	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tlen && strncasecmp(v + s, tok, tlen) == 0)
			return 1;
	}
	return 0;
}

/*
 * The end of the head: the position after its empty line, or 0.  A line
 * ends with LF; CR before it is optional.
 */
static int
h1_head_end(struct h1resp *r)
{
	const char	*p = r->head.b_p, *nl;
	size_t		 i = r->scan, n = r->head.b_len;

	while (i < n && (nl = memchr(p + i, '\n', n - i)) != NULL) {
		i = (size_t)(nl - p);
		/* An empty line: LF right after the previous LF (or CRLF). */
		if ((i >= 1 && p[i - 1] == '\n') ||
		    (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n'))
			return (int)(i + 1);
		i++;
	}
	r->scan = n;
	return 0;
}

/* One field line (without its line end).  Returns -1 on an error. */
static int
h1_parse_field(struct h1resp *r, const char *p, size_t len, int64_t *clen)
{
	const char	*v;
	size_t		 n, vlen, i;
	uint64_t	 x;
	int		 digits;

	if (len > 0 && (p[0] == ' ' || p[0] == '\t')) {
		r->error = "bad HTTP response: obsolete line folding";
		return -1;
	}
	for (n = 0; n < len && p[n] != ':'; n++)
		if (!h1_is_tchar((unsigned char)p[n])) {
			r->error = "bad HTTP response: bad field name";
			return -1;
		}
	if (n == 0 || n == len) {
		r->error = "bad HTTP response: bad field line";
		return -1;
	}
	v = p + n + 1;
	vlen = len - n - 1;
	while (vlen > 0 && (v[0] == ' ' || v[0] == '\t'))
		v++, vlen--;
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	for (i = 0; i < vlen; i++)
		if (((unsigned char)v[i] < 0x20 && v[i] != '\t') ||
		    v[i] == 0x7f) {
			r->error = "bad HTTP response: control character in "
			    "a field value";
			return -1;
		}

	if (n == 14 && strncasecmp(p, "content-length", 14) == 0) {
		/* 1*DIGIT, or a list of identical values (RFC 9110 8.6). */
		i = 0;
		while (i < vlen) {
			x = 0;
			digits = 0;
			while (i < vlen && v[i] >= '0' && v[i] <= '9') {
				if (x > (UINT64_C(1) << 62) / 10) {
					r->error = "bad HTTP response: "
					    "Content-Length too large";
					return -1;
				}
				x = x * 10 + (uint64_t)(v[i++] - '0');
				digits++;
			}
			while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
				i++;
			if (digits == 0 || (i < vlen && v[i] != ',') ||
			    (*clen >= 0 && (uint64_t)*clen != x)) {
				r->error = "bad HTTP response: bad "
				    "Content-Length";
				return -1;
			}
			*clen = (int64_t)x;
			if (i < vlen)
				i++;
			while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
				i++;
		}
		if (*clen < 0) {
			r->error = "bad HTTP response: bad Content-Length";
			return -1;
		}
	} else if (n == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
		/*
		 * Only chunked: no Accept-Encoding or TE is sent, so any
		 * other coding is a server error, not something to undo.
		 */
		if (r->chunked || vlen != 7 || strncasecmp(v, "chunked", 7)) {
			r->error = "bad HTTP response: unsupported "
			    "Transfer-Encoding";
			return -1;
		}
		r->chunked = 1;
	} else if (n == 10 && strncasecmp(p, "connection", 10) == 0) {
		if (h1_token_list_has(v, vlen, "close"))
			r->keep_alive = 0;
		else if (h1_token_list_has(v, vlen, "keep-alive"))
			r->keep_alive = 1;
	}
	return 0;
}

/* Parse the complete head r->head[0..end). */
static int
h1_parse_head(struct h1resp *r, size_t end)
{
	const char	*p = r->head.b_p, *nl;
	size_t		 off, len;
	int64_t		 clen = -1;

	/* Status line: HTTP/1.d SP 3DIGIT [SP reason]. */
	nl = memchr(p, '\n', end);
	len = (size_t)(nl - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    p[7] < '0' || p[7] > '9' || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (len > 12 && p[12] != ' ')) {
		r->error = "bad HTTP response: bad status line";
		return -1;
	}
	r->version_minor = p[7] - '0';
	r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	/* HTTP/1.1 keeps the connection unless told; 1.0 only if told. */
	r->keep_alive = r->version_minor >= 1;
	r->chunked = 0;

	for (off = (size_t)(nl - p) + 1; off < end; off = (size_t)(nl - p) + 1) {
		nl = memchr(p + off, '\n', end - off);
		len = (size_t)(nl - p) - off;
		if (len > 0 && p[off + len - 1] == '\r')
			len--;
		if (len == 0)
			break;		/* the empty line */
		if (h1_parse_field(r, p + off, len, &clen) == -1)
			return -1;
	}

	if (r->chunked && clen >= 0) {
		r->error = "bad HTTP response: both Content-Length and "
		    "Transfer-Encoding";
		return -1;
	}
	if ((r->status >= 100 && r->status < 200) || r->status == 204 ||
	    r->status == 304) {
		r->state = S_DONE;	/* no body */
	} else if (r->chunked) {
		r->state = S_CHUNK_SIZE;
	} else if (clen >= 0) {
		r->remaining = (uint64_t)clen;
		r->state = clen == 0 ? S_DONE : S_BODY_LEN;
	} else {
		r->until_close = 1;
		r->keep_alive = 0;
		r->state = S_BODY_CLOSE;
	}
	return 0;
}

/*
 * Gather a line (chunk size, trailer field) in r->head across calls.
 * Sets *done once the line is complete (without its line end, in
 * r->head[0..r->head.b_len)).  Advances *i over the bytes taken.
 */
static enum h1_result
h1_line(struct h1resp *r, const char *p, size_t len, size_t *i,
    size_t max, int *done)
{
	const char	*nl;
	size_t		 n;

	*done = 0;
	nl = memchr(p + *i, '\n', len - *i);
	n = (nl != NULL ? (size_t)(nl - p) : len) - *i;
	if (r->head.b_len + n > max)
		return h1_fail(r, "bad HTTP response: line too long");
	buf_append(&r->head, p + *i, n);
	*i += n;
	if (nl == NULL)
		return H1_MORE;
	(*i)++;				/* the LF */
	if (r->head.b_len > 0 && r->head.b_p[r->head.b_len - 1] == '\r')
		r->head.b_len--;
	*done = 1;
	return H1_MORE;
}

enum h1_result
h1resp_feed(struct h1resp *r, const char *p, size_t len, size_t *used,
    struct buf *body)
{
	size_t		 i = 0, n, old, j;
	uint64_t	 x;
	int		 end, done;
	unsigned char	 c;

	*used = 0;
	while (r->state != S_DONE || r->error == NULL) {
		switch (r->state) {
		case S_HEAD:
			if (i == len)
				return H1_MORE;
			old = r->head.b_len;
			n = len - i;
			if (n > H1_MAX_HEAD - old)
				n = H1_MAX_HEAD - old;
			buf_append(&r->head, p + i, n);
			if ((end = h1_head_end(r)) == 0) {
				if (r->head.b_len >= H1_MAX_HEAD)
					return h1_fail(r, "bad HTTP response: "
					    "head too large");
				return H1_MORE;
			}
			i += (size_t)end - old;
			if (h1_parse_head(r, (size_t)end) == -1)
				return h1_fail(r, r->error);
			buf_reset(&r->head);
			r->scan = 0;
			if (r->status == 101)
				return h1_fail(r, "bad HTTP response: "
				    "unexpected 101");
			if (r->status < 200) {
				/* Interim: the real response follows. */
				r->state = S_HEAD;
				continue;
			}
			break;
		case S_BODY_LEN:
		case S_CHUNK_DATA:
			n = len - i;
			if ((uint64_t)n > r->remaining)
				n = (size_t)r->remaining;
			buf_append(body, p + i, n);
			i += n;
			r->remaining -= n;
			if (r->remaining > 0)
				return H1_MORE;
			r->state = r->state == S_BODY_LEN ? S_DONE :
			    S_CHUNK_END;
			break;
		case S_BODY_CLOSE:
			buf_append(body, p + i, len - i);
			return H1_MORE;
		case S_CHUNK_SIZE:
			if (h1_line(r, p, len, &i, H1_MAX_LINE, &done) ==
			    H1_ERROR)
				return H1_ERROR;
			if (!done)
				return H1_MORE;
			x = 0;
			for (j = 0; j < r->head.b_len; j++) {
				c = (unsigned char)r->head.b_p[j];
				if (c >= '0' && c <= '9')
					c -= '0';
				else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
					c = (unsigned char)((c | 0x20) -
					    'a' + 10);
				else
					break;
				x = x * 16 + c;
				if (x > H1_MAX_CHUNK)
					return h1_fail(r, "bad HTTP response: "
					    "chunk too large");
			}
			/* Hex digits, then nothing, or BWS and chunk-ext. */
			if (j == 0 || (j < r->head.b_len &&
			    r->head.b_p[j] != ';' && r->head.b_p[j] != ' ' &&
			    r->head.b_p[j] != '\t'))
				return h1_fail(r, "bad HTTP response: "
				    "bad chunk size");
			buf_reset(&r->head);
			r->remaining = x;
			r->state = x == 0 ? S_TRAILER : S_CHUNK_DATA;
			break;
		case S_CHUNK_END:
			if (h1_line(r, p, len, &i, 2, &done) == H1_ERROR)
				return H1_ERROR;
			if (!done)
				return H1_MORE;
			if (r->head.b_len != 0)
				return h1_fail(r, "bad HTTP response: "
				    "no CRLF after chunk data");
			r->state = S_CHUNK_SIZE;
			break;
		case S_TRAILER:
			/* Trailer fields are read and dropped. */
			old = r->scan;
			if (h1_line(r, p, len, &i, H1_MAX_HEAD, &done) ==
			    H1_ERROR)
				return H1_ERROR;
			if (!done)
				return H1_MORE;
			if (r->head.b_len == 0)
				r->state = S_DONE;
			else {
				r->scan = old + r->head.b_len;
				if (r->scan > H1_MAX_HEAD)
					return h1_fail(r, "bad HTTP response: "
					    "trailer too large");
				buf_reset(&r->head);
			}
			break;
		case S_DONE:
			*used = i;
			return H1_DONE;
		}
	}
	return H1_ERROR;
}

enum h1_result
h1resp_eof(struct h1resp *r)
{
	if (r->state == S_DONE && r->error == NULL)
		return H1_DONE;
	if (r->state == S_BODY_CLOSE) {
		r->state = S_DONE;
		return H1_DONE;
	}
	return h1_fail(r, r->state == S_HEAD && r->head.b_len == 0 ?
	    "connection closed before the response" :
	    "connection closed in the middle of the response");
}
