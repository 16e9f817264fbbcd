/*
 * The dbwriter: accepts worker connections on the master's Unix socket,
 * checks their protocol version, and keeps a PostgreSQL connection up.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "child.h"
#include "dbwriter.h"
#include "ipc_proto.h"
#include "log.h"
#include "pg.h"
#include "util.h"

struct peer {
	TAILQ_ENTRY(peer)	 p_entry;
	struct dbwriter		*p_dbw;
	int			 p_fd;
	int			 p_hello;	/* HELLO received */
	uint32_t		 p_slot;
	ev_io			 p_io;
};

struct dbwriter {
	struct ev_loop		*d_loop;
	struct config		*d_cfg;
	int			 d_slot;
	unsigned int		 d_generation;
	int			 d_ipc_fd;
	ev_io			 d_accept;
	struct child_signals	 d_signals;
	ev_timer		 d_stop_timer;
	int			 d_stopping;
	struct pg		 d_pg;
	TAILQ_HEAD(, peer)	 d_peers;
};

static void	dbw_accept_cb(struct ev_loop *, ev_io *, int);
static void	dbw_peer_cb(struct ev_loop *, ev_io *, int);
static void	dbw_peer_close(struct peer *);
static int	dbw_peer_packet(struct peer *, const uint8_t *, size_t);
static void	dbw_stop_cb(void *, int);
static void	dbw_stop_timer_cb(struct ev_loop *, ev_timer *, int);
static void	dbw_maybe_done(struct dbwriter *);

static void
dbw_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dbwriter	*d = io->data;
	struct peer	*p;
	int		 fd;

	(void)revents;
	for (;;) {
		fd = accept4(d->d_ipc_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("accept on the worker socket");
			return;
		}
		p = xcalloc(1, sizeof(*p));
		p->p_dbw = d;
		p->p_fd = fd;
		ev_io_init(&p->p_io, dbw_peer_cb, fd, EV_READ);
		p->p_io.data = p;
		ev_io_start(loop, &p->p_io);
		TAILQ_INSERT_TAIL(&d->d_peers, p, p_entry);
	}
}

static void
dbw_peer_close(struct peer *p)
{
	struct dbwriter	*d = p->p_dbw;

	ev_io_stop(d->d_loop, &p->p_io);
	close(p->p_fd);
	TAILQ_REMOVE(&d->d_peers, p, p_entry);
	free(p);
	dbw_maybe_done(d);
}

/*
 * One packet from a worker.  Returns -1 when the peer broke the
 * protocol and must be dropped.
 */
static int
dbw_peer_packet(struct peer *p, const uint8_t *buf, size_t len)
{
	struct ipc_hdr		 h;
	struct ipc_hello	 hello;

	if (len < sizeof(h)) {
		log_warnx("short packet from worker len=%zu", len);
		return -1;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.ih_magic != IPC_MAGIC || h.ih_version != IPC_VERSION) {
		log_warnx("worker speaks another protocol magic=%08x "
		    "version=%u expected=%u", h.ih_magic, h.ih_version,
		    IPC_VERSION);
		return -1;
	}
	if (!p->p_hello) {
		if (h.ih_type != IPC_HELLO || len != sizeof(hello)) {
			log_warnx("worker did not start with HELLO type=%u",
			    h.ih_type);
			return -1;
		}
		memcpy(&hello, buf, sizeof(hello));
		p->p_hello = 1;
		p->p_slot = hello.ihe_slot;
		log_info("worker connected slot=%u generation=%u pid=%u",
		    hello.ihe_slot, hello.ihe_generation, hello.ihe_pid);
		return 0;
	}
	log_warnx("unexpected packet from worker slot=%u type=%u",
	    p->p_slot, h.ih_type);
	return -1;
}

static void
dbw_peer_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct peer	*p = io->data;
	uint8_t		 buf[IPC_MAX_PACKET];
	ssize_t		 n;

	(void)loop;
	(void)revents;
	for (;;) {
		n = recv(p->p_fd, buf, sizeof(buf), MSG_TRUNC);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			log_warn("read from worker slot=%u", p->p_slot);
			dbw_peer_close(p);
			return;
		}
		if (n == 0) {
			dbw_peer_close(p);
			return;
		}
		if ((size_t)n > sizeof(buf)) {
			log_warnx("oversized packet from worker len=%zd", n);
			dbw_peer_close(p);
			return;
		}
		if (dbw_peer_packet(p, buf, (size_t)n) == -1) {
			dbw_peer_close(p);
			return;
		}
	}
}

/* Draining ends when every worker of ours has hung up. */
static void
dbw_maybe_done(struct dbwriter *d)
{
	if (d->d_stopping && TAILQ_EMPTY(&d->d_peers))
		ev_break(d->d_loop, EVBREAK_ALL);
}

/* TERM, INT or QUIT from the master (child.c). */
static void
dbw_stop_cb(void *arg, int signum)
{
	struct dbwriter	*d = arg;

	if (!d->d_stopping) {
		log_info("%s slot=%d generation=%u",
		    signum == SIGQUIT ? "draining" : "stopping",
		    d->d_slot, d->d_generation);
		ev_io_stop(d->d_loop, &d->d_accept);
		ev_timer_set(&d->d_stop_timer,
		    d->d_cfg->c_shutdown_timeout / 1000.0, 0.);
		ev_timer_start(d->d_loop, &d->d_stop_timer);
	}
	d->d_stopping = signum;
	if (signum != SIGQUIT)
		ev_break(d->d_loop, EVBREAK_ALL);
	else
		dbw_maybe_done(d);
}

static void
dbw_stop_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	log_warnx("shutdown_timeout reached");
	ev_break(loop, EVBREAK_ALL);
}

int
dbwriter_main(struct config *cfg, int ipc_fd, int slot,
    unsigned int generation)
{
	static struct dbwriter	 dbw;
	struct dbwriter		*d = &dbw;

	memset(d, 0, sizeof(*d));
	d->d_cfg = cfg;
	d->d_slot = slot;
	d->d_generation = generation;
	d->d_ipc_fd = ipc_fd;
	TAILQ_INIT(&d->d_peers);
	if ((d->d_loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot create event loop");
	child_signals_start(d->d_loop, &d->d_signals, dbw_stop_cb, d);
	ev_timer_init(&d->d_stop_timer, dbw_stop_timer_cb, 0., 0.);
	d->d_stop_timer.data = d;
	ev_io_init(&d->d_accept, dbw_accept_cb, ipc_fd, EV_READ);
	d->d_accept.data = d;
	ev_io_start(d->d_loop, &d->d_accept);

	log_info("dbwriter started slot=%d generation=%u", slot, generation);
	pg_start(&d->d_pg, d->d_loop, cfg);
	ev_run(d->d_loop, 0);

	while (!TAILQ_EMPTY(&d->d_peers))
		dbw_peer_close(TAILQ_FIRST(&d->d_peers));
	pg_stop(&d->d_pg);
	close(ipc_fd);
	log_info("dbwriter exiting slot=%d generation=%u", slot, generation);
	config_free(cfg);
	return 0;
}
