/*
 * Listening sockets: opened by the master, kept across reloads, inherited
 * by workers.  A reload builds a new set, reusing the sockets of addresses
 * that did not change so no connection attempt is ever refused.
 */
#ifndef WSGATE_LISTEN_H
#define WSGATE_LISTEN_H

#include <sys/socket.h>
#include "config.h"

enum listener_kind {
	LISTENER_CLIENT = 0,
	LISTENER_ADMIN
};

struct listener {
	int			 ls_fd;
	enum listener_kind	 ls_kind;
	int			 ls_ssl;
	struct sockaddr_storage	 ls_addr;
	socklen_t		 ls_addrlen;
	char			 ls_name[64];	/* "127.0.0.1:8080" */
};

struct listen_set {
	struct listener		 lset_l[CONFIG_MAX_LISTEN + 1];
	size_t			 lset_n;
};

/*
 * Open the listeners `cfg` asks for.  Sockets whose address is in `old`
 * (may be NULL) are taken over: their fd moves to the new set and is
 * marked -1 in `old`.  Returns a new set, or NULL with `err` filled and
 * nothing opened or taken.
 */
struct listen_set	*listen_set_open(const struct config *cfg,
			    struct listen_set *old, char *err, size_t errlen);

/* Close every fd still in the set and free it.  NULL-safe. */
void			 listen_set_free(struct listen_set *);

/* Close the fds without freeing (in children that do not need them). */
void			 listen_set_close(struct listen_set *);

/* Format an address as "a.b.c.d:port" or "[v6]:port". */
void			 listen_addr_name(const struct sockaddr *, char *,
			    size_t);

#endif /* WSGATE_LISTEN_H */
