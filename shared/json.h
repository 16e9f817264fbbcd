/*
 * JSON for the request pipeline (PROTOCOL.md sections 1-4): the client
 * request is tokenised with jsmn in one pass and validated against RFC
 * 8259 in that same pass; `payload` and `id` are kept as byte spans of
 * the message, never re-serialised.  Also: validation of config values
 * and escaping of upstream bodies into JSON strings.
 */
#ifndef WSGATE_JSON_H
#define WSGATE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define JSON_USER_ID_MAX	128	/* bytes, after unescaping */
#define JSON_MAX_DEPTH		32	/* nesting limit: bounds the worst-case parse time */
/*
 * Longest text taken (json_check(): "too large").  Checking one may take
 * up to 20 bytes of tokens a byte of text, for the moment of the call.
 */
#define JSON_MAX_TEXT		(8 * 1024 * 1024)

struct json_span {
	const char	*p;
	size_t		 len;
};

struct json_request {
	/* user-id (or user_id): a string's decoded UTF-8, or an integer's
	 * digits as written; NUL-terminated. */
	char		 user_id[JSON_USER_ID_MAX + 1];
	size_t		 user_id_len;
	/* payload as it appears in the message ("null" when absent). */
	struct json_span payload;
	/* id as it appears in the message (a string with its quotes, or a
	 * number); p NULL when absent. */
	struct json_span id;
};

/*
 * Parse one client message per PROTOCOL.md section 1.  Returns 0 with r
 * filled in (spans point into msg, valid as long as msg), or -1 with
 * *why set to a static, human-readable reason:
 *
 *   not valid JSON (RFC 8259; whatever jsmn accepts, same reasons as
 *   json_check()): "not JSON", "too large", "nesting too deep",
 *   "invalid JSON: <detail>";
 *   valid JSON: "not an object", "duplicate key" (user-id, user_id,
 *   payload or id given twice, user-id and user_id counting as one),
 *   "id must be a string or a number", "missing user-id", "user-id is
 *   empty", "user-id too long", "user-id must be a string or an integer"
 *   (integer: a number without fraction or exponent), "user-id contains
 *   NUL" (a \u0000 escape: user_id is a C string and goes to a text
 *   column).  Invalid JSON is reported before anything else, then "not
 *   an object", then the first field error in the text.
 *
 * On error r->id is set when the message is valid JSON and its id is
 * valid and given once, so the error reply can echo it; otherwise
 * r->id.p is NULL, as are user_id ("") and payload ("null").  UTF-8 is
 * checked here too (only strings may hold non-ASCII), so the caller's
 * own check is not relied upon.  Keys are compared after unescaping;
 * other duplicate keys are allowed.  Allocates nothing per message:
 * jsmn's tokens go in one array for the process, grown on demand (more
 * than 256 tokens) and released after a text of more than 16384.
 */
int	json_request_parse(const char *msg, size_t len, struct json_request *r,
	    const char **why);

/*
 * 1 if p[0..len) is exactly one valid RFC 8259 JSON text (any value,
 * whitespace around it allowed, no byte order mark), nested at most
 * JSON_MAX_DEPTH deep, strings in UTF-8 with \u surrogates only in
 * pairs.  Duplicate keys are allowed.
 */
int	json_valid(const char *p, size_t len);

/*
 * json_valid()'s check with its reason: NULL if p[0..len) is valid, else
 * "not JSON" (empty, or cannot start a value), "too large" (over
 * JSON_MAX_TEXT bytes), "nesting too deep" or
 * "invalid JSON: <detail>", detail one of "syntax error", "truncated",
 * "expected ','", "expected ':'", "unexpected ','", "unexpected ':'",
 * "text after the value", "bad number", "bad literal", "control
 * character in string", "bad escape", "lone surrogate", "not UTF-8".
 */
const char	*json_check(const char *p, size_t len);

/*
 * Append p[0..len) to out as the contents of a JSON string (without the
 * surrounding quotes): '"' and '\\' backslash-escaped, control
 * characters as \b \t \n \f \r or \u00xx, everything else copied as
 * is (well-formed UTF-8 included, also U+2028/U+2029, which RFC 8259
 * allows in strings).  Ill-formed UTF-8 is replaced by U+FFFD, one per
 * maximal subpart (Unicode 15.0 section 3.9, as the WHATWG decoder
 * does: "\xe2\x82" is one U+FFFD, "\xc0\xaf" two), so the result is
 * always valid UTF-8 and valid JSON string contents.  Returns the number
 * of U+FFFD written (0 if p was valid UTF-8).
 */
size_t	json_escape(struct buf *out, const uint8_t *p, size_t len);

#endif /* WSGATE_JSON_H */
