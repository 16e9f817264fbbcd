/*
 * Unit tests for worker/h1resp.c, the upstream response parser.  Each
 * case is fed whole and one byte a call; both must give the same result,
 * status, keep-alive decision, body and count of bytes taken.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/tap.h"
#include "worker/h1resp.h"

struct result {
	int		rc;
	int		status;
	int		keep_alive;
	size_t		taken;
	const char	*error;
	char		body[256];
	size_t		body_len;
};

/* Feed `in` in pieces of `step` bytes (0: whole); EOF if `eof`. */
static void
run(struct result *res, const char *in, size_t len, size_t step, int eof)
{
	struct h1resp	r;
	struct buf	body = BUF_INIT;
	size_t		at = 0, n, used;

	memset(res, 0, sizeof(*res));
	h1resp_init(&r);
	res->rc = H1_MORE;
	while (at < len) {
		n = step == 0 || step > len - at ? len - at : step;
		res->rc = h1resp_feed(&r, in + at, n, &used, &body);
		if (res->rc == H1_DONE) {
			at += used;
			break;
		}
		at += n;
		if (res->rc == H1_ERROR)
			break;
	}
	if (res->rc == H1_MORE && eof)
		res->rc = h1resp_eof(&r);
	res->taken = at;
	res->status = r.status;
	res->keep_alive = r.keep_alive;
	res->error = r.error;
	res->body_len = body.b_len;
	if (body.b_len < sizeof(res->body) && body.b_len > 0)
		memcpy(res->body, body.b_p, body.b_len);
	buf_free(&body);
	h1resp_free(&r);
}

/*
 * One case: the expected result, status, keep-alive, body and, for
 * H1_DONE, the bytes taken (-1: all of them).
 */
static void
check(const char *name, const char *in, int eof, int rc, int status,
    int keep_alive, const char *body, long taken)
{
	struct result	whole, bytes;
	size_t		len = strlen(in);
	size_t		want = taken < 0 ? len : (size_t)taken;

	run(&whole, in, len, 0, eof);
	run(&bytes, in, len, 1, eof);
	is_int(whole.rc, rc, "%s: result", name);
	if (whole.rc == H1_ERROR)
		diag("%s: %s", name, whole.error ? whole.error : "(no reason)");
	if (whole.rc == H1_ERROR)
		ok(bytes.rc == H1_ERROR && bytes.error != NULL &&
		    whole.error != NULL && strcmp(bytes.error, whole.error) == 0,
		    "%s: byte by byte gives the same", name);
	else
		ok(bytes.rc == whole.rc && bytes.status == whole.status &&
		    bytes.keep_alive == whole.keep_alive &&
		    bytes.taken == whole.taken &&
		    bytes.body_len == whole.body_len &&
		    memcmp(bytes.body, whole.body, whole.body_len) == 0,
		    "%s: byte by byte gives the same", name);
	if (rc == H1_ERROR) {
		ok(whole.error != NULL, "%s: a reason", name);
		return;
	}
	if (rc != H1_DONE)
		return;
	is_int(whole.status, status, "%s: status", name);
	is_int(whole.keep_alive, keep_alive, "%s: keep-alive", name);
	ok(whole.body_len == strlen(body) &&
	    memcmp(whole.body, body, whole.body_len) == 0,
	    "%s: body '%.*s'", name, (int)whole.body_len, whole.body);
	is_int(whole.taken, want, "%s: bytes taken", name);
}

