/*
 * Record storage for the dbwriter.
 *
 * Records wait in `pending`, in arrival order.  Batches of up to
 * db_batch_size records are cut from it (when that many wait, after
 * db_flush_interval, at once while stopping) whenever one of the
 * db_connections PostgreSQL connections is idle; each connection has one
 * batch in flight, and records keep arriving meanwhile.
 *
 * A live batch goes with COPY ... FROM STDIN, which costs the server
 * about a third less CPU per row than the INSERT ... ON CONFLICT DO
 * NOTHING over arrays it replaces (measured: 3.2 against 4.4 us/row on
 * PostgreSQL 15).  COPY is all or nothing: when a request_key is in the
 * table already (SQLSTATE 23505: a worker resent a record whose ack it
 * did not get), the batch goes again with the INSERT, which skips the
 * rows that are there.  Replayed batches, often in the table already,
 * always go with the INSERT.
 *
 * Several connections rather than libpq's pipeline mode on one: with
 * fsync on, most of a batch's time is its commit waiting for the WAL
 * flush, and a server backend runs its statements one after the other,
 * pipelined or not, so a pipeline saves only the round trips in between.
 * Several backends insert a batch while another one's commit is being
 * flushed, PostgreSQL flushes commits that wait together as one (group
 * commit), and the inserts use more than one server CPU.  Each
 * connection stays pg.c's simple one-statement state machine, and a
 * broken connection fails only the batch it had.
 *
 * Batches commit in any order, but acknowledgements are cumulative per
 * peer.  Batches of workers' records ("live") sit in `live` in the order
 * they were cut, keep their place when they fail and go again, and are
 * acknowledged from the head only as far as every batch is durable, so a
 * record is never acknowledged before an older one of its peer.
 *
 * A live batch is spooled when no connection is up (at flush time), or
 * once it (or a record still in `pending`) is db_spool_after old, sent
 * or not; it counts as durable only when the spool's fsync returned.
 * The spool is the disk thread's (spoolq.c): the loop never waits for
 * the disk.  A spooled batch still at PostgreSQL is forgotten when it
 * returns, whatever the outcome: its records replay from the spool.
 *
 * Replay: when a connection is idle and no live batch waits, the thread
 * reads spooled records back into a "replay" batch.  Replay batches sit
 * in `replay` in spool order; once committed, from the head in that
 * order, the spool may drop them (spool_commit(), on the thread too).
 * A failed replay batch goes again from memory.
 *
 * A batch PostgreSQL rejects for its data (SQLSTATE class 22, 23 or 54)
 * is split in halves that go again, and so on down to single records: a
 * record rejected alone goes to the dead-letter file.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "pg.h"
#include "record.h"
#include "spool.h"
#include "spoolq.h"
#include "stats.h"
#include "store.h"
#include "utf8.h"
#include "util.h"

/* Seconds between looks for spools whose dbwriter is gone. */
#define STORE_ADOPT_EVERY	10.0
#define STORE_SLOW_LOG_MS	10000	/* "PostgreSQL slow": a line at most */
#define STORE_FAIL_LOG_MS	10000	/* "batch failed": a line at most */

struct item {
	TAILQ_ENTRY(item)	 it_entry;
	uint64_t		 it_peer;	/* 0: from the spool */
	uint64_t		 it_seq;
	ev_tstamp		 it_born;	/* arrival */
	struct spool_pos	 it_spos;	/* from the spool: its end */
	size_t			 it_len;
	uint8_t			 it_data[];
};
TAILQ_HEAD(item_list, item);

enum batch_state {
	B_WAIT,			/* to be sent to PostgreSQL */
	B_SENT,			/* its INSERT in flight */
	B_DONE			/* committed, or its record dead-lettered */
};

struct batch {
	TAILQ_ENTRY(batch)	 b_entry;	/* in st.live or st.replay */
	struct item_list	 b_items;
	size_t			 b_n;
	enum batch_state	 b_state;
	int			 b_replay;	/* records from the spool */
	int			 b_job;		/* the disk thread reads b_items */
	int			 b_spooled;	/* durable in the spool */
	int			 b_acked;
	int			 b_aged;	/* spooled for db_spool_after */
	int			 b_rejected;	/* for its data: split it */
	int			 b_copied;	/* sent with COPY */
	int			 b_conflict;	/* has rows in the table */
	char			 b_sqlstate[6];
	char			 b_reason[256];	/* PostgreSQL's message */
	ev_tstamp		 b_born;	/* arrival of its first record */
	double			 b_sent;	/* stats_now() at its INSERT */
};
TAILQ_HEAD(batch_list, batch);

struct peer_ack {
	uint64_t	pa_peer;
	uint64_t	pa_seq;
};

