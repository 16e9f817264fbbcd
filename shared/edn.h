/*
 * EDN (extensible data notation, as clojure.edn/read-string reads it) to
 * JSON, for user configs stored by the original Clojure service
 * (PROTOCOL.md section 2).
 */
#ifndef WSGATE_EDN_H
#define WSGATE_EDN_H

#include <stddef.h>

#include "buf.h"

#define EDN_MAX_DEPTH	32	/* as JSON_MAX_DEPTH: one limit for configs */

/*
 * What is accepted is what clojure.edn/read-string accepts, and it
 * becomes what the Clojure service sent on as JSON:
 *
 * - maps -> objects; vectors, lists, sets -> arrays; nil -> null.
 * - keywords -> strings without the colon (:a/b -> "a/b"), symbols ->
 *   strings; #:ns{:a 1 :_/b 2} is {"ns/a":1,"b":2}.
 * - strings: escapes \t \r \n \b \f \\ \" \uXXXX (surrogates only in
 *   pairs) and octal \0 to \377, re-escaped as JSON; control characters
 *   escaped, UTF-8 kept, invalid UTF-8 anywhere in the input an error.
 * - characters (\a \newline \space \tab \return \formfeed \backspace
 *   \uXXXX \oNNN) -> one-character strings.
 * - integers -> JSON integers: sign '+' and suffix N dropped, 0x hex,
 *   0-prefixed octal (017 is 15; 08 is an error) and radix 2r1010 as
 *   clojure.edn reads them, converted to decimal (at most 1024 digits).
 * - floats: text kept in JSON form ("+1." -> 1.0, 01.5 -> 1.5), suffix M
 *   dropped; a double beyond the range of doubles, like ##Inf, ##-Inf
 *   and ##NaN, -> "Infinity", "-Infinity", "NaN" (Jackson's strings).
 * - ratios: a whole one is an integer (4/2 -> 2), any other the nearest
 *   double printed with %.17g (1/3 -> 0.33333333333333331).
 * - #inst and #uuid -> their string, checked as Clojure's readers check
 *   it; any other tag -> its value converted; ^metadata dropped.
 * - map keys -> the string, keyword or symbol name, else the key's JSON
 *   text as a string (1 -> "1", nil -> "null", [1 2] -> "[1,2]").
 * - two equal keys in a map, or elements in a set, are an error, as in
 *   clojure.edn: equal means same type and same JSON text (1, 1N and
 *   0x1 are equal; :a and "a" are not, both are kept).
 * - #_ discards a form, ';' comments to the end of the line, commas
 *   and Java's whitespace (U+2000 and such too) separate.
 * - exactly one form: nothing (only whitespace and comments) is an
 *   error, as is anything but whitespace and comments after the form.
 * - containers (and chains of #_, tags, metadata) nest EDN_MAX_DEPTH
 *   deep at most.
 *
 * Errors read "reason at offset N", N the byte where the problem or the
 * construct that has it starts: "unterminated string at offset 17".
 */

/*
 * Convert the single EDN value in p[0..len) (surrounding whitespace,
 * commas and comments allowed) to JSON appended to out.  Returns 0, or
 * -1 with a reason in err (out may then hold a partial result).
 */
int	edn_to_json(const char *p, size_t len, struct buf *out, char *err,
	    size_t errlen);

#endif /* WSGATE_EDN_H */
