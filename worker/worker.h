/*
 * The worker process: one libev loop serving client and admin
 * connections on listening sockets inherited from the master.
 */
#ifndef WSGATE_WORKER_H
#define WSGATE_WORKER_H

#include <stddef.h>
#include <sys/queue.h>
#include <ev.h>
#include <openssl/ssl.h>

#include "child.h"
#include "config.h"

struct worker_listener {
	int		 wl_fd;
	int		 wl_admin;
	int		 wl_ssl;
	char		 wl_name[64];
};

struct conn;
TAILQ_HEAD(conn_list, conn);

struct worker_accept {
	ev_io			 wa_io;
	struct worker_listener	 wa_l;
	struct worker		*wa_worker;
};

struct worker {
	struct ev_loop		*w_loop;
	struct config		*w_cfg;
	int			 w_slot;
	unsigned int		 w_generation;

	SSL_CTX			*w_ssl_ctx;	/* for "ssl" listeners */
	struct worker_accept	 w_accept[CONFIG_MAX_LISTEN + 1];
	size_t			 w_naccept;
	int			 w_accepting;
	ev_tstamp		 w_defer_since;	/* accept balance, see worker.c */
	ev_timer		 w_accept_resume;	/* after EMFILE */
	uint64_t		 w_emfile_logged;

	struct child_signals	 w_signals;
	ev_timer		 w_stop_timer;
	ev_check		 w_sweep;
	ev_prepare		 w_flusher;
	int			 w_draining;	/* QUIT or TERM received */

	struct conn_list	 w_conns;
	struct conn_list	 w_dead;	/* closed, freed by w_sweep */
	TAILQ_HEAD(, conn)	 w_flush;	/* output queued this iteration */
	unsigned int		 w_nconns;

	uint8_t			 w_rbuf[65536];	/* every read lands here */
};

/*
 * Run the worker until it is told to stop.  Takes ownership of the
 * listener fds and of cfg; the TLS context is shared with the master.  Returns the process exit status.
 */
int	worker_main(struct config *cfg, SSL_CTX *, struct worker_listener *,
	    size_t, const char *ipc_path, void *ring_mem, size_t ring_size,
	    int slot, unsigned int generation);

/* A connection closed: exits the loop once draining and idle. */
void	worker_conn_gone(struct worker *);

#endif /* WSGATE_WORKER_H */
