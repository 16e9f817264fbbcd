/*
 * libFuzzer target for worker/http.c: the input is parsed whole, one
 * byte a call, and in chunks whose sizes come from the input itself; all
 * three must agree, and the result must keep the parser's promises.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http.h"

#define HTTP_FUZZ_MAX	(2 * HTTP_MAX_HEAD + 256)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	fuzz_chunked(struct http_request *, const char *, size_t,
		    uint64_t);
static void	fuzz_same(const struct http_request *,
		    const struct http_request *);
static void	fuzz_span_in(struct http_span, const char *, size_t);
static void	fuzz_check(const struct http_request *, int, const char *,
		    size_t);

/*
 * Feed growing prefixes of buf; chunk sizes from an xorshift stream
 * seeded by `seed` (0 means one byte a call).
 */
static int
fuzz_chunked(struct http_request *r, const char *buf, size_t len,
    uint64_t seed)
{
	size_t	 at = 0, step;
	int	 rc;

	http_request_init(r);
	do {
		step = 1;
		if (seed != 0) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			step = (seed & 3) == 0 ? (size_t)(seed >> 8) % 2048 :
			    (size_t)(seed >> 8) % 16;
		}
		at = len - at < step ? len : at + step;
		rc = http_request_parse(r, buf, at);
	} while (rc == HTTP_INCOMPLETE && at < len);
	return rc;
}

static void
fuzz_same(const struct http_request *a, const struct http_request *b)
{
#define DIFF_SPAN(f)	(a->f.p != b->f.p || a->f.len != b->f.len)
	if (DIFF_SPAN(h_method) || DIFF_SPAN(h_target) ||
	    DIFF_SPAN(h_path) || DIFF_SPAN(h_host) || DIFF_SPAN(h_origin) ||
	    DIFF_SPAN(h_ws_key))
		abort();
#undef DIFF_SPAN
	if (a->h_version_minor != b->h_version_minor ||
	    a->h_ws_version != b->h_ws_version ||
	    a->h_upgrade_websocket != b->h_upgrade_websocket ||
	    a->h_connection_upgrade != b->h_connection_upgrade ||
	    a->h_connection_close != b->h_connection_close ||
	    a->h_connection_keepalive != b->h_connection_keepalive ||
	    a->h_chunked != b->h_chunked ||
	    a->h_content_length != b->h_content_length ||
	    a->h_head_len != b->h_head_len ||
	    a->h_error_status != b->h_error_status ||
	    a->h_scan != b->h_scan || a->h_nfields != b->h_nfields)
		abort();
}

/* A result span lies inside the head (or is unset). */
static void
fuzz_span_in(struct http_span s, const char *buf, size_t headlen)
{
	if (s.p == NULL) {
		if (s.len != 0)
			abort();
		return;
	}
	if (s.p < buf || s.len > headlen ||
	    (size_t)(s.p - buf) > headlen - s.len)
		abort();
	(void)http_span_eq(s, "websocket");
}

static void
fuzz_check(const struct http_request *r, int rc, const char *buf,
    size_t len)
{
	switch (rc) {
	case HTTP_COMPLETE:
		if (r->h_head_len == 0 || r->h_head_len > len ||
		    r->h_head_len > HTTP_MAX_HEAD ||
		    buf[r->h_head_len - 1] != '\n')
			abort();
		if (r->h_method.len == 0 || r->h_target.len == 0 ||
		    r->h_target.p[0] != '/' || r->h_path.len > r->h_target.len)
			abort();
		if (r->h_version_minor != 0 && r->h_version_minor != 1)
			abort();
		if (r->h_version_minor == 1 && r->h_host.p == NULL)
			abort();
		if (r->h_ws_version < -2 || r->h_ws_version > 255)
			abort();
		if (r->h_chunked && r->h_content_length != -1)
			abort();
		fuzz_span_in(r->h_method, buf, r->h_head_len);
		fuzz_span_in(r->h_target, buf, r->h_head_len);
		fuzz_span_in(r->h_path, buf, r->h_head_len);
		fuzz_span_in(r->h_host, buf, r->h_head_len);
		fuzz_span_in(r->h_origin, buf, r->h_head_len);
		fuzz_span_in(r->h_ws_key, buf, r->h_head_len);
		break;
	case HTTP_INCOMPLETE:
		if (len >= HTTP_MAX_HEAD)
			abort();
		break;
	case HTTP_ERROR:
		if (r->h_error_status != 400 && r->h_error_status != 431 &&
		    r->h_error_status != 501 && r->h_error_status != 505)
			abort();
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request	 whole, part;
	const char		*buf = (const char *)data;
	uint64_t		 seed = 0x9e3779b97f4a7c15ULL;
	size_t			 i;
	int			 rc;

	if (size > HTTP_FUZZ_MAX)
		return 0;

	http_request_init(&whole);
	rc = http_request_parse(&whole, buf, size);
	fuzz_check(&whole, rc, buf, size);
	if (http_request_parse(&whole, buf, size) != rc)
		abort();

	if (fuzz_chunked(&part, buf, size, 0) != rc)
		abort();
	fuzz_same(&whole, &part);

	for (i = 0; i < size && i < 64; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ULL;
	if (fuzz_chunked(&part, buf, size, seed | 1) != rc)
		abort();
	fuzz_same(&whole, &part);
	return 0;
}
