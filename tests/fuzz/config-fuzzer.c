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
 * libFuzzer target for shared/config.c: the input is a config file.  The
 * parser must either return a config that keeps its promises or fail with
 * a "fuzz.conf:" message, and never leak (config_free frees all).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CONFIG_FUZZ_MAX	(64 * 1024)
#define CONFIG_FUZZ_NAME	"fuzz.conf"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	fuzz_check(const struct config *);

/* What every caller of config_load() relies on. */
static void
fuzz_check(const struct config *c)
{
	size_t	i;

	if (c->c_nlisten < 1 || c->c_nlisten > CONFIG_MAX_LISTEN ||
	    c->c_admin_listen.l_text == NULL ||
	    c->c_workers < 1 || c->c_workers > CONFIG_MAX_WORKERS ||
	    c->c_dbwriters < 1 || c->c_dbwriters > CONFIG_MAX_DBWRITERS ||
	    c->c_upstream_url == NULL || c->c_pg_conninfo == NULL ||
	    c->c_ws_path == NULL || c->c_ws_path[0] != '/' ||
	    c->c_redis_host == NULL || c->c_redis_key_prefix == NULL ||
	    c->c_pg_table == NULL || c->c_spool_dir == NULL ||
	    c->c_runtime_dir == NULL || c->c_runtime_dir[0] != '/' ||
	    c->c_max_message_size == 0 || c->c_idle_timeout == 0 ||
	    c->c_redis_port < 1 || c->c_redis_port > 65535 ||
	    (c->c_tls_certificate == NULL) !=
	    (c->c_tls_certificate_key == NULL))
		abort();
	for (i = 0; i < c->c_nlisten; i++)
		if (c->c_listen[i].l_text == NULL ||
		    c->c_listen[i].l_addrlen == 0 ||
		    (c->c_listen[i].l_ssl && c->c_tls_certificate == NULL))
			abort();
	if (c->c_echo_path != NULL && strcmp(c->c_echo_path,
	    c->c_ws_path) == 0)
		abort();
	if ((c->c_allowed_origins == NULL) != (c->c_nallowed_origins == 0))
		abort();
	for (i = 0; i < c->c_nallowed_origins; i++)
		if (strstr(c->c_allowed_origins[i], "://") == NULL)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*conf;
	char		 err[256];

	if (size > CONFIG_FUZZ_MAX)
		return 0;
	memset(err, 'x', sizeof(err));
	conf = config_load_buffer(CONFIG_FUZZ_NAME, (const char *)data, size,
	    err, sizeof(err));
	if (conf == NULL) {
		/* A message, terminated, naming the input. */
		if (memchr(err, '\0', sizeof(err)) == NULL ||
		    strncmp(err, CONFIG_FUZZ_NAME ":",
		    sizeof(CONFIG_FUZZ_NAME)) != 0)
			abort();
		return 0;
	}
	fuzz_check(conf);
	config_wipe_pg(conf);
	config_free(conf);
	return 0;
}
