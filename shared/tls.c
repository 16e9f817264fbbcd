/*
 * TLS server context: protocol floor, ciphers, certificate and key.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

/* Mozilla's "intermediate" TLS 1.2 suites; TLS 1.3 keeps its defaults. */
#define TLS_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

static void	tls_error(char *, size_t, const char *, const char *);

static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long	e = ERR_peek_last_error();
	char		buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s %s: %s", what, file != NULL ? file : "",
	    e != 0 ? buf : "unknown error");
	ERR_clear_error();
}

SSL_CTX *
tls_ctx_new(const struct config *cfg, int *failed, char *err, size_t errlen)
{
	SSL_CTX	*ctx;
	size_t	 i;
	int	 need = 0;

	*failed = 0;
	for (i = 0; i < cfg->c_nlisten; i++)
		need |= cfg->c_listen[i].l_ssl;
	if (!need)
		return NULL;
	*failed = 1;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_error(err, errlen, "cannot create TLS context", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* Partial writes from a buffer that may move between retries. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != 1) {
		tls_error(err, errlen, "cannot set TLS ciphers", NULL);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx,
	    cfg->c_tls_certificate) != 1) {
		tls_error(err, errlen, "cannot load tls_certificate",
		    cfg->c_tls_certificate);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->c_tls_certificate_key,
	    SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, "cannot load tls_certificate_key",
		    cfg->c_tls_certificate_key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "tls_certificate_key does not match",
		    cfg->c_tls_certificate);
		goto fail;
	}
	*failed = 0;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
	if (ctx != NULL)
		SSL_CTX_free(ctx);
}
