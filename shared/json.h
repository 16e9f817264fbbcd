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
#define JSON_MAX_DEPTH		128	/* nesting limit for any document */

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
 * Parse one client message (UTF-8 already checked by the WebSocket
 * layer).  Returns 0 with r filled in (spans point into msg), or -1 with
 * *why set to a static, human-readable reason ("not JSON", "not an
 * object", "missing user-id", "user-id too long", "user-id must be a
 * string or an integer", "invalid JSON: <detail>", ...).  Invalid JSON
 * per RFC 8259 is always rejected, whatever jsmn accepts.  When id is
 * present and valid it is filled in even on error, so the error reply
 * can echo it.
 */
int	json_request_parse(const char *msg, size_t len, struct json_request *r,
	    const char **why);

/* 1 if p[0..len) is exactly one valid RFC 8259 JSON text (any value). */
int	json_valid(const char *p, size_t len);

/*
 * Append p[0..len) to out as the contents of a JSON string (without the
 * surrounding quotes): '"', '\\' and control characters escaped, UTF-8
 * copied as is, and every byte that is not part of valid UTF-8 replaced
 * by U+FFFD (so the result is always valid UTF-8 and valid JSON).
 * Returns the number of replaced bytes.
 */
size_t	json_escape(struct buf *out, const uint8_t *p, size_t len);

#endif /* WSGATE_JSON_H */
