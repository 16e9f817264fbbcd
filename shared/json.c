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
 * RFC 8259 JSON: jsmn tokenises, then one walk over the tokens checks
 * everything jsmn lets through and picks out the request's fields.
 */
#include "autoconf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jsmn.h>	/* the one file that gets jsmn's implementation */

#include "buf.h"
#include "json.h"
#include "utf8.h"
#include "util.h"

/*
 * jsmn is called for at most JSON_TOK_STEP more tokens at a time, so
 * that its parent chains can be measured between calls (see
 * json_tokenize()).  The token array starts at JSON_TOK_MIN entries,
 * enough for any usual request, and one that grew past JSON_TOK_KEEP
 * for a large text is released after it.
 */
#define JSON_TOK_STEP	64
#define JSON_TOK_MIN	256
#define JSON_TOK_KEEP	16384

/*
 * Longest parent chain in a JSON_MAX_DEPTH-deep valid text: every level
 * an object and its key, then the innermost value.
 */
#define JSON_CHAIN_MAX	(2 * JSON_MAX_DEPTH + 1)

#if JSON_MAX_TEXT > INT_MAX - JSON_TOK_STEP
#error "jsmn keeps offsets and token counts in ints"
#endif

#define JSON_WS(c)	((c) == ' ' || (c) == '\t' || (c) == '\n' || \
	(c) == '\r')

/* Word-at-a-time byte tests (exact as a whole-word predicate). */
#define W_ONES		0x0101010101010101ULL
#define W_HIGH		0x8080808080808080ULL
#define W_LESS(w, n)	(((w) - W_ONES * (n)) & ~(w) & W_HIGH)
#define W_BYTE(w, c)	W_LESS((w) ^ (W_ONES * (c)), 1)
/* A control character, '"' or '\\'. */
#define W_SPECIAL(w)	(W_LESS(w, 0x20) | W_BYTE(w, '"') | W_BYTE(w, '\\'))
/* Mask of the first n (1-7) bytes of a word loaded with memcpy. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define W_FIRST(n)	(~0ULL >> (64 - 8 * (n)))
#else
#define W_FIRST(n)	(~0ULL << (64 - 8 * (n)))
#endif

/* Reasons (json.h lists them for callers). */
static const char R_NOTJSON[] = "not JSON";
static const char R_LARGE[] = "too large";
static const char R_SYNTAX[] = "invalid JSON: syntax error";
static const char R_TRUNC[] = "invalid JSON: truncated";
static const char R_COMMA[] = "invalid JSON: expected ','";
static const char R_COLON[] = "invalid JSON: expected ':'";
static const char R_XCOMMA[] = "invalid JSON: unexpected ','";
static const char R_XCOLON[] = "invalid JSON: unexpected ':'";
static const char R_TRAIL[] = "invalid JSON: text after the value";
static const char R_NUMBER[] = "invalid JSON: bad number";
static const char R_LITERAL[] = "invalid JSON: bad literal";
static const char R_CTRL[] = "invalid JSON: control character in string";
static const char R_ESCAPE[] = "invalid JSON: bad escape";
static const char R_SURROGATE[] = "invalid JSON: lone surrogate";
static const char R_UTF8[] = "invalid JSON: not UTF-8";
static const char R_DEEP[] = "nesting too deep";
static const char R_OBJECT[] = "not an object";
static const char R_DUP[] = "duplicate key";
static const char R_ID_TYPE[] = "id must be a string or a number";
static const char R_UID_MISSING[] = "missing user-id";
static const char R_UID_EMPTY[] = "user-id is empty";
static const char R_UID_LONG[] = "user-id too long";
static const char R_UID_TYPE[] = "user-id must be a string or an integer";
static const char R_UID_NUL[] = "user-id contains NUL";

/* What a primitive token is. */
enum {
	P_BAD = 0,
	P_INT,		/* number without fraction or exponent */
	P_NUM,		/* any other number */
	P_LIT		/* true, false, null */
};