static struct {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct spool		*spool;
	struct spoolq		*q;
	store_ack_fn		*ack;
	void			*ack_arg;
	struct pg		*conns;
	int			 nconns;
	int			 nstarted;
	struct item_list	 pending;
	size_t			 npending;
	size_t			 nlive;		/* records of live batches not acked */
	struct batch_list	 live;
	struct batch_list	 replay;
	int			 fetching;	/* a replay read is queued */
	int			 spool_more;	/* the spool may hold records */
	uint64_t		 replay_read;	/* records read back this replay */
	ev_tstamp		 replay_start;
	int			 flush_due;	/* db_flush_interval passed */
	ev_tstamp		 retry_at;	/* no statement before (error) */
	ev_tstamp		 spool_retry_at; /* no spooling before (full) */
	ev_timer		 flush_timer;
	ev_timer		 spool_timer;
	ev_timer		 adopt_timer;
	ev_prepare		 ack_prepare;	/* acks go once per iteration */
	struct buf		 cols[PG_NPARAMS];	/* INSERT's arrays */
	struct buf		 copy;		/* COPY's rows */
	struct peer_ack		*acks;
	size_t			 nacks;
	size_t			 acks_cap;
	void			(*drained)(void *);
	void			*drained_arg;
	int			 spool_full_logged;
	int			 down_logged;
	struct log_limit	 fail_log;	/* "batch failed" */
	struct log_limit	 slow_log;	/* "PostgreSQL slow" */
	size_t			 slow_batches;	/* spooled since, rows */
	size_t			 slow_rows;
	int			 kicking;
	int			 kick_again;
	int			 closing;
} st;

static void	store_flush_cb(struct ev_loop *, ev_timer *, int);
static void	store_spool_cb(struct ev_loop *, ev_timer *, int);
static void	store_adopt_cb(struct ev_loop *, ev_timer *, int);
static void	store_pg_state_cb(void *, int);
static void	store_done_cb(void *, int, const char *, const char *);
static struct batch *batch_new(int, ev_tstamp);
static void	batch_free(struct batch *);
static struct batch *batch_cut(void);
static void	batch_split(struct batch *);
static int	batch_build(struct item_list *, int);
static int	store_pg_up(void);
static void	store_step(void);
static void	store_kick(void);
static struct batch *store_next(void);
static void	store_send(struct batch *, struct pg *);
static void	store_rejected(struct batch *);
static void	store_check_spool(void);
static void	store_spool(struct batch *);
static int	store_spool_work(struct spool *, void *);
static void	store_spool_done(void *, int);
static void	store_log_slow(const struct batch *, ev_tstamp);
static void	store_fetch(void);
static int	store_fetch_work(struct spool *, void *);
static void	store_fetch_done(void *, int);
static int	store_commit_work(struct spool *, void *);
static void	store_commit_done(void *, int);
static int	store_dead_work(struct spool *, void *);
static void	store_dead_done(void *, int);
static void	store_release(void);
static void	store_ack_add(const struct item_list *);
static void	store_ack_send(void);
static void	store_ack_cb(struct ev_loop *, ev_prepare *, int);
static void	store_check_drained(void);

int
store_init(struct ev_loop *loop, const struct config *cfg,
    const char *spool_name, store_ack_fn *ack, void *arg, char *err,
    size_t errlen)
{
	int	tries, i;

	memset(&st, 0, sizeof(st));
	st.loop = loop;
	st.cfg = cfg;
	st.ack = ack;
	st.ack_arg = arg;
	TAILQ_INIT(&st.pending);
	TAILQ_INIT(&st.live);
	TAILQ_INIT(&st.replay);
	/*
	 * A sibling adopting leftover spools holds each lock it tries for a
	 * moment; ours is new, so a busy lock clears at once.  Start-up
	 * only, before the loop runs.
	 */
	for (tries = 0; tries < 20; tries++) {
		st.spool = spool_open(cfg->c_spool_dir, spool_name,
		    cfg->c_spool_max_bytes, 0);
		if (st.spool != NULL || errno != EWOULDBLOCK)
			break;
		usleep(50000);
	}
	if (st.spool == NULL) {
		snprintf(err, errlen, "cannot open the spool %s/%s: %s",
		    cfg->c_spool_dir, spool_name, strerror(errno));
		return -1;
	}
	/* Spools of dbwriters that are gone are ours to replay. */
	spool_adopt(st.spool);
	st.spool_more = 1;
	if ((st.q = spoolq_start(loop, st.spool)) == NULL) {
		snprintf(err, errlen, "cannot start the spool thread: %s",
		    strerror(errno));
		spool_close(st.spool);
		st.spool = NULL;
		return -1;
	}
	ev_timer_init(&st.flush_timer, store_flush_cb,
	    cfg->c_db_flush_interval / 1000.0, 0.);
	ev_timer_init(&st.spool_timer, store_spool_cb, 0., 0.);
	ev_timer_init(&st.adopt_timer, store_adopt_cb, STORE_ADOPT_EVERY,
	    STORE_ADOPT_EVERY);
	ev_timer_start(loop, &st.adopt_timer);
	ev_prepare_init(&st.ack_prepare, store_ack_cb);
	/*
	 * The first connection creates the table; the others start once it
	 * is ready (store_pg_state_cb), so that they do not race it.
	 */
	st.nconns = (int)cfg->c_db_connections;
	st.conns = xcalloc((size_t)st.nconns, sizeof(*st.conns));
	for (i = 0; i < st.nconns; i++)
		pg_init(&st.conns[i], loop, cfg, store_pg_state_cb,
		    &st.conns[i]);
	pg_connect(&st.conns[0]);
	st.nstarted = 1;
	return 0;
}

size_t
store_pending(void)
{
	return st.npending + st.nlive;
}

