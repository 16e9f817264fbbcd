/*
 * Copyright (c) 2026 The wsgate authors.
 *
 * Permission to use, copy, modify, and distribute this software for any
 * purpose with or without fee is hereby granted, provided that the above
 * copyright notice and this permission notice appear in all copies.
 *
 * THE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR DISCLAIMS ALL WARRANTIES
 * WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF
 * MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR
 * ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
 * WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN
 * ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF
 * OR IN CONNECTION WITH THE USE OR PERFORMANCE OF THIS SOFTWARE.
 */

/*
 * Unit tests for shared/record.c: the byte layout, round trips of every
 * combination of present and absent fields, bytes that are not text,
 * the size limits, and hostile input: every truncation, every bit flip,
 * each rule of the decoder, random bytes.
 */
#include "autoconf.h"

#include <sys/mman.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "tests/tap.h"

static void	rec_base(struct record *);
static int	round_trip(const struct record *, uint8_t *, size_t);
static void	put32(uint8_t *, uint32_t);
static void	test_layout(void);
static void	test_combinations(void);
static void	test_bytes(void);
static void	test_values(void);
static void	test_limits(void);
static void	test_huge(void);
static void	test_rules(void);
static void	test_truncation(void);
static void	test_bitflips(void);
static void	test_random(void);
static void	test_peek(void);
static void	test_equal(void);

#define SPAN(s)		((struct record_span){ (s), sizeof(s) - 1 })
#define NOSPAN		((struct record_span){ NULL, 0 })

/* Every field present, none empty. */
static void
rec_base(struct record *r)
{
	memset(r, 0, sizeof(*r));
	r->r_seq = 0x0102030405060708ULL;
	r->r_created_at = 1767225600123456LL;
	r->r_latency_ms = 12.5;
	r->r_status = 200;
	r->r_has_status = 1;
	r->r_request_key = SPAN("h1-g3-w2-0000000000000017");
	r->r_user_id = SPAN("42");
	r->r_client_id = SPAN("\"c-17\"");
	r->r_response = SPAN("{\"ok\":true}");
	r->r_error = SPAN("upstream error: reset");
}

/*
 * Encode into buf, decode, compare, re-encode and compare the bytes.
 * Returns 1 if all of it holds.
 */
static int
round_trip(const struct record *r, uint8_t *buf, size_t buflen)
{
	struct record	 d;
	uint8_t		 again[1024];
	size_t		 n;

	if ((n = record_encoded_size(r)) == 0 || n > buflen ||
	    record_encode(r, buf, buflen) != n)
		return 0;
	if (record_decode(buf, n, &d, NULL) != 0 || !record_equal(r, &d))
		return 0;
	if (n > sizeof(again))
		return 1;
	return record_encode(&d, again, sizeof(again)) == n &&
	    memcmp(again, buf, n) == 0;
}

/* v as four little-endian bytes at p. */
static void
put32(uint8_t *p, uint32_t v)
{
	int	i;

	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> 8 * i);
}

/* The exact bytes of one record: the format is a contract. */
static void
test_layout(void)
{
	static const uint8_t	 want[] = {
		0x01, 0x0b, 0x03, 0x02,			/* v1, flags, 3, 2 */
		0x3c, 0x00, 0x00, 0x00,			/* total 60 */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,	/* seq */
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,	/* -1 us */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,	/* 1.0 */
		0xf6, 0x01, 0x00, 0x00,			/* status 502 */
		0x02, 0x00, 0x00, 0x00,			/* client_id 2 */
		0x00, 0x00, 0x00, 0x00,			/* response absent */
		0x05, 0x00, 0x00, 0x00,			/* error 5 */
		'k', '-', '1', 'u', '7', '1', '7',
		'e', 'r', 'r', 'o', 'r'
	};
	struct record	 r, d;
	uint8_t		 buf[128];
	const char	*why = NULL;

	memset(&r, 0, sizeof(r));
	r.r_seq = 0x0102030405060708ULL;
	r.r_created_at = -1;
	r.r_latency_ms = 1.0;
	r.r_status = 502;
	r.r_has_status = 1;
	r.r_request_key = SPAN("k-1");
	r.r_user_id = SPAN("u7");
	r.r_client_id = SPAN("17");
	r.r_error = SPAN("error");
	is_int(record_encoded_size(&r), sizeof(want), "layout: size");
	ok(record_encode(&r, buf, sizeof(buf)) == sizeof(want) &&
	    memcmp(buf, want, sizeof(want)) == 0,
	    "layout: little-endian bytes as documented");
	ok(record_decode(want, sizeof(want), &d, &why) == 0 &&
	    record_equal(&r, &d), "layout: decodes back");
	ok(d.r_request_key.p == (const char *)want + RECORD_HDR_SIZE &&
	    d.r_error.p == (const char *)want + sizeof(want) - 5,
	    "layout: spans point into the input");
	ok(d.r_response.p == NULL && d.r_response.len == 0,
	    "layout: absent response is NULL");
	ok(why == NULL, "layout: no reason on success");
}