/* Members of a request object that json_request_parse() reads. */
#define F_USER_ID	0x1	/* "user-id" or "user_id" */
#define F_PAYLOAD	0x2
#define F_ID		0x4

/* One walk over the tokens of a text. */
struct json_ctx {
	const char		*x_p;
	int			 x_len;
	int			 x_ntok;
	struct json_request	*x_req;	/* NULL: validation only */
	int			 x_field;	/* F_* of the last key */
	int			 x_seen;	/* F_* seen so far */
	const char		*x_err;	/* first error about a field */
};

/* An open object or array during the walk. */
struct json_frame {
	int	f_tok;		/* its token */
	int	f_obj;		/* children alternate key, value */
	long	f_k;		/* children seen */
	long	f_n;		/* children (keys and values apart) */
};

/*
 * The token array, shared by every call: the process is single-threaded
 * and no call keeps tokens past its return.
 */
static jsmntok_t	*json_tok;
static unsigned int	 json_ntok;

static void		 json_tok_grow(unsigned int);
static void		 json_tok_release(void);
static int		 json_chain(int);
static const char	*json_tokenize(const char *, int, int *);
static const char	*json_gap(const char *, int, int, int);
static int		 json_hex4(const char *);
static const char	*json_string(const char *, size_t, size_t, int *);
static int		 json_number(const char *, size_t);
static int		 json_primitive(const char *, size_t);
static int		 json_unescape(const char *, size_t, char *, size_t);
static int		 json_field(const char *, size_t, int);
static void		 json_field_err(struct json_ctx *, const char *);
static void		 json_user_id(struct json_ctx *, const jsmntok_t *,
			    int, int);
static void		 json_member(struct json_ctx *, const jsmntok_t *,
			    int, int);
static const char	*json_walk(struct json_ctx *);
static const char	*json_parse(struct json_ctx *, const char *, size_t);
static int		 json_utf8_seq(const uint8_t *, size_t);
static size_t		 json_plain(const uint8_t *, size_t, size_t,
			    size_t, int *);

/* ---- Tokens ---- */

/* Make room for at least n tokens, keeping those already there. */
static void
json_tok_grow(unsigned int n)
{
	unsigned int	cap = json_ntok < JSON_TOK_MIN ? JSON_TOK_MIN :
			    json_ntok;

	if (n <= json_ntok)
		return;
	while (cap < n)
		cap *= 2;
	json_tok = xrealloc(json_tok, (size_t)cap * sizeof(*json_tok));
	json_ntok = cap;
}

/* After a large text, give the memory back. */
static void
json_tok_release(void)
{
	if (json_ntok <= JSON_TOK_KEEP)
		return;
	free(json_tok);
	json_tok = NULL;
	json_ntok = 0;
}

/*
 * Length of the parent chain from token i up to the top (0 for i ==
 * -1), counted no further than JSON_CHAIN_MAX + 1.
 */
static int
json_chain(int i)
{
	int	n;

	for (n = 0; i != -1 && n <= JSON_CHAIN_MAX; n++)
		i = json_tok[i].parent;
	return n;
}

/*
 * Tokenise p[0..len) into json_tok; *ntok gets the count.  Returns NULL
 * or the reason jsmn refused the text.
 *
 * With JSMN_PARENT_LINKS a closing bracket walks up from the last token
 * to the innermost open container, so a run of k closing brackets after
 * a k-deep branch costs k^2/2 steps: for "[[[...]]]" that is quadratic
 * in the message.  Hence the steps of JSON_TOK_STEP tokens: jsmn stops
 * with JSMN_ERROR_NOMEM after each and resumes where it stopped, and in
 * between the chains of the current container and of the last token are
 * measured.  A chain longer than any valid text's stops the parse, so no
 * chain ever exceeds JSON_CHAIN_MAX + JSON_TOK_STEP + 1 and a closing
 * bracket costs at most that many steps.  The exact depth is checked by
 * json_walk().  Valid texts still pay up to 2 * JSON_MAX_DEPTH steps a
 * bracket: 1 MiB of objects nested 127 deep takes about 80 ms, against
 * 2-3 ms for a shallow MiB; the cost falls with JSON_MAX_DEPTH.
 */
