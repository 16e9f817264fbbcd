/*
 * Unit tests for shared/utf8.c: Markus Kuhn's and Autobahn's cases,
 * fail-fast positions across split input, and exhaustive agreement with
 * a plain decoder on every sequence of up to three bytes.
 */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "tests/tap.h"
#include "utf8.h"

struct utf8_case {
	const char	*name;
	const char	*s;
	size_t		 len;
	size_t		 bad;	/* index of the first impossible byte */
};
#define U(name, s, bad)	{ name, s, sizeof(s) - 1, bad }

#define VALID		((size_t)-1)	/* complete and valid */
#define TRUNCATED	((size_t)-2)	/* valid prefix, ends mid-sequence */

static const struct utf8_case cases[] = {
	U("empty", "", VALID),
	U("ASCII", "Hello, world", VALID),
	U("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", VALID),
	U("U+0000", "a\0b", VALID),
	U("U+0080", "\xc2\x80", VALID),
	U("U+07FF", "\xdf\xbf", VALID),
	U("U+0800", "\xe0\xa0\x80", VALID),
	U("U+D7FF", "\xed\x9f\xbf", VALID),
	U("U+E000", "\xee\x80\x80", VALID),
	U("U+FFFD", "\xef\xbf\xbd", VALID),
	U("U+FFFE (noncharacter, valid)", "\xef\xbf\xbe", VALID),
	U("U+FFFF", "\xef\xbf\xbf", VALID),
	U("U+10000", "\xf0\x90\x80\x80", VALID),
	U("U+FFFFF", "\xf3\xbf\xbf\xbf", VALID),
	U("U+100000", "\xf4\x80\x80\x80", VALID),
	U("U+10FFFF", "\xf4\x8f\xbf\xbf", VALID),
	U("mixed", "a\xc2\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!", VALID),

	U("lone 80", "\x80", 0),
	U("lone BF", "\xbf", 0),
	U("continuations after ASCII", "abc\x80\xbf", 3),
	U("two-byte then extra continuation", "\xc2\x80\x80", 2),
	U("C0 overlong '/'", "\xc0\xaf", 0),
	U("C1 overlong", "\xc1\xbf", 0),
	U("E0 overlong '/'", "\xe0\x80\xaf", 1),
	U("E0 overlong U+07FF", "\xe0\x9f\xbf", 1),
	U("F0 overlong '/'", "\xf0\x80\x80\xaf", 1),
	U("F0 overlong U+FFFF", "\xf0\x8f\xbf\xbf", 1),
	U("F8 five-byte", "\xf8\x88\x80\x80\x80", 0),
	U("FC six-byte", "\xfc\x84\x80\x80\x80\x80", 0),
	U("FE", "\xfe", 0),
	U("FF", "\xff", 0),
	U("surrogate U+D800", "\xed\xa0\x80", 1),
	U("surrogate U+DB7F", "\xed\xad\xbf", 1),
	U("surrogate U+DC00", "\xed\xb0\x80", 1),
	U("surrogate U+DFFF", "\xed\xbf\xbf", 1),
	U("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", 1),
	U("U+110000 (F4 90)", "\xf4\x90\x80\x80", 1),
	U("F4 BF", "\xf4\xbf\xbf\xbf", 1),
	U("F5", "\xf5\x80\x80\x80", 0),
	U("F7", "\xf7\xbf\xbf\xbf", 0),
	U("two-byte cut by ASCII", "\xc2" "A", 1),
	U("three-byte cut by ASCII", "\xe1\x80" "A", 2),
	U("four-byte cut by ASCII", "\xf1\x80\x80" "A", 3),
	U("four-byte cut by a lead", "\xf1\x80\x80\xc2\x80", 3),
	U("kosme then bad", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	    "\xf4\x90\x80\x80" "edited", 12),
	U("bad after a word of ASCII", "abcdefgh\xc0", 8),
	U("bad late in long ASCII", "abcdefghijklmnopqrstuvwxyz012345678\xff",
	    35),

	U("truncated two-byte", "\xc2", TRUNCATED),
	U("truncated three-byte", "\xe1\x80", TRUNCATED),
	U("truncated E0", "\xe0\xa0", TRUNCATED),
	U("truncated four-byte", "\xf0\x90\x80", TRUNCATED),
	U("truncated F4", "\xf4\x8f\xbf", TRUNCATED),
	U("ASCII then truncated", "abcdefghij\xf3", TRUNCATED),
};

