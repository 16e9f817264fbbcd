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
 * Unit tests for shared/edn.c: the exact JSON of every construct, the
 * exact message of every error, a service config, the depth limit, and
 * the property that every output is valid JSON (shared/json.c's
 * json_valid()), over the cases and over random documents.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "edn.h"
#include "json.h"
#include "tests/tap.h"
#include "util.h"

struct edn_case {
	const char	*edn;
	size_t		 len;
	const char	*want;	/* JSON, or the error message */
};
/* Inputs may hold NUL bytes, hence sizeof. */
#define C(edn, want)	{ edn, sizeof(edn) - 1, want }
#define E4		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"	/* U+00E9 x 4 */
#define E5		E4 "\xc3\xa9"

static const struct edn_case values[] = {
	/* nil, booleans. */
	C("nil", "null"), C("true", "true"), C("false", "false"),
	C(" \n\tnil\n", "null"),

	/* Integers. */
	C("42", "42"), C("-7", "-7"), C("+5", "5"), C("0", "0"), C("-0", "0"),
	C("+0", "0"), C("12N", "12"), C("-12N", "-12"), C("0N", "0"),
	C("123456789012345678901234567890N", "123456789012345678901234567890"),
	C("9223372036854775808", "9223372036854775808"),
	C("0x1F", "31"), C("0XFF", "255"), C("-0x10", "-16"), C("0x1fN", "31"),
	C("0xFFFFFFFFFFFFFFFFFFFF", "1208925819614629174706175"),
	C("017", "15"), C("-017", "-15"), C("00", "0"), C("0777N", "511"),
	C("2r1010", "10"), C("36rZZ", "1295"), C("16rff", "255"),
	C("-8r17", "-15"), C("36rN", "23"), C("2R11", "3"), C("10r0", "0"),

	/* Floats. */
	C("1.5", "1.5"), C("-2.25", "-2.25"), C("+1.5", "1.5"),
	C("1e10", "1e10"), C("1E-5", "1E-5"), C("1.5e+3", "1.5e+3"),
	C("1.", "1.0"), C("1.e2", "1.0e2"), C("01.5", "1.5"), C("00.5", "0.5"),
	C("-0.0", "-0.0"), C("1.5M", "1.5"), C("1M", "1"), C("12.50M", "12.50"),
	C("-08.5e01", "-8.5e01"), C("1e400", "\"Infinity\""),
	C("-1e400", "\"-Infinity\""), C("1e400M", "1e400"),
	C("1e-400", "1e-400"),

	/* Ratios: whole numbers as integers, others %.17g. */
	C("1/3", "0.33333333333333331"), C("-1/3", "-0.33333333333333331"),
	C("2/3", "0.66666666666666663"), C("22/7", "3.1428571428571428"),
	C("1/2", "0.5"), C("1/8", "0.125"), C("10/4", "2.5"), C("01/02", "0.5"),
	C("4/2", "2"), C("-6/3", "-2"), C("0/5", "0"), C("-0/5", "0"),
	C("1/1", "1"), C("1/100000000000000000000", "9.9999999999999995e-21"),
	C("100000000000000000000/1", "100000000000000000000"),
	C("200000000000000000000/2", "100000000000000000000"),
	C("1000000000000000000000000000000/3", "3.3333333333333332e+29"),
	C("12345678901234567890123/7", "1.7636684144620811e+21"),
	C("1/12345678901234567890123", "8.1000000729000009e-23"),
	C("-98765432109876543210/12345678901234567890123",
	    "-0.0080000000729000004"),
	C("30000000000000000000000/10000000000000000000000", "3"),

	/* Symbolic values, as Jackson writes them. */
	C("##Inf", "\"Infinity\""), C("##-Inf", "\"-Infinity\""),
	C("##NaN", "\"NaN\""), C("## Inf", "\"Infinity\""),
	C("[##Inf ##NaN]", "[\"Infinity\",\"NaN\"]"),

	/* Strings. */
	C("\"abc\"", "\"abc\""), C("\"\"", "\"\""),
	C("\"a\\tb\\nc\\rd\"", "\"a\\tb\\nc\\rd\""),
	C("\"q\\\"\\\\\"", "\"q\\\"\\\\\""), C("\"\\b\\f\"", "\"\\b\\f\""),
	C("\"\\u00e9\"", "\"\xc3\xa9\""), C("\"\\u0041\"", "\"A\""),
	C("\"\\u0000\"", "\"\\u0000\""), C("\"\\u001F\"", "\"\\u001f\""),
	C("\"\\u2028\"", "\"\xe2\x80\xa8\""),
	C("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""),
	C("\"\\101\"", "\"A\""), C("\"\\0\"", "\"\\u0000\""),
	C("\"\\12\"", "\"\\n\""), C("\"\\377\"", "\"\xc3\xbf\""),
	C("\"\\1234\"", "\"S4\""), C("\"\\1 \"", "\"\\u0001 \""),
	C("\"a\nb\"", "\"a\\nb\""), C("\"a\tb\"", "\"a\\tb\""),
	C("\"\x01\x1f\"", "\"\\u0001\\u001f\""), C("\"\0\"", "\"\\u0000\""),
	C("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
	    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""),
	C("\"\x7f/\"", "\"\x7f/\""), C("\"a;b,c#_d\"", "\"a;b,c#_d\""),

	/* Characters become one-character strings. */
	C("\\a", "\"a\""), C("\\newline", "\"\\n\""), C("\\space", "\" \""),
	C("\\tab", "\"\\t\""), C("\\return", "\"\\r\""),
	C("\\formfeed", "\"\\f\""), C("\\backspace", "\"\\b\""),
	C("\\u0041", "\"A\""), C("\\u00e9", "\"\xc3\xa9\""),
	C("\\o101", "\"A\""), C("\\o7", "\"\\u0007\""), C("\\o", "\"o\""),
	C("\\u", "\"u\""), C("\\\\", "\"\\\\\""), C("\\\"", "\"\\\"\""),
	C("\\(", "\"(\""), C("\\,", "\",\""), C("\\\xc3\xa9", "\"\xc3\xa9\""),
	C("[\\a\\b]", "[\"a\",\"b\"]"), C("[\\a,\\b]", "[\"a\",\"b\"]"),

	/* Keywords and symbols become strings. */
	C(":timeout", "\"timeout\""), C(":a/b", "\"a/b\""),
	C(":a.b/c-d", "\"a.b/c-d\""), C(":1", "\"1\""), C(":/", "\"/\""),
	C(":a:b", "\"a:b\""), C(":a#'", "\"a#'\""), C(":nil", "\"nil\""),
	C("foo", "\"foo\""), C("a.b/c", "\"a.b/c\""), C("+", "\"+\""),
	C("-", "\"-\""), C("...", "\"...\""), C("/", "\"/\""),
	C("foo?", "\"foo?\""), C("<=", "\"<=\""), C("a#b", "\"a#b\""),
	C("nil?", "\"nil?\""), C("truex", "\"truex\""), C("-a", "\"-a\""),
	C("--1", "\"--1\""), C(".5", "\".5\""), C("a/b/c", "\"a/b/c\""),
	C("clojure.core//", "\"clojure.core//\""), C("a\x01", "\"a\\u0001\""),
	C("\xc3\xa9t\xc3\xa9", "\"\xc3\xa9t\xc3\xa9\""),

	/* Collections. */
	C("[]", "[]"), C("()", "[]"), C("#{}", "[]"), C("{}", "{}"),
	C("[1 [2 [3]]]", "[1,[2,[3]]]"), C("(1 \"a\" :b)", "[1,\"a\",\"b\"]"),
	C("#{1 2}", "[1,2]"), C("{:a {:b [1 2]}}", "{\"a\":{\"b\":[1,2]}}"),
	C("[[] () #{} {}]", "[[],[],[],{}]"), C("[1[2]3]", "[1,[2],3]"),
	C("{:a 1 \"a\" 2}", "{\"a\":1,\"a\":2}"),
	C("{1 :x 1.0 :y}", "{\"1\":\"x\",\"1.0\":\"y\"}"),
	C("#{1 \"1\" \\1 :1}", "[1,\"1\",\"1\",\"1\"]"),
	C("#{[1] #{1}}", "[[1],[1]]"),

	/* Map keys: strings as they are, anything else as its JSON text. */
	C("{\"s\" 1}", "{\"s\":1}"), C("{sym 1}", "{\"sym\":1}"),
	C("{1 2}", "{\"1\":2}"), C("{-1.5 2}", "{\"-1.5\":2}"),
	C("{true 1 false 2 nil 3}", "{\"true\":1,\"false\":2,\"null\":3}"),
	C("{[1 \"b\"] 3}", "{\"[1,\\\"b\\\"]\":3}"),
	C("{{:a \"b\"} 1}", "{\"{\\\"a\\\":\\\"b\\\"}\":1}"),
	C("{\\c 1}", "{\"c\":1}"), C("{1/2 1}", "{\"0.5\":1}"),
	C("{##Inf 1}", "{\"Infinity\":1}"), C("{0x10 1}", "{\"16\":1}"),
	C("{#inst \"2020\" 1}", "{\"2020\":1}"),

	/* Discard, comments, commas, whitespace. */
	C("#_ 1 2", "2"), C("[1 #_ 2 3]", "[1,3]"), C("#_ #_ a b c", "\"c\""),
	C("[#_ #_ a b c]", "[\"c\"]"), C("{:a #_ 1 2}", "{\"a\":2}"),
	C("[1 #_ [2 3]]", "[1]"), C("1 #_ 2", "1"), C("#_[1 2]3", "3"),
	C("; hi\n42", "42"), C("[1 ; two\n 3]", "[1,3]"),
	C("42 ; trailing", "42"), C(";c\r1", "1"), C("[1,2,,3]", "[1,2,3]"),
	C("{:a 1, :b 2}", "{\"a\":1,\"b\":2}"), C(",,,1,,,", "1"),
	C("\v\f\x1c\x1d\x1e\x1f 1", "1"), C("\xe3\x80\x80" "1", "1"),
	C("[1\xe2\x80\x80" "2\xe2\x80\xa8" "3]", "[1,2,3]"),
	C("[a\xe2\x80\x89" "b]", "[\"a\",\"b\"]"),
	C("\xc2\xa0" "1", "\"\xc2\xa0" "1\""),
	C("\xe1\x9a\x80" "1\xe2\x81\x9f", "1"),

	/* Tagged elements. */
	C("#inst \"1985-04-12T23:20:50.52Z\"", "\"1985-04-12T23:20:50.52Z\""),
	C("#inst\"2020\"", "\"2020\""),
	C("#inst \"2020-02-29T00:00:00-05:30\"",
	    "\"2020-02-29T00:00:00-05:30\""),
	C("#inst \"2020-05:00\"", "\"2020-05:00\""),
	C("#inst \"2020-01-01T23:59:60Z\"", "\"2020-01-01T23:59:60Z\""),
	C("#uuid \"f81d4fae-7dec-11d0-a765-00a0c91e6bf6\"",
	    "\"f81d4fae-7dec-11d0-a765-00a0c91e6bf6\""),
	C("#foo/bar [1 2]", "[1,2]"),
	C("#myapp/Person {:name \"x\"}", "{\"name\":\"x\"}"),
	C("#foo #bar 1", "1"), C("#foo nil", "null"),

	/* Namespaced maps. */
	C("#:person{:name \"a\" :age 3}",
	    "{\"person/name\":\"a\",\"person/age\":3}"),
	C("#:p{:_/x 1 :q/y 2 z 3 \"s\" 4}",
	    "{\"x\":1,\"q/y\":2,\"p/z\":3,\"s\":4}"),
	C("#:p {:a 1}", "{\"p/a\":1}"),
	C("#:p{:a #:q{:b 1} :c {:d 2}}",
	    "{\"p/a\":{\"q/b\":1},\"p/c\":{\"d\":2}}"),

	/* Metadata is dropped. */
	C("^:private [1]", "[1]"), C("^{:a 1} {:b 2}", "{\"b\":2}"),
	C("^String sym", "\"sym\""), C("#^:x [1]", "[1]"),
	C("^\"tag\" (1)", "[1]"), C("^:a ^:b #{1}", "[1]"),
};

static const struct edn_case errors[] = {
	/* Input. */
	C("", "no value at offset 0"), C("  ,\n", "no value at offset 4"),
	C("; only", "no value at offset 6"), C("#_ 1", "no value at offset 4"),
	C("1 2", "trailing data after the value at offset 2"),
	C("[1] [2]", "trailing data after the value at offset 4"),
	C("1 ]", "trailing data after the value at offset 2"),
	C("; \xff\n1", "invalid UTF-8 in comment at offset 0"),

	/* Numbers. */
	C("08", "invalid number at offset 0"),
	C("-09N", "invalid number at offset 0"),
	C("1r1", "radix out of range at offset 0"),
	C("37r1", "radix out of range at offset 0"),
	C("2r102", "invalid digit for radix 2 at offset 0"),
	C("0x", "invalid number at offset 0"),
	C("0xG", "invalid number at offset 0"),
	C("1a", "invalid number at offset 0"),
	C("1.5N", "invalid number at offset 0"),
	C("1e", "invalid number at offset 0"),
	C("1/0", "divide by zero at offset 0"),
	C("[1/-2]", "invalid number at offset 1"),
	C("1..2", "invalid number at offset 0"),
	C("1@", "invalid number at offset 0"),

	/* Strings. */
	C("  \"abc", "unterminated string at offset 2"),
	C("\"abc\\", "unterminated string at offset 0"),
	C("\"\\q\"", "invalid escape in string at offset 1"),
	C("\"\\u12\"", "invalid \\u escape at offset 1"),
	C("\"\\u12G4\"", "invalid \\u escape at offset 1"),
	C("\"\\ud800\"", "unpaired surrogate at offset 1"),
	C("\"\\udc00\\ud800\"", "unpaired surrogate at offset 1"),
	C("\"\\ud800\\u0041\"", "unpaired surrogate at offset 1"),
	C("\"\\400\"", "octal escape out of range [0, 377] at offset 1"),
	C("\"\\8\"", "invalid escape in string at offset 1"),
	C("\"\\1a\"", "invalid escape in string at offset 1"),
	C("\"\xff\"", "invalid UTF-8 in string at offset 1"),
	C("\"ab\xc3\"", "invalid UTF-8 in string at offset 3"),
	C("\"\xed\xa0\x80\"", "invalid UTF-8 in string at offset 1"),

	/* Characters. */
	C("\\", "unexpected end of input at offset 0"),
	C("\\ab", "unsupported character at offset 0"),
	C("\\ud800", "invalid character constant at offset 0"),
	C("\\u12", "invalid character constant at offset 0"),
	C("\\o400", "octal character out of range [0, 377] at offset 0"),
	C("\\o1234", "invalid octal character at offset 0"),
	C("\\o8", "invalid octal character at offset 0"),
	C("\\\xf0\x9f\x98\x80", "unsupported character at offset 0"),
	C("\\\xff", "invalid UTF-8 at offset 1"),
	C("\\a@", "invalid constituent character '@' at offset 2"),

	/* Symbols and keywords. */
	C("::x", "invalid token at offset 0"),
	C(":", "invalid token at offset 0"),
	C(":a:", "invalid token at offset 0"),
	C("a::b", "invalid token at offset 0"),
	C(":a/", "invalid token at offset 0"),
	C("a/", "invalid token at offset 0"),
	C("/a", "invalid token at offset 0"),
	C(":a/1", "invalid token at offset 0"),
	C("a:/b", "invalid token at offset 0"),
	C("@foo", "invalid constituent character '@' at offset 0"),
	C("a~", "invalid constituent character '~' at offset 1"),
	C("`a", "invalid constituent character '`' at offset 0"),
	C("a\xc3", "invalid UTF-8 at offset 1"),

	/* Collections. */
	C("[1 2", "unterminated vector at offset 0"),
	C("[1 (2", "unterminated list at offset 3"),
	C("{:a 1", "unterminated map at offset 0"),
	C("{:a", "unterminated map at offset 0"),
	C("#{1", "unterminated set at offset 0"),
	C("[1 2)", "unmatched delimiter ')' at offset 4"),
	C(")", "unmatched delimiter ')' at offset 0"),
	C("[1 #_]", "unmatched delimiter ']' at offset 5"),
	C("{:a}",
	    "map literal must contain an even number of forms at offset 3"),
	C("#_ {:a} 1",
	    "map literal must contain an even number of forms at offset 6"),
	C("{:a 1 :a 2}", "duplicate map key \"a\" at offset 6"),
	C("{1 :x 1N :y}", "duplicate map key \"1\" at offset 6"),
	C("{1 :x 0x1 :y}", "duplicate map key \"1\" at offset 6"),
	C("{[1 2] 0 (1 2) 1}", "duplicate map key \"[1,2]\" at offset 9"),
	C("{1/2 0 2/4 1}", "duplicate map key \"0.5\" at offset 7"),
	C("#{1 1}", "duplicate set element 1 at offset 4"),
	C("#{\"a\" \"a\"}", "duplicate set element \"a\" at offset 6"),
	C("#{\"" E5 E5 E5 E5 "\xc3\xa9\" \"\\u00e9" E5 E5 E5 E5 "\"}",
	    "duplicate set element \"" E5 E5 E5 E4 "... at offset 47"),
	C("{\"0123456789012345678901234567890123456789xyz\" 1 "
	    "\"0123456789012345678901234567890123456789xyz\" 2}",
	    "duplicate map key \"012345678901234567890123456789012345678... "
	    "at offset 49"),

	/* Dispatch. */
	C("#", "unexpected end of input at offset 0"),
	C("#foo", "unexpected end of input at offset 4"),
	C("#1 2", "no dispatch macro for '#1' at offset 0"),
	C("# foo 1", "no dispatch macro for '# ' at offset 0"),
	C("#nil 1", "reader tag must be a symbol at offset 0"),
	C("#<foo>", "unreadable form at offset 0"),
	C("#_", "unexpected end of input at offset 2"),
	C("##Foo", "unknown symbolic value at offset 0"),
	C("##:Inf", "## must be followed by a symbol at offset 0"),
	C("##1", "## must be followed by a symbol at offset 0"),
	C("#inst 1", "#inst expects a string at offset 0"),
	C("#uuid 1", "#uuid expects a string at offset 0"),
	C("#inst \"2020-13\"", "invalid #inst timestamp at offset 0"),
	C("#inst \"2021-02-29\"", "invalid #inst timestamp at offset 0"),
	C("#inst \"2020-01-01T23:58:60Z\"",
	    "invalid #inst timestamp at offset 0"),
	C("#inst \"2020-01-01T24:00\"", "invalid #inst timestamp at offset 0"),
	C("#inst \"2020-01-01 10:00\"", "invalid #inst timestamp at offset 0"),
	C("#inst \"2020-01-01T10:00+24:00\"",
	    "invalid #inst timestamp at offset 0"),
	C("#inst \"20\"", "invalid #inst timestamp at offset 0"),
	C("#uuid \"xyz\"", "invalid #uuid at offset 0"),
	C("#uuid \"1-2-3-4\"", "invalid #uuid at offset 0"),
	C("#uuid \"1--2-3-4\"", "invalid #uuid at offset 0"),
	C("#uuid \"f81d4fae-7dec-11d0-a765-00a0c91e6bf6a\"",
	    "invalid #uuid at offset 0"),
	C("#inst \"2020-01-01T10:60\"", "invalid #inst timestamp at offset 0"),
	C("#inst \"2020-01-01T10:00:00.Z\"",
	    "invalid #inst timestamp at offset 0"),
	C("#:foo 1", "namespaced map must specify a map at offset 0"),
	C("#:a/b{:c 1}",
	    "namespaced map must specify a valid namespace at offset 0"),
	C("#:p ;x\n{:a 1}", "namespaced map must specify a map at offset 0"),
	C("#::p{:a 1}", "#: must be followed by a symbol at offset 0"),
	C("#:p{:a 1 :p/a 2}", "duplicate map key \"p/a\" at offset 9"),
	C("^1 [1]",
	    "metadata must be a symbol, keyword, string or map at offset 0"),
	C("^:a 1", "metadata can only be applied to collections and "
	    "symbols at offset 0"),
	C("^:a \"s\"", "metadata can only be applied to collections and "
	    "symbols at offset 0"),
};

/*
 * A config as the Clojure service stored it: comments, commas,
 * namespaced keywords, sets, #inst, ratios and a discarded entry.
 */
static const char service_edn[] =
    ";; user 42 -- written by config-admin 2.3\n"
    "{:user/id 42\n"
    " :user/name \"Ada L\\u00f6velace\"\n"
    " :timeout-ms 2500, :retries 3\n"
    " :enabled? true\n"
    " :created #inst \"2024-03-01T12:00:00.000-00:00\"\n"
    " :features #{:beta :dark-mode}\n"
    " :limits {:rps 50 :burst 3/2 :quota 1.5e6 :max-body 1048576N}\n"
    " :endpoints [{:name \"primary\" :url \"https://api.example.com/v1\"\n"
    "              :weight 0.75 :tags [primary eu-west]}\n"
    "             {:name \"fallback\" :url \"https://backup.example.com\"\n"
    "              :weight 0.25 :tags []}]\n"
    " #_#_ :legacy-mode true ; retired in 2.0\n"
    " :headers {\"X-Tenant\" \"acme\" \"Accept\" \"application/json\"}\n"
    " :retry-on #{500 502 503}\n"
    " :backoff (100 200 400)\n"
    " :note \"line one\\nline \\\"two\\\"\"\n"
    " :owner nil}\n";

static const char service_json[] =
    "{\"user/id\":42,"
    "\"user/name\":\"Ada L\xc3\xb6velace\","
    "\"timeout-ms\":2500,\"retries\":3,"
    "\"enabled?\":true,"
    "\"created\":\"2024-03-01T12:00:00.000-00:00\","
    "\"features\":[\"beta\",\"dark-mode\"],"
    "\"limits\":{\"rps\":50,\"burst\":1.5,\"quota\":1.5e6,"
    "\"max-body\":1048576},"
    "\"endpoints\":[{\"name\":\"primary\","
    "\"url\":\"https://api.example.com/v1\","
    "\"weight\":0.75,\"tags\":[\"primary\",\"eu-west\"]},"
    "{\"name\":\"fallback\",\"url\":\"https://backup.example.com\","
    "\"weight\":0.25,\"tags\":[]}],"
    "\"headers\":{\"X-Tenant\":\"acme\",\"Accept\":\"application/json\"},"
    "\"retry-on\":[500,502,503],"
    "\"backoff\":[100,200,400],"
    "\"note\":\"line one\\nline \\\"two\\\"\","
    "\"owner\":null}";

/* open x n, middle x m, close x n. */
struct edn_rep {
	const char	*open;
	int		 n;
	const char	*middle;
	int		 m;
	const char	*close;
};
#define R(open, n, middle, m, close)	{ open, n, middle, m, close }

struct edn_gen {
	struct edn_rep	 in;
	const char	*want;	/* the JSON or error, or NULL for: */
	struct edn_rep	 out;
};

_Static_assert(EDN_MAX_DEPTH == 32, "update the offsets in generated[]");

static const struct edn_gen generated[] = {
	/* The depth limit. */
	{ R("[", EDN_MAX_DEPTH, "1", 1, "]"), NULL,
	    R("[", EDN_MAX_DEPTH, "1", 1, "]") },
	{ R("{:a ", EDN_MAX_DEPTH, "1", 1, "}"), NULL,
	    R("{\"a\":", EDN_MAX_DEPTH, "1", 1, "}") },
	/* Offsets below are for EDN_MAX_DEPTH 32 (a static check keeps them honest). */
	{ R("[", EDN_MAX_DEPTH + 1, "", 0, "]"),
	    "error: nesting too deep at offset 32", R("", 0, "", 0, "") },
	{ R("#{(", EDN_MAX_DEPTH / 2 + 1, "", 0, ")}"),
	    "error: nesting too deep at offset 48", R("", 0, "", 0, "") },
	{ R("[", 1000000, "", 0, ""),
	    "error: nesting too deep at offset 32", R("", 0, "", 0, "") },
	/* Chains of discards, tags, metadata are bounded too. */
	{ R("#_ ", EDN_MAX_DEPTH - 2, "1 ", EDN_MAX_DEPTH - 1, ""), "1",
	    R("", 0, "", 0, "") },
	{ R("#_ ", 100000, "", 0, ""),
	    "error: nesting too deep at offset 96", R("", 0, "", 0, "") },
	{ R("#a ", 100000, "1", 1, ""),
	    "error: nesting too deep at offset 96", R("", 0, "", 0, "") },
	{ R("^:m ", 100000, "[]", 1, ""),
	    "error: nesting too deep at offset 128", R("", 0, "", 0, "") },
	/* Long numbers. */
	{ R("1", 1, "0", 400, "/3"), "\"Infinity\"", R("", 0, "", 0, "") },
	{ R("-1", 1, "0", 400, "/2"), NULL, R("-5", 1, "0", 399, "") },
	{ R("1/1", 1, "0", 400, ""), "0", R("", 0, "", 0, "") },
	{ R("1", 1, "0", 400, ".5"), "\"Infinity\"", R("", 0, "", 0, "") },
	{ R("10r", 1, "9", 1024, ""), NULL, R("", 0, "9", 1024, "") },
	{ R("0x", 1, "F", 1025, ""), "error: number too long at offset 0",
	    R("", 0, "", 0, "") },
};

static int	invalid_json;	/* outputs json_valid() refused */
static int	too_deep_json;	/* outputs past json_valid()'s depth */

static int		 json_depth(const char *, size_t);
static const char	*convert(const char *, size_t, struct buf *);
static char		*repeat3(const struct edn_rep *);
static void		 test_table(const struct edn_case *, size_t,
			    const char *);
static void		 test_service(void);
static void		 test_generated(void);
static void		 test_many_keys(void);
static void		 test_api(void);
static uint64_t		 rnd(void);
static void		 gen(struct buf *, int);
static void		 test_random(void);
static void		 bench(void);

/* How deep the containers of a JSON text nest. */
static int
json_depth(const char *p, size_t len)
{
	size_t	i;
	int	depth = 0, max = 0, in_string = 0;

	for (i = 0; i < len; i++) {
		if (in_string) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_string = 0;
		} else if (p[i] == '"')
			in_string = 1;
		else if (p[i] == '[' || p[i] == '{')
			max = ++depth > max ? depth : max;
		else if (p[i] == ']' || p[i] == '}')
			depth--;
	}
	return max;
}