/* Each of the 16 presence combinations, present fields empty or not. */
static void
test_combinations(void)
{
	struct record	r;
	uint8_t		buf[512];
	int		mask, empty;

	for (mask = 0; mask < 16; mask++) {
		for (empty = 0; empty < 2; empty++) {
			rec_base(&r);
			if (empty) {
				r.r_client_id = SPAN("");
				r.r_response = SPAN("");
				r.r_error = SPAN("");
				r.r_user_id = SPAN("");
			}
			if (!(mask & 1))
				r.r_client_id = NOSPAN;
			if (!(mask & 2)) {
				r.r_has_status = 0;
				r.r_status = 0;
			}
			if (!(mask & 4))
				r.r_response = NOSPAN;
			if (!(mask & 8))
				r.r_error = NOSPAN;
			ok(round_trip(&r, buf, sizeof(buf)),
			    "round trip: client_id %s, status %s, response "
			    "%s, error %s%s", mask & 1 ? "yes" : "no",
			    mask & 2 ? "yes" : "no", mask & 4 ? "yes" : "no",
			    mask & 8 ? "yes" : "no",
			    empty ? " (present ones empty)" : "");
		}
	}
}

/* NUL, invalid UTF-8, every byte value, in every byte field. */
static void
test_bytes(void)
{
	static const char	 nul[] = "a\0b\0";
	static const char	 bad[] = "\xff\xfe\xc0\xaf\xed\xa0\x80\x80";
	struct record		 r, d;
	uint8_t			 all[256], buf[1024];
	size_t			 n;
	int			 i;

	for (i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	rec_base(&r);
	r.r_response = (struct record_span){ nul, sizeof(nul) };
	ok(round_trip(&r, buf, sizeof(buf)), "response with NUL bytes");
	r.r_response = SPAN(bad);
	ok(round_trip(&r, buf, sizeof(buf)), "response not UTF-8");
	r.r_response = (struct record_span){ (const char *)all, 256 };
	ok(round_trip(&r, buf, sizeof(buf)), "response: all 256 bytes");
	n = record_encode(&r, buf, sizeof(buf));
	ok(record_decode(buf, n, &d, NULL) == 0 && d.r_response.len == 256 &&
	    memcmp(d.r_response.p, all, 256) == 0,
	    "response bytes kept exactly");
	r.r_client_id = (struct record_span){ nul, sizeof(nul) };
	r.r_error = SPAN(bad);
	r.r_user_id = (struct record_span){ (const char *)all, 128 };
	r.r_request_key = (struct record_span){ (const char *)all + 128, 64 };
	ok(round_trip(&r, buf, sizeof(buf)),
	    "NUL and non-UTF-8 in the text fields too");
}

/* Extreme values of the fixed fields. */
static void
test_values(void)
{
	static const struct {
		uint64_t	seq;
		int64_t		created;
		double		latency;
		int32_t		status;
		const char	*name;
	} v[] = {
		{ 0, 0, 0.0, 0, "zeros (status 0 present)" },
		{ UINT64_MAX, INT64_MAX, 1e308, INT32_MAX, "maxima" },
		{ 1, INT64_MIN, -0.0, INT32_MIN, "minima, -0.0" },
		{ 2, -1, INFINITY, -1, "infinity, status -1" },
		{ 3, 1, -INFINITY, 599, "-infinity" },
		{ 4, 2, NAN, 100, "NaN" },
		{ 5, 3, 4.9e-324, 204, "denormal latency" }
	};
	struct record	r;
	uint8_t		buf[512];
	size_t		i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		rec_base(&r);
		r.r_seq = v[i].seq;
		r.r_created_at = v[i].created;
		r.r_latency_ms = v[i].latency;
		r.r_status = v[i].status;
		ok(round_trip(&r, buf, sizeof(buf)), "values: %s", v[i].name);
	}
	rec_base(&r);
	r.r_has_status = 7;
	ok(round_trip(&r, buf, sizeof(buf)), "r_has_status: any nonzero");
}

