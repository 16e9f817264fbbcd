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
 * libFuzzer target for shared/edn.c: the input is an EDN config.  A
 * conversion that succeeds must give valid JSON, by a strict checker of
 * our own and (up to its depth limit) by json_valid(); the same input
 * inside a vector must give the same JSON inside an array; a failure
 * must say why and where.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "edn.h"
#include "json.h"
#include "utf8.h"

#define EDN_FUZZ_MAX	(256 * 1024)
#define EDN_FUZZ_DEPTH	(EDN_MAX_DEPTH + 1)	/* our array around it */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	fuzz_max_depth;	/* of the last text fuzz_json() checked */

static const char	*fuzz_ws(const char *, const char *);
static const char	*fuzz_value(const char *, const char *, int);
static const char	*fuzz_string(const char *, const char *);
static const char	*fuzz_number(const char *, const char *);
static const char	*fuzz_digits(const char *, const char *);
static int		 fuzz_json(const char *, size_t);
static void		 fuzz_wrapped(const uint8_t *, size_t,
			    const struct buf *);

/* ---- An RFC 8259 checker, independent of shared/json.c ---- */

static const char *
fuzz_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return p;
}

/* Returns the end of the value at p, or NULL. */
static const char *
fuzz_value(const char *p, const char *end, int depth)
{
	char	close;
	int	n = 0;

	p = fuzz_ws(p, end);
	if (p == end)
		return NULL;
	switch (*p) {
	case '"':
		return fuzz_string(p, end);
	case '[':
	case '{':
		if (depth >= EDN_FUZZ_DEPTH)
			return NULL;
		if (depth + 1 > fuzz_max_depth)
			fuzz_max_depth = depth + 1;
		close = *p == '[' ? ']' : '}';
		p = fuzz_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;; n++) {
			if (close == '}') {
				p = fuzz_ws(p, end);
				if (p == end || *p != '"' ||
				    (p = fuzz_string(p, end)) == NULL)
					return NULL;
				p = fuzz_ws(p, end);
				if (p == end || *p++ != ':')
					return NULL;
			}
			if ((p = fuzz_value(p, end, depth + 1)) == NULL)
				return NULL;
			p = fuzz_ws(p, end);
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			return p < end && *p == close ? p + 1 : NULL;
		}
	case 't':
		return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return end - p >= 5 && memcmp(p, "false", 5) == 0 ?
		    p + 5 : NULL;
	case 'n':
		return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
	}
	return fuzz_number(p, end);
}

/* No control characters; escapes complete; surrogates in pairs. */
static const char *
fuzz_string(const char *p, const char *end)
{
	unsigned long	 cp;
	char		 hex[5], *endp;
	int		 high = 0;

	for (p++; p < end && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p != '\\') {
			if (high)
				return NULL;
			continue;
		}
		if (++p == end)
			return NULL;
		if (*p != 'u') {
			if (high || strchr("\"\\/bfnrt", *p) == NULL ||
			    *p == '\0')
				return NULL;
			continue;
		}
		if (end - p < 5)
			return NULL;
		memcpy(hex, p + 1, 4);
		hex[4] = '\0';
		cp = strtoul(hex, &endp, 16);
		if (endp != hex + 4 || hex[0] == '+' || hex[0] == '-')
			return NULL;
		p += 4;
		if (high != (cp >= 0xdc00 && cp <= 0xdfff))
			return NULL;
		high = cp >= 0xd800 && cp <= 0xdbff;
	}
	return p < end && !high ? p + 1 : NULL;
}

static const char *
fuzz_digits(const char *p, const char *end)
{
	const char	*s = p;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p > s ? p : NULL;
}

static const char *
fuzz_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if ((p = fuzz_digits(p, end)) == NULL)
		return NULL;
	if (p < end && *p == '.' && (p = fuzz_digits(p + 1, end)) == NULL)
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if ((p = fuzz_digits(p, end)) == NULL)
			return NULL;
	}
	return p;
}

static int
fuzz_json(const char *p, size_t len)
{
	const char	*end = p + len;

	fuzz_max_depth = 0;
	if (!utf8_valid((const uint8_t *)p, len) ||
	    (p = fuzz_value(p, end, 0)) == NULL)
		return 0;
	return fuzz_ws(p, end) == end;
}

/* ---- The target ---- */

/*
 * "[" input "\n]" must convert to "[" json "]", unless the array is one
 * level too many.  The newline ends a trailing comment.
 */
static void
fuzz_wrapped(const uint8_t *data, size_t size, const struct buf *json)
{
	struct buf	 in = BUF_INIT, out = BUF_INIT;
	char		 err[256];

	buf_appendc(&in, '[');
	buf_append(&in, data, size);
	buf_appends(&in, "\n]");
	if (edn_to_json(in.b_p, in.b_len, &out, err, sizeof(err)) == 0) {
		if (out.b_len != json->b_len + 2 || out.b_p[0] != '[' ||
		    memcmp(out.b_p + 1, json->b_p, json->b_len) != 0 ||
		    out.b_p[out.b_len - 1] != ']')
			abort();
	} else if (strncmp(err, "nesting too deep at offset ", 27) != 0)
		abort();
	buf_free(&in);
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf	 out = BUF_INIT;
	char		 err[256], *at, *next, *endp;
	unsigned long	 off;

	if (size > EDN_FUZZ_MAX)
		return 0;
	memset(err, 'x', sizeof(err));
	if (edn_to_json((const char *)data, size, &out, err,
	    sizeof(err)) == 0) {
		/* json_valid() stops at JSON_MAX_DEPTH, EDN later. */
		if (!fuzz_json(out.b_p, out.b_len) ||
		    (fuzz_max_depth <= JSON_MAX_DEPTH &&
		    !json_valid(out.b_p, out.b_len)))
			abort();
		fuzz_wrapped(data, size, &out);
	} else {
		/*
		 * "reason at offset N", N within the input (the last such
		 * text: a quoted key may hold one).
		 */
		if (memchr(err, '\0', sizeof(err)) == NULL ||
		    (at = strstr(err, " at offset ")) == NULL || at == err)
			abort();
		while ((next = strstr(at + 1, " at offset ")) != NULL)
			at = next;
		off = strtoul(at + 11, &endp, 10);
		if (*endp != '\0' || off > size)
			abort();
	}
	buf_free(&out);
	return 0;
}
