/*
 * The dbwriter: accepts worker connections on the master's Unix socket,
 * checks their protocol version, takes their records (checked whole:
 * each must decode, in increasing seq order) and hands them to store.c,
 * which owns the PostgreSQL connections and the spool.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "child.h"
#include "buf.h"
#include "dbwriter.h"
#include "ipc_proto.h"
#include "log.h"
#include "record.h"
#include "stats.h"
#include "store.h"
#include "util.h"

struct peer {
	TAILQ_ENTRY(peer)	 p_entry;
	struct dbwriter		*p_dbw;
	uint64_t		 p_id;		/* for acks, never reused */
	int			 p_fd;
	int			 p_hello;	/* HELLO received */
	uint32_t		 p_slot;
	uint32_t		 p_generation;
	int			 p_handoff;	/* a newer worker: let it go */
	int			 p_dead;	/* closed from its own callback */
	ev_io			 p_io;
	ev_io			 p_wio;		/* an ack waits for room */
	uint64_t		 p_acked;	/* durable up to, per the store */
	uint64_t		 p_ack_sent;
	struct buf		 p_rec;		/* a record arriving in pieces */
	uint64_t		 p_rec_seq;
	uint32_t		 p_rec_total;
	uint64_t		 p_last_seq;	/* of the last record taken */
};

struct dbwriter {
	struct ev_loop		*d_loop;
	struct config		*d_cfg;
	int			 d_slot;
	unsigned int		 d_generation;
	int			 d_ipc_fd;
	ev_io			 d_accept;
	struct child_signals	 d_signals;
	struct stats_loop	 d_stats;
	ev_timer		 d_stop_timer;
	int			 d_stopping;
	TAILQ_HEAD(, peer)	 d_peers;
	uint64_t		 d_next_peer;
	int			 d_handing_off;
};

static void	dbw_accept_cb(struct ev_loop *, ev_io *, int);
static void	dbw_peer_cb(struct ev_loop *, ev_io *, int);
static void	dbw_peer_close(struct peer *);
static int	dbw_peer_packet(struct peer *, const uint8_t *, size_t);
static void	dbw_stop_cb(void *, int);
static void	dbw_stop_timer_cb(struct ev_loop *, ev_timer *, int);
static void	dbw_maybe_done(struct dbwriter *);
static int	dbw_peer_record(struct peer *, const uint8_t *, size_t);
static int	dbw_peer_records(struct peer *, const uint8_t *, size_t);
static int	dbw_peer_take(struct peer *, const uint8_t *, size_t);
static void	dbw_ack_cb(void *, uint64_t, uint64_t);
static void	dbw_peer_ack(struct peer *);
static void	dbw_peer_wio_cb(struct ev_loop *, ev_io *, int);
static void	dbw_drained_cb(void *);
static void	dbw_handoff_cb(void *);
static void	dbw_peer_handoff(struct peer *);

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
		p->p_id = ++d->d_next_peer;
		p->p_fd = fd;
		ev_io_init(&p->p_io, dbw_peer_cb, fd, EV_READ);
		p->p_io.data = p;
		ev_io_start(loop, &p->p_io);
		ev_io_init(&p->p_wio, dbw_peer_wio_cb, fd, EV_WRITE);
		p->p_wio.data = p;
		TAILQ_INSERT_TAIL(&d->d_peers, p, p_entry);
	}
}

static void
dbw_peer_close(struct peer *p)
{
	struct dbwriter	*d = p->p_dbw;

	ev_io_stop(d->d_loop, &p->p_io);
	ev_io_stop(d->d_loop, &p->p_wio);
	close(p->p_fd);
	TAILQ_REMOVE(&d->d_peers, p, p_entry);
	buf_free(&p->p_rec);
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
		p->p_generation = hello.ihe_generation;
		log_info("worker connected slot=%u generation=%u pid=%u",
		    hello.ihe_slot, hello.ihe_generation, hello.ihe_pid);
		dbw_peer_handoff(p);
		return 0;
	}
	if (h.ih_type == IPC_RECORDS && len > sizeof(h) &&
	    p->p_rec.b_len == 0)
		return dbw_peer_records(p, buf + sizeof(h), len - sizeof(h));
	if (h.ih_type == IPC_RECORD && len >= sizeof(struct ipc_record))
		return dbw_peer_record(p, buf, len);
	log_warnx("unexpected packet from worker slot=%u type=%u",
	    p->p_slot, h.ih_type);
	return -1;
}