static const char *
json_tokenize(const char *p, int len, int *ntok)
{
	jsmn_parser	 jp;
	unsigned int	 lim;
	int		 rc;
	char		 c;

	jsmn_init(&jp);
	for (;;) {
		lim = jp.toknext + JSON_TOK_STEP;
		json_tok_grow(lim);
		rc = jsmn_parse(&jp, p, (size_t)len, json_tok, lim);
		if (rc != JSMN_ERROR_NOMEM)
			break;
		if (json_chain(jp.toksuper) > JSON_CHAIN_MAX ||
		    json_chain((int)jp.toknext - 1) > JSON_CHAIN_MAX)
			return R_DEEP;
	}
	/* jsmn leaves pos at the token it refused, or at a NUL, or at len. */
	c = jp.pos < (unsigned int)len ? p[jp.pos] : '\0';
	switch (rc) {
	case JSMN_ERROR_INVAL:
		/* A string is refused only for a bad escape. */
		return c == '"' ? R_ESCAPE : R_SYNTAX;
	case JSMN_ERROR_PART:
		/* jsmn takes a NUL for the end of the text. */
		if (jp.pos < (unsigned int)len &&
		    memchr(p + jp.pos, '\0', (size_t)len - jp.pos) != NULL)
			return c == '"' ? R_CTRL : R_SYNTAX;
		/* A number or literal after a complete top-level value. */
		if (jp.toksuper == -1 && jp.toknext > 0 && c != '"')
			return R_TRAIL;
		return R_TRUNC;
	case 0:
		return R_NOTJSON;
	}
	*ntok = rc;
	return NULL;
}

/* ---- Validation ---- */

/* Byte classes for strings, in json_string() and json_escape(). */
#define E_COPY	0	/* copied as is */
#define E_ESC	1	/* escaped */
#define E_HIGH	2	/* starts a multi-byte sequence, or is invalid */

#define X4(c)	c, c, c, c
#define X16(c)	X4(c), X4(c), X4(c), X4(c)

static const uint8_t json_esc_class[256] = {
	X16(E_ESC), X16(E_ESC),			/* 00-1F */
	E_COPY, E_COPY, E_ESC, E_COPY,		/* 20-23: '"' */
	X4(E_COPY), X4(E_COPY), X4(E_COPY),	/* 24-2F */
	X16(E_COPY), X16(E_COPY),		/* 30-4F */
	X4(E_COPY), X4(E_COPY), X4(E_COPY),	/* 50-5B */
	E_ESC, E_COPY, E_COPY, E_COPY,		/* 5C-5F: '\\' */
	X16(E_COPY), X16(E_COPY),		/* 60-7F */
	X16(E_HIGH), X16(E_HIGH),		/* 80-9F */
	X16(E_HIGH), X16(E_HIGH),		/* A0-BF */
	X16(E_HIGH), X16(E_HIGH),		/* C0-DF */
	X16(E_HIGH), X16(E_HIGH)		/* E0-FF */
};

/*
 * The bytes between two tokens, p[from..to): whitespace, with exactly
 * one `sep` in it unless sep is 0.
 */
static const char *
json_gap(const char *p, int from, int to, int sep)
{
	if (from > to)
		return R_SYNTAX;
	while (from < to && JSON_WS(p[from]))
		from++;
	if (sep != 0) {
		if (from == to || p[from] != sep)
			return sep == ',' ? R_COMMA : R_COLON;
		from++;
		while (from < to && JSON_WS(p[from]))
			from++;
	}
	if (from == to)
		return NULL;
	if (p[from] == ',')
		return R_XCOMMA;
	if (p[from] == ':')
		return R_XCOLON;
	return R_SYNTAX;
}

