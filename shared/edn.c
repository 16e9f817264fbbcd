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
 * EDN to JSON, read the way clojure.edn/read-string reads it: one
 * recursive-descent pass over the text, recursion bounded by
 * EDN_MAX_DEPTH, JSON appended to the output as each form is read.  The
 * conversion rules are listed in edn.h.
 */
#include "autoconf.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "edn.h"
#include "utf8.h"
#include "util.h"

/*
 * What a form was, as far as JSON cannot tell: the kind decides what may
 * carry metadata or be a tag, and with the JSON text it is the identity
 * of a map key or set element for the duplicate check.
 */
enum edn_kind {
	EDN_K_NIL,
	EDN_K_BOOL,
	EDN_K_INT,
	EDN_K_FLOAT,
	EDN_K_DECIMAL,		/* 1.5M */
	EDN_K_RATIO,		/* one that is not a whole number */
	EDN_K_SYMVAL,		/* ##Inf ##-Inf ##NaN */
	EDN_K_STRING,
	EDN_K_CHAR,
	EDN_K_KEYWORD,
	EDN_K_SYMBOL,
	EDN_K_SEQ,		/* list or vector: equal when elements are */
	EDN_K_MAP,
	EDN_K_SET,
	EDN_K_INST,
	EDN_K_UUID
};

/* Byte classes, after clojure.edn's reader. */
#define EDN_C_WS	0x01	/* Character.isWhitespace(), or ',' */
#define EDN_C_TERM	0x02	/* ends a symbol: " ; ^ ( ) [ ] { } \ */
#define EDN_C_MACRO	0x04	/* ends a number: TERM and # */
#define EDN_C_PLAIN	0x08	/* copied as is into a JSON string */
#define EDN_C_SKIP	0x10	/* may start what edn_skip() skips */
#define EDN_C_SYM	0x20	/* symbol byte needing no second look */

#define W	(EDN_C_WS | EDN_C_SKIP)
#define P	EDN_C_PLAIN
#define M	(EDN_C_TERM | EDN_C_MACRO)
#define S	(EDN_C_PLAIN | EDN_C_SYM)

static const uint8_t edn_class[256] = {
	[0x09] = W, [0x0a] = W, [0x0b] = W, [0x0c] = W, [0x0d] = W,
	[0x1c] = W, [0x1d] = W, [0x1e] = W, [0x1f] = W,
	[' '] = P | W, ['!'] = S, ['"'] = M,
	['#'] = S | EDN_C_MACRO | EDN_C_SKIP, ['$' ... '\''] = S,
	['('] = P | M, [')'] = P | M, ['*' ... '+'] = S, [','] = P | W,
	['-' ... '.'] = S, ['/'] = P, ['0' ... '9'] = S, [':'] = P,
	[';'] = P | M | EDN_C_SKIP, ['<' ... '?'] = S, ['@'] = P,
	['A' ... 'Z'] = S, ['['] = P | M, ['\\'] = M, [']'] = P | M,
	['^'] = P | M, ['_'] = S, ['`'] = P, ['a' ... 'z'] = S,
	['{'] = P | M, ['|'] = S, ['}'] = P | M, ['~'] = P, [0x7f] = S,
	[0x80 ... 0xff] = EDN_C_SKIP
};

#undef W
#undef P
#undef M
#undef S

/* What edn_token_end() saw, besides EDN_C_SYM bytes. */
#define EDN_T_COLON	0x01
#define EDN_T_SLASH	0x02
#define EDN_T_CTL	0x04	/* control characters: JSON escapes them */

#define EDN_KEYS_INLINE		64	/* key records before the heap */
#define EDN_KEYS_PAIRWISE	16	/* more keys: hash table */
#define EDN_RADIX_DIGITS	1024	/* longest 0x.., 0.., NNr.. integer */
/* Base 10^9 limbs for that: log10(36) / 9 < 16 / 90. */
#define EDN_RADIX_LIMBS		(EDN_RADIX_DIGITS * 16 / 90 + 2)
#define EDN_MANTISSA_DIGITS	18	/* so that remainder * 10 fits */
#define EDN_KEY_QUOTE		40	/* bytes of a duplicate key shown */

/* A map key or set element already written to the output. */
struct edn_key {
	size_t	k_off;		/* its JSON text in the output */
	size_t	k_len;
	size_t	k_pos;		/* input offset, for the message */
	int	k_kind;
};

struct edn_parser {
	const uint8_t	*e_start;
	const uint8_t	*e_p;
	const uint8_t	*e_end;
	struct buf	*e_out;
	struct buf	 e_tmp;		/* scratch: map keys, ratio digits */
	/* Namespace of the #:ns{} map whose key is read next, else NULL. */
	const uint8_t	*e_keyns;
	size_t		 e_keynslen;
	char		*e_err;
	size_t		 e_errlen;
	int		 e_failed;
	/* Keys of the maps and sets being read, innermost last. */
	struct edn_key	*e_keys;
	size_t		 e_nkeys;
	size_t		 e_capkeys;
	struct edn_key	 e_keys0[EDN_KEYS_INLINE];	/* last: not cleared */
};

static int	edn_error(struct edn_parser *, const uint8_t *, const char *,
		    ...) __attribute__((format(printf, 3, 4)));
static int	edn_deeper(struct edn_parser *, int, const uint8_t *);
static void	edn_putc(struct buf *, char);
static void	edn_put_ctl(struct buf *, unsigned int);
static void	edn_put_escaped(struct buf *, const uint8_t *, size_t);
static void	edn_put_cp(struct buf *, uint32_t);
static void	edn_put_inf(struct buf *, int);
static size_t	edn_utf8_len(const uint8_t *, const uint8_t *);
static uint32_t	edn_utf8_decode(const uint8_t *, size_t);
static size_t	edn_uniws(const uint8_t *, const uint8_t *);
static int	edn_delim(const uint8_t *, const uint8_t *, int);
static unsigned int edn_digitval(uint8_t);
static size_t	edn_ndigits(const uint8_t *, size_t, unsigned int);
static int	edn_hex4(const uint8_t *, const uint8_t *, uint32_t *);
static inline int edn_skip(struct edn_parser *, int);
static int	edn_skip_slow(struct edn_parser *, int);
static int	edn_value(struct edn_parser *, int);
static int	edn_coll(struct edn_parser *, int, const uint8_t *, int,
		    const uint8_t *, size_t);
static void	edn_stringify(struct edn_parser *, size_t);
static void	edn_key_push(struct edn_parser *, size_t, const uint8_t *,
		    int);
static int	edn_key_eq(const struct buf *, const struct edn_key *,
		    const struct edn_key *);
static uint64_t	edn_key_hash(const struct buf *, const struct edn_key *);
static int	edn_keys_check(struct edn_parser *, size_t, const char *);
static int	edn_key_dup(struct edn_parser *, const struct edn_key *,
		    const char *);
static int	edn_string(struct edn_parser *);
static int	edn_string_escape(struct edn_parser *, const uint8_t **);
static int	edn_char(struct edn_parser *);
static const uint8_t *edn_token_end(struct edn_parser *, const uint8_t *,
		    int *);
