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
 * Unit tests for shared/json.c: the request rules of PROTOCOL.md section
 * 1, RFC 8259 validation (above all what jsmn alone lets through),
 * json_escape(), large and hostile texts, and a parse benchmark.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSMN_HEADER	/* the implementation is in shared/json.c */
#include <jsmn.h>

#include "tests/tap.h"
#include "buf.h"
#include "json.h"
#include "utf8.h"
#include "util.h"

#define MIB		(1024 * 1024)

/* Reasons, as json.h lists them. */
#define NOTJSON		"not JSON"
#define SYNTAX		"invalid JSON: syntax error"
#define TRUNC		"invalid JSON: truncated"
#define COMMA		"invalid JSON: expected ','"
#define COLON		"invalid JSON: expected ':'"
#define XCOMMA		"invalid JSON: unexpected ','"
#define XCOLON		"invalid JSON: unexpected ':'"
#define TRAIL		"invalid JSON: text after the value"
#define NUMBER		"invalid JSON: bad number"
#define LITERAL		"invalid JSON: bad literal"
#define CTRL		"invalid JSON: control character in string"
#define ESCAPE		"invalid JSON: bad escape"
#define SURROGATE	"invalid JSON: lone surrogate"
#define UTF8		"invalid JSON: not UTF-8"
#define DEEP		"nesting too deep"
#define OBJECT		"not an object"
#define DUP		"duplicate key"
#define ID_TYPE		"id must be a string or a number"
#define UID_MISSING	"missing user-id"
#define UID_EMPTY	"user-id is empty"
#define UID_LONG	"user-id too long"
#define UID_TYPE	"user-id must be a string or an integer"
#define UID_NUL		"user-id contains NUL"

struct text {
	const char	*t_s;
	size_t		 t_len;
	const char	*t_why;		/* NULL: valid */
};
#define T(s, why)	{ s, sizeof(s) - 1, why }

/* Not JSON, and in most cases tokenised by jsmn (strict) without a word. */
static const struct text invalid[] = {
	/* Numbers and literals. */
	T("tru", LITERAL), T("nul", LITERAL), T("fals", LITERAL),
	T("truee", LITERAL), T("nulll", LITERAL), T("True", NOTJSON),
	T("NULL", NOTJSON), T("-", NUMBER), T("01", NUMBER), T("00", NUMBER),
	T("-01", NUMBER), T("1.", NUMBER), T(".5", NOTJSON), T("1.e5", NUMBER),
	T("1e", NUMBER), T("1e+", NUMBER), T("1E-", NUMBER), T("+1", NOTJSON),
	T("0x10", NUMBER), T("--1", NUMBER), T("-a", NUMBER),
	T("1.0.0", NUMBER), T("Infinity", NOTJSON), T("NaN", NOTJSON),
	T("-Infinity", NUMBER), T("1,2", NUMBER), T("1\0", NUMBER),
	T("[tru]", LITERAL), T("[nul]", LITERAL), T("[t]", LITERAL),
	T("[01]", NUMBER), T("[1.]", NUMBER), T("[-]", NUMBER),
	T("[1e5.0]", NUMBER), T("[1e]", NUMBER), T("[0x1]", NUMBER),
	T("[-01]", NUMBER), T("[1.5e+]", NUMBER), T("[t{]", LITERAL),
	T("[1\"a\"]", NUMBER), T("[true1]", LITERAL), T("[nullx]", LITERAL),
	T("{\"a\":tru}", LITERAL), T("{\"a\":01}", NUMBER),
	T("[+1]", SYNTAX), T("[.5]", SYNTAX), T("[NaN]", SYNTAX),
	/* Commas and colons, which jsmn all but ignores. */
	T("[1,]", XCOMMA), T("[,1]", XCOMMA), T("[1,,2]", XCOMMA),
	T("[,]", XCOMMA), T("[1 2]", COMMA), T("[\"a\" \"b\"]", COMMA),
	T("[[] []]", COMMA), T("[{} 1]", COMMA),
	T("{\"a\":1,}", XCOMMA), T("{,\"a\":1}", XCOMMA), T("{,}", XCOMMA),
	T("{\"a\":1,,\"b\":2}", XCOMMA), T("{\"a\" 1}", SYNTAX),
	T("{\"a\" \"b\"}", COLON), T("{\"a\"::1}", XCOLON),
	T("{\"a\":1 \"b\":2}", COMMA), T("{\"a\":\"b\" \"c\":1}", COMMA),
	T("[1:2]", NUMBER), T("[1 :2]", XCOLON), T("{\"a\"}", COLON),
	T("[\"a\":1]", XCOLON),
	T("{\"a\":}", COLON), T("{:1}", SYNTAX), T("{:\"a\"}", XCOLON),
	T("{\"a\",\"b\"}", COLON), T("[\"a\":\"b\"]", XCOLON),
	T("{\"a\":1:2}", NUMBER), T("{\"a\":1 :2}", XCOLON), T(":", NOTJSON),
	T(",", NOTJSON),
	T("\"a\":1 ", XCOLON),
	/* More than one value. */
	T("{} {}", TRAIL), T("{}[]", TRAIL), T("\"a\" \"b\"", TRAIL),
	T("\"a\"\"b\"", TRAIL), T("[] 1", TRAIL), T("[]1", TRAIL),
	T("1 2", TRAIL), T("true false", TRAIL), T("{}x", SYNTAX),
	T("[]]", SYNTAX), T("{}}", SYNTAX), T("[1]]", SYNTAX),
	/* Strings. */
	T("\"a\x01z\"", CTRL), T("\"\t\"", CTRL), T("\"\n\"", CTRL),
	T("\"\r\"", CTRL), T("\"\x1f\"", CTRL), T("[\"\x1f\"]", CTRL),
	T("\"0123456789abcdef\x01\"", CTRL), T("{\"\x02\":1}", CTRL),
	T("\"\\x41\"", ESCAPE), T("\"\\u12\"", ESCAPE),
	T("\"\\u12G4\"", ESCAPE), T("\"\\U0041\"", ESCAPE),
	T("\"\\'\"", ESCAPE), T("\"\\a\"", ESCAPE), T("\"\\ \"", ESCAPE),
	T("\"\\0\"", ESCAPE), T("[\"\\v\"]", ESCAPE),
	T("\"\\ud800\"", SURROGATE), T("\"\\udc00\"", SURROGATE),
	T("\"\\uDFFF\"", SURROGATE), T("\"\\ud800\\u0041\"", SURROGATE),
	T("\"\\ud800x\"", SURROGATE), T("\"\\udbff\\udbff\"", SURROGATE),
	T("\"\\udfff\\ud800\"", SURROGATE), T("\"\\ud800\\n\"", SURROGATE),
	T("\"\\uDC00\\uD800\"", SURROGATE), T("\"x\\ud83d\"", SURROGATE),
	T("\"\\ud83d\\ude0\"", ESCAPE),
	T("\"\xff\"", UTF8), T("\"\x80\"", UTF8), T("\"\xc0\xaf\"", UTF8),
	T("\"\xed\xa0\x80\"", UTF8), T("\"\xe2\x82\"", UTF8),
	T("\"\xf4\x90\x80\x80\"", UTF8), T("\"\xf8\x88\x80\x80\x80\"", UTF8),
	T("\"abcdefghijklmnop\xff\"", UTF8), T("{\"\xfe\":1}", UTF8),
	/* Bytes outside strings. */
	T("[1]\xc2\xa0", SYNTAX), T("\xef\xbb\xbf{}", NOTJSON),
	T("\xc2\xa0[]", NOTJSON), T("[\xc2\xa0]", SYNTAX), T("{}\0", TRAIL),
	T("[\0]", SYNTAX), T("\"a\0b\"", CTRL), T("\0", NOTJSON),
	T("\f{}", NOTJSON), T("{}\v", SYNTAX), T("[1,\f2]", SYNTAX),
	T("/* c */ {}", NOTJSON), T("{} // c", SYNTAX),
	T("[1 /* c */]", SYNTAX), T("{'a':1}", SYNTAX), T("'a'", NOTJSON),
	T("[undefined]", SYNTAX), T("{a:1}", SYNTAX),
	/* Keys. */
	T("{1:2}", SYNTAX), T("{null:1}", SYNTAX), T("{[]:1}", SYNTAX),
	T("{{}:1}", SYNTAX), T("{true:1}", SYNTAX), T("{\"a\":1,2}", SYNTAX),
	/* Incomplete or unbalanced. */
	T("", NOTJSON), T("   ", NOTJSON), T("\n\t\r ", NOTJSON),
	T("[", TRUNC), T("{", TRUNC), T("[1", TRUNC), T("[1,2", TRUNC),
	T("{\"a\":1", TRUNC), T("{\"a\":", TRUNC), T("{\"a\"", TRUNC),
	T("\"abc", TRUNC), T("[\"a]", TRUNC), T("[[]", TRUNC),
	T("\"\\", TRUNC), T("\"\\u00", TRUNC), T("]", NOTJSON),
	T("}", NOTJSON), T("[}", SYNTAX), T("{]", SYNTAX),
	T("[[[]]", TRUNC), T("{\"a\":[}", SYNTAX),
};

