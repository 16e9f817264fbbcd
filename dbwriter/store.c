/*
 * Record storage for the dbwriter.
 *
 * Records wait in `pending` (in arrival order) until a flush: at
 * db_batch_size records or after db_flush_interval.  A flush sends one
 * batch to PostgreSQL when the connection is idle; while PostgreSQL is
 * down, or a batch has not committed within db_spool_after, pending and
 * in-flight records go to the spool instead and are acknowledged once it
 * is fsynced.  Spooled records are replayed into PostgreSQL when nothing
 * else waits.  Acknowledgements are cumulative per peer and follow
 * arrival order, so a record is never acknowledged before an older one
 * of the same peer is durable.
 *
 * A batch PostgreSQL rejects for its data is retried one record at a
 * time; a record rejected alone goes to the dead-letter file.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "record.h"
#include "spool.h"
#include "store.h"
#include "utf8.h"
#include "util.h"

struct item {
	TAILQ_ENTRY(item)	 it_entry;
	uint64_t		 it_peer;	/* 0: from the spool */
	uint64_t		 it_seq;
	struct spool_pos	 it_spos;	/* from the spool: its end */
	size_t			 it_len;
	uint8_t			 it_data[];
};
TAILQ_HEAD(item_list, item);

static struct {
	struct ev_loop		*loop;
	const struct config	*cfg;
	struct pg		*pg;
	struct spool		*spool;
	store_ack_fn		*ack;
	void			*ack_arg;
	struct item_list	 pending;
	size_t			 npending;
	struct item_list	 inflight;	/* the batch at PostgreSQL */
	size_t			 ninflight;
	int			 inflight_acked; /* spooled while in flight */
	int			 one_by_one;	/* bisecting a bad batch */
	ev_tstamp		 inflight_since;
	ev_timer		 flush_timer;
	ev_timer		 spool_timer;	/* db_spool_after of a batch */
	struct buf		 cols[PG_NPARAMS];
	void			(*drained)(void *);
	void			*drained_arg;
	int			 spool_full_logged;
} st;

static void	store_flush(void);
static void	store_flush_cb(struct ev_loop *, ev_timer *, int);
static void	store_spool_cb(struct ev_loop *, ev_timer *, int);
static void	store_pg_state_cb(void *, int);
static void	store_done_cb(void *, int, const char *, const char *);
static void	store_send(void);
static int	store_replay(void);
static int	store_to_spool(struct item_list *, size_t);
static void	store_ack_items(struct item_list *);
static void	store_free_items(struct item_list *);
static void	store_check_drained(void);
static void	col_text(struct buf *, const char *, size_t, int);
static int	batch_build(struct item_list *);

int
store_init(struct ev_loop *loop, const struct config *cfg, struct pg *pg,
    const char *spool_name, store_ack_fn *ack, void *arg, char *err,
    size_t errlen)
{
	int	tries;

	memset(&st, 0, sizeof(st));
	st.loop = loop;
	st.cfg = cfg;
	st.pg = pg;
	st.ack = ack;
	st.ack_arg = arg;
	TAILQ_INIT(&st.pending);
	TAILQ_INIT(&st.inflight);
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
	ev_timer_init(&st.flush_timer, store_flush_cb,
	    cfg->c_db_flush_interval / 1000.0, 0.);
	ev_timer_init(&st.spool_timer, store_spool_cb,
	    cfg->c_db_spool_after / 1000.0, 0.);
	pg_on_state(pg, store_pg_state_cb, NULL);
	return 0;
}

size_t
store_pending(void)
{
	return st.npending + (st.inflight_acked ? 0 : st.ninflight);
}

void
store_add(uint64_t peer_id, uint64_t seq, const void *rec, size_t len)
{
	struct item	*it;

	it = xmalloc(sizeof(*it) + len);
	it->it_peer = peer_id;
	it->it_seq = seq;
	it->it_len = len;
	memcpy(it->it_data, rec, len);
	TAILQ_INSERT_TAIL(&st.pending, it, it_entry);
	st.npending++;
	if (st.npending >= st.cfg->c_db_batch_size)
		store_flush();
	else if (!ev_is_active(&st.flush_timer))
		ev_timer_start(st.loop, &st.flush_timer);
}

/* ---- Acknowledgements ---- */

