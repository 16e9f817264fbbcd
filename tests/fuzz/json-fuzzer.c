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
 * libFuzzer target for shared/json.c: json_valid() must agree with a
 * plain recursive-descent reading of RFC 8259 written here apart from
 * jsmn, json_request_parse() must keep its promises and agree with
 * json_valid(), and json_escape() must give valid JSON that decodes
 * back to its input.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "utf8.h"

#define JSON_FUZZ_MAX	(1024 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The reference reader: a cursor over the text. */
struct ref {
	const uint8_t	*r_p;
	size_t		 r_n;
	size_t		 r_i;
	int		 r_depth;
	int		 r_max;		/* deepest nesting seen */
};

static int	is_ws(int);
static void	ref_ws(struct ref *);
static int	ref_hex4(struct ref *);
static int	ref_string(struct ref *);
static int	ref_digits(struct ref *);
static int	ref_number(struct ref *);
static int	ref_word(struct ref *, const char *);
static int	ref_value(struct ref *);
static int	ref_valid(const uint8_t *, size_t, int *);
static void	check_span(struct json_span, const uint8_t *, size_t);
static int	invalid_reason(const char *);
static void	fuzz_request(const uint8_t *, size_t, int);
static void	fuzz_payload(const uint8_t *, size_t, int, int);
static int	hexval(int);
static size_t	unescape(const char *, size_t, uint8_t *);
static void	fuzz_escape(const uint8_t *, size_t);

static int
is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void
ref_ws(struct ref *r)
{
	while (r->r_i < r->r_n && is_ws(r->r_p[r->r_i]))
		r->r_i++;
}