static void
test_limits(void)
{
	static char	big[RECORD_USER_ID_MAX + 2];
	struct record	r;
	uint8_t		buf[1024];
	size_t		n;

	memset(big, 'x', sizeof(big));
	rec_base(&r);
	r.r_request_key = (struct record_span){ big, RECORD_KEY_MAX };
	r.r_user_id = (struct record_span){ big, RECORD_USER_ID_MAX };
	ok(round_trip(&r, buf, sizeof(buf)), "key and user_id at their limit");
	r.r_request_key.len = RECORD_KEY_MAX + 1;
	is_int(record_encoded_size(&r), 0, "request_key over 64: refused");
	r.r_request_key.len = 0;
	is_int(record_encoded_size(&r), 0, "request_key empty: refused");
	r.r_request_key.len = 1;
	r.r_user_id.len = RECORD_USER_ID_MAX + 1;
	is_int(record_encoded_size(&r), 0, "user_id over 128: refused");
	r.r_user_id = NOSPAN;
	is_int(record_encoded_size(&r), 0, "user_id NULL: refused");
	rec_base(&r);
	r.r_request_key = NOSPAN;
	is_int(record_encoded_size(&r), 0, "request_key NULL: refused");
	rec_base(&r);
	r.r_error = (struct record_span){ NULL, 3 };
	is_int(record_encoded_size(&r), 0, "absent span with a length");
	rec_base(&r);
	r.r_client_id.len = RECORD_TEXT_MAX + 1;
	is_int(record_encoded_size(&r), 0, "client_id over its limit");
	rec_base(&r);
	r.r_error.len = RECORD_TEXT_MAX + 1;
	is_int(record_encoded_size(&r), 0, "error over its limit");
	rec_base(&r);
	r.r_response.len = (size_t)RECORD_RESPONSE_MAX + 1;
	is_int(record_encoded_size(&r), 0, "response over its limit");
	r.r_response.len = SIZE_MAX;
	is_int(record_encoded_size(&r), 0, "response SIZE_MAX");

	rec_base(&r);
	n = record_encoded_size(&r);
	is_int(record_encode(&r, buf, n - 1), 0, "encode: buffer one short");
	is_int(record_encode(&r, buf, n), n, "encode: buffer exact");
	r.r_request_key.len = 0;
	is_int(record_encode(&r, buf, sizeof(buf)), 0,
	    "encode: invalid record");
}

/*
 * Every field at its limit: a ~288 MiB record.  The sources are zero
 * pages of one mapping, marked at the ends; only the encoding is
 * written in full.
 */
