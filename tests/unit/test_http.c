/*
 * Unit tests for worker/http.c.  Every request is parsed twice, whole
 * and one byte a call, and both must agree; pipelined bytes after the
 * head must be left alone.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/tap.h"
#include "worker/http.h"

#define UPGRADE_REQ \
	"GET /chat?room=1 HTTP/1.1\r\n" \
	"Host: server.example.com\r\n" \
	"Upgrade: websocket\r\n" \
	"Connection: Upgrade\r\n" \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
	"Origin: http://example.com\r\n" \
	"Sec-WebSocket-Protocol: chat, superchat\r\n" \
	"Sec-WebSocket-Version: 13\r\n" \
	"\r\n"

static char	big[3 * HTTP_MAX_HEAD];

static int	parse_whole(struct http_request *, const char *, size_t);
static int	parse_bytewise(struct http_request *, const char *, size_t);
static int	same(const struct http_request *, const struct http_request *);
static int	parse(struct http_request *, const char *, size_t);
static int	parse_fields(struct http_request *, const char *);
static int	span_is(struct http_span, const char *);
static size_t	fill_head(size_t);
static void	test_upgrade(void);
static void	test_fields(void);
static void	test_errors(void);
static void	test_limits(void);
static void	test_tokens(void);

static int
parse_whole(struct http_request *r, const char *buf, size_t len)
{
	http_request_init(r);
	return http_request_parse(r, buf, len);
}

/* As a connection reading one byte at a time would. */
static int
parse_bytewise(struct http_request *r, const char *buf, size_t len)
{
	size_t	 i;
	int	 rc = HTTP_INCOMPLETE;

	http_request_init(r);
	for (i = 1; i <= len && rc == HTTP_INCOMPLETE; i++)
		rc = http_request_parse(r, buf, i);
	return rc;
}

static int
same(const struct http_request *a, const struct http_request *b)
{
#define SAME_SPAN(f)	(a->f.p == b->f.p && a->f.len == b->f.len)
	return SAME_SPAN(h_method) && SAME_SPAN(h_target) &&
	    SAME_SPAN(h_path) && SAME_SPAN(h_host) && SAME_SPAN(h_origin) &&
	    SAME_SPAN(h_ws_key) &&
	    a->h_version_minor == b->h_version_minor &&
	    a->h_ws_version == b->h_ws_version &&
	    a->h_upgrade_websocket == b->h_upgrade_websocket &&
	    a->h_connection_upgrade == b->h_connection_upgrade &&
	    a->h_connection_close == b->h_connection_close &&
	    a->h_connection_keepalive == b->h_connection_keepalive &&
	    a->h_chunked == b->h_chunked &&
	    a->h_content_length == b->h_content_length &&
	    a->h_head_len == b->h_head_len &&
	    a->h_error_status == b->h_error_status;
#undef SAME_SPAN
}

/*
 * Parse whole and byte by byte; a difference is reported as a failed
 * test of its own.  Returns the result, and the status on error.
 */
static int
parse(struct http_request *r, const char *buf, size_t len)
{
	struct http_request	 b;
	int			 rc, rcb;

	rc = parse_whole(r, buf, len);
	rcb = parse_bytewise(&b, buf, len);
	if (rc != rcb || !same(r, &b))
		ok(0, "byte-at-a-time parse differs (%d/%d): %.40s", rc, rcb,
		    buf);
	return rc == HTTP_ERROR ? r->h_error_status : rc;
}

/* An HTTP/1.1 request with Host and then `fields`, parsed as parse(). */
static int
parse_fields(struct http_request *r, const char *fields)
{
	int	 n;

	n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n",
	    fields);
	return parse(r, big, (size_t)n);
}

static int
span_is(struct http_span s, const char *lit)
{
	return s.p != NULL && s.len == strlen(lit) &&
	    memcmp(s.p, lit, s.len) == 0;
}