static int	expect_end(const struct utf8_case *);
static int	ref_valid(const uint8_t *, size_t);
static void	test_cases(void);
static void	test_splits(void);
static void	test_sticky(void);
static void	test_fast_path(void);
static void	test_exhaustive(void);

/* The result a feed of the whole case must give. */
static int
expect_end(const struct utf8_case *c)
{
	if (c->bad == VALID)
		return UTF8_OK;
	if (c->bad == TRUNCATED)
		return UTF8_PARTIAL;
	return UTF8_INVALID;
}

/*
 * Plain decoder, written from RFC 3629 section 4 independently of the
 * DFA: the lead byte gives the length, the value must need that length
 * and be a scalar value.
 */
static int
ref_valid(const uint8_t *p, size_t len)
{
	size_t		 i = 0, n, k;
	uint32_t	 cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			n = 2;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			n = 3;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			n = 4;
			cp = p[i] & 0x07;
		} else
			return 0;
		if (len - i < n)
			return 0;
		for (k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n;
	}
	return 1;
}

static void
test_cases(void)
{
	struct utf8_state	 st;
	const struct utf8_case	*c;
	const uint8_t		*p;
	size_t			 i, len, first_bad;
	int			 r, whole;

	for (c = cases; c < cases + sizeof(cases) / sizeof(cases[0]); c++) {
		p = (const uint8_t *)c->s;
		len = c->len;

		utf8_init(&st);
		whole = utf8_feed(&st, p, len);
		ok(whole == expect_end(c), "%s: whole buffer gives %d", c->name,
		    whole);
		ok(utf8_valid(p, len) == (c->bad == VALID),
		    "%s: utf8_valid", c->name);

		/* One byte a call: INVALID exactly at the bad byte. */
		utf8_init(&st);
		first_bad = VALID;
		r = utf8_feed(&st, NULL, 0);
		for (i = 0; i < len; i++) {
			r = utf8_feed(&st, p + i, 1);
			if (r == UTF8_INVALID && first_bad == VALID)
				first_bad = i;
		}
		if (c->bad == VALID || c->bad == TRUNCATED)
			ok(first_bad == VALID && r == expect_end(c),
			    "%s: byte at a time ends %d", c->name, r);
		else
			ok(first_bad == c->bad,
			    "%s: byte at a time fails at byte %zu (want %zu)",
			    c->name, first_bad, c->bad);
	}
}

/*
 * Every split of every case into two feeds: the first feed fails iff
 * it holds the bad byte, and the end result is that of the whole.
 */
static void
test_splits(void)
{
	struct utf8_state	 st;
	const struct utf8_case	*c;
	const uint8_t		*p;
	size_t			 len, cut;
	int			 r1, r2, good = 1;

	for (c = cases; c < cases + sizeof(cases) / sizeof(cases[0]); c++) {
		p = (const uint8_t *)c->s;
		len = c->len;
		for (cut = 0; cut <= len; cut++) {
			utf8_init(&st);
			r1 = utf8_feed(&st, p, cut);
			r2 = utf8_feed(&st, p + cut, len - cut);
			if (c->bad < len &&
			    (r1 == UTF8_INVALID) != (c->bad < cut))
				good = 0;
			if (r2 != expect_end(c)) {
				good = 0;
				diag("%s: split at %zu gives %d", c->name,
				    cut, r2);
			}
		}
	}
	ok(good, "every two-way split agrees with the whole buffer");
}

