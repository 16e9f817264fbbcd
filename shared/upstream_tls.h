/*
 * The TLS options of every libcurl handle that talks to the upstream
 * (the workers' and `wsgate -T`'s): certificate verification on unless
 * upstream_tls_verify is off, against upstream_ca_file when set.
 */
#ifndef WSGATE_UPSTREAM_TLS_H
#define WSGATE_UPSTREAM_TLS_H

#include <curl/curl.h>

#include "config.h"

void	upstream_tls_setopt(CURL *, const struct config *);

#endif /* WSGATE_UPSTREAM_TLS_H */