static void
test_upgrade(void)
{
	static const char	 req[] = UPGRADE_REQ "\x81\x85\x37\xfa";
	struct http_request	 r, b;
	size_t			 headlen = sizeof(UPGRADE_REQ) - 1, i;
	int			 rc, good;

	ok(parse(&r, req, sizeof(req) - 1) == HTTP_COMPLETE,
	    "RFC 6455 1.2 upgrade request with a frame after it");
	ok(r.h_head_len == headlen, "head length ends after CRLF CRLF (%zu)",
	    r.h_head_len);
	ok(span_is(r.h_method, "GET"), "method");
	ok(span_is(r.h_target, "/chat?room=1"), "target");
	ok(span_is(r.h_path, "/chat"), "path without query");
	ok(r.h_version_minor == 1, "HTTP/1.1");
	ok(span_is(r.h_host, "server.example.com"), "Host");
	ok(span_is(r.h_origin, "http://example.com"), "Origin");
	ok(span_is(r.h_ws_key, "dGhlIHNhbXBsZSBub25jZQ=="), "key");
	ok(r.h_ws_version == 13, "version 13");
	ok(r.h_upgrade_websocket && r.h_connection_upgrade,
	    "upgrade flags");
	ok(!r.h_connection_close && !r.h_connection_keepalive && !r.h_chunked &&
	    r.h_content_length == -1, "other flags clear");

	/* Incomplete at every proper prefix, with the scan caught up. */
	http_request_init(&b);
	for (good = 1, i = 0; i < headlen; i++) {
		rc = http_request_parse(&b, req, i);
		if (rc != HTTP_INCOMPLETE || b.h_scan != i)
			good = 0;
	}
	ok(good, "every proper prefix is incomplete, scanned once");
	ok(http_request_parse(&b, req, headlen) == HTTP_COMPLETE &&
	    same(&r, &b), "the exact head completes it");
	ok(http_request_parse(&b, req, sizeof(req) - 1) == HTTP_COMPLETE &&
	    same(&r, &b), "a call after completion changes nothing");

	/* Pipelined: a second request right behind the first. */
	memcpy(big, UPGRADE_REQ UPGRADE_REQ, 2 * headlen);
	ok(parse(&r, big, 2 * headlen) == HTTP_COMPLETE &&
	    r.h_head_len == headlen, "pipelined request left unread");
	ok(parse(&r, big + headlen, headlen) == HTTP_COMPLETE &&
	    r.h_head_len == headlen, "and parses on its own");
}