void
store_add(uint64_t peer_id, uint64_t seq, const void *rec, size_t len)
{
	struct item	*it;

	it = xmalloc(sizeof(*it) + len);
	it->it_peer = peer_id;
	it->it_seq = seq;
	it->it_born = ev_now(st.loop);
	it->it_len = len;
	memcpy(it->it_data, rec, len);
	TAILQ_INSERT_TAIL(&st.pending, it, it_entry);
	if (!ev_is_active(&st.flush_timer)) {
		/*
		 * A full interval: libev keeps the time that was left when
		 * batch_cut() stopped the timer, not the delay.
		 */
		ev_timer_set(&st.flush_timer,
		    st.cfg->c_db_flush_interval / 1000.0, 0.);
		ev_timer_start(st.loop, &st.flush_timer);
	}
	if (++st.npending >= st.cfg->c_db_batch_size)
		store_step();
	else if (st.npending == 1 && !ev_is_active(&st.spool_timer))
		store_check_spool();	/* its db_spool_after */
}

/* ---- Batches ---- */

static struct batch *
batch_new(int replay, ev_tstamp born)
{
	struct batch	*b;

	b = xcalloc(1, sizeof(*b));
	TAILQ_INIT(&b->b_items);
	b->b_replay = replay;
	b->b_born = born;
	return b;
}

static void
batch_free(struct batch *b)
{
	struct item	*it;

	while ((it = TAILQ_FIRST(&b->b_items)) != NULL) {
		TAILQ_REMOVE(&b->b_items, it, it_entry);
		free(it);
	}
	free(b);
}

/* The oldest pending records, up to a batch, become a live batch. */
static struct batch *
batch_cut(void)
{
	struct batch	*b;
	struct item	*it;

	b = batch_new(0, TAILQ_FIRST(&st.pending)->it_born);
	while (b->b_n < st.cfg->c_db_batch_size &&
	    (it = TAILQ_FIRST(&st.pending)) != NULL) {
		TAILQ_REMOVE(&st.pending, it, it_entry);
		TAILQ_INSERT_TAIL(&b->b_items, it, it_entry);
		b->b_n++;
	}
	st.npending -= b->b_n;
	st.nlive += b->b_n;
	if (st.npending == 0) {
		st.flush_due = 0;
		ev_timer_stop(st.loop, &st.flush_timer);
	}
	TAILQ_INSERT_TAIL(&st.live, b, b_entry);
	return b;
}

/* Its second half becomes a batch of its own, right after it. */
static void
batch_split(struct batch *b)
{
	struct batch	*nb;
	struct item	*it, *next;
	size_t		 i, keep = b->b_n / 2;

	nb = batch_new(b->b_replay, b->b_born);
	nb->b_conflict = b->b_conflict;
	it = TAILQ_FIRST(&b->b_items);
	for (i = 0; i < keep; i++)
		it = TAILQ_NEXT(it, it_entry);
	for (; it != NULL; it = next) {
		next = TAILQ_NEXT(it, it_entry);
		TAILQ_REMOVE(&b->b_items, it, it_entry);
		TAILQ_INSERT_TAIL(&nb->b_items, it, it_entry);
	}
	nb->b_n = b->b_n - keep;
	b->b_n = keep;
	b->b_rejected = 0;
	TAILQ_INSERT_AFTER(b->b_replay ? &st.replay : &st.live, b, nb,
	    b_entry);
}

/*
 * Batches go to PostgreSQL in one of two forms: rows in COPY's text
 * format (live batches), or the 8 array literals of the prepared INSERT
 * ... ON CONFLICT DO NOTHING (replayed batches, which may well be in the
 * table already, and batches a COPY found a request_key of).  `enc`
 * writes either: field() gives the buffer a column's value goes to, after
 * its separator.
 */
struct enc {
	int		 copy;	/* COPY rows into *out, else arrays */
	struct buf	*out;
};

static struct buf *
field(const struct enc *e, int col)
{
	struct buf	*b;

	if (e->copy) {
		if (col > 0)
			buf_appendc(e->out, '\t');
		return e->out;
	}
	b = &st.cols[col];
	if (b->b_len > 1)	/* after the '{' and an element */
		buf_appendc(b, ',');
	return b;
}

static void
put_null(const struct enc *e, int col)
{
	if (e->copy)
		buf_append(field(e, col), "\\N", 2);
	else
		buf_append(field(e, col), "NULL", 4);
}

/*
 * One text value: NUL and bytes that are not UTF-8 replaced by U+FFFD so
 * that any body fits a text column; for COPY '\', tab, newline and
 * carriage return escaped with '\', for an array element quoted with '"'
 * and '\' escaped.  NULL when absent.
 */
