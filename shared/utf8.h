/*
 * Incremental UTF-8 validation (RFC 3629): a byte-class DFA that can be
 * fed a text message in as many pieces as it arrives in and reports the
 * first impossible byte as soon as it is seen.
 */
#ifndef WSGATE_UTF8_H
#define WSGATE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_OK		0	/* valid so far and at a character boundary */
#define UTF8_PARTIAL	1	/* valid so far, inside a multi-byte sequence */
#define UTF8_INVALID	(-1)	/* not UTF-8; sticky until utf8_init() */

/*
 * Private to utf8.c.  A zeroed state counts as invalid, so a forgotten
 * utf8_init() fails every text rather than passing bad ones.
 */
struct utf8_state {
	uint8_t	u_state;
};

/* Start a new text (no bytes seen: utf8_feed(s, NULL, 0) is UTF8_OK). */
void	utf8_init(struct utf8_state *);

/*
 * Validate the next `len` bytes of a text that continues from what `s`
 * has seen.  Returns UTF8_INVALID as soon as a byte cannot continue any
 * valid encoding (overlong forms, surrogates D800-DFFF, code points above
 * U+10FFFF, C0, C1, F5-FF, a stray or missing continuation byte), even
 * when the sequence it breaks began in an earlier call; once invalid,
 * every later call returns UTF8_INVALID.  Otherwise UTF8_OK or
 * UTF8_PARTIAL as the text so far ends on a character boundary or not,
 * so a complete text is valid if the call with its last bytes (possibly
 * len 0) returns UTF8_OK.  p may be NULL when len is 0.
 */
int	utf8_feed(struct utf8_state *, const uint8_t *p, size_t len);

/* 1 if p[0..len) is complete, valid UTF-8, else 0. */
int	utf8_valid(const uint8_t *p, size_t len);

#endif /* WSGATE_UTF8_H */
