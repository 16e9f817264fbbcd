/*
 * Persistence, worker side: shared-memory ring -> Unix socket -> ack.
 *
 * Delivery is at least once: after a reconnect (or in a replacement
 * worker) everything not acknowledged is sent again from the ring, and
 * the table's unique request_key makes the insert idempotent.
 *
 * Records go several to a packet (IPC_RECORDS), and wait up to
 * PERSIST_HOLD_S for more (or until a packet's worth is waiting) before
 * they leave: they are safe in the ring meanwhile, and the dbwriter's
 * commit takes far longer anyway.  Sending what each loop iteration
 * appended woke the dbwriter thousands of times a second under load, and
 * each wake-up could preempt a worker in the middle of an iteration.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc_proto.h"
#include "log.h"
#include "persist.h"
#include "ring.h"
#include "util.h"

#define PERSIST_BACKOFF_MIN_MS	50
#define PERSIST_BACKOFF_MAX_MS	2000
/*
 * Room kept free so a request admitted now can still be recorded; also
 * the most one record may take (a longer response is stored cut).
 */
#define PERSIST_HEADROOM_DIV	8
/* The record header, the ring's per-record header and padding. */
#define PERSIST_RECORD_SLACK	64
/* Seconds appended records may wait to leave with later ones. */
#define PERSIST_HOLD_S		0.002
/* Seconds between log lines about responses stored cut. */
#define PERSIST_CUT_LOG_MS	60000	/* "stored cut": a line at most */

static struct {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct ring		*ring;
	const char		*path;
	int			 slot;
	unsigned int		 generation;
	int			 fd;
	int			 connected;
	ev_io			 rio;
	ev_io			 wio;
	ev_timer		 retry;
	ev_timer		 hold;		/* records waiting for more */
	size_t			 held;		/* their bytes */
	unsigned int		 backoff_ms;
	struct ring_cursor	 cursor;
	/* The record being sent, possibly in pieces. */
	const uint8_t		*cur;
	size_t			 cur_len;
	size_t			 cur_off;
	uint64_t		 cur_seq;
	uint8_t			 pkt[IPC_MAX_PACKET];
	struct log_limit	 cut_log;	/* "response stored cut" */
	void			(*on_ack)(void *);
	void			*on_ack_arg;
} ps;

static void	persist_connect(void);
static void	persist_disconnect(const char *);
static void	persist_flush(void);
static int	persist_send(const void *, size_t);
static size_t	persist_pack(void);
static size_t	persist_record_max(void);
static int	persist_cut(struct record *, size_t, char *, size_t);
static void	persist_read_cb(struct ev_loop *, ev_io *, int);
static void	persist_write_cb(struct ev_loop *, ev_io *, int);
static void	persist_retry_cb(struct ev_loop *, ev_timer *, int);
static void	persist_hold_cb(struct ev_loop *, ev_timer *, int);

void
persist_init(struct ev_loop *loop, const struct config *cfg, void *mem,
    size_t size, const char *ipc_path, int slot, unsigned int generation,
    void (*on_ack)(void *), void *arg)
{
	struct ring_recovery	rec;

	memset(&ps, 0, sizeof(ps));
	ps.loop = loop;
	ps.cfg = cfg;
	ps.path = ipc_path;
	ps.slot = slot;
	ps.generation = generation;
	ps.fd = -1;
	ps.on_ack = on_ack;
	ps.on_ack_arg = arg;
	ps.backoff_ms = PERSIST_BACKOFF_MIN_MS;
	if ((ps.ring = ring_attach(mem, size, &rec)) == NULL)
		fatalx("ring of slot %d is damaged", slot);
	if (rec.rr_records > 0 || rec.rr_torn || rec.rr_corrupt > 0)
		log_info("ring recovered slot=%d records=%llu bytes=%llu "
		    "torn=%d", slot, (unsigned long long)rec.rr_records,
		    (unsigned long long)rec.rr_bytes, rec.rr_torn);
	ev_init(&ps.rio, persist_read_cb);
	ev_init(&ps.wio, persist_write_cb);
	ev_timer_init(&ps.retry, persist_retry_cb, 0., 0.);
	ev_timer_init(&ps.hold, persist_hold_cb, 0., 0.);
	persist_connect();
}

