/*
 * Upstream calls: one client per worker, chosen once from the config.
 * `upstream_client auto` (the default) uses the built-in HTTP/1.1 client
 * for http:// URLs and libcurl for https:// (TLS, HTTP/2) and URLs with
 * user info; `upstream_client curl` uses libcurl for all.
 */
#include "autoconf.h"

#include <stdlib.h>

#include <curl/curl.h>

#include "log.h"
#include "resolve.h"
#include "upstream_impl.h"
#include "util.h"

static const struct upstream_impl *impl;

void
upstream_init(struct ev_loop *loop, const struct config *cfg)
{
	impl = cfg->c_upstream_client == UPSTREAM_CLIENT_AUTO &&
	    upstream_h1_usable(cfg->c_upstream_url, NULL, NULL, NULL, NULL) ?
	    &upstream_h1 : &upstream_curl;
	log_debug("upstream: %s client", impl->ui_name);
	impl->ui_init(loop, cfg);
}

void
upstream_post(const char *body, size_t len, const char *request_key,
    upstream_cb *cb, void *arg)
{
	impl->ui_post(body, len, request_key, cb, arg);
}

unsigned int
upstream_pending(void)
{
	return impl->ui_pending();
}

void
upstream_shutdown(void)
{
	impl->ui_shutdown();
}

char *
upstream_loop_lookup(const struct config *cfg, unsigned int curl_features)
{
	CURLU	*u;
	char	*host = NULL, *name = NULL;

	if (curl_features & CURL_VERSION_ASYNCHDNS)
		return NULL;
	/* The built-in client looks names up off the loop (resolve.h). */
	if (cfg->c_upstream_client == UPSTREAM_CLIENT_AUTO &&
	    upstream_h1_usable(cfg->c_upstream_url, NULL, NULL, NULL, NULL))
		return NULL;
	if ((u = curl_url()) == NULL)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, cfg->c_upstream_url, 0) ==
	    CURLUE_OK && curl_url_get(u, CURLUPART_HOST, &host, 0) ==
	    CURLUE_OK && !resolve_is_numeric(host))
		name = xstrdup(host);
	curl_free(host);
	curl_url_cleanup(u);
	return name;
}

void
upstream_check_lookup(const struct config *cfg)
{
	const curl_version_info_data	*v = curl_version_info(CURLVERSION_NOW);
	char				*name;

	if ((name = upstream_loop_lookup(cfg, (unsigned int)v->features)) ==
	    NULL)
		return;
	log_warnx("upstream: libcurl %s has no asynchronous resolver "
	    "(AsynchDNS): each lookup of %s will block a worker's loop; "
	    "give upstream_url an address", v->version, name);
	free(name);
}
