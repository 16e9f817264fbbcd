/*
 * libFuzzer target for worker/h1resp.c, the upstream response parser.
 * The input is fed whole, one byte a call, and in chunks whose sizes come
 * from the input itself; all three must agree on the result, the status,
 * the body and how many bytes the response took, then an end of
 * connection is fed where the response is not done.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/h1resp.h"

#define H1_FUZZ_MAX	(2 * H1_MAX_HEAD + 4096)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct outcome {
	int		rc;
	int		status;
	int		keep_alive;
	size_t		taken;	/* bytes of the input the response took */
	struct buf	body;
};

/*
 * Feed buf whole (`seed` 0), one byte a call (1), or in chunks whose
 * sizes come from an xorshift stream seeded by `seed`, stopping at the
 * first result that is not H1_MORE.
 */
static void
fuzz_feed(struct outcome *o, const char *buf, size_t len, uint64_t seed)
{
	struct h1resp	r;
	size_t		at = 0, step, used;

	memset(o, 0, sizeof(*o));
	h1resp_init(&r);
	o->rc = H1_MORE;
	while (at < len) {
		step = seed == 0 ? len : 1;
		if (seed > 1) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			step = 1 + (size_t)(seed >> 8) % ((seed & 3) == 0 ?
			    4096 : 16);
		}
		if (step > len - at)
			step = len - at;
		o->rc = h1resp_feed(&r, buf + at, step, &used, &o->body);
		if (o->rc == H1_DONE) {
			if (used > step)
				abort();
			at += used;
			break;
		}
		at += step;
		if (o->rc == H1_ERROR) {
			if (r.error == NULL)
				abort();
			break;
		}
	}
	if (o->rc == H1_MORE) {
		o->rc = h1resp_eof(&r);
		if (o->rc == H1_ERROR && r.error == NULL)
			abort();
	}
	o->taken = at;
	if (o->rc == H1_DONE) {
		o->status = r.status;
		o->keep_alive = r.keep_alive;
		if (r.status < 200 || r.status > 599)
			abort();
	}
	h1resp_free(&r);
}

static void
fuzz_same(const struct outcome *a, const struct outcome *b)
{
	if (a->rc != b->rc)
		abort();
	if (a->rc != H1_DONE)
		return;
	if (a->status != b->status || a->keep_alive != b->keep_alive ||
	    a->taken != b->taken || a->body.b_len != b->body.b_len ||
	    (a->body.b_len > 0 &&
	    memcmp(a->body.b_p, b->body.b_p, a->body.b_len) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome	 whole, bytes, chunks;
	const char	*buf = (const char *)data;
	uint64_t	 seed = 0x9e3779b97f4a7c15ULL;
	size_t		 i;

	if (size > H1_FUZZ_MAX)
		return 0;
	fuzz_feed(&whole, buf, size, 0);
	/* The body never holds more than the input. */
	if (whole.body.b_len > size)
		abort();
	fuzz_feed(&bytes, buf, size, 1);
	for (i = 0; i < size && i < 64; i++)
		seed = (seed ^ data[i]) * 0x100000001b3ULL;
	fuzz_feed(&chunks, buf, size, seed | 2);
	fuzz_same(&whole, &chunks);
	fuzz_same(&whole, &bytes);
	buf_free(&whole.body);
	buf_free(&bytes.body);
	buf_free(&chunks.body);
	return 0;
}