static void
put_text(const struct enc *e, int col, const char *p, size_t len,
    int present)
{
	static const char	repl[] = "\xef\xbf\xbd";
	struct buf		*b;
	size_t			 i = 0, run;
	int			 q = e->copy ? '\\' : '"';	/* escaped */

	if (!present) {
		put_null(e, col);
		return;
	}
	b = field(e, col);
	if (!e->copy)
		buf_appendc(b, '"');
	while (i < len) {
		uint8_t c = (uint8_t)p[i];
		if (c >= 0x20 && c < 0x80 && c != '\\' && c != q) {
			for (run = i; run < len && (uint8_t)p[run] >= 0x20 &&
			    (uint8_t)p[run] < 0x80 && p[run] != '\\' &&
			    p[run] != q; run++)
				;
			buf_append(b, p + i, run - i);
			i = run;
			continue;
		}
		i++;
		if (c == '\\' || c == q) {
			buf_appendc(b, '\\');
			buf_appendc(b, (char)c);
		} else if (c == 0)
			buf_append(b, repl, 3);
		else if (e->copy && (c == '\t' || c == '\n' || c == '\r')) {
			buf_appendc(b, '\\');
			buf_appendc(b, c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
		} else if (c < 0x80)
			buf_appendc(b, (char)c);
		else {
			/* A multi-byte sequence: copy it whole if valid. */
			run = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
			if (run > 1 && i - 1 + run <= len &&
			    utf8_valid((const uint8_t *)p + i - 1, run)) {
				buf_append(b, p + i - 1, run);
				i += run - 1;
			} else
				buf_append(b, repl, 3);
		}
	}
	if (!e->copy)
		buf_appendc(b, '"');
}

/*
 * Append v in decimal, zero-padded to `width` digits.  No printf here or
 * in the two below: it was nearly half the dbwriter's CPU.
 */
static void
put_uint(struct buf *b, uint64_t v, int width)
{
	char	tmp[20];
	size_t	n = fmt_u64(tmp, v);

	for (; (size_t)width > n; width--)
		buf_appendc(b, '0');
	buf_append(b, tmp, n);
}

static void
put_int(struct buf *b, int64_t v)
{
	if (v < 0)
		buf_appendc(b, '-');
	put_uint(b, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 1);
}

/* Milliseconds with 3 decimals, as "%.3f" prints (rounding aside). */
static void
put_ms(struct buf *b, double ms)
{
	int64_t	us;

	if (!isfinite(ms) || fabs(ms) >= 1e12) {
		buf_printf(b, "%.3f", ms);
		return;
	}
	us = llround(ms * 1000);
	if (us < 0) {
		buf_appendc(b, '-');
		us = -us;
	}
	put_uint(b, (uint64_t)us / 1000, 1);
	buf_appendc(b, '.');
	put_uint(b, (uint64_t)us % 1000, 3);
}

/* Microseconds since the epoch as a timestamptz, UTC (quoted: `q`). */
static void
put_time(struct buf *b, int64_t t, int q)
{
	struct tm	tm;
	time_t		secs = (time_t)(t / 1000000);
	int64_t		us = t % 1000000;

	if (us < 0) {
		us += 1000000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	if (q)
		buf_appendc(b, '"');
	put_int(b, (int64_t)tm.tm_year + 1900);
	buf_appendc(b, '-');
	put_uint(b, (uint64_t)tm.tm_mon + 1, 2);
	buf_appendc(b, '-');
	put_uint(b, (uint64_t)tm.tm_mday, 2);
	buf_appendc(b, ' ');
	put_uint(b, (uint64_t)tm.tm_hour, 2);
	buf_appendc(b, ':');
	put_uint(b, (uint64_t)tm.tm_min, 2);
	buf_appendc(b, ':');
	put_uint(b, (uint64_t)tm.tm_sec, 2);
	buf_appendc(b, '.');
	put_uint(b, (uint64_t)us, 6);
	buf_append(b, "+00", 3);
	if (q)
		buf_appendc(b, '"');
}

/*
 * Encode a batch's records: COPY rows into st.copy, or the 8 array
 * parameters into st.cols.  Returns the row count.
 */
static int
batch_build(struct item_list *list, int copy)
{
	struct enc	 e = { copy, &st.copy };
	struct record	 r;
	struct item	*it;
	const char	*why;
	int		 i, n = 0;

	buf_reset(&st.copy);
	for (i = 0; i < PG_NPARAMS; i++) {
		buf_reset(&st.cols[i]);
		if (!copy)
			buf_appendc(&st.cols[i], '{');
	}
	TAILQ_FOREACH(it, list, it_entry) {
		if (record_decode(it->it_data, it->it_len, &r, &why) == -1) {
			/* Checked on arrival: cannot happen, never loops. */
			log_warnx("undecodable record dropped: %s", why);
			continue;
		}
		put_text(&e, 0, r.r_request_key.p, r.r_request_key.len, 1);
		put_text(&e, 1, r.r_user_id.p, r.r_user_id.len, 1);
		put_text(&e, 2, r.r_client_id.p, r.r_client_id.len,
		    r.r_client_id.p != NULL);
		if (r.r_has_status)
			put_int(field(&e, 3), r.r_status);
		else
			put_null(&e, 3);
		put_text(&e, 4, r.r_response.p, r.r_response.len,
		    r.r_response.p != NULL);
		put_text(&e, 5, r.r_error.p, r.r_error.len,
		    r.r_error.p != NULL);
		put_ms(field(&e, 6), r.r_latency_ms);
		put_time(field(&e, 7), r.r_created_at, !copy);
		if (copy)
			buf_appendc(&st.copy, '\n');
		n++;
	}
	if (!copy)
		for (i = 0; i < PG_NPARAMS; i++) {
			buf_appendc(&st.cols[i], '}');
			buf_cstr(&st.cols[i]);
		}
	return n;
}

/* ---- Sending ---- */

/* Some connection is up (ready or busy): PostgreSQL is not down. */
static int
store_pg_up(void)
{
	int	i;

	for (i = 0; i < st.nconns; i++)
		if (pg_up(&st.conns[i]))
			return 1;
	return 0;
}

/* After anything changed: spool what must be, send what can be. */
static void
store_step(void)
{
	store_check_spool();
	store_kick();
	store_check_drained();
}

/* Give every idle connection a batch. */
static void
store_kick(void)
{
	struct batch	*b;
	int		 i;

	if (st.closing)
		return;
	/* pg_insert() may fail the connection, which calls us back. */
	if (st.kicking) {
		st.kick_again = 1;
		return;
	}
	st.kicking = 1;
	do {
		st.kick_again = 0;
		for (i = 0; i < st.nconns; i++) {
			if (!pg_idle(&st.conns[i]))
				continue;
			if ((b = store_next()) == NULL)
				break;
			store_send(b, &st.conns[i]);
		}
	} while (st.kick_again);
	st.kicking = 0;
}

/*
 * The next batch to send: a live one to send again, a new one from
 * pending, a replay batch; or NULL (asking the thread for spooled
 * records if nothing else waits).
 */
static struct batch *
store_next(void)
{
	struct batch	*b;
	ev_tstamp	 now = ev_now(st.loop);

	if (now < st.retry_at) {
		if (!ev_is_active(&st.flush_timer)) {
			ev_timer_set(&st.flush_timer, st.retry_at - now, 0.);
			ev_timer_start(st.loop, &st.flush_timer);
		}
		return NULL;
	}
	TAILQ_FOREACH(b, &st.live, b_entry)
		if (b->b_state == B_WAIT && !b->b_job && !b->b_spooled)
			return b;
	if (st.npending > 0 && (st.flush_due || st.drained != NULL ||
	    st.npending >= st.cfg->c_db_batch_size))
		return batch_cut();
	TAILQ_FOREACH(b, &st.replay, b_entry)
		if (b->b_state == B_WAIT && !b->b_job)
			return b;
	store_fetch();
	return NULL;
}

static void
store_send(struct batch *b, struct pg *pg)
{
	const char	*params[PG_NPARAMS];
	int		 i, r;

	b->b_copied = !b->b_replay && !b->b_conflict;
	batch_build(&b->b_items, b->b_copied);
	if (b->b_copied)
		r = pg_copy(pg, &st.copy, store_done_cb, b);
	else {
		for (i = 0; i < PG_NPARAMS; i++)
			params[i] = st.cols[i].b_p;
		r = pg_insert(pg, params, store_done_cb, b);
	}
	/* -1: the connection broke just now; the batch waits for another. */
	if (r == 0) {
		b->b_state = B_SENT;
		b->b_sent = stats_now();
	}
}

/* pg.c: the batch's INSERT finished. */
static void
store_done_cb(void *arg, int ok, const char *sqlstate, const char *msg)
{
	struct batch	*b = arg;
	uint64_t	 quiet;
	int		 data_error;

	b->b_state = B_WAIT;
	if (ok) {
		stats_inc(&stats_d->sd_batches);
		stats_observe(&stats_d->sd_batch, stats_now() - b->b_sent);
		b->b_state = B_DONE;
		store_release();
		store_step();
		return;
	}
	if (b->b_copied && strcmp(sqlstate, "23505") == 0) {
		/*
		 * A request_key already in the table (a worker's resend of
		 * a record committed before its ack): COPY rolled back, the
		 * INSERT skips the rows that are there.
		 */
		log_info("batch has rows already in the table: inserting its "
		    "%zu records with ON CONFLICT DO NOTHING", b->b_n);
		b->b_conflict = 1;
		store_release();
		store_step();
		return;
	}
	/* Class 22 (data exception), 23 (integrity), 54 (too large). */
	data_error = strncmp(sqlstate, "22", 2) == 0 ||
	    strncmp(sqlstate, "23", 2) == 0 || strncmp(sqlstate, "54", 2) == 0;
	if (data_error && !b->b_spooled) {
		snprintf(b->b_sqlstate, sizeof(b->b_sqlstate), "%s", sqlstate);
		snprintf(b->b_reason, sizeof(b->b_reason), "%s", msg);
		if (b->b_n > 1)
			log_warnx("batch rejected sqlstate=%s: retrying its %zu "
			    "records in halves", sqlstate, b->b_n);
		b->b_rejected = 1;
		store_rejected(b);
	} else if (sqlstate[0] != '\0' && !b->b_spooled) {
		/*
		 * Not the connection (pg.c logged that): say, and wait.  A
		 * lasting cause (a privilege revoked, a full disk) fails
		 * every retry, a flush interval apart.
		 */
		if (log_limit_now(&st.fail_log, STORE_FAIL_LOG_MS, &quiet))
			log_warnx("batch failed sqlstate=%s rows=%zu: %s "
			    "unlogged=%" PRIu64, sqlstate, b->b_n, msg, quiet);
		st.retry_at = ev_now(st.loop) +
		    st.cfg->c_db_flush_interval / 1000.0;
	}
	store_release();
	store_step();
}

/* Split a batch rejected for its data, or dead-letter its one record. */
static void
store_rejected(struct batch *b)
{
	if (b->b_job)
		return;		/* when the spool is done with it */
	if (b->b_n > 1) {
		batch_split(b);
		return;
	}
	log_warnx("record rejected, dead-lettered sqlstate=%s reason=\"%s\"",
	    b->b_sqlstate, b->b_reason);
	b->b_job = 1;
	spoolq_run(st.q, 0, store_dead_work, store_dead_done, b);
}

/* On the disk thread. */
static int
store_dead_work(struct spool *sp, void *arg)
{
	struct batch	*b = arg;
	struct item	*it = TAILQ_FIRST(&b->b_items);

	/* Logged by spool.c if it fails: the record is not retried. */
	if (spool_dead_letter(sp, it->it_data, it->it_len, b->b_reason) == 0)
		stats_inc(&stats_d->sd_dead_letters);	/* its only writer */
	return SPOOL_OK;
}

static void
store_dead_done(void *arg, int result)
{
	struct batch	*b = arg;

	(void)result;
	b->b_job = 0;
	b->b_state = B_DONE;
	store_release();
	store_step();
}

/* ---- Spooling ---- */

/*
 * Spool the live batches that must be: all of them while no connection
 * is up, else those db_spool_after old (pending records that old become
 * batches first).  Arm the timer for the next one to come of age.
 */
static void
store_check_spool(void)
{
	struct batch	*b;
	struct item	*it;
	ev_tstamp	 now = ev_now(st.loop), next = 0;
	ev_tstamp	 after = st.cfg->c_db_spool_after / 1000.0;
	int		 down;

	if (st.closing)
		return;
	ev_timer_stop(st.loop, &st.spool_timer);
	if (now < st.spool_retry_at) {
		next = st.spool_retry_at;
		goto arm;
	}
	if (!(down = !store_pg_up()))
		st.down_logged = 0;
	it = TAILQ_FIRST(&st.pending);
	if (it != NULL && (now - it->it_born >= after || (down &&
	    (st.flush_due || st.drained != NULL ||
	    st.npending >= st.cfg->c_db_batch_size))))
		while (st.npending > 0)
			batch_cut();
	TAILQ_FOREACH(b, &st.live, b_entry) {
		if (b->b_state == B_DONE || b->b_spooled || b->b_job)
			continue;
		if (down || now - b->b_born >= after) {
			if (down && !st.down_logged)
				log_warnx("PostgreSQL down: spooling records");
			st.down_logged |= down;
			b->b_aged = !down;
			store_spool(b);
		} else if (next == 0 || b->b_born + after < next)
			next = b->b_born + after;
	}
	it = TAILQ_FIRST(&st.pending);
	if (it != NULL && (next == 0 || it->it_born + after < next))
		next = it->it_born + after;
arm:
	if (next > 0) {
		ev_timer_set(&st.spool_timer, next > now ? next - now : 0., 0.);
		ev_timer_start(st.loop, &st.spool_timer);
	}
}

static void
store_spool(struct batch *b)
{
	b->b_job = 1;
	spoolq_run(st.q, SPOOLQ_SYNC, store_spool_work, store_spool_done, b);
}

/* On the disk thread: the sync follows (SPOOLQ_SYNC). */
static int
store_spool_work(struct spool *sp, void *arg)
{
	struct batch	*b = arg;
	struct item	*it;
	int		 r;

	TAILQ_FOREACH(it, &b->b_items, it_entry)
		if ((r = spool_append(sp, it->it_data, it->it_len)) !=
		    SPOOL_OK)
			return r;
	return SPOOL_OK;
}

/*
 * A batch went to the spool because PostgreSQL had not committed it in
 * db_spool_after: said at once, then at most every STORE_SLOW_LOG_MS
 * with the batches and rows since the last line (a slow database spools
 * a batch per db_spool_after, which would otherwise be a line each).
 */
static void
store_log_slow(const struct batch *b, ev_tstamp now)
{
	uint64_t	quiet;

	st.slow_batches++;
	st.slow_rows += b->b_n;
	if (!log_limit_now(&st.slow_log, STORE_SLOW_LOG_MS, &quiet))
		return;
	if (st.slow_batches == 1)
		log_warnx("PostgreSQL slow: batch spooled after %.0f ms "
		    "rows=%zu", (now - b->b_born) * 1000, b->b_n);
	else
		log_warnx("PostgreSQL slow: batch spooled after %.0f ms "
		    "rows=%zu (%zu batches, %zu rows in all since the "
		    "last such line)", (now - b->b_born) * 1000, b->b_n,
		    st.slow_batches, st.slow_rows);
	st.slow_batches = st.slow_rows = 0;
}

static void
store_spool_done(void *arg, int result)
{
	struct batch	*b = arg;
	ev_tstamp	 now = ev_now(st.loop);

	b->b_job = 0;
	if (result == SPOOL_OK) {
		b->b_spooled = 1;
		st.spool_more = 1;
		st.spool_full_logged = 0;
		if (b->b_aged)
			store_log_slow(b, now);
	} else {
		if (!st.spool_full_logged)
			log_warnx("spool full or failing: records wait, "
			    "workers are not acknowledged pending=%zu",
			    store_pending());
		st.spool_full_logged = 1;
		st.spool_retry_at = now + st.cfg->c_db_flush_interval / 1000.0;
		if (b->b_rejected && b->b_state == B_WAIT)
			store_rejected(b);
	}
	store_release();
	store_step();
}

/* ---- Replay ---- */

/* Ask the disk thread for a batch of spooled records. */
static void
store_fetch(void)
{
	if (st.fetching || !st.spool_more || st.closing)
		return;
	st.fetching = 1;
	spoolq_run(st.q, 0, store_fetch_work, store_fetch_done,
	    batch_new(1, ev_now(st.loop)));
}

/* On the disk thread; when the spool is empty, adopt orphans. */
static int
store_fetch_work(struct spool *sp, void *arg)
{
	struct batch		*b = arg;
	struct spool_rec	 sr;
	struct item		*it;
	int			 adopted = 0;

	for (;;) {
		while (b->b_n < st.cfg->c_db_batch_size &&
		    spool_replay_next(sp, &sr) == 1) {
			it = xmalloc(sizeof(*it) + sr.sr_len);
			it->it_peer = 0;
			it->it_seq = 0;
			it->it_born = b->b_born;
			it->it_spos = sr.sr_end;
			it->it_len = sr.sr_len;
			memcpy(it->it_data, sr.sr_data, sr.sr_len);
			TAILQ_INSERT_TAIL(&b->b_items, it, it_entry);
			b->b_n++;
		}
		if (b->b_n > 0 || adopted || spool_adopt(sp) <= 0)
			return SPOOL_OK;
		adopted = 1;
	}
}

static void
store_fetch_done(void *arg, int result)
{
	struct batch	*b = arg;

	(void)result;
	st.fetching = 0;
	/* A line when a replay starts and one when all is read back. */
	if (b->b_n == 0) {
		st.spool_more = 0;
		batch_free(b);
		if (st.replay_read > 0)
			log_info("spooled records all read back for replay "
			    "count=%" PRIu64 " seconds=%.1f", st.replay_read,
			    ev_now(st.loop) - st.replay_start);
		st.replay_read = 0;
	} else {
		if (st.replay_read == 0) {
			log_info("replaying spooled records count=%zu",
			    b->b_n);
			st.replay_start = ev_now(st.loop);
		}
		st.replay_read += b->b_n;
		TAILQ_INSERT_TAIL(&st.replay, b, b_entry);
	}
	store_step();
}

/* On the disk thread: everything up to the position is in PostgreSQL. */
static int
store_commit_work(struct spool *sp, void *arg)
{
	spool_commit(sp, arg);
	return SPOOL_OK;
}

static void
store_commit_done(void *arg, int result)
{
	(void)result;
	free(arg);
	store_check_drained();
}

/* Now and then: look for spools of dbwriters that are gone. */
static void
store_adopt_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	st.spool_more = 1;
	store_kick();
}

/* ---- Acknowledgements and commits ---- */

/*
 * Acknowledge the live batches that are durable, from the oldest up to
 * the first that is not, and free those nothing holds any more.  Commit
 * the replayed batches to the spool, oldest first.
 */
static void
store_release(void)
{
	struct batch		*b, *next;
	struct spool_pos	*pos;

	for (b = TAILQ_FIRST(&st.live); b != NULL; b = next) {
		next = TAILQ_NEXT(b, b_entry);
		if (b->b_state != B_DONE && !b->b_spooled)
			break;
		if (!b->b_acked) {
			store_ack_add(&b->b_items);
			b->b_acked = 1;
			st.nlive -= b->b_n;
		}
		if (b->b_state != B_SENT && !b->b_job) {
			TAILQ_REMOVE(&st.live, b, b_entry);
			batch_free(b);
		}
	}
	/*
	 * Sent before the loop next waits, not from here: one ack per peer
	 * however many batches complete in an iteration, and none from the
	 * middle of whatever called us (an ack may drop its peer).
	 */
	if (st.nacks > 0 && !ev_is_active(&st.ack_prepare))
		ev_prepare_start(st.loop, &st.ack_prepare);
	while ((b = TAILQ_FIRST(&st.replay)) != NULL &&
	    b->b_state == B_DONE && !b->b_job) {
		TAILQ_REMOVE(&st.replay, b, b_entry);
		pos = xmalloc(sizeof(*pos));
		*pos = TAILQ_LAST(&b->b_items, item_list)->it_spos;
		batch_free(b);
		spoolq_run(st.q, 0, store_commit_work, store_commit_done, pos);
	}
}

/* Note the last seq of each peer in the list (items in seq order). */
static void
store_ack_add(const struct item_list *list)
{
	struct item	*it;
	size_t		 i;

	TAILQ_FOREACH(it, list, it_entry) {
		if (it->it_peer == 0)
			continue;
		for (i = 0; i < st.nacks; i++)
			if (st.acks[i].pa_peer == it->it_peer)
				break;
		if (i == st.nacks) {
			if (st.nacks == st.acks_cap) {
				st.acks_cap = st.acks_cap ? st.acks_cap * 2 : 8;
				st.acks = xrealloc(st.acks, st.acks_cap *
				    sizeof(*st.acks));
			}
			st.acks[st.nacks++].pa_peer = it->it_peer;
		}
		st.acks[i].pa_seq = it->it_seq;
	}
}

static void
store_ack_send(void)
{
	struct peer_ack	*a = st.acks;
	size_t		 i, n = st.nacks, cap = st.acks_cap;

	/*
	 * The callback may drop a peer and come back here: it gets an
	 * array of its own (an older ack it sends after a newer one is
	 * ignored by the worker).
	 */
	st.acks = NULL;
	st.nacks = st.acks_cap = 0;
	for (i = 0; i < n; i++)
		st.ack(st.ack_arg, a[i].pa_peer, a[i].pa_seq);
	if (st.acks == NULL) {
		st.acks = a;
		st.acks_cap = cap;
	} else
		free(a);
}

static void
store_ack_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)revents;
	ev_prepare_stop(loop, w);
	store_ack_send();
}