/* Items are in arrival order: the last of each peer is its ack. */
static void
store_ack_items(struct item_list *list)
{
	struct item	*it, *later;

	TAILQ_FOREACH(it, list, it_entry) {
		if (it->it_peer == 0)
			continue;
		for (later = TAILQ_NEXT(it, it_entry); later != NULL;
		    later = TAILQ_NEXT(later, it_entry))
			if (later->it_peer == it->it_peer)
				break;
		if (later == NULL)
			st.ack(st.ack_arg, it->it_peer, it->it_seq);
	}
}

static void
store_free_items(struct item_list *list)
{
	struct item	*it;

	while ((it = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, it, it_entry);
		free(it);
	}
}

/* ---- Spool ---- */

/*
 * Spool the first `n` items of `list` (those from the spool itself are
 * skipped) and fsync.  Returns 0 when they are durable, -1 when the
 * spool is full or failing (nothing may be acknowledged).
 */
static int
store_to_spool(struct item_list *list, size_t n)
{
	struct item	*it;
	size_t		 i = 0;

	TAILQ_FOREACH(it, list, it_entry) {
		if (i++ == n)
			break;
		if (it->it_peer == 0)
			continue;
		if (spool_append(st.spool, it->it_data, it->it_len) !=
		    SPOOL_OK) {
			spool_discard(st.spool);
			goto full;
		}
	}
	if (spool_sync(st.spool) != SPOOL_OK)
		goto full;
	st.spool_full_logged = 0;
	return 0;
full:
	if (!st.spool_full_logged)
		log_warnx("spool full or failing: records wait, workers "
		    "are not acknowledged pending=%zu", st.npending);
	st.spool_full_logged = 1;
	return -1;
}

/* ---- Batches ---- */

/*
 * Append one text element to a PostgreSQL array literal: quoted, with
 * '"' and '\' escaped, NUL and bytes that are not UTF-8 replaced by
 * U+FFFD so that any body fits a text column.  NULL for absent.
 */
static void
col_text(struct buf *b, const char *p, size_t len, int present)
{
	static const char	repl[] = "\xef\xbf\xbd";
	size_t			i = 0, run;

	if (b->b_len > 1)
		buf_appendc(b, ',');
	if (!present) {
		buf_append(b, "NULL", 4);
		return;
	}
	buf_appendc(b, '"');
	while (i < len) {
		uint8_t c = (uint8_t)p[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			for (run = i; run < len && (uint8_t)p[run] >= 0x20 &&
			    (uint8_t)p[run] < 0x80 && p[run] != '"' &&
			    p[run] != '\\'; run++)
				;
			buf_append(b, p + i, run - i);
			i = run;
			continue;
		}
		if (c == '"' || c == '\\') {
			buf_appendc(b, '\\');
			buf_appendc(b, (char)c);
			i++;
			continue;
		}
		if (c == 0) {
			buf_append(b, repl, 3);
			i++;
			continue;
		}
		if (c < 0x80) {
			buf_appendc(b, (char)c);
			i++;
			continue;
		}
		/* A multi-byte sequence: copy it whole if valid. */
		run = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		if (run > 1 && i + run <= len &&
		    utf8_valid((const uint8_t *)p + i, run)) {
			buf_append(b, p + i, run);
			i += run;
		} else {
			buf_append(b, repl, 3);
			i++;
		}
	}
	buf_appendc(b, '"');
}

