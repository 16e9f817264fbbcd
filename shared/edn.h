/*
 * EDN (extensible data notation, as clojure.edn/read-string reads it) to
 * JSON, for user configs stored by the original Clojure service
 * (PROTOCOL.md section 2).
 */
#ifndef WSGATE_EDN_H
#define WSGATE_EDN_H

#include <stddef.h>

#include "buf.h"

#define EDN_MAX_DEPTH	128

/*
 * Convert the single EDN value in p[0..len) (surrounding whitespace,
 * commas and comments allowed) to JSON appended to out.  Returns 0, or
 * -1 with a reason in err (out may then hold a partial result).
 */
int	edn_to_json(const char *p, size_t len, struct buf *out, char *err,
	    size_t errlen);

#endif /* WSGATE_EDN_H */