static int	edn_symbol_split(const uint8_t *, size_t, size_t *);
static int	edn_symbol_valid(const uint8_t *, size_t);
static int	edn_literal(const uint8_t *, size_t);
static int	edn_symbol(struct edn_parser *, const uint8_t *, size_t);
static int	edn_number(struct edn_parser *);
static int	edn_put_radix(struct edn_parser *, const uint8_t *, int,
		    const uint8_t *, size_t, unsigned int);
static int	edn_put_float(struct edn_parser *, int, const uint8_t *,
		    size_t, int);
static int	edn_put_ratio(struct edn_parser *, const uint8_t *, int,
		    const uint8_t *, size_t, const uint8_t *, size_t);
static int	edn_dispatch(struct edn_parser *, int);
static int	edn_form_symbol(struct edn_parser *, int, const uint8_t *,
		    const char *, const uint8_t **, size_t *);
static int	edn_symval(struct edn_parser *, int, const uint8_t *);
static int	edn_meta(struct edn_parser *, int, const uint8_t *);
static int	edn_nsmap(struct edn_parser *, int, const uint8_t *);
static int	edn_tagged(struct edn_parser *, int, const uint8_t *);
static int	edn_fields(const char **, const char *, int, int *);
static int	edn_inst_tail(const char *, const char *, int);
static int	edn_inst_valid(const char *, size_t);
static int	edn_uuid_valid(const char *, size_t);

/* ---- Errors and output ---- */

/*
 * Record the first error as "reason at offset N" and return -1; later
 * errors (from callers unwinding) keep the first.
 */
static int
edn_error(struct edn_parser *ps, const uint8_t *at, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (ps->e_failed++ > 0 || ps->e_err == NULL || ps->e_errlen == 0)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(ps->e_err, ps->e_errlen, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < ps->e_errlen)
		snprintf(ps->e_err + n, ps->e_errlen - (size_t)n,
		    " at offset %zu", (size_t)(at - ps->e_start));
	return -1;
}

/* Whether a form at `depth` may hold another one. */
static int
edn_deeper(struct edn_parser *ps, int depth, const uint8_t *at)
{
	if (depth >= EDN_MAX_DEPTH)
		return edn_error(ps, at, "nesting too deep");
	return 0;
}

static void
edn_putc(struct buf *b, char c)
{
	if (b->b_cap - b->b_len < 2)
		buf_reserve(b, 1);
	b->b_p[b->b_len++] = c;
}

/* A character JSON strings must escape: '"', '\\' or below 0x20. */
static void
edn_put_ctl(struct buf *b, unsigned int c)
{
	static const char	 hex[] = "0123456789abcdef";
	/* The two-character escapes; others are \u00XX. */
	static const char	 esc['\\' + 1] = { ['"'] = '"', ['\\'] = '\\',
	    ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r',
	    ['\t'] = 't' };
	char			*w = buf_reserve(b, 6);

	w[0] = '\\';
	if (esc[c] != '\0') {
		w[1] = esc[c];
		b->b_len += 2;
		return;
	}
	memcpy(w + 1, "u00", 3);
	w[4] = hex[c >> 4];
	w[5] = hex[c & 15];
	b->b_len += 6;
}

