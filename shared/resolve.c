/*
 * Host name lookups off the event loop (resolve.h).
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolve.h"
#include "util.h"

static void	resolve_done_cb(struct ev_loop *, ev_async *, int);
static void	resolve_notify(union sigval);
static int	resolve_add(struct resolver *, unsigned int,
		    const struct sockaddr *, socklen_t);

/* "[::1]" -> "::1"; anything else as it is. */
static char *
resolve_unbracket(const char *host)
{
	size_t	len = strlen(host);

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
		return xstrndup(host + 1, len - 2);
	return xstrdup(host);
}

int
resolve_is_numeric(const char *host)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;
	char		*h = resolve_unbracket(host);
	int		 yes;

	yes = inet_pton(AF_INET, h, &a4) == 1 ||
	    inet_pton(AF_INET6, h, &a6) == 1;
	free(h);
	return yes;
}

int
resolve_init(struct resolver *r, struct ev_loop *loop,
    const char *const *names, size_t nnames, const char *port,
    resolve_fn *cb, void *arg)
{
	struct addrinfo	 hints, *res;
	size_t		 i;
	const char	*p;

	memset(r, 0, sizeof(*r));
	r->rs_cb = cb;
	r->rs_arg = arg;
	ev_async_init(&r->rs_done, resolve_done_cb);
	r->rs_done.data = r;
	if (nnames == 0 || nnames > RESOLVE_MAX_NAMES) {
		snprintf(r->rs_error, sizeof(r->rs_error), "%zu host names "
		    "(1 to %d can be looked up)", nnames, RESOLVE_MAX_NAMES);
		return -1;
	}
	for (p = port; *p >= '0' && *p <= '9'; p++)
		;
	if (*port == '\0' || *p != '\0' || strlen(port) >= sizeof(r->rs_port)) {
		snprintf(r->rs_error, sizeof(r->rs_error), "invalid port "
		    "\"%s\"", port);
		return -1;
	}
	snprintf(r->rs_port, sizeof(r->rs_port), "%s", port);
	r->rs_nnames = nnames;
	r->rs_numeric = 1;
	for (i = 0; i < nnames; i++) {
		r->rs_names[i] = resolve_unbracket(names[i]);
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		if (getaddrinfo(r->rs_names[i], r->rs_port, &hints, &res) !=
		    0) {
			r->rs_numeric = 0;
			continue;
		}
		resolve_add(r, (unsigned int)i, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
	}
	if (!r->rs_numeric)
		r->rs_naddrs = 0;
	r->rs_loop = loop;
	ev_async_start(loop, &r->rs_done);
	return 0;
}

/* Append one address; 0 when there was no room left. */
static int
resolve_add(struct resolver *r, unsigned int name, const struct sockaddr *sa,
    socklen_t len)
{
	struct resolve_addr	*a;
	const void		*in;

	if (r->rs_naddrs == RESOLVE_MAX_ADDRS || len > sizeof(a->ra_addr))
		return 0;
	a = &r->rs_addrs[r->rs_naddrs++];
	memcpy(&a->ra_addr, sa, len);
	a->ra_len = len;
	a->ra_name = name;
	in = sa->sa_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->
	    sin6_addr :
	    (const void *)&((const struct sockaddr_in *)(const void *)sa)->
	    sin_addr;
	if (inet_ntop(sa->sa_family, in, a->ra_text,
	    sizeof(a->ra_text)) == NULL)
		a->ra_text[0] = '\0';
	return 1;
}

void
resolve_start(struct resolver *r)
{
	struct gaicb	*list[RESOLVE_MAX_NAMES];
	struct sigevent	 sev;
	size_t		 i;
	int		 rc;

	if (r->rs_busy || r->rs_closed)
		return;
	r->rs_busy = 1;
	if (r->rs_numeric) {
		ev_async_send(r->rs_loop, &r->rs_done);
		return;
	}
	memset(&r->rs_hints, 0, sizeof(r->rs_hints));
	r->rs_hints.ai_socktype = SOCK_STREAM;
	r->rs_hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	for (i = 0; i < r->rs_nnames; i++) {
		memset(&r->rs_gai[i], 0, sizeof(r->rs_gai[i]));
		r->rs_gai[i].ar_name = r->rs_names[i];
		r->rs_gai[i].ar_service = r->rs_port;
		r->rs_gai[i].ar_request = &r->rs_hints;
		list[i] = &r->rs_gai[i];
	}
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD;
	sev.sigev_notify_function = resolve_notify;
	sev.sigev_value.sival_ptr = r;
	if ((rc = getaddrinfo_a(GAI_NOWAIT, list, (int)r->rs_nnames,
	    &sev)) != 0) {
		/* Nothing queued (no thread, no memory): report it so. */
		snprintf(r->rs_error, sizeof(r->rs_error), "cannot resolve "
		    "%s: %s", r->rs_names[0], gai_strerror(rc));
		ev_async_send(r->rs_loop, &r->rs_done);
	} else
		r->rs_error[0] = '\0';
}

/* In glibc's notification thread, once every lookup ended: wake the loop. */
static void
resolve_notify(union sigval sv)
{
	struct resolver	*r = sv.sival_ptr;

	if (!__atomic_load_n(&r->rs_closed, __ATOMIC_ACQUIRE))
		ev_async_send(r->rs_loop, &r->rs_done);
}

static void
resolve_done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct resolver		*r = w->data;
	struct resolve_addr	 old[RESOLVE_MAX_ADDRS];
	struct addrinfo		*ai;
	size_t			 i;
	unsigned int		 k, nold;
	int			 rc, failed = 0, first;
	char			 why[160] = "";

	(void)loop;
	(void)revents;
	if (!r->rs_busy)
		return;
	if (r->rs_numeric) {
		r->rs_busy = 0;
		r->rs_cb(r, 1, r->rs_arg);
		return;
	}
	if (r->rs_error[0] != '\0') {	/* no lookup was queued */
		r->rs_busy = 0;
		r->rs_error_kept = r->rs_naddrs > 0;
		r->rs_cb(r, r->rs_naddrs > 0, r->rs_arg);
		return;
	}
	for (i = 0; i < r->rs_nnames; i++)
		if (gai_error(&r->rs_gai[i]) == EAI_INPROGRESS)
			return;		/* its own notification follows */
	r->rs_busy = 0;
	nold = r->rs_naddrs;
	memcpy(old, r->rs_addrs, nold * sizeof(old[0]));
	r->rs_naddrs = 0;
	r->rs_error_kept = 0;
	for (i = 0; i < r->rs_nnames; i++) {
		if ((rc = gai_error(&r->rs_gai[i])) != 0) {
			first = failed++ == 0;
			if (first)
				snprintf(why, sizeof(why), "cannot resolve "
				    "%s: %s", r->rs_names[i],
				    gai_strerror(rc));
			/* Its addresses of before, in their order. */
			for (k = 0; k < nold; k++)
				if (old[k].ra_name == i &&
				    r->rs_naddrs < RESOLVE_MAX_ADDRS) {
					r->rs_addrs[r->rs_naddrs++] = old[k];
					r->rs_error_kept |= first;
				}
			continue;
		}
		for (ai = r->rs_gai[i].ar_result; ai != NULL; ai = ai->ai_next)
			if (!resolve_add(r, (unsigned int)i, ai->ai_addr,
			    ai->ai_addrlen))
				break;
		freeaddrinfo(r->rs_gai[i].ar_result);
		r->rs_gai[i].ar_result = NULL;
	}
	/*
	 * Some names may have failed: the others, and their own addresses
	 * of before, are still worth trying (libpq skips a host it cannot
	 * resolve); rs_error names the first.
	 */
	snprintf(r->rs_error, sizeof(r->rs_error), "%s", why);
	r->rs_cb(r, r->rs_naddrs > 0, r->rs_arg);
}

int
resolve_busy(const struct resolver *r)
{
	return r->rs_busy;
}

void
resolve_close(struct resolver *r)
{
	size_t	i;
	int	running = 0;

	if (r->rs_loop == NULL)
		return;
	__atomic_store_n(&r->rs_closed, 1, __ATOMIC_RELEASE);
	if (r->rs_busy && !r->rs_numeric && r->rs_error[0] == '\0')
		for (i = 0; i < r->rs_nnames; i++)
			if (gai_cancel(&r->rs_gai[i]) == EAI_NOTCANCELED)
				running = 1;
	ev_async_stop(r->rs_loop, &r->rs_done);
	/* A lookup glibc could not cancel still reads its name: leave it. */
	for (i = 0; i < r->rs_nnames && !running; i++) {
		free(r->rs_names[i]);
		r->rs_names[i] = NULL;
	}
	r->rs_loop = NULL;
}
