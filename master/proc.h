/*
 * Child processes: fork, the child's set-up (signals, name, privileges,
 * descriptors) and the hand-over to the role's entry function.
 */
#ifndef WSGATE_PROC_H
#define WSGATE_PROC_H

#include <sys/types.h>
#include <openssl/ssl.h>

#include "config.h"
#include "listen.h"

enum proc_role {
	ROLE_WORKER = 0,
	ROLE_DBWRITER
};

struct proc_spawn {
	enum proc_role		 ps_role;
	int			 ps_slot;
	unsigned int		 ps_generation;
	struct config		*ps_cfg;
	struct listen_set	*ps_listeners;
	SSL_CTX			*ps_ssl_ctx;
	int			 ps_ipc_fd;	/* dbwriter listening socket */
	void			*ps_ring;	/* worker: the slot's ring region */
	size_t			 ps_ring_size;
	const char		*ps_ipc_path;
};

/*
 * Fork a child running the role.  Returns the child's pid in the master,
 * or -1 with errno set.  The child never returns.
 */
pid_t		 proc_spawn(const struct proc_spawn *);

/*
 * Switch to cfg's user and group (no-op when unset or not root).
 * Returns 0, or -1 with a reason in err.
 */
int		 proc_drop_privileges(const struct config *, char *, size_t);

/* Resolve cfg's user/group to ids; -1 ids when unset. */
void		 proc_user_ids(const struct config *, uid_t *, gid_t *);

const char	*proc_role_name(enum proc_role);

#endif /* WSGATE_PROC_H */
