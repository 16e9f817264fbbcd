/*
 * TLS options for libcurl handles to the upstream (upstream_tls.h).
 */
#include "autoconf.h"

#include "upstream_tls.h"

void
upstream_tls_setopt(CURL *e, const struct config *cfg)
{
	long	verify = cfg->c_upstream_tls_verify ? 1L : 0L;

	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	if (cfg->c_upstream_ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->c_upstream_ca_file);
}
