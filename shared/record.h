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
 * The persistence record (one row of PROTOCOL.md section 5) and its
 * binary encoding, the bytes a worker puts in its ring and sends to a
 * dbwriter.  Pure: no allocation, no I/O.
 *
 * Encoding, version 1, little-endian, RECORD_HDR_SIZE bytes of header
 * then the byte fields back to back, no padding:
 *
 *	off size
 *	  0   1  version (RECORD_VERSION)
 *	  1   1  flags: RECORD_F_* for the optional fields that are present
 *	  2   1  request_key length (1..RECORD_KEY_MAX)
 *	  3   1  user_id length (0..RECORD_USER_ID_MAX)
 *	  4   4  total length of the encoding, header included
 *	  8   8  seq
 *	 16   8  created_at, signed microseconds since the Unix epoch
 *	 24   8  latency_ms, IEEE 754 binary64 bits
 *	 32   4  status, signed; 0 when absent
 *	 36   4  client_id length; 0 when absent
 *	 40   4  response length; 0 when absent
 *	 44   4  error length; 0 when absent
 *	 48      request_key, user_id, client_id, response, error bytes
 *
 * The encoding of a record is unique: the decoder rejects unknown flag
 * bits, a nonzero status or length for an absent field, and a total
 * that is not exactly the header plus the field lengths.  So
 * record_encode(record_decode(x)) == x byte for byte.
 */
#ifndef WSGATE_RECORD_H
#define WSGATE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define RECORD_VERSION		1
#define RECORD_HDR_SIZE		48

#define RECORD_F_CLIENT_ID	0x01
#define RECORD_F_STATUS		0x02
#define RECORD_F_RESPONSE	0x04
#define RECORD_F_ERROR		0x08
#define RECORD_F_ALL		0x0f

/* Field limits, in bytes. */
#define RECORD_KEY_MAX		64
#define RECORD_USER_ID_MAX	128
#define RECORD_TEXT_MAX		(16u * 1024 * 1024)	/* client_id, error */
#define RECORD_RESPONSE_MAX	(256u * 1024 * 1024)
/* The largest encoding, about 288 MiB: fits the 32-bit total. */
#define RECORD_SIZE_MAX		(RECORD_HDR_SIZE + RECORD_KEY_MAX + \
	RECORD_USER_ID_MAX + 2 * RECORD_TEXT_MAX + RECORD_RESPONSE_MAX)

/*
 * A run of bytes, not NUL-terminated, may hold NUL and invalid UTF-8.
 * p == NULL means the field is absent (client_id, response, error only);
 * a present empty field has p != NULL and len 0.
 */
struct record_span {
	const char	*p;
	size_t		 len;
};

/*
 * One record.  After record_decode() the spans point into the buffer
 * decoded: they are valid as long as it is.
 */
struct record {
	uint64_t		r_seq;		/* ring sequence number */
	int64_t			r_created_at;	/* microseconds since epoch */
	double			r_latency_ms;	/* received -> reply sent */
	int32_t			r_status;	/* if r_has_status */
	int			r_has_status;	/* 0: status is NULL */
	struct record_span	r_request_key;	/* required, 1..64 bytes */
	struct record_span	r_user_id;	/* required, 0..128 bytes */
	struct record_span	r_client_id;	/* the request's id as JSON */
	struct record_span	r_response;	/* upstream body */
	struct record_span	r_error;	/* wsgate's error text */
};

/*
 * Bytes record_encode() will write for `r`, or 0 if `r` cannot be
 * encoded: request_key empty or longer than RECORD_KEY_MAX, a field over
 * its limit, or a required span with p == NULL.
 */
size_t	record_encoded_size(const struct record *r);

/*
 * Encode `r` into buf[0..buflen).  Returns the bytes written, exactly
 * record_encoded_size(r), or 0 (nothing useful written) if `r` cannot be
 * encoded or buflen is too small.  buf needs no alignment.
 */
size_t	record_encode(const struct record *r, void *buf, size_t buflen);

/*
 * Decode exactly one record that fills buf[0..len).  Returns 0 and fills
 * *r, whose spans point into buf; or -1 if the bytes are not a valid
 * encoding (short, unknown version, bad flags, a length over its limit
 * or past the end, trailing bytes), with *why (if why != NULL) set to a
 * static reason and *r unspecified.  Reads nothing outside buf.
 */
int	record_decode(const void *buf, size_t len, struct record *r,
	    const char **why);

/*
 * The first of several encodings back to back in buf[0..len), as in an
 * IPC_RECORDS packet (ipc_proto.h): each encoding's header says how long
 * it is.  Returns the length of the first, 1..len, and fills *r as
 * record_decode() of exactly those bytes does; or 0, with *why (if why
 * != NULL) set, if buf does not start with a whole, valid encoding.
 * Reads nothing outside buf.
 */
size_t	record_decode_next(const void *buf, size_t len, struct record *r,
	    const char **why);

/*
 * 1 if a and b are the same record: same fixed fields (latency bit for
 * bit, status only if present), same presence and bytes in each span
 * (wherever they point), else 0.
 */
int	record_equal(const struct record *a, const struct record *b);

/*
 * From the first RECORD_HDR_SIZE bytes of an encoding (for instance
 * the first packet of a record split over several), its total length
 * and seq.  Returns 0, or -1 if len < RECORD_HDR_SIZE, the version is
 * unknown or the total is not within RECORD_HDR_SIZE..RECORD_SIZE_MAX.
 * Only record_decode() of the whole encoding says it is valid.
 */
int	record_peek(const void *buf, size_t len, size_t *total,
	    uint64_t *seq);

#endif /* WSGATE_RECORD_H */
