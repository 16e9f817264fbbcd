/*
 * wsgate -T: whether the dependencies a configuration names are
 * reachable with its credentials: Redis (AUTH, SELECT, PING), the
 * upstream host (a connection, with its TLS handshake for https) and
 * PostgreSQL (pg_conninfo, SELECT 1).
 */
#ifndef WSGATE_DEPCHECK_H
#define WSGATE_DEPCHECK_H

#include <stdio.h>

#include "config.h"

#define DEPCHECK_TIMEOUT_S	5	/* per check, connecting and talking */

/*
 * Check each dependency in turn, printing one line for each to `out`
 * ("redis 127.0.0.1:6379: ok", "...: FAILED: reason"); never a secret.
 * Blocks, each check at most about DEPCHECK_TIMEOUT_S: for the command
 * line only, before anything is forked.  Returns the number that failed.
 */
int	depcheck_run(const struct config *, FILE *out);

#endif /* WSGATE_DEPCHECK_H */