/* Valid JSON, including its corners. */
static const struct text valid[] = {
	T("0", NULL), T("-0", NULL), T("1e+5", NULL), T("0.5E-3", NULL),
	T("-1.5e10", NULL), T("1E2", NULL), T("1e-0", NULL), T("0e0", NULL),
	T("-0.0", NULL), T("123456789012345678901234567890", NULL),
	T("1e400", NULL), T("true", NULL), T("false", NULL), T("null", NULL),
	T(" true ", NULL), T("\n42\r\n", NULL), T("\"\"", NULL), T("[]", NULL),
	T("{}", NULL), T("[[]]", NULL), T(" \t\n\r[ 1 , 2 ]\r\n", NULL),
	T("{\"\":0}", NULL), T("\"\\u0000\"", NULL),
	T("\"\\ud83d\\ude00\"", NULL), T("\"\\uD83D\\uDE00\"", NULL),
	T("\"\\udbff\\udfff\"", NULL), T("\"\\ud800\\udc00\"", NULL),
	T("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", NULL),
	T("\"\xf0\x9f\x98\x80\"", NULL), T("\"\x7f\"", NULL),
	T("\"\xef\xbf\xbf\"", NULL), T("\"\xf4\x8f\xbf\xbf\"", NULL),
	T("\"\xe2\x80\xa8\xe2\x80\xa9\"", NULL), T("\"\\u00e9\\u20AC\"", NULL),
	T("{\"a\":1,\"a\":2}", NULL), T("{\"a\":[1,{\"b\":null}],\"c\":\"d\"}",
	NULL), T("[\"a\",\"b\"]", NULL), T("{\"a\":{}}", NULL),
	T("[{}]", NULL), T("[[],[[]]]", NULL),
	T("{ \"a\" : 1 , \"b\" : [ ] }", NULL), T("\"/\"", NULL),
	T("[-0,0.0,1e1,1E-1,1e+1,-9.99e-99]", NULL),
	T("\"0123456789abcdef\\\"0123456789abcdef\"", NULL),
	T("\"01234567\\u00410123456\xc3\xa9\"", NULL),
	T("{\"a\":true,\"b\":false,\"c\":null}", NULL),
	T("[true,false,null]", NULL), T("[1,-1,\"\",[],{}]", NULL),
	T("{\"\xc3\xa9\":\"\xe2\x82\xac\"}", NULL),
};

static char	 spanbuf[2][512];
static int	 spanidx;

static const char	*span_str(struct json_span);
static char		*repeat(const char *, size_t, const char *,
			    const char *);
static char		*nested(int, const char *, const char *,
			    const char *);