/* ---- Events ---- */

static void
store_flush_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	ev_timer_set(t, st.cfg->c_db_flush_interval / 1000.0, 0.);
	if (st.npending > 0)
		st.flush_due = 1;
	store_step();
}

static void
store_spool_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	store_step();
}

/* A connection became ready (start the others) or was lost. */
static void
store_pg_state_cb(void *arg, int ready)
{
	(void)arg;
	while (ready && st.nstarted < st.nconns)
		pg_connect(&st.conns[st.nstarted++]);
	store_step();
}

/* ---- Stopping ---- */

/*
 * Drained: every live record durable, and, while PostgreSQL is up, the
 * spool replayed; nothing at PostgreSQL or the disk thread that could
 * still change that.
 */
static void
store_check_drained(void)
{
	void		(*fn)(void *) = st.drained;
	struct batch	*b;

	if (fn == NULL || store_pending() > 0 || spoolq_busy(st.q) > 0)
		return;
	TAILQ_FOREACH(b, &st.replay, b_entry)
		if (b->b_state == B_SENT)
			return;
	if (store_pg_up() && (st.spool_more || !TAILQ_EMPTY(&st.replay)))
		return;
	/* Acknowledged too, before whoever waits hangs up. */
	store_ack_send();
	st.drained = NULL;
	fn(st.drained_arg);
}

