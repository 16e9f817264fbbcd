/*
 * TLS server context for "ssl" listeners.  The master builds it from the
 * configured certificate and key (before children drop privileges, so a
 * root-only key file works) and every child of that generation inherits
 * it; a reload builds a new one, which is how certificates are reloaded.
 */
#ifndef WSGATE_TLS_H
#define WSGATE_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "config.h"

/*
 * A context for cfg's certificate and key, TLS 1.2 or newer, or NULL
 * when no listener uses ssl.  On error returns NULL with err filled and
 * *failed set.
 */
SSL_CTX	*tls_ctx_new(const struct config *, int *failed, char *err,
	    size_t errlen);

/* NULL-safe. */
void	 tls_ctx_free(SSL_CTX *);

#endif /* WSGATE_TLS_H */