static char		*deep_array(int);
static double		 elapsed_ns(const struct timespec *);
static size_t		 wrap(char *, const struct text *);
static void		 test_texts(void);
static void		 test_requests(void);
static void		 test_user_id_lengths(void);
static void		 test_payload_bytes(void);
static void		 test_depth(void);
static void		 test_large(void);
static void		 test_hostile(void);
static int		 escape_is(const char *, size_t, const char *,
			    size_t, const char *);
static size_t		 ref_ctl(int, char *);
static void		 test_escape(void);
static void		 test_escape_random(void);
static void		 bench(void);

/* A span as a C string for is_str(): "NULL" when unset, cut at 500. */
static const char *
span_str(struct json_span s)
{
	char	*b = spanbuf[spanidx++ % 2];

	if (s.p == NULL)
		return "NULL";
	snprintf(b, sizeof(spanbuf[0]), "%.*s", (int)(s.len > 500 ? 500 :
	    s.len), s.p);
	return b;
}

/* head + n copies of unit + tail, malloc'd. */
static char *
repeat(const char *head, size_t n, const char *unit, const char *tail)
{
	size_t	 hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	size_t	 i;
	char	*s, *o;

	if ((s = malloc(hl + n * ul + tl + 1)) == NULL)
		abort();
	o = s;
	memcpy(o, head, hl);
	o += hl;
	for (i = 0; i < n; i++, o += ul)
		memcpy(o, unit, ul);
	memcpy(o, tail, tl + 1);
	return s;
}

/* open^depth inner close^depth, malloc'd. */
static char *
nested(int depth, const char *open, const char *inner, const char *close)
{
	size_t	 ol = strlen(open), il = strlen(inner);
	size_t	 cl = strlen(close);
	char	*s, *o;
	int	 i;

	if ((s = malloc((ol + cl) * (size_t)depth + il + 1)) == NULL)
		abort();
	o = s;
	for (i = 0; i < depth; i++, o += ol)
		memcpy(o, open, ol);
	memcpy(o, inner, il);
	o += il;
	for (i = 0; i < depth; i++, o += cl)
		memcpy(o, close, cl);
	*o = '\0';
	return s;
}

static double
elapsed_ns(const struct timespec *t0)
{
	struct timespec	t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e9 + (t1.tv_nsec - t0->tv_nsec);
}

/* {"user-id":"1","payload":TEXT} in msg[256]; returns its length. */
static size_t
wrap(char *msg, const struct text *t)
{
	static const char	 head[] = "{\"user-id\":\"1\",\"payload\":";

	memcpy(msg, head, sizeof(head) - 1);
	memcpy(msg + sizeof(head) - 1, t->t_s, t->t_len);
	msg[sizeof(head) - 1 + t->t_len] = '}';
	return sizeof(head) + t->t_len;
}

/* Every invalid text refused with its reason, every valid one taken. */
static void
test_texts(void)
{
	static jsmntok_t	 tok[64];
	struct json_request	 r;
	jsmn_parser		 jp;
	const struct text	*t;
	const char		*why;
	char			 msg[256];
	size_t			 i, n, jsmn_ok = 0, bad = 0, lead, trail;

	for (i = 0; i < nitems(invalid); i++) {
		t = &invalid[i];
		is_str(json_check(t->t_s, t->t_len), t->t_why,
		    "invalid %zu: '%.*s'", i, (int)t->t_len, t->t_s);
		if (json_valid(t->t_s, t->t_len))
			bad++, diag("json_valid() took it");
		jsmn_init(&jp);
		if (jsmn_parse(&jp, t->t_s, t->t_len, tok, nitems(tok)) >= 0)
			jsmn_ok++;
		/* The same text as a payload (it may hold a NUL). */
		n = wrap(msg, t);
		if (json_request_parse(msg, n, &r, &why) != -1 ||
		    (strncmp(why, "invalid JSON: ", 14) != 0 &&
		    strcmp(why, DEEP) != 0)) {
			bad++;
			diag("as a payload: %s", why);
		}
	}
	ok(bad == 0, "json_valid() and json_request_parse() refuse all %zu"
	    " invalid texts, %zu of which jsmn alone tokenises",
	    nitems(invalid), jsmn_ok);

	bad = 0;
	for (i = 0; i < nitems(valid); i++) {
		t = &valid[i];
		is_str(json_check(t->t_s, t->t_len), NULL, "valid %zu: '%.*s'",
		    i, (int)t->t_len, t->t_s);
		n = wrap(msg, t);
		lead = strspn(t->t_s, " \t\r\n");
		for (trail = 0; strchr(" \t\r\n", t->t_s[t->t_len - trail - 1]);
		    trail++)
			;
		if (json_request_parse(msg, n, &r, &why) != 0 ||
		    r.payload.p != msg + 25 + lead ||
		    r.payload.len != t->t_len - lead - trail)
			bad++;
	}
	ok(bad == 0, "each valid text is taken as a payload, span exact");
	ok(json_valid("[1]xyz", 3), "length bounds the text, not a NUL");
	ok(!json_valid("[1]", 2), "a cut text is refused");
}

struct rcase {
	const char	*c_msg;
	const char	*c_uid;		/* NULL: refused */
	const char	*c_why;
	const char	*c_payload;	/* on success */
	const char	*c_id;		/* "NULL": none */
};
#define OK(msg, uid, payload, id)	{ msg, uid, NULL, payload, id }
#define NO(msg, why, id)		{ msg, NULL, why, NULL, id }

