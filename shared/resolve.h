/*
 * Host name lookups that never block an event loop.
 *
 * A numeric address is converted on the spot.  A name goes to glibc's
 * getaddrinfo_a(): the lookup runs in a helper thread, which only wakes
 * the loop (ev_async); the result is read and handed over on the loop.
 * Several names (PostgreSQL's host lists) are looked up in parallel and
 * reported together.
 */
#ifndef WSGATE_RESOLVE_H
#define WSGATE_RESOLVE_H

#include <sys/socket.h>

#include <netdb.h>
#include <stddef.h>

#include <ev.h>

#define RESOLVE_MAX_NAMES	8
#define RESOLVE_MAX_ADDRS	16	/* in all, in the order found */

struct resolve_addr {
	struct sockaddr_storage	 ra_addr;
	socklen_t		 ra_len;
	unsigned int		 ra_name;	/* index of its name */
	char			 ra_text[64];	/* numeric, no brackets */
};

struct resolver;
/*
 * On the loop, when a lookup ended: ok when there are addresses, else
 * rs_error says why.  A name whose lookup fails keeps the addresses of
 * its last lookup that found any, so that a DNS server that stops
 * answering for a while does not cut a daemon off from a server that is
 * still there.  When some names failed, ok or not, rs_error names the
 * first, and rs_error_kept says whether that one kept addresses.
 */
typedef void	resolve_fn(struct resolver *r, int ok, void *arg);

struct resolver {
	struct ev_loop		*rs_loop;
	resolve_fn		*rs_cb;
	void			*rs_arg;
	size_t			 rs_nnames;
	char			*rs_names[RESOLVE_MAX_NAMES];
	char			 rs_port[8];
	int			 rs_numeric;	/* every name an address */
	int			 rs_busy;
	int			 rs_closed;	/* read by glibc's thread */
	struct gaicb		 rs_gai[RESOLVE_MAX_NAMES];
	struct addrinfo		 rs_hints;
	ev_async		 rs_done;
	struct resolve_addr	 rs_addrs[RESOLVE_MAX_ADDRS];
	unsigned int		 rs_naddrs;
	char			 rs_error[192];
	int			 rs_error_kept;
};

/*
 * Set up a resolver for `names` (1 to RESOLVE_MAX_NAMES, "[::1]" taken
 * as "::1") and a numeric `port`.  When every name is an address the
 * addresses are there at once and rs_numeric is set; resolve_start()
 * then reports them without a lookup.  Returns 0, or -1 with rs_error
 * set (too many names, a port that is not a number).
 */
int	 resolve_init(struct resolver *, struct ev_loop *,
	    const char *const *names, size_t nnames, const char *port,
	    resolve_fn *, void *);

/*
 * Look the names up again (a lookup already running is left to end);
 * the callback runs on the loop, never from inside this call.
 */
void	 resolve_start(struct resolver *);

/* Whether a lookup is running. */
int	 resolve_busy(const struct resolver *);

/* Stop: no callback after this; frees what init allocated. */
void	 resolve_close(struct resolver *);

/* Whether `host` is a numeric IPv4 or IPv6 address ("[::1]" too). */
int	 resolve_is_numeric(const char *host);

#endif /* WSGATE_RESOLVE_H */