static void
test_sticky(void)
{
	struct utf8_state	 st;

	utf8_init(&st);
	ok(utf8_feed(&st, NULL, 0) == UTF8_OK, "fresh state is OK");
	ok(utf8_feed(&st, (const uint8_t *)"\xf4", 1) == UTF8_PARTIAL,
	    "F4 alone is partial");
	ok(utf8_feed(&st, (const uint8_t *)"\x90", 1) == UTF8_INVALID,
	    "F4 then 90 in the next call is invalid at once");
	ok(utf8_feed(&st, (const uint8_t *)"abc", 3) == UTF8_INVALID,
	    "invalid is sticky");
	ok(utf8_feed(&st, NULL, 0) == UTF8_INVALID,
	    "invalid is sticky for an empty feed");
	utf8_init(&st);
	ok(utf8_feed(&st, (const uint8_t *)"abc", 3) == UTF8_OK,
	    "utf8_init resets");
	memset(&st, 0, sizeof(st));
	ok(utf8_feed(&st, (const uint8_t *)"abc", 3) == UTF8_INVALID,
	    "a zeroed state without utf8_init is invalid");
	utf8_init(&st);
	ok(utf8_feed(&st, (const uint8_t *)"\xf0\x9f", 2) == UTF8_PARTIAL &&
	    utf8_feed(&st, (const uint8_t *)"\x98", 1) == UTF8_PARTIAL &&
	    utf8_feed(&st, (const uint8_t *)"\x80", 1) == UTF8_OK,
	    "U+1F600 across three feeds");
}

/* The ASCII fast path, at every alignment and bad-byte position. */
static void
test_fast_path(void)
{
	uint8_t			 buf[96];
	struct utf8_state	 st;
	size_t			 off, bad, len;
	int			 good = 1;

	for (off = 0; off < 8; off++) {
		for (bad = 0; bad < 64; bad++) {
			len = 64;
			memset(buf, 'x', sizeof(buf));
			buf[off + bad] = 0xc0;
			utf8_init(&st);
			if (utf8_feed(&st, buf + off, len) != UTF8_INVALID)
				good = 0;
			utf8_init(&st);
			if (bad > 0 &&
			    utf8_feed(&st, buf + off, bad) != UTF8_OK)
				good = 0;
			/* A valid two-byte character in the same place. */
			buf[off + bad] = 0xc3;
			buf[off + bad + 1] = 0xa9;
			if (!utf8_valid(buf + off, len + 1))
				good = 0;
		}
	}
	ok(good, "ASCII fast path at every alignment and position");
}

/*
 * The DFA against the plain decoder on every 1-, 2- and 3-byte string
 * and on 4-byte strings built from the interesting byte values.
 */
static void
test_exhaustive(void)
{
	static const uint8_t	 edge[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f,
	    0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1,
	    0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7,
	    0xf8, 0xfe, 0xff };
	uint8_t			 b[4];
	unsigned int		 i, j, k, l, bad = 0, n = sizeof(edge);

	for (i = 0; i < 256; i++) {
		b[0] = (uint8_t)i;
		bad += utf8_valid(b, 1) != ref_valid(b, 1);
		for (j = 0; j < 256; j++) {
			b[1] = (uint8_t)j;
			bad += utf8_valid(b, 2) != ref_valid(b, 2);
			/*
			 * Below C0 the first byte is a character by itself
			 * or invalid: the 2-byte strings cover the rest.
			 */
			if (i < 0xc0)
				continue;
			for (k = 0; k < 256; k++) {
				b[2] = (uint8_t)k;
				bad += utf8_valid(b, 3) != ref_valid(b, 3);
			}
		}
	}
	ok(bad == 0, "all strings of 1-3 bytes agree with the decoder "
	    "(%u differ)", bad);

	bad = 0;
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++)
			for (k = 0; k < n; k++)
				for (l = 0; l < n; l++) {
					b[0] = edge[i];
					b[1] = edge[j];
					b[2] = edge[k];
					b[3] = edge[l];
					bad += utf8_valid(b, 4) !=
					    ref_valid(b, 4);
				}
	ok(bad == 0, "4-byte strings of edge bytes agree (%u differ)", bad);
}

int
main(void)
{
	tap_watchdog(60);
	test_cases();
	test_splits();
	test_sticky();
	test_fast_path();
	test_exhaustive();
	return done_testing();
}