static const struct rcase rcases[] = {
	OK("{\"id\": \"c-17\", \"user-id\": \"42\", \"payload\": "
	    "{\"any\": [\"json\", 1, true]}}", "42",
	    "{\"any\": [\"json\", 1, true]}", "\"c-17\""),
	OK("{\"user-id\":\"42\"}", "42", "null", "NULL"),
	OK("{\"user-id\":42}", "42", "null", "NULL"),
	OK("{\"user-id\":-7}", "-7", "null", "NULL"),
	OK("{\"user-id\":0}", "0", "null", "NULL"),
	OK("{\"user-id\":-0}", "-0", "null", "NULL"),
	OK("{\"user-id\":123456789012345678901234567890}",
	    "123456789012345678901234567890", "null", "NULL"),
	OK("{\"user_id\":\"alias\"}", "alias", "null", "NULL"),
	OK("{\"user_id\":9}", "9", "null", "NULL"),
	OK("  {\"user-id\" : \"1\" }  \n", "1", "null", "NULL"),
	OK("{\"user-id\":\"\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9\"}",
	    "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9", "null", "NULL"),
	OK("{\"user-id\":\"a\\\"b\\\\c\\/d\\n\\t\\u0041\\u00e9"
	    "\\ud83d\\ude00\"}",
	    "a\"b\\c/d\n\tA\xc3\xa9\xf0\x9f\x98\x80", "null", "NULL"),
	OK("{\"user-id\":\" \"}", " ", "null", "NULL"),
	/* user-id: duplicates, types, empty, missing. */
	NO("{\"user-id\":\"a\",\"user_id\":\"b\"}", DUP, "NULL"),
	NO("{\"user_id\":\"a\",\"user-id\":\"a\"}", DUP, "NULL"),
	NO("{\"user-id\":\"a\",\"user-id\":\"a\"}", DUP, "NULL"),
	NO("{\"user_id\":1,\"user_id\":2}", DUP, "NULL"),
	NO("{\"user-id\":4.2}", UID_TYPE, "NULL"),
	NO("{\"user-id\":1e3}", UID_TYPE, "NULL"),
	NO("{\"user-id\":1E3}", UID_TYPE, "NULL"),
	NO("{\"user-id\":-1.0}", UID_TYPE, "NULL"),
	NO("{\"user-id\":true}", UID_TYPE, "NULL"),
	NO("{\"user-id\":false}", UID_TYPE, "NULL"),
	NO("{\"user-id\":null}", UID_TYPE, "NULL"),
	NO("{\"user-id\":[]}", UID_TYPE, "NULL"),
	NO("{\"user-id\":{}}", UID_TYPE, "NULL"),
	NO("{\"user-id\":[\"1\"]}", UID_TYPE, "NULL"),
	NO("{\"user-id\":{\"user-id\":\"1\"}}", UID_TYPE, "NULL"),
	NO("{\"user-id\":\"\"}", UID_EMPTY, "NULL"),
	NO("{\"user-id\":\"a\\u0000b\"}", UID_NUL, "NULL"),
	NO("{}", UID_MISSING, "NULL"),
	NO("{\"payload\":1}", UID_MISSING, "NULL"),
	NO("{\"userid\":\"1\"}", UID_MISSING, "NULL"),
	NO("{\"User-Id\":\"1\"}", UID_MISSING, "NULL"),
	NO("{\"user-id \":\"1\"}", UID_MISSING, "NULL"),
	NO("{\"payload\":{\"user-id\":\"x\"}}", UID_MISSING, "NULL"),
	NO("{\"a\":[{\"user-id\":\"x\"}]}", UID_MISSING, "NULL"),
	/* payload, every type, byte for byte. */
	OK("{\"user-id\":\"1\",\"payload\":\"x\"}", "1", "\"x\"", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":\"\"}", "1", "\"\"", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":\"a\\\" \\u0041\\n\"}", "1",
	    "\"a\\\" \\u0041\\n\"", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":12}", "1", "12", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":-1.5e-3}", "1", "-1.5e-3", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":true}", "1", "true", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":false}", "1", "false", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":null}", "1", "null", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":[]}", "1", "[]", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":{}}", "1", "{}", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":[1, 2 ,3]}", "1", "[1, 2 ,3]",
	    "NULL"),
	OK("{\"payload\": { \"a\" : [ 1 , { \"b\" : null } ] },\"user-id\":1}",
	    "1", "{ \"a\" : [ 1 , { \"b\" : null } ] }", "NULL"),
	OK("{\"payload\" :\n\t [1]\r\n ,\"user-id\":\"1\"}", "1", "[1]",
	    "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":{\"id\":5,\"user-id\":\"x\"}}",
	    "1", "{\"id\":5,\"user-id\":\"x\"}", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":[[[{\"a\":[[]]}]]]}", "1",
	    "[[[{\"a\":[[]]}]]]", "NULL"),
	OK("{\"user-id\":\"1\",\"payload\":\"\xe2\x82\xac\"}", "1",
	    "\"\xe2\x82\xac\"", "NULL"),
	NO("{\"user-id\":\"1\",\"payload\":1,\"payload\":2}", DUP, "NULL"),
	/* id: strings with their quotes, numbers as written. */
	OK("{\"id\":\"c-17\",\"user-id\":\"1\"}", "1", "null", "\"c-17\""),
	OK("{\"id\":17,\"user-id\":\"1\"}", "1", "null", "17"),
	OK("{\"id\":-1.5e3,\"user-id\":\"1\"}", "1", "null", "-1.5e3"),
	OK("{\"id\":0.25,\"user-id\":\"1\"}", "1", "null", "0.25"),
	OK("{\"id\":\"\",\"user-id\":\"1\"}", "1", "null", "\"\""),
	OK("{\"id\":\"a\\u0041\\\"\",\"user-id\":\"1\"}", "1", "null",
	    "\"a\\u0041\\\"\""),
	NO("{\"id\":true,\"user-id\":\"1\"}", ID_TYPE, "NULL"),
	NO("{\"id\":false,\"user-id\":\"1\"}", ID_TYPE, "NULL"),
	NO("{\"id\":null,\"user-id\":\"1\"}", ID_TYPE, "NULL"),
	NO("{\"id\":[1],\"user-id\":\"1\"}", ID_TYPE, "NULL"),
	NO("{\"id\":{},\"user-id\":\"1\"}", ID_TYPE, "NULL"),
	NO("{\"id\":\"a\",\"id\":\"b\",\"user-id\":\"1\"}", DUP, "NULL"),
	NO("{\"id\":true,\"id\":\"b\",\"user-id\":\"1\"}", ID_TYPE, "NULL"),
	/* id echoed on errors of a valid JSON text... */
	NO("{\"id\":\"x\"}", UID_MISSING, "\"x\""),
	NO("{\"id\":7,\"user-id\":\"\"}", UID_EMPTY, "7"),
	NO("{\"id\":\"x\",\"user-id\":\"a\",\"user_id\":\"b\"}", DUP, "\"x\""),
	NO("{\"user-id\":[],\"id\":\"y\"}", UID_TYPE, "\"y\""),
	NO("{\"user-id\":true,\"id\":[]}", UID_TYPE, "NULL"),
	NO("{\"id\":[],\"user-id\":true}", ID_TYPE, "NULL"),
	NO("{\"id\":1,\"payload\":0,\"payload\":0}", DUP, "1"),
	/* ...but not of an invalid one. */
	NO("{\"id\":\"x\",\"user-id\":\"1\",}", XCOMMA, "NULL"),
	NO("{\"id\":\"x\",\"user-id\":tru}", LITERAL, "NULL"),
	NO("{\"id\":\"x\",\"user-id\":\"1\"", TRUNC, "NULL"),
	NO("{\"id\":\"x\",\"user-id\":\"1\"} {}", TRAIL, "NULL"),
	/* Unknown members ignored, other duplicates allowed. */
	OK("{\"user-id\":\"1\",\"extra\":{\"id\":\"n\"},\"more\":[1,2]}", "1",
	    "null", "NULL"),
	OK("{\"x\":1,\"x\":2,\"user-id\":\"1\"}", "1", "null", "NULL"),
	OK("{\"ID\":1,\"Payload\":2,\"user-id\":\"1\"}", "1", "null", "NULL"),
	/* Keys compared after unescaping. */
	OK("{\"user\\u002did\":\"5\"}", "5", "null", "NULL"),
	OK("{\"\\u0075ser_id\":\"6\"}", "6", "null", "NULL"),
	OK("{\"user-id\":1,\"pay\\u006coad\":[1]}", "1", "[1]", "NULL"),
	OK("{\"\\u0069\\u0064\":\"q\",\"user-id\":\"1\"}", "1", "null",
	    "\"q\""),
	OK("{\"user-id\":1,\"\\u0069\\u0064\\u0069\\u0064\":2}", "1", "null",
	    "NULL"),
	NO("{\"user\\u002did\":\"5\",\"user-id\":\"6\"}", DUP, "NULL"),
	/* Not an object. */
	NO("[]", OBJECT, "NULL"), NO("[{\"user-id\":\"1\"}]", OBJECT, "NULL"),
	NO("\"x\"", OBJECT, "NULL"), NO("1", OBJECT, "NULL"),
	NO("null", OBJECT, "NULL"), NO(" true ", OBJECT, "NULL"),
	/* Not JSON. */
	NO("", NOTJSON, "NULL"), NO("hello", NOTJSON, "NULL"),
	NO("{", TRUNC, "NULL"), NO("{\"user-id\":\"\xff\"}", UTF8, "NULL"),
	NO("{\"user-id\":\"1\"}x", SYNTAX, "NULL"),
	NO("{\"user-id\":\"1\"\"payload\":1}", COMMA, "NULL"),
};

static void
test_requests(void)
{
	struct json_request	 r;
	const struct rcase	*c;
	const char		*why;
	size_t			 i;
	int			 rc;

	for (i = 0; i < nitems(rcases); i++) {
		c = &rcases[i];
		memset(&r, 0xa5, sizeof(r));
		why = "unset";
		rc = json_request_parse(c->c_msg, strlen(c->c_msg), &r, &why);
		if (c->c_uid != NULL) {
			is_str(rc == 0 ? r.user_id : why, c->c_uid,
			    "'%s': user-id", c->c_msg);
			is_int(r.user_id_len, strlen(c->c_uid),
			    "'%s': user-id length", c->c_msg);
			is_str(span_str(r.payload), c->c_payload,
			    "'%s': payload", c->c_msg);
		} else {
			is_str(rc == -1 ? why : "accepted", c->c_why,
			    "'%s': refused", c->c_msg);
			ok(r.user_id[0] == '\0' && r.user_id_len == 0,
			    "'%s': no user-id on error", c->c_msg);
		}
		is_str(span_str(r.id), c->c_id, "'%s': id", c->c_msg);
	}
}

/* The 128-byte limit, counted after unescaping. */
static void
test_user_id_lengths(void)
{
	static const struct {
		const char	*head, *unit, *tail;
		size_t		 n;
		size_t		 want;	/* 0: too long */
	} L[] = {
		{ "{\"user-id\":\"", "a", "\"}", 128, 128 },
		{ "{\"user-id\":\"", "a", "\"}", 129, 0 },
		{ "{\"user-id\":", "7", "}", 128, 128 },
		{ "{\"user-id\":", "7", "}", 129, 0 },
		{ "{\"user-id\":-", "7", "}", 127, 128 },
		{ "{\"user-id\":-", "7", "}", 128, 0 },
		{ "{\"user_id\":\"", "\\u00e9", "\"}", 64, 128 },
		{ "{\"user_id\":\"", "\\u00e9", "\"}", 65, 0 },
		{ "{\"user-id\":\"", "\xe2\x82\xac", "\"}", 42, 126 },
		{ "{\"user-id\":\"", "\xe2\x82\xac", "\"}", 43, 0 },
		{ "{\"user-id\":\"", "\\ud83d\\ude00", "\"}", 32, 128 },
		{ "{\"user-id\":\"", "\\ud83d\\ude00", "\"}", 33, 0 },
		{ "{\"user-id\":\"", "\\\\", "\"}", 128, 128 },
		{ "{\"user-id\":\"", "\\n", "x\"}", 128, 0 },
	};
	struct json_request	 r;
	const char		*why;
	char			*msg;
	size_t			 i;
	int			 rc;

	for (i = 0; i < nitems(L); i++) {
		msg = repeat(L[i].head, L[i].n, L[i].unit, L[i].tail);
		rc = json_request_parse(msg, strlen(msg), &r, &why);
		if (L[i].want != 0)
			ok(rc == 0 && r.user_id_len == L[i].want &&
			    strlen(r.user_id) == L[i].want &&
			    utf8_valid((const uint8_t *)r.user_id,
			    r.user_id_len), "%zu x '%s': %zu bytes taken",
			    L[i].n, L[i].unit, L[i].want);
		else
			is_str(rc == -1 ? why : "accepted", UID_LONG,
			    "%zu x '%s': too long", L[i].n, L[i].unit);
		free(msg);
	}
	msg = repeat("{\"user-id\":\"", 64, "\\u00e9", "\"}");
	json_request_parse(msg, strlen(msg), &r, &why);
	ok(memcmp(r.user_id, "\xc3\xa9\xc3\xa9", 4) == 0 &&
	    r.user_id[128] == '\0', "escapes decoded into UTF-8");
	free(msg);
}

/* The payload span is exactly the bytes of the message. */
static void
test_payload_bytes(void)
{
	static const char	 msg[] = "{\"user-id\":\"1\",\"payload\":"
	    "  {\"k\" :\t[\"\\u00e9\", 1.50, \"\xc3\xa9\"] }  }";
	struct json_request	 r;
	const char		*why;

	ok(json_request_parse(msg, sizeof(msg) - 1, &r, &why) == 0,
	    "payload with whitespace and escapes");
	ok(r.payload.p == msg + 27 && r.payload.len == sizeof(msg) - 1 - 30,
	    "payload span points into the message");
	ok(memcmp(r.payload.p, "{\"k\" :\t[\"\\u00e9\", 1.50, \"\xc3\xa9\"] }",
	    r.payload.len) == 0, "payload bytes as received");
	ok(json_request_parse("{\"user-id\":\"1\"}", 15, &r, &why) == 0 &&
	    r.payload.len == 4 && memcmp(r.payload.p, "null", 4) == 0,
	    "absent payload is null");
}

/* JSON_MAX_DEPTH containers nest, one more does not. */
static void
test_depth(void)
{
	struct json_request	 r;
	const char		*why;
	char			*s, *m;

	s = nested(JSON_MAX_DEPTH, "[", "", "]");
	is_str(json_check(s, strlen(s)), NULL, "%d arrays deep",
	    JSON_MAX_DEPTH);
	free(s);
	s = nested(JSON_MAX_DEPTH + 1, "[", "", "]");
	is_str(json_check(s, strlen(s)), DEEP, "%d arrays deep",
	    JSON_MAX_DEPTH + 1);
	free(s);
	s = nested(JSON_MAX_DEPTH, "{\"a\":", "1", "}");
	is_str(json_check(s, strlen(s)), NULL, "%d objects deep",
	    JSON_MAX_DEPTH);
	free(s);
	s = nested(JSON_MAX_DEPTH + 1, "{\"a\":", "1", "}");
	is_str(json_check(s, strlen(s)), DEEP, "%d objects deep",
	    JSON_MAX_DEPTH + 1);
	free(s);
	s = nested(JSON_MAX_DEPTH / 2, "[{\"a\":", "1", "}]");
	is_str(json_check(s, strlen(s)), NULL, "%d mixed deep",
	    JSON_MAX_DEPTH);
	free(s);
	s = nested(JSON_MAX_DEPTH - 1, "[", "", "]");
	m = repeat("{\"user-id\":1,\"payload\":", 1, s, "}");
	ok(json_request_parse(m, strlen(m), &r, &why) == 0,
	    "payload %d deep in a request", JSON_MAX_DEPTH - 1);
	free(m);
	free(s);
	s = nested(JSON_MAX_DEPTH, "[", "", "]");
	m = repeat("{\"user-id\":1,\"payload\":", 1, s, "}");
	is_str(json_request_parse(m, strlen(m), &r, &why) == -1 ? why : "",
	    DEEP, "payload %d deep in a request", JSON_MAX_DEPTH);
	free(m);
	free(s);
}

/* 1 MiB messages: one long string, many small values. */
static void
test_large(void)
{
	struct json_request	 r;
	const char		*why;
	char			*s, *big;
	size_t			 n;

	big = repeat("", MIB, "x", "");
	s = repeat("{\"id\":1,\"user-id\":\"big\",\"payload\":\"", 1, big,
	    "\"}");
	n = strlen(s);
	ok(json_request_parse(s, n, &r, &why) == 0 &&
	    r.payload.len == MIB + 2 && r.payload.p == s + 34 &&
	    strcmp(r.user_id, "big") == 0 && r.id.len == 1,
	    "1 MiB string payload");
	s[n - 10] = '\x01';
	is_str(json_request_parse(s, n, &r, &why) == -1 ? why : "", CTRL,
	    "1 MiB string with a control character near its end");
	free(s);
	free(big);

	s = repeat("{\"user-id\":2,\"payload\":[0", MIB / 2, ",1", "]}");
	n = strlen(s);
	ok(json_request_parse(s, n, &r, &why) == 0 &&
	    r.payload.len == n - 24 && r.payload.p[r.payload.len - 1] == ']',
	    "1 MiB payload of %d numbers", MIB / 2 + 1);
	s[n - 4] = ' ';
	is_str(json_request_parse(s, n, &r, &why) == -1 ? why : "", COMMA,
	    "the same with its last ',' missing");
	free(s);

	s = repeat("[", MIB / 8, "{\"k\":\"\xc3\xa9\\n\",\"n\":-1.5e3},",
	    "{}]");
	ok(json_valid(s, strlen(s)), "1 MiB array of objects");
	free(s);
	s = repeat("\"", JSON_MAX_TEXT - 2, "x", "\"");
	ok(json_valid(s, JSON_MAX_TEXT), "a string of JSON_MAX_TEXT bytes");
	free(s);
	s = repeat("\"", JSON_MAX_TEXT - 1, "x", "\"");
	is_str(json_check(s, JSON_MAX_TEXT + 1), "too large",
	    "a text of JSON_MAX_TEXT + 1 bytes");
	free(s);
	ok(json_request_parse("{\"user-id\":3}", 13, &r, &why) == 0 &&
	    strcmp(r.user_id, "3") == 0,
	    "a small message after large ones (token array released)");
}

/* [ {"":{"":...0...}}, ... 0 ]: about 1 MiB of objects `depth` deep. */
static char *
deep_array(int depth)
{
	char	*obj, *unit, *s;

	obj = nested(depth, "{\"\":", "0", "}");
	unit = repeat(obj, 1, ",", "");
	s = repeat("[", MIB / strlen(unit), unit, "0]");
	free(unit);
	free(obj);
	return s;
}

/*
 * Texts built to make jsmn's closing-bracket walk quadratic: refused
 * (or, when valid, taken) in bounded time.  The times are shown, not
 * asserted; the watchdog catches a regression to minutes.
 */
static void
test_hostile(void)
{
	struct timespec	 t0;
	char		*s;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	s = nested(MIB / 2, "[", "", "]");
	is_str(json_check(s, MIB), DEEP, "1 MiB of nested arrays");
	diag("1 MiB of nested arrays refused in %.1f ms",
	    elapsed_ns(&t0) / 1e6);
	free(s);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	s = repeat("[", MIB / 3, "1 :", "1]");
	is_str(json_check(s, strlen(s)), DEEP, "1 MiB of 1 :1 :1 :...");
	diag("1 MiB of 1 :1 :1 :... refused in %.1f ms",
	    elapsed_ns(&t0) / 1e6);
	free(s);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	s = deep_array(JSON_MAX_DEPTH);
	is_str(json_check(s, strlen(s)), DEEP, "1 MiB of objects %d deep "
	    "in an array", JSON_MAX_DEPTH);
	diag("1 MiB of objects %d deep in an array refused in %.1f ms",
	    JSON_MAX_DEPTH, elapsed_ns(&t0) / 1e6);
	free(s);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	s = deep_array(JSON_MAX_DEPTH - 1);
	is_str(json_check(s, strlen(s)), NULL, "1 MiB of objects %d deep "
	    "in an array: valid", JSON_MAX_DEPTH - 1);
	diag("1 MiB of objects %d deep in an array (the costliest valid "
	    "text) taken in %.1f ms", JSON_MAX_DEPTH - 1,
	    elapsed_ns(&t0) / 1e6);
	free(s);

	s = repeat("", MIB, "[", "");
	is_str(json_check(s, MIB), DEEP, "1 MiB of '[' unclosed");
	free(s);
	s = repeat("[", MIB, "\"\":", "]");
	is_str(json_check(s, strlen(s)), DEEP, "1 MiB of \"\":\"\":...");
	free(s);
}

/* How RFC 8259 wants control character c escaped, in want[]. */
static size_t
ref_ctl(int c, char *want)
{
	static const char	 abbr[] = "\bb\tt\nn\ff\rr";
	const char		*a = strchr(abbr, c);

	if (c != 0 && a != NULL)
		return (size_t)snprintf(want, 8, "\\%c", a[1]);
	return (size_t)snprintf(want, 8, "\\u%04x", c);
}

/* json_escape(p, n) gives want (wlen bytes). */
static int
escape_is(const char *p, size_t n, const char *want, size_t wlen,
    const char *what)
{
	struct buf	 b = BUF_INIT;
	int		 pass;

	json_escape(&b, (const uint8_t *)p, n);
	pass = b.b_len == wlen &&
	    (wlen == 0 || memcmp(b.b_p, want, wlen) == 0);
	ok(pass, "escape %s", what);
	if (!pass)
		diag("got '%.*s'", (int)b.b_len, b.b_p);
	buf_free(&b);
	return pass;
}

#define ESC(in, out, what)						\
	escape_is(in, sizeof(in) - 1, out, sizeof(out) - 1, what)

static void
test_escape(void)
{
	static const char	 ctl[] = "\\u0000\\u0001\\u0002\\u0003\\u0004"
	    "\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
	    "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
	    "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f";
	struct buf		 b = BUF_INIT;
	char			 in[32], want[32];
	size_t			 i, k, n;
	int			 bad;

	ESC("", "", "nothing");
	ESC("hello, world", "hello, world", "plain ASCII");
	ESC("\"", "\\\"", "a quote");
	ESC("\\", "\\\\", "a backslash");
	ESC("/", "/", "a slash (not escaped)");
	ESC("\x7f", "\x7f", "DEL (not escaped)");
	for (i = 0; i < 32; i++)
		in[i] = (char)i;
	escape_is(in, 32, ctl, sizeof(ctl) - 1, "the 32 control characters");
	ESC("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac"
	    "\xf0\x9f\x98\x80", "multi-byte UTF-8 kept");
	ESC("\xe2\x80\xa8\xe2\x80\xa9", "\xe2\x80\xa8\xe2\x80\xa9",
	    "U+2028 and U+2029 kept");
	ESC("\xef\xbf\xbd", "\xef\xbf\xbd", "U+FFFD itself kept");
	ESC("\xff", "\xef\xbf\xbd", "FF replaced");
	ESC("a\x80z", "a\xef\xbf\xbdz", "a stray continuation replaced");
	ESC("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", "C0 AF: two");
	ESC("\xe2\x82", "\xef\xbf\xbd", "E2 82 (truncated): one");
	ESC("\xe2\x82x", "\xef\xbf\xbdx", "E2 82 x: one, then x");
	ESC("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
	    "ED A0 80 (surrogate): three");
	ESC("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd", "F4 90 80 80 (over U+10FFFF): four");
	ESC("\xf0\x9f\x98", "\xef\xbf\xbd", "F0 9F 98 (truncated): one");
	ESC("\xf0\x9f\x98\"", "\xef\xbf\xbd\\\"",
	    "F0 9F 98 then a quote: one, then the quote");
	/* Unicode 15.0 table 3-8. */
	ESC("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
	    "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "b\xef\xbf\xbd"
	    "c\xef\xbf\xbd\xef\xbf\xbd" "d", "Unicode table 3-8");
	is_int(json_escape(&b, (const uint8_t *)"\x61\xf1\x80\x80\xe1\x80"
	    "\xc2\x62\x80\x63\x80\xbf\x64", 13), 6,
	    "table 3-8: six replacements counted");
	buf_reset(&b);
	is_int(json_escape(&b, (const uint8_t *)"\xc3\xa9\"", 3), 0,
	    "no replacements in valid UTF-8");

	/* Appends. */
	buf_reset(&b);
	buf_appends(&b, "X");
	json_escape(&b, (const uint8_t *)"\n", 1);
	ok(b.b_len == 3 && memcmp(b.b_p, "X\\n", 3) == 0,
	    "appends to what the buffer holds");

	/* Every single byte. */
	bad = 0;
	for (i = 0; i < 256; i++) {
		buf_reset(&b);
		in[0] = (char)i;
		json_escape(&b, (const uint8_t *)in, 1);
		if (i < 0x20)
			n = ref_ctl((int)i, want);
		else if (i == '"' || i == '\\')
			n = (size_t)snprintf(want, sizeof(want), "\\%c",
			    (int)i);
		else if (i < 0x80)
			n = (size_t)snprintf(want, sizeof(want), "%c",
			    (int)i);
		else
			n = (size_t)snprintf(want, sizeof(want), "%s",
			    "\xef\xbf\xbd");
		if (b.b_len != n || memcmp(b.b_p, want, n) != 0)
			bad++;
	}
	ok(bad == 0, "every single byte escaped as it should be");

	/* A special byte at every place around the 8-byte steps. */
	bad = 0;
	for (k = 0; k < 24; k++) {
		for (i = 0; i < 24; i++)
			in[i] = 'a';
		in[k] = '"';
		buf_reset(&b);
		json_escape(&b, (const uint8_t *)in, 24);
		if (b.b_len != 25 || b.b_p[k] != '\\' || b.b_p[k + 1] != '"')
			bad++;
		in[k] = (char)0xe9;
		buf_reset(&b);
		json_escape(&b, (const uint8_t *)in, 24);
		if (b.b_len != 26 || memcmp(b.b_p + k, "\xef\xbf\xbd", 3) != 0)
			bad++;
	}
	ok(bad == 0, "special bytes at every offset of a word");
	buf_free(&b);
}

/* Random bytes: the output is always valid UTF-8 and a valid string. */
static void
test_escape_random(void)
{
	struct buf	 b = BUF_INIT;
	uint64_t	 x = 88172645463325252ULL;
	uint8_t		*in;
	size_t		 i, n, round, repl;
	int		 bad = 0;

	if ((in = malloc(MIB)) == NULL)
		abort();
	for (round = 0; round < 64; round++) {
		n = round < 63 ? (size_t)(x % 4096) : MIB;
		for (i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* Mostly text, some high bytes, a few controls. */
			in[i] = (uint8_t)(x % 8 == 0 ? x >> 8 :
			    (x >> 8) % 95 + 32);
			if (round % 4 == 0 && x % 64 == 1 && i + 1 < n) {
				in[i++] = 0xc3;	/* some valid UTF-8 */
				in[i] = 0xa9;
			}
		}
		buf_reset(&b);
		buf_appendc(&b, '"');
		repl = json_escape(&b, in, n);
		buf_appendc(&b, '"');
		if (!utf8_valid((const uint8_t *)b.b_p, b.b_len) ||
		    !json_valid(b.b_p, b.b_len) ||
		    (repl == 0) != utf8_valid(in, n))
			bad++;
	}
	ok(bad == 0, "64 random texts up to 1 MiB escape to valid JSON");
	free(in);
	buf_free(&b);
}

/* Shown, never asserted. */
static void
bench(void)
{
	static const char	 msg[] = "{\"id\":\"c-17\","
	    "\"user-id\":\"42\","
	    "\"payload\":{\"action\":\"update\",\"items\":[1,2,3,4,5],"
	    "\"flag\":true,\"price\":12.75,\"name\":\"Zo\\u00eb \xc3\xa9t\xc3"
	    "\xa9\",\"tags\":[\"a\",\"bb\",\"ccc\"],\"nested\":{\"k\":null,"
	    "\"deep\":[{\"x\":1},{\"y\":-2e3}]}}}";
	struct json_request	 r;
	struct timespec		 t0;
	struct buf		 b = BUF_INIT;
	const char		*why;
	char			*body;
	size_t			 i, n = 200000, sum = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		sum += json_request_parse(msg, sizeof(msg) - 1, &r, &why) == 0;
	diag("parse: %.0f ns/msg for a %zu-byte request%s",
	    elapsed_ns(&t0) / (double)n, sizeof(msg) - 1,
	    sum == n ? "" : " (FAILED)");

	body = repeat("", MIB, "{\"k\":\"v\\u00e9 \xc3\xa9\"}\n", "");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 8; i++) {
		buf_reset(&b);
		json_escape(&b, (const uint8_t *)body, strlen(body) / 20);
	}
	diag("escape: %.0f MB/s", 8.0 * (double)(strlen(body) / 20) /
	    (elapsed_ns(&t0) / 1e3));
	free(body);
	buf_free(&b);
}

int
main(void)
{
	tap_watchdog(120);
	test_texts();
	test_requests();
	test_user_id_lengths();
	test_payload_bytes();
	test_depth();
	test_large();
	test_hostile();
	test_escape();
	test_escape_random();
	bench();
	return done_testing();
}
