/*
 * The two upstream clients behind upstream.h: the built-in HTTP/1.1 one
 * for http:// (upstream_h1.c) and libcurl for everything else
 * (upstream_curl.c).  upstream.c picks one per worker.
 */
#ifndef WSGATE_UPSTREAM_IMPL_H
#define WSGATE_UPSTREAM_IMPL_H

#include "upstream.h"

struct upstream_impl {
	const char	*ui_name;
	void		(*ui_init)(struct ev_loop *, const struct config *);
	void		(*ui_post)(const char *, size_t, const char *,
			    upstream_cb *, void *);
	unsigned int	(*ui_pending)(void);
	void		(*ui_shutdown)(void);
};

extern const struct upstream_impl upstream_curl;
extern const struct upstream_impl upstream_h1;

/*
 * Whether the built-in client can call `url` (http://, no user info).
 * If so and `host` is not NULL, the parts it needs are allocated: host
 * (IPv6 without brackets), port, request-target, Host header value.
 */
int	upstream_h1_usable(const char *url, char **host, char **port,
	    char **target, char **hosthdr);

#endif /* WSGATE_UPSTREAM_IMPL_H */
