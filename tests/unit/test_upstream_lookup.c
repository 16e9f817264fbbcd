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
 * upstream_loop_lookup(): the host name a libcurl without an
 * asynchronous resolver would look up inside a worker's loop (the
 * warning "upstream: libcurl ... has no asynchronous resolver" at start,
 * reload and -t).  Only libcurl's URLs count, only names, and nothing
 * when libcurl has AsynchDNS; the libcurl linked here says whether it
 * does.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "tests/tap.h"
#include "worker/upstream.h"

/* What upstream_loop_lookup() gives for url, "" for NULL. */
static const char *
lookup(const char *url, enum upstream_client client, unsigned int features)
{
	static char	 out[256];
	struct config	 cfg;
	char		*name;

	memset(&cfg, 0, sizeof(cfg));
	cfg.c_upstream_url = (char *)(uintptr_t)url;
	cfg.c_upstream_client = client;
	name = upstream_loop_lookup(&cfg, features);
	snprintf(out, sizeof(out), "%s", name != NULL ? name : "");
	free(name);
	return out;
}

int
main(void)
{
	const unsigned int	none = 0, async = CURL_VERSION_ASYNCHDNS;
	const curl_version_info_data *v;

	is_str(lookup("https://api.example.com/v1/process", UPSTREAM_CLIENT_AUTO,
	    none), "api.example.com", "https name, no AsynchDNS: looked up "
	    "in the loop");
	is_str(lookup("https://api.example.com:8443/x", UPSTREAM_CLIENT_AUTO,
	    async), "", "https name, AsynchDNS: not in the loop");
	is_str(lookup("https://10.0.0.7:8443/x", UPSTREAM_CLIENT_AUTO, none),
	    "", "https IPv4 address: nothing to look up");
	is_str(lookup("https://[2001:db8::1]/x", UPSTREAM_CLIENT_AUTO, none),
	    "", "https IPv6 address: nothing to look up");
	is_str(lookup("http://api.example.com/x", UPSTREAM_CLIENT_AUTO, none),
	    "", "http name with the built-in client: looked up off the loop");
	is_str(lookup("http://api.example.com/x", UPSTREAM_CLIENT_CURL, none),
	    "api.example.com", "http name, upstream_client curl, no "
	    "AsynchDNS: in the loop");
	is_str(lookup("http://user:pw@api.example.com/x", UPSTREAM_CLIENT_AUTO,
	    none), "api.example.com", "http name with user info (libcurl's): "
	    "in the loop");
	is_str(lookup("http://localhost:8080/x", UPSTREAM_CLIENT_CURL, async),
	    "", "upstream_client curl, AsynchDNS: not in the loop");

	v = curl_version_info(CURLVERSION_NOW);
	diag("libcurl %s: AsynchDNS %s", v->version,
	    (v->features & CURL_VERSION_ASYNCHDNS) ? "yes" : "no");
	return done_testing();
}