int
persist_has_room(void)
{
	size_t	cap = ring_capacity(ps.ring);

	return ring_used_bytes(ps.ring) + cap / PERSIST_HEADROOM_DIV <= cap;
}

unsigned long
persist_pending(void)
{
	return ps.ring != NULL ? (unsigned long)ring_count(ps.ring) : 0;
}

/*
 * The longest record encoding stored: at most a ring's headroom, so one
 * large response cannot fill the ring for every other request.
 */
static size_t
persist_record_max(void)
{
	size_t	max = ring_capacity(ps.ring) / PERSIST_HEADROOM_DIV;

	max = max > PERSIST_RECORD_SLACK ? max - PERSIST_RECORD_SLACK : 0;
	return max < ring_max_record(ps.ring) ? max : ring_max_record(ps.ring);
}

/*
 * Cut r's response so that the record encodes to at most `max` bytes,
 * at a UTF-8 character boundary, and say so in r_error (written into
 * note[0..notelen)).  The client's reply is not cut.  Returns 0, or -1
 * if no cut of the response is enough.
 */
static int
persist_cut(struct record *r, size_t max, char *note, size_t notelen)
{
	size_t	len = record_encoded_size(r), full = r->r_response.len;
	size_t	keep, rest, back;
	int	n;

	if (r->r_response.p == NULL || r->r_error.p != NULL)
		return -1;
	rest = len - full;
	/* The note's length depends on `keep`: reserve its longest form. */
	n = snprintf(note, notelen, "response cut to %zu of %zu bytes: "
	    "longer than ring_size/%d", full, full, PERSIST_HEADROOM_DIV);
	if (n < 0 || (size_t)n >= notelen || rest + (size_t)n >= max)
		return -1;
	keep = max - rest - (size_t)n;
	if (keep > full)
		return -1;
	/* Do not split a character: back off over continuation bytes. */
	for (back = 0; back < 3 && keep > 0 &&
	    ((uint8_t)r->r_response.p[keep] & 0xc0) == 0x80; back++)
		keep--;
	snprintf(note, notelen, "response cut to %zu of %zu bytes: longer "
	    "than ring_size/%d", keep, full, PERSIST_HEADROOM_DIV);
	r->r_response.len = keep;
	r->r_error.p = note;
	r->r_error.len = strlen(note);
	return 0;
}

int
persist_append(const struct record *r)
{
	struct record	 tmp = *r;
	size_t		 len = record_encoded_size(r), max;
	uint64_t	 seq, quiet;
	char		 note[128];
	void		*p;

	if (len == 0) {
		log_warnx("record cannot be encoded (field over its limit)");
		return -1;
	}
	max = persist_record_max();
	if (len > max) {
		if (persist_cut(&tmp, max, note, sizeof(note)) == -1) {
			log_warnx("record of %zu bytes does not fit "
			    "ring_size/%d, even with its response cut "
			    "key=%.*s", len,
			    PERSIST_HEADROOM_DIV, (int)r->r_request_key.len,
			    r->r_request_key.p);
			return -1;
		}
		/* One line a minute at most: large bodies may be the rule. */
		if (log_limit_now(&ps.cut_log, PERSIST_CUT_LOG_MS, &quiet))
			log_info("response stored cut to %zu of %zu bytes "
			    "(ring_size/%d) key=%.*s unlogged=%" PRIu64,
			    tmp.r_response.len, r->r_response.len,
			    PERSIST_HEADROOM_DIV, (int)r->r_request_key.len,
			    r->r_request_key.p, quiet);
		len = record_encoded_size(&tmp);
	}
	if ((p = ring_reserve(ps.ring, len, &seq)) == NULL)
		return -1;
	tmp.r_seq = seq;
	record_encode(&tmp, p, len);
	ring_commit(ps.ring);
	if (!ps.connected || ev_is_active(&ps.wio))
		return 0;	/* sent on connection, or when writable */
	if ((ps.held += len) >= IPC_RECORDS_ROOM) {
		ev_timer_stop(ps.loop, &ps.hold);
		persist_flush();
	} else if (!ev_is_active(&ps.hold)) {
		/* (libev keeps a stopped timer's time left, not its delay) */
		ev_timer_set(&ps.hold, PERSIST_HOLD_S, 0.);
		ev_timer_start(ps.loop, &ps.hold);
	}
	return 0;
}