/* What the escapes other than \u stand for; 0: not an escape. */
static const char json_unesc[0x80] = {
	['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b', ['f'] = '\f',
	['n'] = '\n', ['r'] = '\r', ['t'] = '\t'
};

/* Value of four hex digits at s, or -1. */
static int
json_hex4(const char *s)
{
	int	i, c, v = 0;

	for (i = 0; i < 4; i++) {
		c = (unsigned char)s[i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			c = (c | 0x20) - 'a' + 10;
		else
			return -1;
		v = v << 4 | c;
	}
	return v;
}

/*
 * Check the contents of a string token, s[0..n) between the quotes: no
 * raw quote or control character, only the escapes of RFC 8259 section
 * 7, \u surrogates in high-low pairs, and UTF-8.  avail >= n bytes are
 * readable at s.  *escaped tells whether there was any backslash.
 * Returns NULL or the reason.
 */
static const char *
json_string(const char *s, size_t n, size_t avail, int *escaped)
{
	uint64_t	 w, seen = 0;
	size_t		 i = 0;
	int		 cp;
	unsigned char	 c = 0;

	*escaped = 0;
	while (i < n) {
		/*
		 * Plain bytes, eight at a time, then one at a time; `seen`
		 * collects their high bits.
		 */
		for (; n - i >= sizeof(w); i += sizeof(w)) {
			memcpy(&w, s + i, sizeof(w));
			if (W_SPECIAL(w))
				break;
			seen |= w;
		}
		/*
		 * Fewer than eight left, but the text goes on: one word
		 * anyway, its bytes past the string made plain.  Most keys
		 * and short values end here.
		 */
		if (i < n && n - i < sizeof(w) && avail - i >= sizeof(w)) {
			memcpy(&w, s + i, sizeof(w));
			w = (w & W_FIRST(n - i)) | (W_ONES * 'a' &
			    ~W_FIRST(n - i));
			if (!W_SPECIAL(w)) {
				seen |= w;
				break;
			}
		}
		while (i < n && json_esc_class[c = (unsigned char)s[i]] !=
		    E_ESC) {
			seen |= c;
			i++;
		}
		if (i == n)
			break;
		if (c < 0x20)
			return R_CTRL;
		if (c == '"')
			return R_SYNTAX;
		*escaped = 1;
		if (n - i < 2)
			return R_ESCAPE;
		c = (unsigned char)s[i + 1];
		if (c < 0x80 && json_unesc[c] != 0) {
			i += 2;
			continue;
		}
		if (c != 'u' || n - i < 6 || (cp = json_hex4(s + i + 2)) == -1)
			return R_ESCAPE;
		i += 6;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return R_SURROGATE;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u')
				return R_SURROGATE;
			if ((cp = json_hex4(s + i + 2)) == -1)
				return R_ESCAPE;
			if (cp < 0xdc00 || cp > 0xdfff)
				return R_SURROGATE;
			i += 6;
		}
	}
	if ((seen & W_HIGH) != 0 && !utf8_valid((const uint8_t *)s, n))
		return R_UTF8;
	return NULL;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? : P_INT, P_NUM or P_BAD. */
static int
json_number(const char *s, size_t n)
{
	size_t	i = 0;
	int	kind = P_INT;

#define DIGIT(k)	((k) < n && s[k] >= '0' && s[k] <= '9')
	if (i < n && s[i] == '-')
		i++;
	if (!DIGIT(i))
		return P_BAD;
	if (s[i++] != '0')
		while (DIGIT(i))
			i++;
	if (i < n && s[i] == '.') {
		kind = P_NUM;
		i++;
		if (!DIGIT(i))
			return P_BAD;
		while (DIGIT(i))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		kind = P_NUM;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (!DIGIT(i))
			return P_BAD;
		while (DIGIT(i))
			i++;
	}
#undef DIGIT
	return i == n ? kind : P_BAD;
}

/* What the primitive s[0..n) is, P_BAD if not JSON. */
static int
json_primitive(const char *s, size_t n)
{
	switch (s[0]) {
	case 't':
		return n == 4 && memcmp(s, "true", 4) == 0 ? P_LIT : P_BAD;
	case 'f':
		return n == 5 && memcmp(s, "false", 5) == 0 ? P_LIT : P_BAD;
	case 'n':
		return n == 4 && memcmp(s, "null", 4) == 0 ? P_LIT : P_BAD;
	}
	return json_number(s, n);
}

/* ---- Request fields ---- */

/*
 * Decode the checked string contents s[0..n) into out as UTF-8.  Returns
 * the length, or -1 if it would exceed cap bytes.  Not NUL-terminated.
 */
static int
json_unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t		i = 0, o = 0, k;
	unsigned int	cp;
	char		u[4];

	while (i < n) {
		if (s[i] != '\\') {
			if (o == cap)
				return -1;
			out[o++] = s[i++];
			continue;
		}
		k = 1;
		if (s[i + 1] != 'u')
			u[0] = json_unesc[(unsigned char)s[i + 1]];
		else {
			cp = (unsigned int)json_hex4(s + i + 2);
			if (cp >= 0xd800 && cp <= 0xdbff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    ((unsigned int)json_hex4(s + i + 8) -
				    0xdc00);
				i += 6;
			}
			i += 4;
			if (cp < 0x80)
				u[0] = (char)cp;
			else if (cp < 0x800) {
				u[0] = (char)(0xc0 | cp >> 6);
				u[1] = (char)(0x80 | (cp & 0x3f));
				k = 2;
			} else if (cp < 0x10000) {
				u[0] = (char)(0xe0 | cp >> 12);
				u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
				u[2] = (char)(0x80 | (cp & 0x3f));
				k = 3;
			} else {
				u[0] = (char)(0xf0 | cp >> 18);
				u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
				u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
				u[3] = (char)(0x80 | (cp & 0x3f));
				k = 4;
			}
		}
		i += 2;
		if (cap - o < k)
			return -1;
		memcpy(out + o, u, k);
		o += k;
	}
	return (int)o;
}

/* Which F_* a top-level key (checked string contents) names, or 0. */
static int
json_field(const char *s, size_t n, int escaped)
{
	char	key[8];
	int	k;

	if (escaped) {
		if ((k = json_unescape(s, n, key, sizeof(key))) == -1)
			return 0;
		s = key;
		n = (size_t)k;
	}
	if (n == 7 && (memcmp(s, "user-id", 7) == 0 ||
	    memcmp(s, "user_id", 7) == 0))
		return F_USER_ID;
	if (n == 7 && memcmp(s, "payload", 7) == 0)
		return F_PAYLOAD;
	if (n == 2 && s[0] == 'i' && s[1] == 'd')
		return F_ID;
	return 0;
}

/* The first error about a field is the one reported. */
static void
json_field_err(struct json_ctx *cx, const char *why)
{
	if (cx->x_err == NULL)
		cx->x_err = why;
}

/* The user-id value t, a checked token of primitive kind `kind`. */
static void
json_user_id(struct json_ctx *cx, const jsmntok_t *t, int kind,
    int escaped)
{
	struct json_request	*r = cx->x_req;
	const char		*s = cx->x_p + t->start;
	size_t			 n = (size_t)(t->end - t->start);
	int			 k;

	if (t->type == JSMN_STRING) {
		if (escaped)
			k = json_unescape(s, n, r->user_id, JSON_USER_ID_MAX);
		else if (n <= JSON_USER_ID_MAX) {
			memcpy(r->user_id, s, n);
			k = (int)n;
		} else
			k = -1;
		if (k == -1)
			json_field_err(cx, R_UID_LONG);
		else if (k == 0)
			json_field_err(cx, R_UID_EMPTY);
		else if (escaped && memchr(r->user_id, '\0', (size_t)k) != NULL)
			json_field_err(cx, R_UID_NUL);
		else {
			r->user_id[k] = '\0';
			r->user_id_len = (size_t)k;
		}
	} else if (t->type == JSMN_PRIMITIVE && kind == P_INT) {
		if (n > JSON_USER_ID_MAX)
			json_field_err(cx, R_UID_LONG);
		else {
			memcpy(r->user_id, s, n);
			r->user_id[n] = '\0';
			r->user_id_len = n;
		}
	} else
		json_field_err(cx, R_UID_TYPE);
}

/*
 * The value t of the top-level member whose key named cx->x_field: kind
 * is its P_* for a primitive, escaped its json_string() flag.
 */
static void
json_member(struct json_ctx *cx, const jsmntok_t *t, int kind, int escaped)
{
	struct json_request	*r = cx->x_req;
	struct json_span	 span;
	int			 field = cx->x_field;

	cx->x_field = 0;
	span.p = cx->x_p + t->start;
	span.len = (size_t)(t->end - t->start);
	if (t->type == JSMN_STRING) {
		span.p--;
		span.len += 2;
	}
	if (cx->x_seen & field) {
		/* Which id would the client want back?  Neither. */
		json_field_err(cx, R_DUP);
		if (field == F_ID) {
			r->id.p = NULL;
			r->id.len = 0;
		}
		return;
	}
	cx->x_seen |= field;
	switch (field) {
	case F_USER_ID:
		json_user_id(cx, t, kind, escaped);
		break;
	case F_PAYLOAD:
		r->payload = span;
		break;
	case F_ID:
		if (t->type == JSMN_STRING || kind == P_INT || kind == P_NUM)
			r->id = span;
		else
			json_field_err(cx, R_ID_TYPE);
		break;
	}
}

/* ---- The walk ---- */

/*
 * Check the tokens in document order against the grammar of RFC 8259:
 * every byte of the text is a token's (checked by its type), a bracket
 * of a container, or in the gap between two of them, which must hold
 * whitespace and the one ',' or ':' the grammar puts there.  jsmn's
 * tree (sizes, types) is taken only as a reading of the text, which the
 * gaps then confirm; nothing it let through unchecked survives that.
 * Also picks out the request's members when cx->x_req is set.
 */
static const char *
json_walk(struct json_ctx *cx)
{
	struct json_frame	 st[JSON_MAX_DEPTH];
	const jsmntok_t		*t;
	const char		*p = cx->x_p, *why;
	long			 k = 0, n = 1;
	int			 d = 0, i = 0, pos = 0, at, sep, key, kind;
	int			 obj = 0, open = -1, escaped;

	/*
	 * The container being filled is in locals (open, obj, k of n
	 * children seen), the ones around it on st[]; the text itself is a
	 * pseudo-container of one value, at depth 0.
	 */
	for (;;) {
		while (k == n) {
			if (d == 0)
				goto done;
			t = &json_tok[open];
			at = t->end - 1;
			if (at != pos &&
			    (why = json_gap(p, pos, at, 0)) != NULL)
				return why;
			if (p[at] != (obj ? '}' : ']'))
				return R_SYNTAX;
			pos = t->end;
			d--;
			open = st[d].f_tok;
			obj = st[d].f_obj;
			k = st[d].f_k;
			n = st[d].f_n;
		}
		if (i == cx->x_ntok)
			return R_TRUNC;

		t = &json_tok[i];
		key = obj && (k & 1) == 0;
		sep = k == 0 ? 0 : obj && !key ? ':' : ',';
		k++;
		at = t->type == JSMN_STRING ? t->start - 1 : t->start;
		/* Most gaps are empty or just the separator. */
		if (!(at == pos + (sep != 0) && (sep == 0 || p[pos] == sep)) &&
		    (why = json_gap(p, pos, at, sep)) != NULL)
			return why;

		kind = P_BAD;
		escaped = 0;
		switch (t->type) {
		case JSMN_OBJECT:
		case JSMN_ARRAY:
			if (key || t->size < 0 || t->size > cx->x_ntok)
				return R_SYNTAX;
			if (d == JSON_MAX_DEPTH)
				return R_DEEP;
			if (p[t->start] != (t->type == JSMN_OBJECT ? '{' : '['))
				return R_SYNTAX;
			pos = t->start + 1;
			break;
		case JSMN_STRING:
			/*
			 * jsmn hangs an object's value under its key, and
			 * anything after a stray ':' under what precedes it.
			 */
			if (t->size != key && !key)
				return R_XCOLON;
			if (t->size != key)
				return t->size == 0 ? R_COLON : R_COMMA;
			if (p[t->end] != '"')
				return R_SYNTAX;
			if ((why = json_string(p + t->start,
			    (size_t)(t->end - t->start),
			    (size_t)(cx->x_len - t->start), &escaped)) != NULL)
				return why;
			pos = t->end + 1;
			if (key && d == 1 && cx->x_req != NULL)
				cx->x_field = json_field(p + t->start,
				    (size_t)(t->end - t->start), escaped);
			break;
		case JSMN_PRIMITIVE:
			if (key || t->end <= t->start)
				return R_SYNTAX;
			if (t->size != 0)
				return R_XCOLON;
			kind = json_primitive(p + t->start,
			    (size_t)(t->end - t->start));
			if (kind == P_BAD)
				return p[t->start] == '-' ||
				    (p[t->start] >= '0' && p[t->start] <= '9') ?
				    R_NUMBER : R_LITERAL;
			pos = t->end;
			break;
		default:
			return R_SYNTAX;
		}
		if (!key && d == 1 && cx->x_field != 0)
			json_member(cx, t, kind, escaped);
		if (t->type == JSMN_OBJECT || t->type == JSMN_ARRAY) {
			st[d].f_tok = open;
			st[d].f_obj = obj;
			st[d].f_k = k;
			st[d].f_n = n;
			d++;
			open = i;
			obj = t->type == JSMN_OBJECT;
			k = 0;
			n = obj ? 2 * (long)t->size : t->size;
		}
		i++;
	}
done:
	if (i != cx->x_ntok || json_gap(p, pos, cx->x_len, 0) != NULL)
		return R_TRAIL;
	return NULL;
}

/*
 * Tokenise and check p[0..len).  A number or literal alone is not
 * given to jsmn, which in strict mode wants a delimiter after it: it is
 * made into the one token by hand.
 */
static const char *
json_parse(struct json_ctx *cx, const char *p, size_t len)
{
	const char	*why;
	size_t		 i, e;

	if (len > JSON_MAX_TEXT)
		return R_LARGE;
	cx->x_p = p;
	cx->x_len = (int)len;
	for (i = 0; i < len && JSON_WS(p[i]); i++)
		;
	if (i == len)
		return R_NOTJSON;
	switch (p[i]) {
	case '{':
	case '[':
	case '"':
		if ((why = json_tokenize(p, (int)len, &cx->x_ntok)) != NULL)
			return why;
		break;
	case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
	case 't':
	case 'f':
	case 'n':
		for (e = i; e < len && !JSON_WS(p[e]); e++)
			;
		json_tok_grow(1);
		json_tok[0].type = JSMN_PRIMITIVE;
		json_tok[0].start = (int)i;
		json_tok[0].end = (int)e;
		json_tok[0].size = 0;
		json_tok[0].parent = -1;
		cx->x_ntok = 1;
		break;
	default:
		return R_NOTJSON;
	}
	return json_walk(cx);
}

const char *
json_check(const char *p, size_t len)
{
	struct json_ctx	 cx;
	const char	*why;

	memset(&cx, 0, sizeof(cx));
	why = json_parse(&cx, p, len);
	json_tok_release();
	return why;
}

int
json_valid(const char *p, size_t len)
{
	return json_check(p, len) == NULL;
}

int
json_request_parse(const char *msg, size_t len, struct json_request *r,
    const char **why)
{
	struct json_ctx	cx;

	memset(&cx, 0, sizeof(cx));
	cx.x_req = r;
	r->user_id[0] = '\0';
	r->user_id_len = 0;
	r->payload.p = "null";
	r->payload.len = 4;
	r->id.p = NULL;
	r->id.len = 0;

	if ((*why = json_parse(&cx, msg, len)) != NULL) {
		/* Not JSON: nothing in it is worth echoing. */
		r->id.p = NULL;
		r->id.len = 0;
	} else if (json_tok[0].type != JSMN_OBJECT)
		*why = R_OBJECT;
	else if (cx.x_err != NULL)
		*why = cx.x_err;
	else if (!(cx.x_seen & F_USER_ID))
		*why = R_UID_MISSING;
	json_tok_release();
	if (*why != NULL) {
		r->user_id[0] = '\0';
		r->user_id_len = 0;
		r->payload.p = "null";
		r->payload.len = 4;
		return -1;
	}
	return 0;
}

/* ---- Escaping ---- */

/* json_escape() works in blocks of this many input bytes. */
#define JSON_ESC_BLOCK	16384

/* Short escapes; 0: \u00XX. */
static const char json_esc_short[0x20] = {
	['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'
};

/*
 * The UTF-8 sequence at p[0..n), n > 0: its length if well-formed (RFC
 * 3629), else minus the length of its maximal subpart (Unicode 15.0
 * section 3.9, "U+FFFD Substitution of Maximal Subparts"): the longest
 * prefix of a well-formed sequence, at least 1.
 */
static int
json_utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t	lo = 0x80, hi = 0xbf;
	int	need, k;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		need = 1;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 2;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 3;
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return -1;
	for (k = 1; k <= need; k++) {
		if ((size_t)k == n || p[k] < lo || p[k] > hi)
			return -k;
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

/*
 * End of the run from p[i] of bytes that go out as they are: ASCII
 * eight at a time, then byte by byte, and well-formed UTF-8 sequences,
 * which may end past `end` (but not past len).  If it stops at an
 * ill-formed one, *m is minus its maximal subpart's length.
 */
static size_t
json_plain(const uint8_t *p, size_t i, size_t end, size_t len, int *m)
{
	uint64_t	w;

	for (;;) {
		for (; i + sizeof(w) <= end; i += sizeof(w)) {
			memcpy(&w, p + i, sizeof(w));
			if ((W_SPECIAL(w) | (w & W_HIGH)) != 0)
				break;
		}
		while (i < end && json_esc_class[p[i]] == E_COPY)
			i++;
		if (i >= end || json_esc_class[p[i]] != E_HIGH ||
		    (*m = json_utf8_seq(p + i, len - i)) < 0)
			return i;
		i += (size_t)*m;
	}
}

size_t
json_escape(struct buf *out, const uint8_t *p, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	size_t			 i = 0, end, run, nrepl = 0;
	char			*o;
	int			 m = 0;

	while (i < len) {
		/*
		 * A block at a time, into room reserved for its worst case:
		 * six bytes out for a byte in, and a UTF-8 sequence may end
		 * three bytes past the block.
		 */
		end = len - i > JSON_ESC_BLOCK ? i + JSON_ESC_BLOCK : len;
		o = buf_reserve(out, 6 * (end - i) + 3);
		while (i < end) {
			run = i;
			i = json_plain(p, i, end, len, &m);
			memcpy(o, p + run, i - run);
			o += i - run;
			if (i >= end)
				break;

			if (json_esc_class[p[i]] == E_HIGH) {
				memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
				o += 3;
				i += (size_t)-m;
				nrepl++;
			} else if (p[i] >= 0x20) {	/* '"', '\\' */
				*o++ = '\\';
				*o++ = (char)p[i++];
			} else if (json_esc_short[p[i]] != 0) {
				*o++ = '\\';
				*o++ = json_esc_short[p[i++]];
			} else {
				memcpy(o, "\\u00", 4);
				o[4] = hex[p[i] >> 4];
				o[5] = hex[p[i++] & 0xf];
				o += 6;
			}
		}
		out->b_len = (size_t)(o - out->b_p);
	}
	return nrepl;
}
