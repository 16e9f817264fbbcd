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
 * Record codec: fixed little-endian header, then the byte fields in a
 * fixed order (layout in record.h).
 */
#include "autoconf.h"

#include <stddef.h>
#include <string.h>

#include "record.h"

/* Header offsets. */
#define OFF_VERSION	0
#define OFF_FLAGS	1
#define OFF_KEY_LEN	2
#define OFF_USER_LEN	3
#define OFF_TOTAL	4
#define OFF_SEQ		8
#define OFF_CREATED	16
#define OFF_LATENCY	24
#define OFF_STATUS	32
#define OFF_CLIENT_LEN	36
#define OFF_RESP_LEN	40
#define OFF_ERROR_LEN	44

_Static_assert(OFF_ERROR_LEN + 4 == RECORD_HDR_SIZE, "header layout");
_Static_assert(RECORD_SIZE_MAX <= UINT32_MAX, "total fits 32 bits");
_Static_assert(sizeof(double) == 8, "binary64 latency");

/*
 * The byte fields in encoding order: where each is in struct record, the
 * flag that marks an optional one present (0: required) and its limit.
 */
#define F_COUNT	5

static const struct {
	size_t		off;
	uint8_t		flag;
	uint32_t	max;
} record_fields[F_COUNT] = {
	{ offsetof(struct record, r_request_key), 0, RECORD_KEY_MAX },
	{ offsetof(struct record, r_user_id), 0, RECORD_USER_ID_MAX },
	{ offsetof(struct record, r_client_id), RECORD_F_CLIENT_ID,
	    RECORD_TEXT_MAX },
	{ offsetof(struct record, r_response), RECORD_F_RESPONSE,
	    RECORD_RESPONSE_MAX },
	{ offsetof(struct record, r_error), RECORD_F_ERROR, RECORD_TEXT_MAX }
};

#define FIELD(r, i)							\
	((const struct record_span *)((const char *)(r) +		\
	    record_fields[i].off))

static const char R_SHORT[] = "shorter than the header";
static const char R_VERSION[] = "unknown version";
static const char R_FLAGS[] = "unknown flags";
static const char R_TOTAL[] = "total length does not match the input";
static const char R_KEY[] = "request_key empty";
static const char R_LIMIT[] = "field longer than its limit";
static const char R_ABSENT[] = "absent field with a value";
static const char R_FIELDS[] = "field lengths do not add up to the total";

static void	put32(uint8_t *, uint32_t);
static void	put64(uint8_t *, uint64_t);
static uint32_t	get32(const uint8_t *);
static uint64_t	get64(const uint8_t *);

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

size_t
record_encoded_size(const struct record *r)
{
	const struct record_span	*s;
	size_t				 total = RECORD_HDR_SIZE;
	int				 i;

	if (r->r_request_key.len == 0)
		return 0;
	for (i = 0; i < F_COUNT; i++) {
		s = FIELD(r, i);
		if (s->p == NULL) {
			/* Absent: allowed for optional fields, and empty. */
			if (record_fields[i].flag == 0 || s->len != 0)
				return 0;
			continue;
		}
		if (s->len > record_fields[i].max)
			return 0;
		total += s->len;
	}
	return total;
}

size_t
record_encode(const struct record *r, void *buf, size_t buflen)
{
	const struct record_span	*s;
	uint8_t				*p = buf, flags = 0;
	uint64_t			 bits;
	size_t				 total;
	int				 i;

	if ((total = record_encoded_size(r)) == 0 || buflen < total)
		return 0;
	for (i = 0; i < F_COUNT; i++)
		if (FIELD(r, i)->p != NULL)
			flags |= record_fields[i].flag;
	if (r->r_has_status)
		flags |= RECORD_F_STATUS;
	memcpy(&bits, &r->r_latency_ms, sizeof(bits));

	p[OFF_VERSION] = RECORD_VERSION;
	p[OFF_FLAGS] = flags;
	p[OFF_KEY_LEN] = (uint8_t)r->r_request_key.len;
	p[OFF_USER_LEN] = (uint8_t)r->r_user_id.len;
	put32(p + OFF_TOTAL, (uint32_t)total);
	put64(p + OFF_SEQ, r->r_seq);
	put64(p + OFF_CREATED, (uint64_t)r->r_created_at);
	put64(p + OFF_LATENCY, bits);
	put32(p + OFF_STATUS, r->r_has_status ? (uint32_t)r->r_status : 0);
	put32(p + OFF_CLIENT_LEN, (uint32_t)r->r_client_id.len);
	put32(p + OFF_RESP_LEN, (uint32_t)r->r_response.len);
	put32(p + OFF_ERROR_LEN, (uint32_t)r->r_error.len);

	p += RECORD_HDR_SIZE;
	for (i = 0; i < F_COUNT; i++) {
		s = FIELD(r, i);
		if (s->len > 0)
			memcpy(p, s->p, s->len);
		p += s->len;
	}
	return total;
}