static void
persist_hold_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (ps.connected && !ev_is_active(&ps.wio))
		persist_flush();
}

/* ---- Connection ---- */

static void
persist_connect(void)
{
	struct sockaddr_un	sun;
	struct ipc_hello	hello;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, ps.path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		persist_disconnect("socket");
		return;
	}
	/* A local connect completes at once or fails (ECONNREFUSED...). */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		persist_disconnect(strerror(errno));
		return;
	}
	memset(&hello, 0, sizeof(hello));
	hello.ihe_hdr.ih_magic = IPC_MAGIC;
	hello.ihe_hdr.ih_version = IPC_VERSION;
	hello.ihe_hdr.ih_type = IPC_HELLO;
	hello.ihe_slot = (uint32_t)ps.slot;
	hello.ihe_generation = ps.generation;
	hello.ihe_pid = (uint32_t)getpid();
	if (send(fd, &hello, sizeof(hello), MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(hello)) {
		close(fd);
		persist_disconnect(strerror(errno));
		return;
	}
	ps.fd = fd;
	ps.connected = 1;
	ps.backoff_ms = PERSIST_BACKOFF_MIN_MS;
	/* Everything not acknowledged goes again, oldest first. */
	ring_rewind(ps.ring, &ps.cursor);
	ps.cur = NULL;
	ev_io_set(&ps.rio, fd, EV_READ);
	ev_io_start(ps.loop, &ps.rio);
	ev_io_set(&ps.wio, fd, EV_WRITE);
	ev_io_start(ps.loop, &ps.wio);
	log_debug("connected to the dbwriters unacked=%llu",
	    (unsigned long long)ring_count(ps.ring));
}

static void
persist_disconnect(const char *why)
{
	if (ps.fd != -1) {
		ev_io_stop(ps.loop, &ps.rio);
		ev_io_stop(ps.loop, &ps.wio);
		close(ps.fd);
		ps.fd = -1;
	}
	if (ps.connected || ps.backoff_ms >= PERSIST_BACKOFF_MAX_MS)
		log_warnx("dbwriter connection lost: %s retry_in=%ums", why,
		    ps.backoff_ms);
	ps.connected = 0;
	ps.cur = NULL;
	ev_timer_set(&ps.retry, ps.backoff_ms / 1000.0, 0.);
	ev_timer_start(ps.loop, &ps.retry);
	ps.backoff_ms *= 2;
	if (ps.backoff_ms > PERSIST_BACKOFF_MAX_MS)
		ps.backoff_ms = PERSIST_BACKOFF_MAX_MS;
}

static void
persist_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (!ps.connected)
		persist_connect();
}

/*
 * One packet.  Returns 0 when sent; -1 when the socket is full (the
 * writability watcher is on) or the connection was lost.
 */
static int
persist_send(const void *pkt, size_t len)
{
	ssize_t	n;

	for (;;) {
		n = send(ps.fd, pkt, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n != -1)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			ev_io_start(ps.loop, &ps.wio);
		else
			persist_disconnect(strerror(errno));
		return -1;
	}
}

/*
 * Copy whole records from the cursor into a RECORDS packet while they
 * fit; returns the bytes of records copied.  A record too large for any
 * packet becomes the one sent in pieces (ps.cur) when it comes first,
 * else it waits for the next call.
 */