/* Valid UTF-8 p[0..n) as the inside of a JSON string. */
static void
edn_put_escaped(struct buf *b, const uint8_t *p, size_t n)
{
	const uint8_t	*end = p + n, *run;

	while (p < end) {
		run = p;
		while (p < end && *p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		buf_append(b, run, (size_t)(p - run));
		if (p < end)
			edn_put_ctl(b, *p++);
	}
}

/* A code point (not a surrogate) as the inside of a JSON string. */
static void
edn_put_cp(struct buf *b, uint32_t cp)
{
	char	*w;

	if (cp < 0x20 || cp == '"' || cp == '\\') {
		edn_put_ctl(b, cp);
		return;
	}
	w = buf_reserve(b, 4);
	if (cp < 0x80) {
		w[0] = (char)cp;
		b->b_len += 1;
	} else if (cp < 0x800) {
		w[0] = (char)(0xc0 | cp >> 6);
		w[1] = (char)(0x80 | (cp & 0x3f));
		b->b_len += 2;
	} else if (cp < 0x10000) {
		w[0] = (char)(0xe0 | cp >> 12);
		w[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		w[2] = (char)(0x80 | (cp & 0x3f));
		b->b_len += 3;
	} else {
		w[0] = (char)(0xf0 | cp >> 18);
		w[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		w[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		w[3] = (char)(0x80 | (cp & 0x3f));
		b->b_len += 4;
	}
}

/* ##Inf or ##-Inf, and doubles beyond range: Jackson's strings. */
static void
edn_put_inf(struct buf *b, int neg)
{
	buf_appends(b, neg ? "\"-Infinity\"" : "\"Infinity\"");
}

/* ---- Characters ---- */

/* Length of the valid UTF-8 sequence at p (*p >= 0x80), 0 if invalid. */
static size_t
edn_utf8_len(const uint8_t *p, const uint8_t *end)
{
	size_t	n;

	n = *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;
	if ((size_t)(end - p) < n || !utf8_valid(p, n))
		return 0;
	return n;
}

/* The code point of the valid n-byte sequence at p. */
static uint32_t
edn_utf8_decode(const uint8_t *p, size_t n)
{
	static const uint8_t	 lead[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	uint32_t		 cp = p[0] & lead[n];
	size_t			 i;

	for (i = 1; i < n; i++)
		cp = cp << 6 | (p[i] & 0x3f);
	return cp;
}

/*
 * Length of the non-ASCII whitespace at p, 0 if none: the space and
 * line separators Java's Character.isWhitespace() counts, U+1680,
 * U+2000-U+2006, U+2008-U+200A, U+2028, U+2029, U+205F and U+3000.
 */
static size_t
edn_uniws(const uint8_t *p, const uint8_t *end)
{
	if (end - p < 3)
		return 0;
	switch (p[0]) {
	case 0xe1:
		return p[1] == 0x9a && p[2] == 0x80 ? 3 : 0;
	case 0xe2:
		if (p[1] == 0x80)
			return (p[2] >= 0x80 && p[2] <= 0x8a &&
			    p[2] != 0x87) || p[2] == 0xa8 || p[2] == 0xa9 ?
			    3 : 0;
		return p[1] == 0x81 && p[2] == 0x9f ? 3 : 0;
	case 0xe3:
		return p[1] == 0x80 && p[2] == 0x80 ? 3 : 0;
	}
	return 0;
}

/* Whether p is at the end of input, whitespace or a byte of class cls. */
static int
edn_delim(const uint8_t *p, const uint8_t *end, int cls)
{
	return p == end || (edn_class[*p] & (EDN_C_WS | cls)) ||
	    (*p >= 0x80 && edn_uniws(p, end) > 0);
}

/* 0-35 for [0-9a-zA-Z], else 99. */
static unsigned int
edn_digitval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return (unsigned int)(c - '0');
	if (c >= 'a' && c <= 'z')
		return (unsigned int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'Z')
		return (unsigned int)(c - 'A' + 10);
	return 99;
}

/* How many of the first n bytes of p are digits in base `base`. */
static size_t
edn_ndigits(const uint8_t *p, size_t n, unsigned int base)
{
	size_t	i;

	for (i = 0; i < n && edn_digitval(p[i]) < base; i++)
		;
	return i;
}

/* Four hex digits at p: returns 4 with *v set, else -1. */
static int
edn_hex4(const uint8_t *p, const uint8_t *end, uint32_t *v)
{
	if (end - p < 4 || edn_ndigits(p, 4, 16) != 4)
		return -1;
	*v = edn_digitval(p[0]) << 12 | edn_digitval(p[1]) << 8 |
	    edn_digitval(p[2]) << 4 | edn_digitval(p[3]);
	return 4;
}

/* ---- Forms ---- */

/*
 * Skip whitespace, commas, comments and #_ discarded forms (read at
 * depth + 1, so discarded text must be valid too, as in clojure.edn).
 * Most forms start right away: that case costs one table look-up.
 */
static inline int
edn_skip(struct edn_parser *ps, int depth)
{
	if (ps->e_p < ps->e_end && !(edn_class[*ps->e_p] & EDN_C_SKIP))
		return 0;
	return edn_skip_slow(ps, depth);
}

static int
edn_skip_slow(struct edn_parser *ps, int depth)
{
	const uint8_t	*p = ps->e_p, *end = ps->e_end, *c;
	size_t		 mark, n;

	for (;;) {
		while (p < end && (edn_class[*p] & EDN_C_WS))
			p++;
		if (p == end)
			break;
		if (*p == ';') {
			/* Java's reader ends a comment at CR too. */
			c = ++p;
			while (p < end && *p != '\n' && *p != '\r')
				p++;
			if (!utf8_valid(c, (size_t)(p - c)))
				return edn_error(ps, c - 1,
				    "invalid UTF-8 in comment");
			continue;
		}
		if (*p >= 0x80 && (n = edn_uniws(p, end)) > 0) {
			p += n;
			continue;
		}
		if (*p != '#' || end - p < 2 || p[1] != '_')
			break;
		if (edn_deeper(ps, depth, p) == -1)
			return -1;
		ps->e_p = p + 2;
		mark = ps->e_out->b_len;
		if (edn_value(ps, depth + 1) == -1)
			return -1;
		ps->e_out->b_len = mark;
		p = ps->e_p;
	}
	ps->e_p = p;
	return 0;
}

/*
 * Read one form at e_p (after whitespace) and append its JSON.  Returns
 * its kind, or -1 with the error set.
 */
static int
edn_value(struct edn_parser *ps, int depth)
{
	const uint8_t	*keyns = ps->e_keyns, *p;
	size_t		 keynslen = ps->e_keynslen;

	/* Only this form, if it is a keyword or symbol, takes the ns. */
	ps->e_keyns = NULL;
	if (edn_skip(ps, depth) == -1)
		return -1;
	p = ps->e_p;
	if (p == ps->e_end)
		return edn_error(ps, p, "unexpected end of input");
	switch (*p) {
	case '(':
	case '[':
		return edn_coll(ps, depth, p, EDN_K_SEQ, NULL, 0);
	case '{':
		return edn_coll(ps, depth, p, EDN_K_MAP, NULL, 0);
	case ')':
	case ']':
	case '}':
		return edn_error(ps, p, "unmatched delimiter '%c'", *p);
	case '"':
		return edn_string(ps);
	case '\\':
		return edn_char(ps);
	case '#':
		return edn_dispatch(ps, depth);
	case '^':
		ps->e_p++;
		return edn_meta(ps, depth, p);
	case '+':
	case '-':
		if (ps->e_end - p > 1 && p[1] >= '0' && p[1] <= '9')
			return edn_number(ps);
		break;
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return edn_number(ps);
	}
	return edn_symbol(ps, keyns, keynslen);
}

/*
 * A list or vector (EDN_K_SEQ), set or map from its opening bracket
 * `open`.  Set elements and map keys are checked for duplicates; map
 * keys become JSON strings (see edn.h), in namespace ns for #:ns{}.
 */
static int
edn_coll(struct edn_parser *ps, int depth, const uint8_t *open, int kind,
    const uint8_t *ns, size_t nslen)
{
	struct buf	*out = ps->e_out;
	const uint8_t	*at;
	const char	*what;
	size_t		 base = ps->e_nkeys, start, n = 0;
	uint8_t		 close;
	int		 k;

	if (edn_deeper(ps, depth, open) == -1)
		return -1;
	close = kind != EDN_K_SEQ ? '}' : *open == '(' ? ')' : ']';
	what = kind == EDN_K_MAP ? "map" : kind == EDN_K_SET ? "set" :
	    close == ']' ? "vector" : "list";
	ps->e_p = open + (kind == EDN_K_SET ? 2 : 1);
	edn_putc(out, kind == EDN_K_MAP ? '{' : '[');
	for (;;) {
		if (edn_skip(ps, depth + 1) == -1)
			return -1;
		if (ps->e_p == ps->e_end)
			return edn_error(ps, open, "unterminated %s", what);
		if (*ps->e_p == close)
			break;
		if (n++ > 0)
			edn_putc(out, ',');
		at = ps->e_p;
		start = out->b_len;
		if (kind == EDN_K_MAP) {
			ps->e_keyns = ns;
			ps->e_keynslen = nslen;
		}
		if ((k = edn_value(ps, depth + 1)) == -1)
			return -1;
		if (kind == EDN_K_SEQ)
			continue;
		if (kind == EDN_K_MAP && out->b_p[start] != '"')
			edn_stringify(ps, start);
		edn_key_push(ps, start, at, k);
		if (kind == EDN_K_SET)
			continue;
		edn_putc(out, ':');
		if (edn_skip(ps, depth + 1) == -1)
			return -1;
		if (ps->e_p == ps->e_end)
			return edn_error(ps, open, "unterminated map");
		if (*ps->e_p == '}')
			return edn_error(ps, ps->e_p,
			    "map literal must contain an even number of forms");
		if (edn_value(ps, depth + 1) == -1)
			return -1;
	}
	ps->e_p++;
	edn_putc(out, kind == EDN_K_MAP ? '}' : ']');
	if (kind != EDN_K_SEQ && edn_keys_check(ps, base,
	    kind == EDN_K_MAP ? "map key" : "set element") == -1)
		return -1;
	ps->e_nkeys = base;
	return kind;
}

/* Turn the JSON text written since `start` into a JSON string of it. */
static void
edn_stringify(struct edn_parser *ps, size_t start)
{
	struct buf	*out = ps->e_out, *tmp = &ps->e_tmp;

	buf_reset(tmp);
	buf_append(tmp, out->b_p + start, out->b_len - start);
	out->b_len = start;
	edn_putc(out, '"');
	edn_put_escaped(out, (const uint8_t *)tmp->b_p, tmp->b_len);
	edn_putc(out, '"');
}

/* ---- Duplicate keys and set elements ---- */

/* Remember the form written since off (started at input `at`). */
static void
edn_key_push(struct edn_parser *ps, size_t off, const uint8_t *at, int kind)
{
	struct edn_key	*k;

	if (ps->e_nkeys == ps->e_capkeys) {
		if (ps->e_keys == ps->e_keys0) {
			k = xcalloc(ps->e_capkeys * 2, sizeof(*k));
			memcpy(k, ps->e_keys0, sizeof(ps->e_keys0));
		} else
			k = xrealloc(ps->e_keys,
			    ps->e_capkeys * 2 * sizeof(*k));
		ps->e_keys = k;
		ps->e_capkeys *= 2;
	}
	k = &ps->e_keys[ps->e_nkeys++];
	k->k_off = off;
	k->k_len = ps->e_out->b_len - off;
	k->k_pos = (size_t)(at - ps->e_start);
	k->k_kind = kind;
}

static int
edn_key_eq(const struct buf *out, const struct edn_key *a,
    const struct edn_key *b)
{
	return a->k_kind == b->k_kind && a->k_len == b->k_len &&
	    memcmp(out->b_p + a->k_off, out->b_p + b->k_off, a->k_len) == 0;
}

/* FNV-1a of the kind and the text. */
static uint64_t
edn_key_hash(const struct buf *out, const struct edn_key *k)
{
	const uint8_t	*p = (const uint8_t *)out->b_p + k->k_off;
	uint64_t	 h = 0xcbf29ce484222325ULL ^ (uint64_t)k->k_kind;
	size_t		 i;

	for (i = 0; i < k->k_len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * clojure.edn rejects a map or set with two equal keys.  Equal here is
 * same kind and same JSON text: 1, 1N and 0x1 are equal, as in Clojure;
 * numbers written differently (1.5, 1.50) and sets or maps in another
 * order are not seen as equal.
 */
static int
edn_keys_check(struct edn_parser *ps, size_t base, const char *what)
{
	const struct buf	*out = ps->e_out;
	const struct edn_key	*k = ps->e_keys + base;
	size_t			 n = ps->e_nkeys - base, i, j, size, h;
	uint32_t		*slot;

	if (n <= EDN_KEYS_PAIRWISE) {
		for (i = 1; i < n; i++)
			for (j = 0; j < i; j++)
				if (edn_key_eq(out, &k[i], &k[j]))
					return edn_key_dup(ps, &k[i], what);
		return 0;
	}
	for (size = 64; size < 2 * n; size *= 2)
		;
	slot = xcalloc(size, sizeof(*slot));
	for (i = 0; i < n; i++) {
		h = (size_t)edn_key_hash(out, &k[i]) & (size - 1);
		for (; slot[h] != 0; h = (h + 1) & (size - 1)) {
			if (edn_key_eq(out, &k[i], &k[slot[h] - 1])) {
				free(slot);
				return edn_key_dup(ps, &k[i], what);
			}
		}
		slot[h] = (uint32_t)i + 1;
	}
	free(slot);
	return 0;
}

/* "duplicate map key "a" at offset 9", the key cut to a few bytes. */
static int
edn_key_dup(struct edn_parser *ps, const struct edn_key *k,
    const char *what)
{
	const char	*text = ps->e_out->b_p + k->k_off;
	size_t		 n = k->k_len;

	if (n > EDN_KEY_QUOTE) {
		n = EDN_KEY_QUOTE;
		while (n > 0 && (text[n] & 0xc0) == 0x80)
			n--;
	}
	return edn_error(ps, ps->e_start + k->k_pos, "duplicate %s %.*s%s",
	    what, (int)n, text, n < k->k_len ? "..." : "");
}

/* ---- Strings and characters ---- */

static int
edn_string(struct edn_parser *ps)
{
	struct buf	*out = ps->e_out;
	const uint8_t	*open = ps->e_p, *p = open + 1, *end = ps->e_end;
	const uint8_t	*run;
	size_t		 n;

	edn_putc(out, '"');
	for (;;) {
		/* Printable ASCII and valid UTF-8 are copied in runs. */
		run = p;
		while (p < end) {
			if (edn_class[*p] & EDN_C_PLAIN)
				p++;
			else if (*p >= 0x80 && (n = edn_utf8_len(p, end)) > 0)
				p += n;
			else
				break;
		}
		buf_append(out, run, (size_t)(p - run));
		if (p == end)
			return edn_error(ps, open, "unterminated string");
		if (*p == '"')
			break;
		if (*p >= 0x80)
			return edn_error(ps, p, "invalid UTF-8 in string");
		if (*p == '\\') {
			if (edn_string_escape(ps, &p) == -1)
				return -1;
		} else
			edn_put_ctl(out, *p++);	/* raw newline, tab... */
	}
	edn_putc(out, '"');
	ps->e_p = p + 1;
	return EDN_K_STRING;
}

/*
 * The escape at *pp (a backslash) in a string: clojure.edn's \t \r \n
 * \\ \" \b \f, \uXXXX (exactly four hex digits; surrogates only as a
 * valid pair) and octal \o, \oo, \ooo up to \377.
 */
static int
edn_string_escape(struct edn_parser *ps, const uint8_t **pp)
{
	const uint8_t	*esc = *pp, *p = esc + 1, *end = ps->e_end;
	uint32_t	 cp, lo;
	int		 n;

	if (p == end)
		return edn_error(ps, ps->e_p, "unterminated string");
	switch (*p) {
	case 't':
		cp = '\t';
		break;
	case 'r':
		cp = '\r';
		break;
	case 'n':
		cp = '\n';
		break;
	case 'b':
		cp = '\b';
		break;
	case 'f':
		cp = '\f';
		break;
	case '\\':
	case '"':
		cp = *p;
		break;
	case 'u':
		if (edn_hex4(p + 1, end, &cp) == -1)
			return edn_error(ps, esc, "invalid \\u escape");
		p += 4;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return edn_error(ps, esc, "unpaired surrogate");
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (end - p < 3 || p[1] != '\\' || p[2] != 'u' ||
			    edn_hex4(p + 3, end, &lo) == -1 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return edn_error(ps, esc,
				    "unpaired surrogate");
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		}
		break;
	default:
		/*
		 * Octal: one to three digits, ended early only by
		 * whitespace or a delimiter, as Java's reader does.
		 */
		for (n = 0, cp = 0; n < 3 && p < end; n++, p++) {
			if (*p < '0' || *p > '7') {
				if (n == 0 || !edn_delim(p, end, EDN_C_MACRO))
					return edn_error(ps, esc,
					    "invalid escape in string");
				break;
			}
			cp = cp * 8 + (uint32_t)(*p - '0');
		}
		if (cp > 0377)
			return edn_error(ps, esc,
			    "octal escape out of range [0, 377]");
		*pp = p;
		edn_put_cp(ps->e_out, cp);
		return 0;
	}
	*pp = p + 1;
	edn_put_cp(ps->e_out, cp);
	return 0;
}

/*
 * A character: \c for any one character up to U+FFFF (a Java char),
 * \newline \space \tab \backspace \formfeed \return, \uXXXX (not a
 * surrogate) and \o, \oo, \ooo up to \o377.  Becomes a JSON string.
 */
static int
edn_char(struct edn_parser *ps)
{
	static const struct {
		const char	*name;
		uint32_t	 cp;
	} names[] = {
		{ "newline", '\n' }, { "space", ' ' }, { "tab", '\t' },
		{ "backspace", '\b' }, { "formfeed", '\f' },
		{ "return", '\r' }
	};
	const uint8_t	*bs = ps->e_p, *tok = bs + 1, *p, *end = ps->e_end;
	size_t		 n = 1, len, i;
	uint32_t	 cp = 0;
	int		 flags;

	if (tok == end)
		return edn_error(ps, bs, "unexpected end of input");
	/* The first character is taken whatever it is: \( \; \, */
	if (*tok >= 0x80 && (n = edn_utf8_len(tok, end)) == 0)
		return edn_error(ps, tok, "invalid UTF-8");
	if ((p = edn_token_end(ps, tok + n, &flags)) == NULL)
		return -1;
	len = (size_t)(p - tok);
	if (len == n) {
		if ((cp = edn_utf8_decode(tok, n)) > 0xffff)
			return edn_error(ps, bs, "unsupported character");
		goto out;
	}
	for (i = 0; i < nitems(names); i++)
		if (len == strlen(names[i].name) &&
		    memcmp(tok, names[i].name, len) == 0) {
			cp = names[i].cp;
			goto out;
		}
	if (*tok == 'u') {
		if (len != 5 || edn_hex4(tok + 1, p, &cp) == -1 ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return edn_error(ps, bs, "invalid character constant");
	} else if (*tok == 'o') {
		if (len > 4 || edn_ndigits(tok + 1, len - 1, 8) != len - 1)
			return edn_error(ps, bs, "invalid octal character");
		for (i = 1; i < len; i++)
			cp = cp * 8 + (uint32_t)(tok[i] - '0');
		if (cp > 0377)
			return edn_error(ps, bs,
			    "octal character out of range [0, 377]");
	} else
		return edn_error(ps, bs, "unsupported character");
out:
	edn_putc(ps->e_out, '"');
	edn_put_cp(ps->e_out, cp);
	edn_putc(ps->e_out, '"');
	ps->e_p = p;
	return EDN_K_CHAR;
}

/* ---- Symbols and keywords ---- */

/*
 * The end of a token whose rest starts at p: the first whitespace or
 * terminating macro character.  *flags tells which of ':', '/' and
 * control characters it holds.  NULL (error set) on invalid UTF-8 or on
 * @ ` ~, which clojure.edn refuses in tokens.
 */
static const uint8_t *
edn_token_end(struct edn_parser *ps, const uint8_t *p, int *flags)
{
	const uint8_t	*end = ps->e_end;
	size_t		 n;

	*flags = 0;
	for (;;) {
		while (p < end && (edn_class[*p] & EDN_C_SYM))
			p++;
		if (p == end || (edn_class[*p] & (EDN_C_WS | EDN_C_TERM)))
			return p;
		if (*p >= 0x80) {
			if (edn_uniws(p, end) > 0)
				return p;
			if ((n = edn_utf8_len(p, end)) == 0) {
				edn_error(ps, p, "invalid UTF-8");
				return NULL;
			}
			p += n;
			continue;
		}
		if (*p == '@' || *p == '`' || *p == '~') {
			edn_error(ps, p, "invalid constituent character '%c'",
			    *p);
			return NULL;
		}
		*flags |= *p == ':' ? EDN_T_COLON : *p == '/' ? EDN_T_SLASH :
		    EDN_T_CTL;
		p++;
	}
}

/*
 * Match t[0..n) against clojure.edn's ([\D&&[^/]].*\/)?(\/|[\D&&[^/]][^/]*):
 * returns 1 with *slash at the '/' ending the namespace (n if none), or
 * 0.  The namespace takes all but the name, which has no '/' or is "/".
 */
static int
edn_symbol_split(const uint8_t *t, size_t n, size_t *slash)
{
	const uint8_t	*last;

	*slash = n;
	if (n == 1 && t[0] == '/')
		return 1;
	if (n == 0 || t[0] == '/' || (t[0] >= '0' && t[0] <= '9'))
		return 0;
	for (last = t + n - 1; last > t && *last != '/'; last--)
		;
	if (last == t)
		return 1;
	if (last < t + n - 1) {
		*slash = (size_t)(last - t);
		return last[1] < '0' || last[1] > '9';
	}
	/* Ends in '/': only "ns//", the symbol / in a namespace. */
	*slash = n - 2;
	return n >= 3 && t[n - 2] == '/';
}

/*
 * A symbol or (with a leading ':') keyword clojure.edn accepts: the
 * pattern above after an optional ':' (":1" matches with the colon in
 * the name), no "::" anywhere, no ':' ending the name or namespace.
 */
static int
edn_symbol_valid(const uint8_t *s, size_t n)
{
	size_t	i, slash;
	int	colon = s[0] == ':';

	for (i = 0; i + 1 < n; i++)
		if (s[i] == ':' && s[i + 1] == ':')
			return 0;
	if (colon && edn_symbol_split(s + 1, n - 1, &slash))
		slash++;
	else if (!edn_symbol_split(s, n, &slash))
		return 0;
	if (s[n - 1] == ':')
		return 0;
	return slash == n || s[slash - 1] != ':';
}

/* 1 for nil, true or false, else 0. */
static int
edn_literal(const uint8_t *s, size_t n)
{
	return (n == 3 && memcmp(s, "nil", 3) == 0) ||
	    (n == 4 && memcmp(s, "true", 4) == 0) ||
	    (n == 5 && memcmp(s, "false", 5) == 0);
}

/*
 * nil, true, false, a symbol or a keyword (a string without the colon).
 * ns: namespace to give a keyword or symbol without one, as a key of
 * #:ns{} (where "_/" removes it), or NULL.
 */
static int
edn_symbol(struct edn_parser *ps, const uint8_t *ns, size_t nslen)
{
	struct buf	*out = ps->e_out;
	const uint8_t	*s = ps->e_p, *p, *slash;
	size_t		 n;
	int		 kw = s[0] == ':', flags;

	/* A keyword's own colon is not among the flags. */
	if ((p = edn_token_end(ps, s + kw, &flags)) == NULL)
		return -1;
	n = (size_t)(p - s);
	ps->e_p = p;
	if (!kw && edn_literal(s, n)) {
		buf_appends(out, s[0] == 'n' ? "null" : s[0] == 't' ?
		    "true" : "false");
		return s[0] == 'n' ? EDN_K_NIL : EDN_K_BOOL;
	}
	/* With no ':' or '/' after the start, only ":" is invalid. */
	if ((flags & (EDN_T_COLON | EDN_T_SLASH)) != 0 ?
	    !edn_symbol_valid(s, n) : n == (size_t)kw)
		return edn_error(ps, s, "invalid token");
	s += kw;
	n -= (size_t)kw;
	edn_putc(out, '"');
	if (ns != NULL) {
		slash = n > 1 && (flags & EDN_T_SLASH) ? memchr(s, '/', n) :
		    NULL;
		if (slash == NULL) {
			edn_put_escaped(out, ns, nslen);
			edn_putc(out, '/');
		} else if (slash == s + 1 && s[0] == '_') {
			s += 2;
			n -= 2;
		}
	}
	if (flags & EDN_T_CTL)
		edn_put_escaped(out, s, n);
	else
		buf_append(out, s, n);
	edn_putc(out, '"');
	return kw ? EDN_K_KEYWORD : EDN_K_SYMBOL;
}

/* ---- Numbers ---- */

/*
 * A number, matched as clojure.edn does, first as an integer
 * [-+]?(0|[1-9][0-9]*|0[xX][0-9A-Fa-f]+|0[0-7]+|
 * [1-9][0-9]?[rR][0-9A-Za-z]+|0[0-9]+)N? (the last form is an error,
 * and the digits of the radix form take a trailing N), then as a float
 * [-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?M?, then as a ratio
 * [-+]?[0-9]+/[0-9]+.
 */
static int
edn_number(struct edn_parser *ps)
{
	const uint8_t	*s = ps->e_p, *d = s, *end = ps->e_end, *p = s;
	size_t		 n, m, k, i;
	unsigned int	 radix;
	int		 neg = 0;

	while (!edn_delim(p, end, EDN_C_MACRO))
		p++;
	ps->e_p = p;
	n = (size_t)(p - s);
	if (*d == '+' || *d == '-') {
		neg = *d++ == '-';
		n--;
	}
	/* Radix ("36rN" is 23). */
	k = edn_ndigits(d, n, 10);
	if (d[0] != '0' && (k == 1 || k == 2) && n > k + 1 &&
	    (d[k] == 'r' || d[k] == 'R') &&
	    edn_ndigits(d + k + 1, n - k - 1, 36) == n - k - 1) {
		radix = k == 1 ? edn_digitval(d[0]) :
		    edn_digitval(d[0]) * 10 + edn_digitval(d[1]);
		if (radix < 2 || radix > 36)
			return edn_error(ps, s, "radix out of range");
		return edn_put_radix(ps, s, neg, d + k + 1, n - k - 1, radix);
	}
	m = n - (d[n - 1] == 'N');
	if (k == m) {
		if (d[0] != '0') {
			if (neg)
				edn_putc(ps->e_out, '-');
			buf_append(ps->e_out, d, m);
			return EDN_K_INT;
		}
		if (edn_ndigits(d + 1, m - 1, 8) != m - 1)
			return edn_error(ps, s, "invalid number");
		return edn_put_radix(ps, s, neg, d + 1, m - 1, 8);
	}
	if (m > 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'X') &&
	    edn_ndigits(d + 2, m - 2, 16) == m - 2)
		return edn_put_radix(ps, s, neg, d + 2, m - 2, 16);

	/* Float. */
	i = k;
	if (i < n && d[i] == '.')
		i += 1 + edn_ndigits(d + i + 1, n - i - 1, 10);
	if (i < n && (d[i] == 'e' || d[i] == 'E')) {
		m = i + 1 + (i + 1 < n && (d[i + 1] == '+' || d[i + 1] == '-'));
		i = m + edn_ndigits(d + m, n - m, 10);
		if (i == m)
			i = n + 1;	/* "1e": no match */
	}
	if (i == n || (i + 1 == n && d[i] == 'M'))
		return edn_put_float(ps, neg, d, i, i < n);

	/* Ratio. */
	if (k < n && d[k] == '/' && k + 1 < n &&
	    edn_ndigits(d + k + 1, n - k - 1, 10) == n - k - 1)
		return edn_put_ratio(ps, s, neg, d, k, d + k + 1, n - k - 1);
	return edn_error(ps, s, "invalid number");
}

/*
 * The digits d[0..n) in base radix as a decimal JSON integer.  noinline:
 * its limbs stay off the recursion's stack frames.
 */
static __attribute__((noinline)) int
edn_put_radix(struct edn_parser *ps, const uint8_t *at, int neg,
    const uint8_t *d, size_t n, unsigned int radix)
{
	uint32_t	 limb[EDN_RADIX_LIMBS];	/* base 10^9, low first */
	uint64_t	 carry;
	size_t		 nl = 0, i, k;
	unsigned int	 v;

	if (n > EDN_RADIX_DIGITS)
		return edn_error(ps, at, "number too long");
	for (i = 0; i < n; i++) {
		if ((v = edn_digitval(d[i])) >= radix)
			return edn_error(ps, at, "invalid digit for radix %u",
			    radix);
		carry = v;
		for (k = 0; k < nl; k++) {
			carry += (uint64_t)limb[k] * radix;
			limb[k] = (uint32_t)(carry % 1000000000);
			carry /= 1000000000;
		}
		if (carry > 0)
			limb[nl++] = (uint32_t)carry;
	}
	if (nl == 0) {
		edn_putc(ps->e_out, '0');	/* -0 is 0 */
		return EDN_K_INT;
	}
	buf_printf(ps->e_out, "%s%u", neg ? "-" : "", limb[nl - 1]);
	for (k = nl - 1; k-- > 0;)
		buf_printf(ps->e_out, "%09u", limb[k]);
	return EDN_K_INT;
}

/*
 * A float d[0..n) (no sign, no M) as JSON: no leading zeros, a digit
 * after the point ("1." is 1.0), the text kept otherwise (the receiver
 * rounds it as Clojure would).  A double beyond the range of doubles is
 * "Infinity" or "-Infinity", as ##Inf.
 */
static int
edn_put_float(struct edn_parser *ps, int neg, const uint8_t *d, size_t n,
    int decimal)
{
	struct buf	*out = ps->e_out;
	size_t		 mark = out->b_len, i = 0, k, e;
	long		 digits, exp = 0;
	double		 v;

	if (neg)
		edn_putc(out, '-');
	while (i + 1 < n && d[i] == '0' && d[i + 1] >= '0' && d[i + 1] <= '9')
		i++;
	k = edn_ndigits(d + i, n - i, 10);
	buf_append(out, d + i, k);
	digits = (long)k;
	i += k;
	if (i < n && d[i] == '.') {
		k = edn_ndigits(d + i + 1, n - i - 1, 10);
		if (k == 0)
			buf_appends(out, ".0");
		else
			buf_append(out, d + i, k + 1);
		i += k + 1;
	}
	buf_append(out, d + i, n - i);
	if (decimal)
		return EDN_K_DECIMAL;
	for (e = i + 1 + (i + 1 < n && d[i + 1] < '0'); e < n; e++)
		if (exp < 100000)
			exp = exp * 10 + (d[e] - '0');
	if (i + 1 < n && d[i + 1] == '-')
		exp = -exp;
	/* Below 10^308 it cannot overflow, and strtod() is slow. */
	if (digits + exp > 308) {
		v = strtod(buf_cstr(out) + mark, NULL);
		if (isinf(v)) {
			out->b_len = mark;
			edn_put_inf(out, neg);
		}
	}
	return EDN_K_FLOAT;
}

/*
 * The ratio num/den: a JSON integer when it is a whole number (as Clojure
 * reads 4/2 as 2), else the nearest double printed with %.17g.  The
 * numerator is divided digit by digit, exactly when the denominator has
 * at most EDN_MANTISSA_DIGITS significant digits; a longer one is cut to
 * that many (the ratio is then within 1e-17 of its value).
 */
static __attribute__((noinline)) int
edn_put_ratio(struct edn_parser *ps, const uint8_t *at, int neg,
    const uint8_t *num, size_t nn, const uint8_t *den, size_t dn)
{
	struct buf	*out = ps->e_out, *q = &ps->e_tmp;
	char		 text[128];
	uint64_t	 dm = 0, r = 0;
	size_t		 i, ed, kept;
	int		 len, exact = 1;
	double		 v;

	for (; nn > 0 && *num == '0'; num++, nn--)
		;
	for (; dn > 0 && *den == '0'; den++, dn--)
		;
	if (dn == 0)
		return edn_error(ps, at, "divide by zero");
	if (nn == 0) {
		edn_putc(out, '0');
		return EDN_K_INT;
	}
	/* den is dm * 10^ed (exactly if `exact`). */
	ed = dn > EDN_MANTISSA_DIGITS ? dn - EDN_MANTISSA_DIGITS : 0;
	for (i = 0; i < dn; i++) {
		if (i < dn - ed)
			dm = dm * 10 + (uint64_t)(den[i] - '0');
		else if (den[i] != '0')
			exact = 0;
	}
	/* q = num / dm, no leading zeros; r = num % dm. */
	buf_reset(q);
	for (i = 0; i < nn; i++) {
		r = r * 10 + (uint64_t)(num[i] - '0');
		if (q->b_len > 0 || r >= dm)
			edn_putc(q, (char)('0' + r / dm));
		r %= dm;
	}
	/* Whole: no remainder, and q ends in the ed zeros to drop. */
	for (i = 0; exact && r == 0 && i < ed && i < q->b_len &&
	    q->b_p[q->b_len - 1 - i] == '0'; i++)
		;
	if (exact && r == 0 && i == ed && q->b_len > ed) {
		if (neg)
			edn_putc(out, '-');
		buf_append(out, q->b_p, q->b_len - ed);
		return EDN_K_INT;
	}
	if (q->b_len > ed + 310) {
		edn_put_inf(out, neg);
		return EDN_K_RATIO;
	}
	/* 40 significant digits (60 places after the point) for strtod(). */
	kept = q->b_len < 40 ? q->b_len : 40;
	len = snprintf(text, sizeof(text), "%s%.*s.", neg ? "-" : "",
	    (int)(kept > 0 ? kept : 1), kept > 0 ? q->b_p : "0");
	for (i = 0; kept == q->b_len && i < 60 && r != 0; i++) {
		r *= 10;
		text[len++] = (char)('0' + r / dm);
		r %= dm;
	}
	snprintf(text + len, sizeof(text) - (size_t)len, "e%ld",
	    (long)(q->b_len - kept) - (long)ed);
	v = strtod(text, NULL);
	if (isinf(v))
		edn_put_inf(out, neg);
	else
		buf_printf(out, "%.17g", v);
	return EDN_K_RATIO;
}

/* ---- # dispatch, metadata, tags ---- */

static int
edn_dispatch(struct edn_parser *ps, int depth)
{
	const uint8_t	*hash = ps->e_p;

	if (ps->e_end - hash < 2)
		return edn_error(ps, hash, "unexpected end of input");
	switch (hash[1]) {
	case '{':
		return edn_coll(ps, depth, hash, EDN_K_SET, NULL, 0);
	case '#':
		ps->e_p += 2;
		return edn_symval(ps, depth, hash);
	case '^':
		ps->e_p += 2;
		return edn_meta(ps, depth, hash);
	case ':':
		ps->e_p += 2;
		return edn_nsmap(ps, depth, hash);
	case '<':
		return edn_error(ps, hash, "unreadable form");
	}
	ps->e_p++;
	return edn_tagged(ps, depth, hash);
}

/*
 * The form after ## or #: (whitespace, comments and discards may come
 * first), which must be a symbol: *sym and *len are its text.
 */
static int
edn_form_symbol(struct edn_parser *ps, int depth, const uint8_t *at,
    const char *what, const uint8_t **sym, size_t *len)
{
	size_t	mark = ps->e_out->b_len;
	int	k;

	if (edn_deeper(ps, depth, at) == -1 || edn_skip(ps, depth + 1) == -1)
		return -1;
	*sym = ps->e_p;
	if ((k = edn_value(ps, depth + 1)) == -1)
		return -1;
	ps->e_out->b_len = mark;
	if (k != EDN_K_SYMBOL)
		return edn_error(ps, at, "%s must be followed by a symbol",
		    what);
	*len = (size_t)(ps->e_p - *sym);
	return 0;
}

/* ##Inf ##-Inf ##NaN: JSON has no such numbers; Jackson's strings. */
static int
edn_symval(struct edn_parser *ps, int depth, const uint8_t *at)
{
	const uint8_t	*sym;
	size_t		 n;

	if (edn_form_symbol(ps, depth, at, "##", &sym, &n) == -1)
		return -1;
	if ((n == 3 && memcmp(sym, "Inf", 3) == 0) ||
	    (n == 4 && memcmp(sym, "-Inf", 4) == 0))
		edn_put_inf(ps->e_out, n == 4);
	else if (n == 3 && memcmp(sym, "NaN", 3) == 0)
		buf_appends(ps->e_out, "\"NaN\"");
	else
		return edn_error(ps, at, "unknown symbolic value");
	return EDN_K_SYMVAL;
}

/*
 * ^meta form or #^meta form: the metadata (a symbol, keyword, string or
 * map) is read and dropped; the form must be able to carry it.
 */
static int
edn_meta(struct edn_parser *ps, int depth, const uint8_t *at)
{
	size_t	mark = ps->e_out->b_len;
	int	k;

	if (edn_deeper(ps, depth, at) == -1 ||
	    (k = edn_value(ps, depth + 1)) == -1)
		return -1;
	ps->e_out->b_len = mark;
	if (k != EDN_K_SYMBOL && k != EDN_K_KEYWORD && k != EDN_K_STRING &&
	    k != EDN_K_MAP)
		return edn_error(ps, at,
		    "metadata must be a symbol, keyword, string or map");
	if ((k = edn_value(ps, depth + 1)) == -1)
		return -1;
	if (k != EDN_K_SYMBOL && k != EDN_K_SEQ && k != EDN_K_MAP &&
	    k != EDN_K_SET)
		return edn_error(ps, at,
		    "metadata can only be applied to collections and symbols");
	return k;
}

/* #:ns{:a 1 :_/b 2 :c/d 3} is {:ns/a 1, :b 2, :c/d 3}. */
static int
edn_nsmap(struct edn_parser *ps, int depth, const uint8_t *at)
{
	const uint8_t	*ns, *p;
	size_t		 n, slash;

	if (edn_form_symbol(ps, depth, at, "#:", &ns, &n) == -1)
		return -1;
	if (edn_symbol_split(ns, n, &slash) && slash != n)
		return edn_error(ps, at,
		    "namespaced map must specify a valid namespace");
	/* Only whitespace before the map, as in clojure.edn. */
	for (p = ps->e_p; p < ps->e_end && *p != '{' &&
	    edn_delim(p, ps->e_end, 0); p += *p < 0x80 ? 1 : 3)
		;
	if (p == ps->e_end || *p != '{')
		return edn_error(ps, at, "namespaced map must specify a map");
	return edn_coll(ps, depth, p, EDN_K_MAP, ns, n);
}

/*
 * #tag form: clojure.edn needs a letter after '#'.  #inst and #uuid take
 * a string, checked as Clojure's readers check it and kept as written;
 * any other tag is its form converted.
 */
static int
edn_tagged(struct edn_parser *ps, int depth, const uint8_t *hash)
{
	const uint8_t	*tag = ps->e_p, *p;
	const char	*s;
	size_t		 n, mark = ps->e_out->b_len;
	int		 k, flags;

	if ((*tag | 0x20) < 'a' || ((*tag | 0x20) > 'z' && *tag < 0x80))
		return edn_error(ps, hash, "no dispatch macro for '#%c'",
		    *tag >= 0x20 && *tag < 0x7f ? *tag : '?');
	if ((p = edn_token_end(ps, tag, &flags)) == NULL)
		return -1;
	n = (size_t)(p - tag);
	if (edn_literal(tag, n) || !edn_symbol_valid(tag, n))
		return edn_error(ps, hash, "reader tag must be a symbol");
	ps->e_p = p;
	if (edn_deeper(ps, depth, hash) == -1 ||
	    (k = edn_value(ps, depth + 1)) == -1)
		return -1;
	if ((n == 4 && memcmp(tag, "inst", 4) == 0) ||
	    (n == 4 && memcmp(tag, "uuid", 4) == 0)) {
		if (k != EDN_K_STRING)
			return edn_error(ps, hash, "#%.4s expects a string",
			    tag);
		s = ps->e_out->b_p + mark + 1;
		n = ps->e_out->b_len - mark - 2;
		if (tag[0] == 'i' && !edn_inst_valid(s, n))
			return edn_error(ps, hash, "invalid #inst timestamp");
		if (tag[0] == 'u' && !edn_uuid_valid(s, n))
			return edn_error(ps, hash, "invalid #uuid");
		return tag[0] == 'i' ? EDN_K_INST : EDN_K_UUID;
	}
	return k;
}

/* ---- #inst and #uuid ---- */

/*
 * Timestamp fields after the year, greedily: "-MM", "-DD", "THH",
 * ":MM", ":SS".  end[i] is where the text ends with i + 1 fields.
 * Returns the count of fields (1 for the year alone), 0 if no year.
 */
static int
edn_fields(const char **end, const char *lim, int nmax, int *f)
{
	static const char	 sep[] = "--T::";
	const char		*p = end[0];
	int			 i;

	if (lim - p < 4 || edn_ndigits((const uint8_t *)p, 4, 10) != 4)
		return 0;
	f[0] = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 +
	    (p[3] - '0');
	end[0] = p + 4;
	for (i = 1; i < nmax; i++) {
		p = end[i - 1];
		if (lim - p < 3 || p[0] != sep[i - 1] ||
		    edn_ndigits((const uint8_t *)p + 1, 2, 10) != 2)
			break;
		f[i] = (p[1] - '0') * 10 + (p[2] - '0');
		end[i] = p + 3;
	}
	return i;
}

/* After the fields: [.fraction] (seconds only), then [Z|(+|-)HH:MM]. */
static int
edn_inst_tail(const char *p, const char *lim, int seconds)
{
	if (seconds && p < lim && *p == '.') {
		p++;
		if (edn_ndigits((const uint8_t *)p, (size_t)(lim - p), 10) == 0)
			return 0;
		p += edn_ndigits((const uint8_t *)p, (size_t)(lim - p), 10);
	}
	if (p < lim && *p == 'Z')
		p++;
	else if (p < lim && (*p == '+' || *p == '-')) {
		if (lim - p < 6 || p[3] != ':' ||
		    edn_ndigits((const uint8_t *)p + 1, 2, 10) != 2 ||
		    edn_ndigits((const uint8_t *)p + 4, 2, 10) != 2 ||
		    (p[1] - '0') * 10 + (p[2] - '0') > 23 ||
		    (p[4] - '0') * 10 + (p[5] - '0') > 59)
			return 0;
		p += 6;
	}
	return p == lim;
}

/*
 * clojure.instant's RFC 3339 subset,
 * YYYY[-MM[-DD[THH[:MM[:SS[.f+]]]]]][Z|(+|-)HH:MM], and its range checks.
 * As with its regex, a field that leaves no valid tail is given back
 * ("2020-05:00" is the year 2020 at offset -05:00).
 */
static int
edn_inst_valid(const char *s, size_t n)
{
	static const int	 mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31,
	    30, 31, 30, 31 };
	const char		*end[6];
	int			 f[6], nf, leap;

	end[0] = s;
	if ((nf = edn_fields(end, s + n, 6, f)) == 0)
		return 0;
	for (; nf > 0; nf--)
		if (edn_inst_tail(end[nf - 1], s + n, nf == 6))
			break;
	if (nf == 0)
		return 0;
	leap = f[0] % 4 == 0 && (f[0] % 100 != 0 || f[0] % 400 == 0);
	if (nf > 1 && (f[1] < 1 || f[1] > 12))
		return 0;
	if (nf > 2 && (f[2] < 1 || f[2] > mdays[f[1] - 1] +
	    (f[1] == 2 && leap)))
		return 0;
	if (nf > 3 && f[3] > 23)
		return 0;
	if (nf > 4 && f[4] > 59)
		return 0;
	return nf < 6 || f[5] <= (f[4] == 59 ? 60 : 59);
}

/*
 * java.util.UUID.fromString(): five groups of hex digits separated by
 * '-', at most 36 characters.
 */
static int
edn_uuid_valid(const char *s, size_t n)
{
	size_t	i, digits = 0;
	int	groups = 1;

	if (n > 36)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '-') {
			if (digits == 0)
				return 0;
			groups++;
			digits = 0;
		} else if (edn_digitval((uint8_t)s[i]) < 16)
			digits++;
		else
			return 0;
	}
	return groups == 5 && digits > 0;
}

/* ---- Entry point ---- */

int
edn_to_json(const char *text, size_t len, struct buf *out, char *err,
    size_t errlen)
{
	struct edn_parser	 ps;
	int			 rc = -1;

	memset(&ps, 0, offsetof(struct edn_parser, e_keys0));
	ps.e_start = (const uint8_t *)(text != NULL ? text : "");
	ps.e_p = ps.e_start;
	ps.e_end = ps.e_start + (text != NULL ? len : 0);
	ps.e_out = out;
	ps.e_keys = ps.e_keys0;
	ps.e_capkeys = EDN_KEYS_INLINE;
	ps.e_err = err;
	ps.e_errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	/* JSON is about as long as the EDN it comes from. */
	buf_reserve(out, len);
	if (edn_skip(&ps, 0) == 0) {
		if (ps.e_p == ps.e_end)
			edn_error(&ps, ps.e_p, "no value");
		else if (edn_value(&ps, 0) != -1 && edn_skip(&ps, 0) == 0) {
			if (ps.e_p != ps.e_end)
				edn_error(&ps, ps.e_p,
				    "trailing data after the value");
			else
				rc = 0;
		}
	}
	buf_free(&ps.e_tmp);
	if (ps.e_keys != ps.e_keys0)
		free(ps.e_keys);
	return rc;
}