static void
test_huge(void)
{
	struct record	 r, d;
	char		*src, *enc;
	size_t		 n, srclen = RECORD_RESPONSE_MAX;
	const char	*why = "";

	src = mmap(NULL, srclen, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	enc = mmap(NULL, RECORD_SIZE_MAX + 1, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (src == MAP_FAILED || enc == MAP_FAILED) {
		skip("mmap: no room for a maximal record");
		return;
	}
	src[0] = 'A';
	src[srclen - 1] = 'Z';
	memset(&r, 0, sizeof(r));
	r.r_request_key = (struct record_span){ src, RECORD_KEY_MAX };
	r.r_user_id = (struct record_span){ src, RECORD_USER_ID_MAX };
	r.r_client_id = (struct record_span){ src, RECORD_TEXT_MAX };
	r.r_error = (struct record_span){ src + srclen - RECORD_TEXT_MAX,
	    RECORD_TEXT_MAX };
	r.r_response = (struct record_span){ src, srclen };
	is_int(record_encoded_size(&r), RECORD_SIZE_MAX,
	    "maximal record: RECORD_SIZE_MAX bytes");
	n = record_encode(&r, enc, RECORD_SIZE_MAX);
	is_int(n, RECORD_SIZE_MAX, "maximal record: encoded");
	ok(record_decode(enc, n, &d, &why) == 0, "maximal record: decoded");
	ok(d.r_response.len == srclen && d.r_response.p[0] == 'A' &&
	    d.r_response.p[srclen - 1] == 'Z' &&
	    d.r_error.p[RECORD_TEXT_MAX - 1] == 'Z' &&
	    d.r_error.p + RECORD_TEXT_MAX == enc + n,
	    "maximal record: fields in place");

	/* One byte more in the response: refused (total fixed up). */
	put32((uint8_t *)enc + 40, (uint32_t)srclen + 1);
	put32((uint8_t *)enc + 4, (uint32_t)n + 1);
	ok(record_decode(enc, n + 1, &d, &why) == -1 &&
	    strstr(why, "limit") != NULL, "response over its limit refused");
	munmap(src, srclen);
	munmap(enc, RECORD_SIZE_MAX + 1);
}

/* Each rule of the decoder, on an otherwise valid encoding. */
static void
test_rules(void)
{
	struct record	 r, d;
	uint8_t		 buf[512], bad[512] = { 0 };
	size_t		 n;
	const char	*why;
	int		 rc;

	rec_base(&r);
	r.r_error = NOSPAN;
	n = record_encode(&r, buf, sizeof(buf));

#define BAD(what, edit, len, reason) do {				\
	memcpy(bad, buf, n);						\
	edit;								\
	why = NULL;							\
	rc = record_decode(bad, len, &d, &why);				\
	ok(rc == -1 && why != NULL && strstr(why, reason) != NULL,	\
	    "rejected: %s (%s)", what, why != NULL ? why : "none");	\
} while (0)

	BAD("version 0", bad[0] = 0, n, "version");
	BAD("version 2", bad[0] = 2, n, "version");
	BAD("version 255", bad[0] = 255, n, "version");
	BAD("flag 0x10", bad[1] |= 0x10, n, "flags");
	BAD("flag 0x80", bad[1] |= 0x80, n, "flags");
	BAD("empty request_key", (bad[2] = 0, bad[3] += buf[2]), n,
	    "request_key");
	BAD("request_key length 65", (bad[2] = 65, bad[3] = 0,
	    bad[4] = (uint8_t)(RECORD_HDR_SIZE + 65 + 6 + 11)), n + 65 -
	    buf[2] - buf[3], "limit");
	BAD("user_id length 129", (bad[3] = 129, bad[2] = 1,
	    bad[4] = (uint8_t)(RECORD_HDR_SIZE + 130 + 6 + 11)), n + 130 -
	    buf[2] - buf[3], "limit");
	BAD("absent status not 0", (bad[1] &= ~RECORD_F_STATUS), n,
	    "absent");
	BAD("absent error with a length", (bad[44] = 1, bad[40] -= 1), n,
	    "absent");
	BAD("total one more than the input", bad[4] += 1, n, "total");
	BAD("total one less than the input", bad[4] -= 1, n, "total");
	BAD("one trailing byte", (bad[n] = 0), n + 1, "total");
	BAD("trailing byte, total fixed up", (bad[n] = 0, bad[4] += 1), n + 1,
	    "add up");
	BAD("a length past the end", bad[40] += 1, n, "add up");
	BAD("a length short of the end", bad[36] -= 1, n, "add up");
	BAD("length 2^32-1", put32(bad + 36, UINT32_MAX), n, "limit");
	BAD("lengths that wrap 32 bits", (put32(bad + 36, 0x80000000u),
	    put32(bad + 40, 0x80000000u + 6 + 11)), n, "limit");
	BAD("empty input", (void)0, 0, "shorter");
	BAD("header minus one", (void)0, RECORD_HDR_SIZE - 1, "shorter");
#undef BAD

	/* The same checks pass for the untouched encoding. */
	ok(record_decode(buf, n, &d, NULL) == 0, "the base encoding is valid");
	/* A flag that makes an empty absent field present is valid. */
	memcpy(bad, buf, n);
	bad[1] |= RECORD_F_ERROR;
	ok(record_decode(bad, n, &d, NULL) == 0 && d.r_error.p != NULL &&
	    d.r_error.len == 0, "error flag on a 0 length: present, empty");
}

/* Every proper prefix of valid encodings is rejected. */
static void
test_truncation(void)
{
	struct record	 r, d;
	uint8_t		 buf[512], *copy;
	size_t		 n, len;
	int		 k, bad;

	for (k = 0; k < 4; k++) {
		rec_base(&r);
		if (k == 1)
			r.r_client_id = r.r_error = NOSPAN;
		if (k == 2)
			r.r_response = SPAN("");
		if (k == 3) {
			r.r_client_id = r.r_response = r.r_error = NOSPAN;
			r.r_has_status = 0;
		}
		n = record_encode(&r, buf, sizeof(buf));
		bad = 0;
		for (len = 0; len < n; len++) {
			/* A copy of exactly len bytes: ASan sees over-reads. */
			if ((copy = malloc(len + 1)) == NULL)
				exit(1);
			memcpy(copy, buf, len);
			if (record_decode(copy, len, &d, NULL) != -1)
				bad++;
			free(copy);
		}
		is_int(bad, 0, "encoding %d: all %zu truncations rejected", k,
		    n);
	}
}

/*
 * Every single-bit flip of an encoding: no crash; a flip is accepted
 * only as a record whose encoding is the flipped bytes; flips in the
 * version, lengths and total are always rejected.
 */
static void
test_bitflips(void)
{
	struct record	 r, d;
	uint8_t		 buf[512], again[512];
	size_t		 n, bit, at;
	int		 accepted = 0, bad = 0, structural = 0;

	rec_base(&r);
	r.r_error = NOSPAN;
	n = record_encode(&r, buf, sizeof(buf));
	for (bit = 0; bit < n * 8; bit++) {
		at = bit / 8;
		buf[at] ^= (uint8_t)(1u << bit % 8);
		if (record_decode(buf, n, &d, NULL) == 0) {
			accepted++;
			if (record_encode(&d, again, sizeof(again)) != n ||
			    memcmp(again, buf, n) != 0)
				bad++;
			if (at == 0 || (at >= 2 && at < 8) ||
			    (at >= 36 && at < 48))
				structural++;
		}
		buf[at] ^= (uint8_t)(1u << bit % 8);
	}
	diag("%zu bit flips, %d accepted", n * 8, accepted);
	is_int(bad, 0, "bit flips: accepted ones re-encode to themselves");
	is_int(structural, 0, "bit flips: version, lengths, total rejected");
	ok(accepted > 0 && (size_t)accepted < n * 8,
	    "bit flips: payload flips accepted, others not");
}

/*
 * Random bytes, and valid headers over random bodies, one time in four
 * with a random byte changed.
 */
static void
test_random(void)
{
	struct record	 d;
	uint8_t		 buf[600], again[600], flags;
	uint32_t	 len[5];
	size_t		 n, i;
	int		 k, accepted = 0, bad = 0;

	for (k = 0; k < 50000; k++) {
		n = random() % sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = (uint8_t)random();
		if (k % 2 == 0) {
			flags = (uint8_t)(random() & RECORD_F_ALL);
			len[0] = 1 + (uint32_t)(random() % RECORD_KEY_MAX);
			len[1] = (uint32_t)(random() % RECORD_USER_ID_MAX);
			len[2] = flags & RECORD_F_CLIENT_ID ? random() % 40 : 0;
			len[3] = flags & RECORD_F_RESPONSE ? random() % 200 : 0;
			len[4] = flags & RECORD_F_ERROR ? random() % 40 : 0;
			n = RECORD_HDR_SIZE;
			for (i = 0; i < 5; i++)
				n += len[i];
			buf[0] = RECORD_VERSION;
			buf[1] = flags;
			buf[2] = (uint8_t)len[0];
			buf[3] = (uint8_t)len[1];
			put32(buf + 4, (uint32_t)n);
			if (!(flags & RECORD_F_STATUS))
				put32(buf + 32, 0);
			put32(buf + 36, len[2]);
			put32(buf + 40, len[3]);
			put32(buf + 44, len[4]);
			if (random() % 4 == 0)
				buf[random() % n] = (uint8_t)random();
		}
		if (record_decode(buf, n, &d, NULL) == 0) {
			accepted++;
			if (record_encode(&d, again, sizeof(again)) != n ||
			    memcmp(again, buf, n) != 0)
				bad++;
		}
	}
	diag("50000 random inputs, %d accepted", accepted);
	ok(accepted > 10000, "random: valid headers accepted");
	is_int(bad, 0, "random: whatever is accepted is canonical");
}

static void
test_peek(void)
{
	struct record	r;
	uint8_t		buf[512];
	size_t		n, total = 0;
	uint64_t	seq = 0;

	rec_base(&r);
	n = record_encode(&r, buf, sizeof(buf));
	ok(record_peek(buf, RECORD_HDR_SIZE, &total, &seq) == 0 &&
	    total == n && seq == r.r_seq, "peek: total and seq from a header");
	ok(record_peek(buf, n, &total, &seq) == 0 && total == n,
	    "peek: whole record");
	is_int(record_peek(buf, RECORD_HDR_SIZE - 1, &total, &seq), -1,
	    "peek: short header");
	buf[0] = 9;
	is_int(record_peek(buf, n, &total, &seq), -1, "peek: bad version");
	buf[0] = RECORD_VERSION;
	put32(buf + 4, RECORD_HDR_SIZE - 1);
	is_int(record_peek(buf, n, &total, &seq), -1, "peek: total too small");
	put32(buf + 4, RECORD_SIZE_MAX + 1);
	is_int(record_peek(buf, n, &total, &seq), -1, "peek: total too large");
	put32(buf + 4, RECORD_SIZE_MAX);
	ok(record_peek(buf, n, &total, &seq) == 0 && total == RECORD_SIZE_MAX,
	    "peek: total at the maximum");
}

static void
test_equal(void)
{
	struct record	a, b;
	static char	key2[] = "h1-g3-w2-0000000000000017";

	rec_base(&a);
	rec_base(&b);
	b.r_request_key.p = key2;
	ok(record_equal(&a, &b), "equal: same bytes elsewhere");
	b.r_client_id = SPAN("");
	a.r_client_id = NOSPAN;
	ok(!record_equal(&a, &b), "equal: absent is not empty");
	rec_base(&b);
	b.r_response.len--;
	ok(!record_equal(&a, &b), "equal: length differs");
	rec_base(&a);
	rec_base(&b);
	a.r_has_status = b.r_has_status = 0;
	b.r_status = 1;
	ok(record_equal(&a, &b), "equal: absent status's value ignored");
	b.r_has_status = 2;
	ok(!record_equal(&a, &b), "equal: status presence");
	a.r_has_status = 1;
	b.r_status = a.r_status;
	ok(record_equal(&a, &b), "equal: any nonzero r_has_status");
	b.r_latency_ms = -0.0;
	a.r_latency_ms = 0.0;
	ok(!record_equal(&a, &b), "equal: latency compared bit for bit");
}

int
main(void)
{
	tap_watchdog(30);
	srandom(1);	/* the same inputs every run */
	test_layout();
	test_combinations();
	test_bytes();
	test_values();
	test_limits();
	test_huge();
	test_rules();
	test_truncation();
	test_bitflips();
	test_random();
	test_peek();
	test_equal();
	return done_testing();
}