int
record_decode(const void *buf, size_t len, struct record *r,
    const char **why)
{
	const uint8_t		*p = buf;
	struct record_span	*s;
	uint64_t		 bits, sum = 0;
	uint32_t		 flen[F_COUNT];
	const char		*reason;
	uint8_t			 flags;
	int			 i;

	if (len < RECORD_HDR_SIZE) {
		reason = R_SHORT;
		goto bad;
	}
	if (p[OFF_VERSION] != RECORD_VERSION) {
		reason = R_VERSION;
		goto bad;
	}
	flags = p[OFF_FLAGS];
	if ((flags & ~RECORD_F_ALL) != 0) {
		reason = R_FLAGS;
		goto bad;
	}
	if (get32(p + OFF_TOTAL) != len) {
		reason = R_TOTAL;
		goto bad;
	}
	flen[0] = p[OFF_KEY_LEN];
	flen[1] = p[OFF_USER_LEN];
	flen[2] = get32(p + OFF_CLIENT_LEN);
	flen[3] = get32(p + OFF_RESP_LEN);
	flen[4] = get32(p + OFF_ERROR_LEN);
	if (flen[0] == 0) {
		reason = R_KEY;
		goto bad;
	}
	if (!(flags & RECORD_F_STATUS) && get32(p + OFF_STATUS) != 0) {
		reason = R_ABSENT;
		goto bad;
	}
	/* Each length is below 2^32: five of them cannot wrap 64 bits. */
	for (i = 0; i < F_COUNT; i++) {
		if (flen[i] > record_fields[i].max) {
			reason = R_LIMIT;
			goto bad;
		}
		if ((flags & record_fields[i].flag) != record_fields[i].flag &&
		    flen[i] != 0) {
			reason = R_ABSENT;
			goto bad;
		}
		sum += flen[i];
	}
	if (sum != len - RECORD_HDR_SIZE) {
		reason = R_FIELDS;
		goto bad;
	}

	r->r_seq = get64(p + OFF_SEQ);
	r->r_created_at = (int64_t)get64(p + OFF_CREATED);
	bits = get64(p + OFF_LATENCY);
	memcpy(&r->r_latency_ms, &bits, sizeof(bits));
	r->r_has_status = (flags & RECORD_F_STATUS) != 0;
	r->r_status = (int32_t)get32(p + OFF_STATUS);
	p += RECORD_HDR_SIZE;
	for (i = 0; i < F_COUNT; i++) {
		s = (struct record_span *)((char *)r + record_fields[i].off);
		/* A required field's flag is 0: always present. */
		if ((flags & record_fields[i].flag) == record_fields[i].flag)
			s->p = (const char *)p;
		else
			s->p = NULL;
		s->len = flen[i];
		p += flen[i];
	}
	return 0;
bad:
	if (why != NULL)
		*why = reason;
	return -1;
}

size_t
record_decode_next(const void *buf, size_t len, struct record *r,
    const char **why)
{
	uint32_t	total;

	if (len < RECORD_HDR_SIZE) {
		if (why != NULL)
			*why = R_SHORT;
		return 0;
	}
	total = get32((const uint8_t *)buf + OFF_TOTAL);
	if (total < RECORD_HDR_SIZE || total > len) {
		if (why != NULL)
			*why = R_TOTAL;
		return 0;
	}
	if (record_decode(buf, total, r, why) == -1)
		return 0;
	return total;
}

int
record_equal(const struct record *a, const struct record *b)
{
	const struct record_span	*sa, *sb;
	int				 i;

	if (a->r_seq != b->r_seq || a->r_created_at != b->r_created_at ||
	    memcmp(&a->r_latency_ms, &b->r_latency_ms, sizeof(double)) != 0 ||
	    !a->r_has_status != !b->r_has_status ||
	    (a->r_has_status && a->r_status != b->r_status))
		return 0;
	for (i = 0; i < F_COUNT; i++) {
		sa = FIELD(a, i);
		sb = FIELD(b, i);
		if ((sa->p == NULL) != (sb->p == NULL) || sa->len != sb->len ||
		    (sa->len > 0 && memcmp(sa->p, sb->p, sa->len) != 0))
			return 0;
	}
	return 1;
}

int
record_peek(const void *buf, size_t len, size_t *total, uint64_t *seq)
{
	const uint8_t	*p = buf;
	uint32_t	 n;

	if (len < RECORD_HDR_SIZE || p[OFF_VERSION] != RECORD_VERSION)
		return -1;
	n = get32(p + OFF_TOTAL);
	if (n < RECORD_HDR_SIZE || n > RECORD_SIZE_MAX)
		return -1;
	*total = n;
	*seq = get64(p + OFF_SEQ);
	return 0;
}