/*
 * The JSON for edn[0..len), or "error: message".  Every JSON produced is
 * checked with json_valid(), but for the nesting EDN allows beyond
 * JSON_MAX_DEPTH; failures are counted in invalid_json.
 */
static const char *
convert(const char *edn, size_t len, struct buf *out)
{
	char	err[256];

	buf_reset(out);
	if (edn_to_json(edn, len, out, err, sizeof(err)) == -1) {
		buf_reset(out);
		buf_appends(out, "error: ");
		buf_appends(out, err);
		return buf_cstr(out);
	}
	if (json_depth(out->b_p, out->b_len) > JSON_MAX_DEPTH)
		too_deep_json++;
	else if (!json_valid(out->b_p, out->b_len)) {
		invalid_json++;
		diag("not valid JSON: %s", buf_cstr(out));
	}
	return buf_cstr(out);
}

/* open n times, middle m times, close n times, as a new string. */
static char *
repeat3(const struct edn_rep *r)
{
	struct buf	b = BUF_INIT;
	int		i;

	for (i = 0; i < r->n; i++)
		buf_appends(&b, r->open);
	for (i = 0; i < r->m; i++)
		buf_appends(&b, r->middle);
	for (i = 0; i < r->n; i++)
		buf_appends(&b, r->close);
	return buf_cstr(&b);
}