/* After "\u": four hex digits, their value; -1 if not. */
static int
ref_hex4(struct ref *r)
{
	int	v = 0, k, c;

	for (k = 0; k < 4; k++, r->r_i++) {
		if (r->r_i == r->r_n)
			return -1;
		c = r->r_p[r->r_i];
		if (c >= '0' && c <= '9')
			v = v * 16 + c - '0';
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static int
ref_string(struct ref *r)
{
	int	c, u;

	r->r_i++;	/* '"' */
	for (;;) {
		if (r->r_i == r->r_n)
			return 0;
		c = r->r_p[r->r_i++];
		if (c == '"')
			return 1;
		if (c < 0x20)
			return 0;
		if (c != '\\')
			continue;
		if (r->r_i == r->r_n)
			return 0;
		c = r->r_p[r->r_i++];
		if (strchr("\"\\/bfnrt", c) != NULL && c != '\0')
			continue;
		if (c != 'u' || (u = ref_hex4(r)) == -1)
			return 0;
		if (u >= 0xdc00 && u <= 0xdfff)
			return 0;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (r->r_n - r->r_i < 2 || r->r_p[r->r_i] != '\\' ||
			    r->r_p[r->r_i + 1] != 'u')
				return 0;
			r->r_i += 2;
			u = ref_hex4(r);
			if (u < 0xdc00 || u > 0xdfff)
				return 0;
		}
	}
}

/* One or more digits. */
static int
ref_digits(struct ref *r)
{
	size_t	start = r->r_i;

	while (r->r_i < r->r_n && r->r_p[r->r_i] >= '0' &&
	    r->r_p[r->r_i] <= '9')
		r->r_i++;
	return r->r_i > start;
}

static int
ref_number(struct ref *r)
{
	if (r->r_p[r->r_i] == '-')
		r->r_i++;
	if (r->r_i < r->r_n && r->r_p[r->r_i] == '0')
		r->r_i++;
	else if (!ref_digits(r))
		return 0;
	if (r->r_i < r->r_n && r->r_p[r->r_i] == '.') {
		r->r_i++;
		if (!ref_digits(r))
			return 0;
	}
	if (r->r_i < r->r_n && (r->r_p[r->r_i] == 'e' ||
	    r->r_p[r->r_i] == 'E')) {
		r->r_i++;
		if (r->r_i < r->r_n && (r->r_p[r->r_i] == '+' ||
		    r->r_p[r->r_i] == '-'))
			r->r_i++;
		if (!ref_digits(r))
			return 0;
	}
	return 1;
}

static int
ref_word(struct ref *r, const char *w)
{
	size_t	n = strlen(w);

	if (r->r_n - r->r_i < n || memcmp(r->r_p + r->r_i, w, n) != 0)
		return 0;
	r->r_i += n;
	return 1;
}

/* A value at r_i (no whitespace before it). */
static int
ref_value(struct ref *r)
{
	int	close, first = 1;

	if (r->r_i == r->r_n)
		return 0;
	switch (r->r_p[r->r_i]) {
	case '"':
		return ref_string(r);
	case 't':
		return ref_word(r, "true");
	case 'f':
		return ref_word(r, "false");
	case 'n':
		return ref_word(r, "null");
	case '{':
	case '[':
		break;
	default:
		return (r->r_p[r->r_i] == '-' || (r->r_p[r->r_i] >= '0' &&
		    r->r_p[r->r_i] <= '9')) && ref_number(r);
	}
	close = r->r_p[r->r_i] == '{' ? '}' : ']';
	if (++r->r_depth > JSON_MAX_DEPTH)
		return 0;
	if (r->r_depth > r->r_max)
		r->r_max = r->r_depth;
	r->r_i++;
	for (;;) {
		ref_ws(r);
		if (r->r_i == r->r_n)
			return 0;
		if (first && r->r_p[r->r_i] == close)
			break;
		if (!first) {
			if (r->r_p[r->r_i] == close)
				break;
			if (r->r_p[r->r_i] != ',')
				return 0;
			r->r_i++;
			ref_ws(r);
		}
		first = 0;
		if (close == '}') {
			if (r->r_i == r->r_n || r->r_p[r->r_i] != '"' ||
			    !ref_string(r))
				return 0;
			ref_ws(r);
			if (r->r_i == r->r_n || r->r_p[r->r_i] != ':')
				return 0;
			r->r_i++;
			ref_ws(r);
		}
		if (!ref_value(r))
			return 0;
	}
	r->r_i++;
	r->r_depth--;
	return 1;
}

/* 1 if p[0..n) is one JSON text; *depth gets its nesting. */
static int
ref_valid(const uint8_t *p, size_t n, int *depth)
{
	struct ref	r = { p, n, 0, 0, 0 };
	int		ok;

	ref_ws(&r);
	ok = ref_value(&r);
	ref_ws(&r);
	*depth = r.r_max;
	return ok && r.r_i == n && utf8_valid(p, n);
}

/* A span is unset or lies in the message and is a valid JSON text. */
static void
check_span(struct json_span s, const uint8_t *msg, size_t len)
{
	if (s.p == NULL) {
		if (s.len != 0)
			abort();
		return;
	}
	if ((const uint8_t *)s.p < msg || s.len > len ||
	    (size_t)((const uint8_t *)s.p - msg) > len - s.len)
		abort();
	if (!json_valid(s.p, s.len))
		abort();
}

/* 1 if `why` says the text is not JSON, 0 if it is about the request. */
static int
invalid_reason(const char *why)
{
	return strncmp(why, "invalid JSON: ", 14) == 0 ||
	    strcmp(why, "not JSON") == 0 ||
	    strcmp(why, "nesting too deep") == 0 ||
	    strcmp(why, "too large") == 0;
}

static void
fuzz_request(const uint8_t *data, size_t size, int valid)
{
	struct json_request	 r;
	const char		*why = NULL, *msg = (const char *)data;
	size_t			 i;

	if (json_request_parse(msg, size, &r, &why) == 0) {
		if (!valid || why != NULL)
			abort();
		for (i = 0; i < size && is_ws(data[i]); i++)
			;
		if (i == size || data[i] != '{')
			abort();
		if (r.user_id_len == 0 || r.user_id_len > JSON_USER_ID_MAX ||
		    strlen(r.user_id) != r.user_id_len ||
		    !utf8_valid((const uint8_t *)r.user_id, r.user_id_len))
			abort();
		if (r.payload.p == NULL || (r.payload.len == 4 &&
		    memcmp(r.payload.p, "null", 4) == 0))
			;	/* absent, or null: may be the static "null" */
		else
			check_span(r.payload, data, size);
	} else {
		if (why == NULL || invalid_reason(why) == valid)
			abort();
		if (r.user_id[0] != '\0' || r.user_id_len != 0)
			abort();
		if (r.id.p != NULL && !valid)
			abort();
	}
	check_span(r.id, data, size);
	if (r.id.p != NULL && r.id.p[0] != '"' && r.id.p[0] != '-' &&
	    (r.id.p[0] < '0' || r.id.p[0] > '9'))
		abort();
}

/*
 * The input as the payload of a request: taken exactly (whitespace
 * around it aside) when it is valid and leaves room for the object
 * around it in the depth limit.
 */
static void
fuzz_payload(const uint8_t *data, size_t size, int valid, int depth)
{
	static const char	 head[] = "{\"user-id\":\"u\",\"payload\":";
	struct json_request	 r;
	const char		*why;
	char			*msg;
	size_t			 lead = 0, trail = 0, n;
	int			 rc;

	n = sizeof(head) - 1 + size + 1;
	if ((msg = malloc(n)) == NULL)
		abort();
	memcpy(msg, head, sizeof(head) - 1);
	memcpy(msg + sizeof(head) - 1, data, size);
	msg[n - 1] = '}';
	rc = json_request_parse(msg, n, &r, &why);
	if (valid && depth < JSON_MAX_DEPTH) {
		while (is_ws(data[lead]))
			lead++;
		while (is_ws(data[size - 1 - trail]))
			trail++;
		if (rc != 0 || strcmp(r.user_id, "u") != 0 ||
		    r.payload.p != msg + sizeof(head) - 1 + lead ||
		    r.payload.len != size - lead - trail)
			abort();
	}
	free(msg);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	abort();	/* json_escape() writes lower case */
}

/*
 * Decode what json_escape() writes (its escapes only) into out; returns
 * the length.
 */
static size_t
unescape(const char *s, size_t n, uint8_t *out)
{
	const char	*e;
	size_t		 i, o = 0;
	int		 c;

	for (i = 0; i < n; i++) {
		if (s[i] != '\\') {
			out[o++] = (uint8_t)s[i];
			continue;
		}
		c = s[++i];
		if (c == 'u') {
			if (n - i < 5 || memcmp(s + i, "u00", 3) != 0)
				abort();
			out[o++] = (uint8_t)(hexval(s[i + 3]) << 4 |
			    hexval(s[i + 4]));
			i += 4;
		} else if (c != '\0' &&
		    (e = strchr("b\bf\fn\nr\rt\t", c)) != NULL)
			out[o++] = (uint8_t)e[1];
		else
			out[o++] = (uint8_t)c;	/* '"', '\\' */
	}
	return o;
}

static void
fuzz_escape(const uint8_t *data, size_t size)
{
	struct buf	 b = BUF_INIT;
	uint8_t		*back;
	size_t		 repl, n;
	int		 utf8 = utf8_valid(data, size);

	buf_appendc(&b, '"');
	repl = json_escape(&b, data, size);
	buf_appendc(&b, '"');
	if (!json_valid(b.b_p, b.b_len) || (repl == 0) != utf8 ||
	    repl > size || b.b_len - 2 < size)
		abort();
	if (utf8) {
		if ((back = malloc(b.b_len)) == NULL)
			abort();
		n = unescape(b.b_p + 1, b.b_len - 2, back);
		if (n != size || memcmp(back, data, size) != 0)
			abort();
		free(back);
	}
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*why;
	int		 valid, depth;

	if (size > JSON_FUZZ_MAX)
		return 0;
	valid = ref_valid(data, size, &depth);
	why = json_check((const char *)data, size);
	if ((why == NULL) != valid || json_valid((const char *)data, size) !=
	    valid)
		abort();
	if (why != NULL && !invalid_reason(why))
		abort();
	fuzz_request(data, size, valid);
	fuzz_payload(data, size, valid, depth);
	fuzz_escape(data, size);
	return 0;
}
