/*
 * Upstream calls: one client per worker, chosen once from the config.
 * `upstream_client auto` (the default) uses the built-in HTTP/1.1 client
 * for http:// URLs and libcurl for https:// (TLS, HTTP/2) and URLs with
 * user info; `upstream_client curl` uses libcurl for all.
 */
#include "autoconf.h"

#include "log.h"
#include "upstream_impl.h"

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