/* Build the 8 array parameters of a batch.  Returns the row count. */
static int
batch_build(struct item_list *list)
{
	struct record	 r;
	struct item	*it;
	const char	*why;
	char		 num[64];
	struct tm	 tm;
	time_t		 secs;
	int		 i, n = 0;

	for (i = 0; i < PG_NPARAMS; i++) {
		buf_reset(&st.cols[i]);
		buf_appendc(&st.cols[i], '{');
	}
	TAILQ_FOREACH(it, list, it_entry) {
		if (record_decode(it->it_data, it->it_len, &r, &why) == -1) {
			/* Our own encoding: cannot happen, never loops. */
			log_warnx("undecodable record dropped: %s", why);
			continue;
		}
		col_text(&st.cols[0], r.r_request_key.p, r.r_request_key.len, 1);
		col_text(&st.cols[1], r.r_user_id.p, r.r_user_id.len, 1);
		col_text(&st.cols[2], r.r_client_id.p, r.r_client_id.len,
		    r.r_client_id.p != NULL);
		if (st.cols[3].b_len > 1)
			buf_appendc(&st.cols[3], ',');
		if (r.r_has_status)
			buf_printf(&st.cols[3], "%d", (int)r.r_status);
		else
			buf_append(&st.cols[3], "NULL", 4);
		col_text(&st.cols[4], r.r_response.p, r.r_response.len,
		    r.r_response.p != NULL);
		col_text(&st.cols[5], r.r_error.p, r.r_error.len,
		    r.r_error.p != NULL);
		if (st.cols[6].b_len > 1)
			buf_appendc(&st.cols[6], ',');
		buf_printf(&st.cols[6], "%.3f", r.r_latency_ms);
		secs = (time_t)(r.r_created_at / 1000000);
		gmtime_r(&secs, &tm);
		snprintf(num, sizeof(num),
		    "%04d-%02d-%02d %02d:%02d:%02d.%06d+00",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (int)(r.r_created_at % 1000000));
		col_text(&st.cols[7], num, strlen(num), 1);
		n++;
	}
	for (i = 0; i < PG_NPARAMS; i++) {
		buf_appendc(&st.cols[i], '}');
		buf_cstr(&st.cols[i]);
	}
	return n;
}

/* Move up to a batch (one record when bisecting) to PostgreSQL. */
static void
store_send(void)
{
	const char	*params[PG_NPARAMS];
	struct item	*it;
	size_t		 max = st.one_by_one ? 1 : st.cfg->c_db_batch_size;
	int		 i;

	while (st.ninflight < max && (it = TAILQ_FIRST(&st.pending)) != NULL) {
		TAILQ_REMOVE(&st.pending, it, it_entry);
		st.npending--;
		TAILQ_INSERT_TAIL(&st.inflight, it, it_entry);
		st.ninflight++;
	}
	if (st.ninflight == 0)
		return;
	batch_build(&st.inflight);
	for (i = 0; i < PG_NPARAMS; i++)
		params[i] = st.cols[i].b_p;
	st.inflight_acked = 0;
	st.inflight_since = ev_now(st.loop);
	if (pg_insert(st.pg, params, store_done_cb, NULL) == -1) {
		/* Not idle after all: back to the front of pending. */
		while ((it = TAILQ_LAST(&st.inflight, item_list)) != NULL) {
			TAILQ_REMOVE(&st.inflight, it, it_entry);
			TAILQ_INSERT_HEAD(&st.pending, it, it_entry);
			st.npending++;
		}
		st.ninflight = 0;
		return;
	}
	ev_timer_set(&st.spool_timer, st.cfg->c_db_spool_after / 1000.0, 0.);
	ev_timer_start(st.loop, &st.spool_timer);
}

/* Load a batch of spooled records to replay.  Returns 1 if sent. */
static int
store_replay(void)
{
	struct spool_rec	 sr;
	struct item		*it;
	size_t			 n = 0;

	while (n < st.cfg->c_db_batch_size &&
	    spool_replay_next(st.spool, &sr) == 1) {
		it = xmalloc(sizeof(*it) + sr.sr_len);
		it->it_peer = 0;
		it->it_seq = 0;
		it->it_spos = sr.sr_end;
		it->it_len = sr.sr_len;
		memcpy(it->it_data, sr.sr_data, sr.sr_len);
		TAILQ_INSERT_TAIL(&st.pending, it, it_entry);
		st.npending++;
		n++;
	}
	if (n == 0)
		return 0;
	log_info("replaying spooled records count=%zu", n);
	store_send();
	return 1;
}

static void
store_flush(void)
{
	ev_timer_stop(st.loop, &st.flush_timer);
	if (pg_idle(st.pg)) {
		if (st.npending > 0)
			store_send();
		else if (st.ninflight == 0)
			store_replay();
		return;
	}
	if (st.npending == 0)
		return;
	/*
	 * PostgreSQL is down, or busy with a batch (spooled, or not yet
	 * too slow): spool what waits unless the batch in flight is fine.
	 */
	if (st.ninflight > 0 && !st.inflight_acked)
		return;	/* store_spool_cb decides when it is too slow */
	if (store_to_spool(&st.pending, st.npending) == 0) {
		store_ack_items(&st.pending);
		store_free_items(&st.pending);
		st.npending = 0;
		store_check_drained();
	} else
		ev_timer_start(st.loop, &st.flush_timer);
}

static void
store_flush_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	store_flush();
}