/* A record, or a piece of one; pieces come in order, back to back. */
static int
dbw_peer_record(struct peer *p, const uint8_t *buf, size_t len)
{
	struct ipc_record	h;
	size_t			piece = len - sizeof(h), total;
	uint64_t		seq;

	memcpy(&h, buf, sizeof(h));
	if (h.irc_total == 0 || h.irc_total > RECORD_SIZE_MAX ||
	    (uint64_t)h.irc_offset + piece > h.irc_total) {
		log_warnx("bad record packet from worker slot=%u", p->p_slot);
		return -1;
	}
	if (h.irc_offset == 0) {
		buf_reset(&p->p_rec);
		p->p_rec_seq = h.irc_seq;
		p->p_rec_total = h.irc_total;
	} else if (h.irc_seq != p->p_rec_seq ||
	    h.irc_total != p->p_rec_total ||
	    h.irc_offset != p->p_rec.b_len) {
		log_warnx("record pieces out of order from worker slot=%u",
		    p->p_slot);
		return -1;
	}
	buf_append(&p->p_rec, buf + sizeof(h), piece);
	if (p->p_rec.b_len < h.irc_total)
		return 0;
	if (record_peek(p->p_rec.b_p, p->p_rec.b_len, &total, &seq) == -1 ||
	    seq != h.irc_seq) {
		log_warnx("bad record from worker slot=%u", p->p_slot);
		return -1;
	}
	if (dbw_peer_take(p, (const uint8_t *)p->p_rec.b_p,
	    p->p_rec.b_len) != (int)p->p_rec.b_len)
		return -1;
	buf_reset(&p->p_rec);
	/* Large buffers go back; most records are small. */
	if (p->p_rec.b_cap > IPC_MAX_PACKET * 4)
		buf_free(&p->p_rec);
	return 0;
}

/* Whole records back to back: all of them valid, or the peer goes. */
static int
dbw_peer_records(struct peer *p, const uint8_t *buf, size_t len)
{
	int	n;

	while (len > 0) {
		if ((n = dbw_peer_take(p, buf, len)) <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The record at the start of buf[0..len) goes to the store if it
 * decodes and its seq follows the last one's.  Returns its length, or
 * 0 if it is not valid.
 */
static int
dbw_peer_take(struct peer *p, const uint8_t *buf, size_t len)
{
	struct record	 r;
	const char	*why = "";
	size_t		 n;

	if ((n = record_decode_next(buf, len, &r, &why)) == 0 ||
	    r.r_seq <= p->p_last_seq) {
		log_warnx("worker slot=%u sent an invalid record: %s",
		    p->p_slot, n == 0 ? why : "seq out of order");
		return 0;
	}
	p->p_last_seq = r.r_seq;
	store_add(p->p_id, r.r_seq, buf, n);
	return (int)n;
}

/*
 * While we stop, a worker of a newer generation (it reached us before
 * we were told to drain) is read no more: it goes to a dbwriter of its
 * own generation once what we took is durable (dbw_handoff_cb).
 */
static void
dbw_peer_handoff(struct peer *p)
{
	struct dbwriter	*d = p->p_dbw;

	if (!d->d_stopping || !p->p_hello || p->p_handoff ||
	    p->p_generation <= d->d_generation)
		return;
	p->p_handoff = 1;
	ev_io_stop(d->d_loop, &p->p_io);
}

/* store.c: everything of peer `id` up to `seq` is durable. */
static void
dbw_ack_cb(void *arg, uint64_t id, uint64_t seq)
{
	struct dbwriter	*d = arg;
	struct peer	*p;

	TAILQ_FOREACH(p, &d->d_peers, p_entry)
		if (p->p_id == id)
			break;
	if (p == NULL)
		return;		/* gone: it resends, the insert is idempotent */
	if (seq > p->p_acked)
		p->p_acked = seq;
	dbw_peer_ack(p);
}

/*
 * Send the newest ack.  Acks are cumulative, so a full socket (a worker
 * busy elsewhere) only delays one: the newest goes once there is room.
 */
static void
dbw_peer_ack(struct peer *p)
{
	struct dbwriter	*d = p->p_dbw;
	struct ipc_ack	 ack;
	ssize_t		 n;

	if (p->p_dead || p->p_ack_sent == p->p_acked)
		return;
	memset(&ack, 0, sizeof(ack));
	ack.irk_hdr.ih_magic = IPC_MAGIC;
	ack.irk_hdr.ih_version = IPC_VERSION;
	ack.irk_hdr.ih_type = IPC_ACK;
	ack.irk_seq = p->p_acked;
	while ((n = send(p->p_fd, &ack, sizeof(ack), MSG_NOSIGNAL |
	    MSG_DONTWAIT)) == -1 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(ack)) {
		p->p_ack_sent = p->p_acked;
		ev_io_stop(d->d_loop, &p->p_wio);
	} else if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		ev_io_start(d->d_loop, &p->p_wio);
	else {
		/*
		 * Gone (killed, most likely).  We may be inside the reading of
		 * its packet (store_add() can end up here): close it from its
		 * own callback instead.
		 */
		log_warn("cannot ack worker slot=%u", p->p_slot);
		p->p_dead = 1;
		ev_io_stop(d->d_loop, &p->p_wio);
		ev_feed_event(d->d_loop, &p->p_io, EV_READ);
	}
}

static void
dbw_peer_wio_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)revents;
	dbw_peer_ack(io->data);
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
		if (p->p_dead) {
			dbw_peer_close(p);
			return;
		}
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
		if (p->p_handoff) {
			dbw_maybe_done(p->p_dbw);
			return;
		}
	}
}