#define CASE(s)	(s), (sizeof(s) - 1)
static void
test_fields(void)
{
#define V(v)	"Sec-WebSocket-Version: " v "\r\n"
	static const struct {
		const char	*name;
		const char	*fields;
		int		 want;
	} versions[] = {
		{ "absent", "", -1 },
		{ "13", V("13"), 13 },
		{ "0", V("0"), 0 },
		{ "255 in OWS", V(" 255\t"), 255 },
		{ "13x", V("13x"), -2 },
		{ "013", V("013"), -2 },
		{ "256", V("256"), -2 },
		{ "-1", V("-1"), -2 },
		{ "list", V("8, 13"), -2 },
		{ "empty", V(""), -2 },
		{ "twice", V("13") V("13"), -2 },
	};
#undef V
	struct http_request	 r;
	size_t			 i;

	ok(parse_fields(&r, "Connection: keep-alive, Upgrade\r\n") ==
	    HTTP_COMPLETE && r.h_connection_upgrade &&
	    r.h_connection_keepalive && !r.h_connection_close,
	    "Connection: keep-alive, Upgrade");
	ok(parse_fields(&r, "Connection: keep-alive\r\n"
	    "connection: UPGRADE\r\n") == HTTP_COMPLETE &&
	    r.h_connection_upgrade && r.h_connection_keepalive,
	    "two Connection fields combine");
	ok(parse_fields(&r, "Connection: ,, close ,upgraded\r\n") ==
	    HTTP_COMPLETE && r.h_connection_close && !r.h_connection_upgrade,
	    "Connection: empty elements, close, not upgraded");
	ok(parse_fields(&r, "Upgrade: h2c, WebSocket\r\n") == HTTP_COMPLETE &&
	    r.h_upgrade_websocket, "Upgrade list, case-insensitive");
	ok(parse_fields(&r, "Upgrade: websocket/13\r\n") == HTTP_COMPLETE &&
	    !r.h_upgrade_websocket, "Upgrade: websocket/13 is not websocket");
	ok(parse(&r, CASE("GET /a?b?c HTTP/1.0\n\n")) == HTTP_COMPLETE &&
	    r.h_version_minor == 0 && span_is(r.h_path, "/a") &&
	    r.h_head_len == 21,
	    "bare LF line ends; HTTP/1.0 needs no Host");
	ok(parse(&r, CASE("\r\n\nGET / HTTP/1.0\r\n\r\n")) == HTTP_COMPLETE &&
	    span_is(r.h_method, "GET") && r.h_head_len == 21,
	    "empty lines before the request line are skipped");
	ok(parse(&r, CASE("GET / HTTP/1.1\r\nHost:   example.com:80 \t\r\n"
	    "Origin:\r\nX-Empty:\t\r\nX: \xc3\xa9\t\xff\r\n\r\n")) ==
	    HTTP_COMPLETE && span_is(r.h_host, "example.com:80") &&
	    r.h_origin.len == 0,
	    "values trimmed of OWS; HTAB and obs-text allowed");
	ok(parse(&r, CASE("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")) ==
	    HTTP_COMPLETE && span_is(r.h_host, "[::1]:8080"), "IPv6 Host");
	ok(parse(&r, CASE("GET / HTTP/1.1\r\nHost:\r\n\r\n")) ==
	    HTTP_COMPLETE && r.h_host.len == 0, "empty Host is present");
	ok(parse(&r, CASE("GET / HTTP/1.1\r\nhOsT: a\r\n"
	    "SEC-WEBSOCKET-KEY:  k \r\nsec-websocket-version:8\r\n\r\n")) ==
	    HTTP_COMPLETE && span_is(r.h_host, "a") &&
	    span_is(r.h_ws_key, "k") && r.h_ws_version == 8,
	    "field names are case-insensitive");

	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		ok(parse_fields(&r, versions[i].fields) == HTTP_COMPLETE &&
		    r.h_ws_version == versions[i].want,
		    "Sec-WebSocket-Version %s: %d", versions[i].name,
		    versions[i].want);

	ok(parse_fields(&r, "Content-Length: 42\r\n") == HTTP_COMPLETE &&
	    r.h_content_length == 42, "Content-Length");
	ok(parse_fields(&r, "Content-Length: 42, 42\r\n"
	    "Content-Length: 42\r\n") == HTTP_COMPLETE &&
	    r.h_content_length == 42,
	    "Content-Length repeated with the same value");
	ok(parse_fields(&r, "Content-Length: 0\r\n") == HTTP_COMPLETE &&
	    r.h_content_length == 0, "Content-Length 0");
	ok(parse_fields(&r, "Transfer-Encoding: Chunked\r\n") ==
	    HTTP_COMPLETE && r.h_chunked, "Transfer-Encoding: chunked");
	ok(parse_fields(&r, "Transfer-Encoding: chunked;x=1\r\n") ==
	    HTTP_COMPLETE && r.h_chunked, "chunked with a parameter");
}

