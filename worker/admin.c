/*
 * Admin listener endpoints: /healthz answers while the process tree is
 * up; everything else is 404.
 */
#include "autoconf.h"

#include <string.h>

#include "admin.h"
#include "conn.h"
#include "http.h"

static int	span_is(struct http_span, const char *);

static int
span_is(struct http_span s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

void
admin_handle(struct conn *c)
{
	const struct http_request	*r = &c->c_head->hd_req;
	int				 get = span_is(r->h_method, "GET");
	int				 head = span_is(r->h_method, "HEAD");

	if (span_is(r->h_path, "/healthz")) {
		if (!get && !head) {
			conn_http_respond(c, 405, "Allow: GET, HEAD\r\n",
			    "method not allowed\n", 19);
			return;
		}
		conn_http_respond(c, 200, NULL, "ok\n", 3);
		return;
	}
	conn_http_respond(c, 404, NULL, "not found\n", 10);
}