int
main(void)
{
	static char	big[H1_MAX_HEAD + 64];

	tap_watchdog(20);

	check("content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "\r\nhello", 0, H1_DONE, 200, 1, "hello", -1);
	check("bytes after the response are left",
	    "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1",
	    0, H1_DONE, 201, 1, "ok", 45);
	check("zero length", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	    0, H1_DONE, 200, 1, "", -1);
	check("identical length list", "HTTP/1.1 200 OK\r\n"
	    "Content-Length: 3 , 3\r\nContent-Length: 3\r\n\r\nabc",
	    0, H1_DONE, 200, 1, "abc", -1);
	check("differing lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	    "Content-Length: 4\r\n\r\nabcd", 0, H1_ERROR, 0, 0, "", 0);
	check("length not a number", "HTTP/1.1 200 OK\r\n"
	    "Content-Length: -1\r\n\r\n", 0, H1_ERROR, 0, 0, "", 0);
	check("length too large", "HTTP/1.1 200 OK\r\n"
	    "Content-Length: 99999999999999999999999\r\n\r\n",
	    0, H1_ERROR, 0, 0, "", 0);
	check("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n5\r\nhello\r\n1;name=value\r\n!\r\nA \r\n0123456789\r\n"
	    "0\r\n\r\n", 0, H1_DONE, 200, 1, "hello!0123456789", -1);
	check("chunked with trailers", "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n"
	    "Trailer-A: 1\r\nTrailer-B: 2\r\n\r\n", 0, H1_DONE, 200, 1,
	    "ab", -1);
	check("chunk size not hex", "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 0, H1_ERROR, 0, 0,
	    "", 0);
	check("no CRLF after chunk data", "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 0, H1_ERROR,
	    0, 0, "", 0);
	check("chunk too large", "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 0,
	    H1_ERROR, 0, 0, "", 0);
	check("gzip coding", "HTTP/1.1 200 OK\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, H1_ERROR, 0, 0,
	    "", 0);
	check("length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", 0, H1_ERROR, 0, 0, "", 0);
	check("until close", "HTTP/1.1 500 Internal Server Error\r\n\r\n"
	    "oops", 1, H1_DONE, 500, 0, "oops", -1);
	check("until close, not yet closed", "HTTP/1.1 200 OK\r\n\r\nsome",
	    0, H1_MORE, 0, 0, "", 0);
	check("HTTP/1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n"
	    "\r\nx", 0, H1_DONE, 200, 0, "x", -1);
	check("HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\n"
	    "Connection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", 0,
	    H1_DONE, 200, 1, "x", -1);
	check("Connection: close", "HTTP/1.1 404 Not Found\r\n"
	    "Connection: foo, close\r\nContent-Length: 0\r\n\r\n", 0,
	    H1_DONE, 404, 0, "", -1);
	check("interim responses skipped", "HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 0, H1_DONE,
	    200, 1, "hi", -1);
	check("204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", 0,
	    H1_DONE, 204, 1, "", -1);
	check("304 has no body", "HTTP/1.1 304 Not Modified\r\n"
	    "Content-Length: 10\r\n\r\n", 0, H1_DONE, 304, 1, "", -1);
	check("bare LF line ends", "HTTP/1.1 200 OK\nContent-Length: 2\n\n"
	    "ok", 0, H1_DONE, 200, 1, "ok", -1);
	check("no reason phrase", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
	    0, H1_DONE, 200, 1, "", -1);
	check("101", "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0, H1_ERROR,
	    0, 0, "", 0);
	check("bad status line", "HTTP/2 200 OK\r\n\r\n", 0, H1_ERROR, 0, 0,
	    "", 0);
	check("status 600", "HTTP/1.1 600 Odd\r\n\r\n", 0, H1_ERROR, 0, 0,
	    "", 0);
	check("not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 0, H1_ERROR, 0, 0,
	    "", 0);
	check("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 0,
	    H1_ERROR, 0, 0, "", 0);
	check("space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 1"
	    "\r\n\r\nx", 0, H1_ERROR, 0, 0, "", 0);
	check("control character in a value", "HTTP/1.1 200 OK\r\nX: a\001b"
	    "\r\n\r\n", 0, H1_ERROR, 0, 0, "", 0);
	check("closed before the response", "", 1, H1_ERROR, 0, 0, "", 0);
	check("closed in the body", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
	    "\r\nabc", 1, H1_ERROR, 0, 0, "", 0);
	check("closed in the head", "HTTP/1.1 200 OK\r\nContent-", 1,
	    H1_ERROR, 0, 0, "", 0);

	/* A head that never ends is refused at H1_MAX_HEAD bytes. */
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(big + 20, 'a', sizeof(big) - 21);
	check("head too large", big, 0, H1_ERROR, 0, 0, "", 0);

	/* Two responses on one connection, with h1resp_reset between. */
	{
		const char	*two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
		    "\r\naHTTP/1.1 503 No\r\nTransfer-Encoding: chunked\r\n"
		    "\r\n1\r\nb\r\n0\r\n\r\n";
		struct h1resp	 r;
		struct buf	 body = BUF_INIT;
		size_t		 used, len = strlen(two);
		int		 rc;

		h1resp_init(&r);
		rc = h1resp_feed(&r, two, len, &used, &body);
		ok(rc == H1_DONE && r.status == 200 && body.b_len == 1 &&
		    body.b_p[0] == 'a', "first of two responses");
		h1resp_reset(&r);
		buf_reset(&body);
		rc = h1resp_feed(&r, two + used, len - used, &used, &body);
		ok(rc == H1_DONE && r.status == 503 && body.b_len == 1 &&
		    body.b_p[0] == 'b', "second of two responses");
		buf_free(&body);
		h1resp_free(&r);
	}
	return done_testing();
}
