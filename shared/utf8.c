/*
 * Incremental UTF-8 validator: a nine-state DFA that accepts exactly the
 * well-formed sequences of RFC 3629 section 4, stepped one byte at a
 * time, with runs of ASCII skipped eight bytes at a time.
 */
#include "autoconf.h"

#include <string.h>

#include "utf8.h"

/*
 * States.  U_E0, U_ED, U_F0 and U_F4 are the lead bytes whose second byte
 * has a narrower range than 80-BF: that range is what excludes overlongs
 * (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).  The
 * sink is 0 so that every transition left out below rejects.
 */
enum {
	U_REJECT = 0,	/* sink */
	U_ACCEPT,	/* at a character boundary */
	U_NEED1,	/* one more 80-BF */
	U_NEED2,	/* two more 80-BF */
	U_NEED3,	/* three more 80-BF */
	U_E0,		/* after E0: A0-BF, then one more */
	U_ED,		/* after ED: 80-9F, then one more */
	U_F0,		/* after F0: 90-BF, then two more */
	U_F4		/* after F4: 80-8F, then two more */
};

/*
 * Shift DFA: a state is held as a bit offset (6 bits a state, 9 states
 * fit in 64 bits), and the row of a byte holds, at each state's offset,
 * the offset of the state it leads to.  A step is then
 * s = row[byte] >> s & 63: the load does not wait for the previous step,
 * which keeps the dependency chain to a shift and a mask.
 */
#define OFF(st)		((uint64_t)(st) * 6)
#define T(from, to)	(OFF(to) << OFF(from))

/* Rows for each class of byte, one transition per state it is legal in. */
#define R_ASCII	T(U_ACCEPT, U_ACCEPT)
#define R_TAIL	(T(U_NEED1, U_ACCEPT) | T(U_NEED2, U_NEED1) | \
	T(U_NEED3, U_NEED2))
#define R_80	(R_TAIL | T(U_ED, U_NEED1) | T(U_F4, U_NEED2))	/* 80-8F */
#define R_90	(R_TAIL | T(U_ED, U_NEED1) | T(U_F0, U_NEED2))	/* 90-9F */
#define R_A0	(R_TAIL | T(U_E0, U_NEED1) | T(U_F0, U_NEED2))	/* A0-BF */
#define R_BAD	0				/* C0 C1 F5-FF */
#define R_2	T(U_ACCEPT, U_NEED1)		/* C2-DF */
#define R_E0	T(U_ACCEPT, U_E0)
#define R_3	T(U_ACCEPT, U_NEED2)		/* E1-EC EE EF */
#define R_ED	T(U_ACCEPT, U_ED)
#define R_F0	T(U_ACCEPT, U_F0)
#define R_4	T(U_ACCEPT, U_NEED3)		/* F1-F3 */
#define R_F4	T(U_ACCEPT, U_F4)

#define X4(r)	r, r, r, r
#define X16(r)	X4(r), X4(r), X4(r), X4(r)

static const uint64_t utf8_row[256] = {
	X16(R_ASCII), X16(R_ASCII), X16(R_ASCII), X16(R_ASCII),	/* 00-3F */
	X16(R_ASCII), X16(R_ASCII), X16(R_ASCII), X16(R_ASCII),	/* 40-7F */
	X16(R_80), X16(R_90), X16(R_A0), X16(R_A0),		/* 80-BF */
	R_BAD, R_BAD, R_2, R_2, X4(R_2), X4(R_2), X4(R_2),	/* C0-CF */
	X16(R_2),						/* D0-DF */
	R_E0, R_3, R_3, R_3, X4(R_3), X4(R_3),			/* E0-EB */
	R_3, R_ED, R_3, R_3,					/* EC-EF */
	R_F0, R_4, R_4, R_4, R_F4, R_BAD, R_BAD, R_BAD,		/* F0-F7 */
	X4(R_BAD), X4(R_BAD)					/* F8-FF */
};

#define S_ACCEPT	OFF(U_ACCEPT)
#define S_REJECT	OFF(U_REJECT)
#define UTF8_HIGH_BITS	0x8080808080808080ULL

void
utf8_init(struct utf8_state *s)
{
	s->u_state = S_ACCEPT;
}

int
utf8_feed(struct utf8_state *st, const uint8_t *p, size_t len)
{
	const uint8_t	*end;
	uint64_t	 w;
	uint64_t	 s = st->u_state;

	if (len == 0)	/* p may be NULL: no pointer arithmetic on it */
		goto out;
	end = p + len;
	while (p != end) {
		/*
		 * ASCII between characters needs no state change: skip it a
		 * word at a time (memcpy keeps the load alignment-safe),
		 * then a byte at a time up to the next non-ASCII byte.
		 */
		if (s == S_ACCEPT && *p < 0x80) {
			while ((size_t)(end - p) >= sizeof(w)) {
				memcpy(&w, p, sizeof(w));
				if (w & UTF8_HIGH_BITS)
					break;
				p += sizeof(w);
			}
			while (p != end && *p < 0x80)
				p++;
			continue;
		}
		s = utf8_row[*p++] >> s & 63;
		if (s == S_REJECT)
			break;
	}
	st->u_state = (uint8_t)s;
out:
	if (s == S_REJECT)
		return UTF8_INVALID;
	return s == S_ACCEPT ? UTF8_OK : UTF8_PARTIAL;
}

int
utf8_valid(const uint8_t *p, size_t len)
{
	struct utf8_state	 s;

	utf8_init(&s);
	return utf8_feed(&s, p, len) == UTF8_OK;
}