void
store_drain(void (*done)(void *), void *arg)
{
	st.drained = done;
	st.drained_arg = arg;
	st.spool_more = 1;
	store_step();
}

void
store_shutdown(void)
{
	struct batch	*b;
	struct item	*it;
	int		 i, ok;

	ev_timer_stop(st.loop, &st.flush_timer);
	ev_timer_stop(st.loop, &st.spool_timer);
	ev_timer_stop(st.loop, &st.adopt_timer);
	ev_prepare_stop(st.loop, &st.ack_prepare);
	/* Completions may still acknowledge; they start nothing new. */
	st.closing = 1;
	st.drained = NULL;
	if (st.q != NULL)
		spoolq_stop(st.q);
	/*
	 * What is not durable goes to the spool now, in one sync: the live
	 * batches in order, then pending.  The thread is gone: ours alone.
	 */
	ok = st.spool != NULL;
	TAILQ_FOREACH(b, &st.live, b_entry) {
		if (!ok || b->b_acked)
			continue;
		TAILQ_FOREACH(it, &b->b_items, it_entry)
			if (spool_append(st.spool, it->it_data, it->it_len) !=
			    SPOOL_OK)
				ok = 0;
	}
	TAILQ_FOREACH(it, &st.pending, it_entry)
		if (ok && spool_append(st.spool, it->it_data, it->it_len) !=
		    SPOOL_OK)
			ok = 0;
	if (ok && spool_sync(st.spool) == SPOOL_OK) {
		TAILQ_FOREACH(b, &st.live, b_entry)
			if (!b->b_acked)
				store_ack_add(&b->b_items);
		store_ack_add(&st.pending);
	} else if (store_pending() > 0)
		log_warnx("cannot spool at exit: records unacknowledged "
		    "count=%zu; the workers send them again", store_pending());
	/* With what the thread's last completions made durable. */
	store_ack_send();
	ev_prepare_stop(st.loop, &st.ack_prepare);
	while ((b = TAILQ_FIRST(&st.live)) != NULL) {
		TAILQ_REMOVE(&st.live, b, b_entry);
		batch_free(b);
	}
	while ((b = TAILQ_FIRST(&st.replay)) != NULL) {
		TAILQ_REMOVE(&st.replay, b, b_entry);
		batch_free(b);
	}
	while ((it = TAILQ_FIRST(&st.pending)) != NULL) {
		TAILQ_REMOVE(&st.pending, it, it_entry);
		free(it);
	}
	st.npending = st.nlive = 0;
	for (i = 0; i < st.nconns; i++)
		pg_stop(&st.conns[i]);
	free(st.conns);
	st.conns = NULL;
	for (i = 0; i < PG_NPARAMS; i++)
		buf_free(&st.cols[i]);
	buf_free(&st.copy);
	free(st.acks);
	st.acks = NULL;
	spoolq_free(st.q);
	st.q = NULL;
	spool_close(st.spool);
	st.spool = NULL;
}