static size_t
persist_pack(void)
{
	struct ring_cursor	 before;
	const void		*data;
	size_t			 len, off = 0;
	uint64_t		 seq;

	for (;;) {
		before = ps.cursor;
		if (ring_next(ps.ring, &ps.cursor, &data, &len, &seq) != 1)
			return off;
		if (off + len > IPC_RECORDS_ROOM) {
			if (off > 0) {
				ps.cursor = before;
				return off;
			}
			ps.cur = data;
			ps.cur_len = len;
			ps.cur_off = 0;
			ps.cur_seq = seq;
			return 0;
		}
		memcpy(ps.pkt + sizeof(struct ipc_hdr) + off, data, len);
		off += len;
	}
}

/* Send records from the cursor until the socket is full. */
static void
persist_flush(void)
{
	struct ipc_hdr		*hdr = (struct ipc_hdr *)(void *)ps.pkt;
	struct ipc_record	*h = (struct ipc_record *)(void *)ps.pkt;
	struct ring_cursor	 start;
	size_t			 piece, len = 0;

	for (;;) {
		if (ps.cur == NULL) {
			start = ps.cursor;
			if ((len = persist_pack()) == 0 && ps.cur == NULL) {
				ev_io_stop(ps.loop, &ps.wio);
				ev_timer_stop(ps.loop, &ps.hold);
				ps.held = 0;
				return;
			}
		}
		if (ps.cur == NULL) {
			memset(hdr, 0, sizeof(*hdr));
			hdr->ih_magic = IPC_MAGIC;
			hdr->ih_version = IPC_VERSION;
			hdr->ih_type = IPC_RECORDS;
			if (persist_send(ps.pkt, sizeof(*hdr) + len) == -1) {
				/* The same records go in the next packet. */
				ps.cursor = start;
				return;
			}
			continue;
		}
		piece = ps.cur_len - ps.cur_off;
		if (piece > IPC_RECORD_PIECE)
			piece = IPC_RECORD_PIECE;
		memset(h, 0, sizeof(*h));
		h->irc_hdr.ih_magic = IPC_MAGIC;
		h->irc_hdr.ih_version = IPC_VERSION;
		h->irc_hdr.ih_type = IPC_RECORD;
		h->irc_seq = ps.cur_seq;
		h->irc_total = (uint32_t)ps.cur_len;
		h->irc_offset = (uint32_t)ps.cur_off;
		memcpy(ps.pkt + sizeof(*h), ps.cur + ps.cur_off, piece);
		if (persist_send(ps.pkt, sizeof(*h) + piece) == -1)
			return;
		ps.cur_off += piece;
		if (ps.cur_off == ps.cur_len)
			ps.cur = NULL;
	}
}

static void
persist_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)io;
	(void)revents;
	persist_flush();
}

static void
persist_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ipc_ack	ack;
	ssize_t		n;

	(void)loop;
	(void)io;
	(void)revents;
	for (;;) {
		n = recv(ps.fd, &ack, sizeof(ack), MSG_DONTWAIT);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			persist_disconnect(n == 0 ? "closed by the dbwriter" :
			    strerror(errno));
			return;
		}
		if ((size_t)n != sizeof(ack) || ack.irk_hdr.ih_magic !=
		    IPC_MAGIC || ack.irk_hdr.ih_type != IPC_ACK) {
			persist_disconnect("bad packet from the dbwriter");
			return;
		}
		/*
		 * The piece being sent may point into space this ack frees
		 * only if it was acknowledged, which cannot happen before it
		 * was sent whole.
		 */
		if (ring_ack(ps.ring, ack.irk_seq) > 0 && ps.on_ack != NULL)
			ps.on_ack(ps.on_ack_arg);
	}
}

void
persist_shutdown(void)
{
	ev_timer_stop(ps.loop, &ps.retry);
	ev_timer_stop(ps.loop, &ps.hold);
	if (ps.fd != -1) {
		ev_io_stop(ps.loop, &ps.rio);
		ev_io_stop(ps.loop, &ps.wio);
		close(ps.fd);
		ps.fd = -1;
	}
	ps.connected = 0;
}
