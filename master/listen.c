/*
 * Listening sockets for the client and admin listeners.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "util.h"

#define LISTEN_BACKLOG	4096

static int	listen_open_one(struct listener *, char *, size_t);
static int	listen_take(struct listen_set *, struct listener *);

void
listen_addr_name(const struct sockaddr *sa, char *buf, size_t len)
{
	char	host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

static int
listen_open_one(struct listener *l, char *err, size_t errlen)
{
	int	fd, on = 1;

	fd = socket(l->ls_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket for %s: %s", l->ls_name,
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (l->ls_addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&l->ls_addr, l->ls_addrlen) == -1 ||
	    listen(fd, LISTEN_BACKLOG) == -1) {
		snprintf(err, errlen, "cannot listen on %s: %s", l->ls_name,
		    strerror(errno));
		close(fd);
		return -1;
	}
	l->ls_fd = fd;
	return 0;
}

/* Move a matching socket from `old` into `l`.  Returns 1 if taken. */
static int
listen_take(struct listen_set *old, struct listener *l)
{
	size_t	i;

	if (old == NULL)
		return 0;
	for (i = 0; i < old->lset_n; i++) {
		struct listener *o = &old->lset_l[i];
		if (o->ls_fd == -1 || o->ls_addrlen != l->ls_addrlen ||
		    memcmp(&o->ls_addr, &l->ls_addr, l->ls_addrlen) != 0)
			continue;
		l->ls_fd = o->ls_fd;
		o->ls_fd = -1;
		return 1;
	}
	return 0;
}

struct listen_set *
listen_set_open(const struct config *cfg, struct listen_set *old,
    char *err, size_t errlen)
{
	struct listen_set	*set;
	size_t			 i, n;
	int			 taken[CONFIG_MAX_LISTEN + 1];

	set = xcalloc(1, sizeof(*set));
	n = cfg->c_nlisten;
	for (i = 0; i <= n; i++) {
		const struct config_listen *cl = i < n ?
		    &cfg->c_listen[i] : &cfg->c_admin_listen;
		struct listener *l = &set->lset_l[i];

		l->ls_fd = -1;
		l->ls_kind = i < n ? LISTENER_CLIENT : LISTENER_ADMIN;
		l->ls_ssl = cl->l_ssl;
		memcpy(&l->ls_addr, &cl->l_addr, cl->l_addrlen);
		l->ls_addrlen = cl->l_addrlen;
		listen_addr_name((struct sockaddr *)&l->ls_addr, l->ls_name,
		    sizeof(l->ls_name));
		set->lset_n = i + 1;
		taken[i] = listen_take(old, l);
		if (taken[i])
			continue;
		if (listen_open_one(l, err, errlen) == -1)
			goto fail;
	}
	return set;
fail:
	/* Give taken sockets back, close the ones we opened. */
	for (i = 0; i < set->lset_n; i++) {
		struct listener *l = &set->lset_l[i];
		if (l->ls_fd == -1)
			continue;
		if (taken[i]) {
			size_t j;
			for (j = 0; j < old->lset_n; j++)
				if (old->lset_l[j].ls_fd == -1 &&
				    old->lset_l[j].ls_addrlen == l->ls_addrlen &&
				    memcmp(&old->lset_l[j].ls_addr, &l->ls_addr,
				    l->ls_addrlen) == 0) {
					old->lset_l[j].ls_fd = l->ls_fd;
					break;
				}
		} else
			close(l->ls_fd);
	}
	free(set);
	return NULL;
}

void
listen_set_close(struct listen_set *set)
{
	size_t	i;

	if (set == NULL)
		return;
	for (i = 0; i < set->lset_n; i++) {
		if (set->lset_l[i].ls_fd != -1)
			close(set->lset_l[i].ls_fd);
		set->lset_l[i].ls_fd = -1;
	}
}

void
listen_set_free(struct listen_set *set)
{
	listen_set_close(set);
	free(set);
}