/*
 * Stopping ends when every worker of ours has hung up (they leave once
 * their rings are acknowledged) and every record is durable.
 */
static void
dbw_maybe_done(struct dbwriter *d)
{
	struct peer	*p;

	if (!d->d_stopping || d->d_handing_off)
		return;
	if (TAILQ_EMPTY(&d->d_peers)) {
		store_drain(dbw_drained_cb, d);
		return;
	}
	TAILQ_FOREACH(p, &d->d_peers, p_entry)
		if (!p->p_handoff)
			return;
	/* Only newer workers are left: hand them over once all is durable. */
	store_drain(dbw_handoff_cb, d);
}

/*
 * Everything received is durable and acknowledged: close the newer
 * workers' connections; they reconnect to a dbwriter of their own
 * generation and resend whatever they sent after we stopped reading.
 */
static void
dbw_handoff_cb(void *arg)
{
	struct dbwriter	*d = arg;
	struct peer	*p;

	/* dbw_peer_close() re-enters dbw_maybe_done(): not while we loop. */
	d->d_handing_off = 1;
	for (;;) {
		TAILQ_FOREACH(p, &d->d_peers, p_entry)
			if (p->p_handoff)
				break;
		if (p == NULL)
			break;
		dbw_peer_close(p);
	}
	d->d_handing_off = 0;
	dbw_maybe_done(d);
}

static void
dbw_drained_cb(void *arg)
{
	struct dbwriter	*d = arg;

	ev_break(d->d_loop, EVBREAK_ALL);
}

/* TERM, INT or QUIT from the master (child.c). */
static void
dbw_stop_cb(void *arg, int signum)
{
	struct dbwriter	*d = arg;
	struct peer	*p;

	if (!d->d_stopping) {
		log_info("%s slot=%d generation=%u",
		    signum == SIGQUIT ? "draining" : "stopping",
		    d->d_slot, d->d_generation);
		ev_io_stop(d->d_loop, &d->d_accept);
		ev_timer_set(&d->d_stop_timer,
		    d->d_cfg->c_shutdown_timeout / 1000.0, 0.);
		ev_timer_start(d->d_loop, &d->d_stop_timer);
	}
	/*
	 * TERM and QUIT alike: our workers still send what they hold.  A
	 * reload's newer workers that reached us before we were told to
	 * drain are read no more, and handed over (dbw_handoff_cb).
	 */
	d->d_stopping = signum;
	TAILQ_FOREACH(p, &d->d_peers, p_entry)
		dbw_peer_handoff(p);
	dbw_maybe_done(d);
}

static void
dbw_stop_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	log_warnx("shutdown_timeout reached: spooling what is left");
	ev_break(loop, EVBREAK_ALL);
}

int
dbwriter_main(struct config *cfg, int ipc_fd, int slot,
    unsigned int generation)
{
	static struct dbwriter	 dbw;
	struct dbwriter		*d = &dbw;
	char			 name[32], err[512];

	memset(d, 0, sizeof(*d));
	d->d_cfg = cfg;
	d->d_slot = slot;
	d->d_generation = generation;
	d->d_ipc_fd = ipc_fd;
	TAILQ_INIT(&d->d_peers);
	if ((d->d_loop = ev_default_loop(EVFLAG_AUTO)) == NULL)
		fatalx("cannot create event loop");
	stats_attach(STATS_DBWRITER, slot);
	stats_loop_start(d->d_loop, &d->d_stats, NULL, NULL);
	child_signals_start(d->d_loop, &d->d_signals, dbw_stop_cb, d);
	ev_timer_init(&d->d_stop_timer, dbw_stop_timer_cb, 0., 0.);
	d->d_stop_timer.data = d;
	ev_io_init(&d->d_accept, dbw_accept_cb, ipc_fd, EV_READ);
	d->d_accept.data = d;
	ev_io_start(d->d_loop, &d->d_accept);

	log_info("dbwriter started slot=%d generation=%u", slot, generation);
	/* Unique per generation and slot: an old generation may still drain. */
	snprintf(name, sizeof(name), "g%u-s%d", generation, slot);
	if (store_init(d->d_loop, cfg, name, dbw_ack_cb, d, err,
	    sizeof(err)) == -1)
		fatalx("%s", err);
	ev_run(d->d_loop, 0);

	store_shutdown();
	d->d_stopping = 0;
	while (!TAILQ_EMPTY(&d->d_peers))
		dbw_peer_close(TAILQ_FIRST(&d->d_peers));
	close(ipc_fd);
	stats_loop_stop(d->d_loop, &d->d_stats);
	stats_detach();
	log_info("dbwriter exiting slot=%d generation=%u", slot, generation);
	config_free(cfg);
	return 0;
}
