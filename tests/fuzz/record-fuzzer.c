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
 * libFuzzer target for shared/record.c.  The input as an encoding:
 * record_decode() never reads outside it, gives spans inside it, and
 * what it accepts re-encodes to the same bytes and decodes to the same
 * record; record_peek() agrees.  The input as field values: a record
 * built from it encodes and decodes back to itself.  The input as an
 * IPC_RECORDS packet: record_decode_next() splits it into encodings that
 * record_decode() accepts on their own, never past the end.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

#define RECORD_FUZZ_MAX	(1024 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	span_in(struct record_span, const uint8_t *, size_t);
static void	check_round_trip(const struct record *, size_t);
static void	fuzz_decode(const uint8_t *, size_t);
static void	fuzz_encode(const uint8_t *, size_t);
static void	fuzz_split(const uint8_t *, size_t);

/* Absent, or within buf[0..len). */
static int
span_in(struct record_span s, const uint8_t *buf, size_t len)
{
	const uint8_t	*p = (const uint8_t *)s.p;

	if (p == NULL)
		return s.len == 0;
	return p >= buf && s.len <= len && (size_t)(p - buf) <= len - s.len;
}

/*
 * r encodes to exactly n bytes (not into n - 1), which decode to r and
 * which record_peek() reads the size and seq of.
 */
static void
check_round_trip(const struct record *r, size_t n)
{
	struct record	 d;
	uint8_t		*enc;
	size_t		 total;
	uint64_t	 seq;

	if (record_encoded_size(r) != n || (enc = malloc(n)) == NULL)
		abort();
	if (record_encode(r, enc, n - 1) != 0 || record_encode(r, enc, n) != n)
		abort();
	if (record_decode(enc, n, &d, NULL) != 0 || !record_equal(r, &d))
		abort();
	if (record_peek(enc, n, &total, &seq) != 0 || total != n ||
	    seq != r->r_seq)
		abort();
	free(enc);
}

static void
fuzz_decode(const uint8_t *data, size_t size)
{
	struct record	 r;
	uint8_t		*again;
	const char	*why = NULL;
	size_t		 total;
	uint64_t	 seq;

	if (record_decode(data, size, &r, &why) != 0) {
		if (why == NULL || *why == '\0')
			abort();
		return;
	}
	if (why != NULL)
		abort();
	if (!span_in(r.r_request_key, data, size) ||
	    !span_in(r.r_user_id, data, size) ||
	    !span_in(r.r_client_id, data, size) ||
	    !span_in(r.r_response, data, size) ||
	    !span_in(r.r_error, data, size) ||
	    r.r_request_key.p == NULL || r.r_user_id.p == NULL ||
	    r.r_request_key.len == 0 ||
	    r.r_request_key.len > RECORD_KEY_MAX ||
	    r.r_user_id.len > RECORD_USER_ID_MAX)
		abort();
	if (record_peek(data, size, &total, &seq) != 0 || total != size ||
	    seq != r.r_seq)
		abort();
	/* Canonical: the record re-encodes to the input. */
	if ((again = malloc(size)) == NULL)
		abort();
	if (record_encode(&r, again, size) != size ||
	    memcmp(again, data, size) != 0)
		abort();
	free(again);
	check_round_trip(&r, size);
}

/*
 * The input as a record: 40 bytes of fixed fields, flags and five
 * length bytes scaled to the limits, then the field bytes, shared
 * (fields may overlap; the rest of the input is reused cyclically).
 */
static void
fuzz_encode(const uint8_t *data, size_t size)
{
	struct record_span	*s[5];
	struct record		 r;
	const uint8_t		*body;
	size_t			 n, blen, i, off = 0;
	uint8_t			 flags;

	if (size < 40)
		return;
	memset(&r, 0, sizeof(r));
	memcpy(&r.r_seq, data, 8);
	memcpy(&r.r_created_at, data + 8, 8);
	memcpy(&r.r_latency_ms, data + 16, 8);
	memcpy(&r.r_status, data + 24, 4);
	flags = data[28];
	r.r_has_status = flags & RECORD_F_STATUS;
	s[0] = &r.r_request_key;
	s[1] = &r.r_user_id;
	s[2] = &r.r_client_id;
	s[3] = &r.r_response;
	s[4] = &r.r_error;
	body = data + 40;
	blen = size - 40;
	for (i = 0; i < 5; i++) {
		s[i]->len = blen == 0 ? 0 : data[29 + i] % (blen + 1);
		if (i == 0 && s[i]->len > RECORD_KEY_MAX)
			s[i]->len = RECORD_KEY_MAX;
		if (i == 1 && s[i]->len > RECORD_USER_ID_MAX)
			s[i]->len = RECORD_USER_ID_MAX;
		off = blen == 0 ? 0 : (off + data[34 + i]) % (blen + 1);
		if (s[i]->len > blen - off)
			off = blen - s[i]->len;
		s[i]->p = (const char *)body + off;
	}
	if (!(flags & RECORD_F_CLIENT_ID))
		r.r_client_id = (struct record_span){ NULL, 0 };
	if (!(flags & RECORD_F_RESPONSE))
		r.r_response = (struct record_span){ NULL, 0 };
	if (!(flags & RECORD_F_ERROR))
		r.r_error = (struct record_span){ NULL, 0 };

	n = record_encoded_size(&r);
	if (r.r_request_key.len == 0) {
		if (n != 0)
			abort();
		return;
	}
	if (n == 0)
		abort();
	check_round_trip(&r, n);
}

/* Walk the input as records back to back, as the dbwriter does. */
static void
fuzz_split(const uint8_t *data, size_t size)
{
	struct record	 r, one;
	const char	*why;
	size_t		 off = 0, n;

	while (off < size) {
		why = NULL;
		n = record_decode_next(data + off, size - off, &r, &why);
		if (n == 0) {
			if (why == NULL || *why == '\0')
				abort();
			return;
		}
		if (n > size - off || !span_in(r.r_request_key, data + off, n) ||
		    !span_in(r.r_user_id, data + off, n) ||
		    !span_in(r.r_client_id, data + off, n) ||
		    !span_in(r.r_response, data + off, n) ||
		    !span_in(r.r_error, data + off, n))
			abort();
		/* The same record as decoding exactly its bytes gives. */
		if (record_decode(data + off, n, &one, NULL) != 0 ||
		    !record_equal(&r, &one))
			abort();
		off += n;
	}
	/* A whole input that is one record is one step. */
	if (record_decode(data, size, &one, NULL) == 0 &&
	    record_decode_next(data, size, &r, NULL) != size)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > RECORD_FUZZ_MAX)
		return 0;
	fuzz_decode(data, size);
	fuzz_encode(data, size);
	fuzz_split(data, size);
	return 0;
}