static void
test_table(const struct edn_case *t, size_t n, const char *prefix)
{
	struct buf	out = BUF_INIT;
	char		want[512];
	size_t		i;

	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "%s%s", prefix, t[i].want);
		is_str(convert(t[i].edn, t[i].len, &out), want, "%s%s",
		    *prefix != '\0' ? "error: " : "", t[i].edn);
	}
	buf_free(&out);
}

static void
test_service(void)
{
	struct buf	out = BUF_INIT;

	is_str(convert(service_edn, sizeof(service_edn) - 1, &out),
	    service_json, "service config");
	buf_free(&out);
}

/* Generated inputs (and outputs) too long to write out. */
static void
test_generated(void)
{
	struct buf	 out = BUF_INIT;
	const struct edn_gen *g;
	char		*in, *want;
	size_t		 i;

	for (i = 0; i < nitems(generated); i++) {
		g = &generated[i];
		in = repeat3(&g->in);
		want = g->want != NULL ? xstrdup(g->want) : repeat3(&g->out);
		is_str(convert(in, strlen(in), &out), want, "%s x %d, %s x %d",
		    g->in.open, g->in.n, g->in.middle, g->in.m);
		free(in);
		free(want);
	}
	buf_free(&out);
}

/* Maps and sets past the pairwise check use the hash table. */
static void
test_many_keys(void)
{
	static const char	 sibling[] = "[{\"a\":0,\"b\":{\"a\":0}},";
	struct buf		 edn = BUF_INIT, want = BUF_INIT, out = BUF_INIT;
	int			 i;

	buf_appendc(&edn, '{');
	buf_appendc(&want, '{');
	for (i = 0; i < 1000; i++) {
		buf_printf(&edn, ":k%d %d ", i, i);
		buf_printf(&want, "%s\"k%d\":%d", i > 0 ? "," : "", i, i);
	}
	buf_appendc(&edn, '}');
	buf_appendc(&want, '}');
	is_str(convert(edn.b_p, edn.b_len, &out), buf_cstr(&want),
	    "1000 keys");
	edn.b_len--;
	buf_appends(&edn, ":k500 0}");
	ok(strstr(convert(edn.b_p, edn.b_len, &out),
	    "error: duplicate map key \"k500\" at offset ") == out.b_p,
	    "duplicate among 1001 keys");

	buf_reset(&edn);
	buf_appends(&edn, "#{");
	for (i = 0; i < 100; i++)
		buf_printf(&edn, "[%d] ", i % 99);
	buf_appendc(&edn, '}');
	is_str(convert(edn.b_p, edn.b_len, &out),
	    "error: duplicate set element [0] at offset 487",
	    "duplicate among 100 set elements");

	buf_reset(&edn);
	buf_appends(&edn, "[");
	for (i = 0; i < 100; i++)
		buf_printf(&edn, "{:a %d :b {:a %d}} ", i, i);
	buf_appendc(&edn, ']');
	ok(strncmp(convert(edn.b_p, edn.b_len, &out), sibling,
	    sizeof(sibling) - 1) == 0, "same keys in sibling and nested maps");
	buf_free(&edn);
	buf_free(&want);
	buf_free(&out);
}

