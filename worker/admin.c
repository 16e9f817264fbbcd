/*
 * Admin listener endpoints (PROTOCOL.md section 6): /healthz answers
 * while the process tree is up, /readyz whether it can serve (Redis and
 * PostgreSQL reachable), /metrics the Prometheus exposition
 * (metrics.c); everything else is 404.
 */
#include "autoconf.h"

#include <string.h>

#include "admin.h"
#include "buf.h"
#include "conn.h"
#include "http.h"
#include "metrics.h"
#include "util.h"

static int	span_is(struct http_span, const char *);
static void	admin_healthz(struct conn *);
static void	admin_readyz(struct conn *);
static void	admin_metrics(struct conn *);

static const struct {
	const char	*path;
	void		(*fn)(struct conn *);
} admin_endpoints[] = {
	{ "/healthz",	admin_healthz },
	{ "/readyz",	admin_readyz },
	{ "/metrics",	admin_metrics },
};

static int
span_is(struct http_span s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static void
admin_healthz(struct conn *c)
{
	conn_http_respond(c, 200, NULL, "ok\n", 3);
}

/* 503 with the reason on one line, for load balancers and people. */
static void
admin_readyz(struct conn *c)
{
	char	why[128];
	size_t	len;

	if (metrics_ready(why, sizeof(why) - 1)) {
		conn_http_respond(c, 200, NULL, "ready\n", 6);
		return;
	}
	len = strlen(why);
	why[len++] = '\n';
	conn_http_respond(c, 503, NULL, why, len);
}

static void
admin_metrics(struct conn *c)
{
	struct buf	b = BUF_INIT;

	metrics_render(&b);
	/* conn_http_respond() copies the body. */
	/* The text exposition format's media type, with its version. */
	conn_http_respond_type(c, 200, "text/plain; version=0.0.4; "
	    "charset=utf-8", NULL, b.b_p, b.b_len);
	buf_free(&b);
}

void
admin_handle(struct conn *c)
{
	const struct http_request	*r = &c->c_head->hd_req;
	size_t				 i;

	for (i = 0; i < nitems(admin_endpoints); i++) {
		if (!span_is(r->h_path, admin_endpoints[i].path))
			continue;
		if (!span_is(r->h_method, "GET") &&
		    !span_is(r->h_method, "HEAD")) {
			conn_http_respond(c, 405, "Allow: GET, HEAD\r\n",
			    "method not allowed\n", 19);
			return;
		}
		admin_endpoints[i].fn(c);
		return;
	}
	conn_http_respond(c, 404, NULL, "not found\n", 10);
}