/* A batch has not committed within db_spool_after: spool it. */
static void
store_spool_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (st.ninflight == 0 || st.inflight_acked)
		return;
	if (store_to_spool(&st.inflight, st.ninflight) == -1) {
		ev_timer_start(st.loop, &st.spool_timer);
		return;
	}
	log_warnx("PostgreSQL slow: batch spooled after %.0f ms rows=%zu",
	    (ev_now(st.loop) - st.inflight_since) * 1000, st.ninflight);
	store_ack_items(&st.inflight);
	st.inflight_acked = 1;
	store_flush();
	store_check_drained();
}

static void
store_done_cb(void *arg, int ok, const char *sqlstate, const char *msg)
{
	struct item	*it;
	int		 data_error;

	(void)arg;
	ev_timer_stop(st.loop, &st.spool_timer);
	if (ok) {
		if (!st.inflight_acked)
			store_ack_items(&st.inflight);
		TAILQ_FOREACH(it, &st.inflight, it_entry)
			if (it->it_peer == 0)
				spool_commit(st.spool, &it->it_spos);
		store_free_items(&st.inflight);
		st.ninflight = 0;
		if (st.one_by_one && st.npending == 0)
			st.one_by_one = 0;
		store_flush();
		store_check_drained();
		return;
	}
	/* Class 22 (data exception), 23 (integrity), 54 (too large). */
	data_error = sqlstate[0] != '\0' && (strncmp(sqlstate, "22", 2) == 0 ||
	    strncmp(sqlstate, "23", 2) == 0 || strncmp(sqlstate, "54", 2) == 0);
	if (data_error && st.ninflight == 1) {
		it = TAILQ_FIRST(&st.inflight);
		log_warnx("record rejected, dead-lettered sqlstate=%s "
		    "reason=\"%s\"", sqlstate, msg);
		spool_dead_letter(st.spool, it->it_data, it->it_len, msg);
		if (!st.inflight_acked)
			store_ack_items(&st.inflight);
		if (it->it_peer == 0)
			spool_commit(st.spool, &it->it_spos);
		store_free_items(&st.inflight);
		st.ninflight = 0;
		store_flush();
		store_check_drained();
		return;
	}
	if (data_error) {
		log_warnx("batch rejected sqlstate=%s: retrying its %zu "
		    "records one by one", sqlstate, st.ninflight);
		st.one_by_one = 1;
	}
	/* Back to the front of pending; spooled replays go back too. */
	while ((it = TAILQ_LAST(&st.inflight, item_list)) != NULL) {
		TAILQ_REMOVE(&st.inflight, it, it_entry);
		if (st.inflight_acked && it->it_peer != 0) {
			/* Already durable in the spool; it replays from there. */
			free(it);
			continue;
		}
		TAILQ_INSERT_HEAD(&st.pending, it, it_entry);
		st.npending++;
	}
	st.ninflight = 0;
	if (!data_error)
		spool_rewind(st.spool);
	/* Connection trouble: the next flush spools if it stays down. */
	ev_timer_start(st.loop, &st.flush_timer);
}

static void
store_pg_state_cb(void *arg, int ready)
{
	(void)arg;
	if (ready)
		store_flush();
}

/* ---- Stopping ---- */

static void
store_check_drained(void)
{
	void	(*fn)(void *) = st.drained;

	if (fn != NULL && store_pending() == 0) {
		st.drained = NULL;
		fn(st.drained_arg);
	}
}

void
store_drain(void (*done)(void *), void *arg)
{
	st.drained = done;
	st.drained_arg = arg;
	store_flush();
	store_check_drained();
}

void
store_shutdown(void)
{
	int	i;

	ev_timer_stop(st.loop, &st.flush_timer);
	ev_timer_stop(st.loop, &st.spool_timer);
	if (st.ninflight > 0 && !st.inflight_acked &&
	    store_to_spool(&st.inflight, st.ninflight) == 0)
		store_ack_items(&st.inflight);
	if (st.npending > 0 && store_to_spool(&st.pending, st.npending) == 0)
		store_ack_items(&st.pending);
	store_free_items(&st.inflight);
	store_free_items(&st.pending);
	st.ninflight = st.npending = 0;
	for (i = 0; i < PG_NPARAMS; i++)
		buf_free(&st.cols[i]);
	if (st.spool != NULL)
		spool_close(st.spool);
	st.spool = NULL;
}