static void
test_api(void)
{
	struct buf	out = BUF_INIT;
	char		err[16];

	buf_appends(&out, "{\"config\":");
	ok(edn_to_json("{:a 1}", 6, &out, NULL, 0) == 0, "no err buffer");
	is_str(buf_cstr(&out), "{\"config\":{\"a\":1}", "appends to out");
	ok(edn_to_json("{:a", 3, &out, NULL, 0) == -1,
	    "error without err buffer");
	ok(edn_to_json("[1 2", 4, &out, err, sizeof(err)) == -1 &&
	    strlen(err) == sizeof(err) - 1, "message cut to errlen");
	ok(edn_to_json(NULL, 0, &out, err, sizeof(err)) == -1 &&
	    strcmp(err, "no value at off") == 0, "NULL text of length 0");
	buf_free(&out);
}

/* xorshift64, fixed seed: the same documents every run. */
static uint64_t
rnd(void)
{
	static uint64_t	s = 0x9e3779b97f4a7c15ULL;

	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

/* A random valid EDN form (no duplicates: keys carry a counter). */
static void
gen(struct buf *b, int depth)
{
	static const char	*atoms[] = { "nil", "true", "false", "42",
	    "-0", "+7N", "0x7f", "017", "2r101", "1.5", "1.", "-1e-3",
	    "2.5M", "1/3", "-4/2", "##Inf", "##NaN", "\"s\"", "\"\\u00e9\\n\"",
	    "\"\\ud83d\\ude00\\\"\"", "\"\\1\\t\"", "\\a", "\\newline",
	    "\\u0000", "\\o42", ":kw", ":ns/kw", "sym", "a.b/c", "+", "...",
	    "#inst \"2020-01-02T03:04:05Z\"", "#uuid \"1-2-3-4-5\"",
	    "\"\x01\x7f\xc3\xa9\"", "#x/y 1" };
	static const char	*gaps[] = { " ", ",", "\n", " ; c\n",
	    " #_ 9 ", "\t", " #_#_ a b " };
	static unsigned int	 key;
	const char		*close = "}";
	int			 i, n, kind = depth > 6 ? 0 : (int)(rnd() % 6);

	n = (int)(rnd() % 5);
	switch (kind) {
	case 0:
	case 1:
		buf_appends(b, atoms[rnd() % nitems(atoms)]);
		return;
	case 2:
		close = rnd() % 2 ? "]" : ")";
		buf_appends(b, *close == ']' ? "[" : "(");
		break;
	case 3:
		buf_appends(b, "#{");
		break;
	default:
		buf_appends(b, rnd() % 4 ? "{" : "#:n{");
		break;
	}
	for (i = 0; i < n; i++) {
		buf_appends(b, gaps[rnd() % nitems(gaps)]);
		if (kind == 3 || kind >= 4) {
			/* Unique keys and elements. */
			switch (rnd() % 4) {
			case 0:
				buf_printf(b, ":k%u", key++);
				break;
			case 1:
				buf_printf(b, "\"s%u\"", key++);
				break;
			case 2:
				buf_printf(b, "[%u ", key++);
				gen(b, depth + 1);
				buf_appendc(b, ']');
				break;
			default:
				buf_printf(b, "%u", key++);
				break;
			}
			if (kind == 3)
				continue;
			buf_appendc(b, ' ');
		}
		gen(b, depth + 1);
	}
	buf_appends(b, close);
}

/* Random documents: each converts, and to valid JSON. */
static void
test_random(void)
{
	struct buf	 edn = BUF_INIT, out = BUF_INIT;
	const char	*got;
	int		 i, failed = 0, before = invalid_json;

	for (i = 0; i < 3000 && failed < 3; i++) {
		buf_reset(&edn);
		gen(&edn, 0);
		got = convert(edn.b_p, edn.b_len, &out);
		if (strncmp(got, "error: ", 7) == 0) {
			diag("%s: %s", buf_cstr(&edn), got);
			failed++;
		}
	}
	ok(failed == 0, "3000 random documents convert");
	ok(invalid_json == before, "and give valid JSON");
	buf_free(&edn);
	buf_free(&out);
}

/* Throughput on a config of a few MB, for the record (no assertion). */
static void
bench(void)
{
	struct buf	 edn = BUF_INIT, out = BUF_INIT;
	struct timespec	 t0, t1;
	double		 s;
	int		 i, rounds = 20;

	buf_appendc(&edn, '[');
	while (edn.b_len < 4 * 1024 * 1024)
		buf_append(&edn, service_edn, sizeof(service_edn) - 1);
	buf_appendc(&edn, ']');
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < rounds; i++) {
		buf_reset(&out);
		if (edn_to_json(edn.b_p, edn.b_len, &out, NULL, 0) == -1)
			break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(i == rounds, "%zu-byte config converts", edn.b_len);
	diag("throughput: %.0f MB/s (%d x %zu bytes in %.3f s)",
	    (double)edn.b_len * rounds / s / 1e6, rounds, edn.b_len, s);
	buf_free(&edn);
	buf_free(&out);
}

int
main(void)
{
	tap_watchdog(60);
	test_table(values, nitems(values), "");
	test_table(errors, nitems(errors), "error: ");
	test_service();
	test_generated();
	test_many_keys();
	test_api();
	test_random();
	ok(invalid_json == 0, "every output is valid JSON (json_valid)");
	diag("%d outputs nest deeper than json_valid() checks (%d)",
	    too_deep_json, JSON_MAX_DEPTH);
	bench();
	return done_testing();
}