static void
test_errors(void)
{
#define E(name, req, status)	{ name, req, sizeof(req) - 1, status }
#define GET11	"GET / HTTP/1.1\r\nHost: a\r\n"
#define POST11	"POST / HTTP/1.1\r\nHost: a\r\n"
	static const struct {
		const char	*name;
		const char	*req;
		size_t		 len;
		int		 status;
	} bad[] = {
		E("method with '('", "G(T / HTTP/1.0\r\n\r\n", 400),
		E("no method", " / HTTP/1.0\r\n\r\n", 400),
		E("two spaces", "GET  / HTTP/1.0\r\n\r\n", 400),
		E("tab separator", "GET\t/ HTTP/1.0\r\n\r\n", 400),
		E("no target", "GET HTTP/1.0\r\n\r\n", 400),
		E("absolute-form", "GET http://a/ HTTP/1.0\r\n\r\n", 400),
		E("asterisk-form", "OPTIONS * HTTP/1.0\r\n\r\n", 400),
		E("target not starting with /", "GET x HTTP/1.0\r\n\r\n", 400),
		E("8-bit target", "GET /\xc3\xa9 HTTP/1.0\r\n\r\n", 400),
		E("control in target", "GET /\x01 HTTP/1.0\r\n\r\n", 400),
		E("HTTP/0.9 request", "GET /\r\n\r\n", 400),
		E("lowercase version", "GET / http/1.0\r\n\r\n", 400),
		E("version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
		E("version 11", "GET / HTTP/11\r\nHost: a\r\n\r\n", 400),
		E("space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
		    400),
		E("CR in request line", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
		    400),
		E("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
		E("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
		E("HTTP/0.9 line", "GET / HTTP/0.9\r\n\r\n", 505),
		E("space before colon", "GET / HTTP/1.0\r\nHost : a\r\n\r\n",
		    400),
		E("tab before colon", "GET / HTTP/1.0\r\nHost\t: a\r\n\r\n",
		    400),
		E("obs-fold", GET11 "X: b\r\n c\r\n\r\n", 400),
		E("obs-fold with tab", GET11 "X: b\r\n\tc\r\n\r\n", 400),
		E("first field folded", "GET / HTTP/1.0\r\n Host: a\r\n\r\n",
		    400),
		E("no colon", GET11 "X\r\n\r\n", 400),
		E("empty name", GET11 ": x\r\n\r\n", 400),
		E("'@' in name", GET11 "A@: x\r\n\r\n", 400),
		E("control in value", GET11 "X: a\x01\r\n\r\n", 400),
		E("DEL in value", GET11 "X: a\x7f\r\n\r\n", 400),
		E("bare CR in value", GET11 "X: a\rb\r\n\r\n", 400),
		E("NUL in value", GET11 "X: \0\r\n\r\n", 400),
		E("no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400),
		E("Host twice", GET11 "Host: a\r\n\r\n", 400),
		E("Host with a space", "GET / HTTP/1.0\r\nHost: a b\r\n\r\n",
		    400),
		E("Host with userinfo", "GET / HTTP/1.0\r\nHost: u@a\r\n\r\n",
		    400),
		E("Host with a path", "GET / HTTP/1.0\r\nHost: a/b\r\n\r\n",
		    400),
		E("Origin twice", GET11 "Origin: x\r\nOrigin: x\r\n\r\n", 400),
		E("key twice", GET11 "Sec-WebSocket-Key: x\r\n"
		    "Sec-WebSocket-Key: x\r\n\r\n", 400),
		E("Content-Length values differ", POST11 "Content-Length: 1\r\n"
		    "Content-Length: 2\r\n\r\n", 400),
		E("Content-Length list differs", POST11
		    "Content-Length: 1, 2\r\n\r\n", 400),
		E("Content-Length not a number", POST11
		    "Content-Length: 1a\r\n\r\n", 400),
		E("Content-Length negative", POST11
		    "Content-Length: -1\r\n\r\n", 400),
		E("Content-Length empty", POST11 "Content-Length:\r\n\r\n",
		    400),
		E("Content-Length overflow", POST11
		    "Content-Length: 99999999999999999999\r\n\r\n", 400),
		E("chunked and Content-Length", POST11
		    "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		    400),
		E("chunked twice", POST11 "Transfer-Encoding: chunked\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n", 400),
		E("empty Transfer-Encoding", POST11
		    "Transfer-Encoding: ,\r\n\r\n", 400),
		E("gzip coding", POST11
		    "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
		E("unknown coding", POST11
		    "Transfer-Encoding: chunked, x\r\n\r\n", 501),
	};
	struct http_request	 r;
	size_t			 i;
	int			 st;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st = parse(&r, bad[i].req, bad[i].len);
		ok(st == bad[i].status, "%s: %d (want %d)", bad[i].name, st,
		    bad[i].status);
	}
	ok(http_request_parse(&r, bad[0].req, strlen(bad[0].req)) ==
	    HTTP_ERROR, "errors are sticky");
}

/* Fill big with a request whose head is exactly `len` bytes. */
static size_t
fill_head(size_t len)
{
	static const char	 start[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	size_t			 n = sizeof(start) - 1;

	memcpy(big, start, n);
	memset(big + n, 'v', len - n - 4);
	memcpy(big + len - 4, "\r\n\r\n", 4);
	return len;
}

static void
test_limits(void)
{
	struct http_request	 r;
	size_t			 n, i;
	int			 st;

	n = fill_head(HTTP_MAX_HEAD);
	ok(parse(&r, big, n) == HTTP_COMPLETE && r.h_head_len == n,
	    "head of exactly HTTP_MAX_HEAD bytes");
	n = fill_head(HTTP_MAX_HEAD + 1);
	ok(parse(&r, big, n) == 431, "head one byte over: 431");
	ok(parse(&r, big, HTTP_MAX_HEAD) == 431,
	    "HTTP_MAX_HEAD bytes and no end: 431");
	ok(parse(&r, big, HTTP_MAX_HEAD - 1) == HTTP_INCOMPLETE,
	    "one byte less: still incomplete");
	memset(big, 'a', sizeof(big));
	ok(parse(&r, big, sizeof(big)) == 431, "a long line of junk: 431");

	/* HTTP_MAX_HEADERS fields, then one more. */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
		    i == 0 ? "Host: a\r\n" : "X-%zu: v\r\n", i);
	memcpy(big + n, "\r\n", 2);
	ok(parse(&r, big, n + 2) == HTTP_COMPLETE, "%d fields",
	    HTTP_MAX_HEADERS);
	n += (size_t)snprintf(big + n, sizeof(big) - n, "X-last: v\r\n\r\n");
	st = parse(&r, big, n);
	ok(st == 431, "%d fields: 431", HTTP_MAX_HEADERS + 1);
}

/*
 * The method must be a token: try every byte in it against the list in
 * RFC 9110 5.6.2.
 */
static void
test_tokens(void)
{
	static const char	 tchar[] = "!#$%&'*+-.^_`|~0123456789"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	struct http_request	 r;
	char			 req[] = "G?T / HTTP/1.0\r\n\r\n";
	int			 c, good = 1, want, rc;

	for (c = 0; c < 256; c++) {
		req[1] = (char)c;
		want = c != 0 && strchr(tchar, c) != NULL;
		rc = parse_whole(&r, req, sizeof(req) - 1);
		if ((rc == HTTP_COMPLETE) != want)
			good = 0;
	}
	ok(good, "method characters are exactly tchar");

	ok(http_span_eq((struct http_span){ "Upgrade", 7 }, "upgrade"),
	    "span_eq ignores case");
	ok(!http_span_eq((struct http_span){ "Upgrade", 7 }, "upgrades"),
	    "span_eq: longer literal");
	ok(!http_span_eq((struct http_span){ "Upgrade", 7 }, "upgrad"),
	    "span_eq: shorter literal");
	ok(http_span_eq((struct http_span){ "", 0 }, ""), "span_eq: empty");
	ok(!http_span_eq((struct http_span){ "a\0", 2 }, "a"),
	    "span_eq: NUL in the span");
}

int
main(void)
{
	tap_watchdog(30);
	test_upgrade();
	test_fields();
	test_errors();
	test_limits();
	test_tokens();
	return done_testing();
}
